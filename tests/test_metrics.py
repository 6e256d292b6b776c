"""evaluate() against the per-query reference (tests/reference.py), hand-worked numbers and the
CUHK03 expectation."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

import reidtricks.evaluation.metrics as metrics
from reference import evaluate_per_query
from reidtricks.evaluation import EvalResult, evaluate

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.fixture(params=["kernel", "torch"])
def path(request, monkeypatch):
    """Each test that takes it runs through the compiled CPU kernel and through the torch passes
    (what GPUs run), both on CPU."""
    monkeypatch.setattr(metrics, "_CPU_KERNEL", request.param == "kernel")
    return request.param


def random_case(rng, num_q, num_g, num_ids, num_cams, tie_levels=None, distractors=0.0):
    q_pids = rng.integers(1, num_ids + 1, num_q)
    g_pids = rng.integers(1, num_ids + 1, num_g)
    g_pids[rng.random(num_g) < distractors] = 0
    q_cams, g_cams = rng.integers(0, num_cams, num_q), rng.integers(0, num_cams, num_g)
    dist = rng.random((num_q, num_g)) * 4
    dist -= (q_pids[:, None] == g_pids[None, :]) * rng.random((num_q, num_g)) * 2  # signal
    if tie_levels:
        dist = np.round(dist * tie_levels / 4)
    return dist.astype(np.float32), q_pids, g_pids, q_cams, g_cams


def check(result: EvalResult, expected, max_rank):
    cmc, mean_ap, minp, num_valid = expected
    assert result.cmc.shape == (max_rank,)
    np.testing.assert_allclose(result.cmc, cmc, rtol=0, atol=1e-6)
    assert result.mAP == pytest.approx(mean_ap, abs=1e-6)
    assert result.mINP == pytest.approx(minp, abs=1e-6)
    assert result.num_valid_queries == num_valid


CASES = {
    "plain": dict(num_q=40, num_g=300, num_ids=20, num_cams=4),
    "integer_ties": dict(num_q=50, num_g=200, num_ids=15, num_cams=3, tie_levels=4),
    "heavy_ties": dict(num_q=30, num_g=150, num_ids=5, num_cams=3, tie_levels=1),
    "distractors": dict(num_q=40, num_g=200, num_ids=30, num_cams=5, distractors=0.6),
    "few_ids_many_junk": dict(num_q=30, num_g=120, num_ids=3, num_cams=2, tie_levels=8),
    "unmatched_queries": dict(num_q=60, num_g=40, num_ids=50, num_cams=3),
    "two_cameras": dict(num_q=30, num_g=100, num_ids=10, num_cams=2, tie_levels=3),
}


@pytest.mark.parametrize("name", sorted(CASES))
@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.usefixtures("path")
def test_matches_reference(name, seed):
    rng = np.random.default_rng(seed)
    case = random_case(rng, **CASES[name])
    chunk = int(rng.integers(1, 20))
    check(
        evaluate(*case, max_rank=20, chunk_size=chunk, protocol="market"),
        evaluate_per_query(*case, 20),
        20,
    )


# Noise per feature kind: identity centres + noise, rank-1 / mAP about 1.0 / 0.87 (good),
# 0.6 / 0.3 (medium) and chance (random: the noise swamps the centres).
KINDS = {"good": 0.9, "medium": 1.5, "random": 100.0}


def feature_case(rng, kind, ties=False, num_q=60, num_g=400, num_ids=25, num_cams=4, dim=32):
    """Euclidean distances of clustered features; `ties` rounds them onto a coarse grid."""
    centres = rng.standard_normal((num_ids + 1, dim))
    q_pids = rng.integers(1, num_ids + 1, num_q)
    g_pids = rng.integers(0, num_ids + 1, num_g)  # pid 0: distractors
    q_cams, g_cams = rng.integers(0, num_cams, num_q), rng.integers(0, num_cams, num_g)
    qf = centres[q_pids] + KINDS[kind] * rng.standard_normal((num_q, dim))
    gf = centres[g_pids] + KINDS[kind] * rng.standard_normal((num_g, dim))
    dist = np.sqrt(((qf[:, None] - gf[None]) ** 2).sum(-1))
    if ties:  # ~40 levels per median distance: many matches tie with other images
        step = np.median(dist) / 40
        dist = np.round(dist / step) * step
    return dist.astype(np.float32), q_pids, g_pids, q_cams, g_cams


@pytest.mark.parametrize("kind", sorted(KINDS))
@pytest.mark.parametrize("ties", [False, True])
@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.usefixtures("path")
def test_feature_kinds_match_reference(kind, ties, seed):
    rng = np.random.default_rng(seed)
    case = feature_case(rng, kind, ties)
    expected = evaluate_per_query(*case, 20)
    low, high = {"good": (0.75, 1.0), "medium": (0.2, 0.45), "random": (0.0, 0.1)}[kind]
    assert low <= expected[1] <= high  # the kind is what it says
    if ties:
        assert len(np.unique(case[0])) < case[0].size / 100
    before = torch.get_num_threads()
    for chunk, threads in ((None, None), (7, 1), (3, 2)):
        check(
            evaluate(*case, max_rank=20, chunk_size=chunk, threads=threads, protocol="market"),
            expected,
            20,
        )
    assert torch.get_num_threads() == before  # one thread per worker only during the call


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_coarse_bins_compare_more_images_exactly(kind, monkeypatch):
    """With 4 bins per row nearly every image shares a bin with a match: the exact pass."""
    case = feature_case(np.random.default_rng(3), kind, ties=True)
    monkeypatch.setattr(metrics, "_CPU_KERNEL", False)
    monkeypatch.setattr(metrics, "_IMAGES_PER_BIN", 10**6)
    check(
        evaluate(*case, max_rank=20, chunk_size=11, protocol="market"),
        evaluate_per_query(*case, 20),
        20,
    )


@pytest.mark.parametrize("kind", sorted(KINDS))
@pytest.mark.parametrize("bins_per_match, max_bins, block", [(1, 4, 1), (2, 8, 7), (64, 4096, 128)])
def test_kernel_bins_and_blocks_do_not_change_results(kind, bins_per_match, max_bins, block,
                                                      monkeypatch):  # fmt: skip
    """The compiled kernel with coarse bins (most images compared exactly) and odd blocks."""
    from reidtricks.evaluation import rank_kernel

    monkeypatch.setattr(rank_kernel, "BINS_PER_MATCH", bins_per_match)
    monkeypatch.setattr(rank_kernel, "MAX_BINS", max_bins)
    monkeypatch.setattr(rank_kernel, "BLOCK", block)
    for ties in (False, True):
        case = feature_case(np.random.default_rng(11), kind, ties)
        case[0][2, ::5] = np.inf
        case[0][4, 1::9] = -np.inf
        expected = evaluate_per_query(*case, 20)
        for chunk, threads in ((1, 1), (9, 2), (None, None)):
            check(
                evaluate(*case, max_rank=20, chunk_size=chunk, threads=threads, protocol="market"),
                expected,
                20,
            )


@pytest.mark.usefixtures("path")
def test_strided_and_integer_distances():
    """A transposed (non-contiguous) distance matrix and integer distances, chunk by chunk."""
    case = feature_case(np.random.default_rng(12), "medium", ties=True)
    expected = evaluate_per_query(*case, 20)
    strided = torch.from_numpy(np.ascontiguousarray(case[0].T)).T
    assert not strided.is_contiguous()
    check(evaluate(strided, *case[1:], max_rank=20, chunk_size=7, protocol="market"), expected, 20)
    levels = np.round(case[0] / case[0].max() * 1000).astype(np.int32)
    expected = evaluate_per_query(levels.astype(np.float64), *case[1:], 20)
    check(evaluate(levels, *case[1:], max_rank=20, chunk_size=7, protocol="market"), expected, 20)


@pytest.mark.parametrize("top_bins", [1, 3, 4])
def test_top_bins_do_not_change_results(top_bins, monkeypatch):
    """Images past a row's last match spread over 1, 3 or 4 top bins: the same metrics."""
    monkeypatch.setattr(metrics, "_CPU_KERNEL", False)
    monkeypatch.setattr(metrics, "_TOP_BINS", top_bins)
    for kind in sorted(KINDS):
        case = feature_case(np.random.default_rng(5), kind, ties=kind == "medium")
        case[0][3, ::7] = np.inf  # past every match, in every top bin
        expected = evaluate_per_query(*case, 20)
        for chunk in (1, 13, None):
            check(
                evaluate(*case, max_rank=20, chunk_size=chunk, threads=2, protocol="market"),
                expected,
                20,
            )


