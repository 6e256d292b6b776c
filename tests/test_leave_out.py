"""conf/leave_out: the full BoT less one trick changes exactly that trick's keys, back to the
values of the baseline, and nothing else."""

from __future__ import annotations

import pytest
from omegaconf import OmegaConf

from helpers import compose_train

# trick -> the stage before it in the chain (conf/trick/*.yaml)
PREDECESSOR = {
    "warmup": "baseline",
    "rea": "warmup",
    "label_smooth": "rea",
    "last_stride": "label_smooth",
    "bnneck": "last_stride",
    "center_loss": "bnneck",
}
NAMES = ("stage", "cell")


def leaves(*overrides: str) -> dict[str, object]:
    """Every leaf of the training config (interpolations as written) as {dotted.key: value}."""
    cfg = compose_train("experiment=cuhk03_cpu", *overrides)
    flat: dict[str, object] = {}

    def walk(node: object, prefix: str) -> None:
        if isinstance(node, dict) and node:
            for key, value in node.items():
                walk(value, f"{prefix}.{key}" if prefix else str(key))
        else:
            flat[prefix] = node

    walk(OmegaConf.to_container(cfg, resolve=False), "")  # paths need a running Hydra app
    return {k: v for k, v in flat.items() if k not in NAMES and not k.startswith("paths.")}


def changed(a: dict[str, object], b: dict[str, object]) -> set[str]:
    return {k for k in a.keys() | b.keys() if a.get(k) != b.get(k)}


@pytest.mark.slow  # composes three full train configs
@pytest.mark.parametrize("trick", list(PREDECESSOR))
def test_leaving_one_trick_out_restores_exactly_its_baseline_values(trick):
    bot = leaves("+trick=center_loss", "+leave_out=none")
    without = leaves("+trick=center_loss", f"+leave_out={trick}")
    baseline = leaves("+trick=baseline")
    own_keys = changed(leaves(f"+trick={trick}"), leaves(f"+trick={PREDECESSOR[trick]}"))
    assert own_keys, trick
    assert changed(bot, without) == own_keys
    assert {k: without[k] for k in own_keys} == {k: baseline[k] for k in own_keys}


@pytest.mark.slow  # composes every leave-out config
def test_cells_are_named_after_what_they_leave_out():
    cells = {
        trick: compose_train("+trick=center_loss", f"+leave_out={trick}").cell
        for trick in ["none", *PREDECESSOR]
    }
    assert cells["none"] == "bot"
    assert len(set(cells.values())) == len(cells)


def test_leaving_every_trick_out_is_the_baseline():
    everything_out = leaves("+trick=center_loss", "+leave_out=all")
    assert changed(everything_out, leaves("+trick=baseline")) == set()


def test_the_transfer_study_tests_every_set_over_all_trials():
    cfg = compose_train(
        "experiment=transfer_cuhk03", "+trick=center_loss", "+leave_out=rea", hydra_cfg=True
    )
    assert list(cfg.data.test_sources) == [
        "cuhk03", "viper", "prid2011", "ilids", "threedpes", "caviar4reid"
    ]  # fmt: skip
    assert list(cfg.data.train_sources) == ["cuhk03"] and cfg.data.test_trials == "all"
    assert cfg.trainer.max_epochs == 30 and cfg.cell == "bot_no_rea"
    swept = cfg.hydra.sweeper.params
    assert swept["+trick"] == "center_loss"
    assert set(swept["+leave_out"].split(",")) == {"all", "none", *PREDECESSOR}


def test_a_leave_out_cell_needs_the_full_bot():
    from reidtricks.errors import InputError
    from reidtricks.training.settings import check_leave_out_stage

    with pytest.raises(
        InputError, match=r"cell=bot_no_warmup \(from \+leave_out\) on stage baseline"
    ):
        check_leave_out_stage(compose_train("experiment=demo", "+leave_out=warmup"))
    check_leave_out_stage(
        compose_train("experiment=demo", "+leave_out=warmup", "+trick=center_loss")
    )
    check_leave_out_stage(compose_train("experiment=demo", "+leave_out=all", "+trick=center_loss"))
