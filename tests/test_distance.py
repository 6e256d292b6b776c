"""pairwise_distance against the formulas written out in float64, chunking and dtypes."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from reidtricks.evaluation import pairwise_distance

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def features(seed: int, num_q: int = 23, num_g: int = 41, dim: int = 16):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(num_q, dim, generator=g), torch.randn(num_g, dim, generator=g)


def expected(qf: torch.Tensor, gf: torch.Tensor, metric: str) -> np.ndarray:
    q, g = qf.double().numpy(), gf.double().numpy()
    out = np.empty((len(q), len(g)))
    for i in range(len(q)):
        for j in range(len(g)):
            if metric == "cosine":
                out[i, j] = 1 - q[i] @ g[j] / (np.linalg.norm(q[i]) * np.linalg.norm(g[j]))
            else:
                sq = np.sum((q[i] - g[j]) ** 2)
                out[i, j] = np.sqrt(sq) if metric == "euclidean" else sq
    return out


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("metric", ["euclidean", "sqeuclidean", "cosine"])
def test_matches_formula(metric, device):
    qf, gf = features(0)
    out = pairwise_distance(qf.to(device), gf.to(device), metric=metric)
    assert out.dtype == torch.float32 and out.device.type == device
    assert out.shape == (23, 41)
    np.testing.assert_allclose(out.cpu().numpy(), expected(qf, gf, metric), rtol=1e-5, atol=2e-5)


def test_identical_vectors_are_at_zero():
    qf, _ = features(1)
    for metric in ("euclidean", "sqeuclidean", "cosine"):
        diag = torch.diagonal(pairwise_distance(qf, qf, metric=metric))
        tol = 1e-2 if metric == "euclidean" else 1e-4  # sqrt magnifies the rounding of 0
        assert diag.min() >= 0 and diag.max() < tol


@pytest.mark.parametrize("metric", ["euclidean", "sqeuclidean", "cosine"])
def test_chunked_equals_unchunked(metric):
    qf, gf = features(2, num_q=37)
    full = pairwise_distance(qf, gf, metric=metric, chunk_size=4096)
    for chunk in (1, 5, 36):
        torch.testing.assert_close(
            pairwise_distance(qf, gf, metric=metric, chunk_size=chunk), full, rtol=1e-6, atol=1e-6
        )


def test_half_inputs_are_computed_in_fp32():
    qf, gf = features(3)
    qh, gh = qf.half(), gf.half()
    out = pairwise_distance(qh, gh, metric="sqeuclidean")
    assert out.dtype == torch.float32
    np.testing.assert_allclose(
        out.numpy(), expected(qh.float(), gh.float(), "sqeuclidean"), rtol=1e-5, atol=2e-5
    )


def test_unknown_metric_names_value_and_choices():
    qf, gf = features(4)
    with pytest.raises(ValueError, match=r"'manhattan'.*euclidean.*sqeuclidean.*cosine"):
        pairwise_distance(qf, gf, metric="manhattan")


def test_mismatched_widths_raise():
    with pytest.raises(ValueError, match="same width"):
        pairwise_distance(torch.zeros(2, 3), torch.zeros(4, 5), metric="euclidean")
