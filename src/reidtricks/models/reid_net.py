"""The ReID network: backbone -> global pooling (average or GeM) -> (BNNeck) -> identity
classifier; IBN-a and MixStyle act inside the backbone."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

import torch
from torch import Tensor, nn

from reidtricks.config import typed_config
from reidtricks.errors import InputError
from reidtricks.models.backbones import build_backbone
from reidtricks.models.mixstyle import MixStyle, MixStyleConfig, attach_mixstyle
from reidtricks.models.pooling import build_pooling
from reidtricks.models.stages import backbone_stages

NECKS = ("none", "bnneck")


class ReIDOutput(NamedTuple):
    feat_before_bn: Tensor  # f_t: pooled global feature, feeds the triplet and center losses
    feat_after_bn: Tensor  # f_i: after the BNNeck (the same tensor when neck="none")
    logits: Tensor  # identity logits

    def feature(self, name: str) -> Tensor:
        """The test-time feature `eval.feature` names: "before_bn" (f_t) or "after_bn" (f_i)."""
        return self.feat_after_bn if name == "after_bn" else self.feat_before_bn


class ReIDNet(nn.Module):
    """Global-feature ReID model (pooling "avg" or "gem"). neck="none": the standard baseline
    (classifier with bias on f_t); neck="bnneck": BatchNorm1d with its bias frozen at 0, then a
    bias-free classifier on f_i. The classifier starts from N(0, 0.001) (bias 0) with either neck:
    the authors' code does so only with the BNNeck and keeps PyTorch's default init without it
    (docs/METHOD.md, "Network" and trick 5). `mixstyle`, when given, is held here (its hooks
    in the backbone call it), so that train() / eval() switch it."""

    def __init__(
        self,
        backbone: nn.Module,
        feat_dim: int,
        num_classes: int,
        neck: str,
        pooling: str = "avg",
        mixstyle: MixStyle | None = None,
    ):
        super().__init__()
        if neck not in NECKS:
            raise InputError(f"model.neck={neck!r}: expected one of {NECKS}")
        if num_classes < 1:
            raise InputError(f"num_classes={num_classes}: expected at least 1 training identity")
        self.backbone, self.feat_dim, self.neck_type = backbone, feat_dim, neck
        self.pool = build_pooling(pooling)
        if mixstyle is not None:
            self.mixstyle = mixstyle  # no parameters: the state dict is unchanged
        self.bottleneck: nn.BatchNorm1d | None = None
        if neck == "bnneck":
            self.bottleneck = nn.BatchNorm1d(feat_dim)
            nn.init.ones_(self.bottleneck.weight)
            nn.init.zeros_(self.bottleneck.bias)
            self.bottleneck.bias.requires_grad_(False)  # shift frozen at 0 (docs/METHOD.md trick 5)
        self.classifier = nn.Linear(feat_dim, num_classes, bias=neck == "none")
        nn.init.normal_(self.classifier.weight, std=0.001)
        if self.classifier.bias is not None:
            nn.init.zeros_(self.classifier.bias)

    def forward(self, x: Tensor) -> ReIDOutput:
        """f_t, f_i and the logits, in training and eval mode alike."""
        feat = torch.flatten(self.pool(self.backbone(x)), 1)
        feat_i = self.bottleneck(feat) if self.bottleneck is not None else feat
        return ReIDOutput(feat, feat_i, self.classifier(feat_i))


def build_reid_net(
    backbone: str,
    num_classes: int,
    last_stride: int,
    neck: str,
    pretrained: bool,
    pretrained_path: str | None,
    pretrained_key_map: str,
    ibn: str,
    mixstyle: Mapping[str, Any] | MixStyleConfig,
    pooling: str,
) -> ReIDNet:
    """The Hydra `_target_` of conf/model/*.yaml (num_classes is given once the data is loaded);
    the other arguments' defaults are ModelConfig's (models/settings.py). mixstyle.p = 0 adds
    no module and no hook: the network is the one built without MixStyle."""
    mix = typed_config(MixStyleConfig, mixstyle, "model.mixstyle")
    trunk, channels = build_backbone(
        backbone, last_stride, pretrained, pretrained_path, pretrained_key_map, ibn
    )
    module = MixStyle(mix.p, mix.alpha) if mix.p > 0 else None
    if module is not None:
        stages = backbone_stages(trunk, "model.mixstyle")
        attach_mixstyle(module, [stages[name][-1] for name in mix.layers])
    return ReIDNet(trunk, channels, num_classes, neck, pooling, module)
