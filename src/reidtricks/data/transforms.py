"""Train / test transforms of docs/METHOD.md ("Input pipeline", trick 2): PIL image -> normalised tensor."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from torchvision import transforms as T

from reidtricks.data.settings import TransformConfig


def build_train_transform(settings: TransformConfig) -> Callable:
    """Resize, flip, zero-pad + random crop, to [0,1], normalise, then random erasing if p > 0."""
    size = (settings.height, settings.width)
    steps: list[Callable] = [
        T.Resize(size, interpolation=T.InterpolationMode.BILINEAR),
        T.RandomHorizontalFlip(p=float(settings.flip_prob)),
    ]
    if settings.pad > 0:
        steps += [T.Pad(settings.pad, fill=0, padding_mode="constant"), T.RandomCrop(size)]
    steps += [T.ToTensor(), T.Normalize(list(settings.mean), list(settings.std))]
    if settings.erasing_prob > 0:
        steps.append(settings.random_erasing())
    return T.Compose(steps)


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
