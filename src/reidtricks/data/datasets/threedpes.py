"""3DPeS re-ID snapshots (Baltieri et al. 2011): 193 people, 8 cameras not in the names."""

from __future__ import annotations

import re
from collections import defaultdict

from reidtricks.data.datasets.base import DatasetParser
from reidtricks.data.datasets.classic import RANDOM_TRIALS, list_named, split_ids, trial_rng
from reidtricks.data.datasets.market_naming import find_dataset_dir
from reidtricks.data.splits import ReIDItem, ReIDSplits, assemble_splits

NAME = re.compile(r"(\d+)_(?:B_)?(\d+)_FRAME_(\d+)_RGB\.(?:png|bmp)", re.IGNORECASE)
PATTERN = "<person>_<seq>_FRAME_<frame>_RGB.png or .bmp (e.g. 100_3_FRAME_26_RGB.png)"
QUERY_CAM, GALLERY_CAM = 0, 1  # no camera in the names: query 0 / gallery 1, train 0


class ThreeDPeS(DatasetParser):
    """<root>/3dpes/3DPeS/RGB/<person>_<seq>_FRAME_<frame>_RGB.png (or .bmp).

    Split i (RandomState(i)): the people with >= 2 images split in half; per test person one
    random image is the gallery, the others queries; single-image people are excluded."""

    name = "threedpes"
    num_splits = RANDOM_TRIALS
    candidates = ("3dpes/3DPeS", "3DPeS", "3dpes", "")

    def load(self) -> ReIDSplits:
        folder = find_dataset_dir(
            self.root, self.candidates, ("RGB",),
            layout="3dpes/3DPeS/RGB/<person>_<seq>_FRAME_<frame>_RGB.png",
        )  # fmt: skip
        people: dict[int, list[str]] = defaultdict(list)
        for path, m in list_named(folder / "RGB", NAME, PATTERN, suffixes=(".png", ".bmp")):
            people[int(m.group(1))].append(str(path))
        usable = sorted(pid for pid, paths in people.items() if len(paths) >= 2)
        unused: list[tuple[ReIDItem, str]] = [
            ((paths[0], pid, QUERY_CAM), "single image: no query/gallery pair")
            for pid, paths in sorted(people.items())
            if len(paths) < 2
        ]
        rng = trial_rng(self.split)
        train_ids, test_ids = split_ids(usable, len(usable) // 2, rng)
        query, gallery = [], []
        for pid in test_ids:  # after the identity split, the same RandomState picks the gallery
            paths = people[pid]
            pick = rng.randint(len(paths))
            gallery.append((paths[pick], pid, GALLERY_CAM))
            query += [(p, pid, QUERY_CAM) for i, p in enumerate(paths) if i != pick]
        return assemble_splits(
            self.name,
            [(p, pid, QUERY_CAM) for pid in train_ids for p in people[pid]],
            query,
            gallery,
            combineall=self.combineall,
            unused=unused,
            notes=(f"split {self.split} of {self.num_splits} (numpy RandomState({self.split}))",),
        )