@pytest.mark.usefixtures("path")
def test_rows_outside_the_binned_case_match_reference():
    """One or tied matches, infinities, negative and signed-zero distances, tiny spans."""
    rng = np.random.default_rng(9)
    dist, q_pids, g_pids, q_cams, g_cams = feature_case(rng, "medium", num_q=24, num_g=200)
    dist = dist.astype(np.float64)
    # Query i < 12 (id i + 1) has exactly two correct matches: gallery images 2i and 2i + 1.
    q_pids[:12] = np.arange(1, 13)
    g_pids[g_pids <= 12] = 13
    g_pids[:24] = np.repeat(np.arange(1, 13), 2)
    g_cams[:24] = np.repeat((q_cams[:12] + 1) % 4, 2)
    dist[0, 1] = dist[0, 0]  # matches tied with each other
    dist[1, :] = dist[1, 2]  # a row of one distance: the gallery order
    dist[2, 5] = dist[3, 7] = np.inf  # an infinite match
    dist[4, 100:110] = np.inf
    dist[5, 100:110] = -np.inf
    dist[6] = -dist[6]
    dist[7, ::3], dist[7, 1::3] = 0.0, -0.0
    dist[8] = 1e6 + 1e-6 * dist[8]  # a tiny span next to a large offset
    g_cams[19] = q_cams[9]  # query 9 keeps a single match, tied with two other images
    dist[9, [50, 60]] = dist[9, 18]
    dist[10, [150, 151]] = dist[10, [20, 21]]
    dist[11] = np.round(dist[11])
    for dtype in (np.float64, np.float32):  # float32 rounding merges row 8 into ties
        case = (dist.astype(dtype), q_pids, g_pids, q_cams, g_cams)
        check(
            evaluate(*case, max_rank=30, chunk_size=5, protocol="market"),
            evaluate_per_query(*case, 30),
            30,
        )


