"""PETA's TownCentre and SARC3D (training only): parsers on generated official layouts, max_per_id
against its rule written out, the test-source refusal, stats, ids kept apart from other sources,
and the real sets of ../shared/data when that folder is present."""

from __future__ import annotations

import itertools
import json
from fractions import Fraction
from pathlib import Path

import pytest
from hydra.errors import InstantiationException
from hydra.utils import instantiate

from helpers import compose_config, compose_train
from reidtricks.cli.stats import run_stats
from reidtricks.data.datamodule import ReIDDataModule
from reidtricks.data.datasets import SARC3D, TownCentre
from reidtricks.data.datasets.training_only import spread_evenly
from reidtricks.errors import InputError
from reidtricks.inference.checkpoint import dataset_classes
from test_classic_datasets import REAL_DATA, real_data, touch
from trial_data import ListSource

# person -> frame indices n of <id>_<n>.jpg; the names sort differently from the frames (7_12 <
# 7_3 as text), so frame order must come from the numbers.
TOWN = {
    0: [16, 8],
    7: [3, 12, 21, 30, 39, 48, 57, 66, 75, 84],
    100: [1726, 1735, 1744],
    230: [5],
}
SARC = {1: ["front", "back", "left", "Right"], 2: ["front", "back", "left", "right"]}


def peta(root: Path, subset: str) -> Path:
    return root / "peta" / "PETA dataset" / subset / "archive"


def make_town(root: Path) -> Path:
    folder = peta(root, "TownCentre")
    touch(folder, [f"{pid}_{n}.jpg" for pid, frames in TOWN.items() for n in frames])
    (folder / "Label.txt").write_text("7 upperBodyGrey lowerBodyBlack\n")  # attributes, no image
    return folder


def make_sarc(root: Path) -> Path:
    folder = peta(root, "SARC3D")
    touch(folder, [f"{pid:03d}_{view}.bmp" for pid, views in SARC.items() for view in views])
    (folder / "Label.txt").write_text("001 upperBodyBlack\n")
    return folder


def frames_of(items, person: int) -> list[int]:
    """The frame indices n of one person's training images (person from the file name)."""
    names = [Path(p).stem.split("_") for p, _, _ in items]
    return sorted(int(n) for pid, n in names if int(pid) == person)


def test_towncentre_every_image_in_train_as_camera_0(tmp_path):
    folder = make_town(tmp_path)
    splits = TownCentre(tmp_path).load()
    assert splits.name == "towncentre" and not splits.query and not splits.gallery
    assert sorted(p for p, _, _ in splits.train) == sorted(
        str(p) for p in folder.iterdir() if p.suffix == ".jpg"
    )  # Label.txt is not an image
    assert {cam for *_, cam in splits.train} == {0}
    # labels 0..3 in order of the person number: 0, 7, 100, 230
    label_of = {int(Path(p).name.split("_")[0]): pid for p, pid, _ in splits.train}
    assert label_of == {0: 0, 7: 1, 100: 2, 230: 3}
    assert splits.counts()["train"] == {"ids": 4, "images": 16, "cameras": 1}
    assert not splits.excluded and TownCentre.num_splits == 1


def test_sarc3d_views_are_camera_0(tmp_path):
    make_sarc(tmp_path)
    splits = SARC3D(tmp_path).load()
    assert splits.counts()["train"] == {"ids": 2, "images": 8, "cameras": 1}
    assert not splits.query and not splits.gallery
    assert any("not cameras" in note for note in splits.notes)


@pytest.mark.parametrize(
    "relative", ["", "peta", "peta/PETA dataset", "peta/PETA dataset/TownCentre"]
)
def test_root_may_be_any_folder_down_to_the_subset(tmp_path, relative):
    make_town(tmp_path)
    assert len(TownCentre(tmp_path / relative).load().train) == 16


def test_missing_folder_and_bad_names_are_one_line_errors(tmp_path):
    with pytest.raises(InputError, match=r"tried .*peta/PETA dataset/SARC3D.*expected peta/PETA "
                       r"dataset/SARC3D/archive/<id>_<view>\.bmp") as err:  # fmt: skip
        SARC3D(tmp_path).load()
    assert "\n" not in str(err.value)
    folder = make_town(tmp_path)
    touch(folder, ["7_x.jpg"])
    with pytest.raises(InputError, match=r"7_x\.jpg: file name does not match .*<id>_<n>\.jpg"):
        TownCentre(tmp_path).load()
    with pytest.raises(InputError, match=r"towncentre: max_per_id=0: expected an integer >= 1"):
        TownCentre(tmp_path, max_per_id=0)
    with pytest.raises(InputError, match=r"split=1"):
        SARC3D(tmp_path, split=1)


