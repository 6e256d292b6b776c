"""The built-in synthetic dataset: deterministic, Market layout, expected statistics."""

from __future__ import annotations

import json

import pytest
from PIL import Image

from reidtricks.data.datasets import Market1501, SyntheticReID
from reidtricks.data.synthetic_generator import PRESETS, generate_dataset


def test_tiny_loads_through_the_market_parser(tiny_data_dir):
    dataset = SyntheticReID(tiny_data_dir, preset="tiny", seed=0)
    splits = Market1501(dataset.dataset_dir).load()
    preset = PRESETS["tiny"]
    assert splits.num_train_pids == preset.train_ids
    assert len({pid for _, pid, _ in splits.query}) == preset.test_ids
    gallery_pids = {pid for _, pid, _ in splits.gallery}
    assert 0 in gallery_pids and -1 not in gallery_pids and len(gallery_pids) == preset.test_ids + 1
    assert len(splits.train) >= 2 * preset.train_ids
    manifest = json.loads((dataset.dataset_dir / "manifest.json").read_text())
    junk = manifest["files"]["bounding_box_test"] - len(splits.gallery)
    assert junk == preset.junk
    with Image.open(splits.train[0][0]) as img:
        assert img.size == (64, 128) and img.format == "JPEG"
    # Market rule: every query has a gallery image of its identity in another camera.
    for _, pid, cam in splits.query:
        assert any(g_pid == pid and g_cam != cam for _, g_pid, g_cam in splits.gallery)


def read_all(folder):
    return {p.relative_to(folder): p.read_bytes() for p in sorted(folder.rglob("*.jpg"))}


def test_deterministic_from_the_seed(tmp_path):
    a = read_all(generate_dataset(tmp_path / "a", "tiny", seed=3))
    b = read_all(generate_dataset(tmp_path / "b", "tiny", seed=3))
    c = read_all(generate_dataset(tmp_path / "c", "tiny", seed=4))
    assert a == b
    assert a != c


def test_load_reuses_and_rejects_incomplete(tmp_path):
    dataset = SyntheticReID(tmp_path, preset="tiny", seed=1)
    first = dataset.load()
    stamp = (dataset.dataset_dir / "manifest.json").stat().st_mtime_ns
    assert dataset.load() == first
    assert (dataset.dataset_dir / "manifest.json").stat().st_mtime_ns == stamp
    (dataset.dataset_dir / "manifest.json").unlink()
    with pytest.raises(ValueError, match="not a complete synthetic dataset"):
        dataset.load()
    with pytest.raises(ValueError, match="preset='huge'"):
        SyntheticReID(tmp_path, preset="huge")
