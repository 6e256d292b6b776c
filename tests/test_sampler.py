"""P x K batch sampler: batch structure, rank disjointness, exact length, determinism, errors."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from reidtricks.data.sampler import PKBatchSampler, pk_epoch_plan


def _dataset(counts: list[int], seed: int = 0) -> list[int]:
    """pids (non-contiguous labels) with counts[i] images of identity i, in shuffled order."""
    pids = [1000 + 7 * i for i, c in enumerate(counts) for _ in range(c)]
    order = np.random.default_rng(seed).permutation(len(pids))
    return [pids[j] for j in order]


SHAPES = {
    # ids with fewer than K images, ids with remainders, ids with many images
    "mixed": [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 17, 25, 3, 1, 6, 9, 4, 30, 2],
    "exact_k": [4] * 24,
    "all_small": [1, 2, 3, 2, 1, 3, 2, 1, 3, 2, 1, 2],
    "skewed": [60, 50, 4, 4, 5, 4, 6, 4, 4, 7, 4, 4, 4, 9],
}


def _rank_batches(pids, p, k, world, seed, epoch) -> list[list[list[int]]]:
    """One sampler per rank; returns ranks x batches."""
    out = []
    for rank in range(world):
        s = PKBatchSampler(pids, p=p, k=k, seed=seed, num_replicas=world, rank=rank)
        s.set_epoch(epoch)
        out.append([list(b) for b in s])
    return out


def _check_batch(batch: list[int], pids: list[int], p: int, k: int) -> list[int]:
    assert len(batch) == p * k
    assert all(isinstance(i, int) and 0 <= i < len(pids) for i in batch)
    ids = [pids[i] for i in batch]
    # consecutive K-chunks each from a single identity, P distinct identities
    chunk_ids = []
    for c in range(p):
        chunk = ids[c * k : (c + 1) * k]
        assert len(set(chunk)) == 1
        chunk_ids.append(chunk[0])
    assert len(set(chunk_ids)) == p
    assert sorted(Counter(ids).values()) == [k] * p
    return chunk_ids


@pytest.mark.parametrize("shape", sorted(SHAPES))
@pytest.mark.parametrize("world", [1, 2, 3])
@pytest.mark.parametrize("p,k", [(2, 4), (3, 2)])
def test_epoch_invariants(shape, world, p, k):
    counts = SHAPES[shape]
    assert len(counts) >= p * world
    pids = _dataset(counts, seed=len(counts))
    pid_count = Counter(pids)
    for seed, epoch in [(0, 0), (0, 3), (5, 1)]:
        per_rank = _rank_batches(pids, p, k, world, seed, epoch)
        lengths = {len(b) for b in per_rank}
        assert len(lengths) == 1 and lengths.pop() >= 1
        used_chunks: Counter = Counter()
        seen_index: Counter = Counter()
        for step in zip(*per_rank, strict=True):
            step_ids = [set(_check_batch(b, pids, p, k)) for b in step]
            # identities disjoint across ranks within a step
            assert len(set().union(*step_ids)) == p * world
            for b in step:
                for c in range(p):
                    chunk = b[c * k : (c + 1) * k]
                    used_chunks[pids[chunk[0]]] += 1
                    if pid_count[pids[chunk[0]]] >= k:
                        seen_index.update(chunk)
        # ids with >= K images: no image used twice; chunk count <= floor(n / K)
        assert all(v == 1 for v in seen_index.values())
        max_chunks = {pid: max(n // k, 1) for pid, n in pid_count.items()}
        assert all(used_chunks[pid] <= max_chunks[pid] for pid in used_chunks)
        # stopped exactly when fewer than P*W identities had chunks left
        left = [pid for pid in pid_count if used_chunks[pid] < max_chunks[pid]]
        assert len(left) < p * world


@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_len_matches_yielded(shape):
    pids = _dataset(SHAPES[shape])
    for world in (1, 2):
        for seed in (0, 1, 2):
            sampler = PKBatchSampler(pids, p=2, k=3, seed=seed, num_replicas=world, rank=world - 1)
            lengths = set()
            for epoch in range(6):
                sampler.set_epoch(epoch)
                n = len(sampler)
                assert n == sum(1 for _ in sampler)
                assert n == len(list(sampler))  # re-iterable, same epoch
                lengths.add(n)
            assert all(n >= 1 for n in lengths)


def test_small_ids_sampled_with_replacement():
    # one id with a single image must appear as K copies of that image
    counts = [1, 2, 8, 8, 8, 8]
    pids = _dataset(counts)
    only = pids.index(1000)
    found = False
    for epoch in range(20):
        s = PKBatchSampler(pids, p=3, k=4, seed=0)
        s.set_epoch(epoch)
        for batch in s:
            if only in batch:
                assert batch.count(only) == 4
                found = True
    assert found


def test_determinism_and_epochs():
    pids = _dataset(SHAPES["mixed"])
    a = PKBatchSampler(pids, p=4, k=2, seed=3)
    b = PKBatchSampler(pids, p=4, k=2, seed=3)
    for epoch in (0, 2):
        a.set_epoch(epoch)
        b.set_epoch(epoch)
        assert list(a) == list(b)
    a.set_epoch(0)
    b.set_epoch(1)
    assert list(a) != list(b)
    c = PKBatchSampler(pids, p=4, k=2, seed=4)
    assert list(c) != list(a)
    # set_epoch back and forth reproduces the earlier epoch
    first = list(a)
    a.set_epoch(7)
    list(a)
    a.set_epoch(0)
    assert list(a) == first


def test_pk_epoch_plan_shape_and_rank_columns():
    pids = _dataset(SHAPES["exact_k"])
    plan = pk_epoch_plan(pids, p=2, k=4, num_replicas=3, seed=1, epoch=2)
    assert len(plan) >= 1 and all(len(step) == 3 for step in plan)
    for step in plan:
        ids = [set(_check_batch(b, pids, 2, 4)) for b in step]
        assert len(set().union(*ids)) == 6
    # 24 ids x 1 chunk each, 6 ids per step: exactly 4 steps using every image once
    assert len(plan) == 4
    flat = [i for step in plan for b in step for i in b]
    assert sorted(flat) == list(range(len(pids)))


def test_defaults_without_distributed_and_dataloader():
    pids = _dataset(SHAPES["exact_k"])
    s = PKBatchSampler(pids, p=4, k=4)
    assert (s.num_replicas, s.rank) == (1, 0)
    data = torch.arange(len(pids))
    loader = DataLoader(data, batch_sampler=s)
    batches = list(loader)
    assert len(batches) == len(loader) == 6
    assert all(b.shape == (16,) for b in batches)


def test_lightning_sets_epoch_through_dataloader():
    from lightning_fabric.utilities.data import _set_sampler_epoch

    pids = _dataset(SHAPES["mixed"])
    s = PKBatchSampler(pids, p=2, k=2)
    loader = DataLoader(torch.arange(len(pids)), batch_sampler=s)
    _set_sampler_epoch(loader, 5)
    assert s.epoch == 5


def test_errors():
    pids = _dataset([4] * 5)
    with pytest.raises(ValueError, match=r"at least P\*W = 6 .*has 5.*data\.sampler\.p"):
        PKBatchSampler(pids, p=6, k=2)
    with pytest.raises(ValueError, match=r"at least P\*W = 6 .*has 5.*data\.sampler\.p"):
        PKBatchSampler(pids, p=3, k=2, num_replicas=2, rank=0)
    with pytest.raises(ValueError, match=r"data\.sampler\.p"):
        PKBatchSampler(pids, p=0, k=2)
    with pytest.raises(ValueError, match=r"data\.sampler\.k"):
        PKBatchSampler(pids, p=2, k=0)
    with pytest.raises(ValueError, match="rank"):
        PKBatchSampler(pids, p=2, k=2, num_replicas=2, rank=2)
    with pytest.raises(ValueError, match="identities"):
        PKBatchSampler([], p=1, k=1)
    with pytest.raises(ValueError, match=r"data\.sampler\.p"):
        pk_epoch_plan(pids, p=3, k=2, num_replicas=2, seed=0, epoch=0)
