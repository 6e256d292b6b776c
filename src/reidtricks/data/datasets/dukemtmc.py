"""DukeMTMC-reID (Ristani et al. 2016; Zheng et al. 2017): 702 train ids, 8 cameras."""

from __future__ import annotations

from reidtricks.data.datasets.base import DatasetParser
from reidtricks.data.datasets.market_naming import (
    MARKET_SPLIT_DIRS,
    find_dataset_dir,
    read_market_style,
)
from reidtricks.data.splits import ReIDSplits


class DukeMTMC(DatasetParser):
    """<root>/dukemtmc-reid/DukeMTMC-reID/ or <root>/DukeMTMC-reID/ (or root itself)."""

    name = "dukemtmc"
    num_splits = 1
    candidates = ("", "dukemtmc-reid/DukeMTMC-reID", "DukeMTMC-reID", "dukemtmc-reid")

    def load(self) -> ReIDSplits:
        folder = find_dataset_dir(
            self.root, self.candidates, MARKET_SPLIT_DIRS,
            layout="dukemtmc-reid/DukeMTMC-reID/{bounding_box_train,query,bounding_box_test}",
        )  # fmt: skip
        return read_market_style(self.name, folder, combineall=self.combineall)
