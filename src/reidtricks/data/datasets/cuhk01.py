"""CUHK01 (Li et al. 2012): 971 people, 2 images in each of two camera views."""

from __future__ import annotations

import re

from reidtricks.data.datasets.base import DatasetParser
from reidtricks.data.datasets.classic import RANDOM_TRIALS, list_named, split_ids, trial_rng
from reidtricks.data.datasets.market_naming import find_dataset_dir
from reidtricks.data.splits import ReIDItem, ReIDSplits, assemble_splits
from reidtricks.errors import InputError

NAME = re.compile(r"(\d{4})(\d{3})\.png", re.IGNORECASE)
PATTERN = "NNNNMMM.png (person, image 001-004; e.g. 0001001.png)"
CAMERA_A_IMAGES = (1, 2)  # MMM 001-002: camera A (camid 0); 003-004: camera B (camid 1)


class CUHK01(DatasetParser):
    """<root>/cuhk01/campus/NNNNMMM.png.

    Split i (RandomState(i)): 485 train / 486 test people; queries = the test people's camera A
    images, gallery = their camera B images."""

    name = "cuhk01"
    num_splits = RANDOM_TRIALS
    candidates = ("cuhk01", "")

    def load(self) -> ReIDSplits:
        folder = (
            find_dataset_dir(
                self.root, self.candidates, ("campus",), layout="cuhk01/campus/NNNNMMM.png"
            )
            / "campus"
        )
        items: list[ReIDItem] = []
        for path, m in list_named(folder, NAME, PATTERN, suffixes=(".png",)):
            image = int(m.group(2))
            if not 1 <= image <= 4:
                raise InputError(f"{path}: image number {image:03d}, expected 001-004")
            items.append((str(path), int(m.group(1)), int(image not in CAMERA_A_IMAGES)))
        people = sorted({pid for _, pid, _ in items})
        train_ids, test_ids = split_ids(people, len(people) // 2, trial_rng(self.split))
        train_set, test_set = set(train_ids), set(test_ids)
        return assemble_splits(
            self.name,
            [item for item in items if item[1] in train_set],
            [item for item in items if item[1] in test_set and item[2] == 0],
            [item for item in items if item[1] in test_set and item[2] == 1],
            combineall=self.combineall,
            notes=(f"split {self.split} of {self.num_splits} (numpy RandomState({self.split}))",),
        )
