"""`reidtricks.adapt`: the Jaccard distance and DBSCAN against brute force written out here, the
pseudo-label measures against hand-computed values, target labels that never reach training
(scrambled labels and file names give bit-identical results), and tiny end-to-end runs whose
checkpoints the other commands take."""

from __future__ import annotations

import copy
import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from omegaconf import OmegaConf
from omegaconf.errors import MissingMandatoryValue

from helpers import compose_config, compose_evaluate
from reidtricks.adaptation import (
    NOISE,
    SparseDistances,
    Target,
    camera_spread,
    cluster_centroids,
    dbscan_labels,
    label_quality,
)
from reidtricks.adaptation.batchnorm import (
    bn_statistics,
    load_bn_statistics,
    reestimate_bn_statistics,
)
from reidtricks.adaptation.memory import (
    MASKED,
    ClusterMemory,
    momentum_update,
    same_camera_logits,
)
from reidtricks.adaptation.rounds import (
    centroid_classifier,
    check_clusters,
    class_cameras,
    training_labels,
)
from reidtricks.adaptation.settings import AdaptConfig
from reidtricks.adaptation.target import folder_cameras
from reidtricks.cli.app import config_dir
from reidtricks.errors import InputError, MissingInputError
from reidtricks.evaluation.rerank import jaccard_distance_pairs
from reidtricks.inference.checkpoint import build_net_from_checkpoint, load_checkpoint

TINY_ADAPT = ["adapt.k1=10", "adapt.k2=3", "adapt.eps=0.5", "adapt.min_samples=2"]


def clustered_features(seed: int, n: int, dim: int = 8, ids: int = 6) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((ids, dim)) * 2
    return (centers[rng.integers(0, ids, n)] + rng.standard_normal((n, dim))).astype(np.float32)


# -- the k-reciprocal Jaccard distance ---------------------------------------------------------
def brute_force_jaccard(
    x: np.ndarray, k1: int, k2: int, cams: np.ndarray | None = None, penalty: float = 0.0
) -> np.ndarray:
    """Zhong et al.'s Jaccard distance between every two rows, from the sets themselves; with
    `cams`, two different rows of one camera start `penalty` further apart."""
    x = x.astype(np.float64)
    n = len(x)
    d = ((x[:, None, :] - x[None, :, :]) ** 2).sum(-1)
    if cams is not None:
        d = d + penalty * ((cams[:, None] == cams[None, :]) & ~np.eye(n, dtype=bool))
    d = d / d.max(axis=1, keepdims=True)  # each row divided by its largest distance
    order = [list(np.argsort(d[i], kind="stable")) for i in range(n)]

    def top(i: int, m: int) -> set[int]:
        return set(order[i][:m])  # the m nearest, i itself first

    def reciprocal(i: int, k: int) -> set[int]:
        return {j for j in top(i, k + 1) if i in top(j, k + 1)}

    half = int(np.around(k1 / 2))
    v = np.zeros((n, n))
    for i in range(n):
        r = reciprocal(i, k1)
        expanded = set(r)
        for c in r:
            rc = reciprocal(c, half)
            if len(rc & r) > 2 / 3 * len(rc):
                expanded |= rc
        weights = {j: math.exp(-d[i, j]) for j in expanded}
        total = sum(weights.values())
        for j, w in weights.items():
            v[i, j] = w / total
    if k2 != 1:
        v = np.stack([v[order[i][:k2]].mean(axis=0) for i in range(n)])
    jac = np.empty((n, n))
    for i in range(n):
        for j in range(n):
            s = np.minimum(v[i], v[j]).sum()
            jac[i, j] = 1 - s / (2 - s)
    return jac


@pytest.mark.parametrize(
    "seed, n, k1, k2, chunk, threads",
    [
        (0, 50, 6, 3, 7, 1),  # several row chunks
        (1, 40, 5, 1, 2048, 2),  # odd k1 (round(2.5) = 2), no local expansion, two threads
        (2, 45, 20, 6, 9, 1),  # the paper's k1 / k2 on a small set
        (3, 30, 60, 60, 4, 1),  # k1 + 1 and k2 beyond N: every pair shares a neighbour
    ],
)
def test_jaccard_distance_matches_brute_force(seed, n, k1, k2, chunk, threads):
    x = clustered_features(seed, n)
    expected = brute_force_jaccard(x, k1, k2)
    rows, cols, dist = jaccard_distance_pairs(torch.from_numpy(x), k1, k2, chunk, threads)
    dense = np.ones((n, n))
    dense[rows.numpy(), cols.numpy()] = dist.numpy()
    np.testing.assert_allclose(dense, expected, rtol=0, atol=1e-5)
    # Listed: exactly the pairs below 1, each once, row-major, symmetric to the bit, >= 0.
    assert len(rows) == int((expected < 1 - 1e-9).sum())
    keys = rows.numpy() * n + cols.numpy()
    assert (np.diff(keys) > 0).all()
    assert np.array_equal(dense, dense.T) and dist.min() >= 0


@pytest.mark.parametrize(
    "seed, n, k1, k2, chunk, penalty", [(5, 48, 6, 3, 7, 0.7), (6, 40, 9, 1, 2048, 3.0)]
)
def test_camera_penalised_jaccard_distance_matches_brute_force(seed, n, k1, k2, chunk, penalty):
    x = clustered_features(seed, n)
    cams = np.random.default_rng(seed).integers(0, 3, n)
    expected = brute_force_jaccard(x, k1, k2, cams, penalty)
    rows, cols, dist = jaccard_distance_pairs(
        torch.from_numpy(x), k1, k2, chunk, camera_penalty=(torch.from_numpy(cams), penalty)
    )
    dense = np.ones((n, n))
    dense[rows.numpy(), cols.numpy()] = dist.numpy()
    np.testing.assert_allclose(dense, expected, rtol=0, atol=1e-5)
    assert np.array_equal(dense, dense.T)
    # The penalty does move the distances; jaccard_distances passes it on (0: the plain one).
    plain = brute_force_jaccard(x, k1, k2)
    assert np.abs(expected - plain).max() > 0.05
    from reidtricks.adaptation.clustering import jaccard_distances

    ours = jaccard_distances(torch.from_numpy(x), k1, k2, cams=cams, same_camera_penalty=penalty)
    off = jaccard_distances(torch.from_numpy(x), k1, k2, cams=cams, same_camera_penalty=0.0)
    normalised = x / np.linalg.norm(x, axis=1, keepdims=True)  # jaccard_distances normalises
    np.testing.assert_allclose(
        ours.dense(), brute_force_jaccard(normalised, k1, k2, cams, penalty), atol=1e-5
    )
    np.testing.assert_allclose(off.dense(), brute_force_jaccard(normalised, k1, k2), atol=1e-5)


def test_camera_penalty_needs_one_id_per_feature():
    x = torch.from_numpy(clustered_features(7, 20))
    with pytest.raises(ValueError, match="expected 20 camera ids and an amount >= 0, got"):
        jaccard_distance_pairs(x, 5, 2, camera_penalty=(torch.zeros(19, dtype=torch.int64), 0.5))


