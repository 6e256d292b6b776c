"""Train / test transforms of docs/METHOD.md ("Input pipeline", "Colour augmentation", trick 2):
PIL image -> normalised tensor."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from torchvision import transforms as T

from reidtricks.data.color_augment import AutoAugment, ColorJitter, RandomGrayscale
from reidtricks.data.settings import TransformConfig
from reidtricks.data.train_augment import ColourStep, TrainAugment


def build_train_transform(settings: TransformConfig) -> Callable:
    """Resize, flip, zero-pad + random crop, the colour steps that are on (jitter, grayscale,
    auto-augment), to [0,1], normalise, then random erasing if p > 0; called as
    `transform(image, generator)`, every random draw taken from `generator`."""
    erasing = settings.random_erasing() if settings.erasing_prob > 0 else None
    colour: list[ColourStep] = []
    if any(s > 0 for s in settings.jitter_strengths()):
        colour.append(ColorJitter(*settings.jitter_strengths()))
    if settings.grayscale_prob > 0:
        colour.append(RandomGrayscale(settings.grayscale_prob))
    if settings.auto_augment != "none":
        colour.append(AutoAugment(settings.auto_augment))
    return TrainAugment(
        (settings.height, settings.width),
        settings.flip_prob,
        settings.pad,
        list(settings.mean),
        list(settings.std),
        erasing,
        colour,
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
