"""Study report: `python -m reidtricks.report MULTIRUN_DIR [--out DIR] [--delta-from ROW]` ->
report.md, report.csv, report.png (mean +- std over seeds per cell, deltas, the paper's numbers;
see reports/study.py)."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from reidtricks.cli.app import one_line_errors
from reidtricks.reports.study import write_report


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("multirun_dir", type=Path, help="a Hydra sweep folder (holds job folders)")
    parser.add_argument(
        "--out", type=Path, default=None, help="where to write (default: the sweep)"
    )
    parser.add_argument(
        "--delta-from",
        default=None,
        metavar="ROW",
        help="take every Δ from this row (e.g. bot in a leave-one-out study), not the previous",
    )
    args = parser.parse_args(argv)
    if not args.multirun_dir.is_dir():
        parser.error(
            f"{args.multirun_dir} is not a folder (expected a Hydra multirun sweep folder)"
        )
    with one_line_errors():
        md_path = write_report(args.multirun_dir, args.out, args.delta_from)
    print(md_path.read_text())
    print(f"Wrote {md_path}, {md_path.with_suffix('.csv')}, {md_path.with_suffix('.png')}")


if __name__ == "__main__":
    main()
