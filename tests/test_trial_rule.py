"""The trial rule: a test set never holds a person the model trained on unless the user says so
(`test_on_trained_ids=true`), in training, in `evaluate` and on resume. Overlaps are checked
against counts computed here from the person numbers of the file names, not from image paths."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from reidtricks.data.datamodule import ReIDDataModule
from reidtricks.data.datasets import VIPeR
from reidtricks.data.trained_ids import check_same_training_data, trained_test_ids
from reidtricks.errors import InputError

PEOPLE = 12  # a VIPeR-layout folder of 12 people x 2 cameras: 6 train / 6 test per split


def fake_viper(root: Path) -> Path:
    """Real (tiny, random) BMP images in VIPeR's release layout."""
    rng = np.random.default_rng(0)
    for cam in ("cam_a", "cam_b"):
        folder = root / "viper" / "VIPeR" / cam
        folder.mkdir(parents=True, exist_ok=True)
        for pid in range(1, PEOPLE + 1):
            pixels = rng.integers(0, 256, (32, 16, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(folder / f"{pid:03d}_0.bmp")
    return root


def person(path: str) -> int:
    return int(re.match(r"(\d{3})_", Path(path).name).group(1))


def overlap_by_person(train_split: int, test_split: int, root: Path) -> tuple[int, int]:
    """(test people of `test_split` among the training people of `train_split`, test people),
    from the person numbers in the file names."""
    trained = {person(p) for p, _, _ in VIPeR(root, split=train_split).load().train}
    tested = VIPeR(root, split=test_split).load()
    people = {person(p) for p, _, _ in tested.query + tested.gallery}
    return len(people & trained), len(people)


def datamodule(root: Path, trials=None, allowed=False, combineall=False) -> ReIDDataModule:
    return ReIDDataModule(
        train_sources={"viper": VIPeR(root, split=0, combineall=combineall)},
        test_sources={"viper": VIPeR(root, split=0)},
        sampler={"p": 2, "k": 2},
        transform={"height": 32, "width": 16},
        loader={"num_workers": 0, "persistent_workers": False},
        seed=0,
        verify_images=False,
        test_trials=trials,
        test_on_trained_ids=allowed,
    )


def first_leaking_split(train_split: int, root: Path) -> tuple[int, int, int]:
    for split in range(10):
        overlap, total = overlap_by_person(train_split, split, root)
        if overlap:
            return split, overlap, total
    raise AssertionError("no split shares a person with the training split")


def test_trained_test_ids_counts_identities_with_any_trained_image():
    query = [("q/1a", 1, 0), ("q/2a", 2, 0), ("q/3a", 3, 0)]
    gallery = [("g/1b", 1, 1), ("g/2b", 2, 1), ("g/4b", 4, 1)]
    # person 1 through its query image, person 4 (gallery only) through its gallery image
    assert trained_test_ids(query, gallery, {"q/1a", "g/4b", "elsewhere"}) == (2, 4)
    assert trained_test_ids(query, gallery, set()) == (0, 4)


def test_training_refuses_trials_holding_people_it_trains_on(tmp_path):
    root = fake_viper(tmp_path)
    split, overlap, total = first_leaking_split(0, root)
    assert split != 0 and overlap_by_person(0, 0, root)[0] == 0
    dm = datamodule(root, trials="all")
    dm.prepare_data()
    message = f"test set viper split {split}: {overlap} of its {total} test identities were trained"
    with pytest.raises(InputError, match=re.escape(message)):
        dm.setup("fit")


def test_training_on_the_tested_split_only_or_when_told_passes(tmp_path):
    root = fake_viper(tmp_path)
    for dm in (datamodule(root), datamodule(root, trials="all", allowed=True)):
        dm.prepare_data()
        dm.setup("fit")
        assert dm.test_sets[0].name == "viper"


def test_combineall_on_a_tested_set_is_refused(tmp_path):
    root = fake_viper(tmp_path)
    dm = datamodule(root, combineall=True)
    dm.prepare_data()
    with pytest.raises(InputError, match=r"test set viper split 0: 6 of its 6 test identities"):
        dm.setup("fit")


@pytest.mark.parametrize("value", ["no", "false", 1, ""])
def test_the_word_must_be_a_boolean(tmp_path, value):
    with pytest.raises(InputError, match="data.test_on_trained_ids"):
        datamodule(fake_viper(tmp_path), allowed=value)


def test_resume_refuses_other_training_splits_or_sets():
    stored = {"viper": {"_target_": "reidtricks.data.datasets.VIPeR", "root": "/a", "split": 0,
                        "combineall": False}}  # fmt: skip
    moved = {"viper": {**stored["viper"], "root": "/elsewhere"}}
    check_same_training_data(stored, moved, "x.ckpt")  # another place, the same images
    other_split = {"viper": {**stored["viper"], "split": 3}}
    with pytest.raises(
        InputError, match=r"^ckpt_path=x.ckpt: data.train_sources.viper is .*'split': 3"
    ):
        check_same_training_data(stored, other_split, "x.ckpt")
    combined = {"viper": {**stored["viper"], "combineall": True}}
    with pytest.raises(InputError, match="same training sets and splits"):
        check_same_training_data(stored, combined, "x.ckpt")
    with pytest.raises(InputError, match=r"train_sources.prid is .* but absent"):
        check_same_training_data(stored, {**stored, "prid": stored["viper"]}, "x.ckpt")


def viper_checkpoint(trained_ckpt: Path, root: Path, split: int, out: Path) -> Path:
    """The trained tiny network, its stored data rewritten as trained and tested on VIPeR `split`
    at `root` (plain fields, as a VIPeR run stores them)."""
    stored = torch.load(trained_ckpt, map_location="cpu", weights_only=True)
    viper = {"_target_": "reidtricks.data.datasets.VIPeR", "root": str(root), "split": split,
             "combineall": False}  # fmt: skip
    data = stored["reidtricks"]["config"]["data"]
    data["train_sources"], data["test_sources"] = {"viper": viper}, {"viper": dict(viper)}
    torch.save(stored, out)
    return out


@pytest.mark.slow  # evaluates a checkpoint four times
def test_evaluate_scores_the_trained_split_and_refuses_leaking_trials(
    trained_ckpt, tmp_path, capsys
):
    from helpers import compose_evaluate
    from reidtricks.cli.evaluate import evaluate_checkpoint

    root = fake_viper(tmp_path / "data")
    ckpt = viper_checkpoint(trained_ckpt, root, 3, tmp_path / "viper3.ckpt")
    loader = ["loader.num_workers=0", "plot_queries=0"]
    # Its own test sets: split 3, as trained.
    own = evaluate_checkpoint(compose_evaluate(ckpt, tmp_path / "own", *loader))
    assert [t["split"] for t in own["test_sets"]["viper"]["per_trial"]] == [3]
    # The README's form, data=viper (whose config names split 0): scored on split 3.
    data = ["data=viper", f"paths.data_dir={root}", *loader]
    chosen = evaluate_checkpoint(compose_evaluate(ckpt, tmp_path / "data", *data))
    assert [t["split"] for t in chosen["test_sets"]["viper"]["per_trial"]] == [3]
    assert "viper: scoring split 3, the split the checkpoint trained on" in capsys.readouterr().out
    for key in ("mAP", "rank1"):
        assert chosen["test_sets"]["viper"][key] == pytest.approx(own["test_sets"]["viper"][key])
    # trials=all would score people it trained on: refused, naming the split and the count.
    split, overlap, total = first_leaking_split(3, root)
    with pytest.raises(
        InputError, match=re.escape(f"viper split {split}: {overlap} of its {total}")
    ):
        evaluate_checkpoint(compose_evaluate(ckpt, tmp_path / "all", *data, "trials=all"))
    told = evaluate_checkpoint(
        compose_evaluate(ckpt, tmp_path / "told", *data, "trials=all", "test_on_trained_ids=true")
    )
    assert told["test_sets"]["viper"]["trials"] == 10


def test_the_same_set_twice_as_training_sources_is_refused(tmp_path):
    root = fake_viper(tmp_path)
    dm = ReIDDataModule(
        train_sources={"viper": VIPeR(root, split=0), "again": VIPeR(root, split=1)},
        test_sources={"viper": VIPeR(root, split=0)},
        sampler={"p": 2, "k": 2}, transform={"height": 32, "width": 16},
        loader={"num_workers": 0, "persistent_workers": False}, seed=0, verify_images=False,
        test_on_trained_ids=True,
    )  # fmt: skip
    trained = [{person(p) for p, _, _ in VIPeR(root, split=s).load().train} for s in (0, 1)]
    shared = 2 * len(trained[0] & trained[1])  # two images (cameras) per person
    dm.prepare_data()
    with pytest.raises(
        InputError, match=rf"train_sources.again and data.train_sources.viper share {shared} "
    ):
        dm.setup("fit")


def test_check_resume_fits_refuses_another_split(trained_ckpt):
    """The resume path of `train`: the checkpoint is read once, its training sets compared there."""
    from reidtricks.inference.checkpoint import build_net_from_checkpoint, load_checkpoint
    from reidtricks.training.run_safety import check_resume_fits

    raw = load_checkpoint(trained_ckpt)
    module = torch.nn.Module()
    module.net = build_net_from_checkpoint(raw, str(trained_ckpt))
    module.center_loss = torch.nn.Module()  # the full BoT's centers, as the stored state holds
    for key, value in raw["state_dict"].items():
        if key.startswith("center_loss."):
            module.center_loss.register_parameter(key.split(".", 1)[1], torch.nn.Parameter(value))
    sources = raw["reidtricks"]["config"]["data"]["train_sources"]
    check_resume_fits(trained_ckpt, module, 10, sources)
    other = {name: {**spec, "seed": 7} for name, spec in sources.items()}
    with pytest.raises(InputError, match="same training sets and splits"):
        check_resume_fits(trained_ckpt, module, 10, other)
