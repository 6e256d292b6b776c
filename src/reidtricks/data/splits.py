"""What a dataset parser returns: (path, pid, camid) lists for train / query / gallery."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass

from reidtricks.errors import InputError

ReIDItem = tuple[str, int, int]  # (image path, pid, camid 0-based)
Excluded = tuple[str, str]  # (image path, why it is in none of train / query / gallery)


def relabel(items: Sequence[ReIDItem]) -> list[ReIDItem]:
    """Map the pids of training items to 0..N-1 in sorted order of the original pid."""
    mapping = {pid: label for label, pid in enumerate(sorted({pid for _, pid, _ in items}))}
    return [(path, mapping[pid], cam) for path, pid, cam in items]


@dataclass(frozen=True)
class ReIDSplits:
    """A parsed dataset: training pids relabelled 0..N-1; query/gallery keep original pids.

    `excluded` lists every image of the set that is in none of the three lists, with the reason;
    `notes` are lines shown under the statistics (e.g. which trial, comparability); `qualifier`
    marks a variant that must show wherever the set is named (test set `KEY-qualifier`)."""

    name: str
    train: list[ReIDItem]
    query: list[ReIDItem]
    gallery: list[ReIDItem]
    excluded: tuple[Excluded, ...] = ()
    notes: tuple[str, ...] = ()
    qualifier: str = ""

    @property
    def num_train_pids(self) -> int:
        return len({pid for _, pid, _ in self.train})

    def counts(self) -> dict[str, dict[str, int]]:
        """Per split: {"ids", "images", "cameras"}."""
        return {
            split: {
                "ids": len({pid for _, pid, _ in items}),
                "images": len(items),
                "cameras": len({cam for _, _, cam in items}),
            }
            for split, items in zip(
                ("train", "query", "gallery"), (self.train, self.query, self.gallery), strict=True
            )
        }

    def statistics_table(self) -> str:
        """Per split: identities, images, cameras, as a plain text table (then excluded, notes)."""
        lines = [
            f"{self.name}",
            f"  {'split':<8} {'ids':>6} {'images':>8} {'cameras':>8}",
        ]
        for split, row in self.counts().items():
            lines.append(f"  {split:<8} {row['ids']:>6} {row['images']:>8} {row['cameras']:>8}")
        if self.excluded:
            reasons: dict[str, int] = {}
            for _, reason in self.excluded:
                reasons[reason] = reasons.get(reason, 0) + 1
            detail = "; ".join(f"{n}: {reason}" for reason, n in reasons.items())
            lines.append(f"  excluded {plural(len(self.excluded), 'image')} ({detail})")
        lines += [f"  note: {note}" for note in self.notes]
        return "\n".join(lines)


def plural(count: int, noun: str) -> str:
    """`1 image`, `2 images`."""
    return f"{count} {noun}{'' if count == 1 else 's'}"


def check_split(name: str, split: int, num_splits: int) -> int:
    """`split` as an int in 0..num_splits-1; a one-line error naming `split` otherwise."""
    if isinstance(split, bool) or not isinstance(split, int) or not 0 <= split < num_splits:
        raise InputError(
            f"{name}: split={split!r} is out of range; expected an integer 0..{num_splits - 1}"
        )
    return split


def assemble_splits(
    name: str,
    train: Sequence[ReIDItem],
    query: Sequence[ReIDItem],
    gallery: Sequence[ReIDItem],
    *,
    combineall: bool = False,
    unused: Sequence[tuple[ReIDItem, str]] = (),
    excluded: Sequence[Excluded] = (),
    distractor_pids: Collection[int] = (),
    test_pid_offset: int = 0,
    notes: Sequence[str] = (),
    qualifier: str = "",
) -> ReIDSplits:
    """ReIDSplits from raw (original-pid) lists; every parser ends here.

    `unused`: images of the set that the protocol leaves out but that have an identity (with the
    reason); `excluded`: images without one (junk). With `combineall`, train holds every image
    with an identity (train, query, gallery, unused; distractor pids of query/gallery left out),
    relabelled by original pid (+ `test_pid_offset` for query/gallery of sets whose test pids
    restart at 0); query and gallery are unchanged."""
    excluded = [*excluded]
    notes = [*notes]
    if combineall:
        test = [
            (path, pid + test_pid_offset, cam)
            for path, pid, cam in (*query, *gallery)
            if pid not in distractor_pids
        ]
        pool = sorted(set(train) | set(test) | {item for item, _ in unused})
        paths = [path for path, _, _ in pool]
        if len(set(paths)) != len(paths):
            raise InputError(f"{name}: combineall found an image with two identities")
        distractors = len(query) + len(gallery) - len(test)
        if distractors:
            notes.append(
                f"combineall: {plural(distractors, 'distractor image')} (no identity) not in train"
            )
        train = pool
    else:
        excluded += [(path, reason) for (path, _, _), reason in unused]
    return ReIDSplits(
        name=name,
        train=relabel(sorted(train)),
        query=list(query),
        gallery=list(gallery),
        excluded=tuple(sorted(excluded)),
        notes=tuple(notes),
        qualifier=qualifier,
    )


def test_set_name(key: str, splits: ReIDSplits) -> str:
    """The name of a test set in metrics and reports: the source key, plus `-qualifier` when the
    parsed set has one (e.g. GRID's random partitions: `grid-random`)."""
    if splits.qualifier and not key.endswith(f"-{splits.qualifier}"):
        return f"{key}-{splits.qualifier}"
    return key


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