@pytest.mark.usefixtures("path")
def test_gallery_from_one_camera_and_distractor_only_queries():
    rng = np.random.default_rng(5)
    dist, q_pids, g_pids, q_cams, g_cams = random_case(rng, 40, 150, 12, 3, tie_levels=6)
    g_cams[:] = 1  # single-camera gallery: queries from camera 1 have no valid match
    g_pids[g_pids > 8] = 0  # queries of ids 9..12 only see distractors
    case = (dist, q_pids, g_pids, q_cams, g_cams)
    expected = evaluate_per_query(*case, 10)
    assert 0 < expected[3] < 40
    check(evaluate(*case, max_rank=10, chunk_size=7, protocol="market"), expected, 10)


def test_max_rank_beyond_gallery_pads_with_last_value():
    rng = np.random.default_rng(3)
    case = random_case(rng, 20, 12, 4, 3)
    result = evaluate(*case, max_rank=50, protocol="market")
    check(result, evaluate_per_query(*case, 50), 50)
    assert np.all(result.cmc[12:] == result.cmc[11])
    assert result.cmc[-1] == 1.0


def test_hand_worked_single_query():
    # Query: id 1, camera 0. Gallery in distance order (index = order here):
    #   0.1 id 2 | 0.2 id 1 cam 0 (same camera: removed) | 0.3 id 1 cam 1 | 0.4 id 3
    #   0.45 id 5 | 0.5 id 1 cam 2 | 0.6 id 4
    # Kept ranking: id2, [id1], id3, id5, [id1], id4 -> correct matches at ranks 2 and 5.
    # AP = (1/2 + 2/5) / 2 = 0.45; INP = 2/5 = 0.4; CMC = 0, 1, 1, ...
    dist = np.array([[0.1, 0.2, 0.3, 0.4, 0.45, 0.5, 0.6]])
    g_pids = np.array([2, 1, 1, 3, 5, 1, 4])
    g_cams = np.array([0, 0, 1, 0, 1, 2, 3])
    result = evaluate(
        dist, np.array([1]), g_pids, np.array([0]), g_cams, max_rank=6, protocol="market"
    )
    np.testing.assert_allclose(result.cmc, [0, 1, 1, 1, 1, 1])
    assert result.mAP == pytest.approx(0.45)
    assert result.mINP == pytest.approx(0.4)
    assert result.num_valid_queries == 1
    d = result.as_dict()
    assert set(d) == {"rank1", "rank5", "rank10", "mAP", "mINP", "num_valid_queries"}
    assert (d["rank1"], d["rank5"], d["mAP"], d["mINP"]) == (0.0, 1.0, 0.45, 0.4)
    assert np.isnan(d["rank10"])  # beyond max_rank


