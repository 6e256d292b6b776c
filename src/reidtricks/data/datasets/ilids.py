"""QMUL i-LIDS (Zheng et al. 2009): 119 people, 2-8 images each, no camera labels."""

from __future__ import annotations

import re
from collections import defaultdict

from reidtricks.data.datasets.base import DatasetParser
from reidtricks.data.datasets.classic import RANDOM_TRIALS, list_named, split_ids, trial_rng
from reidtricks.data.datasets.market_naming import find_dataset_dir
from reidtricks.data.splits import ReIDItem, ReIDSplits, assemble_splits

NAME = re.compile(r"(\d{4})(\d{3})\.jpg", re.IGNORECASE)
PATTERN = "PPPPSSS.jpg (person, image index; e.g. 0001001.jpg)"


class ILIDS(DatasetParser):
    """<root>/ilids/i-LIDS_Pedestrian/Persons/PPPPSSS.jpg; camid = SSS - 1 (image index).

    Split i (RandomState(i)): 59 train / 60 test people; per test person one random image is the
    query, one other the gallery; their other images are excluded (docs/METHOD.md)."""

    name = "ilids"
    num_splits = RANDOM_TRIALS
    candidates = ("ilids/i-LIDS_Pedestrian", "i-LIDS_Pedestrian", "ilids", "")

    def load(self) -> ReIDSplits:
        folder = find_dataset_dir(
            self.root, self.candidates, ("Persons",),
            layout="ilids/i-LIDS_Pedestrian/Persons/PPPPSSS.jpg",
        )  # fmt: skip
        people: dict[int, list[ReIDItem]] = defaultdict(list)
        for path, m in list_named(folder / "Persons", NAME, PATTERN):
            # A camera id per image index: a query and its gallery image (two different images
            # of one person) never share it, so the same-camera filter removes no true match.
            people[int(m.group(1))].append((str(path), int(m.group(1)), int(m.group(2)) - 1))
        rng = trial_rng(self.split)
        train_ids, test_ids = split_ids(sorted(people), len(people) // 2, rng)
        query, gallery, unused = [], [], []
        for pid in test_ids:  # after the identity split, the same RandomState picks the pair
            images = people[pid]
            if len(images) < 2:
                unused += [(item, "single image: no query/gallery pair") for item in images]
                continue
            q, g = rng.choice(len(images), size=2, replace=False)
            query.append(images[q])
            gallery.append(images[g])
            unused += [
                (item, "test person's image beyond the drawn query/gallery pair")
                for i, item in enumerate(images)
                if i not in (q, g)
            ]
        return assemble_splits(
            self.name,
            [item for pid in train_ids for item in people[pid]],
            query,
            gallery,
            combineall=self.combineall,
            unused=unused,
            notes=(f"split {self.split} of {self.num_splits} (numpy RandomState({self.split}))",),
        )
