"""Market-1501-style folders: file names `PPPP_cCsS_FFFFFF_NN.jpg` (pid -1 marks junk)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

from reidtricks.data.splits import Excluded, ReIDItem, ReIDSplits, assemble_splits
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
    return read_market_folder_and_junk(folder)[0]


def read_market_folder_and_junk(folder: Path) -> tuple[list[ReIDItem], list[Excluded]]:
    """Items of one split folder sorted by path, and its junk images (pid -1) as excluded."""
    items, junk = [], []
    for path in list_images(folder):
        pid, cam = parse_market_name(path)
        if pid == -1:
            junk.append((str(path), "junk (pid -1)"))
        else:
            items.append((str(path), pid, cam))
    return items, junk


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
    combineall: bool = False,
    train_optional: bool = False,
) -> ReIDSplits:
    """Parse three Market-style folders: junk (pid -1) excluded, distractors (pid 0) kept in the
    gallery (left out of train with combineall). `train_optional`: a missing or empty training
    folder gives an empty train split (test-only folders)."""
    train_folder = folder / train_dir
    train, junk = [], []
    if not train_optional or (train_folder.is_dir() and _has_images(train_folder)):
        train, junk = read_market_folder_and_junk(train_folder)
    query, query_junk = read_market_folder_and_junk(folder / query_dir)
    gallery, gallery_junk = read_market_folder_and_junk(folder / gallery_dir)
    return assemble_splits(
        name, train, query, gallery,
        combineall=combineall, excluded=junk + query_junk + gallery_junk, distractor_pids={0},
    )  # fmt: skip


def _has_images(folder: Path) -> bool:
    return any(p.suffix.lower() in IMAGE_SUFFIXES for p in folder.iterdir())
