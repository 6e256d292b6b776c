"""Training on several sources at once: identities and cameras kept apart per source, combineall
passed per source, P x K batches drawn across sources; the dg_cuhk03 experiment composes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hydra.utils import instantiate

from helpers import compose_train
from reidtricks.data.datamodule import ReIDDataModule
from reidtricks.data.datasets import SyntheticReID
from reidtricks.data.sampler import PKBatchSampler
from reidtricks.errors import InputError
from trial_data import ListSource, TrialSynthetic


def colliding_sources(root: Path) -> tuple[ListSource, ListSource]:
    """Two sets of 6 people each, both numbered 1..6 and both filmed by cameras 0 and 1."""
    paths = sorted(str(p) for p in (root / "synthetic-tiny-seed0" / "bounding_box_train").iterdir())
    a = [(paths[i], 1 + i // 4, i % 2) for i in range(24)]
    b = [(paths[24 + i], 1 + i // 4, i % 2) for i in range(24)]
    return ListSource("a", a), ListSource("b", b)


def two_source_datamodule(root: Path, p: int) -> ReIDDataModule:
    a, b = colliding_sources(root)
    module = ReIDDataModule(
        train_sources={"a": a, "b": b},
        test_sources={"synthetic": SyntheticReID(root, preset="tiny")},
        sampler={"p": p, "k": 2},
        transform={"height": 16, "width": 8},
        loader={"num_workers": 0},
        seed=0,
        verify_images=False,
    )
    module.setup("fit")
    return module


def test_colliding_ids_of_two_sources_stay_different_people(tiny_data_dir):
    module = two_source_datamodule(tiny_data_dir, p=4)
    a, b = colliding_sources(tiny_data_dir)
    source_of = {path: "a" for path, _, _ in a.train} | {path: "b" for path, _, _ in b.train}
    labels = {"a": set(), "b": set()}
    cams = {"a": set(), "b": set()}
    original = {path: pid for path, pid, _ in a.train + b.train}
    for path, label, cam in module.train_items:
        labels[source_of[path]].add(label)
        cams[source_of[path]].add(cam)
    assert len(module.train_items) == 48 and module.num_classes == 12
    assert labels["a"] == set(range(6)) and labels["b"] == set(range(6, 12))  # person 1 twice
    assert cams["a"] == {0, 1} and cams["b"] == {2, 3}  # camera 0 of b is not camera 0 of a
    # Within a source, one person keeps one label.
    for path, label, _ in module.train_items:
        same = [lab for p, lab, _ in module.train_items if original[p] == original[path]
                and source_of[p] == source_of[path]]  # fmt: skip
        assert set(same) == {label}
    # The loader yields these labels: one batch has K=2 images of each of P=4 people.
    images, pids, *_ = next(iter(module.train_dataloader()))
    assert (
        images.shape[0] == 8 and sorted(np.unique(pids.numpy(), return_counts=True)[1]) == [2] * 4
    )


def test_pk_batches_mix_the_sources(tiny_data_dir):
    module = two_source_datamodule(tiny_data_dir, p=6)
    is_b = np.array([label >= 6 for _, label, _ in module.train_items])
    pids = [label for _, label, _ in module.train_items]
    mixed = total = 0
    share_b = []
    for epoch in range(5):
        sampler = PKBatchSampler(pids, p=6, k=2, seed=0)
        sampler.set_epoch(epoch)
        for batch in sampler:
            from_b = is_b[batch]
            mixed += bool(from_b.any() and not from_b.all())
            share_b.append(from_b.mean())
            total += 1
    assert total >= 10
    assert mixed / total >= 0.9, (mixed, total)  # P=6 of 12 people: one-source draws are rare
    assert abs(np.mean(share_b) - 0.5) < 0.1  # each source by its share of people


def test_combineall_is_passed_per_source(tiny_data_dir):
    """`data.train_sources.NAME.combineall` reaches that source's class and no other."""
    entry = f"{{_target_: trial_data.TrialSynthetic, root: '{tiny_data_dir}', combineall: %s}}"
    cfg = compose_train(
        "data=synthetic", f"paths.data_dir={tiny_data_dir}",
        "data.train_sources.synthetic.preset=tiny", "data.loader.num_workers=0",
        f"+data.train_sources.all={entry % 'true'}",
        f"+data.train_sources.some={entry % 'false'}",
        "data.test_on_trained_ids=true",  # `all` trains on the test people (the trial rule)
    )  # fmt: skip
    module = instantiate(cfg.data, _convert_="all")
    assert module.train_sources["all"].combineall is True
    assert module.train_sources["some"].combineall is False
    with pytest.raises(InputError, match="share .* training images"):  # one set named 3 times
        module.setup("fit")
    module.train_sources = {"all": module.train_sources["all"]}
    module.setup("fit")
    tiny = SyntheticReID(tiny_data_dir, preset="tiny").load()
    alone = TrialSynthetic(tiny_data_dir).load()
    test_ids = len({pid for _, pid, _ in alone.query + alone.gallery})
    assert module.num_classes == tiny.num_train_pids + test_ids
    assert len(module.train_items) == len(tiny.train) + len(alone.query) + len(alone.gallery)


def test_dg_cuhk03_experiment_composes():
    cfg = compose_train("experiment=dg_cuhk03")
    cpu = compose_train("experiment=cuhk03_cpu")
    assert cfg.task_name == "dg_cuhk03"
    data = cfg.data
    assert list(data.train_sources) == ["cuhk03", "threedpes", "caviar4reid"]
    assert data.train_sources.cuhk03.variant == "labeled"
    assert data.train_sources.threedpes.combineall and data.train_sources.caviar4reid.combineall
    assert not data.train_sources.cuhk03.get("combineall", False)
    assert list(data.test_sources) == ["cuhk03", "viper", "prid2011", "ilids"]
    assert data.test_trials == "all"
    for name in ("viper", "prid2011", "ilids"):
        assert data.test_sources[name].split == 0
    # The CPU schedule and model of cuhk03_cpu, unchanged.
    for key in ("model", "optim", "trainer", "loss", "eval"):
        assert cfg[key] == cpu[key], key
    assert data.transform == cpu.data.transform and data.sampler == cpu.data.sampler
    assert data.loader == cpu.data.loader and cfg.paths.data_dir == cpu.paths.data_dir
    sources = instantiate(data.test_sources)
    assert {name: s.num_splits for name, s in sources.items() if name != "cuhk03"} == {
        "viper": 10, "prid2011": 10, "ilids": 10,
    }  # fmt: skip
