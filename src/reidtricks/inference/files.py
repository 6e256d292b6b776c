"""Image files in and feature files out: listing a folder's images, Market-style ids from a file
name, a file's sha256, and plain-array .npz files written atomically."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from reidtricks.data.datasets.market_naming import IMAGE_SUFFIXES, parse_market_name
from reidtricks.errors import InputError, MissingInputError


@dataclass(frozen=True)
class BadImage:
    """An image file that could not be read, with the one-line reason."""

    path: str
    error: str


def list_image_files(root: str | os.PathLike, what: str = "images") -> tuple[list[Path], int]:
    """Image files under `root` (a folder, searched recursively, or one image file), sorted, and
    how many other files were passed over; hidden files and folders are skipped."""
    root = Path(root)
    suffixes = ", ".join(IMAGE_SUFFIXES)
    if root.is_file():
        if root.suffix.lower() not in IMAGE_SUFFIXES:
            raise InputError(f"{what}={root}: not an image file (expected {suffixes})")
        return [root], 0
    if not root.is_dir():
        raise MissingInputError(f"{what}={root}: no such folder or image file")
    images, others = [], 0
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in files:
            if name.startswith("."):
                continue
            if Path(name).suffix.lower() in IMAGE_SUFFIXES:
                images.append(Path(folder) / name)
            else:
                others += 1
    if not images:
        raise InputError(f"{what}={root}: holds no image files ({suffixes}; searched recursively)")
    return sorted(images), others


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


def save_npz(path: Path, **arrays: Any) -> Path:
    """Write plain arrays (no pickled objects) atomically: a temporary file, then a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as fh:
        np.savez(fh, **arrays)
    os.replace(tmp, path)
    return path
