"""The search command's gallery features, cached on disk per checkpoint, settings and folder, and
keyed by the files' contents (blake2b); an unreadable or inconsistent cache is rebuilt."""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path

import numpy as np
import torch

from reidtricks.errors import UnreadableInputError
from reidtricks.inference.content_hash import DigestIndex, file_digests
from reidtricks.inference.extractor import Extraction, FeatureExtractor
from reidtricks.inference.files import BadImage, file_sha256, save_npz

_ENTRY = ("key", "paths", "features", "bad_paths", "bad_errors")


def gallery_cache_name(checkpoint_sha256: str, extractor: FeatureExtractor, root: Path) -> str:
    """The entry's file name: one per checkpoint, extraction settings and gallery folder."""
    ident = {"checkpoint_sha256": checkpoint_sha256, "gallery": str(root.resolve())}
    ident.update(extractor.settings())
    return (
        f"gallery-{hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()[:20]}.npz"
    )


def gallery_content_key(name: str, root: Path, files: list[Path], digests: list[str]) -> str:
    """sha256 of the entry name and every file's relative name and content digest."""
    listing = [[os.fspath(f.relative_to(root)), d] for f, d in zip(files, digests, strict=True)]
    return hashlib.sha256(json.dumps([name, listing]).encode()).hexdigest()


def _warn(path: Path, reason: str) -> None:
    print(f"warning: gallery cache {path} {reason}; rebuilding it", file=sys.stderr)


def read_cache_entry(path: Path) -> dict[str, np.ndarray] | None:
    """The arrays of a cache file, or None (with a one-line warning when it exists but cannot be
    read: empty, truncated, not an .npz)."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as data:
            return {name: np.asarray(data[name]) for name in data.files}
    except Exception as err:  # any damage to a cache file only costs a rebuild
        _warn(path, f"cannot be read ({type(err).__name__}: {err})".replace("\n", " "))
        return None


def cached_extraction(
    entry: dict[str, np.ndarray], files: list[Path], feat_dim: int
) -> Extraction | str:
    """The entry's features when they are consistent with `files` (rows == readable files, one
    column per feature dimension, every file once), else the reason they are not."""
    if any(name not in entry for name in _ENTRY):
        return f"lacks {[n for n in _ENTRY if n not in entry]}"
    paths = [str(p) for p in entry["paths"].reshape(-1)]
    bad_paths = [str(p) for p in entry["bad_paths"].reshape(-1)]
    bad_errors = [str(e) for e in entry["bad_errors"].reshape(-1)]
    feats = entry["features"]
    if feats.ndim != 2 or feats.shape != (len(paths), feat_dim):
        return f"holds features of shape {feats.shape} for {len(paths)} images x {feat_dim} dims"
    if sorted(paths + bad_paths) != sorted(os.fspath(f) for f in files):
        return f"lists {len(paths) + len(bad_paths)} images, the gallery has {len(files)} others"
    if len(bad_errors) != len(bad_paths) or not np.isfinite(feats).all():
        return "holds non-finite features or a malformed list of unreadable images"
    bad = [BadImage(p, e) for p, e in zip(bad_paths, bad_errors, strict=True)]
    return Extraction(paths, torch.from_numpy(feats.astype(np.float32)), bad)


def gallery_features(
    extractor: FeatureExtractor,
    checkpoint: str | os.PathLike,
    root: Path,
    files: list[Path],
    cache_dir: str | os.PathLike | None,
    skip_bad: bool,
    num_workers: int,
    progress: bool,
) -> tuple[Extraction, Path | None, bool]:
    """(gallery features, cache file or None, whether the cache was used); no cache when
    cache_dir is None."""
    cache_file, key, entry, index = None, "", None, None
    if cache_dir is not None:
        name = gallery_cache_name(file_sha256(checkpoint), extractor, root)
        cache_file = Path(cache_dir) / name
        entry = read_cache_entry(cache_file)
        known = DigestIndex.from_arrays(entry) if entry is not None else None
        digests, index, _ = file_digests(files, known)
        key = gallery_content_key(name, root, files, digests)
        if entry is not None and str(entry.get("key", "")) == key:
            cached = cached_extraction(entry, files, extractor.feat_dim)
            if isinstance(cached, Extraction):
                if cached.bad and not skip_bad:  # the same answer as without the cache
                    raise UnreadableInputError(
                        f"{cached.bad[0].error} (skip_bad=true skips unreadable images)"
                    )
                if index != known:  # newly recorded stamps: keep them for the next search
                    save_npz(cache_file, **{**entry, **index.as_arrays()})
                return cached, cache_file, True
            _warn(cache_file, f"is inconsistent ({cached})")
    result = extractor.extract_files(
        files,
        skip_bad=skip_bad,
        num_workers=num_workers,
        progress=progress,
        description=f"gallery: {len(files)} images",
    )
    if cache_file is not None and index is not None:
        arrays = {
            "key": np.array(key),
            "paths": np.array(result.paths, dtype=str),
            "features": result.features.numpy().astype(np.float32),
            "bad_paths": np.array([b.path for b in result.bad], dtype=str),
            "bad_errors": np.array([b.error for b in result.bad], dtype=str),
        }
        save_npz(cache_file, **arrays, **index.as_arrays())
    return result, cache_file, False
