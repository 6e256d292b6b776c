"""CAVIAR4REID (Cheng et al. 2011): 72 people, 50 seen by two cameras, 22 by one."""

from __future__ import annotations

import re
from collections import defaultdict

from reidtricks.data.datasets.base import DatasetParser
from reidtricks.data.datasets.classic import RANDOM_TRIALS, list_named, split_ids, trial_rng
from reidtricks.data.datasets.market_naming import find_dataset_dir
from reidtricks.data.splits import ReIDItem, ReIDSplits, assemble_splits

NAME = re.compile(r"(\d{4})(\d{3})\.jpg", re.IGNORECASE)
PATTERN = "PPPPSSS.jpg (person, image index; e.g. 0003005.jpg)"
FIRST_CAMERA_LAST_IMAGE = 10  # SSS 001-010: camera 1 (camid 0); 011-020: camera 2 (camid 1)


class CAVIAR4REID(DatasetParser):
    """<root>/caviar4reid/CAVIARa/PPPPSSS.jpg; camera by image index (observed, see METHOD.md).

    Split i (RandomState(i)), our protocol: the two-camera people split in half, test queries =
    their camera-1 images, gallery = camera-2 images; one-camera people always train."""

    name = "caviar4reid"
    num_splits = RANDOM_TRIALS
    candidates = ("caviar4reid", "CAVIAR4REID", "")

    def load(self) -> ReIDSplits:
        folder = find_dataset_dir(
            self.root, self.candidates, ("CAVIARa",), layout="caviar4reid/CAVIARa/PPPPSSS.jpg"
        )
        people: dict[int, list[ReIDItem]] = defaultdict(list)
        for path, m in list_named(folder / "CAVIARa", NAME, PATTERN):
            pid, index = int(m.group(1)), int(m.group(2))
            people[pid].append((str(path), pid, int(index > FIRST_CAMERA_LAST_IMAGE)))
        two_cams = sorted(pid for pid, items in people.items() if {c for *_, c in items} == {0, 1})
        one_cam = sorted(set(people) - set(two_cams))
        train_ids, test_ids = split_ids(two_cams, len(two_cams) // 2, trial_rng(self.split))
        test = [item for pid in test_ids for item in people[pid]]
        return assemble_splits(
            self.name,
            [item for pid in sorted(train_ids + one_cam) for item in people[pid]],
            [item for item in test if item[2] == 0],
            [item for item in test if item[2] == 1],
            combineall=self.combineall,
            notes=(
                f"split {self.split} of {self.num_splits} (numpy RandomState({self.split})); "
                "protocol chosen by reidtricks (docs/METHOD.md)",
            ),
        )
