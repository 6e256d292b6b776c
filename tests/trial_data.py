"""Small dataset classes for the tests of trials and multi-source training, on the tiny synthetic
set: `TrialSynthetic` has random identity splits (like VIPeR), `ListSource` holds given lists."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from reidtricks.data.datasets import SyntheticReID
from reidtricks.data.splits import ReIDItem, ReIDSplits, relabel


class TrialSynthetic:
    """The tiny synthetic set with `num_splits` random splits: split s keeps a random half of the
    test identities (drawn from seed s) in query and gallery; combineall trains on every image."""

    name = "trialsyn"
    num_splits = 3

    def __init__(
        self,
        root: str | Path,
        split: int = 0,
        combineall: bool = False,
        preset: str = "tiny",
        seed: int = 0,
    ) -> None:
        if not 0 <= split < self.num_splits:
            raise ValueError(f"split={split}")
        self.root, self.split, self.combineall = str(root), int(split), bool(combineall)
        self.preset, self.seed = preset, int(seed)

    def load(self) -> ReIDSplits:
        base = SyntheticReID(self.root, preset=self.preset, seed=self.seed).load()
        ids = sorted({pid for _, pid, _ in base.query})
        rng = np.random.default_rng(self.split)
        kept = set(rng.choice(ids, size=len(ids) // 2, replace=False).tolist())
        query = [item for item in base.query if item[1] in kept]
        gallery = [item for item in base.gallery if item[1] in kept]
        train = base.train
        if self.combineall:
            train = relabel(base.train + [(p, pid + 10_000, c) for p, pid, c in query + gallery])
        return ReIDSplits(self.name, train, query, gallery)


class ListSource:
    """A dataset whose train / query / gallery lists are given (pids as the caller writes them)."""

    def __init__(
        self,
        name: str,
        train: list[ReIDItem],
        query: list[ReIDItem] | None = None,
        gallery: list[ReIDItem] | None = None,
    ) -> None:
        self.name, self.train = name, list(train)
        self.query, self.gallery = list(query or []), list(gallery or [])

    def load(self) -> ReIDSplits:
        return ReIDSplits(self.name, relabel(self.train), self.query, self.gallery)
