"""mAP against the base LR, with and without warmup, from a folder of finished runs (a sweep, or
single runs kept side by side): a table (mean ± std over seeds) and a PNG (the means joined, every
seed a dot), one line per optimiser and warmup setting.

    python scripts/plot_lr_sweep.py docs/runs/warmup_lr --out docs/reports/warmup_lr_sweep.png
"""

from __future__ import annotations

import argparse
import statistics
import sys
from collections import defaultdict
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from reidtricks.reports.study import collect_jobs, job_config

Key = tuple[str, bool]  # (optimiser class name, warmup on)


def lr_points(folder: Path) -> dict[Key, dict[float, list[float]]]:
    """(optimiser, warmup) -> base LR -> each finished run's mAP (%) on its first test set."""
    jobs = collect_jobs(folder)
    if not jobs.done:
        raise SystemExit(f"error: {folder}: no finished job folders (expected <job>/metrics.json)")
    points: dict[Key, dict[float, list[float]]] = defaultdict(lambda: defaultdict(list))
    for job in jobs.done:
        if not job.get("test_sets"):
            print(
                f"left out: {job['folder']} (no test_sets: trained with run_test=false)",
                file=sys.stderr,
            )
            continue
        config = job_config(Path(job["folder"]))
        if config is None or "optim" not in config:
            raise SystemExit(f"error: {job['folder']}: no .hydra/config.yaml with an optim section")
        optim = config["optim"]
        name = str(optim["optimizer"]["_target_"]).rsplit(".", 1)[-1]
        first_set = next(iter(job["test_sets"].values()))  # the in-domain set, tested first
        points[(name, bool(optim["warmup"]))][float(optim["lr"])].append(100 * first_set["mAP"])
    return points


def label(key: Key) -> str:
    name, warmup = key
    return f"{name}, {'warmup' if warmup else 'no warmup'}"


def print_table(points: dict[Key, dict[float, list[float]]]) -> None:
    print("| optimiser, warmup | base LR | seeds | mAP % (mean ± std) | each seed |")
    print("|---|---|---|---|---|")
    for key in sorted(points):
        for lr in sorted(points[key]):
            maps = points[key][lr]
            std = f" ± {statistics.stdev(maps):.1f}" if len(maps) > 1 else ""
            each = ", ".join(f"{m:.1f}" for m in maps)
            print(
                f"| {label(key)} | {lr:g} | {len(maps)} | {statistics.mean(maps):.1f}{std} | {each} |"
            )


def plot(
    points: dict[Key, dict[float, list[float]]], out: Path, reference_lr: float | None
) -> None:
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for key in sorted(points):
        lrs = sorted(points[key])
        (line,) = ax.plot(lrs, [statistics.mean(points[key][lr]) for lr in lrs], marker="o",
                          label=label(key))  # fmt: skip
        for lr in lrs:
            maps = points[key][lr]
            ax.scatter([lr] * len(maps), maps, s=12, color=line.get_color(), alpha=0.5)
    if reference_lr:
        ax.axvline(
            reference_lr, color="grey", linestyle=":", label=f"the setting's LR ({reference_lr:g})"
        )
    ax.set_xscale("log")
    ax.set_xlabel("base learning rate")
    ax.set_ylabel("mAP (%)")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "folder", type=Path, help="a folder of job folders (each with metrics.json)"
    )
    parser.add_argument("--out", type=Path, help="PNG to write")
    parser.add_argument("--reference-lr", type=float, help="draw this LR as a dotted line")
    args = parser.parse_args(argv)
    if not args.folder.is_dir():
        parser.error(f"{args.folder} is not a folder (expected a folder of job folders)")
    points = lr_points(args.folder)
    print_table(points)
    if args.out:
        plot(points, args.out, args.reference_lr)
        print(f"Wrote {args.out}")


if __name__ == "__main__":
    main()
