"""Any folder with Market-style file names in train / query / gallery sub-folders."""

from __future__ import annotations

from pathlib import Path

from reidtricks.data.datasets.base import DatasetParser
from reidtricks.data.datasets.market_naming import find_dataset_dir, read_market_style
from reidtricks.data.splits import ReIDSplits


class FolderDataset(DatasetParser):
    """root/{train_dir,query_dir,gallery_dir} holding PPPP_cC*.jpg files; the training folder may
    be missing or empty (a test-only folder: empty train split)."""

    name = "folder"
    num_splits = 1

    def __init__(
        self,
        root: str | Path,
        train_dir: str = "bounding_box_train",
        query_dir: str = "query",
        gallery_dir: str = "bounding_box_test",
        split: int = 0,
        combineall: bool = False,
    ) -> None:
        super().__init__(root, split, combineall)
        self.dirs = (train_dir, query_dir, gallery_dir)

    def load(self) -> ReIDSplits:
        layout = f"{{{','.join(self.dirs)}}} ({self.dirs[0]} optional)"
        folder = find_dataset_dir(self.root, ("",), self.dirs[1:], layout=layout)
        return read_market_style(
            Path(self.root).name or self.name, folder, *self.dirs,
            combineall=self.combineall, train_optional=True,
        )  # fmt: skip
