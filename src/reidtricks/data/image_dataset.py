"""A torch Dataset over (path, pid, camid) items that reads images with PIL."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError
from torch.utils.data import Dataset

from reidtricks.data.sample_rng import sample_generator
from reidtricks.data.splits import ReIDItem
from reidtricks.errors import MissingInputError, UnreadableInputError

_SIXTEEN_BIT = ("I;16", "I;16B", "I;16L", "I;16N", "I")


def to_rgb(img: Image.Image) -> Image.Image:
    """8-bit RGB from any PIL mode: 16-bit (I;16*, and I, read on the 0..65535 scale of 16-bit
    PNG / TIFF) as round(value / 257); F on PIL's 0..255 scale; alpha dropped; palettes looked up."""
    if img.mode in _SIXTEEN_BIT or img.mode == "F":
        values = np.nan_to_num(np.asarray(img, dtype=np.float64))
        scale = 257.0 if img.mode in _SIXTEEN_BIT else 1.0  # PIL's convert("RGB") clips at 255
        grey = np.clip(np.rint(values / scale), 0, 255).astype(np.uint8)
        return Image.fromarray(grey).convert("RGB")  # uint8 H x W: mode L
    if img.mode == "La":  # premultiplied alpha has no direct conversion to RGB
        img = img.convert("LA")
    return img.convert("RGB")


def read_image(path: str) -> Image.Image:
    """RGB image (`to_rgb`); an unreadable, corrupt or missing file raises an error naming it."""
    try:
        with warnings.catch_warnings():
            # PIL only warns between MAX_IMAGE_PIXELS and twice that: refuse it as well.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                return to_rgb(img)
    except FileNotFoundError as err:
        raise MissingInputError(f"{path}: image file does not exist") from err
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
        raise UnreadableInputError(
            f"{path}: cannot read image (over PIL's limit of {Image.MAX_IMAGE_PIXELS} pixels: "
            "a decompression bomb, refused)"
        ) from err
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        raise UnreadableInputError(
            f"{path}: cannot read image ({type(err).__name__}: {err})"
        ) from err


def check_images_readable(item_lists: Sequence[Sequence[ReIDItem]], what: str) -> None:
    """Decode every image once (deduplicated), with a progress bar; the first unreadable one
    raises `read_image`'s error naming it."""
    from rich.progress import track

    paths = sorted({path for items in item_lists for path, _, _ in items})
    for path in track(paths, description=f"{what}: decoding {len(paths)} images", transient=True):
        read_image(path)


class ImageDataset(Dataset):
    """Item i -> (image after `transform`, pid, camid, i); the index lets DDP results be merged.

    With a `seed`, the key is i or (i, epoch) and the transform is called as
    `transform(image, generator)` with `sample_generator(seed, epoch, i)` (epoch 0 for a bare i).
    """

    def __init__(
        self, items: Sequence[ReIDItem], transform: Callable | None = None, seed: int | None = None
    ) -> None:
        self.items = list(items)
        self.transform = transform
        self.seed = seed

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, key: int | tuple[int, int]) -> tuple[Any, int, int, int]:
        index, epoch = key if isinstance(key, tuple) else (key, 0)
        path, pid, camid = self.items[index]
        image = read_image(path)
        if self.transform is not None and self.seed is not None:
            image = self.transform(image, sample_generator(self.seed, epoch, index))
        elif self.transform is not None:
            image = self.transform(image)
        return image, pid, camid, index
