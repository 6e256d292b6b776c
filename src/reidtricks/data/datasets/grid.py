"""QMUL GRID (Loy et al. 2009): 250 paired people in 8 cameras, 775 gallery distractors."""

from __future__ import annotations

import re
from pathlib import Path

from reidtricks.data.datasets.base import DatasetParser
from reidtricks.data.datasets.classic import RANDOM_TRIALS, list_named, split_ids, trial_rng
from reidtricks.data.datasets.grid_partitions import MAT_NAME, read_partitions
from reidtricks.data.datasets.market_naming import find_dataset_dir
from reidtricks.data.splits import ReIDSplits, assemble_splits
from reidtricks.errors import InputError

NAME = re.compile(r"(\d{4})_(\d+)_.*\.jpe?g", re.IGNORECASE)
PATTERN = "PPPP_C_....jpeg (person number, camera 1-8, e.g. 0001_1_25004_107_32_130.jpeg)"
PARTITIONS = ("official", "random")
DISTRACTOR = 0  # gallery person 0000: no identity


class GRID(DatasetParser):
    """<root>/grid/underground_reid/{probe,gallery}/*.jpeg + features_and_partitions.mat.

    Split i: official partition i (125 training people) or, with partitions=random, a seeded
    random 125/125 split; test probe images are queries, the gallery adds all distractors."""

    name = "grid"
    num_splits = RANDOM_TRIALS
    candidates = ("grid/underground_reid", "underground_reid", "")

    def __init__(
        self,
        root: str | Path,
        split: int = 0,
        combineall: bool = False,
        partitions: str = "official",
    ) -> None:
        if partitions not in PARTITIONS:
            raise InputError(f"grid partitions={partitions!r}: expected one of {PARTITIONS}")
        super().__init__(root, split, combineall)
        self.partitions = partitions

    def load(self) -> ReIDSplits:
        folder = find_dataset_dir(
            self.root, self.candidates, ("probe", "gallery"),
            layout=f"grid/underground_reid/{{probe,gallery}}/PPPP_C_*.jpeg and {MAT_NAME}",
        )  # fmt: skip
        probe, gallery = (
            [(str(path), int(m.group(1)), int(m.group(2)) - 1) for path, m in
             list_named(folder / sub, NAME, PATTERN, suffixes=(".jpeg", ".jpg"))]
            for sub in ("probe", "gallery")
        )  # fmt: skip
        for path, _, cam in probe + gallery:
            if cam < 0:
                raise InputError(f"{path}: camera 0 in the file name, expected 1-8")
        people = sorted({pid for _, pid, _ in probe} - {DISTRACTOR})
        qualifier, notes = "", [f"split {self.split} of {self.num_splits}"]
        if self.partitions == "official":
            mat = folder / MAT_NAME
            partitions = read_partitions(mat)
            if len(partitions) != self.num_splits:
                raise InputError(f"{mat}: {len(partitions)} partitions, expected {self.num_splits}")
            train_set = set(partitions[self.split])
            if len(train_set) != len(people) // 2:  # the protocol: half the paired people
                raise InputError(
                    f"{mat}: partition {self.split + 1} names {len(train_set)} people, expected "
                    f"{len(people) // 2} (half of the {len(people)} with a probe image)"
                )
            unknown = sorted(train_set - set(people))
            if unknown:
                raise InputError(
                    f"{mat}: partition {self.split + 1} names person {unknown[0]}, "
                    f"which has no probe image in {folder / 'probe'}"
                )
            notes[0] += " (official partition)"
        else:
            train_ids, _ = split_ids(people, len(people) // 2, trial_rng(self.split))
            train_set = set(train_ids)
            qualifier = "random"
            notes[0] += f" (numpy RandomState({self.split}))"
            notes.append("random partitions: not comparable with published numbers")
        return assemble_splits(
            f"{self.name}-{qualifier}" if qualifier else self.name,
            [item for item in probe + gallery if item[1] in train_set],
            [item for item in probe if item[1] not in train_set and item[1] != DISTRACTOR],
            [item for item in gallery if item[1] not in train_set],
            combineall=self.combineall,
            distractor_pids={DISTRACTOR},
            notes=notes,
            qualifier=qualifier,
        )
