"""Random erasing (Zhong et al.) as in the Bag of Tricks code, applied to normalised tensors."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

from reidtricks.errors import InputError
from reidtricks.validate import require_int, require_number

_NAMED_FILLS = ("imagenet_mean", "zero", "random")
# The authors write these constants into the *normalised* tensor; kept as the default.
_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_FILL_ERROR = "RandomErasing fill must be one of " + ", ".join(_NAMED_FILLS)
_FILL_ERROR += " or a sequence of per-channel values, got {fill!r}"


def _check_range(name: str, value: Sequence[float], low: float, high: float | None) -> tuple:
    bound = f"({low}, {high}]" if high is not None else f"> {low}"
    try:
        lo, hi = (float(v) for v in value)
    except (TypeError, ValueError):
        raise InputError(
            f"RandomErasing {name} must be two numbers (min, max), got {value!r}"
        ) from None
    if not (low < lo <= hi and (high is None or hi <= high)):
        raise InputError(
            f"RandomErasing {name} must satisfy min <= max with both {bound}, got {value!r}"
        )
    return lo, hi


class RandomErasing(torch.nn.Module):
    """With probability p, fill one random rectangle (uniform area and aspect) of a C x H x W
    tensor; up to `max_attempts` draws until it fits. Draws from `generator` (torch's global RNG
    when None).
    """

    def __init__(
        self,
        probability: float = 0.5,
        area_range: tuple[float, float] = (0.02, 0.4),
        aspect_range: tuple[float, float] = (0.3, 3.33),
        fill: str | Sequence[float] = "imagenet_mean",
        max_attempts: int = 100,
    ) -> None:
        super().__init__()
        self.probability = require_number("RandomErasing probability", probability, 0.0, 1.0)
        self.area_range = _check_range("area_range", area_range, 0.0, 1.0)
        self.aspect_range = _check_range("aspect_range", aspect_range, 0.0, None)
        self.max_attempts = require_int("RandomErasing max_attempts", max_attempts, minimum=1)
        if isinstance(fill, str):
            if fill not in _NAMED_FILLS:
                raise InputError(_FILL_ERROR.format(fill=fill))
            self.fill: str | tuple[float, ...] = fill
        else:
            try:
                values = tuple(float(v) for v in fill)
            except (TypeError, ValueError):
                raise InputError(_FILL_ERROR.format(fill=fill)) from None
            if not values:
                raise InputError("RandomErasing fill must have one value per channel, got none")
            self.fill = values

    def extra_repr(self) -> str:
        return (
            f"probability={self.probability}, area_range={self.area_range}, "
            f"aspect_range={self.aspect_range}, fill={self.fill!r}, "
            f"max_attempts={self.max_attempts}"
        )

    def _patch(self, img: Tensor, h: int, w: int, generator: torch.Generator | None) -> Tensor:
        channels = img.shape[0]
        if self.fill == "random":
            noise = torch.randn(channels, h, w, generator=generator, dtype=img.dtype)
            return noise.to(img.device)
        if self.fill == "zero":
            return torch.zeros(channels, h, w, dtype=img.dtype, device=img.device)
        values = _IMAGENET_MEAN if self.fill == "imagenet_mean" else self.fill
        if len(values) != channels:
            raise InputError(
                f"RandomErasing fill {self.fill!r} has {len(values)} values but the image has "
                f"{channels} channels"
            )
        patch = torch.tensor(values, dtype=img.dtype, device=img.device)
        return patch.view(channels, 1, 1).expand(channels, h, w)

    def forward(self, img: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Return `img` unchanged, or an erased copy (the input is never modified)."""
        if img.ndim != 3:
            raise InputError(
                f"RandomErasing expects a C x H x W tensor, got shape {tuple(img.shape)}"
            )
        if (
            self.probability == 0.0
            or torch.rand((), generator=generator).item() >= self.probability
        ):
            return img
        _, height, width = img.shape
        area = height * width
        (a_lo, a_hi), (r_lo, r_hi) = self.area_range, self.aspect_range
        for _ in range(self.max_attempts):
            u_area, u_aspect = torch.rand(2, generator=generator).tolist()
            target_area = (a_lo + (a_hi - a_lo) * u_area) * area
            aspect = r_lo + (r_hi - r_lo) * u_aspect
            h = round(math.sqrt(target_area * aspect))
            w = round(math.sqrt(target_area / aspect))
            if 0 < h < height and 0 < w < width:
                top = int(torch.randint(0, height - h + 1, (), generator=generator).item())
                left = int(torch.randint(0, width - w + 1, (), generator=generator).item())
                out = img.clone()
                out[:, top : top + h, left : left + w] = self._patch(img, h, w, generator)
                return out
        return img
