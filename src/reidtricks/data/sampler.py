"""P x K identity batch sampler (docs/METHOD.md "P x K sampling"), made rank-aware for DDP, with an
optional per-source balance of the identities (docs/METHOD.md "Per-source balance")."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import torch.distributed as dist
from torch.utils.data import Sampler

from reidtricks.data.source_balance import BALANCES, NONE, source_shares, step_quotas
from reidtricks.errors import InputError
from reidtricks.validate import require_choice, require_int

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


def _group_sources(
    pids: Sequence[int], groups: list[np.ndarray], sources: Sequence[int] | None
) -> np.ndarray:
    """The source (0..S-1, in sorted order of the labels) of each identity; one-line error for a
    `sources` list that does not match the pids or an identity with images from two sources."""
    if sources is None:
        return np.zeros(len(groups), dtype=np.int64)
    arr = np.asarray(sources)
    if arr.shape != (len(pids),) or (arr.size and not np.issubdtype(arr.dtype, np.integer)):
        raise InputError(
            f"PKBatchSampler sources must be one integer source label per image ({len(pids)}), "
            f"got shape {arr.shape} dtype {arr.dtype}"
        )
    codes = np.unique(arr, return_inverse=True)[1].reshape(-1)
    of_group = []
    for idx in groups:
        found = np.unique(codes[idx])
        if len(found) != 1:
            raise InputError(
                f"PKBatchSampler: identity {pids[idx[0]]} has images from {len(found)} sources; "
                "expected one (pids offset per source)"
            )
        of_group.append(found[0])
    return np.asarray(of_group, dtype=np.int64)


def _check_enough_ids(num_ids: int, p: int, num_replicas: int) -> None:
    need = p * num_replicas
    if num_ids < need:
        raise InputError(
            f"P x K batching needs at least P*W = {need} identities (P={p} per rank x "
            f"W={num_replicas} ranks), the training set has {num_ids}; lower data.sampler.p"
        )


def _epoch_rng(seed: int, epoch: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([seed % _SEED_MOD, epoch % _SEED_MOD]))


def _identity_rows(idx: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """One identity's shuffled images cut into K-sized rows (the remainder dropped); fewer than K
    images: one row drawn with replacement."""
    if len(idx) < k:
        return rng.choice(idx, size=k, replace=True).reshape(1, k)
    n = len(idx) // k
    return rng.permutation(idx)[: n * k].reshape(n, k)


def _split_ranks(rows: list[np.ndarray], p: int, num_replicas: int) -> list[list[int]]:
    return [np.concatenate(rows[r * p : (r + 1) * p]).tolist() for r in range(num_replicas)]


def _plan_from_groups(
    groups: list[np.ndarray], p: int, k: int, num_replicas: int, seed: int, epoch: int
) -> list[list[list[int]]]:
    rng = _epoch_rng(seed, epoch)
    chunks = [_identity_rows(idx, k, rng) for idx in groups]
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
        steps.append(_split_ranks(rows, p, num_replicas))


def _balanced_plan(
    groups: list[np.ndarray],
    group_source: np.ndarray,
    p: int,
    k: int,
    num_replicas: int,
    seed: int,
    epoch: int,
) -> list[list[list[int]]]:
    """The epoch's steps with each source's identities per step drawn by `step_quotas` around its
    share; as many steps as the rows of all identities fill (one pass of the plain plan). A source
    whose identities with rows left are fewer than its quota starts a new pass over its images
    (rows reshuffled), after the rows left of the old one."""
    rng = _epoch_rng(seed, epoch)
    chunks = [_identity_rows(idx, k, rng) for idx in groups]
    available = np.array([len(c) for c in chunks], dtype=np.int64)
    used = np.zeros_like(available)
    members = [np.flatnonzero(group_source == s) for s in range(int(group_source.max()) + 1)]
    need = p * num_replicas
    shares = source_shares([len(m) for m in members], need)
    steps: list[list[list[int]]] = []
    for _ in range(int(available.sum()) // need):
        chosen: list[int] = []
        for source, quota in enumerate(step_quotas(shares, rng)):
            ids = members[source]
            left = ids[used[ids] < available[ids]]
            if len(left) >= quota:
                chosen += rng.choice(left, size=quota, replace=False).tolist()
                continue
            unused = {g: chunks[g][used[g] :] for g in left}  # what is left of this pass
            for g in ids:  # a new pass over the source
                chunks[g] = _identity_rows(groups[g], k, rng)
            for g in left:  # the old pass's rows come first
                chunks[g] = np.concatenate([unused[g], chunks[g]])
            available[ids] = [len(chunks[g]) for g in ids]
            used[ids] = 0
            fresh = np.setdiff1d(ids, left)
            chosen += left.tolist() + rng.choice(fresh, quota - len(left), replace=False).tolist()
        chosen = [chosen[i] for i in rng.permutation(len(chosen))]  # sources mixed over ranks
        rows = [chunks[g][used[g]] for g in chosen]
        used[chosen] += 1
        steps.append(_split_ranks(rows, p, num_replicas))
    return steps


def _plan(
    groups: list[np.ndarray],
    group_source: np.ndarray,
    balance: str,
    p: int,
    k: int,
    num_replicas: int,
    seed: int,
    epoch: int,
) -> list[list[list[int]]]:
    if balance == NONE:
        return _plan_from_groups(groups, p, k, num_replicas, seed, epoch)
    return _balanced_plan(groups, group_source, p, k, num_replicas, seed, epoch)


def pk_epoch_plan(
    pids: Sequence[int],
    p: int,
    k: int,
    num_replicas: int = 1,
    seed: int = 0,
    epoch: int = 0,
    sources: Sequence[int] | None = None,
    source_balance: str = NONE,
) -> list[list[list[int]]]:
    """All ranks' batches of one epoch as steps x ranks x (P*K dataset indices).

    Pure function of its arguments: every rank computes the same plan and keeps its own column.
    `sources` (a source label per image) matter only with a `source_balance` other than none.
    """
    _check_pk(p, k)
    require_choice("data.sampler.source_balance", source_balance, BALANCES)
    if num_replicas < 1:
        raise InputError(f"PKBatchSampler num_replicas must be >= 1, got {num_replicas}")
    groups = _group_indices(pids)
    group_source = _group_sources(pids, groups, sources)
    _check_enough_ids(len(groups), p, num_replicas)
    return _plan(groups, group_source, source_balance, p, k, num_replicas, seed, epoch)


class PKBatchSampler(Sampler[list[int]]):
    """Yields this rank's P x K batches (P distinct identities, K images each) for the epoch.

    Per epoch (`set_epoch`) all ranks build the same global plan from (seed, epoch): each step
    draws P*W identities with chunks left and rank r takes identities [r*P, (r+1)*P). Ranks thus
    see disjoint identities within a step and the same number of batches. That number is exact
    per epoch but can differ by a few batches between epochs (the identity draws are random).
    With `source_balance` (and `sources`, a source label per image) the draws of each step follow
    the sources' shares instead (source_balance.py).
    """

    def __init__(
        self,
        pids: Sequence[int],
        p: int,
        k: int,
        seed: int = 0,
        num_replicas: int | None = None,
        rank: int | None = None,
        sources: Sequence[int] | None = None,
        source_balance: str = NONE,
    ) -> None:
        _check_pk(p, k)
        self.source_balance = require_choice(
            "data.sampler.source_balance", source_balance, BALANCES
        )
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
        self._group_source = _group_sources(pids, self._groups, sources)
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
            plan = _plan(
                self._groups,
                self._group_source,
                self.source_balance,
                self.p,
                self.k,
                self.num_replicas,
                self.seed,
                self.epoch,
            )
            self._batches = [step[self.rank] for step in plan]
        return self._batches

    def __len__(self) -> int:
        return len(self._epoch_batches())

    def __iter__(self) -> Iterator[list[int]]:
        yield from (list(b) for b in self._epoch_batches())
