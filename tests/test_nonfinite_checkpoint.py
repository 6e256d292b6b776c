"""A checkpoint with NaN / inf weights is refused with one line naming the file and the first
non-finite weight by every command that loads it for inference or evaluation."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from helpers import compose_config, new_net, tiny_overrides
from reidtricks.errors import InputError
from reidtricks.inference.checkpoint import build_net_from_checkpoint

REPO = Path(__file__).resolve().parents[1]


def _compose(name: str, *overrides: str):
    return compose_config(name, *overrides)


@pytest.fixture(scope="module")
def poisoned(tiny_data_dir, tmp_path_factory) -> tuple[Path, str]:
    """An untrained BNNeck ResNet-18 checkpoint whose 2nd and 5th float weights hold NaN / inf;
    returns (file, name of the first poisoned weight in the network's order)."""
    out = tmp_path_factory.mktemp("poisoned")
    cfg = _compose("train", *tiny_overrides(tiny_data_dir, out), "+trick=bnneck")
    net = new_net("resnet18", 12, last_stride=1, neck="bnneck")
    state = net.state_dict()
    floats = [k for k, v in state.items() if v.is_floating_point()]
    state[floats[4]].view(-1)[3] = float("inf")
    state[floats[1]].view(-1)[0] = float("nan")
    checkpoint = {
        "state_dict": {f"net.{k}": v for k, v in state.items()},
        "reidtricks": {
            "config": OmegaConf.to_container(cfg, resolve=True),
            "stage": "bnneck",
            "seed": 0,
            "num_classes": 12,
        },
    }
    path = out / "nan.ckpt"
    torch.save(checkpoint, path)
    return path, floats[1]


def test_loading_names_the_first_non_finite_weight(poisoned):
    path, first = poisoned
    checkpoint = torch.load(path, weights_only=True)
    with pytest.raises(InputError, match=rf"^{path}: weight {first} has 1 non-finite value"):
        build_net_from_checkpoint(checkpoint, str(path))
    # inf alone is refused as well
    checkpoint["state_dict"][f"net.{first}"].nan_to_num_(0.0)
    with pytest.raises(InputError, match=r"non-finite value\(s\) \(NaN or inf\)"):
        build_net_from_checkpoint(checkpoint, str(path))


@pytest.mark.slow  # runs every command
def test_every_command_refuses_it_and_writes_nothing(poisoned, tiny_data_dir, tmp_path):
    from reidtricks.cli.evaluate import evaluate_checkpoint
    from reidtricks.cli.export import export_checkpoint
    from reidtricks.cli.extract import extract_folder
    from reidtricks.cli.search import search_gallery

    path, first = poisoned
    split = tiny_data_dir / "synthetic-tiny-seed0"
    runs = {
        "extract": (extract_folder, [f"images={split / 'query'}"]),
        "search": (search_gallery, [f"query={split / 'query'}",
                                    f"gallery={split / 'bounding_box_test'}",
                                    f"cache_dir={tmp_path / 'out_search' / 'cache'}"]),
        "export": (export_checkpoint, [f"images={split / 'query'}"]),
        "evaluate": (evaluate_checkpoint, ["trainer=cpu", "+trainer.enable_progress_bar=false"]),
    }  # fmt: skip
    for name, (command, args) in runs.items():
        out = tmp_path / f"out_{name}"
        extra = [] if name == "evaluate" else ["num_workers=0", "progress=false"]
        cfg = _compose(name, f"ckpt={path}", f"paths.output_dir={out}", *extra, *args)
        with pytest.raises(InputError, match=rf"^{path}: weight {first} has 1 non-finite"):
            command(cfg)
        assert not out.exists(), f"{name} wrote {list(out.rglob('*'))}"


@pytest.mark.slow
def test_extract_cli_exits_1_with_one_line(poisoned, tiny_data_dir, tmp_path):
    path, first = poisoned
    images = tiny_data_dir / "synthetic-tiny-seed0" / "query"
    command = [sys.executable, "-m", "reidtricks.extract", f"ckpt={path}", f"images={images}",
               f"paths.log_dir={tmp_path / 'logs'}", "num_workers=0"]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}
    proc = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith(f"error: {path}: weight {first} has")
    assert not list((tmp_path / "logs").rglob("features.npz"))


def test_resuming_it_is_refused_before_any_step(poisoned):
    from reidtricks.training.run_safety import check_resume_fits

    path, first = poisoned
    net = new_net("resnet18", 12, last_stride=1, neck="bnneck")
    module = torch.nn.Module()
    module.net = net  # the state-dict keys of a ReIDModule holding this network
    with pytest.raises(
        InputError, match=rf"^ckpt_path={path}: weight net.{first} has 1 non-finite"
    ):
        check_resume_fits(path, module, max_epochs=10)
