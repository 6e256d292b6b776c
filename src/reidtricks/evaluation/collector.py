"""Test-set features gathered once per evaluation pass (across batches and DDP ranks), from which
every test-time variant (feature, metric, flip, re-ranking) is then scored without the network."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor
from torchmetrics import Metric

from reidtricks.evaluation.retrieval import deduplicate_by_index
from reidtricks.evaluation.settings import EvalConfig

FEATURE_KEYS = ("before_bn", "after_bn")


@dataclass(frozen=True)
class TestFeatures:
    """One test set's features in dataset order (query rows first): f_t and f_i of each image
    and, when some variant asks for flip, of its horizontal mirror."""

    feats: dict[str, Tensor]  # "before_bn", "after_bn" and, with flip, "before_bn_flip", ...
    pids: Tensor
    camids: Tensor
    num_query: int
    indices: Tensor  # each row's index in the test set's items (all of them, unless partial)

    def select(self, eval_cfg: EvalConfig) -> Tensor:
        """The test-time feature of `eval_cfg`: f_t or f_i, averaged with the mirror if flip."""
        feature = eval_cfg.feature
        feats = self.feats[feature]
        if eval_cfg.flip:
            if f"{feature}_flip" not in self.feats:
                raise ValueError("eval.flip=true but the flipped features were not extracted")
            feats = (feats + self.feats[f"{feature}_flip"]) / 2
        return feats


class FeatureCollector(Metric):
    """A torchmetrics Metric whose states are the rows of one test set; `compute` concatenates
    them across batches and ranks (dist_reduce_fx="cat"), sorts them by dataset index and drops
    the repeats that DistributedSampler pads with."""

    full_state_update = False

    def __init__(self, with_flip: bool = False) -> None:
        super().__init__()
        self.with_flip = with_flip
        self.keys = [*FEATURE_KEYS, *(f"{k}_flip" for k in FEATURE_KEYS if with_flip)]
        for name in ("indices", "pids", "camids", *self.keys):
            self.add_state(name, default=[], dist_reduce_fx="cat")

    def update(self, indices: Tensor, pids: Tensor, camids: Tensor, **feats: Tensor) -> None:
        """One batch: dataset indices, identities, cameras and one fp32 tensor per feature key."""
        self.indices.append(indices)
        self.pids.append(pids)
        self.camids.append(camids)
        for key in self.keys:
            getattr(self, key).append(feats[key].float())

    def compute(self) -> dict[str, Tensor]:
        def cat(value: Tensor | list[Tensor]) -> Tensor:
            return torch.cat(value) if isinstance(value, list) else value

        indices = cat(self.indices)
        tensors = [cat(getattr(self, name)) for name in ("pids", "camids", *self.keys)]
        indices, *tensors = deduplicate_by_index(indices, *tensors)
        return dict(
            zip(("indices", "pids", "camids", *self.keys), [indices, *tensors], strict=True)
        )

    def test_features(self, num_query: int, total: int, allow_partial: bool) -> TestFeatures:
        """`compute` as TestFeatures. All `total` images must be there, unless allow_partial
        (a debug run limiting the batches: the query count is then taken from the rows seen)."""
        rows = self.compute()
        indices = rows["indices"]
        complete = len(indices) == total and torch.equal(indices.cpu(), torch.arange(total))
        if not complete:
            if not allow_partial or len(indices) >= total:
                raise RuntimeError(
                    f"gathered features cover {len(indices)} of {total} test images: some are "
                    "missing"
                )
            num_query = int((indices < num_query).sum())
        feats = {key: rows[key] for key in self.keys}
        return TestFeatures(feats, rows["pids"], rows["camids"], num_query, indices)
