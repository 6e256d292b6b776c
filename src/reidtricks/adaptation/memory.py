"""A cluster memory in place of the learned classifier (docs/METHOD.md, "Adapting to unlabelled
images", `adapt.classifier=memory`): one unit-length centroid per pseudo-identity, scored by
cosine over a temperature and moved towards each new feature of its cluster, never by gradient;
with `adapt.camera_aware`, each sample is contrasted with the clusters of its own camera only."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

MASKED = -1.0e4  # a logit whose softmax weight is 0 in every float type, yet finite (no NaN)


def momentum_update(memory: Tensor, feats: Tensor, labels: Tensor, momentum: float) -> Tensor:
    """The memory after the batch: for each sample i in batch order,
    m[y_i] <- normalise(momentum * m[y_i] + (1 - momentum) * normalise(f_i)); in place, returned."""
    feats = F.normalize(feats.detach().to(memory.dtype), dim=1)
    for feat, label in zip(feats, labels.tolist(), strict=True):
        row = momentum * memory[label] + (1.0 - momentum) * feat
        memory[label] = row / row.norm().clamp_min(1e-12)
    return memory


def same_camera_logits(
    logits: Tensor, labels: Tensor, sample_cameras: Tensor, row_cameras: Tensor
) -> Tensor:
    """`logits` with every row of another camera than the sample's set to MASKED, except the
    sample's own cluster: the softmax contrasts a sample with the clusters of its camera only
    (the intra-camera loss of CAP, Wang et al. AAAI 2021), so that a person's cluster in another
    camera is not pushed away."""
    other = sample_cameras[:, None] != row_cameras[None, :]
    other[torch.arange(len(labels), device=labels.device), labels] = False
    return logits.masked_fill(other, MASKED)


class ClusterMemory(nn.Linear):
    """logits = cos(f, m_c) / temperature over the memory rows m_c (the `weight`, which no
    optimiser moves); `update(labels)` folds the last training batch's features into it. A
    Linear, so that its state dict is a bias-free (or zero-bias) classifier's: the round's
    checkpoint loads wherever a trained one does. With `row_cameras` (each row's camera),
    `expect(labels, cameras)` names the next training batch and its logits are masked to the
    clusters of each sample's camera."""

    def __init__(
        self,
        centroids: Tensor,
        temperature: float,
        momentum: float,
        bias: bool = False,
        row_cameras: Tensor | None = None,
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
        self.row_cameras = row_cameras
        self._next: tuple[Tensor, Tensor] | None = None  # (labels, cameras) of the next batch
        self._batch: Tensor | None = None  # the last training batch's features, for update()

    def expect(self, labels: Tensor, cameras: Tensor) -> None:
        """The labels and cameras of the next training forward pass (camera-aware memory)."""
        self._next = (labels, cameras)

    def forward(self, feats: Tensor) -> Tensor:
        logits = F.linear(F.normalize(feats, dim=1), self.weight) / self.temperature
        if not self.training:
            return logits
        self._batch = feats.detach()
        if self.row_cameras is None:
            return logits
        upcoming, self._next = self._next, None
        if upcoming is None or upcoming[0].shape[0] != feats.shape[0]:
            got = "none" if upcoming is None else str(upcoming[0].shape[0])
            raise RuntimeError(f"ClusterMemory: {feats.shape[0]} samples, {got} labels expected")
        labels, cameras = (t.to(logits.device) for t in upcoming)
        return same_camera_logits(logits, labels, cameras, self.row_cameras.to(logits.device))

    @torch.no_grad()
    def update(self, labels: Tensor) -> None:
        """Fold the features of the last training forward pass into rows `labels` (one per row
        of that batch); one line if there was none or the sizes differ."""
        batch, self._batch = self._batch, None
        if batch is None or batch.shape[0] != labels.shape[0]:
            got = "no training batch" if batch is None else f"{batch.shape[0]} features"
            raise RuntimeError(f"ClusterMemory.update: {labels.shape[0]} labels for {got}")
        momentum_update(self.weight.data, batch, labels.to(self.weight.device), self.momentum)
