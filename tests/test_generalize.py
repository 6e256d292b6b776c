"""experiment=generalize (the recipe for unseen cameras) and its leave-one-out group: what they
train and test on, and that each +gen_leave_out option changes exactly its own keys."""

from __future__ import annotations

import pytest
from omegaconf import OmegaConf

from helpers import compose_train

UNSEEN = ["viper", "prid2011", "ilids", "threedpes", "caviar4reid"]
# What each leave-out turns off (besides the cell name): the off values of the base groups.
LEFT_OUT = {
    "none": {},
    "ibn": {"model.ibn": "none"},
    "mixstyle": {"model.mixstyle.p": 0.0},
    "gem": {"model.pooling": "avg"},
    "color": {"data.transform.color_jitter": 0.0, "data.transform.grayscale_prob": 0.0},
    "tricks": {"model.ibn": "none", "model.mixstyle.p": 0.0, "model.pooling": "avg",
               "data.transform.color_jitter": 0.0, "data.transform.grayscale_prob": 0.0},
}  # fmt: skip


def flat(*overrides: str, experiment: str = "generalize") -> dict:
    cfg = compose_train(
        f"experiment={experiment}", "paths.data_dir=/data", "paths.output_dir=/o", *overrides
    )
    container = OmegaConf.to_container(cfg, resolve=True)
    out: dict = {}

    def walk(node, prefix=""):
        for key, value in node.items():
            if isinstance(value, dict):
                walk(value, f"{prefix}{key}.")
            else:
                out[f"{prefix}{key}"] = value

    walk(container)
    return out


def test_the_recipe_trains_on_every_labelled_set_but_the_unseen_ones():
    cfg = compose_train("experiment=generalize")
    train, test = cfg.data.train_sources, cfg.data.test_sources
    assert sorted(train) == ["cuhk03", "sarc3d", "towncentre"]
    assert train.cuhk03.combineall and train.cuhk03.variant == "labeled"
    assert train.towncentre.max_per_id == 16
    assert list(test) == UNSEEN and cfg.data.test_trials == "all"
    assert not set(train) & set(test)
    assert cfg.stage == "center_loss" and cfg.model.neck == "bnneck" and cfg.optim.warmup
    assert (cfg.model.ibn, cfg.model.mixstyle.p, cfg.model.pooling) == ("a", 0.5, "gem")
    assert (cfg.data.transform.color_jitter, cfg.data.transform.grayscale_prob) == (0.2, 0.1)


@pytest.mark.parametrize("left_out", list(LEFT_OUT))
def test_each_leave_out_changes_exactly_its_keys(left_out):
    recipe, other = flat(), flat(f"+gen_leave_out={left_out}")
    changed = {k: other[k] for k in other if recipe.get(k) != other[k]}
    expected_cell = "recipe" if left_out == "none" else f"recipe_no_{left_out}"
    expected = {k: v for k, v in LEFT_OUT[left_out].items() if recipe[k] != v}
    assert changed == {**expected, **({"cell": expected_cell} if expected_cell != "recipe" else {})}
    assert set(other) == set(recipe)


def test_the_adaptation_source_never_trains_on_cuhk03():
    cfg = compose_train("experiment=adapt_source_cuhk03")
    assert "cuhk03" not in cfg.data.train_sources and list(cfg.data.test_sources) == ["cuhk03"]
    assert all(cfg.data.train_sources[name].combineall for name in UNSEEN)


def test_the_30_epoch_recipe_changes_only_the_schedule():
    recipe, long = flat(), flat(experiment="generalize_long")
    changed = {k: long[k] for k in long if recipe.get(k) != long[k]}
    assert changed == {
        "task_name": "generalize_long",
        "cell": "recipe_30ep",
        "optim.warmup_epochs": 3,
        "optim.milestones": [10, 18],
        "trainer.max_epochs": 30,
        "trainer.check_val_every_n_epoch": 30,
    }
    assert set(long) == set(recipe)
