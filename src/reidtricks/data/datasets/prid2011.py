"""PRID2011 single-shot (Hirzer et al. 2011): 200 people in both cameras, the rest in one."""

from __future__ import annotations

import re

from reidtricks.data.datasets.base import DatasetParser
from reidtricks.data.datasets.classic import RANDOM_TRIALS, list_named, split_ids, trial_rng
from reidtricks.data.datasets.market_naming import find_dataset_dir
from reidtricks.data.splits import ReIDItem, ReIDSplits, assemble_splits
from reidtricks.errors import InputError

CAMERAS = ("cam_a", "cam_b")  # camid 0, 1
NAME = re.compile(r"person_(\d{4})\.png", re.IGNORECASE)
PATTERN = "person_NNNN.png (e.g. person_0001.png)"
SHARED = 200  # persons 0001-0200 are the same people in both cameras
CAM_A_ONLY_OFFSET = 10000  # pid of cam_a person N > 200 (a different person than cam_b's N)


class PRID2011(DatasetParser):
    """<root>/prid2011/prid_2011/single_shot/{cam_a,cam_b}/person_NNNN.png.

    Split i (RandomState(i)): persons 1-200 split 100/100; queries = cam_a images of the test
    persons, gallery = their cam_b images plus every cam_b-only person (docs/METHOD.md)."""

    name = "prid2011"
    num_splits = RANDOM_TRIALS
    candidates = ("prid2011/prid_2011/single_shot", "prid_2011/single_shot", "single_shot", "")

    def load(self) -> ReIDSplits:
        folder = find_dataset_dir(
            self.root, self.candidates, CAMERAS,
            layout="prid2011/prid_2011/single_shot/{cam_a,cam_b}/person_NNNN.png",
        )  # fmt: skip
        numbers = [
            [(str(path), int(m.group(1))) for path, m in list_named(folder / cam, NAME, PATTERN)]
            for cam in CAMERAS
        ]
        shared = [{n for _, n in cam if n <= SHARED} for cam in numbers]
        if shared[0] != shared[1]:
            odd = sorted(shared[0] ^ shared[1])[0]
            raise InputError(
                f"{folder}: person_{odd:04d} is in one camera only; persons 0001-{SHARED:04d} "
                "must be in both cam_a and cam_b"
            )
        cam_a = [(p, n if n <= SHARED else n + CAM_A_ONLY_OFFSET, 0) for p, n in numbers[0]]
        cam_b: list[ReIDItem] = [(p, n, 1) for p, n in numbers[1]]
        train_ids, test_ids = split_ids(
            sorted(shared[0]), len(shared[0]) // 2, trial_rng(self.split)
        )
        train_set, test_set = set(train_ids), set(test_ids)
        return assemble_splits(
            self.name,
            [item for item in cam_a + cam_b if item[1] in train_set],
            [item for item in cam_a if item[1] in test_set],
            [item for item in cam_b if item[1] in test_set or item[1] > SHARED],
            combineall=self.combineall,
            unused=[
                (item, "seen by cam_a only (not used by the protocol)")
                for item in cam_a
                if item[1] > SHARED
            ],
            notes=(f"split {self.split} of {self.num_splits} (numpy RandomState({self.split}))",),
        )
