"""From extracted features to ranking metrics: distance (or re-ranking), then the Market protocol."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from reidtricks.evaluation.distance import pairwise_distance
from reidtricks.evaluation.metrics import EvalResult, evaluate
from reidtricks.evaluation.rerank import re_rank
from reidtricks.evaluation.settings import EvalConfig


def query_gallery_distances(
    qf: Tensor,
    gf: Tensor,
    metric: str,
    rerank: bool,
    k1: int,
    k2: int,
    lambda_value: float,
) -> Tensor:
    """Q x G distances; re-ranking works on L2-normalised features when the metric is cosine.
    The settings are EvalConfig's (metric, rerank, k1, k2, lambda_value)."""
    if not rerank:
        return pairwise_distance(qf, gf, metric=metric)
    if metric == "cosine":
        qf, gf = F.normalize(qf.float(), dim=1), F.normalize(gf.float(), dim=1)
    return re_rank(qf, gf, k1=k1, k2=k2, lambda_value=lambda_value)


def evaluate_features(
    feats: Tensor,
    pids: Tensor,
    camids: Tensor,
    num_query: int,
    eval_cfg: EvalConfig,
) -> tuple[EvalResult, Tensor]:
    """Split stacked features into query (first `num_query`) and gallery; rank and score them."""
    qf, gf = feats[:num_query], feats[num_query:]
    distmat = query_gallery_distances(
        qf,
        gf,
        metric=eval_cfg.metric,
        rerank=eval_cfg.rerank,
        k1=eval_cfg.k1,
        k2=eval_cfg.k2,
        lambda_value=eval_cfg.lambda_value,
    )
    result = evaluate(
        distmat,
        pids[:num_query],
        pids[num_query:],
        camids[:num_query],
        camids[num_query:],
        max_rank=eval_cfg.max_rank,
        protocol=eval_cfg.protocol,
    )
    return result, distmat


def deduplicate_by_index(
    indices: Tensor, *tensors: Tensor, expected: int | None = None
) -> tuple[Tensor, ...]:
    """Sort gathered rows by dataset index and drop repeats (DistributedSampler pads with them)."""
    order = torch.argsort(indices, stable=True)
    indices = indices[order]
    keep = torch.ones_like(indices, dtype=torch.bool)
    keep[1:] = indices[1:] != indices[:-1]
    indices = indices[keep]
    if expected is not None and (
        len(indices) != expected or not torch.equal(indices.cpu(), torch.arange(expected))
    ):
        raise RuntimeError(
            f"gathered features cover {len(indices)} of {expected} test images: some are missing"
        )
    return (indices, *(t[order][keep] for t in tensors))
