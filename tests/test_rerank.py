"""re_rank against the dense float64 reference (tests/reference.py), plus properties."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from reference import dense_rerank, sqdist
from reidtricks.evaluation import k_reciprocal_mask, re_rank

PAPER = {"k1": 20, "k2": 6, "lambda_value": 0.3}  # Zhong et al.'s and the paper's values

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def clustered(seed, num_q, num_g, dim=16, num_ids=10):
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((num_ids, dim)) * 2
    q_ids, g_ids = rng.integers(0, num_ids, num_q), rng.integers(0, num_ids, num_g)
    qf = centers[q_ids] + rng.standard_normal((num_q, dim))
    gf = centers[g_ids] + rng.standard_normal((num_g, dim))
    return qf.astype(np.float32), gf.astype(np.float32)


@pytest.mark.parametrize(
    "seed, num_q, num_g, dim, k1, k2, lam, chunk",
    [
        (0, 30, 130, 16, 20, 6, 0.3, 48),  # paper setting, several distance blocks
        (1, 25, 90, 8, 5, 1, 0.5, 7),  # odd k1 (round(2.5) = 2), no local expansion
        (2, 15, 60, 32, 7, 3, 0.0, 2048),  # pure Jaccard, one block
        (3, 10, 25, 4, 30, 40, 0.3, 5),  # k1 + 1 and k2 beyond N: tables truncated at N
        (4, 40, 40, 2, 12, 4, 0.7, 11),  # 2-D features, crowded neighbourhoods
    ],
)
def test_matches_dense_reference(seed, num_q, num_g, dim, k1, k2, lam, chunk):
    qf, gf = clustered(seed, num_q, num_g, dim)
    expected = dense_rerank(qf, gf, k1, k2, lam)
    out = re_rank(torch.from_numpy(qf), torch.from_numpy(gf), k1, k2, lam, chunk_size=chunk)
    assert out.shape == (num_q, num_g) and out.dtype == torch.float32
    np.testing.assert_allclose(out.numpy(), expected, rtol=0, atol=1e-5)


@pytest.mark.parametrize("device", DEVICES)
def test_chunk_size_and_threads_do_not_change_the_result(device):
    qf, gf = (torch.from_numpy(a).to(device) for a in clustered(5, 35, 110))
    full = re_rank(qf, gf, **PAPER, chunk_size=4096, threads=1)
    assert full.device.type == device
    before = torch.get_num_threads()
    for chunk, threads in ((3, 1), (16, 2), (50, 3), (7, None)):
        out = re_rank(qf, gf, **PAPER, chunk_size=chunk, threads=threads)
        torch.testing.assert_close(out, full, rtol=0, atol=1e-6)
    assert torch.get_num_threads() == before


@pytest.mark.parametrize("pair_budget", [1, 40, 1 << 19])
def test_jaccard_pair_budget_does_not_change_the_result(pair_budget, monkeypatch):
    """Query chunks of the Jaccard pass sized by (query, gallery) entry pairs: 1 gives one query
    row per chunk, 40 a few rows, the default all of them here."""
    import reidtricks.evaluation.rerank as rerank

    qf, gf = (torch.from_numpy(a) for a in clustered(8, 30, 90))
    full = re_rank(qf, gf, **PAPER, threads=1)
    monkeypatch.setattr(rerank, "_PAIR_BUDGET", pair_budget)
    torch.testing.assert_close(re_rank(qf, gf, **PAPER, threads=2), full, rtol=0, atol=1e-6)


def test_lambda_one_is_the_normalised_original_distance():
    qf, gf = clustered(6, 20, 70)
    x = np.concatenate([qf, gf])
    d = sqdist(x, x)
    expected = d[:20, 20:] / d[:20].max(axis=1, keepdims=True)  # row max over all N samples
    out = re_rank(torch.from_numpy(qf), torch.from_numpy(gf), **{**PAPER, "lambda_value": 1.0})
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("k", [1, 4, 10])
def test_k_reciprocal_mask_is_mutual_membership(k):
    qf, gf = clustered(7, 20, 60)
    x = np.concatenate([qf, gf])
    top = np.argsort(sqdist(x, x), axis=1, kind="stable")[:, : k + 1]
    mask = k_reciprocal_mask(torch.from_numpy(top), chunk_size=7).numpy()
    n = len(x)
    relation = np.zeros((n, n), dtype=bool)
    for i in range(n):
        for p, j in enumerate(top[i]):
            assert mask[i, p] == (i in top[j])
            relation[i, j] = mask[i, p]
    assert np.array_equal(relation, relation.T)  # j in R(i) <=> i in R(j)
    assert mask[:, 0].all()  # everyone is its own nearest neighbour here


def test_duplicated_query_has_zero_jaccard_and_ranks_first():
    qf, gf = clustered(8, 12, 80)
    gf[[5, 40]] = qf[[3, 7]]  # two queries also appear in the gallery
    out = re_rank(torch.from_numpy(qf), torch.from_numpy(gf), **{**PAPER, "lambda_value": 0.0})
    assert out.min() >= 0 and out.max() <= 1  # a Jaccard distance
    assert out[3, 5] < 1e-5 and out[7, 40] < 1e-5
    assert out[3].argmin() == 5 and out[7].argmin() == 40


def test_half_features_on_the_same_device():
    qf, gf = (torch.from_numpy(a) for a in clustered(9, 10, 40))
    out = re_rank(qf.half(), gf.half(), **PAPER)
    ref = re_rank(qf.half().float(), gf.half().float(), **PAPER)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, ref, rtol=0, atol=0)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"k1": 0}, "k1"),
        ({"k2": 0}, "k2"),
        ({"lambda_value": 1.5}, "lambda_value"),
        ({"chunk_size": 0}, "chunk_size"),
        ({"threads": 0}, "threads"),
    ],
)
def test_bad_arguments(kwargs, match):
    qf, gf = (torch.from_numpy(a) for a in clustered(0, 3, 5))
    with pytest.raises(ValueError, match=match):
        re_rank(qf, gf, **{**PAPER, **kwargs})
    with pytest.raises(ValueError, match="same width"):
        re_rank(qf, gf[:, :3], **PAPER)
