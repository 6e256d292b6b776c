"""Per-sample random streams: the augmentation of sample i in epoch e is a pure function of
(seed, e, i), whatever the number of DataLoader workers, persistent or not, and across resumes."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from torch.utils.data import Sampler

_MOD = 2**64


def sample_generator(seed: int, epoch: int, index: int) -> torch.Generator:
    """A CPU torch.Generator seeded from a hash (numpy SeedSequence) of (seed, epoch, index)."""
    words = [int(seed) % _MOD, int(epoch) % _MOD, int(index) % _MOD]
    state = np.random.SeedSequence(words).generate_state(1, dtype=np.uint64)[0]
    return torch.Generator().manual_seed(int(state))


class EpochTaggedBatches(Sampler[list[tuple[int, int]]]):
    """Wraps a batch sampler with `set_epoch`; yields its batches as (index, epoch) pairs.

    The epoch travels with the indices from the main process, so persistent workers, which never
    see attribute changes made after they start, still know which epoch a sample belongs to.
    """

    def __init__(self, batch_sampler: Any) -> None:
        self.batch_sampler = batch_sampler

    @property
    def sampler(self) -> Any:
        """The wrapped sampler: Lightning calls `set_epoch` on `batch_sampler.sampler`."""
        return self.batch_sampler

    def set_epoch(self, epoch: int) -> None:
        """Forward the epoch to the wrapped sampler."""
        self.batch_sampler.set_epoch(epoch)

    def __len__(self) -> int:
        return len(self.batch_sampler)

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        epoch = int(self.batch_sampler.epoch)
        for batch in self.batch_sampler:
            yield [(int(i), epoch) for i in batch]
