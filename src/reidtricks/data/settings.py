"""Data settings as typed, checked objects: P x K sampling, transforms, loaders. Their field
defaults are the base of conf/data (docs/METHOD.md, "Input pipeline"); the datasets themselves
(`train_sources`, `test_sources`) are `_target_` entries checked by their own classes."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from reidtricks.config import typed_config
from reidtricks.data.color_augment import AUTO_AUGMENT_CHOICES
from reidtricks.data.random_erasing import RandomErasing
from reidtricks.data.source_balance import BALANCES
from reidtricks.data.trials import check_trials
from reidtricks.errors import InputError
from reidtricks.validate import require_bool, require_choice, require_int, require_number

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# Keys of a data config that are not settings: the wiring and the datasets.
NON_SETTING_KEYS = ("_target_", "train_sources", "test_sources")


def _rgb(key: str, values: Any, positive: bool) -> tuple[float, float, float]:
    if isinstance(values, str) or not isinstance(values, list | tuple) or len(values) != 3:
        raise InputError(f"{key}={values!r}: expected 3 numbers (RGB)")
    low = None if not positive else 0.0
    checked = tuple(require_number(key, v, low=low) for v in values)
    if positive and min(checked) <= 0:
        raise InputError(f"{key}={values!r}: expected 3 numbers > 0")
    return checked  # type: ignore[return-value]


def _jitter(value: Any) -> float | tuple[float, float, float, float]:
    """color_jitter as a number >= 0 or a tuple of 4 (hue <= 0.5); one line naming it otherwise."""
    key = "data.transform.color_jitter"
    error = InputError(
        f"{key}={value!r}: expected a finite number >= 0 or [brightness, contrast, saturation, "
        "hue], each a finite number >= 0 and hue <= 0.5"
    )
    listed = isinstance(value, list | tuple)
    try:
        strengths = [require_number(key, v, low=0.0) for v in (value if listed else [value])]
    except InputError:
        raise error from None
    if not all(math.isfinite(s) for s in strengths) or (
        listed and (len(strengths) != 4 or strengths[3] > 0.5)
    ):
        raise error
    return tuple(strengths) if listed else strengths[0]  # type: ignore[return-value]


@dataclass(frozen=True)
class SamplerConfig:
    """P identities x K images per identity in each training batch; how the training sources
    share the identities (docs/METHOD.md, "Per-source balance")."""

    p: int = 16
    k: int = 4
    source_balance: str = "none"  # none: plain concatenation; sqrt: share ~ sqrt(identities)

    def __post_init__(self) -> None:
        require_int("data.sampler.p", self.p, minimum=1)
        require_int("data.sampler.k", self.k, minimum=1)
        require_choice("data.sampler.source_balance", self.source_balance, BALANCES)


@dataclass(frozen=True)
class TransformConfig:
    """Input size, flip, pad + crop, colour augmentation, random erasing (trick rea) and the
    normalisation."""

    height: int = 256
    width: int = 128
    flip_prob: float = 0.5
    pad: int = 10
    erasing_prob: float = 0.0  # trick rea: 0.5
    erasing_area: tuple[float, float] = (0.02, 0.4)
    erasing_aspect: tuple[float, float] = (0.3, 3.33)
    erasing_fill: str | tuple[float, ...] = "imagenet_mean"  # or zero, random, [r, g, b]
    # Colour augmentation (docs/METHOD.md), all off by default. color_jitter: a strength s
    # (brightness = contrast = saturation = s, hue = min(s / 4, 0.5)) or [b, c, s, h].
    color_jitter: float | tuple[float, float, float, float] = 0.0
    grayscale_prob: float = 0.0
    auto_augment: str = "none"  # or autoaugment (ImageNet policy), trivialaugment
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD

    def __post_init__(self) -> None:
        require_int("data.transform.height", self.height, minimum=1)
        require_int("data.transform.width", self.width, minimum=1)
        require_number("data.transform.flip_prob", self.flip_prob, 0.0, 1.0)
        require_int("data.transform.pad", self.pad, minimum=0)
        require_number("data.transform.erasing_prob", self.erasing_prob, 0.0, 1.0)
        require_number("data.transform.grayscale_prob", self.grayscale_prob, 0.0, 1.0)
        require_choice("data.transform.auto_augment", self.auto_augment, AUTO_AUGMENT_CHOICES)
        object.__setattr__(self, "color_jitter", _jitter(self.color_jitter))
        for name in ("erasing_area", "erasing_aspect", "erasing_fill"):  # YAML lists as tuples
            value = getattr(self, name)
            if isinstance(value, list):
                object.__setattr__(self, name, tuple(value))
        object.__setattr__(self, "mean", _rgb("data.transform.mean", self.mean, False))
        object.__setattr__(self, "std", _rgb("data.transform.std", self.std, True))
        try:  # the erasing ranges and fill are checked by the class that uses them
            self.random_erasing()
        except InputError as err:
            raise InputError(f"data.transform.erasing_*: {err}") from None

    def jitter_strengths(self) -> tuple[float, float, float, float]:
        """(brightness, contrast, saturation, hue) strengths of `color_jitter`; all 0: off."""
        if isinstance(self.color_jitter, tuple):
            return self.color_jitter
        s = float(self.color_jitter)
        return s, s, s, min(s / 4, 0.5)

    def random_erasing(self) -> RandomErasing:
        """The random erasing step these settings describe."""
        return RandomErasing(
            probability=float(self.erasing_prob),
            area_range=self.erasing_area,
            aspect_range=self.erasing_aspect,
            fill=self.erasing_fill,
            max_attempts=100,
        )


@dataclass(frozen=True)
class LoaderConfig:
    """DataLoader settings; the training batch size is P x K."""

    num_workers: int = 4
    pin_memory: bool = True
    persistent_workers: bool = True  # only with num_workers > 0
    test_batch_size: int = 256

    def __post_init__(self) -> None:
        require_int("data.loader.num_workers", self.num_workers, minimum=0)
        require_bool("data.loader.pin_memory", self.pin_memory)
        require_bool("data.loader.persistent_workers", self.persistent_workers)
        require_int("data.loader.test_batch_size", self.test_batch_size, minimum=1)


@dataclass(frozen=True)
class DataConfig:
    """Every data setting but the datasets: sampler, transform, loader, seed, image check."""

    sampler: SamplerConfig = field(default_factory=SamplerConfig)
    transform: TransformConfig = field(default_factory=TransformConfig)
    loader: LoaderConfig = field(default_factory=LoaderConfig)
    seed: int = 0  # of the P x K sampler; conf/data sets it to the run's ${seed}
    verify_images: bool = False  # decode every image at start-up (one-line error naming a file)
    # Test sets with random splits (num_splits > 1: VIPeR, PRID2011, i-LIDS, ...): null (the
    # split each dataset entry names), all, the first N splits or a list of split ids; every
    # trial scored from one feature pass at each validation and the final test.
    test_trials: int | str | tuple[int, ...] | None = None
    # The trial rule (data/trained_ids.py): true only in so many words, to test on people the
    # model trained on (a test set sharing images with a training set is refused otherwise).
    test_on_trained_ids: bool = False

    def __post_init__(self) -> None:
        require_int("data.seed", self.seed)
        require_bool("data.verify_images", self.verify_images)
        require_bool("data.test_on_trained_ids", self.test_on_trained_ids)
        trials = self.test_trials
        if isinstance(trials, list):
            object.__setattr__(self, "test_trials", tuple(trials))
        check_trials(trials, "data.test_trials")

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any], key: str = "data") -> DataConfig:
        """Checked settings from a data config node (its `_target_` and sources are left out)."""
        if not isinstance(values, Mapping):
            raise InputError(f"{key}={values!r}: expected a mapping of data settings")
        values = {k: v for k, v in values.items() if k not in NON_SETTING_KEYS}
        parts = {"sampler": SamplerConfig, "transform": TransformConfig, "loader": LoaderConfig}
        typed = {
            name: typed_config(part, values[name], f"{key}.{name}")
            for name, part in parts.items()
            if name in values
        }
        return typed_config(cls, {**values, **typed}, key)