# -- DBSCAN --------------------------------------------------------------------------------
def brute_force_dbscan(dist: np.ndarray, eps: float, min_samples: int) -> np.ndarray:
    """Ester et al.'s DBSCAN on a dense matrix: cores have >= min_samples items within eps
    (themselves included); clusters grow from the lowest unlabelled core, in index order; a
    border item joins the first cluster that reaches it."""
    n = len(dist)
    near = [np.flatnonzero(dist[i] <= eps) for i in range(n)]
    core = [len(nb) >= min_samples for nb in near]
    labels = np.full(n, NOISE)
    cluster = 0
    for i in range(n):
        if labels[i] != NOISE or not core[i]:
            continue
        labels[i], frontier = cluster, [i]
        while frontier:
            for j in near[frontier.pop()]:
                if labels[j] == NOISE:
                    labels[j] = cluster
                    if core[j]:
                        frontier.append(j)
        cluster += 1
    return labels


def sparse_below_one(dense: np.ndarray) -> SparseDistances:
    rows, cols = np.nonzero(dense < 1)
    return SparseDistances(len(dense), rows, cols, dense[rows, cols])


@pytest.mark.parametrize("seed, eps, min_samples", [(0, 0.02, 3), (1, 0.03, 5), (2, 0.04, 7)])
def test_dbscan_matches_brute_force_on_fixed_points(seed, eps, min_samples):
    rng = np.random.default_rng(seed)
    points = np.concatenate([rng.normal(c, 0.03, (15, 2)) for c in rng.uniform(0, 1, (5, 2))])
    points = np.concatenate([points, rng.uniform(0, 1, (10, 2))])  # scattered noise
    dense = np.sqrt(((points[:, None] - points[None]) ** 2).sum(-1)) / 1.5
    dense[dense >= 0.5] = 1.0  # far pairs: unlisted, at the default distance 1
    expected = brute_force_dbscan(dense, eps, min_samples)
    labels = dbscan_labels(sparse_below_one(dense), eps, min_samples)
    core = (dense <= eps).sum(1) >= min_samples
    assert expected.max() >= 2 and (expected == NOISE).any()  # clusters and noise both,
    assert ((expected != NOISE) & ~core).sum() >= 3  # and border items
    np.testing.assert_array_equal(labels, expected)


def test_dbscan_on_the_jaccard_distance_matches_brute_force():
    x = clustered_features(4, 60)
    dense = brute_force_jaccard(x, 8, 3)
    rows, cols, dist = jaccard_distance_pairs(torch.from_numpy(x), 8, 3)
    ours = SparseDistances(60, rows.numpy(), cols.numpy(), dist.numpy().astype(np.float64))
    for eps, min_samples in ((0.5, 4), (0.6, 2), (0.3, 3)):
        expected = brute_force_dbscan(dense, eps, min_samples)
        np.testing.assert_array_equal(dbscan_labels(ours, eps, min_samples), expected)


def test_dbscan_counts_a_pair_at_distance_zero_as_neighbours():
    # Items 0 and 1 are the same image twice (distance 0, stored explicitly), item 2 is far.
    dense = np.array([[0.0, 0.0, 1.0], [0.0, 0.0, 1.0], [1.0, 1.0, 0.0]])
    np.testing.assert_array_equal(dbscan_labels(sparse_below_one(dense), 0.1, 2), [0, 0, NOISE])


# -- pseudo-label quality ------------------------------------------------------------------
def test_label_quality_against_hand_computed_values():
    pseudo = [0, 0, 0, 1, 1, NOISE]  # the left-out item (true id 9) is not measured
    true = [5, 5, 7, 7, 7, 9]
    # Purity: cluster 0 holds ids {5, 5, 7} (majority 2), cluster 1 {7, 7} (2): 4 of 5.
    # NMI: H(true) = H(pseudo) = -(.4 ln .4 + .6 ln .6); joint cells .4, .2, .4;
    # MI = H(t) + H(p) - H(joint); NMI = MI / mean(H(t), H(p)).
    h = -(0.4 * math.log(0.4) + 0.6 * math.log(0.6))
    h_joint = -(2 * 0.4 * math.log(0.4) + 0.2 * math.log(0.2))
    nmi = (2 * h - h_joint) / h
    # ARI: contingency [[2, 1], [0, 2]]: sum C(n_ij, 2) = 2; rows C(3,2) + C(2,2) = 4; columns
    # C(2,2) + C(3,2) = 4; C(5, 2) = 10: (2 - 4*4/10) / ((4 + 4)/2 - 4*4/10) = 1/6.
    ari = (2 - 1.6) / (4 - 1.6)
    quality = label_quality(pseudo, true)
    assert quality["purity"] == pytest.approx(0.8)
    assert quality["nmi"] == pytest.approx(nmi) and nmi == pytest.approx(0.432538, abs=1e-6)
    assert quality["ari"] == pytest.approx(ari) and ari == pytest.approx(1 / 6)


def test_label_quality_of_perfect_and_empty_clusterings():
    true = [3, 3, 8, 8, 8, 1]
    assert label_quality([2, 2, 0, 0, 0, 1], true) == pytest.approx(
        {"purity": 1.0, "nmi": 1.0, "ari": 1.0}
    )
    assert all(math.isnan(v) for v in label_quality([NOISE] * 6, true).values())


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_camera_spread_matches_pair_counting_by_brute_force(seed):
    rng = np.random.default_rng(seed)
    n = 60
    true = rng.integers(0, 8, n)
    cams = rng.integers(0, 3, n)
    pseudo = np.where(rng.random(n) < 0.2, NOISE, (true + rng.integers(0, 2, n)) % 9)
    possible = together = 0
    for i in range(n):
        for j in range(i + 1, n):
            if true[i] == true[j] and cams[i] != cams[j]:
                possible += 1
                together += pseudo[i] == pseudo[j] != NOISE
    multi = sum(
        len({cams[i] for i in range(n) if pseudo[i] == c}) > 1 for c in set(pseudo) - {NOISE}
    )
    got = camera_spread(pseudo, cams, true)
    assert got["multi_camera_clusters"] == multi
    assert got["cross_camera_together"] == pytest.approx(together / possible)
    assert camera_spread(pseudo, cams) == {"multi_camera_clusters": multi}


def test_camera_spread_of_camera_bound_and_of_perfect_clusters():
    true, cams = [0, 0, 0, 1, 1, 1], [0, 0, 1, 0, 1, 1]
    bound = camera_spread([0, 0, 1, 2, 3, 3], cams, true)  # one cluster per (person, camera)
    assert bound == {"multi_camera_clusters": 0, "cross_camera_together": 0.0}
    assert camera_spread(true, cams, true) == {
        "multi_camera_clusters": 2, "cross_camera_together": 1.0,
    }  # fmt: skip
    assert math.isnan(camera_spread([0, 0], [1, 1], [5, 5])["cross_camera_together"])


