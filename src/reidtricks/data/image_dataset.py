"""A torch Dataset over (path, pid, camid) items that reads images with PIL."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from typing import Any

from PIL import Image, UnidentifiedImageError
from torch.utils.data import Dataset

from reidtricks.data.splits import ReIDItem
from reidtricks.errors import MissingInputError, UnreadableInputError


def read_image(path: str) -> Image.Image:
    """RGB image; an unreadable, corrupt or missing file raises an error naming it (no skip)."""
    try:
        with warnings.catch_warnings():
            # PIL only warns between MAX_IMAGE_PIXELS and twice that: refuse it as well.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                return img.convert("RGB")
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
    """Item i -> (image after `transform`, pid, camid, i); the index lets DDP results be merged."""

    def __init__(self, items: Sequence[ReIDItem], transform: Callable | None = None) -> None:
        self.items = list(items)
        self.transform = transform

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> tuple[Any, int, int, int]:
        path, pid, camid = self.items[index]
        image = read_image(path)
        if self.transform is not None:
            image = self.transform(image)
        return image, pid, camid, index
