"""Evaluator: gathers the features of every test set from batches (across DDP ranks), then scores
the default test-time settings and every named variant from them, without the network again."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from reidtricks.evaluation.collector import FeatureCollector, TestFeatures
from reidtricks.evaluation.retrieval import evaluate_features
from reidtricks.evaluation.settings import EvalConfig
from reidtricks.evaluation.trials import score_trial, summarize_trials

if TYPE_CHECKING:
    from reidtricks.data.datamodule import TestSet
    from reidtricks.models import ReIDOutput

Forward = Callable[[Tensor], "ReIDOutput"]


@torch.no_grad()
def eval_time_features(forward: Forward, images: Tensor, eval_cfg: EvalConfig) -> Tensor:
    """The test-time feature of `eval_cfg` (f_t or f_i, averaged with the mirror if flip), fp32."""
    feats = forward(images).feature(eval_cfg.feature).float()
    if eval_cfg.flip:
        feats = (feats + forward(images.flip(dims=[3])).feature(eval_cfg.feature).float()) / 2
    return feats


@dataclass(frozen=True)
class SetScore:
    """One test set scored with one setting: metrics as metrics.json holds them (a set with
    trials: mean, trials, std, per_trial), and the distances of the query/gallery `shown`."""

    metrics: dict[str, Any]
    distmat: Tensor  # Q x G of the set, or of its first trial
    shown: TestSet  # the set, or its first trial as a plain set (for the ranked-retrieval plot)


class Evaluator:
    """Features of every test set from one pass of the network (`start`, `collect` per batch,
    `finish`); `score` and `results` rank them for the default settings and each variant."""

    def __init__(
        self, eval_cfg: EvalConfig | None = None, variants: Mapping[str, EvalConfig] | None = None
    ) -> None:
        self.eval_cfg = eval_cfg if eval_cfg is not None else EvalConfig()
        self.variants = dict(variants or {})
        self.test_sets: list[TestSet] = []
        self.features: dict[str, TestFeatures] = {}  # last pass, per test set
        self.step: int | None = None  # the global step those features come from
        self._collectors: list[FeatureCollector] = []

    def settings(self) -> dict[str, EvalConfig]:
        """The default test-time settings ("" key) and every named variant, merged over them."""
        return {"": self.eval_cfg, **self.variants}

    def start(self, test_sets: Sequence[TestSet], device: torch.device | str) -> None:
        """A new pass over these test sets (one dataloader each, in this order)."""
        with_flip = any(cfg.flip for cfg in self.settings().values())
        self.test_sets = list(test_sets)
        self._collectors = [FeatureCollector(with_flip).to(device) for _ in self.test_sets]

    @torch.no_grad()
    def collect(self, forward: Forward, batch: Sequence[Tensor], dataloader_idx: int) -> None:
        """f_t and f_i of a batch (and of its mirror when some setting flips), kept for scoring."""
        images, pids, camids, indices = batch
        collector = self._collectors[dataloader_idx]
        out = forward(images)
        feats = {"before_bn": out.feat_before_bn, "after_bn": out.feat_after_bn}
        if collector.with_flip:
            flipped = forward(images.flip(dims=[3]))
            feats |= {
                "before_bn_flip": flipped.feat_before_bn,
                "after_bn_flip": flipped.feat_after_bn,
            }
        collector.update(indices, pids, camids, **feats)

    def finish(self, step: int, allow_partial: bool) -> None:
        """Gather every set's rows (all ranks); allow_partial: a debug run may have seen part of
        a set (under DDP every image must be there)."""
        self.features = {}
        for test_set, collector in zip(self.test_sets, self._collectors, strict=True):
            if collector.update_count == 0:  # e.g. limit_val_batches=0
                continue
            self.features[test_set.name] = collector.test_features(
                test_set.num_query, len(test_set.items), allow_partial=allow_partial
            )
        self.step = step
        self._collectors = []

    def has_features(self, step: int) -> bool:
        """Whether the last pass extracted features at this global step."""
        return bool(self.features) and self.step == step

    def score(self, eval_cfg: EvalConfig) -> dict[str, SetScore]:
        """Every test set of the last pass scored with these settings."""
        scores = {}
        for test_set in self.test_sets:
            gathered = self.features.get(test_set.name)
            if gathered is None:
                continue
            score = _score_set(test_set, gathered, eval_cfg)
            if score is not None:
                scores[test_set.name] = score
        return scores

    def results(self) -> dict[str, dict[str, dict[str, Any]]]:
        """{setting ("" = default, or variant name): {test set: metrics}} of the last pass."""
        return {
            name: {test_set: s.metrics for test_set, s in self.score(cfg).items()}
            for name, cfg in self.settings().items()
        }


def _score_set(test_set: TestSet, gathered: TestFeatures, eval_cfg: EvalConfig) -> SetScore | None:
    feats = gathered.select(eval_cfg)
    if not test_set.trials:
        result, distmat = evaluate_features(
            feats, gathered.pids, gathered.camids, gathered.num_query, eval_cfg
        )
        return SetScore(result.as_dict(), distmat, test_set)
    # Features keyed by image path: each trial gathers its own rows (and uses its own labels).
    indices = gathered.indices.tolist()
    row_of_path = {test_set.items[index][0]: row for row, index in enumerate(indices)}
    per_trial, first = [], None
    for trial in test_set.trials:
        scored = score_trial(feats, row_of_path, trial.query, trial.gallery, eval_cfg)
        if scored is None:  # a debug run that saw none of this trial's queries or gallery
            continue
        per_trial.append({"split": trial.split, **scored[0].as_dict()})
        if first is None:
            first = (scored[1], trial)
    if first is None:
        return None
    distmat, trial = first
    shown = type(test_set)(test_set.name, trial.query, trial.gallery)
    return SetScore(summarize_trials(per_trial), distmat, shown)
