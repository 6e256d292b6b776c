"""A trained model from a checkpoint file, treated as data: weights_only=True, and the network and
test sets rebuilt from known plain fields with the project's own functions. Nothing read from the
file may name code to run: a `_target_` other than the project's own is refused with one line."""

from __future__ import annotations

import inspect
import os
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import torch

from reidtricks.data import datasets
from reidtricks.data.settings import TransformConfig
from reidtricks.errors import InputError, MissingInputError, error_summary
from reidtricks.evaluation.settings import EvalConfig
from reidtricks.models import ReIDNet, build_reid_net
from reidtricks.models.settings import WIRING_KEYS, ModelConfig

NET_TARGET = "reidtricks.models.build_reid_net"
DATASETS_MODULE = "reidtricks.data.datasets"
Scalar = (str, int, float, bool, type(None))


def is_plain_setting(value: Any) -> bool:
    """A stored model argument: a scalar, or a mapping of scalars and lists of scalars (a
    nested setting such as model.mixstyle)."""
    if isinstance(value, Scalar):
        return True
    return isinstance(value, Mapping) and all(
        isinstance(k, str)
        and (
            isinstance(v, Scalar)
            or (isinstance(v, list | tuple) and all(isinstance(x, Scalar) for x in v))
        )
        for k, v in value.items()
    )


def dataset_classes() -> dict[str, type]:
    """`_target_` -> class for every dataset class that reidtricks.data.datasets exports
    (`__all__`): adding a class there is all it takes for its checkpoints to be accepted."""
    exported = (getattr(datasets, name) for name in datasets.__all__)
    return {f"{DATASETS_MODULE}.{cls.__name__}": cls for cls in exported if isinstance(cls, type)}


def known_targets() -> frozenset[str]:
    """The `_target_`s that the model and data configs of a reidtricks run hold; anything else
    there is refused. (The rest of the stored config, trainer, loggers, ..., is never read back.)"""
    return frozenset({NET_TARGET, "reidtricks.data.datamodule.ReIDDataModule", *dataset_classes()})


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load a reidtricks checkpoint safely; one-line errors for a missing, foreign or unsafe file."""
    if "://" in str(path):
        raise InputError(
            f"checkpoint {path}: is a URL; download the file and give its local path (a .ckpt)"
        )
    path = Path(path)
    if path.is_dir():
        raise InputError(f"checkpoint {path}: is a folder; expected a .ckpt file in it")
    if path.exists() and not path.is_file():
        raise InputError(f"checkpoint {path}: is not a regular file (a device or pipe?)")
    if not path.is_file():
        raise MissingInputError(f"checkpoint {path} does not exist (set ckpt=PATH to a .ckpt file)")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # truncated file, not a torch file, pickled objects
        raise InputError(
            f"{path}: cannot be read as a weights-only torch checkpoint ({error_summary(err)})"
        ) from err
    if (
        not isinstance(checkpoint, dict)
        or not isinstance(checkpoint.get("reidtricks"), dict)
        or "state_dict" not in checkpoint
    ):
        raise InputError(
            f"{path} is not a reidtricks training checkpoint "
            "(expected the keys 'state_dict' and 'reidtricks')"
        )
    return checkpoint


def reject_foreign_targets(node: Any, source: str, where: str = "config") -> None:
    """One-line error if any `_target_` in a stored config is not one reidtricks itself writes."""
    if isinstance(node, Mapping):
        target = node.get("_target_")
        if target is not None and target not in known_targets():
            raise InputError(
                f"{source}: {where}._target_={target!r} is not a reidtricks class; a checkpoint "
                "is data and may not name code to run (refused)"
            )
        for key, value in node.items():
            reject_foreign_targets(value, source, f"{where}.{key}")
    elif isinstance(node, list | tuple):
        for i, value in enumerate(node):
            reject_foreign_targets(value, source, f"{where}[{i}]")


def _field(cfg: Mapping[str, Any], key: str, kind: type, source: str) -> Any:
    """A stored field of the expected type (bool is not accepted as int)."""
    value = cfg.get(key)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise InputError(f"{source}: stored {key}={value!r}: expected a {kind.__name__}")
    return value


@dataclass(frozen=True)
class NetSpec:
    """What rebuilds the network: every keyword argument of `build_reid_net` it was built with."""

    args: Mapping[str, Any]

    @property
    def backbone(self) -> str:
        return self.args["backbone"]

    @property
    def num_classes(self) -> int:
        return self.args["num_classes"]

    @property
    def last_stride(self) -> int:
        return self.args["last_stride"]

    @property
    def neck(self) -> str:
        return self.args["neck"]

    def build(self) -> ReIDNet:
        """The network with random weights (no ImageNet download); the checkpoint fills them."""
        return build_reid_net(**{**self.args, "pretrained": False, "pretrained_path": None})


def net_args(info: Mapping[str, Any], model: Mapping[str, Any], source: str) -> dict[str, Any]:
    """build_reid_net's arguments as stored (`model_args`); for a checkpoint older than that field,
    the model config's keys and num_classes. Arguments added since (ibn, mixstyle, pooling) take
    ModelConfig's defaults, every trick off. One line for any argument the function does not take."""
    stored = info.get("model_args")
    if stored is None:  # older checkpoints: the model config (its wiring keys left out)
        stored = {k: v for k, v in model.items() if k not in WIRING_KEYS}
        stored["num_classes"] = info.get("num_classes")
    if not isinstance(stored, Mapping):
        raise InputError(f"{source}: stored model_args={stored!r}: expected a mapping")
    params = inspect.signature(build_reid_net).parameters
    for key, value in stored.items():
        if key not in params:
            raise InputError(
                f"{source}: stored model argument {key}={value!r} is not one that {NET_TARGET} "
                f"takes (expected some of {list(params)})"
            )
        if not is_plain_setting(value):
            raise InputError(f"{source}: stored model argument {key}={value!r}: expected a value")
    args = {**ModelConfig().as_kwargs(), **stored}
    for key, kind in (("backbone", str), ("last_stride", int), ("neck", str), ("num_classes", int)):
        _field(args, key, kind, source)
    try:  # the settings' own checks (a stored ibn, mixstyle or pooling value, ...)
        ModelConfig.from_mapping({k: v for k, v in args.items() if k != "num_classes"})
    except InputError as err:
        raise InputError(f"{source}: stored {err}") from None
    return args


