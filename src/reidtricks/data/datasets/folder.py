"""Any folder with Market-style file names in train / query / gallery sub-folders."""

from __future__ import annotations

from pathlib import Path

from reidtricks.data.datasets.market_naming import find_dataset_dir, read_market_style
from reidtricks.data.splits import ReIDSplits


class FolderDataset:
    """root/{train_dir,query_dir,gallery_dir} holding PPPP_cC*.jpg files."""

    name = "folder"

    def __init__(
        self,
        root: str | Path,
        train_dir: str = "bounding_box_train",
        query_dir: str = "query",
        gallery_dir: str = "bounding_box_test",
    ) -> None:
        self.root = str(root)
        self.dirs = (train_dir, query_dir, gallery_dir)

    def load(self) -> ReIDSplits:
        folder = find_dataset_dir(self.root, ("",), self.dirs, layout=f"{{{','.join(self.dirs)}}}")
        return read_market_style(Path(self.root).name or self.name, folder, *self.dirs)
