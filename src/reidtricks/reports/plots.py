"""PNG figures people would rather look at than numbers: ranked retrievals, training curves."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from torch import Tensor

from reidtricks.data.image_dataset import read_image

if TYPE_CHECKING:
    from reidtricks.data.datamodule import TestSet


def plot_ranked_retrievals(
    distmat: Tensor, test_set: TestSet, out_png: Path, num_queries: int = 8, topk: int = 10
) -> Path:
    """Evenly spaced queries with their top-k gallery matches (Market protocol: same pid and
    camera removed); green frame = correct identity, red = wrong."""
    dist = distmat.float().cpu().numpy()
    q_items, g_items = list(test_set.query), list(test_set.gallery)
    g_pids = np.array([pid for _, pid, _ in g_items])
    g_cams = np.array([cam for _, _, cam in g_items])
    rows = np.linspace(0, len(q_items) - 1, num=min(num_queries, len(q_items))).astype(int)
    fig, axes = plt.subplots(len(rows), topk + 1, figsize=(1.1 * (topk + 1), 2.3 * len(rows)))
    axes = np.atleast_2d(axes)
    for row, qi in zip(axes, rows, strict=True):
        q_path, q_pid, q_cam = q_items[qi]
        valid = ~((g_pids == q_pid) & (g_cams == q_cam))
        order = [g for g in np.argsort(dist[qi], kind="stable") if valid[g]][:topk]
        _show(row[0], q_path, "black", f"query\nid {q_pid}")
        for ax, g in zip(row[1:], order, strict=False):
            color = "green" if g_pids[g] == q_pid else "red"
            _show(ax, g_items[g][0], color, f"{dist[qi, g]:.3f}")
        for ax in row[1 + len(order) :]:
            ax.axis("off")
    fig.tight_layout()
    out_png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_png, dpi=80)
    plt.close(fig)
    return out_png


def plot_query_strip(
    query: str,
    matches: Sequence[tuple[str, float]],
    out_png: Path,
    query_title: str = "query",
    colors: Sequence[str] | None = None,
) -> Path:
    """One query and its ranked matches (path, distance) in a row, for searches outside a test
    set; frame colours per match (default grey: identities unknown)."""
    colors = list(colors) if colors is not None else ["grey"] * len(matches)
    fig, axes = plt.subplots(1, len(matches) + 1, figsize=(1.1 * (len(matches) + 1), 2.4))
    axes = np.atleast_1d(axes)
    _show(axes[0], query, "black", query_title)
    for rank, (ax, (path, dist), color) in enumerate(
        zip(axes[1:], matches, colors, strict=True), start=1
    ):
        _show(ax, path, color, f"#{rank}\n{dist:.3f}")
    fig.tight_layout()
    out_png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_png, dpi=80)
    plt.close(fig)
    return out_png


def _show(ax: plt.Axes, path: str, color: str, title: str) -> None:
    ax.imshow(read_image(path))  # any PIL mode as 8-bit RGB
    ax.set_title(title, fontsize=7)
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_edgecolor(color)
        spine.set_linewidth(3)


def plot_training_curves(metrics_csv: Path, out_png: Path) -> Path | None:
    """Loss terms, ID accuracy and LR per step from Lightning's CSV log, in one PNG."""
    with open(metrics_csv, newline="") as fh:
        rows = list(csv.DictReader(fh))
    series: dict[str, list[tuple[int, float]]] = {}
    for row in rows:
        for key, value in row.items():
            if key.startswith("train/") and value not in ("", None):
                series.setdefault(key, []).append((int(row["step"]), float(value)))
    if not series:
        return None
    panels = [
        [k for k in series if k.startswith("train/loss_")],
        ["train/id_acc"],
        ["train/lr"],
    ]
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.5))
    for ax, keys, title in zip(
        axes, panels, ("losses", "ID accuracy", "learning rate"), strict=True
    ):
        for key in keys:
            if key in series:
                steps, values = zip(*series[key], strict=True)
                ax.plot(steps, values, label=key.removeprefix("train/"))
        ax.set_title(title)
        ax.set_xlabel("step")
        if len(keys) > 1:
            ax.legend(fontsize=7)
    axes[2].set_yscale("log")
    fig.tight_layout()
    fig.savefig(out_png, dpi=90)
    plt.close(fig)
    return out_png
