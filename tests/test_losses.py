"""Each loss against a brute-force computation written out here."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from reidtricks.losses import (
    CenterLoss,
    batch_hard_triplet_loss,
    center_loss,
    cross_entropy_loss,
    euclidean_distance_matrix,
)


def brute_ce(logits, targets, eps):
    n = logits.shape[1]
    total = 0.0
    for row, y in zip(logits.tolist(), targets.tolist(), strict=True):
        log_z = math.log(sum(math.exp(v) for v in row))
        for c, v in enumerate(row):
            q = (1 - eps) * (c == y) + eps / n
            total -= q * (v - log_z)
    return total / len(targets)


@pytest.mark.parametrize("eps", [0.0, 0.1])
def test_cross_entropy_with_smoothing_matches_the_formula(eps):
    g = torch.Generator().manual_seed(0)
    logits, targets = torch.randn(6, 5, generator=g), torch.tensor([0, 1, 4, 4, 2, 3])
    assert cross_entropy_loss(logits, targets, eps).item() == pytest.approx(
        brute_ce(logits, targets, eps), rel=1e-5
    )


def test_cross_entropy_is_fp32_for_bf16_input():
    logits = torch.randn(4, 3).bfloat16()
    assert cross_entropy_loss(logits, torch.tensor([0, 1, 2, 0]), 0.1).dtype == torch.float32


def brute_distance(a, b):
    return math.sqrt(max(sum((x - y) ** 2 for x, y in zip(a, b, strict=True)), 1e-12))


def brute_triplet(feats, targets, margin, soft=False):
    rows, ids = feats.tolist(), targets.tolist()
    losses = []
    for i, anchor in enumerate(rows):
        pos = [brute_distance(anchor, r) for j, r in enumerate(rows) if ids[j] == ids[i]]
        neg = [brute_distance(anchor, r) for j, r in enumerate(rows) if ids[j] != ids[i]]
        d = max(pos) - min(neg)
        losses.append(math.log1p(math.exp(d)) if soft else max(0.0, d + margin))
    return sum(losses) / len(losses)


@pytest.mark.parametrize("soft", [False, True])
def test_batch_hard_triplet_matches_brute_force(soft):
    g = torch.Generator().manual_seed(1)
    feats = torch.randn(8, 16, generator=g)
    targets = torch.tensor([0, 0, 1, 1, 2, 2, 3, 3])
    got = batch_hard_triplet_loss(feats, targets, 0.3, soft_margin=soft, normalize_features=False)
    assert got.item() == pytest.approx(brute_triplet(feats, targets, 0.3, soft), rel=1e-4)


def test_triplet_normalisation_and_dtype():
    g = torch.Generator().manual_seed(2)
    feats, targets = torch.randn(8, 4, generator=g) * 10, torch.tensor([0, 0, 1, 1, 2, 2, 3, 3])
    got = batch_hard_triplet_loss(
        feats.bfloat16(), targets, 0.3, soft_margin=False, normalize_features=True
    )
    expected = brute_triplet(F.normalize(feats.bfloat16().float(), dim=1), targets, 0.3)
    assert got.dtype == torch.float32 and got.item() == pytest.approx(expected, rel=1e-3)


def test_euclidean_distance_matrix_formula():
    g = torch.Generator().manual_seed(3)
    x, y = torch.randn(3, 5, generator=g), torch.randn(4, 5, generator=g)
    d = euclidean_distance_matrix(x, y)
    for i in range(3):
        for j in range(4):
            assert d[i, j].item() == pytest.approx(
                brute_distance(x[i].tolist(), y[j].tolist()), rel=1e-5
            )
    assert euclidean_distance_matrix(x, x).diagonal().max().item() == pytest.approx(1e-6, abs=1e-5)


def test_center_loss_matches_the_formula():
    g = torch.Generator().manual_seed(4)
    feats, centers = torch.randn(5, 3, generator=g), torch.randn(4, 3, generator=g)
    targets = torch.tensor([0, 3, 3, 1, 0])
    brute = (
        sum(
            sum(
                (f - c) ** 2
                for f, c in zip(feats[j].tolist(), centers[targets[j]].tolist(), strict=True)
            )
            for j in range(5)
        )
        / 5
    )
    assert center_loss(feats, targets, centers).item() == pytest.approx(brute, rel=1e-5)
    module = CenterLoss(num_classes=4, feat_dim=3)
    assert module.centers.shape == (4, 3) and module.centers.requires_grad
    with torch.no_grad():
        module.centers.copy_(centers)
    assert module(feats, targets).item() == pytest.approx(brute, rel=1e-5)
