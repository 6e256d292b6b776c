"""The search command's gallery features, cached on disk per checkpoint, settings and folder."""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path

import numpy as np
import torch

from reidtricks.errors import UnreadableInputError
from reidtricks.inference.extractor import Extraction, FeatureExtractor
from reidtricks.inference.files import BadImage, file_sha256, save_npz


def gallery_cache_keys(
    checkpoint_sha256: str, extractor: FeatureExtractor, root: Path, files: list[Path]
) -> tuple[str, str]:
    """(entry name, content key): one cache entry per checkpoint, settings and gallery folder,
    valid while the folder's file list (relative names, sizes, mtimes) is unchanged."""
    ident = {
        "checkpoint_sha256": checkpoint_sha256,
        "gallery": str(root.resolve()),
        **extractor.settings(),
    }
    listing = []
    for path in files:
        stat = path.stat()
        listing.append([os.fspath(path.relative_to(root)), stat.st_size, stat.st_mtime_ns])
    name = hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()[:20]
    key = hashlib.sha256(json.dumps([ident, listing], sort_keys=True).encode()).hexdigest()
    return f"gallery-{name}.npz", key


def load_cached_gallery(path: Path, key: str) -> Extraction | None:
    """The cached gallery features when `path` holds an entry for exactly `key`, else None."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as data:
            if str(data["key"]) != key:
                return None
            bad = [
                BadImage(str(p), str(e))
                for p, e in zip(data["bad_paths"], data["bad_errors"], strict=True)
            ]
            feats = torch.from_numpy(np.array(data["features"], dtype=np.float32))
            return Extraction([str(p) for p in data["paths"]], feats, bad)
    except (OSError, ValueError, KeyError) as err:
        print(f"warning: ignoring unreadable gallery cache {path} ({err})", file=sys.stderr)
        return None


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
    cache_file, key = None, ""
    if cache_dir is not None:
        name, key = gallery_cache_keys(file_sha256(checkpoint), extractor, root, files)
        cache_file = Path(cache_dir) / name
        cached = load_cached_gallery(cache_file, key)
        if cached is not None:
            if cached.bad and not skip_bad:  # the same answer as without the cache
                raise UnreadableInputError(
                    f"{cached.bad[0].error} (skip_bad=true skips unreadable images)"
                )
            return cached, cache_file, True
    result = extractor.extract_files(
        files,
        skip_bad=skip_bad,
        num_workers=num_workers,
        progress=progress,
        description=f"gallery: {len(files)} images",
    )
    if cache_file is not None:
        save_npz(
            cache_file,
            key=np.array(key),
            paths=np.array(result.paths, dtype=str),
            features=result.features.numpy(),
            bad_paths=np.array([b.path for b in result.bad], dtype=str),
            bad_errors=np.array([b.error for b in result.bad], dtype=str),
        )
    return result, cache_file, False
