"""Market-1501-style folders: file names `PPPP_cCsS_FFFFFF_NN.jpg` (pid -1 marks junk)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

from reidtricks.data.splits import ReIDItem, ReIDSplits, relabel
from reidtricks.errors import InputError, MissingInputError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")
_NAME = re.compile(r"^(-?\d+)_c(\d+)")
NAME_PATTERN = "PPPP_cC..., e.g. 0002_c1s1_000451_03.jpg"


def parse_market_name(path: Path) -> tuple[int, int]:
    """(pid, camid 0-based) from a Market-style file name; ValueError naming the file otherwise."""
    match = _NAME.match(path.name)
    if match is None:
        raise InputError(
            f"{path}: file name does not match the Market-1501 pattern ({NAME_PATTERN})"
        )
    pid, cam = int(match.group(1)), int(match.group(2))
    if cam < 1:
        raise InputError(f"{path}: camera c{cam} in the file name, expected c1 or higher")
    return pid, cam - 1


def list_images(folder: Path) -> list[Path]:
    """Sorted image files of a folder; errors for a missing folder or one with no images."""
    if not folder.is_dir():
        raise MissingInputError(f"{folder} is not a folder")
    images = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not images:
        raise InputError(f"{folder} holds no image files ({', '.join(IMAGE_SUFFIXES)})")
    return images


def read_market_folder(folder: Path) -> list[ReIDItem]:
    """Items of one split folder, sorted by path; junk (pid -1) dropped, pid 0 kept."""
    items = []
    for path in list_images(folder):
        pid, cam = parse_market_name(path)
        if pid != -1:
            items.append((str(path), pid, cam))
    return items


def find_dataset_dir(
    root: str | Path, candidates: Sequence[str], required: Sequence[str], layout: str
) -> Path:
    """The first of root/<candidate> holding every `required` entry; a one-line error otherwise."""
    root = Path(root)
    tried = [root / c if c else root for c in candidates]
    for path in tried:
        if all((path / r).exists() for r in required):
            return path
    raise MissingInputError(
        f"dataset not found: tried {', '.join(str(p) for p in tried)}; expected {layout} "
        "(set paths.data_dir=/path/to/datasets)"
    )


MARKET_SPLIT_DIRS = ("bounding_box_train", "query", "bounding_box_test")


def read_market_style(
    name: str,
    folder: Path,
    train_dir: str = "bounding_box_train",
    query_dir: str = "query",
    gallery_dir: str = "bounding_box_test",
) -> ReIDSplits:
    """Parse three Market-style folders: junk (pid -1) dropped, distractors (pid 0) kept."""
    return ReIDSplits(
        name=name,
        train=relabel(read_market_folder(folder / train_dir)),
        query=read_market_folder(folder / query_dir),
        gallery=read_market_folder(folder / gallery_dir),
    )
