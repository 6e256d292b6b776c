"""Strict checks of the extract / search / export options (conf/<command>.yaml): `flip=no` is
an error naming the key, never `bool("no") == True`; and the commands' `threads`, applied."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

from reidtricks.evaluation import METRICS
from reidtricks.evaluation.settings import FEATURE_CHOICES
from reidtricks.validate import require_bool, require_choice, require_int, require_number

Check = Callable[[str, Any], Any]


def _optional(check: Check) -> Check:
    """null (keep the checkpoint's setting / no limit) or what `check` accepts."""

    def checked(key: str, value: Any) -> Any:
        return None if value is None else check(key, value)

    return checked


_COMMON: dict[str, Check] = {
    "feature": _optional(partial(require_choice, choices=FEATURE_CHOICES)),
    "flip": _optional(require_bool),
    "batch_size": partial(require_int, minimum=1),
    "num_workers": partial(require_int, minimum=0),
    "progress": require_bool,
    "threads": _optional(partial(require_int, minimum=1)),
}
OPTIONS: dict[str, dict[str, Check]] = {
    "extract": {
        **_COMMON,
        "normalize": require_bool,
        "skip_bad": require_bool,
        "overwrite": require_bool,
    },
    "search": {
        **_COMMON,
        "topk": partial(require_int, minimum=1),
        "rerank": require_bool,
        "metric": _optional(partial(require_choice, choices=METRICS)),
        "skip_bad": require_bool,
        "cache": require_bool,
        "plot_queries": partial(require_int, minimum=0),
        "print_queries": partial(require_int, minimum=0),
    },
    "export": {
        **_COMMON,
        "format": partial(require_choice, choices=("onnx",)),
        "overwrite": require_bool,
        "opset": partial(require_int, minimum=1),
        "dynamic_batch": require_bool,
        "parity.atol": require_number,
        "parity.topk": partial(require_int, minimum=1),
        "parity.allow_near_ties": require_bool,
        "parity.max_query": _optional(partial(require_int, minimum=1)),
        "parity.max_gallery": _optional(partial(require_int, minimum=1)),
    },
}


def check_options(cfg: DictConfig, command: str) -> None:
    """Raise InputError naming the first option of `command` whose value has the wrong type or
    range (true/false only for switches, integers for counts)."""
    for key, check in OPTIONS[command].items():
        value = OmegaConf.select(cfg, key, default=None)
        check(key, value)


def apply_threads(cfg: DictConfig) -> None:
    """torch's intra-op threads set to `threads` (null: left at torch's default, one per core),
    as `train` does; a value that is not an integer >= 1 is an InputError naming the key."""
    threads = cfg.get("threads")
    if threads is not None:
        torch.set_num_threads(require_int("threads", threads, minimum=1))