def test_round_line_says_how_clusters_lie_across_cameras():
    from reidtricks.adaptation.rounds import round_line

    record = {"round": 2, "clusters": 5, "kept": 40, "images": 50, "left_out": 10,
              "multi_camera_clusters": 1, "cross_camera_together": 0.125, "seconds": 3.0}  # fmt: skip
    assert round_line(record, 5) == (
        "round 2/5: 5 clusters, 40 of 50 images kept (10 left out); 1 clusters span 2+ cameras, "
        "12.5% of cross-camera same-person pairs together; 3.0 s"
    )
    record["cross_camera_together"] = float("nan")  # no such pairs: nothing to say about them
    assert "1 clusters span 2+ cameras; 3.0 s" in round_line(record, 5)


def test_centroids_and_the_classifier_built_from_them():
    feats = torch.tensor([[1.0, 0.0], [3.0, 0.0], [0.0, 2.0], [5.0, 5.0], [0.0, 4.0]])
    labels = [0, 0, 1, NOISE, 1]
    centroids = cluster_centroids(feats, labels)
    torch.testing.assert_close(centroids, torch.tensor([[2.0, 0.0], [0.0, 3.0]]))
    layer = centroid_classifier(centroids, bias=True)
    torch.testing.assert_close(layer.weight, torch.tensor([[1.0, 0.0], [0.0, 1.0]]))
    assert torch.equal(layer.bias, torch.zeros(2))
    assert centroid_classifier(centroids, bias=False).bias is None


def test_momentum_update_matches_the_rule_written_out():
    rng = np.random.default_rng(0)
    memory = rng.normal(size=(4, 3))
    memory /= np.linalg.norm(memory, axis=1, keepdims=True)
    feats = rng.normal(size=(5, 3))
    labels = [2, 0, 2, 2, 3]  # label 2 three times: each update sees the one before
    expected = memory.copy()
    for f, y in zip(feats, labels, strict=True):
        row = 0.2 * expected[y] + 0.8 * f / np.sqrt((f**2).sum())
        expected[y] = row / np.sqrt((row**2).sum())
    got = momentum_update(torch.tensor(memory), torch.tensor(feats), torch.tensor(labels), 0.2)
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-12)
    np.testing.assert_array_equal(got.numpy()[1], memory[1])  # row 1 saw no feature


def test_cluster_memory_scores_by_cosine_over_temperature_and_learns_nothing():
    centroids = torch.tensor([[2.0, 0.0, 0.0], [0.0, 3.0, 0.0], [1.0, 1.0, 0.0]])
    memory = ClusterMemory(centroids, temperature=0.05, momentum=0.5)
    assert not any(p.requires_grad for p in memory.parameters())
    feats = torch.tensor([[1.0, 1.0, 0.0], [0.0, -2.0, 2.0]], requires_grad=True)
    logits = memory(feats)
    s = math.sqrt(0.5)
    expected = torch.tensor([[s, s, 1.0], [0.0, -s, -0.5]]) / 0.05  # cosines written out
    torch.testing.assert_close(logits, expected)
    logits[:, 0].sum().backward()
    assert feats.grad is not None and memory.weight.grad is None  # gradient to the features only
    memory.update(torch.tensor([1, 1]))
    row = 0.5 * torch.tensor([0.0, 1.0, 0.0]) + 0.5 * torch.tensor([s, s, 0.0])
    row = row / row.norm()
    row = 0.5 * row + 0.5 * torch.tensor([0.0, -s, s])
    torch.testing.assert_close(memory.weight[1], row / row.norm())
    torch.testing.assert_close(memory.weight[[0, 2]], torch.tensor([[1.0, 0, 0], [s, s, 0]]))
    memory.eval()
    memory(feats)  # eval passes leave nothing to update with
    with pytest.raises(RuntimeError, match="2 labels for no training batch"):
        memory.update(torch.tensor([0, 1]))
    assert torch.equal(ClusterMemory(centroids, 0.05, 0.2, bias=True).bias, torch.zeros(3))


def test_same_camera_logits_mask_other_cameras_but_the_own_cluster():
    logits = torch.arange(8.0).reshape(2, 4)
    rows = torch.tensor([0, 1, 0, 1])  # the cameras of the 4 clusters
    # sample 0: camera 0, cluster 1 (a camera-1 cluster: kept as its own); sample 1: camera 1
    got = same_camera_logits(logits, torch.tensor([1, 3]), torch.tensor([0, 1]), rows)
    m = MASKED
    torch.testing.assert_close(got, torch.tensor([[0.0, 1.0, 2.0, m], [m, 5.0, m, 7.0]]))
    loss = torch.nn.functional.cross_entropy(got, torch.tensor([1, 3]))
    # the softmax over the unmasked entries only, written out
    expected = -(math.log(math.exp(1) / (1 + math.exp(1) + math.exp(2)))
                 + math.log(math.exp(7) / (math.exp(5) + math.exp(7)))) / 2  # fmt: skip
    assert loss.item() == pytest.approx(expected, rel=1e-6)


def test_camera_aware_memory_masks_training_logits_only():
    centroids = torch.eye(3)
    memory = ClusterMemory(centroids, 0.1, 0.2, row_cameras=torch.tensor([0, 0, 1]))
    feats = torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    with pytest.raises(RuntimeError, match="2 samples, none labels expected"):
        memory(feats)
    memory.expect(torch.tensor([0, 2]), torch.tensor([0, 1]))
    torch.testing.assert_close(
        memory(feats), torch.tensor([[10.0, 0.0, MASKED], [MASKED, MASKED, 10.0]])
    )
    memory.eval()
    torch.testing.assert_close(memory(feats), torch.tensor([[10.0, 0, 0], [0, 0, 10.0]]))


class ModeProbe(torch.nn.Module):
    """Records whether it ran in training mode (stands for MixStyle / dropout)."""

    def __init__(self) -> None:
        super().__init__()
        self.modes: list[bool] = []

    def forward(self, x):
        self.modes.append(self.training)
        return x


def test_adabn_statistics_are_the_average_of_the_batch_statistics():
    torch.manual_seed(0)
    conv, probe = torch.nn.Conv2d(3, 4, 1), ModeProbe()
    bn2, bn1 = torch.nn.BatchNorm2d(4), torch.nn.BatchNorm1d(4)
    net = torch.nn.Sequential(conv, bn2, probe, torch.nn.AdaptiveAvgPool2d(1),
                              torch.nn.Flatten(), bn1)  # fmt: skip
    net.train()
    weights = {k: v.clone() for k, v in net.state_dict().items() if "running" not in k}
    batches = [torch.randn(n, 3, 5, 2) * 3 + 1 for n in (4, 7, 2)]
    assert reestimate_bn_statistics(net, batches) == 13
    means, variances, pooled_means, pooled_vars = [], [], [], []
    with torch.no_grad():
        for x in batches:  # the statistics written out from the layers' inputs
            y = conv(x)
            means.append(y.mean(dim=(0, 2, 3)))
            variances.append(y.var(dim=(0, 2, 3), unbiased=True))
            z = torch.nn.functional.batch_norm(y, None, None, bn2.weight, bn2.bias, training=True)
            pooled = z.mean(dim=(2, 3))
            pooled_means.append(pooled.mean(0))
            pooled_vars.append(pooled.var(0, unbiased=True))
    torch.testing.assert_close(bn2.running_mean, torch.stack(means).mean(0))
    torch.testing.assert_close(bn2.running_var, torch.stack(variances).mean(0))
    torch.testing.assert_close(bn1.running_mean, torch.stack(pooled_means).mean(0))
    torch.testing.assert_close(bn1.running_var, torch.stack(pooled_vars).mean(0))
    assert int(bn2.num_batches_tracked) == 3
    assert probe.modes == [False, False, False]  # only the BatchNorm layers trained
    assert net.training and probe.training and bn2.momentum == bn1.momentum == 0.1  # restored
    after = {k: v for k, v in net.state_dict().items() if "running" not in k}
    assert all(torch.equal(after[k], v) for k, v in weights.items() if "num_batches" not in k)


