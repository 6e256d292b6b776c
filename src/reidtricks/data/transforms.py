"""Train / test transforms of docs/METHOD.md ("Input pipeline", trick 2): PIL image -> normalised tensor."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from torchvision import transforms as T

from reidtricks.data.random_erasing import RandomErasing
from reidtricks.data.train_augment import TrainAugment
from reidtricks.errors import InputError
from reidtricks.validate import require_int, require_number

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _check_size(height: int, width: int) -> tuple[int, int]:
    return (
        require_int("data.transform.height", height, minimum=1),
        require_int("data.transform.width", width, minimum=1),
    )


def _check_stats(mean: Sequence[float], std: Sequence[float]) -> tuple[list[float], list[float]]:
    mean_, std_ = [float(v) for v in mean], [float(v) for v in std]
    if len(mean_) != 3 or len(std_) != 3:
        raise InputError(
            f"data.transform.mean/std must have 3 values (RGB), got mean={mean!r} std={std!r}"
        )
    if min(std_) <= 0:
        raise InputError(f"data.transform.std must be > 0 per channel, got {std!r}")
    return mean_, std_


def build_train_transform(
    height: int = 256,
    width: int = 128,
    flip_prob: float = 0.5,
    pad: int = 10,
    erasing_prob: float = 0.0,
    erasing_area: Sequence[float] = (0.02, 0.4),
    erasing_aspect: Sequence[float] = (0.3, 3.33),
    erasing_fill: str | Sequence[float] = "imagenet_mean",
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
) -> Callable:
    """Resize, flip, zero-pad + random crop, to [0,1], normalise, then random erasing if p > 0;
    called as `transform(image, generator)`, every random draw taken from `generator`."""
    size = _check_size(height, width)
    mean_, std_ = _check_stats(mean, std)
    require_number("data.transform.flip_prob", flip_prob, 0.0, 1.0)
    require_int("data.transform.pad", pad, minimum=0)
    try:  # built even when unused, so a bad erasing_* value fails at config time
        erasing = RandomErasing(
            probability=float(erasing_prob),
            area_range=erasing_area,
            aspect_range=erasing_aspect,
            fill=erasing_fill,
        )
    except ValueError as err:
        raise InputError(f"data.transform.erasing_*: {err}") from None
    return TrainAugment(size, flip_prob, pad, mean_, std_, erasing if erasing_prob > 0 else None)


def build_test_transform(
    height: int = 256,
    width: int = 128,
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
) -> Callable:
    """Resize, to [0,1], normalise (deterministic)."""
    size = _check_size(height, width)
    mean_, std_ = _check_stats(mean, std)
    return T.Compose(
        [
            T.Resize(size, interpolation=T.InterpolationMode.BILINEAR),
            T.ToTensor(),
            T.Normalize(mean_, std_),
        ]
    )
