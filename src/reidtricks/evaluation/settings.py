"""Test-time settings as one typed, checked object; its field defaults are conf/eval's base."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields, make_dataclass
from typing import Any

from reidtricks.config import typed_config
from reidtricks.errors import InputError
from reidtricks.evaluation.distance import METRICS
from reidtricks.evaluation.metrics import PROTOCOLS
from reidtricks.validate import require_bool, require_choice, require_int, require_number

FEATURE_CHOICES = ("before_bn", "after_bn")


@dataclass(frozen=True)
class EvalConfig:
    """Which feature (f_t before the BNNeck, f_i after it), distance, flip averaging, k-reciprocal
    re-ranking (k1, k2, lambda) and protocol score a test set (docs/METHOD.md, "Evaluation")."""

    feature: str = "before_bn"  # trick bnneck: after_bn (before_bn | after_bn)
    metric: str = "euclidean"  # trick bnneck: cosine (euclidean | sqeuclidean | cosine)
    flip: bool = False  # mean of f(x) and f(flip(x))
    rerank: bool = False  # k-reciprocal re-ranking (Zhong et al. 2017)
    k1: int = 20
    k2: int = 6
    lambda_value: float = 0.3
    max_rank: int = 50
    protocol: str = "market"  # market | cuhk03 (classic single-gallery-shot CMC, 10 draws)

    def __post_init__(self) -> None:
        require_choice("eval.feature", self.feature, FEATURE_CHOICES)
        require_choice("eval.metric", self.metric, METRICS)
        require_choice("eval.protocol", self.protocol, PROTOCOLS)
        require_bool("eval.flip", self.flip)
        require_bool("eval.rerank", self.rerank)
        for name in ("k1", "k2", "max_rank"):
            require_int(f"eval.{name}", getattr(self, name), minimum=1)
        require_number("eval.lambda_value", self.lambda_value, 0.0, 1.0)

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any], key: str = "eval") -> EvalConfig:
        """Checked settings from a config node; errors name `key.FIELD` (e.g. eval_variants.rr.k1)."""
        try:
            return typed_config(cls, values, key)
        except InputError as err:
            message = str(err)
            if message.startswith("eval."):  # raised by __post_init__, which knows no key
                message = f"{key}.{message.removeprefix('eval.')}"
            raise InputError(message) from None

    def updated(self, overrides: Mapping[str, Any], key: str = "eval") -> EvalConfig:
        """These settings with some replaced (a variant, a command-line override), checked again."""
        if not isinstance(overrides, Mapping):
            raise InputError(f"{key}={overrides!r}: expected a mapping of eval settings")
        return type(self).from_mapping({**asdict(self), **dict(overrides)}, key)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def eval_overrides_schema() -> type:
    """A structured config with every EvalConfig field, all null: `evaluate`'s `eval.*` keys,
    where null keeps the checkpoint's setting (so the key list is EvalConfig's, not a copy)."""
    return make_dataclass(
        "EvalOverrides", [(f.name, Any, field(default=None)) for f in fields(EvalConfig)]
    )
