"""The constructor most dataset parsers share: where the set is, which random split, combineall."""

from __future__ import annotations

from pathlib import Path

from reidtricks.data.splits import check_split
from reidtricks.validate import require_bool


class DatasetParser:
    """`root` (paths.data_dir), `split` (0..num_splits-1, the trial) and `combineall` (every image
    of the set in train); a subclass names the set and its number of splits, and parses in load()."""

    name: str
    num_splits: int

    def __init__(self, root: str | Path, split: int = 0, combineall: bool = False) -> None:
        self.root = str(root)
        self.split = check_split(self.name, split, self.num_splits)
        self.combineall = require_bool(f"{self.name}: combineall", combineall)
