"""The classic small sets on generated official layouts: each protocol checked against its rule
written out here, plus the real sets of ../shared/data when that folder is present."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import scipy.io
from PIL import Image

from reidtricks.data.datasets import (
    CAVIAR4REID,
    CUHK01,
    GRID,
    ILIDS,
    PRID2011,
    ThreeDPeS,
    VIPeR,
)
from reidtricks.data.splits import ReIDSplits
from reidtricks.errors import InputError

REAL_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
real_data = pytest.mark.skipif(
    not REAL_DATA.is_dir(), reason=f"real data sets not present at {REAL_DATA}"
)


def touch(folder: Path, names: list[str]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        Image.new("RGB", (4, 8), (len(name), 0, 0)).save(folder / name)


def rule_split(ids, num_train: int, split: int) -> tuple[set, set]:
    """The documented trial rule: RandomState(split) permutes the sorted ids, the first go train."""
    perm = np.random.RandomState(split).permutation(np.array(sorted(ids)))
    return set(perm[:num_train].tolist()), set(perm[num_train:].tolist())


def person_sets(splits: ReIDSplits, person_of) -> tuple[set, set, set]:
    return tuple({person_of(p) for p, _, _ in items} for items in
                 (splits.train, splits.query, splits.gallery))  # fmt: skip


def check_consistent(splits: ReIDSplits, person_of, combined: bool = False) -> None:
    """Train pids are 0..N-1, one per person; test pids name one person each; no image is used
    twice (with combineall: train images once each) or both used and excluded."""
    mapping = {}
    for path, pid, _ in splits.train:
        assert mapping.setdefault(person_of(path), pid) == pid
    assert sorted(mapping.values()) == list(range(len(mapping)))
    test_pid = {}
    for path, pid, _ in splits.query + splits.gallery:
        assert test_pid.setdefault(pid, person_of(path)) == person_of(path)
    train = [p for p, _, _ in splits.train]
    test = [p for p, _, _ in splits.query + splits.gallery]
    excluded = [p for p, _ in splits.excluded]
    assert len(train) == len(set(train)) and len(test) == len(set(test))
    assert not set(excluded) & set(train + test)
    assert combined or not set(train) & set(test)


def true_matches(splits: ReIDSplits) -> list[int]:
    """Per query: gallery images of its pid left after the Market same-camera filter."""
    return [
        sum(gp == qp and gc != qc for _, gp, gc in splits.gallery) for _, qp, qc in splits.query
    ]


def names(items) -> list[str]:
    return sorted(Path(p).name for p, *_ in items)


# -- VIPeR -------------------------------------------------------------------------------------
VIPER_PEOPLE = [0, 3, 7, 12, 20, 21, 300, 500, 872, 873]


def make_viper(root: Path) -> Path:
    base = root / "viper" / "VIPeR"
    touch(base / "cam_a", [f"{n:03d}_{45 * (n % 2)}.bmp" for n in VIPER_PEOPLE] + ["640_0.bmp"])
    touch(base / "cam_b", [f"{n:03d}_{90 + 90 * (n % 2)}.bmp" for n in VIPER_PEOPLE])
    (base / "cam_a" / "Thumbs.db").write_bytes(b"x")
    return base


def viper_person(path: str) -> int:
    return int(Path(path).name[:3])


@pytest.mark.parametrize("split", [0, 3])
def test_viper_protocol(tmp_path, split):
    base = make_viper(tmp_path)
    splits = VIPeR(tmp_path, split=split).load()
    train, test = rule_split(VIPER_PEOPLE, 5, split)
    assert person_sets(splits, viper_person) == (train, test, test)
    assert {Path(p).parent.name for p, _, _ in splits.query} == {"cam_a"}
    assert {Path(p).parent.name for p, _, _ in splits.gallery} == {"cam_b"}
    assert len(splits.train) == 10 and {c for *_, c in splits.train} == {0, 1}
    assert true_matches(splits) == [1] * 5
    assert splits.excluded == ((str(base / "cam_a" / "640_0.bmp"), "seen by one camera only"),)
    check_consistent(splits, viper_person)
    assert VIPeR(tmp_path, split=split).load() == splits


def test_viper_splits_differ_and_combineall(tmp_path):
    make_viper(tmp_path)
    first, second = (person_sets(VIPeR(tmp_path, split=i).load(), viper_person) for i in (0, 1))
    assert first != second
    combined = VIPeR(tmp_path, combineall=True).load()
    assert len(combined.train) == 21 and combined.num_train_pids == 11 and not combined.excluded
    assert combined.query == VIPeR(tmp_path).load().query
    check_consistent(combined, viper_person, combined=True)


# -- PRID2011 ----------------------------------------------------------------------------------
def make_prid(root: Path, cam_a_extra=(201, 202, 203)) -> Path:
    base = root / "prid2011" / "prid_2011" / "single_shot"
    touch(base / "cam_a", [f"person_{n:04d}.png" for n in [*range(1, 7), *cam_a_extra]])
    touch(base / "cam_b", [f"person_{n:04d}.png" for n in [*range(1, 7), *range(201, 206)]])
    return base


def prid_person(path: str) -> tuple[str, int]:
    """Identity rule of the README: numbers above 200 name a different person per camera."""
    number, cam = int(Path(path).stem[-4:]), Path(path).parent.name
    return ("both", number) if number <= 200 else (cam, number)


def test_prid2011_protocol_and_combineall(tmp_path):
    base = make_prid(tmp_path)
    splits = PRID2011(tmp_path, split=2).load()
    train, test = rule_split(range(1, 7), 3, 2)
    train_p, query_p, gallery_p = person_sets(splits, prid_person)
    assert train_p == {("both", n) for n in train} and query_p == {("both", n) for n in test}
    assert gallery_p == query_p | {("cam_b", n) for n in range(201, 206)}
    assert len(splits.train) == 6 and len(splits.query) == 3 and len(splits.gallery) == 8
    assert {Path(p).parent.name for p, _, _ in splits.query} == {"cam_a"}
    assert {Path(p).parent.name for p, _, _ in splits.gallery} == {"cam_b"}
    assert true_matches(splits) == [1, 1, 1]
    assert names(splits.excluded) == [f"person_{n}.png" for n in ("0201", "0202", "0203")]
    assert {r for _, r in splits.excluded} == {"seen by cam_a only (not used by the protocol)"}
    assert all(Path(p).parent == base / "cam_a" for p, _ in splits.excluded)
    check_consistent(splits, prid_person)
    combined = PRID2011(tmp_path, split=2, combineall=True).load()
    # 6 shared people, 3 seen by cam_a only, 5 by cam_b only: 14 people, 20 images
    assert combined.num_train_pids == 14 and len(combined.train) == 20 and not combined.excluded
    check_consistent(combined, prid_person, combined=True)
    assert PRID2011(tmp_path, split=0).load().train != splits.train


def test_prid2011_shared_person_in_one_camera_is_an_error(tmp_path):
    base = make_prid(tmp_path)
    (base / "cam_b" / "person_0004.png").unlink()
    with pytest.raises(InputError, match=r"single_shot: person_0004 is in one camera only") as err:
        PRID2011(tmp_path).load()
    assert "\n" not in str(err.value)


# -- GRID --------------------------------------------------------------------------------------
GRID_PARTITIONS = [[1, 2, 3, 4], [5, 6, 7, 8], [1, 3, 5, 7]] + [[2, 4, 6, 8]] * 7


def make_grid(root: Path, struct: bool = False, partitions=None) -> Path:
    base = root / "grid" / "underground_reid"
    touch(base / "probe", [f"{p:04d}_{p % 8 + 1}_2500{p}_10_32_130.jpeg" for p in range(1, 9)])
    touch(
        base / "gallery",
        [f"{p:04d}_{(p + 1) % 8 + 1}_2600{p}_11_32_130.jpeg" for p in range(1, 9)]
        + [f"0000_{c}_2700{c}_12_32_130.jpeg" for c in range(1, 6)],
    )
    cells = np.empty((1, 10), dtype=object)
    for i, part in enumerate(partitions or GRID_PARTITIONS):  # MATLAB doubles, as the file has
        idx = np.array([part], dtype=float)
        cells[0, i] = {"a": np.zeros(1), "b": np.zeros(1), "idx": idx} if struct else idx
    scipy.io.savemat(base / "features_and_partitions.mat", {"trainIdxAll": cells})
    return base


@pytest.mark.parametrize(
    ("first", "message"),
    [([1, 2, 2, 4], "person 2 is listed twice"), ([1, 2, 3], "names 3 people, expected 4")],
)
def test_grid_partitions_with_repeated_or_too_few_people_are_refused(tmp_path, first, message):
    make_grid(tmp_path, partitions=[first, *GRID_PARTITIONS[1:]])
    with pytest.raises(InputError, match=message):
        GRID(tmp_path, split=0).load()


def grid_person(path: str) -> int:
    return int(Path(path).name[:4])


@pytest.mark.parametrize("struct", [False, True])
@pytest.mark.parametrize("split", [0, 2])
def test_grid_official_partitions(tmp_path, split, struct):
    make_grid(tmp_path, struct=struct)
    splits = GRID(tmp_path, split=split).load()
    train = set(GRID_PARTITIONS[split])
    test = set(range(1, 9)) - train
    assert splits.name == "grid"
    assert person_sets(splits, grid_person) == (train, test, test | {0})
    assert len(splits.train) == 8 and len(splits.query) == 4 and len(splits.gallery) == 4 + 5
    assert {Path(p).parent.name for p, _, _ in splits.query} == {"probe"}
    assert true_matches(splits) == [1] * 4
    # camid = camera number - 1
    assert all(c == grid_person(p) % 8 for p, _, c in splits.query)
    check_consistent(splits, grid_person)
    combined = GRID(tmp_path, split=split, combineall=True).load()
    assert combined.num_train_pids == 8 and len(combined.train) == 16
    assert "5 distractor images (no identity) not in train" in combined.statistics_table()


def test_grid_random_partitions_and_missing_mat(tmp_path):
    base = make_grid(tmp_path)
    (base / "features_and_partitions.mat").unlink()
    with pytest.raises(FileNotFoundError) as err:
        GRID(tmp_path).load()
    message = str(err.value)
    assert str(base / "features_and_partitions.mat") in message and "\n" not in message
    assert "data.train_sources.grid.partitions=random" in message
    splits = [GRID(tmp_path, split=i, partitions="random").load() for i in (0, 2)]
    assert splits[0].name == "grid-random"
    assert "not comparable with published numbers" in splits[0].statistics_table()
    for i, split in zip((0, 2), splits, strict=True):
        train, test = rule_split(range(1, 9), 4, i)
        assert person_sets(split, grid_person) == (train, test, test | {0})
    assert splits[0].train != splits[1].train
    with pytest.raises(InputError, match=r"partitions='best'"):
        GRID(tmp_path, partitions="best")


# -- i-LIDS ------------------------------------------------------------------------------------
ILIDS_COUNTS = {1: 2, 2: 3, 3: 4, 4: 2, 5: 5, 6: 2, 7: 3, 8: 2, 9: 6}


def make_ilids(root: Path) -> Path:
    base = root / "ilids" / "i-LIDS_Pedestrian" / "Persons"
    touch(base, [f"{p:04d}{s:03d}.jpg" for p, n in ILIDS_COUNTS.items() for s in range(1, n + 1)])
    return base


def ilids_person(path: str) -> int:
    return int(Path(path).name[:4])


@pytest.mark.parametrize("split", [0, 7])
def test_ilids_protocol(tmp_path, split):
    make_ilids(tmp_path)
    splits = ILIDS(tmp_path, split=split).load()
    train, test = rule_split(ILIDS_COUNTS, 4, split)
    assert person_sets(splits, ilids_person) == (train, test, test)
    assert len(splits.train) == sum(ILIDS_COUNTS[p] for p in train)
    assert len(splits.query) == len(splits.gallery) == 5
    # camid = image index - 1; query and gallery are two different images of each test person
    for path, _, cam in splits.train + splits.query + splits.gallery:
        assert cam == int(Path(path).stem[4:]) - 1
    assert true_matches(splits) == [1] * 5
    assert len(splits.excluded) == sum(ILIDS_COUNTS[p] - 2 for p in test)
    assert {ilids_person(p) for p, _ in splits.excluded} <= test
    assert {r for _, r in splits.excluded} <= {
        "test person's image beyond the drawn query/gallery pair"
    }
    check_consistent(splits, ilids_person)
    again = ILIDS(tmp_path, split=split).load()
    assert again == splits
    combined = ILIDS(tmp_path, split=split, combineall=True).load()
    assert len(combined.train) == 29 and combined.num_train_pids == 9 and not combined.excluded


def test_ilids_splits_differ(tmp_path):
    make_ilids(tmp_path)
    loaded = [ILIDS(tmp_path, split=i).load() for i in range(3)]
    assert len({tuple(s.query) for s in loaded}) == 3


# -- CUHK01 ------------------------------------------------------------------------------------
def make_cuhk01(root: Path, people=7) -> Path:
    base = root / "cuhk01" / "campus"
    touch(base, [f"{p:04d}{m:03d}.png" for p in range(1, people + 1) for m in range(1, 5)])
    return base


def cuhk01_person(path: str) -> int:
    return int(Path(path).name[:4])


def test_cuhk01_protocol(tmp_path):
    make_cuhk01(tmp_path)
    splits = CUHK01(tmp_path, split=4).load()
    train, test = rule_split(range(1, 8), 3, 4)
    assert person_sets(splits, cuhk01_person) == (train, test, test)
    assert len(splits.train) == 12 and len(splits.query) == len(splits.gallery) == 8
    assert {Path(p).stem[4:] for p, _, _ in splits.query} == {"001", "002"}
    assert {Path(p).stem[4:] for p, _, _ in splits.gallery} == {"003", "004"}
    assert true_matches(splits) == [2] * 8
    check_consistent(splits, cuhk01_person)
    assert CUHK01(tmp_path, split=5).load().query != splits.query
    combined = CUHK01(tmp_path, combineall=True).load()
    assert len(combined.train) == 28 and combined.num_train_pids == 7


def test_cuhk01_image_number_out_of_range(tmp_path):
    base = make_cuhk01(tmp_path, people=2)
    touch(base, ["0001005.png"])
    with pytest.raises(InputError, match=r"0001005.png: image number 005, expected 001-004"):
        CUHK01(tmp_path).load()


# -- 3DPeS -------------------------------------------------------------------------------------
THREEDPES = {
    1: [
        "1_3_FRAME_26_RGB.png",
        "1_3_FRAME_40_RGB.png",
        "1_8_FRAME_2_RGB.png",
        "1_9_FRAME_7_RGB.bmp",
    ],
    2: ["2_4_FRAME_1_RGB.png", "2_5_FRAME_1_RGB.png"],
    5: ["5_6_FRAME_11_RGB.png", "5_6_FRAME_12_RGB.png", "5_6_FRAME_13_RGB.png"],
    7: ["7_1_FRAME_5_RGB.png", "7_B_2_FRAME_6_RGB.png"],
    9: ["9_7_FRAME_1_RGB.png", "9_7_FRAME_2_RGB.png", "9_B_715_FRAME_179_RGB.png"],
    11: ["11_2_FRAME_3_RGB.png", "11_12_FRAME_3_RGB.png"],
    139: ["139_20_FRAME_1_RGB.png"],
}


def make_threedpes(root: Path) -> Path:
    base = root / "3dpes" / "3DPeS" / "RGB"
    touch(base, [n for files in THREEDPES.values() for n in files])
    return base


def threedpes_person(path: str) -> int:
    return int(Path(path).name.split("_")[0])


@pytest.mark.parametrize("split", [0, 9])
def test_threedpes_protocol(tmp_path, split):
    base = make_threedpes(tmp_path)
    splits = ThreeDPeS(tmp_path, split=split).load()
    usable = [p for p, files in THREEDPES.items() if len(files) >= 2]
    train, test = rule_split(usable, 3, split)
    assert person_sets(splits, threedpes_person) == (train, test, test)
    assert len(splits.gallery) == 3  # one gallery image per test person, the others queries
    assert len(splits.query) == sum(len(THREEDPES[p]) - 1 for p in test)
    assert len(splits.train) == sum(len(THREEDPES[p]) for p in train)
    assert true_matches(splits) == [1] * len(splits.query)
    assert splits.excluded == (
        (str(base / "139_20_FRAME_1_RGB.png"), "single image: no query/gallery pair"),
    )
    check_consistent(splits, threedpes_person)
    assert ThreeDPeS(tmp_path, split=split).load() == splits
    combined = ThreeDPeS(tmp_path, split=split, combineall=True).load()
    assert combined.num_train_pids == 7 and len(combined.train) == 17 and not combined.excluded


def test_threedpes_splits_differ(tmp_path):
    make_threedpes(tmp_path)
    loaded = {tuple(ThreeDPeS(tmp_path, split=i).load().gallery) for i in range(4)}
    assert len(loaded) > 1


# -- CAVIAR4REID -------------------------------------------------------------------------------
def make_caviar(root: Path) -> Path:
    base = root / "caviar4reid" / "CAVIARa"
    two = [f"{p:04d}{s:03d}.jpg" for p in range(1, 5) for s in range(1, 21)]
    touch(base, two + [f"{p:04d}{s:03d}.jpg" for p in (5, 6) for s in range(1, 11)])
    return base


def caviar_person(path: str) -> int:
    return int(Path(path).name[:4])


def test_caviar4reid_protocol(tmp_path):
    make_caviar(tmp_path)
    splits = CAVIAR4REID(tmp_path, split=1).load()
    train, test = rule_split(range(1, 5), 2, 1)
    # one-camera people (5, 6) always train; queries camera 1 (001-010), gallery camera 2
    assert person_sets(splits, caviar_person) == (train | {5, 6}, test, test)
    assert len(splits.train) == 60 and len(splits.query) == len(splits.gallery) == 20
    assert all(int(Path(p).stem[4:]) <= 10 and c == 0 for p, _, c in splits.query)
    assert all(int(Path(p).stem[4:]) > 10 and c == 1 for p, _, c in splits.gallery)
    assert true_matches(splits) == [10] * 20
    assert not splits.excluded
    check_consistent(splits, caviar_person)
    assert "protocol chosen by reidtricks" in splits.statistics_table()
    combined = CAVIAR4REID(tmp_path, split=1, combineall=True).load()
    assert combined.num_train_pids == 6 and len(combined.train) == 100
    assert {tuple(CAVIAR4REID(tmp_path, split=i).load().query) for i in range(4)} != {
        tuple(splits.query)
    }


# -- bad layouts and values --------------------------------------------------------------------
ALL = [
    (VIPeR, make_viper, "viper/VIPeR/{cam_a,cam_b}"),
    (PRID2011, make_prid, "prid2011/prid_2011/single_shot/{cam_a,cam_b}"),
    (GRID, make_grid, "grid/underground_reid/{probe,gallery}"),
    (ILIDS, make_ilids, "ilids/i-LIDS_Pedestrian/Persons"),
    (CUHK01, make_cuhk01, "cuhk01/campus"),
    (ThreeDPeS, make_threedpes, "3dpes/3DPeS/RGB"),
    (CAVIAR4REID, make_caviar, "caviar4reid/CAVIARa"),
]


@pytest.mark.parametrize(("cls", "make", "layout"), ALL)
def test_missing_set_folder_names_tried_paths_and_layout(tmp_path, cls, make, layout):
    with pytest.raises(FileNotFoundError) as err:
        cls(tmp_path).load()
    message = str(err.value)
    assert "\n" not in message and f"tried {tmp_path}/" in message and layout in message
    assert "paths.data_dir=" in message


@pytest.mark.parametrize(("cls", "make", "layout"), ALL)
def test_unparsable_name_and_bad_split(tmp_path, cls, make, layout):
    folder = make(tmp_path)
    image_dir = {VIPeR: "cam_b", PRID2011: "cam_b", GRID: "gallery"}.get(cls, "")
    suffix = {VIPeR: ".bmp", GRID: ".jpeg", CUHK01: ".png", ThreeDPeS: ".png"}.get(cls, ".jpg")
    if cls is PRID2011:
        suffix = ".png"
    bad = (folder / image_dir if image_dir else folder) / f"holiday{suffix}"
    touch(bad.parent, [bad.name])
    with pytest.raises(InputError) as err:
        cls(tmp_path).load()
    message = str(err.value)
    assert (
        message.startswith(f"{bad}: file name does not match the pattern") and "\n" not in message
    )
    for split in (-1, cls.num_splits, True, "0"):
        with pytest.raises(InputError, match=rf"{cls.name}: split={split!r} is out of range"):
            cls(tmp_path, split=split)
    assert cls.num_splits == 10


def test_missing_camera_folder(tmp_path):
    base = make_viper(tmp_path)
    for f in (base / "cam_b").iterdir():
        f.unlink()
    (base / "cam_b").rmdir()
    with pytest.raises(
        FileNotFoundError, match=r"tried .*viper/VIPeR.*expected viper/VIPeR/\{cam_a,cam_b"
    ):
        VIPeR(tmp_path).load()


# -- the real sets -----------------------------------------------------------------------------
IMAGE_SUFFIXES = {".bmp", ".png", ".jpg", ".jpeg"}
REAL = [  # class, set folder, README (ids, images), split 0 (train ids, query ids, gallery ids)
    (VIPeR, "viper", (632, 1264), (316, 316, 316)),
    (PRID2011, "prid2011", (934, 1134), (100, 100, 649)),
    (ILIDS, "ilids", (119, 476), (59, 60, 60)),
    (ThreeDPeS, "3dpes", (193, 1012), (96, 96, 96)),
    (CAVIAR4REID, "caviar4reid", (72, 1220), (47, 25, 25)),
]


@real_data
@pytest.mark.real_data
@pytest.mark.parametrize(("cls", "folder", "readme", "split0"), REAL)
def test_real_set_counts_and_every_image_accounted_for(cls, folder, readme, split0):
    splits = cls(REAL_DATA).load()
    assert (splits.num_train_pids, *(len({p for _, p, _ in s}) for s in
            (splits.query, splits.gallery))) == split0  # fmt: skip
    used = [p for p, _, _ in splits.train + splits.query + splits.gallery]
    used += [p for p, _ in splits.excluded]
    on_disk = sorted(
        str(p) for p in (REAL_DATA / folder).rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES
    )
    assert sorted(used) == on_disk and len(on_disk) == readme[1]
    combined = cls(REAL_DATA, combineall=True).load()
    assert (combined.num_train_pids, len(combined.train)) == readme
    assert not combined.excluded


@real_data
@pytest.mark.real_data
def test_real_set_details():
    prid = PRID2011(REAL_DATA).load()
    assert len(prid.train) == 200 and len(prid.query) == 100 and len(prid.gallery) == 649
    assert len(prid.excluded) == 185 and true_matches(prid) == [1] * 100
    threedpes = ThreeDPeS(REAL_DATA).load()
    assert [Path(p).name.split("_")[0] for p, _ in threedpes.excluded] == ["139"]
    assert len(threedpes.query) + len(threedpes.gallery) + len(threedpes.train) == 1011
    assert true_matches(threedpes) == [1] * len(threedpes.query)
    ilids = ILIDS(REAL_DATA).load()
    assert true_matches(ilids) == [1] * 60
    caviar = CAVIAR4REID(REAL_DATA).load()
    assert len(caviar.train) == 720 and true_matches(caviar) == [10] * 250
    viper = VIPeR(REAL_DATA).load()
    assert true_matches(viper) == [1] * 316
    counts = Counter(Path(p).parent.name for p, _, _ in viper.query + viper.gallery)
    assert counts == {"cam_a": 316, "cam_b": 316}


@pytest.mark.parametrize("cls", [VIPeR, PRID2011, GRID, ILIDS, CUHK01, ThreeDPeS, CAVIAR4REID])
def test_configs_and_checkpoint_rebuild_every_class(tmp_path, cls):
    from hydra.utils import instantiate

    from helpers import compose_config
    from reidtricks.inference.checkpoint import dataset_from_spec

    cfg = compose_config("stats", f"data={cls.name}", f"paths.data_dir={tmp_path}")
    train, test = cfg.data.train_sources[cls.name], cfg.data.test_sources[cls.name]
    source = instantiate(train)
    assert type(source) is cls and vars(source) == vars(instantiate(test))
    assert (source.root, source.split, source.combineall) == (str(tmp_path), 0, False)
    target = f"reidtricks.data.datasets.{cls.__name__}"
    spec = {"_target_": target, "root": "/elsewhere", "split": 3, "combineall": True}
    rebuilt = dataset_from_spec(cls.name, spec, "x.ckpt", data_dir=str(tmp_path))
    assert type(rebuilt) is cls and (rebuilt.root, rebuilt.split, rebuilt.combineall) == (
        str(tmp_path),
        3,
        True,
    )


def test_grid_random_is_named_so_in_the_test_sets(tmp_path):
    from reidtricks.data.datamodule import ReIDDataModule

    make_grid(tmp_path)
    sources = {
        "grid": GRID(tmp_path, partitions="random"),
        "official": GRID(tmp_path),
        "mine-random": GRID(tmp_path, split=1, partitions="random"),
    }
    train = {"grid": sources["grid"]}
    dm = ReIDDataModule(
        train, sources, {"p": 2, "k": 2}, {}, {"num_workers": 0}, seed=0, verify_images=False,
        test_on_trained_ids=True,  # trains on other partitions of the tested sets (the trial rule)
    )  # fmt: skip
    dm.setup("fit")
    assert [t.name for t in dm.test_sets] == ["grid-random", "official", "mine-random"]
    assert "grid-random" in dm.statistics() and dm.num_classes == 4
