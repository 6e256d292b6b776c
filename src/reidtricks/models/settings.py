"""The network's settings, `build_reid_net`'s keyword arguments but num_classes (known once the
data are loaded); the field defaults are the base of conf/model (docs/METHOD.md, "Network")."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from reidtricks.config import typed_config
from reidtricks.errors import InputError
from reidtricks.models.ibn import IBN_MODES
from reidtricks.models.mixstyle import MixStyleConfig
from reidtricks.models.pooling import POOLINGS
from reidtricks.models.pretrained import KEY_MAPS
from reidtricks.models.reid_net import NECKS
from reidtricks.validate import require_bool, require_choice

# Keys of a model config that are Hydra's wiring, not settings.
WIRING_KEYS = ("_target_", "_partial_")


@dataclass(frozen=True)
class ModelConfig:
    """Backbone, last stride (trick last_stride), neck (trick bnneck), its ImageNet weights, and
    the tricks for unseen cameras: IBN-a, MixStyle, GeM pooling (docs/METHOD.md)."""

    backbone: str = "resnet50"  # a torchvision ResNet name or timm:<model>
    last_stride: int = 2  # trick last_stride: 1
    neck: str = "none"  # trick bnneck: bnneck
    pretrained: bool = True  # ImageNet weights through torchvision / timm (needs the internet) ...
    pretrained_path: str | None = None  # ... or a local torchvision/timm state dict file
    pretrained_key_map: str = "by_name"  # by_order: a foreign key layout, renamed by position
    ibn: str = "none"  # IBN-a: a
    mixstyle: MixStyleConfig = field(default_factory=MixStyleConfig)  # MixStyle: p=0.5
    pooling: str = "avg"  # GeM: gem

    def __post_init__(self) -> None:
        if not isinstance(self.backbone, str) or not self.backbone:
            raise InputError(f"model.backbone={self.backbone!r}: expected a backbone name")
        if self.last_stride not in (1, 2) or isinstance(self.last_stride, bool):
            raise InputError(f"model.last_stride={self.last_stride!r}: expected 1 or 2")
        require_choice("model.neck", self.neck, NECKS)
        require_bool("model.pretrained", self.pretrained)
        if self.pretrained_path is not None and not isinstance(self.pretrained_path, str):
            raise InputError(f"model.pretrained_path={self.pretrained_path!r}: expected a path")
        require_choice("model.pretrained_key_map", self.pretrained_key_map, KEY_MAPS)
        require_choice("model.ibn", self.ibn, IBN_MODES)
        mixstyle = typed_config(MixStyleConfig, self.mixstyle, "model.mixstyle")
        object.__setattr__(self, "mixstyle", mixstyle)
        require_choice("model.pooling", self.pooling, POOLINGS)

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any], key: str = "model") -> ModelConfig:
        """Checked settings from a model config node (its `_target_` / `_partial_` left out)."""
        if not isinstance(values, Mapping):
            raise InputError(f"{key}={values!r}: expected a mapping of model settings")
        return typed_config(cls, {k: v for k, v in values.items() if k not in WIRING_KEYS}, key)

    def as_kwargs(self) -> dict[str, Any]:
        """build_reid_net's keyword arguments but num_classes."""
        return asdict(self)
