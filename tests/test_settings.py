"""Typed settings: the YAML is the one place for defaults, every trick knob reaches its typed
field, and bad values fail once, at construction, naming the key."""

from __future__ import annotations

from dataclasses import MISSING, fields

import numpy as np
import pytest
from hydra import compose, initialize_config_dir

from reidtricks.cli.app import config_dir
from reidtricks.config import group_defaults
from reidtricks.errors import InputError
from reidtricks.evaluation.settings import EvalConfig
from reidtricks.training.settings import LossConfig, OptimConfig, typed_settings
from reidtricks.validate import require_bool, require_choice, require_int, require_number

TYPED = [(LossConfig, "loss", "default"), (OptimConfig, "optim", "adam"),
         (OptimConfig, "optim", "sgd"), (EvalConfig, "eval", "default")]  # fmt: skip


def compose_train(*overrides: str):
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        return compose("train", overrides=list(overrides))


@pytest.mark.parametrize(("cls", "group", "option"), TYPED)
def test_yaml_is_the_only_place_for_defaults(cls, group, option):
    for f in fields(cls):
        assert f.default is MISSING and f.default_factory is MISSING, f"{cls.__name__}.{f.name}"
    assert [f.name for f in fields(cls)] == list(group_defaults(group, option))


@pytest.mark.parametrize(
    ("stage", "where", "field", "value"),
    [
        ("baseline", "optim", "active_warmup_epochs", 0),
        ("warmup", "optim", "active_warmup_epochs", 10),
        ("label_smooth", "loss", "label_smoothing", 0.1),
        ("bnneck", "eval", "feature", "after_bn"),
        ("bnneck", "eval", "metric", "cosine"),
        ("center_loss", "loss", "center_weight", 0.0005),
        ("rerank", "eval", "rerank", True),
    ],
)
def test_every_trick_knob_reaches_its_typed_setting(stage, where, field, value):
    settings = typed_settings(compose_train(f"+trick={stage}"))
    assert getattr(settings[where], field) == value


def test_settings_are_exactly_the_composed_yaml():
    cfg = compose_train("+trick=center_loss", "experiment=ablation")
    settings = typed_settings(cfg)
    assert settings["loss"] == LossConfig(**cfg.loss)
    assert settings["optim"].milestones == (40, 70) and settings["optim"].warmup is True
    assert settings["eval_variants"]["rerank"] == EvalConfig(**{**cfg.eval, "rerank": True})


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("loss.label_smoothing=1.5", r"loss.label_smoothing=1.5: expected a number in \[0, 1\]"),
        ("loss.triplet_margin=-1", r"loss.triplet_margin=-1: expected a number >= 0"),
        ("loss.triplet_soft_margin=1", r"loss.triplet_soft_margin=1: expected true or false"),
        ("optim.lr=0", r"optim.lr=0: expected > 0"),
        ("optim.milestones=[7,4]", r"optim.milestones=\[7, 4\]: expected increasing epochs"),
        ("optim.warmup_epochs=2.5", r"optim.warmup_epochs=2.5: expected an integer >= 0"),
        ("optim.optimizer=adam", r"optim.optimizer='adam': expected a mapping with _target_"),
        ("eval.k1=0", r"eval.k1=0: expected an integer >= 1"),
        ("eval.flip=1", r"eval.flip=1: expected true or false"),
        ("eval.metric=l1", r"eval.metric='l1': expected one of \('euclidean'"),
        ("+eval_variants.rr={k1: 0}", r"eval_variants.rr.k1=0: expected an integer >= 1"),
        ("+eval_variants.rr={rernk: true}", r"eval_variants.rr.rernk: unknown setting"),
        ("+eval_variants.rr=true", r"eval_variants.rr=True: expected a mapping"),
        ("+loss.typo=1", r"loss.typo: unknown setting; expected one of \['id_weight'"),
    ],
)
def test_bad_values_fail_once_naming_the_key(override, message):
    with pytest.raises(InputError, match=message):
        typed_settings(compose_train(override))


def test_a_missing_key_is_named():
    values = group_defaults("loss")
    del values["center_lr"]
    with pytest.raises(InputError, match="loss: missing center_lr"):
        LossConfig.from_mapping(values)


def test_evaluate_eval_keys_are_eval_config_fields_all_null():
    import reidtricks.cli.evaluate  # noqa: F401  (registers evaluate's eval node)

    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        cfg = compose("evaluate", overrides=["ckpt=x", "eval.rerank=true"])
    names = [f.name for f in fields(EvalConfig)]
    assert list(cfg.eval) == names
    assert {k: v for k, v in cfg.eval.items() if v is not None} == {"rerank": True}


def test_checks_against_the_rule_written_out():
    assert require_int("k", np.int64(3), minimum=1) == 3
    for bad in (True, 2.0, "2", None, 0):
        with pytest.raises(InputError, match=r"^k=.*: expected an integer >= 1$"):
            require_int("k", bad, minimum=1)
    assert require_number("x", 1, 0.0, 1.0) == 1.0
    for bad in (False, float("nan"), 1.01, -0.01, "0.5"):
        with pytest.raises(InputError, match=r"^x=.*: expected a number in \[0, 1\]$"):
            require_number("x", bad, 0.0, 1.0)
    assert require_bool("b", False) is False
    with pytest.raises(InputError, match=r"^b=0: expected true or false$"):
        require_bool("b", 0)
    assert require_choice("c", "a", ("a", "b")) == "a"
    with pytest.raises(InputError, match=r"^c='z': expected one of \('a', 'b'\)$"):
        require_choice("c", "z", ("a", "b"))
