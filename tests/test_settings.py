"""Typed settings: each dataclass holds its defaults once (conf/ lists them as its groups' base
and writes only what differs), every trick knob reaches its typed field, and bad values fail
once, at construction, naming the key."""

from __future__ import annotations

import inspect
from dataclasses import MISSING, fields, replace
from pathlib import Path

import numpy as np
import pytest
import yaml

from helpers import compose_config, compose_train
from reidtricks.cli.schemas import SCHEMAS
from reidtricks.data.settings import DataConfig, TransformConfig
from reidtricks.errors import InputError
from reidtricks.evaluation.settings import EvalConfig
from reidtricks.models import build_reid_net
from reidtricks.models.settings import ModelConfig
from reidtricks.training.settings import LossConfig, OptimConfig, typed_settings
from reidtricks.validate import require_bool, require_choice, require_int, require_number

CONF = Path(__file__).resolve().parents[1] / "conf"
# The files of each group that the typed settings are the base of.
GROUP_FILES = {"data": ["_common.yaml"], "model": ["resnet50.yaml"], "loss": ["default.yaml"],
               "optim": ["adam.yaml", "sgd.yaml"], "eval": ["default.yaml"]}  # fmt: skip


def nested_defaults(cls) -> dict:
    """Field -> default, nested settings as their own mappings."""
    out = {}
    for f in fields(cls):
        assert f.default is not MISSING or f.default_factory is not MISSING, f"{cls}.{f.name}"
        value = f.default if f.default is not MISSING else f.default_factory()
        out[f.name] = (
            nested_defaults(type(value)) if hasattr(value, "__dataclass_fields__") else value
        )
    return out


def same(a, b) -> bool:
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return list(a) == list(b)
    return a == b


@pytest.mark.parametrize("group", list(SCHEMAS))
def test_the_yaml_writes_no_default_of_the_typed_settings(group):
    """Every field has its default in the dataclass; the group's YAML lists the base first and
    repeats none of those defaults (a value there differs from the dataclass's)."""
    defaults = nested_defaults(SCHEMAS[group])
    for name in GROUP_FILES[group]:
        raw = yaml.safe_load((CONF / group / name).read_text())
        assert raw["defaults"][0] in ("_base", "adam"), name
        for key, value in raw.items():
            if isinstance(value, dict) and isinstance(defaults.get(key), dict):
                for sub, v in value.items():
                    assert not same(v, defaults[key].get(sub, MISSING)), f"{group}.{key}.{sub}"
            elif key in defaults:
                assert not same(value, defaults[key]), f"{name}: {key}"


@pytest.mark.parametrize("group", list(SCHEMAS))
def test_the_composed_group_has_exactly_the_settings_fields(group):
    cfg = compose_train()
    wiring = {"_target_", "_partial_", "train_sources", "test_sources"}
    assert [k for k in cfg[group] if k not in wiring] == [f.name for f in fields(SCHEMAS[group])]


def test_model_settings_are_build_reid_net_arguments_but_num_classes():
    params = [p for p in inspect.signature(build_reid_net).parameters if p != "num_classes"]
    assert [f.name for f in fields(ModelConfig)] == params
    for p in inspect.signature(build_reid_net).parameters.values():
        assert p.default is inspect.Parameter.empty, f"build_reid_net repeats a default: {p}"


def test_the_paper_defaults():
    """The standard baseline of the paper, written out (docs/METHOD.md)."""
    data, model, optim = DataConfig(), ModelConfig(), OptimConfig()
    assert (data.sampler.p, data.sampler.k, data.transform.height, data.transform.width) == (
        16, 4, 256, 128)  # fmt: skip
    assert (data.transform.pad, data.transform.flip_prob, data.transform.erasing_prob) == (
        10,
        0.5,
        0,
    )
    assert (model.backbone, model.last_stride, model.neck) == ("resnet50", 2, "none")
    assert (optim.lr, optim.milestones, optim.warmup) == (3.5e-4, (40, 70), False)
    assert (LossConfig().label_smoothing, LossConfig().center_weight) == (0.0, 0.0)
    assert (EvalConfig().feature, EvalConfig().metric, EvalConfig().rerank) == (
        "before_bn", "euclidean", False)  # fmt: skip


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
        ("optim.bias_lr_factor=0", r"optim.bias_lr_factor=0: expected > 0"),  # as the LR itself
        ("optim.gamma=0", r"optim.gamma=0: expected > 0"),
        ("optim.lr=inf", r"optim.lr=inf: expected a finite number > 0"),
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


def test_a_partial_mapping_takes_the_defaults_for_the_rest():
    loss = LossConfig.from_mapping({"center_weight": 0.25})
    assert (loss.center_weight, loss.triplet_margin, loss.label_smoothing) == (0.25, 0.3, 0.0)
    data = DataConfig.from_mapping({"transform": {"height": 64}, "_target_": "x"})
    assert data.transform == replace(TransformConfig(), height=64)
    with pytest.raises(InputError, match=r"data.transform.heigth: unknown setting"):
        DataConfig.from_mapping({"transform": {"heigth": 64}})


def test_evaluate_eval_keys_are_eval_config_fields_all_null():
    cfg = compose_config("evaluate", "ckpt=x", "eval.rerank=true")
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
