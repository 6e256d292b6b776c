"""Content digests of files (blake2b of their bytes) with a stat shortcut: a file whose path,
size, mtime, ctime and inode are all unchanged keeps its recorded digest. ctime cannot be set
back (os.utime moves it too), and a file changed too recently to tell is hashed again."""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

# Stamps of files changed within this window of the hashing are not trusted: a second write in
# the same timestamp tick would leave the stamp unchanged ("racy" files, as git calls them).
RACY_NS = 2_000_000_000
_ARRAYS = ("digest_paths", "digest_stamps", "digest_values")


def file_blake2b(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """Hex blake2b (128-bit) of a file's bytes."""
    digest = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def _stamp(stat: os.stat_result, now_ns: int) -> str:
    """'size:mtime:ctime:inode', or '' (never matches) for a file changed too recently."""
    if max(stat.st_mtime_ns, stat.st_ctime_ns) >= now_ns - RACY_NS:
        return ""
    return f"{stat.st_size}:{stat.st_mtime_ns}:{stat.st_ctime_ns}:{stat.st_ino}"


@dataclass(frozen=True)
class DigestIndex:
    """Recorded digests: path -> (stamp, digest), stored as three plain string arrays."""

    entries: Mapping[str, tuple[str, str]]

    def as_arrays(self) -> dict[str, np.ndarray]:
        paths = sorted(self.entries)
        return {
            "digest_paths": np.array(paths, dtype=str),
            "digest_stamps": np.array([self.entries[p][0] for p in paths], dtype=str),
            "digest_values": np.array([self.entries[p][1] for p in paths], dtype=str),
        }

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, np.ndarray]) -> DigestIndex | None:
        """The index stored by `as_arrays`, or None when it is missing or malformed."""
        if not all(name in arrays for name in _ARRAYS):
            return None
        paths, stamps, values = (np.asarray(arrays[name]) for name in _ARRAYS)
        if not (paths.ndim == stamps.ndim == values.ndim == 1) or not (
            len(paths) == len(stamps) == len(values)
        ):
            return None
        return cls(
            {str(p): (str(s), str(v)) for p, s, v in zip(paths, stamps, values, strict=True)}
        )


def file_digests(
    files: Sequence[str | os.PathLike], known: DigestIndex | None = None
) -> tuple[list[str], DigestIndex, int]:
    """(digest of each file, the updated index, how many files were read and hashed)."""
    now_ns = time.time_ns()
    entries: dict[str, tuple[str, str]] = {}
    digests, hashed = [], 0
    for file in files:
        path = os.fspath(file)
        stamp = _stamp(os.stat(path), now_ns)
        recorded = known.entries.get(path) if known is not None else None
        if stamp and recorded is not None and recorded[0] == stamp:
            digest = recorded[1]
        else:
            digest, hashed = file_blake2b(path), hashed + 1
        entries[path] = (stamp, digest)
        digests.append(digest)
    return digests, DigestIndex(entries), hashed
