"""A cluster memory in place of the learned classifier (docs/METHOD.md, "Adapting to unlabelled
images", `adapt.classifier=memory`): one unit-length centroid per pseudo-identity, scored by
cosine over a temperature and moved towards each new feature of its cluster, never by gradient."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def momentum_update(memory: Tensor, feats: Tensor, labels: Tensor, momentum: float) -> Tensor:
    """The memory after the batch: for each sample i in batch order,
    m[y_i] <- normalise(momentum * m[y_i] + (1 - momentum) * normalise(f_i)); in place, returned."""
    feats = F.normalize(feats.detach().to(memory.dtype), dim=1)
    for feat, label in zip(feats, labels.tolist(), strict=True):
        row = momentum * memory[label] + (1.0 - momentum) * feat
        memory[label] = row / row.norm().clamp_min(1e-12)
    return memory


class ClusterMemory(nn.Linear):
    """logits = cos(f, m_c) / temperature over the memory rows m_c (the `weight`, which no
    optimiser moves); `update(labels)` folds the last training batch's features into it. A
    Linear, so that its state dict is a bias-free (or zero-bias) classifier's: the round's
    checkpoint loads wherever a trained one does."""

    def __init__(
        self, centroids: Tensor, temperature: float, momentum: float, bias: bool = False
    ) -> None:
        super().__init__(centroids.shape[1], centroids.shape[0], bias=bias)
        self.temperature, self.momentum = float(temperature), float(momentum)
        with torch.no_grad():
            self.weight.copy_(F.normalize(centroids.float(), dim=1))
            if self.bias is not None:
                self.bias.zero_()
        self.weight.requires_grad_(False)
        if self.bias is not None:
            self.bias.requires_grad_(False)
        self._batch: Tensor | None = None

    def forward(self, feats: Tensor) -> Tensor:
        if self.training:  # kept for update(); the memory moves only after the optimiser step
            self._batch = feats.detach()
        return F.linear(F.normalize(feats, dim=1), self.weight) / self.temperature

    @torch.no_grad()
    def update(self, labels: Tensor) -> None:
        """Fold the features of the last training forward pass into rows `labels` (one per row
        of that batch); one line if there was none or the sizes differ."""
        batch, self._batch = self._batch, None
        if batch is None or batch.shape[0] != labels.shape[0]:
            got = "no training batch" if batch is None else f"{batch.shape[0]} features"
            raise RuntimeError(f"ClusterMemory.update: {labels.shape[0]} labels for {got}")
        momentum_update(self.weight.data, batch, labels.to(self.weight.device), self.momentum)