@pytest.mark.usefixtures("path")
def test_ties_break_by_gallery_index():
    # All distances equal: the ranking is the gallery order. Correct matches at indices 1 and 3
    # -> ranks 2 and 4: AP = (1/2 + 2/4) / 2 = 0.5, INP = 2/4; reversed gallery: ranks 1 and 3.
    g_pids, g_cams = np.array([7, 1, 8, 1]), np.array([0, 1, 0, 2])
    dist = np.ones((1, 4), dtype=np.float32)
    r = evaluate(dist, np.array([1]), g_pids, np.array([0]), g_cams, max_rank=4, protocol="market")
    assert (r.mAP, r.mINP, r.cmc.tolist()) == (0.5, 0.5, [0.0, 1.0, 1.0, 1.0])
    r = evaluate(
        dist,
        np.array([1]),
        g_pids[::-1].copy(),
        np.array([0]),
        g_cams[::-1].copy(),
        max_rank=50,
        protocol="market",
    )
    assert r.mAP == pytest.approx((1 / 1 + 2 / 3) / 2)
    assert r.mINP == pytest.approx(2 / 3)


def test_no_valid_query_raises():
    dist = np.random.default_rng(0).random((3, 5))
    pids, cams = np.array([1, 1, 2]), np.zeros(3, dtype=int)
    with pytest.raises(ValueError, match="no valid query"):
        evaluate(
            dist,
            pids,
            np.array([1, 2, 3, 1, 2]),
            cams,
            np.zeros(5, dtype=int),
            max_rank=50,
            protocol="market",
        )


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"protocol": "viper"}, "viper"),
        ({"max_rank": 0}, "max_rank"),
        ({"chunk_size": 0}, "chunk"),
        ({"threads": 0}, "threads"),
    ],
)
def test_bad_arguments(kwargs, match):
    case = random_case(np.random.default_rng(0), 4, 6, 2, 2)
    with pytest.raises(ValueError, match=match):
        evaluate(*case, **{"max_rank": 50, "protocol": "market", **kwargs})


