"""Copy a sweep's (or a run's) results without its weights into a folder `python -m reidtricks.report` reads,
so that a study survives the loss of its run folders (e.g. committed under docs/runs/).

    python scripts/keep_results.py logs/transfer_cuhk03/multirun/<date> docs/runs/transfer_seed1

Per job it keeps metrics.json, error.txt, .hydra/config.yaml and .hydra/overrides.yaml and the
CSV log (csv/); the sweep's multirun.yaml too. Unfinished jobs are skipped and named; a job
already kept is refused if its files differ (no run overwrites another's results).
"""

from __future__ import annotations

import argparse
import filecmp
import shutil
import sys
from pathlib import Path

KEPT = ("metrics.json", "error.txt", ".hydra/config.yaml", ".hydra/overrides.yaml")


def kept_files(job: Path) -> list[Path]:
    """The files of one job folder worth keeping, relative to it."""
    files = [Path(name) for name in KEPT if (job / name).is_file()]
    files += sorted(p.relative_to(job) for p in (job / "csv").rglob("*") if p.is_file())
    return files


def copy_checked(source: Path, target: Path) -> None:
    """Copy `source` to `target`, refusing to replace a file with other contents."""
    if target.exists() and not filecmp.cmp(source, target, shallow=False):
        raise SystemExit(
            f"error: {target} exists with other contents (a different run kept there); "
            "choose another destination"
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, target)


def keep(sweep: Path, dest: Path) -> tuple[list[str], list[str]]:
    """Copy every finished job's results from `sweep` to `dest`; returns (kept, unfinished)."""
    # a single run's folder is kept as one job of that name
    jobs = (
        [sweep] if (sweep / ".hydra").is_dir() else sorted(p.parent for p in sweep.glob("*/.hydra"))
    )
    if not jobs:
        raise SystemExit(
            f"error: {sweep}: no job folders (expected a sweep holding <job>/.hydra/ or a run)"
        )
    kept, unfinished = [], []
    for job in jobs:
        if not (job / "metrics.json").is_file() and not (job / "error.txt").is_file():
            unfinished.append(job.name)
            continue
        for rel in kept_files(job):
            copy_checked(job / rel, dest / job.name / rel)
        kept.append(job.name)
    if (sweep / "multirun.yaml").is_file():
        copy_checked(sweep / "multirun.yaml", dest / "multirun.yaml")
    return kept, unfinished


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sweep", type=Path, help="a Hydra multirun sweep folder")
    parser.add_argument("dest", type=Path, help="where to keep its results")
    args = parser.parse_args(argv)
    if not args.sweep.is_dir():
        parser.error(f"{args.sweep} is not a folder (expected a Hydra multirun sweep folder)")
    kept, unfinished = keep(args.sweep, args.dest)
    print(f"kept {len(kept)} job(s) in {args.dest}: {', '.join(kept) or '-'}")
    if unfinished:
        print(f"not finished (not kept): {', '.join(unfinished)}", file=sys.stderr)


if __name__ == "__main__":
    main()
