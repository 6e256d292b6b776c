"""Market-1501 (Zheng et al. 2015): 751 train ids, 750 test ids, 6 cameras."""

from __future__ import annotations

from pathlib import Path

from reidtricks.data.datasets.base import DatasetParser
from reidtricks.data.datasets.market_naming import (
    MARKET_SPLIT_DIRS,
    find_dataset_dir,
    read_market_style,
)
from reidtricks.data.splits import ReIDSplits


class Market1501(DatasetParser):
    """<root>/market1501/ or <root>/Market-1501-v15.09.15/ (or root itself) with the 3 folders."""

    name = "market1501"
    num_splits = 1
    candidates = ("", "market1501", "Market-1501-v15.09.15", "market1501/Market-1501-v15.09.15")

    def dataset_dir(self) -> Path:
        return find_dataset_dir(
            self.root, self.candidates, MARKET_SPLIT_DIRS,
            layout="market1501/{bounding_box_train,query,bounding_box_test}",
        )  # fmt: skip

    def load(self) -> ReIDSplits:
        return read_market_style(self.name, self.dataset_dir(), combineall=self.combineall)