@pytest.mark.usefixtures("path")
def test_bad_shapes_and_nan():
    dist, qp, gp, qc, gc = random_case(np.random.default_rng(0), 4, 6, 2, 2)
    with pytest.raises(ValueError, match="g_pids has 5 entries"):
        evaluate(dist, qp, gp[:5], qc, gc, max_rank=50, protocol="market")
    dist[1, 2] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        evaluate(dist, qp, gp, qc, gc, max_rank=50, protocol="market")
    # NaN in a query without a correct match, beyond every match, and as a match's distance.
    dist, qp, gp, qc, gc = feature_case(np.random.default_rng(1), "good")
    qp[0] = 999  # no gallery image of this identity
    matches = np.flatnonzero((gp == qp[1]) & (gc != qc[1]))
    assert len(matches)
    for row, col in ((0, 5), (1, int(np.argmax(dist[1]))), (1, matches[-1])):
        bad = dist.copy()
        bad[row, col] = np.nan
        with pytest.raises(ValueError, match=f"NaN \\(in query rows {row}\\.\\.{row}\\)"):
            evaluate(bad, qp, gp, qc, gc, chunk_size=1, max_rank=50, protocol="market")


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.usefixtures("path")
def test_numpy_and_torch_inputs_agree(device):
    case = random_case(np.random.default_rng(4), 30, 90, 8, 3, tie_levels=10)
    ref = evaluate(*case, max_rank=50, protocol="market")
    tensors = [torch.from_numpy(np.asarray(x)).to(device) for x in case]
    out = evaluate(*tensors, max_rank=50, protocol="market")
    np.testing.assert_array_equal(out.cmc, ref.cmc)
    assert (out.mAP, out.mINP, out.num_valid_queries) == (
        ref.mAP,
        ref.mINP,
        ref.num_valid_queries,
    )
    # float64 and float16 distances rank the same when the values are exactly representable.
    for dtype in (torch.float64, torch.float16):
        other = evaluate(tensors[0].to(dtype), *tensors[1:], max_rank=50, protocol="market")
        assert other.mAP == pytest.approx(ref.mAP, abs=1e-12)


def single_shot_expectation(dist, q_pids, g_pids, q_cams, g_cams, max_rank):
    """Exact expected CUHK03 CMC: one uniformly drawn image per gallery identity (per query)."""
    cmcs = []
    for i in range(len(q_pids)):
        positives = np.flatnonzero((g_pids == q_pids[i]) & (g_cams != q_cams[i]))
        if len(positives) == 0:
            continue
        cmc = np.zeros(max_rank)
        for p in positives:
            # P(sampled image of identity I precedes p) for every other identity I.
            probs = []
            for pid in np.unique(g_pids[g_pids != q_pids[i]]):
                imgs = np.flatnonzero(g_pids == pid)
                ahead = (dist[i, imgs] < dist[i, p]) | ((dist[i, imgs] == dist[i, p]) & (imgs < p))
                probs.append(ahead.mean())
            count = np.zeros(len(probs) + 1)  # Poisson-binomial distribution of #identities ahead
            count[0] = 1.0
            for prob in probs:
                count[1:] = count[1:] * (1 - prob) + count[:-1] * prob
                count[0] *= 1 - prob
            cmc += np.cumsum(np.pad(count, (0, max_rank)))[:max_rank] / len(positives)
        cmcs.append(cmc)
    return np.mean(cmcs, 0)


@pytest.mark.slow  # averages many random draws
def test_cuhk03_single_shot_matches_expectation(monkeypatch):
    rng = np.random.default_rng(6)
    case = random_case(rng, 12, 60, 6, 3, tie_levels=6)
    expected = single_shot_expectation(*case, 8)
    monkeypatch.setattr(metrics, "CUHK03_REPEATS", 3000)
    result = evaluate(*case, max_rank=8, protocol="cuhk03", chunk_size=5)
    np.testing.assert_allclose(result.cmc, expected, atol=0.03)
    market = evaluate_per_query(*case, 8)
    assert result.mAP == pytest.approx(market[1], abs=1e-9)
    assert result.mINP == pytest.approx(market[2], abs=1e-9)


