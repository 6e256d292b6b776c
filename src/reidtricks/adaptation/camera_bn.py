"""Camera-based BatchNorm (CBN, Zhuang et al., ECCV 2020; docs/METHOD.md, "Adapting to
unlabelled images", `adapt.camera_bn`): every BatchNorm's statistics estimated per camera on the
target's unlabelled images, and each image normalised with its own camera's statistics, so that
a camera's light and colour cast is removed before images are compared across cameras."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from reidtricks.adaptation.batchnorm import load_bn_statistics
from reidtricks.errors import InputError
from reidtricks.evaluation.evaluator import Evaluator
from reidtricks.evaluation.feature_module import FeatureModule
from reidtricks.models import ReIDNet, ReIDOutput
from reidtricks.training.module import ReIDModule

CameraStatistics = dict[int, dict[str, Tensor]]  # camera id -> bn_statistics()


class CameraBNFeatureModule(FeatureModule):
    """A FeatureModule that runs each batch camera by camera, with that camera's statistics
    loaded into its network (give it a copy: the buffers are overwritten)."""

    def __init__(self, net: ReIDNet, evaluator: Evaluator, statistics: CameraStatistics) -> None:
        super().__init__(net, evaluator)
        self.statistics = statistics

    def test_step(self, batch: tuple[Tensor, ...], batch_idx: int, dataloader_idx: int = 0):
        images, pids, camids, indices = batch
        for cam in torch.unique(camids).tolist():
            if cam not in self.statistics:
                raise InputError(
                    f"camera BN: test camera {cam} has no statistics: the adaptation target "
                    f"had no images of it (its cameras: {sorted(self.statistics)})"
                )
            load_bn_statistics(self.net, self.statistics[cam])
            rows = camids == cam
            part = (images[rows], pids[rows], camids[rows], indices[rows])
            self.evaluator.collect(self, part, dataloader_idx)


def stored_camera_statistics(target: str, statistics: CameraStatistics) -> dict[str, Any]:
    """The checkpoint field (`reidtricks.camera_bn`): plain tensors by camera id (as text, for
    a checkpoint's string keys) and the target they came from."""
    return {"target": target, "statistics": {str(cam): v for cam, v in statistics.items()}}


def checkpoint_camera_statistics(
    checkpoint: dict[str, Any], source: str, test_sets: list[str]
) -> CameraStatistics:
    """The per-camera statistics an adapted checkpoint holds, for scoring `test_sets`; one line
    where it holds none or a test set is not the target whose cameras they describe."""
    stored = checkpoint.get("reidtricks", {}).get("camera_bn")
    if not stored:
        raise InputError(
            f"camera_bn=true: {source} holds no per-camera BatchNorm statistics (expected a "
            "checkpoint of `python -m reidtricks.adapt ... adapt.camera_bn=true`)"
        )
    others = [name for name in test_sets if name != stored["target"]]
    if others:
        raise InputError(
            f"camera_bn=true: {source} holds the statistics of {stored['target']}'s cameras; "
            f"test set(s) {others} have other cameras (evaluate data={stored['target']})"
        )
    return {int(cam): values for cam, values in stored["statistics"].items()}


def camera_groups(camids: Tensor) -> list[Tensor]:
    """The batch rows of each camera, in camera order; a camera with a single row joins the
    largest group (a BatchNorm needs two samples for batch statistics)."""
    groups = [torch.nonzero(camids == cam).flatten() for cam in torch.unique(camids)]
    if len(groups) < 2:
        return groups
    single = [g for g in groups if len(g) < 2]
    groups = [g for g in groups if len(g) >= 2]
    if single:
        if not groups:  # every camera once: one group
            return [torch.cat(single).sort().values]
        largest = max(range(len(groups)), key=lambda i: len(groups[i]))
        groups[largest] = torch.cat([groups[largest], *single]).sort().values
    return groups


class CameraBatchModule(ReIDModule):
    """ReIDModule whose training batches run camera by camera (CBN's training): every BatchNorm
    normalises each camera's images with that camera's batch statistics, as the camera-BN test
    normalises them with that camera's running statistics. Losses see the whole batch."""

    _cameras: Tensor | None = None

    def training_step(self, batch: tuple[Tensor, ...], batch_idx: int) -> Tensor:
        self._cameras = batch[2]
        try:
            return super().training_step(batch, batch_idx)
        finally:
            self._cameras = None

    def forward(self, images: Tensor) -> ReIDOutput:
        if self._cameras is None:
            return super().forward(images)
        groups = camera_groups(self._cameras)
        outputs = [super(CameraBatchModule, self).forward(images[rows]) for rows in groups]
        order = torch.cat(groups)
        inverse = torch.empty_like(order)
        inverse[order] = torch.arange(len(order), device=order.device)
        return ReIDOutput(*(torch.cat(parts)[inverse] for parts in zip(*outputs, strict=True)))
