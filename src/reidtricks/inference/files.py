"""Image files in and feature files out: listing a folder's images, Market-style ids from a file
name, a file's sha256, and outputs (plain-array .npz files) written atomically."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from reidtricks.data.datasets.market_naming import IMAGE_SUFFIXES, parse_market_name
from reidtricks.errors import InputError, MissingInputError

# What extract / search / export read: the datasets' suffixes and TIFF, which read_image takes.
INFERENCE_SUFFIXES = (*IMAGE_SUFFIXES, ".tif", ".tiff")


@dataclass(frozen=True)
class BadImage:
    """An image file that could not be read, with the one-line reason."""

    path: str
    error: str


class ImageFiles(NamedTuple):
    """A listing: the image files, sorted; other files passed over; image files skipped because
    their name, or a folder's on the way to them, starts with '.'."""

    paths: list[Path]
    others: int
    hidden: int

    def hidden_note(self, separator: str = "; ") -> str:
        """`<separator>N hidden images skipped (...)` for a summary line; empty when none are."""
        if not self.hidden:
            return ""
        return (
            f"{separator}{self.hidden} hidden images skipped (a name or folder starting with '.')"
        )


def _is_image(name: str) -> bool:
    return Path(name).suffix.lower() in INFERENCE_SUFFIXES


def list_image_files(root: str | os.PathLike, what: str = "images") -> ImageFiles:
    """Image files under `root` (a folder, searched recursively, or one image file, hidden or
    not); hidden files and folders are skipped, and their images counted."""
    root = Path(root)
    suffixes = ", ".join(INFERENCE_SUFFIXES)
    if root.is_file():
        if not _is_image(root.name):
            raise InputError(f"{what}={root}: not an image file (expected {suffixes})")
        return ImageFiles([root], 0, 0)
    if not root.is_dir():
        raise MissingInputError(f"{what}={root}: no such folder or image file")
    images, others, hidden = [], 0, 0
    for folder, dirs, files in os.walk(root):
        dirs.sort()
        inside_hidden = any(part.startswith(".") for part in Path(folder).relative_to(root).parts)
        for name in files:
            if inside_hidden or name.startswith("."):
                hidden += _is_image(name)
            elif _is_image(name):
                images.append(Path(folder) / name)
            else:
                others += 1
    listing = ImageFiles(sorted(images), others, hidden)
    if not images:
        raise InputError(
            f"{what}={root}: holds no image files ({suffixes}; searched recursively)"
            f"{listing.hidden_note()}"
        )
    return listing


def market_ids(path: str | os.PathLike) -> tuple[int, int] | None:
    """(pid, camid 0-based) when the file name follows the Market-1501 pattern, else None."""
    try:
        return parse_market_name(Path(path))
    except ValueError:
        return None


def file_sha256(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in chunks (checkpoints can be hundreds of MB)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def cut_to_bytes(text: str, max_bytes: int) -> str:
    """`text` cut to at most `max_bytes` of UTF-8, on a character boundary."""
    return text.encode()[:max_bytes].decode(errors="ignore")


def temp_path(path: Path) -> Path:
    """A hidden temporary name next to `path`, with its suffix (savefig guesses the format from
    it), short enough for any file system whatever the length of `path`'s name."""
    suffix = path.suffix if len(path.suffix) <= 10 else ""
    return path.with_name(f".{cut_to_bytes(path.name, 100)}.{os.getpid()}.tmp{suffix}")


@contextmanager
def atomic_output(path: Path) -> Iterator[Path]:
    """A temporary path next to `path` to write; renamed over `path` when the block ends, removed
    when it raises: a crash or a full disk never leaves a half-written output, and an older file
    stays whole."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path(path)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def save_npz(path: Path, **arrays: Any) -> Path:
    """Write plain arrays (no pickled objects) atomically: a temporary file, then a rename."""
    with atomic_output(path) as tmp, open(tmp, "wb") as fh:
        np.savez(fh, **arrays)
    return path