def test_bn_statistics_copy_and_load_back_and_refuse_another_network():
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 1), torch.nn.BatchNorm2d(4),
                              torch.nn.BatchNorm2d(4, track_running_stats=False))  # fmt: skip
    before = bn_statistics(net)
    assert sorted(before) == ["1.num_batches_tracked", "1.running_mean", "1.running_var"]
    reestimate_bn_statistics(net, [torch.randn(4, 3, 2, 2) + 5])
    assert not torch.equal(net[1].running_mean, before["1.running_mean"])  # a copy, not a view
    load_bn_statistics(net, before)
    assert all(torch.equal(net.state_dict()[k], v) for k, v in before.items())
    other = torch.nn.Sequential(
        torch.nn.Conv2d(3, 4, 1), torch.nn.Identity(), torch.nn.BatchNorm2d(4)
    )
    with pytest.raises(ValueError, match=r"statistics of another network: \['1\.num_batches"):
        load_bn_statistics(net, bn_statistics(other))


def test_camera_groups_keep_each_camera_and_fold_single_images_into_the_largest():
    from reidtricks.adaptation.camera_bn import camera_groups

    groups = camera_groups(torch.tensor([1, 0, 1, 2, 1, 0]))
    assert [g.tolist() for g in groups] == [[1, 5], [0, 2, 3, 4]]  # camera 2's one image joins 1
    assert [g.tolist() for g in camera_groups(torch.tensor([3, 3, 3]))] == [[0, 1, 2]]
    assert [g.tolist() for g in camera_groups(torch.tensor([4, 0, 2]))] == [[0, 1, 2]]


def test_camera_batches_normalise_each_camera_with_its_own_batch_statistics(trained_ckpt):
    """CameraBatchModule's training forward against the network run by hand on each camera's
    rows alone (train mode: BatchNorm on that sub-batch's statistics), rows back in order."""
    from reidtricks.adaptation.camera_bn import CameraBatchModule

    checkpoint = load_checkpoint(trained_ckpt)
    net = build_net_from_checkpoint(checkpoint)
    module = CameraBatchModule(net, 4)
    module.train()
    torch.manual_seed(0)
    images = torch.randn(7, 3, 64, 32)
    cams = torch.tensor([1, 0, 1, 1, 0, 0, 1])
    by_hand = copy.deepcopy(net).train()
    module._cameras = cams
    out = module(images)
    module._cameras = None
    for cam in (0, 1):
        rows = torch.nonzero(cams == cam).flatten()
        expected = by_hand(images[rows])
        torch.testing.assert_close(out.feat_before_bn[rows], expected.feat_before_bn)
        torch.testing.assert_close(out.logits[rows], expected.logits)
    whole = copy.deepcopy(by_hand)(images)
    assert not torch.allclose(whole.feat_before_bn, out.feat_before_bn)  # not one batch
    with pytest.raises(InputError, match=r"adapt\.camera_bn_training=true needs adapt\.camera_bn"):
        AdaptConfig(camera_bn_training=True)


def test_class_cameras_and_folder_cameras():
    labels = np.array([0, 0, 0, 1, 1, NOISE, 2, 2])
    camids = [1, 1, 0, 2, 0, 2, 1, 0]  # class 2 ties: the lowest camera
    assert class_cameras(labels, camids, 3).tolist() == [1, 0, 0]
    root = Path("crops")
    paths = [root / "camB" / "x.jpg", root / "a.jpg", root / "camA" / "d" / "y.jpg"]
    assert folder_cameras(root, paths) == (2, 0, 1)  # "", camA, camB in name order
    assert folder_cameras(root, [root / "camA" / "x.jpg", root / "camA" / "y.jpg"]) is None


@pytest.mark.parametrize(
    "labels, match",
    [
        ([NOISE] * 6, r"adapt\.eps=0\.6: round 2: .* left all 6 target images out .* raise adapt"),
        ([0, 0, 0, 0, NOISE, 0], r"adapt\.eps=0\.6: .* all 5 clustered images in one cluster"),
        (
            [0, 0, 1, 1, 2, 2],
            r"found 3 clusters, fewer than the P=4 .* lower adapt\.p, lower adapt\.min_samples",
        ),
    ],
)
def test_too_few_clusters_is_one_line_naming_eps(labels, match):
    with pytest.raises(InputError, match=match):
        check_clusters(np.array(labels), AdaptConfig(), p=4, round_index=2)
    assert check_clusters(np.array([0, 1, 2, 3, NOISE]), AdaptConfig(), 4, 1) == 4


# -- configs ---------------------------------------------------------------------------------
def command_cfg(name: str, ckpt: Path, out: Path, *extra: str):
    """extract / export config as the CLI builds it, without progress bars or loader processes."""
    return compose_config(
        name, f"ckpt={ckpt}", f"paths.output_dir={out}", "num_workers=0", "progress=false", *extra
    )


def adapt_cfg(ckpt: Path, out: Path, *extra: str):
    """The adapt config as the CLI builds it: CPU, no progress bars, no loader processes."""
    import reidtricks.cli.adapt  # noqa: F401  (registers the adapt node)

    return compose_config(
        "adapt", f"ckpt={ckpt}", f"paths.output_dir={out}", "trainer=cpu", "progress=false",
        "+trainer.enable_progress_bar=false", "loader.num_workers=0", *extra,
    )  # fmt: skip


def test_outliers_are_dropped_or_each_their_own_class_after_the_clusters():
    labels = np.array([1, NOISE, 0, NOISE, 1, NOISE])
    np.testing.assert_array_equal(training_labels(labels, 2, "drop"), labels)
    np.testing.assert_array_equal(training_labels(labels, 2, "instance"), [1, 2, 0, 3, 1, 4])
    assert (labels == [1, NOISE, 0, NOISE, 1, NOISE]).all()  # the round's labels are untouched


