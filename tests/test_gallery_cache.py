"""The search gallery cache is keyed by the files' contents, and a damaged or inconsistent cache
is rebuilt with a one-line warning rather than used or crashed on."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from PIL import Image

from helpers import compose_train, new_net, tiny_overrides
from reidtricks.inference import FeatureExtractor, content_hash
from reidtricks.inference.gallery_cache import gallery_features

SIZE = (12, 24)  # PNG width x height; stored uncompressed, every file has the same size


@pytest.fixture(scope="module")
def ckpt(tiny_data_dir, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("cache_ckpt")
    cfg = compose_train(*tiny_overrides(tiny_data_dir, out), "+trick=bnneck")
    torch.manual_seed(0)
    net = new_net("resnet18", 12, last_stride=1, neck="bnneck")
    path = out / "model.ckpt"
    info = {"config": OmegaConf.to_container(cfg, resolve=True), "stage": "bnneck", "seed": 0}
    state = {f"net.{k}": v for k, v in net.state_dict().items()}
    torch.save({"state_dict": state, "reidtricks": {**info, "num_classes": 12}}, path)
    return path


def _picture(seed: int) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (SIZE[1], SIZE[0], 3), dtype=np.uint8))


def _gallery(root: Path, n: int = 9) -> list[Path]:
    root.mkdir()
    files = [root / f"{i:04d}_c1s1_000001_00.png" for i in range(n)]
    for i, f in enumerate(files):
        _picture(i).save(f, compress_level=0)
    return files


def _search(ckpt: Path, root: Path, files: list[Path], cache: Path):
    extractor = FeatureExtractor.from_checkpoint(ckpt, batch_size=4)
    return gallery_features(
        extractor, ckpt, root, files, cache, skip_bad=False, num_workers=0, progress=False
    )


def _fresh(ckpt: Path, files: list[Path]) -> torch.Tensor:
    """The features without any cache."""
    return FeatureExtractor.from_checkpoint(ckpt, batch_size=4).extract_files(files).features


@pytest.mark.slow  # extracts features twice
def test_same_size_and_mtime_but_new_bytes_gives_fresh_features(ckpt, tmp_path, monkeypatch):
    monkeypatch.setattr(content_hash, "RACY_NS", 0)  # trust stamps at once: the shortcut is on
    hashed = []
    real = content_hash.file_blake2b
    monkeypatch.setattr(content_hash, "file_blake2b", lambda p: hashed.append(p) or real(p))
    root, cache = tmp_path / "gallery", tmp_path / "cache"
    files = _gallery(root)
    first, _, hit = _search(ckpt, root, files, cache)
    assert not hit and torch.equal(first.features, _fresh(ckpt, files))
    assert len(hashed) == len(files)
    hashed.clear()
    second, _, hit = _search(ckpt, root, files, cache)
    assert hit and torch.equal(second.features, first.features) and hashed == []

    target = files[3]
    before = target.stat()
    with open(target, "r+b") as fh:  # new bytes in place: same inode, same size
        buffer = Path(tmp_path / "new.png")
        _picture(100).save(buffer, compress_level=0)
        fh.write(buffer.read_bytes())
    os.utime(target, ns=(before.st_atime_ns, before.st_mtime_ns))
    after = target.stat()
    assert (after.st_size, after.st_mtime_ns, after.st_ino) == (
        before.st_size, before.st_mtime_ns, before.st_ino)  # fmt: skip
    third, _, hit = _search(ckpt, root, files, cache)
    assert not hit and torch.equal(third.features, _fresh(ckpt, files))
    assert not torch.allclose(third.features[3], first.features[3])
    assert torch.equal(third.features[:3], first.features[:3])


@pytest.mark.slow  # extracts features twice
@pytest.mark.parametrize("damage", ["truncated", "empty"])
def test_unreadable_cache_warns_once_and_is_rebuilt(damage, ckpt, tmp_path, capsys):
    root, cache = tmp_path / "gallery", tmp_path / "cache"
    files = _gallery(root)
    first, cache_file, _ = _search(ckpt, root, files, cache)
    data = cache_file.read_bytes()
    cache_file.write_bytes(data[: len(data) // 2] if damage == "truncated" else b"")
    capsys.readouterr()
    result, _, hit = _search(ckpt, root, files, cache)
    fresh = first.features  # the first search extracted without a cache
    warning = capsys.readouterr().err.strip().splitlines()
    assert not hit and torch.equal(result.features, fresh)
    assert len(warning) == 1 and warning[0].startswith(f"warning: gallery cache {cache_file}")
    assert warning[0].endswith("rebuilding it")
    again, _, hit = _search(ckpt, root, files, cache)
    assert hit and torch.equal(again.features, fresh)


@pytest.mark.slow  # extracts features twice
@pytest.mark.parametrize("edit", ["fewer_rows", "fewer_files", "other_dims", "nan"])
def test_inconsistent_cache_is_rebuilt(edit, ckpt, tmp_path, capsys):
    root, cache = tmp_path / "gallery", tmp_path / "cache"
    files = _gallery(root)
    first, cache_file, _ = _search(ckpt, root, files, cache)
    with np.load(cache_file, allow_pickle=False) as data:
        arrays = {name: data[name] for name in data.files}
    if edit == "fewer_rows":
        arrays["features"] = arrays["features"][:-2]
    elif edit == "fewer_files":
        arrays["features"], arrays["paths"] = arrays["features"][:-2], arrays["paths"][:-2]
    elif edit == "other_dims":
        arrays["features"] = arrays["features"][:, :-1]
    else:
        arrays["features"][1, 5] = np.nan
    np.savez(cache_file, **arrays)
    capsys.readouterr()
    result, _, hit = _search(ckpt, root, files, cache)
    fresh = first.features  # the first search extracted without a cache
    warning = capsys.readouterr().err.strip().splitlines()
    assert not hit and torch.equal(result.features, fresh)
    assert result.paths == [os.fspath(f) for f in files]
    assert len(warning) == 1 and "is inconsistent" in warning[0] and "rebuilding" in warning[0]
