"""The training augmentation as one callable whose random draws all come from a given generator,
so a sample's augmentation is reproducible from (seed, epoch, index) alone (`sample_rng`)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from PIL import Image
from torch import Tensor
from torchvision import transforms as T
from torchvision.transforms import functional as F

from reidtricks.data.random_erasing import RandomErasing

# A PIL -> PIL step drawing from the generator it is given (data/color_augment.py).
ColourStep = Callable[[Image.Image, torch.Generator | None], Image.Image]


class TrainAugment:
    """Resize, flip with `flip_prob`, zero-pad by `pad` + random crop back to size, the `colour`
    steps in turn, to [0,1], normalise, then `erasing` (if any); every draw from `generator`."""

    def __init__(
        self,
        size: tuple[int, int],
        flip_prob: float,
        pad: int,
        mean: Sequence[float],
        std: Sequence[float],
        erasing: RandomErasing | None,
        colour: Sequence[ColourStep] = (),
    ) -> None:
        self.size, self.flip_prob, self.pad = size, float(flip_prob), int(pad)
        self.colour = list(colour)
        self.resize = T.Resize(size, interpolation=T.InterpolationMode.BILINEAR)
        self.normalize = T.Normalize(list(mean), list(std))
        self.erasing = erasing

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(size={self.size}, flip_prob={self.flip_prob}, pad={self.pad}, "
            f"colour={self.colour!r}, {self.normalize!r}, erasing={self.erasing!r})"
        )

    def __call__(self, image: Image.Image, generator: torch.Generator | None = None) -> Tensor:
        image = self.resize(image)
        if torch.rand(1, generator=generator).item() < self.flip_prob:
            image = F.hflip(image)
        if self.pad > 0:  # as T.Pad(pad, fill=0) + T.RandomCrop(size)
            image = F.pad(image, self.pad, fill=0, padding_mode="constant")
            top = int(torch.randint(0, 2 * self.pad + 1, (1,), generator=generator).item())
            left = int(torch.randint(0, 2 * self.pad + 1, (1,), generator=generator).item())
            image = F.crop(image, top, left, self.size[0], self.size[1])
        for step in self.colour:
            image = step(image, generator)
        tensor = self.normalize(F.to_tensor(image))
        if self.erasing is not None:
            tensor = self.erasing(tensor, generator)
        return tensor
