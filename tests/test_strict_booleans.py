"""Every true/false setting is strict: `no`, `false`, `off`, `0`, `1` and `''` (strings or
integers, as Hydra may pass them) are one-line errors naming the key, never `bool("no") == True`.
The test walks every bool field of the typed settings and every bool argument of the datasets."""

from __future__ import annotations

import dataclasses
import inspect
import math

import numpy as np
import pytest

from reidtricks.data.settings import DataConfig, LoaderConfig, SamplerConfig, TransformConfig
from reidtricks.errors import InputError
from reidtricks.evaluation.settings import EvalConfig
from reidtricks.inference.checkpoint import dataset_classes
from reidtricks.models.settings import ModelConfig
from reidtricks.training.settings import LossConfig, OptimConfig

NOT_BOOLEANS = ["no", "false", "off", "0", "1", "", 0, 1]
SETTINGS = [DataConfig, SamplerConfig, TransformConfig, LoaderConfig, ModelConfig, LossConfig,
            OptimConfig, EvalConfig]  # fmt: skip


def bool_fields(cls: type) -> list[str]:
    return [f.name for f in dataclasses.fields(cls) if f.type in ("bool", bool)]


def test_the_walk_finds_the_known_switches():
    found = {(cls.__name__, name) for cls in SETTINGS for name in bool_fields(cls)}
    assert {("OptimConfig", "warmup"), ("DataConfig", "test_on_trained_ids"),
            ("LoaderConfig", "pin_memory"), ("ModelConfig", "pretrained")} <= found  # fmt: skip
    classes = {cls.__name__: cls for cls in dataset_classes().values()}
    assert "combineall" in inspect.signature(classes["VIPeR"]).parameters


@pytest.mark.parametrize("value", NOT_BOOLEANS)
@pytest.mark.parametrize(
    ("cls", "name"), [(cls, name) for cls in SETTINGS for name in bool_fields(cls)],
    ids=lambda x: getattr(x, "__name__", x),
)  # fmt: skip
def test_every_bool_setting_refuses_words_and_numbers(cls, name, value):
    with pytest.raises(InputError, match=rf"{name}={value!r}: expected true or false"):
        cls(**{name: value})


DATASET_BOOLS = [
    (cls, p.name)
    for cls in dataset_classes().values()
    for p in inspect.signature(cls).parameters.values()
    if p.annotation in ("bool", bool)
]


@pytest.mark.parametrize("value", NOT_BOOLEANS)
@pytest.mark.parametrize(("cls", "name"), DATASET_BOOLS, ids=str)
def test_every_bool_argument_of_the_datasets_refuses_words_and_numbers(tmp_path, cls, name, value):
    with pytest.raises(InputError, match=rf"{name}={value!r}: expected true or false"):
        cls(tmp_path, **{name: value})


@pytest.mark.parametrize(
    "override",
    ["data.train_sources.synthetic.combineall=no", "channels_last=no", "run_test=no",
     "data.train_sources.synthetic.combineall=1", "optim.lr=inf",
     "optim.classifier_lr_factor=inf", "optim.classifier_lr_factor=1e308"],
)  # fmt: skip
def test_the_training_command_refuses_them_before_any_folder(tmp_path, override):
    from helpers import compose_train
    from reidtricks.cli.train import train

    out = tmp_path / "run"
    cfg = compose_train("experiment=demo", f"paths.output_dir={out}", f"paths.data_dir={tmp_path}",
                        override)  # fmt: skip
    key = override.split("=")[0].removeprefix("optim.")
    with pytest.raises(InputError, match=key.split(".")[-1]):
        train(cfg)
    assert not out.exists()


def test_group_lrs_must_be_finite():
    assert math.isinf(np.float32(1e308 * 3.5e-4))  # the LR as float32 weights see it
    with pytest.raises(InputError, match="a group's LR is not a finite float32"):
        OptimConfig(lr=1e-3, classifier_lr_factor=1e308)
    OptimConfig(lr=1e-3, classifier_lr_factor=1e30)  # large, but finite in float32: accepted
