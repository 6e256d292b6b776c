"""Rebuilding the network and the test sets from a checkpoint's plain fields: build_reid_net's
arguments stored whole (older checkpoints without them still load), and the dataset allow-list
that follows what reidtricks.data.datasets exports."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from helpers import compose_train, new_net
from reidtricks.data import datasets
from reidtricks.data.splits import ReIDSplits
from reidtricks.errors import InputError
from reidtricks.evaluation.settings import EvalConfig
from reidtricks.inference.checkpoint import (
    build_net_from_checkpoint,
    checkpoint_spec,
    dataset_from_spec,
)
from reidtricks.models import build_reid_net


def checkpoint_of(net, config: dict, **info) -> dict:
    """A checkpoint dict as training writes it, for `net`."""
    return {
        "state_dict": {f"net.{k}": v for k, v in net.state_dict().items()},
        "reidtricks": {"config": config, "stage": "bnneck", "seed": 0, **info},
    }


def plain_config(*overrides: str) -> dict:
    cfg = compose_train("experiment=demo", "paths.output_dir=/out", *overrides)
    return OmegaConf.to_container(cfg, resolve=True)


def same_weights(a, b) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_a_checkpoint_without_model_args_still_loads():
    """The form written before model_args: the model config's keys and num_classes."""
    torch.manual_seed(0)
    net = new_net("resnet18", 5, last_stride=1, neck="bnneck")
    old = checkpoint_of(net, plain_config("+trick=bnneck"), num_classes=5)
    for key in ("ibn", "mixstyle", "pooling"):  # model keys added since: their off values
        del old["reidtricks"]["config"]["model"][key]
    spec = checkpoint_spec(old)
    assert dict(spec.net.args) == {
        "backbone": "resnet18", "num_classes": 5, "last_stride": 1, "neck": "bnneck",
        "pretrained": False, "pretrained_path": None, "pretrained_key_map": "by_name",
        "ibn": "none", "mixstyle": {"p": 0.0, "alpha": 0.1, "layers": ("layer1", "layer2")},
        "pooling": "avg",
    }  # fmt: skip
    assert same_weights(build_net_from_checkpoint(old), net)


def test_reading_a_checkpoint_needs_no_conf_folder(monkeypatch):
    """Missing test-time settings take EvalConfig's defaults, not conf/ composed at run time."""
    import reidtricks.cli.app as app

    old = checkpoint_of(new_net("resnet18", 5), plain_config("+trick=bnneck"), num_classes=5)
    del old["reidtricks"]["config"]["eval"]["k1"]

    def no_conf() -> str:
        raise AssertionError("conf/ was read")

    monkeypatch.setattr(app, "config_dir", no_conf)
    spec = checkpoint_spec(old)
    assert spec.eval == EvalConfig(feature="after_bn", metric="cosine")
    assert spec.eval.k1 == 20


def test_model_args_are_stored_whole_and_rebuild_the_network():
    """model_args wins over the model config (here they disagree on the last stride)."""
    torch.manual_seed(1)
    net = new_net("resnet18", 3, last_stride=1, neck="bnneck")
    args = {p: None for p in inspect.signature(build_reid_net).parameters}
    args.update(backbone="resnet18", num_classes=3, last_stride=1, neck="bnneck",
                pretrained=True, pretrained_path="/nowhere.pt", pretrained_key_map="by_name",
                ibn="none", mixstyle={"p": 0.0}, pooling="avg")  # fmt: skip
    ckpt = checkpoint_of(net, plain_config(), num_classes=3, model_args=args)
    assert checkpoint_spec(ckpt).net.args == args
    rebuilt = build_net_from_checkpoint(ckpt)  # no download, no file read: weights from ckpt
    assert same_weights(rebuilt, net)
    assert rebuilt.backbone.layer4[0].conv1.stride == (1, 1)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"gem_p": 3.0}, "stored model argument gem_p=3.0 is not one that "
                         "reidtricks.models.build_reid_net takes"),
        ({"neck": ["bnneck"]}, r"stored model argument neck=\['bnneck'\]: expected a value"),
        ({"num_classes": "3"}, "stored num_classes='3': expected a int"),
    ],
)  # fmt: skip
def test_a_stored_argument_the_function_does_not_take_is_refused(args, message):
    net = new_net("resnet18", 3)
    good = {"backbone": "resnet18", "num_classes": 3, "last_stride": 2, "neck": "none"}
    ckpt = checkpoint_of(net, plain_config(), num_classes=3, model_args={**good, **args})
    with pytest.raises(InputError, match=message) as err:
        checkpoint_spec(ckpt, "model.ckpt")
    assert str(err.value).startswith("model.ckpt: ") and "\n" not in str(err.value)


class ToyPeople:
    """A dataset class defined here, as a user would add one (see docs/EXTENDING.md)."""

    def __init__(self, root: str, shift: int = 0) -> None:
        self.root, self.shift = root, shift

    def load(self) -> ReIDSplits:
        raise AssertionError("not read in this test")


def test_the_dataset_allow_list_is_what_the_datasets_package_exports(monkeypatch, tmp_path):
    spec = {"_target_": "reidtricks.data.datasets.ToyPeople", "root": str(tmp_path), "shift": 2}
    with pytest.raises(InputError, match=r"has _target_='reidtricks.data.datasets.ToyPeople'"):
        dataset_from_spec("toy", spec, "model.ckpt")
    monkeypatch.setattr(datasets, "ToyPeople", ToyPeople, raising=False)
    monkeypatch.setattr(datasets, "__all__", [*datasets.__all__, "ToyPeople"])
    toy = dataset_from_spec("toy", spec, "model.ckpt", data_dir=Path("/elsewhere"))
    assert isinstance(toy, ToyPeople) and (toy.root, toy.shift) == ("/elsewhere", 2)
    with pytest.raises(InputError, match="field split='a' is not accepted"):
        dataset_from_spec("toy", {**spec, "split": "a"}, "model.ckpt")
