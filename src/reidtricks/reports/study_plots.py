"""A study report's charts: each row's rank-1 and mAP per test set, and each row's change of mAP
from a reference row (the ablation bars of a leave-one-out study)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from reidtricks.reports.rows import MEAN_OF_SETS, Row, test_set_names


def plot_rows(rows: Sequence[Row], out_png: Path, title: str = "") -> Path:
    """Grouped bars of rank-1 and mAP per row and test set, with seed std as error bars."""
    test_sets = test_set_names(rows)
    # One panel per test set (a row of panels), bars per row of the table.
    fig, axes = plt.subplots(
        1, len(test_sets), figsize=(max(6.0, (0.45 * len(rows) + 1) * len(test_sets)), 4.2),
        squeeze=False,
    )  # fmt: skip
    width = 0.38
    for ax, test_set in zip(axes[0], test_sets, strict=True):
        shown = [r for r in rows if test_set in r.values]
        x = range(len(shown))
        for offset, key in ((-width / 2, "rank1"), (width / 2, "mAP")):
            means = [100 * r.mean(test_set, key) for r in shown]
            stds = [0 if math.isnan(r.std(test_set, key)) else 100 * r.std(test_set, key)
                    for r in shown]  # fmt: skip
            ax.bar([i + offset for i in x], means, width, yerr=stds, capsize=3, label=key)
        ax.set_xticks(list(x), [r.name for r in shown], rotation=40, ha="right", fontsize=8)
        ax.set_title(test_set, fontsize=10)
        ax.set_ylabel("%")
    axes[0][0].legend()
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(out_png, dpi=90)
    plt.close(fig)
    return out_png


def mAP_deltas(rows: Sequence[Row], reference: str) -> dict[str, dict[str, tuple[float, float]]]:
    """Per row (not the reference, not test-time variants `ROW+...`) and test set: the change of
    mean mAP from the reference row trained on the same data, and its seed noise
    sqrt(std_row² + std_ref²) (NaN with one seed)."""
    refs = {r.trained_on: r for r in rows if r.name == reference}
    deltas: dict[str, dict[str, tuple[float, float]]] = {}
    for row in rows:
        ref = refs.get(row.trained_on)
        if ref is None or row is ref or "+" in row.name:
            continue
        deltas[row.name] = {
            test_set: row.change_from(ref, test_set, "mAP")
            for test_set in test_set_names(rows)
            if test_set in row.values and test_set in ref.values
        }
    return deltas


def plot_deltas(rows: Sequence[Row], reference: str, out_png: Path, title: str = "") -> Path:
    """Bars of each row's mAP change from `reference`, one bar per test set, with the seed noise
    as error bars: below zero, what the row leaves out (or adds) helps on that set."""
    deltas = mAP_deltas(rows, reference)
    test_sets = test_set_names(rows)
    fig, ax = plt.subplots(figsize=(max(6.0, 0.9 * len(deltas) * max(1, len(test_sets)) / 3), 4.2))
    width = 0.8 / max(1, len(test_sets))
    for j, test_set in enumerate(test_sets):
        x = [i + (j - (len(test_sets) - 1) / 2) * width for i in range(len(deltas))]
        values = [d.get(test_set, (math.nan, math.nan)) for d in deltas.values()]
        # the mean over the unseen sets is the headline: dark grey, hatched, apart from the sets
        style = (
            {"color": "0.2", "hatch": "//", "edgecolor": "white"}
            if test_set == MEAN_OF_SETS
            else {}
        )
        ax.bar(x, [100 * v for v, _ in values], width,
               yerr=[0 if math.isnan(n) else 100 * n for _, n in values], capsize=2,
               label=test_set, **style)  # fmt: skip
    ax.axhline(0, color="black", linewidth=0.8)
    ax.set_xticks(range(len(deltas)), list(deltas), rotation=30, ha="right", fontsize=8)
    ax.set_ylabel(f"Δ mAP from {reference} (points)")
    ax.legend(fontsize=8, ncol=min(3, len(test_sets)))
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(out_png, dpi=90)
    plt.close(fig)
    return out_png