def middle_of_runs(count: int, keep: int) -> list[int]:
    """The rule written out: cut positions 0..count-1 into `keep` equal runs; keep the position
    whose unit interval [j, j+1) holds the middle of each run (exact fractions, by search)."""
    if keep >= count:
        return list(range(count))
    kept = []
    for i in range(keep):
        middle = (Fraction(i) + Fraction(1, 2)) * Fraction(count, keep)
        kept += [j for j in range(count) if j <= middle < j + 1]
    return kept


def test_spread_evenly_against_the_rule_written_out():
    assert spread_evenly(10, 3) == [1, 5, 8]  # middles 5/3, 5, 25/3
    assert spread_evenly(10, 4) == [1, 3, 6, 8]  # middles 1.25, 3.75, 6.25, 8.75
    assert spread_evenly(7, 1) == [3] and spread_evenly(3, 3) == [0, 1, 2]
    assert spread_evenly(5, None) == [0, 1, 2, 3, 4] and spread_evenly(2, 9) == [0, 1]
    for count in range(1, 40):
        for keep in range(1, count + 3):
            kept = spread_evenly(count, keep)
            assert kept == middle_of_runs(count, keep), (count, keep)
            assert len(kept) == min(keep, count) and kept == sorted(set(kept))
            gaps = [b - a for a, b in itertools.pairwise(kept)]
            assert not gaps or max(gaps) - min(gaps) <= 1  # evenly spread


def test_max_per_id_keeps_frames_spread_evenly_in_frame_order(tmp_path):
    make_town(tmp_path)
    splits = TownCentre(tmp_path, max_per_id=3).load()
    # person 7, frames 3..84 (10): positions 1, 5, 8 -> frames 12, 48, 75; the others all kept
    assert frames_of(splits.train, 7) == [12, 48, 75]
    assert frames_of(splits.train, 0) == [8, 16]
    assert frames_of(splits.train, 100) == [1726, 1735, 1744]
    assert frames_of(splits.train, 230) == [5]
    assert sorted(int(Path(p).stem.split("_")[1]) for p, _ in splits.excluded) == [
        3, 21, 30, 39, 57, 66, 84]  # fmt: skip
    assert all("max_per_id=3" in why for _, why in splits.excluded)
    assert frames_of(TownCentre(tmp_path, max_per_id=4).load().train, 7) == [12, 30, 57, 75]
    one = TownCentre(tmp_path, max_per_id=1).load()
    assert [frames_of(one.train, p) for p in TOWN] == [[16], [48], [1735], [5]]
    every = TownCentre(tmp_path, max_per_id=10).load()
    assert every.train == TownCentre(tmp_path).load().train and not every.excluded
    # combineall changes nothing: there is no query or gallery to add
    assert TownCentre(tmp_path, combineall=True, max_per_id=3).load().train == splits.train


def test_max_per_id_on_sarc3d_orders_views_by_name(tmp_path):
    make_sarc(tmp_path)
    splits = SARC3D(tmp_path, max_per_id=2).load()
    # back, front, left, right: positions 1 and 3 -> front and right (Right as released)
    views = sorted(Path(p).stem for p, _, _ in splits.train)
    assert views == ["001_Right", "001_front", "002_front", "002_right"]


def test_as_a_test_source_they_are_a_one_line_error(tmp_path):
    make_town(tmp_path)
    make_sarc(tmp_path)
    train = ListSource("a", [("x.jpg", 1, 0), ("y.jpg", 2, 1)])
    for name, source in (("tc", TownCentre(tmp_path)), ("sarc", SARC3D(tmp_path))):
        with pytest.raises(InputError) as err:
            ReIDDataModule({"a": train}, {name: source}, {}, {}, {}, seed=0, verify_images=False)
        message = str(err.value)
        start = f"data.test_sources.{name} ({type(source).__name__}) is a training-only set"
        assert message.startswith(f"{start} (one camera: no cross-camera") and "\n" not in message
    cfg = compose_train("data=viper", f"paths.data_dir={tmp_path}",
                        "+dataset@data.test_sources.towncentre=towncentre")  # fmt: skip
    with pytest.raises(InstantiationException, match=r"data\.test_sources\.towncentre"):
        instantiate(cfg.data, _convert_="all")


