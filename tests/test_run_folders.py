"""Nothing lost: a folder holding a run is never written by another command (refused before
Hydra writes .hydra/), and one failing sweep job neither stops the sweep nor hides its failure."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def run_command(name: str, *args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("HYDRA_FULL_ERROR", None)
    command = [sys.executable, "-m", f"reidtricks.{name}", *args]
    return subprocess.run(
        command, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout
    )


def finished_run(folder: Path) -> dict[Path, bytes]:
    """A run folder as a finished training leaves it; returns its files and their bytes."""
    files = {
        folder / "checkpoints" / "last.ckpt": b"weights",
        folder / "metrics.json": b'{"mAP": 0.5}',
        folder / ".hydra" / "config.yaml": b"seed: 0\n",
    }
    for path, data in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return files


def assert_untouched(folder: Path, files: dict[Path, bytes]) -> None:
    assert {p for p in folder.rglob("*") if p.is_file()} == set(files)
    for path, data in files.items():
        assert path.read_bytes() == data, path


def assert_one_line(proc: subprocess.CompletedProcess, *parts: str) -> None:
    assert proc.returncode == 1, proc.stdout[-2000:] + proc.stderr[-2000:]
    err = proc.stderr.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    for part in parts:
        assert part in err, err


@pytest.mark.slow  # processes of their own (the commands as a user starts them)
def test_train_and_evaluate_refuse_a_finished_run_folder(tmp_path):
    run = tmp_path / "run"
    files = finished_run(run)
    proc = run_command("train", f"hydra.run.dir={run}", "trainer=cpu")
    assert_one_line(proc, f"error: hydra.run.dir={run}: holds another run", "metrics.json")
    ckpt = run / "checkpoints" / "last.ckpt"
    proc = run_command("evaluate", f"ckpt={ckpt}", f"hydra.run.dir={run}")
    assert_one_line(proc, f"hydra.run.dir={run}: holds another run")
    proc = run_command("extract", f"ckpt={ckpt}", f"images={tmp_path}", f"paths.output_dir={run}")
    assert_one_line(proc, f"paths.output_dir={run}: holds another run")
    assert_untouched(run, files)


@pytest.mark.slow  # processes of their own (the commands as a user starts them)
def test_a_live_runs_folder_keeps_its_config(tmp_path):
    run = tmp_path / "live"
    files = finished_run(run)
    del files[run / "metrics.json"]
    (run / "metrics.json").unlink()
    lock = run / ".run.lock"
    lock.write_text(str(os.getpid()))  # this test's process: a live run holds the folder
    files[lock] = lock.read_bytes()
    proc = run_command("train", f"hydra.run.dir={run}", "trainer=cpu")
    assert_one_line(proc, f"hydra.run.dir={run}: is in use by another run (pid {os.getpid()})")
    assert_untouched(run, files)


@pytest.mark.slow  # processes of their own (the commands as a user starts them)
def test_resume_in_its_own_folder_is_not_refused(tmp_path):
    run = tmp_path / "run"
    finished_run(run)
    ckpt = run / "checkpoints" / "last.ckpt"
    proc = run_command("train", f"hydra.run.dir={run}", f"ckpt_path={ckpt}", "trainer=cpu",
                       f"paths.data_dir={tmp_path / 'none'}")  # fmt: skip
    # Past the folder check: the (fake) checkpoint itself is what stops it.
    assert "holds another run" not in proc.stderr
    assert "cannot be read as a weights-only torch checkpoint" in proc.stderr


@pytest.mark.slow  # processes of their own (the commands as a user starts them)
def test_a_sweep_into_an_existing_sweep_folder_is_refused(tmp_path):
    sweep = tmp_path / "sweep"
    sweep.mkdir()
    (sweep / "multirun.yaml").write_text("old: sweep\n")
    (sweep / "0_job" / ".hydra").mkdir(parents=True)  # a sweep that ran a job
    proc = run_command("train", "-m", f"hydra.sweep.dir={sweep}", "seed=0,1")
    assert_one_line(proc, f"hydra.sweep.dir={sweep}: holds another run (multirun.yaml)")
    assert (sweep / "multirun.yaml").read_text() == "old: sweep\n"
    assert sorted(p.name for p in sweep.iterdir()) == ["0_job", "multirun.yaml"]


@pytest.mark.slow  # processes of their own (the commands as a user starts them)
def test_failing_sweep_jobs_are_reported_and_the_sweep_goes_on(tmp_path):
    sweep = tmp_path / "sweep"
    proc = run_command("train", "-m", f"hydra.sweep.dir={sweep}", "seed=abc,xyz")
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    jobs = sorted(p.name for p in sweep.iterdir() if p.is_dir())
    assert jobs == ["0_baseline_seedabc", "1_baseline_seedxyz"]  # the second job ran too
    for job, value in zip(jobs, ("abc", "xyz"), strict=True):
        error = (sweep / job / "error.txt").read_text()
        assert error.startswith(f"seed={value!r}: expected an integer")
        assert f"error: job {job}: seed={value!r}" in proc.stderr
    assert f"error: sweep {sweep}: 2 of 2 jobs failed ({', '.join(jobs)})" in proc.stderr


@pytest.mark.slow
@pytest.mark.parametrize("launcher", ["basic", "cpu_parallel"])
def test_a_failed_job_between_good_ones(launcher, tiny_data_dir, tmp_path):
    sweep = tmp_path / "sweep"
    proc = run_command(
        "train", "-m", f"hydra/launcher={launcher}", f"hydra.sweep.dir={sweep}", "seed=0,abc,1",
        "experiment=demo", "trainer.max_epochs=0", "run_test=false", "threads=1",
        f"paths.data_dir={tiny_data_dir}", "data.train_sources.synthetic.preset=tiny",
        "data.sampler.p=4", "data.loader.num_workers=0", "data.loader.persistent_workers=false",
        "logger=csv", timeout=600,
    )  # fmt: skip
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert (sweep / "0_baseline_seed0" / "metrics.json").is_file()
    assert (sweep / "2_baseline_seed1" / "metrics.json").is_file()
    assert (sweep / "1_baseline_seedabc" / "error.txt").is_file()
    assert f"error: sweep {sweep}: 1 of 3 jobs failed (1_baseline_seedabc)" in proc.stderr


@pytest.mark.slow  # a process of its own (the command as a user starts it)
def test_a_folder_inside_a_run_is_refused(tmp_path):
    run = tmp_path / "run"
    files = finished_run(run)
    ckpt = run / "checkpoints" / "last.ckpt"
    proc = run_command("evaluate", f"ckpt={ckpt}", f"hydra.run.dir={run / 'checkpoints'}")
    assert_one_line(proc, f"hydra.run.dir={run / 'checkpoints'}: is inside the run folder {run}")
    assert_untouched(run, files)


def test_a_failed_commands_leftovers_do_not_hold_the_folder(tmp_path):
    from reidtricks.errors import InputError
    from reidtricks.training.run_safety import refuse_taken_folder

    failed = tmp_path / "failed"
    (failed / ".hydra").mkdir(parents=True)
    (failed / ".hydra" / "config.yaml").write_text("seed: 0\n")
    (failed / "train.log").write_text("error: ...\n")
    refuse_taken_folder("hydra.run.dir", failed)  # only what a start-up failure leaves: reusable
    (failed / "metrics.json").write_text("{}")
    with pytest.raises(InputError, match="holds another run"):
        refuse_taken_folder("hydra.run.dir", failed)
    sweep_job = tmp_path / "sweep" / "0_job"
    sweep_job.mkdir(parents=True)
    (tmp_path / "sweep" / "multirun.yaml").write_text("{}")
    refuse_taken_folder("hydra.run.dir", sweep_job)  # a sweep folder holds jobs, not one run
    empty_sweep = tmp_path / "no_job_ran"
    empty_sweep.mkdir()
    (empty_sweep / "multirun.yaml").write_text("{}")  # a sweep whose configs failed to compose
    refuse_taken_folder("hydra.sweep.dir", empty_sweep)