@dataclass(frozen=True)
class InputSpec:
    """The test-time input: image size and normalisation the network was trained with."""

    height: int
    width: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]


@dataclass(frozen=True)
class CheckpointSpec:
    """The plain fields of a checkpoint that evaluation and inference use."""

    net: NetSpec
    input: InputSpec
    eval: (
        EvalConfig  # test-time settings it was trained with (EvalConfig defaults fill missing ones)
    )
    stage: str | None
    data: dict[str, Any]  # the stored data config (plain values, targets checked)


def checkpoint_spec(checkpoint: Mapping[str, Any], source: str = "checkpoint") -> CheckpointSpec:
    """Read the known fields of a loaded checkpoint (see `load_checkpoint`), checking their types."""
    info = checkpoint["reidtricks"]
    config = info.get("config")
    if not isinstance(config, Mapping) or not isinstance(config.get("model"), Mapping):
        raise InputError(
            f"{source}: the checkpoint holds no model config (reidtricks.config.model)"
        )
    for part in ("model", "data"):  # the parts evaluation and inference rebuild from
        reject_foreign_targets(config.get(part), source, part)
    model = config["model"]
    if model.get("_target_") != NET_TARGET:
        raise InputError(
            f"{source}: model._target_={model.get('_target_')!r}, expected {NET_TARGET}"
        )
    net = NetSpec(net_args(info, model, source))
    data = config.get("data") if isinstance(config.get("data"), Mapping) else {}
    transform = data.get("transform", {}) if isinstance(data.get("transform"), Mapping) else {}
    mean = transform.get("mean", TransformConfig.mean)  # older checkpoints store no mean / std
    std = transform.get("std", TransformConfig.std)
    for key, value in (("mean", mean), ("std", std)):
        if not isinstance(value, list | tuple) or len(value) != 3:
            raise InputError(f"{source}: stored data.transform.{key}={value!r}: expected 3 numbers")
    inp = InputSpec(
        height=int(_field(transform, "height", int, source)),
        width=int(_field(transform, "width", int, source)),
        mean=tuple(float(v) for v in mean),
        std=tuple(float(v) for v in std),
    )
    stored_eval = config.get("eval") if isinstance(config.get("eval"), Mapping) else {}
    known = {f.name for f in fields(EvalConfig)}
    stored_eval = {k: v for k, v in stored_eval.items() if k in known and isinstance(v, Scalar)}
    eval_cfg = EvalConfig.from_mapping(stored_eval, f"{source}: eval")  # defaults fill the rest
    stage = info.get("stage") if isinstance(info.get("stage"), str) else None
    return CheckpointSpec(net, inp, eval_cfg, stage, dict(data))


