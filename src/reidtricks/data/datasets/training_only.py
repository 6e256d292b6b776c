"""One-camera identity sets of PETA (TownCentre, SARC3D), for training only: every image in train
as camera 0, no query/gallery; `max_per_id` thins near-duplicate frames (docs/DATASETS.md)."""

from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path

from reidtricks.data.datasets.base import DatasetParser
from reidtricks.data.datasets.classic import list_named
from reidtricks.data.datasets.market_naming import find_dataset_dir
from reidtricks.data.splits import ReIDItem, ReIDSplits, assemble_splits
from reidtricks.validate import require_int

ONE_CAMERA = "one camera: no cross-camera query/gallery pairs"
CAMERA = 0  # the only camera (SARC3D's views are not cameras)


def spread_evenly(count: int, keep: int | None) -> list[int]:
    """Positions (0..count-1) of the `keep` frames kept out of `count` ordered ones: the middle of
    each of `keep` equal runs, floor((2i+1) count / 2 keep); all of them for None or keep >= count."""
    if keep is None or keep >= count:
        return list(range(count))
    return [(2 * i + 1) * count // (2 * keep) for i in range(keep)]


class TrainingOnlySet(DatasetParser):
    """<root>/peta/PETA dataset/<subset>/archive/ (or root = any folder down to the subset's):
    every image in train, camera 0; as a test source it is refused (`training_only`)."""

    num_splits = 1
    training_only = ONE_CAMERA  # why the datamodule refuses it as a test source
    subset: str  # PETA's folder name
    pattern: re.Pattern[str]  # group 1: the person; group 2: the frame (or view) of the image
    expected: str  # the file names, for errors
    extra_notes: tuple[str, ...] = ()  # shown under the statistics

    def __init__(
        self,
        root: str | Path,
        split: int = 0,
        combineall: bool = False,
        max_per_id: int | None = None,
    ) -> None:
        """`combineall` is accepted and changes nothing: every image is already in train."""
        super().__init__(root, split, combineall)
        if max_per_id is not None:
            require_int(f"{self.name}: max_per_id", max_per_id, minimum=1)
        self.max_per_id = max_per_id

    def frame_key(self, frame: str) -> int | str:
        """The order of one person's images for `max_per_id` (a subclass's frame or view)."""
        return frame

    def load(self) -> ReIDSplits:
        folder = find_dataset_dir(
            self.root,
            (f"peta/PETA dataset/{self.subset}", f"PETA dataset/{self.subset}", self.subset, ""),
            ("archive",),
            layout=f"peta/PETA dataset/{self.subset}/archive/{self.expected}",
        )
        people: dict[int, list[tuple[int | str, str]]] = defaultdict(list)
        for path, m in list_named(folder / "archive", self.pattern, self.expected):
            people[int(m.group(1))].append((self.frame_key(m.group(2)), str(path)))
        train: list[ReIDItem] = []
        thinned: list[tuple[str, str]] = []
        for pid, frames in sorted(people.items()):
            ordered = [path for _, path in sorted(frames)]
            kept = set(spread_evenly(len(ordered), self.max_per_id))
            for i, path in enumerate(ordered):
                if i in kept:
                    train.append((path, pid, CAMERA))
                else:
                    thinned.append((path, f"over max_per_id={self.max_per_id} for its identity"))
        notes = [f"training only ({ONE_CAMERA}); every image camera {CAMERA}", *self.extra_notes]
        if self.max_per_id is not None:
            notes.append(f"max_per_id={self.max_per_id}: at most that many images per identity")
        return assemble_splits(
            self.name, train, [], [], combineall=self.combineall, excluded=thinned, notes=notes
        )
