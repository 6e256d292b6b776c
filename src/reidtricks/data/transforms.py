"""Train / test transforms of docs/METHOD.md ("Input pipeline", trick 2): PIL image -> normalised tensor."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from torchvision import transforms as T

from reidtricks.data.settings import TransformConfig
from reidtricks.data.train_augment import TrainAugment


def build_train_transform(settings: TransformConfig) -> Callable:
    """Resize, flip, zero-pad + random crop, to [0,1], normalise, then random erasing if p > 0;
    called as `transform(image, generator)`, every random draw taken from `generator`."""
    erasing = settings.random_erasing() if settings.erasing_prob > 0 else None
    return TrainAugment(
        (settings.height, settings.width),
        settings.flip_prob,
        settings.pad,
        list(settings.mean),
        list(settings.std),
        erasing,
    )


def build_test_transform(
    height: int, width: int, mean: Sequence[float], std: Sequence[float]
) -> Callable:
    """Resize, to [0,1], normalise (deterministic); the values are checked as TransformConfig's."""
    checked = TransformConfig(height=height, width=width, mean=tuple(mean), std=tuple(std))
    return T.Compose(
        [
            T.Resize((checked.height, checked.width), interpolation=T.InterpolationMode.BILINEAR),
            T.ToTensor(),
            T.Normalize(list(checked.mean), list(checked.std)),
        ]
    )
