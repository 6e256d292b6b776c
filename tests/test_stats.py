"""`python -m reidtricks.stats`: statistics tables / JSON of a data config, no run folder."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import compose_config
from reidtricks.cli.stats import run_stats
from reidtricks.errors import InputError
from test_classic_datasets import make_caviar, make_prid, make_viper

SRC = Path(__file__).resolve().parents[1] / "src"


def stats(*overrides: str) -> str:
    return run_stats(compose_config("stats", *overrides))


@pytest.mark.slow
def test_stats_command_prints_tables_and_writes_nothing(tmp_path):
    make_prid(tmp_path / "data")
    work = tmp_path / "work"
    work.mkdir()
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    env.pop("REIDTRICKS_LOG_DIR", None)
    result = subprocess.run(
        [sys.executable, "-m", "reidtricks.stats", "data=prid2011",
         f"paths.data_dir={tmp_path / 'data'}"],
        cwd=work, env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    # by hand: 6 shared people -> 3 train (6 images), 3 queries; gallery 3 + 5 cam_b-only people
    assert lines[:5] == [
        "prid2011",
        "  split       ids   images  cameras",
        "  train         3        6        2",
        "  query         3        3        1",
        "  gallery       8        8        1",
    ]
    assert lines[5].startswith("  excluded 3 images (3: seen by cam_a only")
    assert list(work.iterdir()) == []  # no run folder, no .hydra, no log file


def test_stats_json_one_source_and_several(tmp_path):
    make_viper(tmp_path)
    make_caviar(tmp_path)
    one = json.loads(stats("data=viper", f"paths.data_dir={tmp_path}", "format=json"))
    assert one == {
        "train": {"ids": 5, "images": 10, "cameras": 2},
        "query": {"ids": 5, "images": 5, "cameras": 1},
        "gallery": {"ids": 5, "images": 5, "cameras": 1},
        "excluded": {"images": 1},
    }
    both = json.loads(stats("data=viper", "+dataset@data.test_sources.caviar4reid=caviar4reid",
                            f"paths.data_dir={tmp_path}", "format=json"))  # fmt: skip
    assert list(both) == ["viper", "caviar4reid"] and both["viper"] == one
    assert both["caviar4reid"]["gallery"] == {"ids": 2, "images": 20, "cameras": 1}
    table = stats("data=viper", f"paths.data_dir={tmp_path}", "data.train_sources.viper.split=1")
    assert table.splitlines()[0] == "viper" and "split 1 of 10" in table
    with pytest.raises(InputError, match=r"format='xml'"):
        stats("data=viper", f"paths.data_dir={tmp_path}", "format=xml")


def test_two_keys_of_one_set_are_told_apart(tmp_path):
    make_viper(tmp_path)
    table = stats("data=viper", f"paths.data_dir={tmp_path}", "+dataset@data.test_sources.v2=viper",
                  "data.test_sources.v2.split=2")  # fmt: skip
    heads = [line for line in table.splitlines() if not line.startswith(" ")]
    assert heads == ["viper", "v2 (viper)"]
