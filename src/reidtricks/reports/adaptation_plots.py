"""The per-round curves of an adaptation run (`reidtricks.adapt`): clusters and images kept, the
pseudo-labels' purity / NMI / ARI, and the target's test R1 / mAP from direct transfer (round 0)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.ticker import MaxNLocator


def plot_adaptation_rounds(
    rounds: Sequence[Mapping[str, Any]],
    direct: Mapping[str, Mapping[str, Any]] | None,
    out_png: Path,
    camera_bn: Mapping[str, Mapping[str, Any]] | None = None,
) -> Path:
    """One panel per kind of number, x = round; panels without numbers (an unlabelled folder
    target has no quality or test scores) are left out. `camera_bn`: round 0's camera-BN
    scores, drawn with the rounds' (adapt.camera_bn)."""
    x = [r["round"] for r in rounds]
    panels = ["clusters"]
    if any(r.get("purity") is not None for r in rounds):
        panels.append("quality")
    if any(r.get("test_sets") for r in rounds):
        panels.append("test")
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.4), squeeze=False)
    for ax, panel in zip(axes[0], panels, strict=True):
        if panel == "clusters":
            ax.plot(x, [r["clusters"] for r in rounds], "o-", color="tab:blue", label="clusters")
            ax.set_ylabel("clusters", color="tab:blue")
            kept = ax.twinx()
            share = [100 * r["kept"] / max(1, r["images"]) for r in rounds]
            kept.plot(x, share, "s--", color="tab:orange")
            kept.set_ylabel("images kept (%)", color="tab:orange")
            kept.set_ylim(0, 105)
            ax.set_title("pseudo-identities")
        elif panel == "quality":
            for key, name in (("purity", "purity"), ("nmi", "NMI"), ("ari", "ARI")):
                ax.plot(x, [r.get(key) for r in rounds], "o-", label=name)
            ax.set_ylim(0, 1.02)
            ax.set_title("pseudo-labels against the identities")
            ax.legend(fontsize=8)
        else:
            first = next(iter(direct)) if direct else None
            xs = ([0] if first else []) + x
            for key, name in (("rank1", "R1"), ("mAP", "mAP")):
                ys = [direct[first][key]] if first else []
                ys += [r.get(key) for r in rounds]
                ax.plot(xs, [100 * y if y is not None else None for y in ys], "o-", label=name)
            if first and any(r.get("camera_bn") for r in rounds):
                ys = [camera_bn[first]["mAP"]] if camera_bn else [None]
                ys += [r["camera_bn"][first]["mAP"] if r.get("camera_bn") else None for r in rounds]
                ax.plot(xs, [100 * y if y is not None else None for y in ys], "s--",
                        label="mAP, camera BN")  # fmt: skip
            ax.set_ylabel("%")
            ax.set_title("target test (round 0: direct transfer)")
            ax.legend(fontsize=8)
        ax.set_xlabel("round")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
    fig.tight_layout()
    out_png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_png, dpi=90)
    plt.close(fig)
    return out_png
