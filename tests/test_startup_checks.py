"""Typo'd data / model keys and bad values fail at start-up, as one line naming the key, before
the run folder or any other file is written (and before any dataset is read)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import compose_train, tiny_overrides
from reidtricks.cli.train import train
from reidtricks.data.settings import DataConfig
from reidtricks.errors import InputError
from reidtricks.models.settings import ModelConfig
from reidtricks.training.settings import check_run_settings

REPO = Path(__file__).resolve().parents[1]
BAD = [
    (
        "+data.sampler.pp=8",
        "data.sampler.pp: unknown setting; expected one of ['p', 'k', 'source_balance']",
    ),
    ("+data.loader.num_worker=3", "data.loader.num_worker: unknown setting; expected one of"),
    ("+data.transform.heigth=64", "data.transform.heigth: unknown setting; expected one of"),
    ("+model.backbon=x", "model.backbon: unknown setting; expected one of ['backbone'"),
    ("data.loader.num_workers=-1", "data.loader.num_workers=-1: expected an integer >= 0"),
    ("data.loader.test_batch_size=0", "data.loader.test_batch_size=0: expected an integer >= 1"),
    ("model.neck=bn", "model.neck='bn': expected one of ('none', 'bnneck')"),
    ("data.verify_images=1", "data.verify_images=1: expected true or false"),
]


@pytest.mark.parametrize(("override", "message"), BAD)
def test_train_refuses_before_writing_anything(override, message, tmp_path):
    # The data folder does not exist: reading it first would fail with another message.
    cfg = compose_train(*tiny_overrides(tmp_path / "no-data", tmp_path / "run"), override)
    with pytest.raises(InputError) as err:
        train(cfg)
    assert str(err.value).startswith(message)
    assert "\n" not in str(err.value)
    assert list(tmp_path.iterdir()) == []


def test_the_datasets_are_left_to_their_classes():
    """A dataset field still to be given (`root: ???` of conf/dataset/folder.yaml) or one the
    settings do not know (`split`) is not the start-up check's business."""
    cfg = compose_train("data=folder", "data.train_sources.folder.split=a")
    checked = check_run_settings(cfg)
    assert checked["data"] == DataConfig(seed=0)
    assert checked["model"] == ModelConfig()


@pytest.mark.slow  # a process of its own; the same checks run in-process above
def test_the_command_refuses_in_one_line_before_hydra_makes_the_run_folder(tmp_path):
    logs = tmp_path / "logs"
    command = [sys.executable, "-m", "reidtricks.train", "experiment=demo",
               f"paths.data_dir={tmp_path / 'no-data'}", f"paths.log_dir={logs}",
               "+data.sampler.pp=8"]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}
    proc = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: data.sampler.pp: unknown setting")
    assert not logs.exists()
