"""Ctrl-C during a sweep stops it at once, in one line, with the last checkpoint intact and no
process left behind; a killed training leaves no DataLoader worker behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

pytestmark = pytest.mark.slow  # trains in a child process


def tiny_sweep(data_dir: Path, sweep_dir: Path) -> list[str]:
    return [
        sys.executable, "-m", "reidtricks.train", "-m", "experiment=demo",
        f"paths.data_dir={data_dir}", f"hydra.sweep.dir={sweep_dir}",
        "data.train_sources.synthetic.preset=tiny", "data.sampler.p=4", "data.sampler.k=4",
        "data.loader.num_workers=2", "data.loader.test_batch_size=64", "logger=csv",
        "trainer.max_epochs=200", "+trainer.enable_progress_bar=false", "threads=1", "seed=0,1",
    ]  # fmt: skip


def start(command: list[str]) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
        start_new_session=True,  # its own process group, as a terminal's job
    )  # fmt: skip


def wait_for(path: Path, proc: subprocess.Popen, seconds: float = 240) -> None:
    deadline = time.time() + seconds
    while not path.is_file():
        assert proc.poll() is None, proc.communicate()[1][-2000:]
        assert time.time() < deadline, f"{path} not written in {seconds} s"
        time.sleep(0.5)
    time.sleep(1.0)  # into the next epoch, its workers busy


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def wait_group_gone(pgid: int, seconds: float = 20) -> bool:
    deadline = time.time() + seconds
    while group_alive(pgid) and time.time() < deadline:
        time.sleep(0.2)
    return not group_alive(pgid)


def test_ctrl_c_stops_the_sweep_in_one_line_with_the_checkpoint_intact(tiny_data_dir, tmp_path):
    sweep = tmp_path / "sweep"
    proc = start(tiny_sweep(tiny_data_dir, sweep))
    deadline, job = time.time() + 240, None
    while job is None:  # the first job's folder, once it has a checkpoint
        found = sorted(sweep.glob("*/checkpoints/last.ckpt"))
        job = found[0].parent.parent if found else None
        assert proc.poll() is None and time.time() < deadline
        time.sleep(0.5)
    wait_for(job / "checkpoints" / "last.ckpt", proc)
    os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in a terminal does
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130
    lines = [line for line in err.splitlines() if line.startswith("interrupted")]
    assert len(lines) == 1 and f"resume with ckpt_path={job}/checkpoints/last.ckpt" in lines[0]
    assert "a bug" not in err and "Traceback" not in err
    assert [p.name for p in sweep.iterdir() if p.is_dir() and (p / ".hydra").is_dir()] == [
        job.name
    ]  # the next job never started
    state = torch.load(job / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert state["epoch"] >= 0 and "reidtricks" in state
    assert wait_group_gone(proc.pid), "processes of the interrupted sweep are still running"


def test_a_killed_training_leaves_no_dataloader_worker(tiny_data_dir, tmp_path):
    sweep = tmp_path / "killed"
    proc = start(tiny_sweep(tiny_data_dir, sweep))
    deadline = time.time() + 240
    while not list(sweep.glob("*/checkpoints/last.ckpt")):
        assert proc.poll() is None and time.time() < deadline
        time.sleep(0.5)
    time.sleep(1.0)
    children = subprocess.run(["pgrep", "-g", str(proc.pid)], capture_output=True, text=True)
    assert len(children.stdout.split()) >= 3  # the training and its two workers
    proc.kill()  # SIGKILL: no handler runs
    proc.communicate(timeout=60)
    assert wait_group_gone(proc.pid), "DataLoader workers outlived the killed training"
