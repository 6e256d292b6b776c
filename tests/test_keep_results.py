"""scripts/keep_results.py: a sweep's results kept without weights give the same report."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import yaml

from reidtricks.reports.study import write_report

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "keep_results.py"


def make_sweep(root: Path, mAP: float) -> Path:
    for num, cell in enumerate(("baseline", "bot")):
        job = root / f"{num}_{cell}_seed0"
        (job / ".hydra").mkdir(parents=True)
        (job / ".hydra" / "config.yaml").write_text(yaml.safe_dump({"cell": cell, "seed": 0}))
        (job / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump([f"+leave_out={cell}"]))
        (job / "csv" / "version_0").mkdir(parents=True)
        (job / "csv" / "version_0" / "metrics.csv").write_text("epoch,loss\n0,1.0\n")
        (job / "checkpoints").mkdir()
        (job / "checkpoints" / "last.ckpt").write_bytes(b"\0" * 1000)  # weights: not kept
        metrics = {"cell": cell, "seed": 0, "test_sets": {"cuhk03": {"rank1": 0.5, "mAP": mAP}}}
        (job / "metrics.json").write_text(json.dumps(metrics))
        mAP += 0.1
    (root / "2_bot_no_x_seed0" / ".hydra").mkdir(parents=True)  # still running
    return root


def keep(sweep: Path, dest: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(SCRIPT), str(sweep), str(dest)], capture_output=True, text=True
    )


def test_kept_results_give_the_same_report_without_the_weights(tmp_path):
    sweep, dest = make_sweep(tmp_path / "sweep", 0.2), tmp_path / "kept"
    done = keep(sweep, dest)
    assert done.returncode == 0, done.stderr
    assert "kept 2 job(s)" in done.stdout and "not finished (not kept): 2_bot_no_x_seed0" in (
        done.stderr
    )
    assert not list(dest.rglob("*.ckpt"))
    assert (dest / "0_baseline_seed0" / "csv" / "version_0" / "metrics.csv").is_file()
    write_report(sweep, tmp_path / "a")
    write_report(dest, tmp_path / "b")
    assert (tmp_path / "a" / "report.csv").read_text() == (
        tmp_path / "b" / "report.csv"
    ).read_text()
    assert keep(sweep, dest).returncode == 0  # again, as jobs finish: same files, no error


def test_another_runs_results_are_not_overwritten(tmp_path):
    dest = tmp_path / "kept"
    assert keep(make_sweep(tmp_path / "one", 0.2), dest).returncode == 0
    other = keep(make_sweep(tmp_path / "two", 0.3), dest)
    assert other.returncode != 0
    assert "0_baseline_seed0/metrics.json exists with other contents" in other.stderr
    assert (
        json.loads((dest / "0_baseline_seed0" / "metrics.json").read_text())["test_sets"]["cuhk03"][
            "mAP"
        ]
        == 0.2
    )


def test_a_single_run_is_kept_as_one_job(tmp_path):
    run = make_sweep(tmp_path / "sweep", 0.2) / "0_baseline_seed0"
    done = keep(run, tmp_path / "kept")
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "kept" / "0_baseline_seed0" / "metrics.json").is_file()
