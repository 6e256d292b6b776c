"""Study report: `python -m reidtricks.report MULTIRUN_DIR [MORE ...] [--out DIR] [--delta-from ROW]`
-> report.md, report.csv, report.png (mean +- std over seeds per cell, deltas, the paper's numbers;
see reports/study.py). Several sweep folders pool their jobs; an earlier report.csv with one seed
per row adds its rows' values (for a study whose job folders are gone)."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from reidtricks.cli.app import one_line_errors
from reidtricks.reports.study import write_report


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "inputs",
        type=Path,
        nargs="+",
        metavar="MULTIRUN_DIR",
        help="Hydra sweep folders (they hold job folders) or earlier one-seed report.csv files",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="where to write (default: the sweep; needed with several inputs)",
    )
    parser.add_argument(
        "--delta-from",
        default=None,
        metavar="ROW",
        help="take every Δ from this row (e.g. bot in a leave-one-out study), not the previous",
    )
    args = parser.parse_args(argv)
    for source in args.inputs:
        if not source.is_dir() and not (source.is_file() and source.suffix == ".csv"):
            parser.error(
                f"{source} is not a folder or a .csv file (expected a Hydra multirun sweep "
                "folder or an earlier report.csv)"
            )
    with one_line_errors():
        md_path = write_report(args.inputs, args.out, args.delta_from)
    print(md_path.read_text())
    print(f"Wrote {md_path}, {md_path.with_suffix('.csv')}, {md_path.with_suffix('.png')}")


if __name__ == "__main__":
    main()