def build_net_from_checkpoint(checkpoint: Mapping[str, Any], source: str = "checkpoint") -> ReIDNet:
    """The ReIDNet the checkpoint was trained with, with its weights (no ImageNet download)."""
    net = checkpoint_spec(checkpoint, source).net.build()
    state = {
        key.removeprefix("net."): value
        for key, value in checkpoint["state_dict"].items()
        if key.startswith("net.")
    }
    expected = net.state_dict()
    for key, value in expected.items():
        if key not in state:
            raise InputError(f"{source}: weight {key} is missing from the checkpoint")
        if state[key].shape != value.shape:
            raise InputError(
                f"{source}: weight {key} has shape {tuple(state[key].shape)}, "
                f"the model expects {tuple(value.shape)}"
            )
    unexpected = sorted(set(state) - set(expected))
    if unexpected:
        raise InputError(f"{source}: unexpected weights {unexpected[:3]} for this model")
    for key in expected:  # NaN / inf weights would give NaN features and empty rankings
        value = state[key]
        if value.is_floating_point() and not bool(torch.isfinite(value).all()):
            bad = int((~torch.isfinite(value)).sum())
            raise InputError(
                f"{source}: weight {key} has {bad} non-finite value(s) (NaN or inf) of "
                f"{value.numel()}; the checkpoint is unusable (did training diverge?)"
            )
    net.load_state_dict(state)
    return net


def dataset_from_spec(name: str, spec: Any, source: str, data_dir: str | None = None) -> Any:
    """One stored dataset entry rebuilt with the project's own class; its fields must be plain
    values that the class takes. data_dir, when given, replaces the stored root (not for
    `folder` datasets, whose root is the dataset itself)."""
    if not isinstance(spec, Mapping):
        raise InputError(f"{source}: stored dataset {name!r} is not a mapping")
    classes = dataset_classes()
    cls = classes.get(spec.get("_target_"))
    if cls is None:
        raise InputError(
            f"{source}: dataset {name!r} has _target_={spec.get('_target_')!r}; expected one of "
            f"{sorted(classes)}"
        )
    params = set(inspect.signature(cls).parameters)
    kwargs = {k: v for k, v in spec.items() if k != "_target_"}
    for key, value in kwargs.items():
        if key not in params or not isinstance(value, Scalar):
            raise InputError(f"{source}: dataset {name!r} field {key}={value!r} is not accepted")
    if data_dir is not None and cls is not datasets.FolderDataset:
        kwargs["root"] = os.fspath(data_dir)
    return cls(**kwargs)


def checkpoint_test_sources(
    spec: CheckpointSpec, source: str, data_dir: str | None = None
) -> dict[str, Any]:
    """The checkpoint's own test sets (name -> dataset), rebuilt by `dataset_from_spec`."""
    return _sources(spec, "test_sources", source, data_dir)


def generated_under(sources: Mapping[str, Any], data_dir: str | Path) -> dict[str, Any]:
    """The sets, with each generated one (synthetic) read at its stored root only when a complete
    copy is there, else generated under `data_dir`: a checkpoint never chooses where to write."""
    out = {}
    for name, dataset in sources.items():
        if isinstance(dataset, datasets.SyntheticReID) and not dataset.is_complete():
            dataset = datasets.SyntheticReID(data_dir, preset=dataset.preset, seed=dataset.seed)
        out[name] = dataset
    return out


def checkpoint_train_sources(
    spec: CheckpointSpec, source: str, data_dir: str | None = None
) -> dict[str, Any]:
    """The checkpoint's training sets (name -> dataset), rebuilt by `dataset_from_spec`."""
    return _sources(spec, "train_sources", source, data_dir)


def _sources(spec: CheckpointSpec, key: str, source: str, data_dir: str | None) -> dict[str, Any]:
    stored = spec.data.get(key)
    if not isinstance(stored, Mapping) or not stored:
        raise InputError(f"{source}: the checkpoint names no data.{key}")
    return {name: dataset_from_spec(name, s, source, data_dir) for name, s in stored.items()}
