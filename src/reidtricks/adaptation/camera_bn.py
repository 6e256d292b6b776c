"""Camera-based BatchNorm (CBN, Zhuang et al., ECCV 2020; docs/METHOD.md, "Adapting to
unlabelled images", `adapt.camera_bn`): every BatchNorm's statistics estimated per camera on the
target's unlabelled images, and each image normalised with its own camera's statistics, so that
a camera's light and colour cast is removed before images are compared across cameras."""

from __future__ import annotations

import torch
from torch import Tensor

from reidtricks.adaptation.batchnorm import load_bn_statistics
from reidtricks.errors import InputError
from reidtricks.evaluation.evaluator import Evaluator
from reidtricks.evaluation.feature_module import FeatureModule
from reidtricks.models import ReIDNet

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
                    f"adapt.camera_bn=true: test camera {cam} has no target images to estimate "
                    f"its statistics from (target cameras: {sorted(self.statistics)})"
                )
            load_bn_statistics(self.net, self.statistics[cam])
            rows = camids == cam
            part = (images[rows], pids[rows], camids[rows], indices[rows])
            self.evaluator.collect(self, part, dataloader_idx)
