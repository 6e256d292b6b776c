"""VIPeR (Gray et al. 2007): 632 people, one image per camera; 316/316 random splits."""

from __future__ import annotations

import re

from reidtricks.data.datasets.base import DatasetParser
from reidtricks.data.datasets.classic import RANDOM_TRIALS, list_named, split_ids, trial_rng
from reidtricks.data.datasets.market_naming import find_dataset_dir
from reidtricks.data.splits import ReIDItem, ReIDSplits, assemble_splits

CAMERAS = ("cam_a", "cam_b")  # camid 0, 1
NAME = re.compile(r"(\d{3})_(\d+)\.bmp", re.IGNORECASE)
PATTERN = "NNN_ANGLE.bmp (e.g. 001_45.bmp)"


class VIPeR(DatasetParser):
    """<root>/viper/VIPeR/{cam_a,cam_b}/NNN_ANGLE.bmp; people paired across cameras by NNN.

    Split i (RandomState(i)): half the people train, the others test with cam_a images as
    queries and cam_b images as the gallery (docs/METHOD.md)."""

    name = "viper"
    num_splits = RANDOM_TRIALS
    candidates = ("viper/VIPeR", "VIPeR", "viper", "")

    def load(self) -> ReIDSplits:
        folder = find_dataset_dir(
            self.root, self.candidates, CAMERAS, layout="viper/VIPeR/{cam_a,cam_b}/NNN_ANGLE.bmp"
        )
        by_cam: list[list[ReIDItem]] = [
            [(str(path), int(m.group(1)), camid) for path, m in
             list_named(folder / cam, NAME, PATTERN, suffixes=(".bmp",))]
            for camid, cam in enumerate(CAMERAS)
        ]  # fmt: skip
        both = {pid for _, pid, _ in by_cam[0]} & {pid for _, pid, _ in by_cam[1]}
        items = by_cam[0] + by_cam[1]
        unused = [(item, "seen by one camera only") for item in items if item[1] not in both]
        train_ids, test_ids = split_ids(sorted(both), len(both) // 2, trial_rng(self.split))
        train_set, test_set = set(train_ids), set(test_ids)
        return assemble_splits(
            self.name,
            [item for item in items if item[1] in train_set],
            [item for item in by_cam[0] if item[1] in test_set],
            [item for item in by_cam[1] if item[1] in test_set],
            combineall=self.combineall,
            unused=unused,
            notes=(f"split {self.split} of {self.num_splits} (numpy RandomState({self.split}))",),
        )
