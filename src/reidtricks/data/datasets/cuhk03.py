"""CUHK03-NP (Zhong et al. 2017 new protocol): 767 train ids, detected or labeled boxes."""

from __future__ import annotations

from pathlib import Path

from reidtricks.data.datasets.base import DatasetParser
from reidtricks.data.datasets.market_naming import (
    MARKET_SPLIT_DIRS,
    find_dataset_dir,
    read_market_style,
)
from reidtricks.data.splits import ReIDSplits
from reidtricks.errors import InputError

VARIANTS = ("detected", "labeled")


class CUHK03NP(DatasetParser):
    """<root>/cuhk03-np/{detected,labeled}/ with Market-style folders and names."""

    name = "cuhk03"
    num_splits = 1

    def __init__(
        self,
        root: str | Path,
        variant: str = "detected",
        split: int = 0,
        combineall: bool = False,
    ) -> None:
        if variant not in VARIANTS:
            raise InputError(f"cuhk03 variant={variant!r}: expected one of {VARIANTS}")
        super().__init__(root, split, combineall)
        self.variant = variant

    def load(self) -> ReIDSplits:
        other = Path(self.root).name
        if other in VARIANTS and other != self.variant:
            raise InputError(f"{self.root} is the {other!r} folder but variant={self.variant!r}")
        folder = find_dataset_dir(
            self.root,
            (f"cuhk03-np/{self.variant}", self.variant, ""),
            MARKET_SPLIT_DIRS,
            layout=f"cuhk03-np/{self.variant}/{{bounding_box_train,query,bounding_box_test}}",
        )
        return read_market_style(f"{self.name}-{self.variant}", folder, combineall=self.combineall)
