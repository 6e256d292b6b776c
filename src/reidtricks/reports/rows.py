"""A study table's row: one setting (or a test-time variant of it) over seeds, per test set."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field

SHOWN = ("rank1", "mAP")
MEAN_OF_SETS = "mean"  # the column of a study on unseen sets: each run's mean over them


@dataclass
class Row:
    """One table row: a setting (or a test-time variant of it) over seeds, on every test set."""

    name: str
    trained_on: str = ""  # the training set(s); deltas compare rows trained on the same data
    values: dict[str, dict[str, list[float]]] = field(
        default_factory=dict
    )  # set -> metric -> seeds
    seeds: list[int] = field(default_factory=list)

    def in_domain(self, test_set: str) -> bool:
        """Trained on `test_set` (or training set unknown): the paper's rows are all in-domain."""
        return self.trained_on in ("", test_set)

    def mean(self, test_set: str, key: str) -> float:
        vals = self.values.get(test_set, {}).get(key, [])
        return statistics.fmean(vals) if vals else float("nan")

    def std(self, test_set: str, key: str) -> float:
        vals = self.values.get(test_set, {}).get(key, [])
        return statistics.stdev(vals) if len(vals) > 1 else float("nan")

    def change_from(self, other: Row, test_set: str, key: str) -> tuple[float, float]:
        """This row's mean minus `other`'s, and the seed noise sqrt(std² + std_other²) (NaN
        when either row has one seed)."""
        delta = self.mean(test_set, key) - other.mean(test_set, key)
        return delta, math.hypot(self.std(test_set, key), other.std(test_set, key))


def test_set_names(rows: Sequence[Row]) -> list[str]:
    """The test sets of the rows, in the order they first appear."""
    return list(dict.fromkeys(name for row in rows for name in row.values))
