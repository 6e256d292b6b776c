"""The typed settings as the base option `_base` of their config groups (Hydra's ConfigStore):
conf/GROUP/*.yaml list `_base` first and hold only what differs from the dataclass defaults;
the inference commands' configs list `_extraction` (inference/settings.py) the same way."""

from __future__ import annotations

from dataclasses import asdict

from hydra.core.config_store import ConfigStore

from reidtricks.data.settings import DataConfig
from reidtricks.evaluation.settings import EvalConfig
from reidtricks.inference.settings import ExtractionConfig
from reidtricks.models.settings import ModelConfig
from reidtricks.training.settings import LossConfig, OptimConfig

# group -> the settings whose defaults are the group's base (every trick off).
SCHEMAS = {
    "data": DataConfig,
    "model": ModelConfig,
    "loss": LossConfig,
    "optim": OptimConfig,
    "eval": EvalConfig,
}
BASE_OPTION = "_base"
# The top-level base of conf/extract.yaml, search.yaml and export.yaml (device, batch_size, ...).
EXTRACTION_BASE = "_extraction"


def register_schemas() -> None:
    """Store each group's base as plain values (not a structured config: a typo'd key reaches the
    settings' own one-line check rather than a multi-line Hydra error)."""
    store = ConfigStore.instance()
    for group, cls in SCHEMAS.items():
        store.store(group=group, name=BASE_OPTION, node=asdict(cls()))
    store.store(name=EXTRACTION_BASE, node=asdict(ExtractionConfig()))
