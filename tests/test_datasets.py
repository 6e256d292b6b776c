"""Dataset parsers on fabricated folder trees; every error case names the path or key."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from reidtricks.data.datasets import CUHK03NP, MSMT17, DukeMTMC, FolderDataset, Market1501
from reidtricks.data.splits import ReIDSplits, merge_train_splits


def touch_images(folder: Path, names: list[str]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        Image.new("RGB", (4, 8)).save(folder / name)


TRAIN = ["0002_c1s1_000451_03.jpg", "0002_c2s1_000551_01.jpg", "0007_c3s3_077419_03.jpg",
         "0010_c6s4_002427_02.jpg"]  # fmt: skip
QUERY = ["0003_c1s6_015971_00.jpg", "0011_c4s1_001971_00.jpg"]
GALLERY = ["0003_c2s1_000001_01.jpg", "0000_c1s1_000002_01.jpg", "-1_c1s1_000003_01.jpg",
           "0011_c4s2_000004_01.jpg"]  # fmt: skip


def make_market(base: Path) -> Path:
    touch_images(base / "bounding_box_train", TRAIN)
    touch_images(base / "query", QUERY)
    touch_images(base / "bounding_box_test", GALLERY)
    return base


@pytest.mark.parametrize("sub", ["market1501", "Market-1501-v15.09.15", ""])
def test_market_layouts_junk_distractors_relabel(tmp_path, sub):
    make_market(tmp_path / sub if sub else tmp_path)
    splits = Market1501(tmp_path).load()
    assert [(Path(p).name, pid, cam) for p, pid, cam in splits.train] == [
        ("0002_c1s1_000451_03.jpg", 0, 0),
        ("0002_c2s1_000551_01.jpg", 0, 1),
        ("0007_c3s3_077419_03.jpg", 1, 2),
        ("0010_c6s4_002427_02.jpg", 2, 5),
    ]
    assert [(pid, cam) for _, pid, cam in splits.query] == [(3, 0), (11, 3)]
    gallery = sorted((pid, cam) for _, pid, cam in splits.gallery)
    assert gallery == [(0, 0), (3, 1), (11, 3)]  # junk (-1) dropped, distractor (0) kept
    assert splits.num_train_pids == 3 and splits.num_train_cams == 4
    table = splits.statistics_table()
    assert "train" in table and "gallery" in table


def test_duke_and_cuhk03_and_folder(tmp_path):
    make_market(tmp_path / "dukemtmc-reid" / "DukeMTMC-reID")
    assert DukeMTMC(tmp_path).load().num_train_pids == 3
    for variant in ("detected", "labeled"):
        make_market(tmp_path / "cuhk03-np" / variant)
        assert CUHK03NP(tmp_path, variant=variant).load().name == f"cuhk03-{variant}"
    touch_images(tmp_path / "mine" / "tr", TRAIN)
    touch_images(tmp_path / "mine" / "q", QUERY)
    touch_images(tmp_path / "mine" / "g", GALLERY)
    splits = FolderDataset(tmp_path / "mine", "tr", "q", "g").load()
    assert len(splits.train) == 4 and len(splits.gallery) == 3


def make_msmt(base: Path, version: str) -> None:
    train_dir, test_dir = (
        ("train", "test") if version == "v1" else ("mask_train_v2", "mask_test_v2")
    )
    touch_images(base / train_dir / "0000", ["0000_000_01_0303morning_0015_0.jpg"])
    touch_images(base / train_dir / "0005", ["0005_011_14_0303noon_0030_1.jpg"])
    touch_images(base / test_dir / "0001", ["0001_000_03_0303morning_0001_0.jpg",
                                            "0001_002_07_0303noon_0001_1.jpg"])  # fmt: skip
    (base / "list_train.txt").write_text("0000/0000_000_01_0303morning_0015_0.jpg 0\n")
    (base / "list_val.txt").write_text("0005/0005_011_14_0303noon_0030_1.jpg 5\n")
    (base / "list_query.txt").write_text("0001/0001_000_03_0303morning_0001_0.jpg 1\n")
    (base / "list_gallery.txt").write_text("0001/0001_002_07_0303noon_0001_1.jpg 1\n")


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_msmt17_lists_and_merge(tmp_path, version):
    make_msmt(tmp_path / f"MSMT17_{version.upper()}", version)
    merged = MSMT17(tmp_path).load()
    assert [(pid, cam) for _, pid, cam in merged.train] == [(0, 0), (1, 13)]
    assert [(pid, cam) for _, pid, cam in merged.query] == [(1, 2)]
    assert [(pid, cam) for _, pid, cam in merged.gallery] == [(1, 6)]
    assert all(Path(p).is_file() for p, _, _ in merged.train + merged.query + merged.gallery)
    alone = MSMT17(tmp_path, version=version, merge_train_val=False).load()
    assert len(alone.train) == 1


def test_merge_train_splits_offsets_pids():
    a = ReIDSplits("a", [("x", 0, 0), ("y", 1, 0)], [], [])
    b = ReIDSplits("b", [("z", 0, 1)], [], [])
    items, num = merge_train_splits([a, b])
    assert items == [("x", 0, 0), ("y", 1, 0), ("z", 2, 1)] and num == 3


def test_missing_dataset_names_paths_layout_and_key(tmp_path):
    with pytest.raises(FileNotFoundError) as err:
        Market1501(tmp_path).load()
    message = str(err.value)
    assert str(tmp_path / "market1501") in message and "bounding_box_train" in message
    assert "paths.data_dir" in message and "\n" not in message
    with pytest.raises(FileNotFoundError, match="MSMT17_V1"):
        MSMT17(tmp_path).load()


def test_empty_folder_bad_name_bad_list_line_bad_values(tmp_path):
    base = make_market(tmp_path / "market1501")
    for f in (base / "query").iterdir():
        f.unlink()
    with pytest.raises(ValueError, match=r"query holds no image files"):
        Market1501(tmp_path).load()
    touch_images(base / "query", ["holiday.jpg"])
    with pytest.raises(ValueError, match=r"holiday.jpg: file name does not match"):
        Market1501(tmp_path).load()
    make_msmt(tmp_path / "MSMT17_V1", "v1")
    (tmp_path / "MSMT17_V1" / "list_query.txt").write_text("oops\n")
    with pytest.raises(ValueError, match=r"list_query.txt:1: expected 'relpath pid'"):
        MSMT17(tmp_path).load()
    (tmp_path / "MSMT17_V1" / "list_val.txt").unlink()
    with pytest.raises(FileNotFoundError, match="list_val.txt is missing"):
        MSMT17(tmp_path).load()
    with pytest.raises(ValueError, match="variant='both'"):
        CUHK03NP(tmp_path, variant="both")
    with pytest.raises(ValueError, match="version='v3'"):
        MSMT17(tmp_path, version="v3")
