"""What a dataset parser returns: (path, pid, camid) lists for train / query / gallery."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

ReIDItem = tuple[str, int, int]  # (image path, pid, camid 0-based)


def relabel(items: Sequence[ReIDItem]) -> list[ReIDItem]:
    """Map the pids of training items to 0..N-1 in sorted order of the original pid."""
    mapping = {pid: label for label, pid in enumerate(sorted({pid for _, pid, _ in items}))}
    return [(path, mapping[pid], cam) for path, pid, cam in items]


@dataclass(frozen=True)
class ReIDSplits:
    """A parsed dataset: training pids relabelled 0..N-1; query/gallery keep original pids."""

    name: str
    train: list[ReIDItem]
    query: list[ReIDItem]
    gallery: list[ReIDItem]

    @property
    def num_train_pids(self) -> int:
        return len({pid for _, pid, _ in self.train})

    def statistics_table(self) -> str:
        """Per split: identities, images, cameras, as a plain text table."""
        lines = [
            f"{self.name}",
            f"  {'split':<8} {'ids':>6} {'images':>8} {'cameras':>8}",
        ]
        for split, items in (
            ("train", self.train),
            ("query", self.query),
            ("gallery", self.gallery),
        ):
            ids = len({pid for _, pid, _ in items})
            cams = len({cam for _, _, cam in items})
            lines.append(f"  {split:<8} {ids:>6} {len(items):>8} {cams:>8}")
        return "\n".join(lines)


def merge_train_splits(splits: Sequence[ReIDSplits]) -> tuple[list[ReIDItem], int]:
    """Training items of several datasets with pids and camids offset per dataset, so that
    identity 1 or camera 0 of one set is not that of another; (items, num_pids)."""
    merged: list[ReIDItem] = []
    offset = cam_offset = 0
    for split in splits:
        merged += [(path, pid + offset, cam + cam_offset) for path, pid, cam in split.train]
        offset += split.num_train_pids
        cam_offset += max((cam for _, _, cam in split.train), default=-1) + 1
    return merged, offset
