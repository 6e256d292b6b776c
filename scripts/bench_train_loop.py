"""Seconds per training epoch of the real training command, NCHW against channels-last, the two
run side by side as two 1-thread jobs (one per core, as the CPU studies run); a table per model.

    python scripts/bench_train_loop.py -- paths.data_dir=../shared/data
    python scripts/bench_train_loop.py --experiment demo --epochs 1 --leave-out all -- ...

Each job is `python -m reidtricks.train experiment=E +trick=center_loss +leave_out=M seed=0
run_test=false trainer.max_epochs=N channels_last=false|true`; the epoch times come from each
run's metrics.json (`train_epoch_s`, validation left out). The run folders go to a temporary
folder (--keep to name one).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path


def run_pair(args: argparse.Namespace, leave_out: str, out: Path) -> dict[bool, list[float]]:
    """Start the NCHW and the channels-last run of one model together; their epoch seconds."""
    jobs = {}
    for channels_last in (False, True):
        folder = out / f"{leave_out}_channels_last_{channels_last}"
        command = [sys.executable, "-m", "reidtricks.train", f"experiment={args.experiment}",
                   "+trick=center_loss", f"+leave_out={leave_out}", "seed=0", "run_test=false",
                   f"trainer.max_epochs={args.epochs}", f"channels_last={str(channels_last).lower()}",
                   "threads=1", f"paths.output_dir={folder}", *args.overrides]  # fmt: skip
        log = open(out / f"{folder.name}.log", "w")  # noqa: SIM115 (closed below)
        jobs[channels_last] = (
            subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT),
            log,
            folder,
        )
    seconds = {}
    for channels_last, (process, log, folder) in jobs.items():
        code = process.wait()
        log.close()
        if code != 0:
            raise SystemExit(f"error: {' '.join(process.args)} exited with {code}; see {log.name}")
        seconds[channels_last] = json.loads((folder / "metrics.json").read_text())["train_epoch_s"]
    return seconds


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--experiment", default="transfer_cuhk03")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--leave-out", default="all,none",
                        help="models, as +leave_out values: all = the baseline, none = the full BoT")  # fmt: skip
    parser.add_argument(
        "--keep", type=Path, help="write the run folders here (default: a temporary one)"
    )
    parser.add_argument("overrides", nargs="*", help="more Hydra overrides, after --")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        out = args.keep or Path(tmp)
        out.mkdir(parents=True, exist_ok=True)
        print(f"experiment={args.experiment}, {args.epochs} epochs, two 1-thread jobs side by side")
        print("| model (+leave_out) | NCHW s/epoch | channels-last s/epoch | speed-up |")
        print("|---|---|---|---|")
        for leave_out in args.leave_out.split(","):
            seconds = run_pair(args, leave_out, out)
            nchw, cl = (statistics.mean(seconds[c]) for c in (False, True))
            each = {c: ", ".join(f"{s:.1f}" for s in seconds[c]) for c in (False, True)}
            print(f"| {leave_out} | {each[False]} (mean {nchw:.1f}) | {each[True]} (mean {cl:.1f}) "
                  f"| {nchw / cl:.2f}x |")  # fmt: skip


if __name__ == "__main__":
    main()