@pytest.mark.usefixtures("path")
def test_cuhk03_is_seeded_and_exact_with_one_image_per_identity():
    rng = np.random.default_rng(7)
    dist, q_pids, _, q_cams, _ = random_case(rng, 15, 30, 30, 3, tie_levels=5)
    g_pids, g_cams = rng.permutation(30) + 1, rng.integers(0, 3, 30)  # one image per identity
    case = (dist, q_pids, g_pids, q_cams, g_cams)
    first = evaluate(*case, max_rank=10, protocol="cuhk03")
    check(first, evaluate_per_query(*case, 10), 10)
    rng = np.random.default_rng(8)
    case = random_case(rng, 20, 80, 6, 3)
    a, b = (evaluate(*case, protocol="cuhk03", chunk_size=c, max_rank=50) for c in (3, 256))
    np.testing.assert_array_equal(a.cmc, b.cmc)


def test_eval_protocol_setting_reaches_the_evaluator():
    """`eval.protocol` picks the protocol of the training/evaluate pipeline's evaluation."""
    from reidtricks.evaluation.retrieval import evaluate_features
    from reidtricks.evaluation.settings import EvalConfig

    rng = np.random.default_rng(7)
    feats = torch.from_numpy(rng.normal(size=(60, 8)).astype(np.float32))
    pids = torch.from_numpy(rng.integers(1, 6, 60))
    cams = torch.from_numpy(rng.integers(0, 3, 60))
    dist = torch.cdist(feats[:20].double(), feats[20:].double()).float()
    for protocol in ("market", "cuhk03"):
        cfg = replace(EvalConfig(), metric="euclidean", max_rank=10, protocol=protocol)
        got, _ = evaluate_features(feats, pids, cams, 20, cfg)
        want = evaluate(
            dist, pids[:20], pids[20:], cams[:20], cams[20:], max_rank=10, protocol=protocol
        )
        np.testing.assert_allclose(got.cmc, want.cmc, atol=1e-6)
        assert got.mAP == pytest.approx(want.mAP, abs=1e-6)
    with pytest.raises(ValueError, match="eval.protocol='viper': expected one of"):
        replace(EvalConfig(), protocol="viper")


@pytest.mark.usefixtures("path")
def test_worker_threads_run_in_the_callers_inference_mode():
    """Under Lightning's test loop (inference mode) evaluate and re_rank write from worker threads
    into tensors made by the caller: the workers must share the caller's mode."""
    from reidtricks.evaluation import re_rank

    gen = torch.Generator().manual_seed(0)
    qf, gf = torch.randn(300, 16, generator=gen), torch.randn(900, 16, generator=gen)
    q_pids, g_pids = (
        torch.randint(0, 40, (300,), generator=gen),
        torch.randint(0, 40, (900,), generator=gen),
    )
    q_cams, g_cams = (
        torch.randint(0, 2, (300,), generator=gen),
        torch.randint(0, 2, (900,), generator=gen),
    )
    with torch.inference_mode():
        dist = torch.cdist(qf, gf)
        result = evaluate(
            dist,
            q_pids,
            g_pids,
            q_cams,
            g_cams,
            chunk_size=32,
            threads=2,
            max_rank=50,
            protocol="market",
        )
        reranked = re_rank(qf, gf, k1=6, k2=3, lambda_value=0.3, threads=2)
    expected = evaluate_per_query(
        dist.clone().numpy(), q_pids.numpy(), g_pids.numpy(), q_cams.numpy(), g_cams.numpy()
    )
    assert result.mAP == pytest.approx(expected[1], abs=1e-9)
    assert reranked.shape == (300, 900)


def test_ragged_arange_against_a_loop():
    from reidtricks.evaluation.ragged import ragged_arange

    rng = np.random.default_rng(3)
    lengths = torch.from_numpy(rng.integers(0, 5, 40))  # zero-length owners included
    starts = torch.from_numpy(rng.integers(0, 100, 40))
    owner, position = ragged_arange(starts, lengths)
    expected = [(o, int(starts[o]) + i) for o in range(40) for i in range(int(lengths[o]))]
    assert list(zip(owner.tolist(), position.tolist(), strict=True)) == expected