def test_adapt_with_outliers_as_instances_trains_a_class_per_left_out_image(
    trained_ckpt, tiny_data_dir, tmp_path
):
    from reidtricks.cli.adapt import adapt

    out = tmp_path / "adapt"
    metrics = adapt(adapt_cfg(trained_ckpt, out, "target=synthetic", "target.dataset.preset=tiny",
                              f"paths.data_dir={tiny_data_dir}", "adapt.rounds=1",
                              "adapt.epochs_per_round=1", "adapt.outliers=instance",
                              *TINY_ADAPT[:2], "adapt.eps=0.3", "adapt.min_samples=3"))  # fmt: skip
    (record,) = metrics["rounds"]
    assert record["left_out"] > 0, "pick a stricter eps: the test needs images left out"
    assert record["instance_classes"] == record["left_out"]
    classes = load_checkpoint(Path(metrics["checkpoint"]))["reidtricks"]["model_args"][
        "num_classes"
    ]
    assert classes == record["clusters"] + record["left_out"]


def test_every_dataset_is_a_target():
    conf = Path(config_dir())
    targets = {p.stem for p in (conf / "target").glob("*.yaml")}
    assert "folder" in targets  # target=folder: unlabelled crops (not the Market-style parser)
    for name in (p.stem for p in (conf / "dataset").glob("*.yaml") if p.stem != "folder"):
        assert name in targets, f"conf/target/{name}.yaml is missing"
        target = OmegaConf.load(conf / "target" / f"{name}.yaml")
        assert target.name == name and {"/dataset@dataset": name} in target.defaults
    cfg = adapt_cfg(Path("x.ckpt"), Path("out"), "target=prid2011", "paths.data_dir=/data")
    expected = OmegaConf.load(conf / "dataset" / "prid2011.yaml")
    assert cfg.target.name == "prid2011" and cfg.target.dataset.root == "/data"
    assert OmegaConf.to_container(cfg.target.dataset) == OmegaConf.to_container(expected)


@pytest.mark.parametrize(
    "override, match",
    [
        ("adapt.eps=1.5", r"adapt\.eps=1\.5: expected"),
        ("adapt.eps=0", r"adapt\.eps=0: expected a Jaccard distance strictly between 0 and 1"),
        ("adapt.rounds=0", r"adapt\.rounds=0: expected an integer >= 1"),
        ("adapt.p=0", r"adapt\.p=0: expected an integer >= 1"),
        ("adapt.lr=0", r"adapt\.lr=0: expected .*> 0"),
        ("adapt.outliers=keep", r"adapt\.outliers='keep': expected one of \('drop', 'instance'\)"),
        ("+adapt.epochs=3", r"adapt\.epochs: unknown setting"),
        ("adapt.classifier=cosine", r"adapt\.classifier='cosine': expected one of \('linear', "),
        ("adapt.memory_momentum=1", r"adapt\.memory_momentum=1: expected 0 <= momentum < 1"),
        ("adapt.memory_temperature=0", r"adapt\.memory_temperature=0: expected .*> 0"),
        (
            "adapt.same_camera_penalty=-0.1",
            r"adapt\.same_camera_penalty=-0\.1: expected a number in \[0, 4\]",
        ),
        ("adapt.camera_aware=true", r"adapt\.camera_aware=true needs adapt\.classifier=memory"),
        ("adapt.adabn=1", r"adapt\.adabn=1: expected true or false"),
        ("threads=0", r"threads=0: expected an integer >= 1"),
        ("+loader.workers=2", r"loader\.workers: unknown setting"),
    ],
)
def test_bad_settings_are_one_line(override, match, tmp_path):
    from reidtricks.cli.adapt import adapt

    cfg = adapt_cfg(tmp_path / "x.ckpt", tmp_path / "out", "target=folder", "target.images=x",
                    override)  # fmt: skip
    with pytest.raises(InputError, match=match):
        adapt(cfg)
    assert not (tmp_path / "out").exists()


def test_threads_is_set_before_the_checkpoint_is_read(tmp_path):
    from reidtricks.cli.adapt import adapt

    before = torch.get_num_threads()
    cfg = adapt_cfg(tmp_path / "missing.ckpt", tmp_path / "out", "target=folder",
                    "target.images=x", f"threads={before + 1}")  # fmt: skip
    try:
        with pytest.raises(MissingInputError, match=r"missing\.ckpt does not exist"):
            adapt(cfg)
        assert torch.get_num_threads() == before + 1
    finally:
        torch.set_num_threads(before)


# -- bad targets ---------------------------------------------------------------------------
def train_images(tiny_data_dir: Path) -> list[Path]:
    return sorted((tiny_data_dir / "synthetic-tiny-seed0" / "bounding_box_train").glob("*.jpg"))


def copied(images: list[Path], folder: Path) -> Path:
    folder.mkdir(parents=True)
    for path in images:
        shutil.copy(path, folder / path.name)
    return folder


