"""extract / search / export options are checked strictly: `flip=no` or `topk=5x` is a one-line
error naming the key, before the checkpoint is read (it does not exist here)."""

from __future__ import annotations

import pytest

from helpers import compose_config
from reidtricks.errors import InputError

COMMON = [
    ("flip", "no"), ("flip", "1"), ("feature", "middle"), ("batch_size", "abc"),
    ("batch_size", "0"), ("batch_size", "2.5"), ("num_workers", "-1"), ("num_workers", "two"),
    ("progress", "yes"),
]  # fmt: skip
BAD = {
    "extract": [*COMMON, ("normalize", "no"), ("normalize", "0"), ("skip_bad", "off")],
    "search": [
        *COMMON, ("rerank", "no"), ("cache", "no"), ("topk", "5x"), ("topk", "0"),
        ("metric", "manhattan"), ("skip_bad", "n"), ("plot_queries", "-1"),
        ("print_queries", "ten"),
    ],
    "export": [
        *COMMON, ("format", "tflite"), ("opset", "x"), ("dynamic_batch", "no"),
        ("parity.atol", "tight"), ("parity.topk", "0"), ("parity.allow_near_ties", "no"),
        ("parity.max_query", "0"), ("parity.max_gallery", "some"),
    ],
}  # fmt: skip
CASES = [(command, key, value) for command, bad in BAD.items() for key, value in bad]


def _cfg(command: str, tmp_path, *overrides: str):
    """The command's config for a checkpoint that does not exist."""
    inputs = {"extract": ["images=x"], "search": ["query=x", "gallery=x"], "export": []}
    base = [f"ckpt={tmp_path / 'missing.ckpt'}", f"paths.output_dir={tmp_path / 'out'}"]
    return compose_config(command, *base, *inputs[command], *overrides)


def _run(command: str, cfg) -> None:
    from reidtricks.cli.export import export_checkpoint
    from reidtricks.cli.extract import extract_folder
    from reidtricks.cli.search import search_gallery

    {"extract": extract_folder, "search": search_gallery, "export": export_checkpoint}[command](cfg)


@pytest.mark.parametrize("command,key,value", CASES)
def test_a_bad_option_value_is_one_line_naming_the_key(command, key, value, tmp_path):
    cfg = _cfg(command, tmp_path, f"{key}={value}")
    with pytest.raises(InputError, match=rf"^{key}=.*: expected ") as err:
        _run(command, cfg)
    assert "\n" not in str(err.value) and "missing.ckpt" not in str(err.value)
    assert not (tmp_path / "out").exists()


@pytest.mark.slow  # runs every command
@pytest.mark.parametrize("command", list(BAD))
def test_good_values_pass_the_checks(command, tmp_path):
    good = ["flip=false", "feature=after_bn", "batch_size=3", "num_workers=0", "progress=false"]
    cfg = _cfg(command, tmp_path, *good)
    with pytest.raises(InputError, match=r"missing\.ckpt does not exist"):
        _run(command, cfg)


def test_api_switches_are_strict():
    from helpers import new_net
    from reidtricks.inference.extractor import InferenceNet

    net = new_net("resnet18", 3, last_stride=1, neck="bnneck")
    with pytest.raises(InputError, match=r"^flip='no': expected true or false"):
        InferenceNet(net, "after_bn", flip="no")
    assert InferenceNet(net, "after_bn", flip=False).flip is False


@pytest.mark.parametrize("command", list(BAD))
def test_the_run_settings_come_from_one_place(command):
    """device, batch_size, ... of the three commands and the Python API's defaults are those of
    ExtractionConfig; only export's parity batch is its own (32)."""
    import inspect
    from dataclasses import asdict

    from reidtricks.inference import FeatureExtractor
    from reidtricks.inference.settings import ExtractionConfig

    cfg = compose_config(command, "ckpt=x")
    expected = {**asdict(ExtractionConfig()), **({"batch_size": 32} if command == "export" else {})}
    assert {key: cfg[key] for key in expected} == expected
    signature = inspect.signature(FeatureExtractor.from_checkpoint).parameters
    assert signature["device"].default == ExtractionConfig.device
    assert signature["batch_size"].default == ExtractionConfig.batch_size
