"""Per-source balance of the P x K sampler (data.sampler.source_balance): `none` gives the batches
of before, `sqrt` gives each source a share of each step's identities ~ sqrt(its identities),
checked against the formula written out over many epochs; ranks, determinism and errors."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
from omegaconf import OmegaConf

from helpers import compose_train
from reidtricks.data.datamodule import ReIDDataModule
from reidtricks.data.sampler import PKBatchSampler, pk_epoch_plan
from reidtricks.data.settings import SamplerConfig
from reidtricks.data.source_balance import source_shares, step_quotas
from reidtricks.errors import InputError
from test_sampler import SHAPES, _check_batch, _dataset
from trial_data import ListSource

# pk_epoch_plan(_dataset(SHAPES["all_small"]), p=2, k=2, num_replicas=2, seed=5, epoch=e) as the
# sampler gave it before the per-source balance existed (captured from that commit).
BEFORE = {
    0: [[[20, 4, 11, 11], [21, 5, 7, 16]], [[8, 0, 1, 9], [12, 12, 6, 10]],
        [[2, 2, 19, 19], [22, 18, 15, 13]]],
    3: [[[11, 11, 5, 21], [0, 8, 6, 10]], [[16, 7, 4, 3], [12, 12, 9, 1]],
        [[2, 2, 19, 19], [22, 18, 13, 15]]],
}  # fmt: skip
# Three sources: A 40 people x 2 images, B 10 x 20, C 4 x 6 (source labels 10, 20, 30).
IDS = {10: 40, 20: 10, 30: 4}
IMAGES = {10: 2, 20: 20, 30: 6}


def three_sources() -> tuple[list[int], list[int]]:
    """(pids, sources) of A, B, C, images in shuffled order."""
    items = [(1000 * s + i, s) for s, n in IDS.items() for i in range(n) for _ in range(IMAGES[s])]
    order = np.random.default_rng(1).permutation(len(items))
    return [items[j][0] for j in order], [items[j][1] for j in order]


def sqrt_shares(ids: list[int], need: int) -> np.ndarray:
    """The formula: need * sqrt(n_s) / sum_t sqrt(n_t)."""
    root = np.sqrt(np.array(ids, dtype=float))
    return need * root / root.sum()


def test_the_off_value_gives_the_batches_of_before():
    pids = _dataset(SHAPES["all_small"])
    labels = [pid % 3 for pid in pids]  # sources are ignored when the balance is off
    for epoch, plan in BEFORE.items():
        assert pk_epoch_plan(pids, p=2, k=2, num_replicas=2, seed=5, epoch=epoch) == plan
        assert pk_epoch_plan(pids, 2, 2, 2, 5, epoch, sources=labels) == plan
        for rank in (0, 1):
            s = PKBatchSampler(pids, 2, 2, seed=5, num_replicas=2, rank=rank, sources=labels,
                               source_balance="none")  # fmt: skip
            s.set_epoch(epoch)
            assert list(s) == [step[rank] for step in plan]


def test_source_shares_formula_and_caps():
    assert np.allclose(source_shares([40, 10, 4], 8), sqrt_shares([40, 10, 4], 8))
    assert np.allclose(source_shares([5], 3), [3])
    # [9, 1] with 8 slots: sqrt gives 6 and 2, but source 2 has one identity: 7 and 1
    assert np.allclose(source_shares([9, 1], 8), [7, 1])
    # [64, 2, 1], 12 slots: 9.22, 1.63, 1.15 -> the last capped at 1, 11 left shared by sqrt
    assert np.allclose(
        source_shares([64, 2, 1], 12), [11 * 8 / (8 + 2**0.5), 11 * 2**0.5 / (8 + 2**0.5), 1]
    )
    assert np.allclose(source_shares([3, 1, 1], 5), [3, 1, 1])  # all capped: every identity
    with pytest.raises(InputError, match=r"per-source balance needs .* 6 in all"):
        source_shares([3, 2], 6)


def test_step_quotas_are_floor_or_ceil_with_the_share_as_mean():
    shares = np.array([4.4, 2.2, 1.4])
    rng = np.random.default_rng(0)
    draws = np.array([step_quotas(shares, rng) for _ in range(20000)])
    assert (draws.sum(axis=1) == 8).all()
    assert ((draws == np.floor(shares)) | (draws == np.ceil(shares))).all()
    # P(ceil) = the fraction (0.4, 0.2, 0.4): 20000 draws, std of the mean <= 0.0035
    assert np.abs(draws.mean(axis=0) - shares).max() < 0.015
    assert (step_quotas(np.array([7.0, 1.0]), rng) == [7, 1]).all()


def source_slots(plan, pids, sources, p, k) -> list[Counter]:
    """Per step, how many of its identities come from each source (every batch checked)."""
    source_of = dict(zip(pids, sources, strict=True))
    per_step = []
    for step in plan:
        ids = [pid for batch in step for pid in _check_batch(batch, pids, p, k)]
        assert len(set(ids)) == len(ids)  # distinct over ranks
        per_step.append(Counter(source_of[pid] for pid in ids))
    return per_step


def test_sqrt_shares_hold_over_many_epochs_and_plain_ones_differ():
    pids, sources = three_sources()
    p, k, epochs = 8, 2, 100
    expected = sqrt_shares(list(IDS.values()), p)  # 4.40, 2.20, 1.39 identities per step
    rows = 40 * 1 + 10 * 10 + 4 * 3  # K-rows of the identities: steps = 152 // 8 = 19
    totals = {"sqrt": Counter(), "none": Counter()}
    for balance in totals:
        for epoch in range(epochs):
            plan = pk_epoch_plan(pids, p, k, 1, 3, epoch, sources, balance)
            steps = source_slots(plan, pids, sources, p, k)
            for counts in steps:
                totals[balance].update(counts)
                if balance == "sqrt":
                    got = np.array([counts[s] for s in IDS])
                    assert ((got == np.floor(expected)) | (got == np.ceil(expected))).all()
            if balance == "sqrt":
                assert len(plan) == rows // p
    share = {b: np.array([t[s] for s in IDS]) / sum(t.values()) for b, t in totals.items()}
    # 1900 steps: std of a share < 0.002; the tolerance is 5x that, the plain shares are far off
    assert np.abs(share["sqrt"] - expected / p).max() < 0.01, share["sqrt"]
    assert np.abs(share["none"] - expected / p).max() > 0.15, share["none"]


def test_balanced_epoch_uses_a_source_pass_by_pass_and_splits_over_ranks():
    pids, sources = three_sources()
    p, k, world = 3, 2, 2
    for seed, epoch in [(0, 0), (4, 2)]:
        per_rank = []
        for rank in range(world):
            s = PKBatchSampler(pids, p, k, seed, world, rank, sources, "sqrt")
            s.set_epoch(epoch)
            per_rank.append(list(s))
        plan = pk_epoch_plan(pids, p, k, world, seed, epoch, sources, "sqrt")
        assert per_rank == [[step[r] for step in plan] for r in range(world)]
        assert len(plan) == 152 // (p * world)
        source_slots(plan, pids, sources, p, k)  # P distinct people per batch, disjoint ranks
        used = Counter(i for step in plan for batch in step for i in batch)
        for label in IDS:  # A and C are over-sampled (several passes), B under-sampled
            counts = [used[i] for i, s in enumerate(sources) if s == label]
            assert max(counts) - min(counts) <= 1, label  # every image once per pass
        assert max(used[i] for i, s in enumerate(sources) if s == 20) == 1


def test_balanced_sampler_is_deterministic_and_resumes_by_epoch():
    pids, sources = three_sources()
    a = PKBatchSampler(pids, 4, 2, seed=7, sources=sources, source_balance="sqrt")
    b = PKBatchSampler(pids, 4, 2, seed=7, sources=sources, source_balance="sqrt")
    a.set_epoch(3)
    b.set_epoch(3)
    first = list(a)
    assert first == list(b) and len(a) == len(first)
    a.set_epoch(4)
    assert list(a) != first
    a.set_epoch(3)
    assert list(a) == first  # a resumed epoch has the same batches
    c = PKBatchSampler(pids, 4, 2, seed=8, sources=sources, source_balance="sqrt")
    c.set_epoch(3)
    assert list(c) != first


def test_errors():
    pids, sources = three_sources()
    with pytest.raises(InputError, match=r"data\.sampler\.source_balance='equal'"):
        PKBatchSampler(pids, 2, 2, sources=sources, source_balance="equal")
    with pytest.raises(InputError, match=r"one integer source label per image \(304\)"):
        PKBatchSampler(pids, 2, 2, sources=sources[:-1], source_balance="sqrt")
    mixed = list(sources)
    mixed[pids.index(10000)] = 20
    with pytest.raises(InputError, match=r"identity 10000 has images from 2 sources"):
        pk_epoch_plan(pids, 2, 2, sources=mixed, source_balance="sqrt")
    with pytest.raises(InputError, match=r"data\.sampler\.source_balance='Sqrt'"):
        SamplerConfig(source_balance="Sqrt")
    assert SamplerConfig().source_balance == "none"


def test_the_switch_changes_only_its_key():
    off = OmegaConf.to_container(compose_train(), resolve=False)
    on = OmegaConf.to_container(compose_train("data.sampler.source_balance=sqrt"), resolve=False)
    assert off["data"]["sampler"]["source_balance"] == "none"
    on["data"]["sampler"]["source_balance"] = "none"
    assert on == off


def test_the_datamodule_gives_the_sampler_each_items_source():
    a = ListSource("a", [(f"a{i}.jpg", i // 2, 0) for i in range(2 * 36)])  # 36 people x 2
    b = ListSource("b", [(f"b{i}.jpg", i // 8, 0) for i in range(8 * 4)])  # 4 people x 8
    test = ListSource("t", [], [("q.jpg", 1, 0)], [("g.jpg", 1, 1)])
    module = ReIDDataModule(
        {"a": a, "b": b}, {"t": test}, {"p": 4, "k": 2, "source_balance": "sqrt"}, {},
        {"num_workers": 0}, seed=0, verify_images=False,
    )  # fmt: skip
    module.setup("fit")
    sampler = module.train_dataloader().batch_sampler.batch_sampler
    assert sampler.source_balance == "sqrt"
    from_b = []
    for epoch in range(30):
        sampler.set_epoch(epoch)
        for batch in sampler:
            people = {module.train_items[i][1] for i in batch}
            from_b.append(sum(pid >= 36 for pid in people))  # b's labels follow a's 36
    # sqrt: 4 * 2 / (6 + 2) = 1 of the 4 people per batch from b (plain: 16/52 of the rows, 1.2)
    assert set(from_b) == {1}
