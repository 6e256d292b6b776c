"""Adam's per-parameter step size over training, from runs logged with callbacks=adam_monitor:
a PNG (step size / LR = 1 / (sqrt(v_hat) + eps), backbone median and 10-90% band; and the LR) and a
table of the backbone median at chosen steps, each run against the first one given.

    python scripts/plot_adam_steps.py logs/warmup_adam_cuhk03/multirun/<date> --out docs/reports/warmup_adam_steps.png
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt


def read_run(job: Path) -> dict[str, list[float]]:
    """step, lr and the adam/* quantiles of one job folder's CSV log (rows that hold them)."""
    logs = sorted(job.glob("csv/**/metrics.csv"))
    if not logs:
        raise SystemExit(f"error: {job}: no csv/**/metrics.csv (was it trained with logger csv?)")
    series: dict[str, list[float]] = {"step": [], "lr": [], "q10": [], "q50": [], "q90": []}
    lr_by_step: dict[int, float] = {}
    rows = list(csv.DictReader(logs[-1].open()))
    for row in rows:
        if row.get("train/lr"):
            lr_by_step[int(row["step"])] = float(row["train/lr"])
    for row in rows:
        if not row.get("adam/backbone_q50"):
            continue
        step = int(row["step"])
        lr = lr_by_step.get(step)
        if lr is None:
            continue
        series["step"].append(step)
        series["lr"].append(lr)
        for q in ("q10", "q50", "q90"):
            series[q].append(float(row[f"adam/backbone_{q}"]) / lr)
    if not series["step"]:
        raise SystemExit(
            f"error: {job}: no adam/backbone_* values (train with callbacks=adam_monitor)"
        )
    return series


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folders", nargs="+", type=Path, help="job folders or sweep folders")
    parser.add_argument("--out", type=Path, default=Path("adam_steps.png"))
    parser.add_argument("--at", type=int, nargs="*", default=[63, 127, 191, 255, 383, 511, 639])
    args = parser.parse_args()
    jobs = []
    for folder in args.folders:
        jobs += (
            [folder]
            if (folder / "csv").is_dir()
            else sorted(p.parent for p in folder.glob("*/csv"))
        )
    runs = {job.name: read_run(job) for job in jobs}
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(9, 7), sharex=True)
    for name, s in runs.items():
        (line,) = top.plot(s["step"], s["q50"], label=name)
        top.fill_between(s["step"], s["q10"], s["q90"], color=line.get_color(), alpha=0.12)
        bottom.plot(s["step"], s["lr"], color=line.get_color(), label=name)
    top.set_yscale("log")
    top.set_ylabel("backbone 1 / (sqrt(v_hat) + eps)")
    top.set_title("Adam's step size per unit LR (median, 10-90% band)")
    top.legend(fontsize=8)
    bottom.set_yscale("log")
    bottom.set_ylabel("LR")
    bottom.set_xlabel("optimiser step")
    fig.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=110)
    print(f"wrote {args.out}")
    first = next(iter(runs.values()))
    header = "| run | " + " | ".join(f"step {a}" for a in args.at) + " |"
    print(header)
    print("|---" * (len(args.at) + 1) + "|")
    for name, s in runs.items():
        cells = []
        for at in args.at:
            i = min(range(len(s["step"])), key=lambda k: abs(s["step"][k] - at))
            j = min(range(len(first["step"])), key=lambda k: abs(first["step"][k] - at))
            cells.append(f"{s['q50'][i]:.3g} ({s['q50'][i] / first['q50'][j]:.2f}x)")
        print(f"| {name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
