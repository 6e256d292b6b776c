"""Rows read back from an earlier report.csv, to pool a study whose job folders are gone (only its
report was kept) with new jobs: each CSV row must hold one seed, whose values the CSV gives to
0.1 points."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path

from reidtricks.errors import InputError
from reidtricks.reports.rows import Row

METRICS = ("rank1", "mAP", "mINP")


def _percent(text: str, where: str) -> float | None:
    """`22.3` -> 0.223; `-` or empty -> None; anything else (e.g. `22.3 ± 1.0`) is refused."""
    text = text.strip()
    if text in ("", "-"):
        return None
    try:
        return float(text) / 100
    except ValueError:
        raise InputError(
            f"{where}: {text!r} is not one seed's value (expected a number in % such as 22.3)"
        ) from None


def rows_from_report_csv(path: Path) -> list[Row]:
    """The rows of a report.csv written by `python -m reidtricks.report`, one seed each."""
    try:
        with open(path, newline="") as fh:
            records = list(csv.DictReader(fh))
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise InputError(f"{path}: cannot read it as a report.csv ({err})") from err
    if not records or "row" not in records[0] or "seeds" not in records[0]:
        raise InputError(f"{path}: not a report.csv (expected the columns row, seeds, ...)")
    columns = list(records[0])
    single = "test set" in columns  # one test set: plain `rank1`, `mAP`, ...
    rows = []
    for line, record in enumerate(records, start=2):
        where = f"{path}:{line}"
        if record["seeds"].strip() != "1":
            raise InputError(
                f"{where}: row {record['row']} has {record['seeds']} seeds; only one-seed rows "
                "can be pooled (a mean over seeds does not give back its seeds' values)"
            )
        row = Row(record["row"], record.get("trained on", ""), seeds=[-1])
        test_sets = (
            [record["test set"]]
            if single
            else [c[: -len(" rank1")] for c in columns if c.endswith(" rank1") and "Δ" not in c]
        )
        for test_set in test_sets:
            prefix = "" if single else f"{test_set} "
            for key in METRICS:
                value = _percent(record.get(f"{prefix}{key}", ""), f"{where} {prefix}{key}")
                if value is not None:
                    row.values.setdefault(test_set, {})[key] = [value]
        rows.append(row)
    return rows


def pool_rows(rows: Sequence[Row], more: Sequence[Row]) -> list[Row]:
    """`rows` with the seeds of `more` added to the row of the same name and training set; rows
    of `more` without a partner follow at the end."""
    pooled = [Row(r.name, r.trained_on, {t: {k: list(v) for k, v in m.items()}
                                        for t, m in r.values.items()}, list(r.seeds))
              for r in rows]  # fmt: skip
    by_key = {(r.name, r.trained_on): r for r in pooled}
    for row in more:
        target = by_key.get((row.name, row.trained_on))
        if target is None:
            target = by_key[(row.name, row.trained_on)] = Row(row.name, row.trained_on)
            pooled.append(target)
        for test_set, metrics in row.values.items():
            for key, values in metrics.items():
                target.values.setdefault(test_set, {}).setdefault(key, []).extend(values)
        target.seeds.extend(row.seeds)
    return pooled
