"""The Hydra configs' defaults as plain data, and typed settings built from them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import fields
from typing import Any, TypeVar

from omegaconf import OmegaConf

from reidtricks.errors import InputError

T = TypeVar("T")


def group_defaults(group: str, option: str = "default") -> dict[str, Any]:
    """The values of conf/GROUP/OPTION.yaml, composed as training composes them (its defaults
    list included): the one place defaults live, for code that builds settings without Hydra."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from reidtricks.cli.app import config_dir

    overrides = [f"{group}={option}"]
    if GlobalHydra.instance().is_initialized():  # inside a Hydra app: its search path has conf/
        cfg = compose(config_name="train", overrides=overrides)
    else:
        with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
            cfg = compose(config_name="train", overrides=overrides)
    return OmegaConf.to_container(cfg[group], resolve=True)


def typed_config(cls: type[T], values: Mapping[str, Any], key: str) -> T:
    """`cls(**values)` for a dataclass of settings, after checking that `values` has exactly its
    fields; one line naming `key.FIELD` otherwise (the dataclass checks the values themselves)."""
    if not isinstance(values, Mapping):
        raise InputError(f"{key}={values!r}: expected a mapping of settings")
    names = [f.name for f in fields(cls)]
    unknown = sorted(set(values) - set(names))
    if unknown:
        raise InputError(f"{key}.{unknown[0]}: unknown setting; expected one of {names}")
    missing = [name for name in names if name not in values]
    if missing:
        raise InputError(f"{key}: missing {', '.join(missing)} (the defaults are in conf/)")
    return cls(**values)