def test_data_configs_and_stats(tmp_path):
    make_town(tmp_path)
    make_sarc(tmp_path)
    cfg = compose_train("data=towncentre", f"paths.data_dir={tmp_path}")
    assert dict(cfg.data.test_sources) == {}
    assert cfg.data.train_sources.towncentre.max_per_id is None
    table = run_stats(compose_config("stats", "data=towncentre", f"paths.data_dir={tmp_path}"))
    assert table.splitlines()[:5] == [
        "towncentre",
        "  split       ids   images  cameras",
        "  train         4       16        1",
        "  query         0        0        0",
        "  gallery       0        0        0",
    ]
    thinned = json.loads(run_stats(compose_config(
        "stats", "data=towncentre", f"paths.data_dir={tmp_path}", "format=json",
        "data.train_sources.towncentre.max_per_id=3")))  # fmt: skip
    assert thinned["train"]["images"] == 2 + 3 + 3 + 1 and thinned["excluded"]["images"] == 7
    sarc = json.loads(run_stats(compose_config(
        "stats", "data=sarc3d", f"paths.data_dir={tmp_path}", "format=json")))  # fmt: skip
    assert sarc["train"] == {"ids": 2, "images": 8, "cameras": 1}
    # a training run names them in train and accepts them in its checkpoints
    assert {f"reidtricks.data.datasets.{c}" for c in ("TownCentre", "SARC3D")} <= set(
        dataset_classes()
    )


def test_multi_source_training_keeps_towncentre_ids_apart(tmp_path):
    """Person 7 of TownCentre and person 7 of another set are two people; camera 0 of each too."""
    make_town(tmp_path)
    other = ListSource("other", [(f"o{pid}_{i}.jpg", pid, i % 2) for pid in (0, 7, 100)
                                 for i in range(2)])  # fmt: skip
    test = ListSource("t", [], [("q.jpg", 1, 0)], [("g.jpg", 1, 1)])
    module = ReIDDataModule(
        {"other": other, "towncentre": TownCentre(tmp_path)}, {"t": test},
        {"p": 2, "k": 2}, {}, {"num_workers": 0}, seed=0, verify_images=False,
    )  # fmt: skip
    module.setup()
    town = {p: (pid, cam) for p, pid, cam in module.train_items if "TownCentre" in p}
    mine = {p: (pid, cam) for p, pid, cam in module.train_items if "TownCentre" not in p}
    assert module.num_classes == 3 + 4
    assert {pid for pid, _ in mine.values()} == {0, 1, 2}
    assert {pid for pid, _ in town.values()} == {3, 4, 5, 6}  # after the other set's 3 labels
    assert {cam for _, cam in mine.values()} == {0, 1} and {cam for _, cam in town.values()} == {2}
    seven = {pid for p, (pid, _) in town.items() if Path(p).name.startswith("7_")}
    assert seven == {4}  # TownCentre's person 7 (its label 1) + 3
    assert module.train_item_sources == [0] * 6 + [1] * 16


@real_data
@pytest.mark.real_data
@pytest.mark.parametrize(
    ("cls", "subset", "readme"),
    [(TownCentre, "TownCentre", (222, 6967)), (SARC3D, "SARC3D", (50, 200))],
)
def test_real_subsets_counts_and_every_image_used(cls, subset, readme):
    splits = cls(REAL_DATA).load()
    assert (splits.num_train_pids, len(splits.train)) == readme
    on_disk = sorted(str(p) for p in peta(REAL_DATA, subset).iterdir() if p.name != "Label.txt")
    assert sorted(p for p, _, _ in splits.train) == on_disk
    assert {cam for *_, cam in splits.train} == {0} and not splits.excluded
    counts = json.loads(run_stats(compose_config(
        "stats", f"data={cls.name}", f"paths.data_dir={REAL_DATA}", "format=json")))  # fmt: skip
    assert counts["train"] == {"ids": readme[0], "images": readme[1], "cameras": 1}


@real_data
@pytest.mark.real_data
def test_real_towncentre_max_per_id():
    # README: median 32 images per person, max 157, 7 people with one image
    assert len(TownCentre(REAL_DATA, max_per_id=157).load().train) == 6967
    assert len(TownCentre(REAL_DATA, max_per_id=1).load().train) == 222
    per_id = TownCentre(REAL_DATA, max_per_id=8).load()
    assert len(per_id.train) == 1654 and len(per_id.train) + len(per_id.excluded) == 6967  # docs
    assert max(list(zip(*per_id.train, strict=True))[1].count(i) for i in range(222)) == 8
