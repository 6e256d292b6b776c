"""Market-1501 (Zheng et al. 2015): 751 train ids, 750 test ids, 6 cameras."""

from __future__ import annotations

from pathlib import Path

from reidtricks.data.datasets.market_naming import find_dataset_dir, read_market_folder
from reidtricks.data.splits import ReIDSplits, relabel

MARKET_SPLIT_DIRS = ("bounding_box_train", "query", "bounding_box_test")


def read_market_style(
    name: str,
    folder: Path,
    train_dir: str = "bounding_box_train",
    query_dir: str = "query",
    gallery_dir: str = "bounding_box_test",
) -> ReIDSplits:
    """Parse three Market-style folders: junk (pid -1) dropped, distractors (pid 0) kept."""
    return ReIDSplits(
        name=name,
        train=relabel(read_market_folder(folder / train_dir)),
        query=read_market_folder(folder / query_dir),
        gallery=read_market_folder(folder / gallery_dir),
    )


class Market1501:
    """<root>/market1501/ or <root>/Market-1501-v15.09.15/ (or root itself) with the 3 folders."""

    name = "market1501"
    candidates = ("", "market1501", "Market-1501-v15.09.15", "market1501/Market-1501-v15.09.15")

    def __init__(self, root: str | Path) -> None:
        self.root = str(root)

    def dataset_dir(self) -> Path:
        return find_dataset_dir(
            self.root, self.candidates, MARKET_SPLIT_DIRS,
            layout="market1501/{bounding_box_train,query,bounding_box_test}",
        )  # fmt: skip

    def load(self) -> ReIDSplits:
        return read_market_style(self.name, self.dataset_dir())
