"""Backbones and the BNNeck ReID network."""

from reidtricks.models.backbones import build_backbone
from reidtricks.models.reid_net import ReIDNet, ReIDOutput, build_reid_net

__all__ = ["ReIDNet", "ReIDOutput", "build_backbone", "build_reid_net"]