def test_bad_targets_are_one_line(untrained_checkpoint, tiny_data_dir, tmp_path):
    from reidtricks.cli.adapt import adapt

    def run(folder: Path, *extra: str) -> None:
        out = tmp_path / f"out_{folder.name}"
        adapt(adapt_cfg(untrained_checkpoint, out, "target=folder", f"target.images={folder}",
                        *extra))  # fmt: skip

    with pytest.raises(MissingMandatoryValue, match="images"):  # the CLI: one line naming it
        adapt(adapt_cfg(untrained_checkpoint, tmp_path / "out", "target=folder"))
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("no images here")
    with pytest.raises(InputError, match=r"target\.images=.*empty: holds no image files"):
        run(empty)
    with pytest.raises(InputError, match=r"target\.images=.*missing: no such folder"):
        run(tmp_path / "missing")
    images = train_images(tiny_data_dir)
    few = copied(images[:5], tmp_path / "few")  # the checkpoint's batch: P 8 x K 4 = 32
    with pytest.raises(InputError, match=r"5 images, fewer than one P x K batch .*= 32\)"):
        run(few)
    bad = copied(images[:40], tmp_path / "bad")
    (bad / "zz_corrupt.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(InputError, match=r"zz_corrupt\.jpg: cannot read image .* must be readable"):
        run(bad)
    # A radius few pairs are within: no cluster, and the line says which key to change and how.
    no_cluster = r"adapt\.eps=0\.001: round 1: .*\(no cluster\); raise adapt\.eps"
    with pytest.raises(InputError, match=no_cluster):
        run(copied(images[:40], tmp_path / "spread"), "adapt.eps=0.001", "adapt.min_samples=30")
    one_camera = r"adapt\.camera_aware=true: target flat has no camera ids; it needs .*sub-folder"
    with pytest.raises(InputError, match=one_camera):  # no sub-folders: no cameras
        run(copied(images[:40], tmp_path / "flat"), "adapt.classifier=memory",
            "adapt.camera_aware=true")  # fmt: skip
    with pytest.raises(InputError, match=r"adapt\.camera_bn=true: target flat2 has no camera"):
        run(copied(images[:40], tmp_path / "flat2"), "adapt.camera_bn=true")
    penalty = r"adapt\.same_camera_penalty=0\.5: target flat3 has no camera ids"
    with pytest.raises(InputError, match=penalty):
        run(copied(images[:40], tmp_path / "flat3"), "adapt.same_camera_penalty=0.5")


# -- target labels never reach training ------------------------------------------------------
@pytest.mark.slow
def test_scrambled_target_labels_and_names_give_identical_results(
    trained_ckpt, tiny_data_dir, tmp_path
):
    from reidtricks.adaptation.rounds import Adaptation
    from reidtricks.cli.adapt import adaptation_setup, check_adapt_settings
    from reidtricks.data.datasets import SyntheticReID

    train = sorted(SyntheticReID(tiny_data_dir, preset="tiny").load().train)
    pids = np.array([pid for _, pid, _ in train])
    perm = np.random.default_rng(0).permutation(pids.max() + 1)
    assert (perm[pids] != pids).mean() > 0.5
    scrambled = tmp_path / "scrambled" / "sub"  # another depth, other names, the same order
    scrambled.mkdir(parents=True)
    renamed = []
    for rank, (path, pid, _) in enumerate(train):
        renamed.append(scrambled / f"crop{rank:04d}_person{perm[pid]:03d}.jpg")
        shutil.copy(path, renamed[-1])
    targets = {
        "plain": Target("plain", tuple(p for p, _, _ in train), tuple(pids.tolist())),
        "scrambled": Target("scrambled", tuple(map(str, renamed)), tuple(perm[pids].tolist())),
    }
    results, weights = {}, {}
    for name, target in targets.items():
        cfg = adapt_cfg(trained_ckpt, tmp_path / name, "target=folder", "target.images=unused",
                        "adapt.rounds=2", "adapt.epochs_per_round=1", *TINY_ADAPT)  # fmt: skip
        settings, loader = check_adapt_settings(cfg)
        checkpoint = load_checkpoint(trained_ckpt)
        setup = adaptation_setup(cfg, checkpoint, settings, loader)
        net = build_net_from_checkpoint(checkpoint)
        results[name] = Adaptation(net, setup, target, report=lambda line: None).run()
        weights[name] = load_checkpoint(results[name].checkpoint)["state_dict"]
    plain, other = results["plain"], results["scrambled"]
    assert len(plain.labels) == 2 and (plain.labels[0] != NOISE).sum() > 0
    for ours, theirs in zip(plain.labels, other.labels, strict=True):
        np.testing.assert_array_equal(ours, theirs)
    assert weights["plain"].keys() == weights["scrambled"].keys()
    for key, value in weights["plain"].items():
        assert torch.equal(value, weights["scrambled"][key]), key
    # The measurements do see the labels: the same numbers, purity etc. not caring about names.
    for ours, theirs in zip(plain.rounds, other.rounds, strict=True):
        assert ours["purity"] == theirs["purity"] and ours["ari"] == theirs["ari"]


def test_camera_bn_clustering_features_use_each_cameras_own_statistics(
    trained_ckpt, tiny_data_dir, tmp_path
):
    """Adaptation.features with camera statistics against features computed by hand: per
    camera, a copy of the network re-estimated on that camera's images, then its features."""
    from reidtricks.adaptation.rounds import Adaptation
    from reidtricks.cli.adapt import adaptation_setup, check_adapt_settings
    from reidtricks.data.datasets import SyntheticReID
    from reidtricks.inference.extractor import FeatureExtractor

    train = sorted(SyntheticReID(tiny_data_dir, preset="tiny").load().train)[:48]
    paths = tuple(p for p, _, _ in train)
    cams = np.arange(len(paths)) % 2  # two interleaved "cameras"
    target = Target("two", paths, camids=tuple(cams.tolist()))
    cfg = adapt_cfg(trained_ckpt, tmp_path / "run", "target=folder", "target.images=unused",
                    "adapt.camera_bn=true", *TINY_ADAPT)  # fmt: skip
    settings, loader = check_adapt_settings(cfg)
    checkpoint = load_checkpoint(trained_ckpt)
    setup = adaptation_setup(cfg, checkpoint, settings, loader)
    adaptation = Adaptation(build_net_from_checkpoint(checkpoint), setup, target, lambda _: None)
    before = bn_statistics(adaptation.net)
    statistics = adaptation.camera_statistics()
    tested, _ = adaptation.features(statistics)
    plain, _ = adaptation.features()
    assert all(torch.equal(v, bn_statistics(adaptation.net)[k]) for k, v in before.items())
    source = FeatureExtractor.from_checkpoint(trained_ckpt)
    for cam in (0, 1):
        subset = [paths[i] for i in np.flatnonzero(cams == cam)]
        net = copy.deepcopy(source.net)
        by_hand = FeatureExtractor(net, source.spec.input, feature=source.spec.eval.feature,
                                   flip=source.spec.eval.flip, spec=source.spec)  # fmt: skip
        batches = [b for _, b, _ in by_hand.iter_file_batches(subset, num_workers=0,
                                                              progress=False, description="",
                                                              bad_image_hint="")]  # fmt: skip
        reestimate_bn_statistics(net, batches)
        rows = torch.from_numpy(np.flatnonzero(cams == cam))
        torch.testing.assert_close(tested[rows], by_hand.extract(subset), atol=1e-4, rtol=1e-4)
    assert not torch.allclose(tested, plain, atol=1e-3)  # the statistics changed the features


@pytest.mark.slow
def test_same_camera_penalty_clusters_on_the_penalised_distance(
    trained_ckpt, tiny_data_dir, tmp_path
):
    """A round's pseudo-labels with adapt.same_camera_penalty against DBSCAN by hand on the
    brute-force Jaccard distance of the round's features, same-camera pairs moved by the penalty."""
    from reidtricks.adaptation.rounds import Adaptation
    from reidtricks.cli.adapt import adaptation_setup, check_adapt_settings
    from reidtricks.data.datasets import SyntheticReID

    train = sorted(SyntheticReID(tiny_data_dir, preset="tiny").load().train)[:64]
    paths = tuple(p for p, _, _ in train)
    cams = np.arange(len(paths)) % 2
    target = Target("two", paths, camids=tuple(cams.tolist()))
    checkpoint = load_checkpoint(trained_ckpt)

    def adaptation(*overrides: str) -> Adaptation:
        cfg = adapt_cfg(trained_ckpt, tmp_path / "run", "target=folder", "target.images=unused",
                        "adapt.rounds=1", "adapt.epochs_per_round=1", *TINY_ADAPT,
                        *overrides)  # fmt: skip
        setup = adaptation_setup(cfg, checkpoint, *check_adapt_settings(cfg))
        return Adaptation(build_net_from_checkpoint(checkpoint), setup, target, lambda _: None)

    feats = F.normalize(adaptation().features()[0], dim=1).numpy()
    labels = {}
    for penalty in (0.0, 0.5):
        dense = brute_force_jaccard(feats, 10, 3, cams, penalty)  # TINY_ADAPT's k1, k2
        # A radius with no distance within 1e-4 of it (fp32 against fp64 would decide those).
        eps = next(e for e in (0.5, 0.45, 0.55, 0.4, 0.6) if (abs(dense - e) > 1e-4).all())
        expected = brute_force_dbscan(dense, eps, 2)
        assert expected.max() >= 1  # two clusters or more: a round trains
        run = adaptation(f"adapt.same_camera_penalty={penalty}", f"adapt.eps={eps}")
        _, labels[penalty] = run.round(1)
        np.testing.assert_array_equal(labels[penalty], expected)
    assert not np.array_equal(labels[0.0], labels[0.5])


@pytest.mark.slow
def test_a_run_stopped_by_a_later_round_keeps_the_rounds_it_finished(
    trained_ckpt, tiny_data_dir, tmp_path, monkeypatch
):
    import reidtricks.adaptation.rounds as rounds
    from reidtricks.cli.adapt import adapt

    real = rounds.check_clusters

    def fail_in_round_2(labels, settings, p, round_index):
        if round_index == 2:
            raise InputError("adapt.eps=0.5: round 2: too few clusters (stands for DBSCAN)")
        return real(labels, settings, p, round_index)

    monkeypatch.setattr(rounds, "check_clusters", fail_in_round_2)
    out = tmp_path / "adapt"
    with pytest.raises(InputError, match=r"round 2: too few clusters"):
        adapt(adapt_cfg(trained_ckpt, out, "target=synthetic", "target.dataset.preset=tiny",
                        f"paths.data_dir={tiny_data_dir}", "adapt.rounds=3",
                        "adapt.epochs_per_round=1", *TINY_ADAPT))  # fmt: skip
    metrics = json.loads((out / "metrics.json").read_text())
    assert [r["round"] for r in metrics["rounds"]] == [1]
    assert metrics["stopped"].startswith("adapt.eps=0.5: round 2")
    assert metrics["checkpoint"].endswith("round01.ckpt") and Path(metrics["checkpoint"]).is_file()
    assert np.load(out / "pseudo_labels.npz")["labels"].shape[0] == 1
    assert (out / "adapt_rounds.png").is_file() and not (out / "checkpoints" / "last.ckpt").exists()


# -- end to end ----------------------------------------------------------------------------
@pytest.mark.slow
def test_adapt_to_a_folder_then_evaluate_extract_export(trained_ckpt, tiny_data_dir, tmp_path):
    from reidtricks.cli.adapt import adapt
    from reidtricks.cli.evaluate import evaluate_checkpoint
    from reidtricks.cli.export import export_checkpoint
    from reidtricks.cli.extract import extract_folder

    folder = tmp_path / "crops" / "cam1"  # any file names, in a sub-folder
    folder.mkdir(parents=True)
    for i, path in enumerate(train_images(tiny_data_dir)):
        shutil.copy(path, folder / f"frame{i:05d}.jpg")
    out = tmp_path / "adapt"
    metrics = adapt(adapt_cfg(trained_ckpt, out, "target=folder", f"target.images={tmp_path / 'crops'}",
                              "adapt.rounds=1", "adapt.epochs_per_round=1", *TINY_ADAPT))  # fmt: skip
    (record,) = metrics["rounds"]
    assert record["kept"] + record["left_out"] == record["images"] == 102
    assert "purity" not in record and "rank1" not in record  # no labels, no test split
    assert metrics["direct_transfer"] is None and metrics["target"]["kind"] == "folder"
    assert (
        json.loads((out / "metrics.json").read_text())["rounds"][0]["clusters"]
        == record["clusters"]
    )
    assert (out / "adapt_rounds.png").is_file()
    stored = np.load(out / "pseudo_labels.npz")
    assert stored["labels"].shape == (1, 102) and stored["labels"].max() + 1 == record["clusters"]
    ckpt = out / "checkpoints" / "last.ckpt"
    assert (out / "checkpoints" / "round01.ckpt").is_file() and metrics["checkpoint"]
    raw = load_checkpoint(ckpt)
    assert raw["reidtricks"]["num_classes"] == record["clusters"]
    assert raw["reidtricks"]["model_args"]["num_classes"] == record["clusters"]
    assert raw["state_dict"]["net.classifier.weight"].shape[0] == record["clusters"]
    assert raw["reidtricks"]["config"]["loss"]["center_weight"] == 0.0
    # The adapted checkpoint in the other commands (its test set: the source's).
    scores = evaluate_checkpoint(compose_evaluate(ckpt, tmp_path / "eval", "plot_queries=0"))
    assert 0.0 <= scores["test_sets"]["synthetic"]["mAP"] <= 1.0
    summary = extract_folder(command_cfg("extract", ckpt, tmp_path / "ex", f"images={folder}"))
    assert summary["num_images"] == 102
    exported = export_checkpoint(
        command_cfg("export", ckpt, tmp_path / "onnx", "parity.max_query=8")
    )
    assert exported["parity"].passed


@pytest.mark.slow
def test_adapt_to_a_named_dataset_measures_every_round(trained_ckpt, tiny_data_dir, tmp_path):
    from reidtricks.cli.adapt import adapt
    from reidtricks.cli.evaluate import evaluate_checkpoint

    out = tmp_path / "adapt"
    metrics = adapt(adapt_cfg(trained_ckpt, out, "target=synthetic", "target.dataset.preset=tiny",
                              f"paths.data_dir={tiny_data_dir}", "adapt.rounds=1",
                              "adapt.epochs_per_round=1", *TINY_ADAPT))  # fmt: skip
    (record,) = metrics["rounds"]
    assert set(metrics["direct_transfer"]) == {"synthetic"}
    assert 0 < record["purity"] <= 1 and -1 <= record["ari"] <= 1 and 0 <= record["nmi"] <= 1
    assert 0 <= record["multi_camera_clusters"] <= record["clusters"]
    assert 0 <= record["cross_camera_together"] <= 1
    assert 0 <= record["rank1"] <= 1 and record["mAP"] == record["test_sets"]["synthetic"]["mAP"]
    assert metrics["target"] | {"dataset": None} == {
        "kind": "dataset", "name": "synthetic", "num_images": 102, "dataset": None,
        "labelled": True, "tested": True,
    }  # fmt: skip
    # The adapted checkpoint tests on the target by default, with the round's own numbers.
    ckpt = Path(metrics["checkpoint"])
    config = load_checkpoint(ckpt)["reidtricks"]["config"]
    assert list(config["data"]["test_sources"]) == ["synthetic"]
    scores = evaluate_checkpoint(compose_evaluate(ckpt, tmp_path / "eval", "plot_queries=0"))
    assert scores["test_sets"]["synthetic"]["mAP"] == pytest.approx(record["mAP"], abs=1e-6)
    assert OmegaConf.create(config).adapt.round == 1


@pytest.mark.slow
@pytest.mark.parametrize("camera_aware", ["false", "true"])
def test_adapt_with_a_cluster_memory_moves_it_and_trains_without_smoothing(
    camera_aware, trained_ckpt, tiny_data_dir, tmp_path, monkeypatch
):
    from reidtricks.cli.adapt import adapt
    from reidtricks.cli.evaluate import evaluate_checkpoint

    updates = []  # the batch sizes the memory took in, one per training step
    original = ClusterMemory.update

    def counted(self, labels):
        updates.append(len(labels))
        original(self, labels)

    monkeypatch.setattr(ClusterMemory, "update", counted)
    out = tmp_path / "adapt"
    metrics = adapt(adapt_cfg(trained_ckpt, out, "target=synthetic", "target.dataset.preset=tiny",
                              f"paths.data_dir={tiny_data_dir}", "adapt.rounds=1",
                              "adapt.epochs_per_round=2", "adapt.classifier=memory",
                              f"adapt.camera_aware={camera_aware}", *TINY_ADAPT))  # fmt: skip
    (record,) = metrics["rounds"]
    assert 0 <= record["cross_camera_together"] <= 1
    raw = load_checkpoint(Path(metrics["checkpoint"]))
    p, k = (raw["reidtricks"]["config"]["data"]["sampler"][key] for key in ("p", "k"))
    assert len(updates) >= 2 and set(updates) == {p * k}  # every step of both epochs
    memory = raw["state_dict"]["net.classifier.weight"]
    assert memory.shape[0] == record["clusters"]
    torch.testing.assert_close(memory.norm(dim=1), torch.ones(len(memory)))  # unit rows
    config = raw["reidtricks"]["config"]
    assert config["loss"]["label_smoothing"] == 0.0 and config["adapt"]["classifier"] == "memory"
    source = load_checkpoint(trained_ckpt)["reidtricks"]["config"]["loss"]
    changed = ("label_smoothing", "center_weight")  # center: left out by every adaptation
    assert {k: v for k, v in config["loss"].items() if k not in changed} == {
        k: v for k, v in source.items() if k not in changed
    }
    scores = evaluate_checkpoint(compose_evaluate(Path(metrics["checkpoint"]), tmp_path / "eval",
                                                  "plot_queries=0"))  # fmt: skip
    assert scores["test_sets"]["synthetic"]["mAP"] == pytest.approx(record["mAP"], abs=1e-6)


@pytest.mark.slow
def test_adapt_with_adabn_scores_it_then_still_trains_every_weight(
    trained_ckpt, tiny_data_dir, tmp_path
):
    from reidtricks.cli.adapt import adapt

    out = tmp_path / "adapt"
    metrics = adapt(adapt_cfg(trained_ckpt, out, "target=synthetic", "target.dataset.preset=tiny",
                              f"paths.data_dir={tiny_data_dir}", "adapt.rounds=1",
                              "adapt.epochs_per_round=1", "adapt.adabn=true", *TINY_ADAPT))  # fmt: skip
    assert 0 <= metrics["adabn"]["synthetic"]["mAP"] <= 1
    assert metrics["adabn"] != metrics["direct_transfer"]  # new statistics, new scores
    source = load_checkpoint(trained_ckpt)["state_dict"]
    adapted = load_checkpoint(Path(metrics["checkpoint"]))["state_dict"]
    trained = [k for k, v in source.items() if v.is_floating_point() and "running" not in k
               and "classifier" not in k]  # fmt: skip
    assert trained and all(not torch.equal(source[k], adapted[k]) for k in trained[:5])


@pytest.mark.slow
def test_adapt_with_camera_bn_scores_each_camera_with_its_own_statistics(
    trained_ckpt, tiny_data_dir, tmp_path
):
    """Round 0's camera-BN score against one computed by hand: per camera, a copy of the source
    network whose BatchNorm statistics are those of that camera's target images, its features
    of that camera's test images, then the evaluator's formula."""
    from reidtricks.adaptation.target import dataset_target
    from reidtricks.cli.adapt import adapt
    from reidtricks.cli.evaluate import evaluate_checkpoint
    from reidtricks.data.settings import LoaderConfig
    from reidtricks.evaluation.metrics import evaluate
    from reidtricks.inference.extractor import FeatureExtractor

    out = tmp_path / "adapt"
    metrics = adapt(adapt_cfg(trained_ckpt, out, "target=synthetic", "target.dataset.preset=tiny",
                              f"paths.data_dir={tiny_data_dir}", "adapt.rounds=1",
                              "adapt.epochs_per_round=1", "adapt.camera_bn=true",
                              "adapt.camera_bn_training=true", *TINY_ADAPT))  # fmt: skip
    record = metrics["rounds"][0]
    assert 0 <= record["camera_bn"]["synthetic"]["mAP"] <= 1 and record["test_sets"]
    steps = ["features", "clustering", "training", "camera_statistics", "checkpoint", "test"]
    assert list(record["seconds_by_step"]) == [*steps, "camera_bn"]
    source = FeatureExtractor.from_checkpoint(trained_ckpt, flip=True)
    spec = OmegaConf.to_container(compose_config("adapt", "target=synthetic",
                                                 "target.dataset.preset=tiny", f"paths.data_dir={tiny_data_dir}",
                                                 "ckpt=x").target.dataset, resolve=True)  # fmt: skip
    target = dataset_target("synthetic", spec, source.spec.input, LoaderConfig(num_workers=0))
    test = target.test.test_sets[0]
    items = test.query + test.gallery
    cams = np.array(target.camids)
    feats, rows_of = None, {}
    for cam in np.unique(cams):
        net = copy.deepcopy(source.net)
        paths = [p for p, c in zip(target.paths, cams, strict=True) if c == cam]
        by_hand = FeatureExtractor(net, source.spec.input, feature=source.spec.eval.feature,
                                   flip=False, spec=source.spec)  # fmt: skip
        images = [b for _, b, _ in by_hand.iter_file_batches(paths, num_workers=0, progress=False,
                                                              description="", bad_image_hint="")]  # fmt: skip
        reestimate_bn_statistics(net, images)
        rows = [i for i, it in enumerate(items) if it[2] == cam]
        rows_of[int(cam)] = rows
        flipped = FeatureExtractor(net, source.spec.input, feature=source.spec.eval.feature,
                                   flip=True, spec=source.spec)  # fmt: skip
        part = flipped.extract([items[i][0] for i in rows])
        feats = torch.zeros(len(items), part.shape[1]) if feats is None else feats
        feats[rows] = part
    assert sorted(i for r in rows_of.values() for i in r) == list(range(len(items)))
    f = torch.nn.functional.normalize(feats, dim=1)
    nq = len(test.query)
    pids = np.array([it[1] for it in items])
    camids = np.array([it[2] for it in items])
    expected = evaluate(1 - f[:nq] @ f[nq:].T, pids[:nq], pids[nq:], camids[:nq], camids[nq:],
                        10, "market")  # fmt: skip
    assert metrics["camera_bn"]["synthetic"]["mAP"] == pytest.approx(expected.mAP, abs=1e-4)
    assert metrics["camera_bn"] != metrics["direct_transfer"]
    # The last checkpoint holds its cameras' statistics: evaluate camera_bn=true scores as the
    # round did; a checkpoint without them is one line.
    last = Path(metrics["checkpoint"])
    scores = evaluate_checkpoint(compose_evaluate(last, tmp_path / "eval", "plot_queries=0",
                                                  "camera_bn=true"))  # fmt: skip
    assert scores["test_sets"]["synthetic"]["mAP"] == pytest.approx(
        record["camera_bn"]["synthetic"]["mAP"], abs=1e-6
    )
    with pytest.raises(InputError, match=r"camera_bn=true: .* holds no per-camera BatchNorm"):
        evaluate_checkpoint(compose_evaluate(trained_ckpt, tmp_path / "e2", "camera_bn=true"))
