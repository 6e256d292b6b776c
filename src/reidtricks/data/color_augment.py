"""Colour augmentation of training images (docs/METHOD.md, "Colour augmentation"): colour jitter,
random grayscale and torchvision's AutoAugment / TrivialAugmentWide, each on a PIL image with
every random draw taken from the given generator (torchvision's own classes use the global RNG)."""

from __future__ import annotations

import torch
from PIL import Image
from torchvision import transforms as T
from torchvision.transforms import InterpolationMode
from torchvision.transforms import functional as F
from torchvision.transforms.autoaugment import _apply_op

from reidtricks.validate import require_choice

AUTO_AUGMENT_CHOICES = ("none", "autoaugment", "trivialaugment")


def _uniform(low: float, high: float, generator: torch.Generator | None) -> float:
    return float(torch.empty(1).uniform_(low, high, generator=generator))


class ColorJitter:
    """Brightness, contrast and saturation factors from U(max(0, 1 - s), 1 + s), a hue shift from
    U(-h, h), applied in a random order; draws in the order of torchvision's ColorJitter."""

    def __init__(self, brightness: float, contrast: float, saturation: float, hue: float) -> None:
        factors = (brightness, contrast, saturation)
        # (low, high) per op, None for a strength of 0: that op is neither drawn nor applied.
        self.ranges = [(max(0.0, 1.0 - s), 1.0 + s) if s > 0 else None for s in factors]
        self.ranges.append((-hue, hue) if hue > 0 else None)
        self.strengths = (*factors, hue)

    def __repr__(self) -> str:
        b, c, s, h = self.strengths
        return f"ColorJitter(brightness={b}, contrast={c}, saturation={s}, hue={h})"

    def __call__(self, image: Image.Image, generator: torch.Generator | None) -> Image.Image:
        order = torch.randperm(4, generator=generator).tolist()
        values = [None if r is None else _uniform(*r, generator) for r in self.ranges]
        ops = (F.adjust_brightness, F.adjust_contrast, F.adjust_saturation, F.adjust_hue)
        for op in order:
            if values[op] is not None:
                image = ops[op](image, values[op])
        return image


class RandomGrayscale:
    """With probability p, the ITU-R 601 luma of the image in all three channels."""

    def __init__(self, p: float) -> None:
        self.p = float(p)

    def __repr__(self) -> str:
        return f"RandomGrayscale(p={self.p})"

    def __call__(self, image: Image.Image, generator: torch.Generator | None) -> Image.Image:
        if torch.rand(1, generator=generator).item() < self.p:
            return F.rgb_to_grayscale(image, num_output_channels=3)
        return image


class AutoAugment:
    """torchvision's policy `autoaugment` (ImageNet) or `trivialaugment` (TrivialAugmentWide,
    31 magnitude bins): its ops, magnitudes and draws, nearest interpolation, black fill."""

    def __init__(self, policy: str) -> None:
        self.policy = require_choice("auto_augment policy", policy, AUTO_AUGMENT_CHOICES[1:])
        if policy == "autoaugment":
            self._torchvision = T.AutoAugment(T.AutoAugmentPolicy.IMAGENET)
        else:
            self._torchvision = T.TrivialAugmentWide()

    def __repr__(self) -> str:
        return f"AutoAugment(policy={self.policy!r})"

    def _apply(self, image: Image.Image, op: str, magnitude: float) -> Image.Image:
        return _apply_op(image, op, magnitude, interpolation=InterpolationMode.NEAREST, fill=None)

    def __call__(self, image: Image.Image, generator: torch.Generator | None) -> Image.Image:
        if self.policy == "autoaugment":
            return self._auto_augment(image, generator)
        return self._trivial_augment(image, generator)

    def _auto_augment(self, image: Image.Image, generator: torch.Generator | None) -> Image.Image:
        """One of the 25 sub-policies; each of its two ops applied with its probability."""
        policies = self._torchvision.policies
        chosen = int(torch.randint(len(policies), (1,), generator=generator).item())
        probs = torch.rand((2,), generator=generator)
        signs = torch.randint(2, (2,), generator=generator)
        width, height = image.size
        space = self._torchvision._augmentation_space(10, (height, width))
        for i, (op, p, bin_id) in enumerate(policies[chosen]):
            if probs[i] <= p:
                magnitudes, signed = space[op]
                magnitude = float(magnitudes[bin_id].item()) if bin_id is not None else 0.0
                if signed and signs[i] == 0:
                    magnitude = -magnitude
                image = self._apply(image, op, magnitude)
        return image

    def _trivial_augment(
        self, image: Image.Image, generator: torch.Generator | None
    ) -> Image.Image:
        """One op of the wide space with a uniformly drawn magnitude bin and sign."""
        space = self._torchvision._augmentation_space(self._torchvision.num_magnitude_bins)
        op = list(space)[int(torch.randint(len(space), (1,), generator=generator).item())]
        magnitudes, signed = space[op]
        magnitude = 0.0
        if magnitudes.ndim > 0:
            bin_id = torch.randint(len(magnitudes), (1,), dtype=torch.long, generator=generator)
            magnitude = float(magnitudes[bin_id].item())
        if signed and torch.randint(2, (1,), generator=generator).item():
            magnitude = -magnitude
        return self._apply(image, op, magnitude)
