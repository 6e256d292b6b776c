"""Dataset parsers on fabricated folder trees; every error case names the path or key."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from reidtricks.data.datasets import (
    CUHK03NP,
    MSMT17,
    DukeMTMC,
    FolderDataset,
    Market1501,
    SyntheticReID,
)
from reidtricks.data.splits import ReIDSplits, merge_train_splits


def touch_images(folder: Path, names: list[str]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        Image.new("RGB", (4, 8)).save(folder / name)


TRAIN = ["0010_c6s4_002427_02.jpg", "0002_c1s1_000451_03.jpg", "0007_c3s3_077419_03.jpg",
         "0002_c2s1_000551_01.jpg", "-1_c2s1_000100_00.jpg"]  # fmt: skip
QUERY = ["0011_c4s1_001971_00.jpg", "0003_c1s6_015971_00.jpg"]
GALLERY = ["0003_c2s1_000001_01.jpg", "0000_c1s1_000002_01.jpg", "-1_c1s1_000003_01.jpg",
           "0011_c4s2_000004_01.jpg", "Thumbs.db"]  # fmt: skip
# By hand: train pids {2, 7, 10} -> {0, 1, 2}; camid = C - 1; sorted by path; junk (-1) dropped.
EXPECTED_TRAIN = [
    ("0002_c1s1_000451_03.jpg", 0, 0),
    ("0002_c2s1_000551_01.jpg", 0, 1),
    ("0007_c3s3_077419_03.jpg", 1, 2),
    ("0010_c6s4_002427_02.jpg", 2, 5),
]
EXPECTED_QUERY = [("0003_c1s6_015971_00.jpg", 3, 0), ("0011_c4s1_001971_00.jpg", 11, 3)]
EXPECTED_GALLERY = [  # distractor (pid 0) kept, junk dropped, non-images ignored
    ("0000_c1s1_000002_01.jpg", 0, 0),
    ("0003_c2s1_000001_01.jpg", 3, 1),
    ("0011_c4s2_000004_01.jpg", 11, 3),
]


def make_market(base: Path) -> Path:
    touch_images(base / "bounding_box_train", [n for n in TRAIN if n.endswith(".jpg")])
    touch_images(base / "query", QUERY)
    touch_images(base / "bounding_box_test", [n for n in GALLERY if n.endswith(".jpg")])
    (base / "bounding_box_test" / "Thumbs.db").write_bytes(b"x")
    return base


def names(items):
    return [(Path(p).name, pid, cam) for p, pid, cam in items]


def check_market_splits(splits: ReIDSplits, base: Path) -> None:
    assert names(splits.train) == EXPECTED_TRAIN
    assert names(splits.query) == EXPECTED_QUERY
    assert names(splits.gallery) == EXPECTED_GALLERY
    assert all(Path(p).parent.parent == base for p, _, _ in splits.train + splits.gallery)
    assert splits.num_train_pids == 3 and len({cam for _, _, cam in splits.train}) == 4


@pytest.mark.parametrize("sub", ["market1501", "Market-1501-v15.09.15", ""])
def test_market_layouts_junk_distractors_relabel(tmp_path, sub):
    base = make_market(tmp_path / sub if sub else tmp_path)
    splits = Market1501(tmp_path).load()
    check_market_splits(splits, base)
    lines = splits.statistics_table().splitlines()
    rows = {line.split()[0]: line.split()[1:] for line in lines[2:5]}
    assert rows == {"train": ["3", "4", "4"], "query": ["2", "2", "2"], "gallery": ["3", "3", "3"]}
    # the two junk images (pid -1, train and gallery) are listed as excluded with the reason
    assert lines[5:] == ["  excluded 2 images (2: junk (pid -1))"]
    junk = ["-1_c2s1_000100_00.jpg", "-1_c1s1_000003_01.jpg"]
    assert sorted(Path(p).name for p, _ in splits.excluded) == sorted(junk)


def test_constructors_do_no_io(tmp_path):
    missing = tmp_path / "nowhere"
    for spec in (Market1501(missing), DukeMTMC(missing), MSMT17(missing), CUHK03NP(missing),
                 FolderDataset(missing)):  # fmt: skip
        assert hasattr(spec, "load")
    assert not missing.exists()


@pytest.mark.parametrize("sub", ["dukemtmc-reid/DukeMTMC-reID", "DukeMTMC-reID", ""])
def test_duke_layouts(tmp_path, sub):
    base = make_market(tmp_path / sub if sub else tmp_path)
    touch_images(base / "bounding_box_train", ["0020_c8_f0046182.jpg"])  # Duke-style name, camera 8
    splits = DukeMTMC(tmp_path).load()
    assert names(splits.train) == [*EXPECTED_TRAIN, ("0020_c8_f0046182.jpg", 3, 7)]
    assert names(splits.gallery) == EXPECTED_GALLERY


@pytest.mark.parametrize("variant", ["detected", "labeled"])
def test_cuhk03_np_variants_and_roots(tmp_path, variant):
    other = "labeled" if variant == "detected" else "detected"
    base = make_market(tmp_path / "cuhk03-np" / variant)
    touch_images(tmp_path / "cuhk03-np" / other / "bounding_box_train", ["0100_c1_1.png"])
    for root in (tmp_path, tmp_path / "cuhk03-np", base):
        splits = CUHK03NP(root, variant=variant).load()
        assert splits.name == f"cuhk03-{variant}"
        check_market_splits(splits, base)
    with pytest.raises(ValueError, match=f"{base}.*variant='{other}'"):
        CUHK03NP(base, variant=other).load()


def test_folder_dataset_custom_dirs_keeps_pid_zero_in_train(tmp_path):
    touch_images(tmp_path / "mine" / "tr", ["0000_c1_a.jpg", "0005_c2_b.png", "-1_c1_c.jpg"])
    touch_images(tmp_path / "mine" / "q", ["0003_c1_a.jpg"])
    touch_images(tmp_path / "mine" / "g", ["0003_c2_a.jpg", "0000_c3_b.jpg"])
    splits = FolderDataset(tmp_path / "mine", "tr", "q", "g").load()
    assert names(splits.train) == [("0000_c1_a.jpg", 0, 0), ("0005_c2_b.png", 1, 1)]
    assert names(splits.query) == [("0003_c1_a.jpg", 3, 0)]
    assert names(splits.gallery) == [("0000_c3_b.jpg", 0, 2), ("0003_c2_a.jpg", 3, 1)]
    assert splits.name == "mine"


def make_msmt(base: Path, version: str) -> None:
    train_dir, test_dir = (
        ("train", "test") if version == "v1" else ("mask_train_v2", "mask_test_v2")
    )
    touch_images(base / train_dir / "0000", ["0000_000_01_0303morning_0015_0.jpg"])
    touch_images(base / train_dir / "0003", ["0003_004_02_0303morning_0020_0.jpg"])
    touch_images(base / train_dir / "0005", ["0005_011_14_0303noon_0030_1.jpg"])
    touch_images(base / test_dir / "0001", ["0001_000_03_0303morning_0001_0.jpg",
                                            "0001_002_07_0303noon_0001_1.jpg",
                                            "0001_003_15_0303noon_0002_1.jpg"])  # fmt: skip
    (base / "list_train.txt").write_text(
        "0003/0003_004_02_0303morning_0020_0.jpg 3\n0000/0000_000_01_0303morning_0015_0.jpg 0\n"
    )
    (base / "list_val.txt").write_text("0005/0005_011_14_0303noon_0030_1.jpg 5\n\n")
    (base / "list_query.txt").write_text("0001/0001_000_03_0303morning_0001_0.jpg 1\n")
    (base / "list_gallery.txt").write_text(
        "0001/0001_003_15_0303noon_0002_1.jpg 1\n0001/0001_002_07_0303noon_0001_1.jpg 1\n"
    )


@pytest.mark.parametrize("version", ["v1", "v2"])
@pytest.mark.parametrize("where", ["{V}", "msmt17/{V}", ""])
def test_msmt17_lists_and_merge(tmp_path, version, where):
    folder = f"MSMT17_{version.upper()}"
    base = tmp_path / where.format(V=folder) if where else tmp_path / folder
    make_msmt(base, version)
    root = tmp_path if where else base
    merged = MSMT17(root).load()
    # train+val pids {0, 3, 5} -> {0, 1, 2}; camera = third field - 1 (01 -> 0, 02 -> 1, 14 -> 13)
    assert [(pid, cam) for _, pid, cam in merged.train] == [(0, 0), (1, 1), (2, 13)]
    assert [(pid, cam) for _, pid, cam in merged.query] == [(1, 2)]
    assert [(pid, cam) for _, pid, cam in merged.gallery] == [(1, 6), (1, 14)]
    assert all(Path(p).is_file() for p, _, _ in merged.train + merged.query + merged.gallery)
    alone = MSMT17(root, version=version, merge_train_val=False).load()
    assert [(pid, cam) for _, pid, cam in alone.train] == [(0, 0), (1, 1)]


def test_merge_train_splits_offsets_pids_and_cameras():
    a = ReIDSplits("a", [("x", 0, 0), ("y", 1, 0), ("w", 1, 2)], [], [])
    b = ReIDSplits("b", [("z", 0, 1), ("v", 1, 1)], [], [])
    items, num = merge_train_splits([a, b])
    # a has cameras 0..2, so b's camera 1 becomes 3 + 1.
    assert items == [("x", 0, 0), ("y", 1, 0), ("w", 1, 2), ("z", 2, 4), ("v", 3, 4)]
    assert num == 4


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        (Market1501, ["market1501", "Market-1501-v15.09.15", "bounding_box_train"]),
        (DukeMTMC, ["dukemtmc-reid/DukeMTMC-reID", "bounding_box_test"]),
        (CUHK03NP, ["cuhk03-np/detected", "query"]),
        (MSMT17, ["MSMT17_V1", "MSMT17_V2", "list_"]),
        (FolderDataset, ["bounding_box_train"]),
    ],
)
def test_missing_dataset_names_paths_layout_and_key(tmp_path, spec, expected):
    with pytest.raises(FileNotFoundError) as err:
        spec(tmp_path).load()
    message = str(err.value)
    assert str(tmp_path) in message and "paths.data_dir=" in message and "\n" not in message
    for part in expected:
        assert part in message


def test_empty_folder_and_bad_names(tmp_path):
    base = make_market(tmp_path / "market1501")
    for f in (base / "query").iterdir():
        f.unlink()
    with pytest.raises(ValueError, match=rf"{base / 'query'} holds no image files"):
        Market1501(tmp_path).load()
    touch_images(base / "query", ["holiday.jpg"])
    with pytest.raises(ValueError, match=r"query/holiday.jpg: file name does not match.*PPPP_c"):
        Market1501(tmp_path).load()
    (base / "query" / "holiday.jpg").unlink()
    touch_images(base / "query", ["0001_c0s1_000001_00.jpg"])
    with pytest.raises(ValueError, match=r"0001_c0s1_000001_00.jpg: camera c0"):
        Market1501(tmp_path).load()


@pytest.mark.parametrize(
    ("line", "lineno"),
    [("oops", 1), ("0001/0001_000_03_0303morning_0001_0.jpg one", 1), ("0001/noname.jpg 1", 1)],
)
def test_msmt17_malformed_line_names_file_and_line(tmp_path, line, lineno):
    make_msmt(tmp_path / "MSMT17_V1", "v1")
    good = "0001/0001_000_03_0303morning_0001_0.jpg 1"
    (tmp_path / "MSMT17_V1" / "list_query.txt").write_text(f"{good}\n{line}\n")
    with pytest.raises(ValueError, match=rf"list_query.txt:{lineno + 1}: expected 'relpath pid'"):
        MSMT17(tmp_path).load()


def test_msmt17_missing_list_and_unknown_values(tmp_path):
    make_msmt(tmp_path / "MSMT17_V2", "v2")
    (tmp_path / "MSMT17_V2" / "list_val.txt").unlink()
    assert len(MSMT17(tmp_path, merge_train_val=False).load().train) == 2
    with pytest.raises(FileNotFoundError, match=r"MSMT17_V2/list_val.txt is missing"):
        MSMT17(tmp_path).load()
    with pytest.raises(FileNotFoundError, match=r"MSMT17_V1"):
        MSMT17(tmp_path, version="v1").load()
    with pytest.raises(ValueError, match=r"variant='both'.*detected.*labeled"):
        CUHK03NP(tmp_path, variant="both")
    with pytest.raises(ValueError, match=r"version='v3'.*v1.*v2"):
        MSMT17(tmp_path, version="v3")


def test_combineall_market_style_train_gets_every_identified_image(tmp_path):
    base = make_market(tmp_path / "market1501")
    plain = Market1501(tmp_path).load()
    combined = Market1501(tmp_path, combineall=True).load()
    assert combined.query == plain.query and combined.gallery == plain.gallery
    # by hand: train pids {2, 7, 10} + query/gallery pids {3, 11}; distractor 0 and junk -1 out
    people = {2: 0, 3: 1, 7: 2, 10: 3, 11: 4}
    expected = [(n, people[int(n[:4])]) for n, _, _ in EXPECTED_TRAIN]
    expected += [(n, people[int(n[:4])]) for n, _, _ in EXPECTED_QUERY]
    expected += [(n, people[pid]) for n, pid, _ in EXPECTED_GALLERY if pid != 0]
    assert sorted((Path(p).name, pid) for p, pid, _ in combined.train) == sorted(expected)
    assert all(Path(p).parent.parent == base for p, _, _ in combined.train)
    assert len(combined.excluded) == 2  # the junk images stay excluded
    assert "combineall: 1 distractor image (no identity) not in train" in (
        combined.statistics_table()
    )
    for cls in (Market1501, DukeMTMC, CUHK03NP, FolderDataset, MSMT17, SyntheticReID):
        assert cls.num_splits == 1
        with pytest.raises(ValueError, match=r"split=1 is out of range; expected an integer 0..0"):
            cls(tmp_path, split=1)


def test_combineall_msmt17_offsets_test_pids(tmp_path):
    make_msmt(tmp_path / "MSMT17_V1", "v1")
    combined = MSMT17(tmp_path, combineall=True).load()
    # train pids {0, 3, 5}; test pid 1 restarts the numbering: a fourth person, not train pid 1
    assert sorted(pid for _, pid, _ in combined.train) == [0, 1, 2, 3, 3, 3]
    assert combined.query == MSMT17(tmp_path).load().query


def test_folder_dataset_without_training_images(tmp_path):
    touch_images(tmp_path / "only" / "query", ["0003_c1_a.jpg"])
    touch_images(tmp_path / "only" / "bounding_box_test", ["0003_c2_a.jpg", "0000_c3_b.jpg"])
    splits = FolderDataset(tmp_path / "only").load()
    assert splits.train == [] and len(splits.query) == 1 and len(splits.gallery) == 2
    (tmp_path / "only" / "bounding_box_train").mkdir()
    assert FolderDataset(tmp_path / "only").load() == splits
    (tmp_path / "only" / "query" / "0003_c1_a.jpg").unlink()
    with pytest.raises(ValueError, match=r"only/query holds no image files"):
        FolderDataset(tmp_path / "only").load()
