"""Scoring a set over random-split trials from one feature pass: each trial gathers the rows of its
query and gallery images (features keyed by image path) and is ranked alone; then mean and std."""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor

from reidtricks.data.splits import ReIDItem
from reidtricks.evaluation.metrics import EvalResult
from reidtricks.evaluation.retrieval import evaluate_features
from reidtricks.evaluation.settings import EvalConfig


def gather_trial(
    feats: Tensor, row_of_path: Mapping[str, int], query: Sequence[ReIDItem],
    gallery: Sequence[ReIDItem],
) -> tuple[Tensor, Tensor, Tensor, int] | None:  # fmt: skip
    """(features, pids, camids, num_query) of one trial, query rows first, with the trial's own
    labels; images without a feature row are left out (None if no query or gallery is left)."""
    query = [item for item in query if item[0] in row_of_path]
    gallery = [item for item in gallery if item[0] in row_of_path]
    if not query or not gallery:
        return None
    items = query + gallery
    rows = torch.tensor([row_of_path[path] for path, _, _ in items], device=feats.device)
    pids = torch.tensor([pid for _, pid, _ in items])
    camids = torch.tensor([cam for _, _, cam in items])
    return feats[rows], pids, camids, len(query)


def score_trial(
    feats: Tensor, row_of_path: Mapping[str, int], query: Sequence[ReIDItem],
    gallery: Sequence[ReIDItem], eval_cfg: EvalConfig,
) -> tuple[EvalResult, Tensor] | None:  # fmt: skip
    """One trial ranked as its own query/gallery set: (result, Q x G distances), or None."""
    gathered = gather_trial(feats, row_of_path, query, gallery)
    if gathered is None:
        return None
    trial_feats, pids, camids, num_query = gathered
    return evaluate_features(trial_feats, pids, camids, num_query, eval_cfg)


def summarize_trials(per_trial: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """{metric: mean, "trials": N, "std": {metric: sample std (0 for one trial)}, "per_trial": [...]}
    from each trial's {"split": id, metric: value}."""
    keys = [key for key in per_trial[0] if key != "split"]
    out: dict[str, Any] = {}
    std: dict[str, float] = {}
    for key in keys:
        values = [float(trial[key]) for trial in per_trial]
        out[key] = math.fsum(values) / len(values)
        std[key] = statistics.stdev(values) if len(values) > 1 else 0.0
    out["trials"] = len(per_trial)
    out["std"] = std
    out["per_trial"] = [dict(trial) for trial in per_trial]
    return out
