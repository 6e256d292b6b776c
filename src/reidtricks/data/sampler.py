"""P x K identity batch sampler (docs/METHOD.md "P x K sampling"), made rank-aware for DDP."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import torch.distributed as dist
from torch.utils.data import Sampler

from reidtricks.errors import InputError
from reidtricks.validate import require_int

_SEED_MOD = 2**64


def _check_pk(p: int, k: int) -> None:
    require_int("data.sampler.p", p, minimum=1)  # identities per batch
    require_int("data.sampler.k", k, minimum=1)  # images per identity


def _group_indices(pids: Sequence[int]) -> list[np.ndarray]:
    """Dataset indices of each identity, identities in sorted order, indices ascending."""
    arr = np.asarray(pids)
    if arr.ndim != 1 or (arr.size and not np.issubdtype(arr.dtype, np.integer)):
        raise InputError(
            f"PKBatchSampler pids must be a flat sequence of integer identity labels, "
            f"got shape {arr.shape} dtype {arr.dtype}"
        )
    _, inverse, counts = np.unique(arr, return_inverse=True, return_counts=True)
    order = np.argsort(inverse, kind="stable")
    return np.split(order, np.cumsum(counts)[:-1]) if arr.size else []


def _check_enough_ids(num_ids: int, p: int, num_replicas: int) -> None:
    need = p * num_replicas
    if num_ids < need:
        raise InputError(
            f"P x K batching needs at least P*W = {need} identities (P={p} per rank x "
            f"W={num_replicas} ranks), the training set has {num_ids}; lower data.sampler.p"
        )


def _plan_from_groups(
    groups: list[np.ndarray], p: int, k: int, num_replicas: int, seed: int, epoch: int
) -> list[list[list[int]]]:
    rng = np.random.default_rng(np.random.SeedSequence([seed % _SEED_MOD, epoch % _SEED_MOD]))
    # Each identity's shuffled images cut into K-sized chunks (rows); the remainder is dropped.
    chunks: list[np.ndarray] = []
    for idx in groups:
        if len(idx) < k:
            chunks.append(rng.choice(idx, size=k, replace=True).reshape(1, k))
        else:
            n = len(idx) // k
            chunks.append(rng.permutation(idx)[: n * k].reshape(n, k))
    available = np.array([len(c) for c in chunks], dtype=np.int64)
    used = np.zeros_like(available)
    need = p * num_replicas
    steps: list[list[list[int]]] = []
    while True:
        candidates = np.flatnonzero(used < available)
        if len(candidates) < need:
            return steps
        chosen = rng.choice(candidates, size=need, replace=False)
        rows = [chunks[g][used[g]] for g in chosen]
        used[chosen] += 1
        steps.append(
            [np.concatenate(rows[r * p : (r + 1) * p]).tolist() for r in range(num_replicas)]
        )


def pk_epoch_plan(
    pids: Sequence[int], p: int, k: int, num_replicas: int = 1, seed: int = 0, epoch: int = 0
) -> list[list[list[int]]]:
    """All ranks' batches of one epoch as steps x ranks x (P*K dataset indices).

    Pure function of its arguments: every rank computes the same plan and keeps its own column.
    """
    _check_pk(p, k)
    if num_replicas < 1:
        raise InputError(f"PKBatchSampler num_replicas must be >= 1, got {num_replicas}")
    groups = _group_indices(pids)
    _check_enough_ids(len(groups), p, num_replicas)
    return _plan_from_groups(groups, p, k, num_replicas, seed, epoch)


class PKBatchSampler(Sampler[list[int]]):
    """Yields this rank's P x K batches (P distinct identities, K images each) for the epoch.

    Per epoch (`set_epoch`) all ranks build the same global plan from (seed, epoch): each step
    draws P*W identities with chunks left and rank r takes identities [r*P, (r+1)*P). Ranks thus
    see disjoint identities within a step and the same number of batches. That number is exact
    per epoch but can differ by a few batches between epochs (the identity draws are random).
    """

    def __init__(
        self,
        pids: Sequence[int],
        p: int,
        k: int,
        seed: int = 0,
        num_replicas: int | None = None,
        rank: int | None = None,
    ) -> None:
        _check_pk(p, k)
        distributed = dist.is_available() and dist.is_initialized()
        if num_replicas is None:
            num_replicas = dist.get_world_size() if distributed else 1
        if rank is None:
            rank = dist.get_rank() if distributed else 0
        if num_replicas < 1:
            raise InputError(f"PKBatchSampler num_replicas must be >= 1, got {num_replicas}")
        if not 0 <= rank < num_replicas:
            raise InputError(f"PKBatchSampler rank must be in [0, {num_replicas}), got {rank}")
        self._groups = _group_indices(pids)
        _check_enough_ids(len(self._groups), p, num_replicas)
        self.p, self.k, self.seed = int(p), int(k), int(seed)
        self.num_replicas, self.rank = int(num_replicas), int(rank)
        self.batch_size = self.p * self.k
        self.epoch = 0
        self._batches: list[list[int]] | None = None

    @property
    def sampler(self) -> PKBatchSampler:
        """Self: Lightning calls `set_epoch` on `batch_sampler.sampler`, so expose it there."""
        return self

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose plan `__iter__` and `__len__` use (call before each epoch)."""
        if epoch < 0:
            raise InputError(f"PKBatchSampler epoch must be >= 0, got {epoch}")
        if epoch != self.epoch:
            self.epoch = int(epoch)
            self._batches = None

    def _epoch_batches(self) -> list[list[int]]:
        if self._batches is None:
            plan = _plan_from_groups(
                self._groups, self.p, self.k, self.num_replicas, self.seed, self.epoch
            )
            self._batches = [step[self.rank] for step in plan]
        return self._batches

    def __len__(self) -> int:
        return len(self._epoch_batches())

    def __iter__(self) -> Iterator[list[int]]:
        yield from (list(b) for b in self._epoch_batches())
