"""scripts/plot_lr_sweep.py on fabricated runs: the grouping and the means checked by hand."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import yaml

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "plot_lr_sweep.py"


def make_run(folder: Path, name: str, optimizer: str, lr: float, warmup: bool, mAP: float) -> None:
    job = folder / name
    (job / ".hydra").mkdir(parents=True)
    optim = {"optimizer": {"_target_": f"torch.optim.{optimizer}"}, "lr": lr, "warmup": warmup}
    (job / ".hydra" / "config.yaml").write_text(yaml.safe_dump({"optim": optim, "seed": 0}))
    metrics = {"rank1": 0.5, "rank5": 0.6, "rank10": 0.7, "mAP": mAP, "mINP": 0.1}
    payload = {"stage": name, "cell": name, "seed": 0, "test_sets": {"cuhk03": metrics}}
    (job / "metrics.json").write_text(json.dumps(payload))


def test_runs_are_grouped_by_optimiser_warmup_and_lr(tmp_path):
    runs = tmp_path / "runs"
    make_run(runs, "0_a", "Adam", 1e-3, False, 0.20)
    make_run(runs, "1_b", "Adam", 1e-3, False, 0.24)
    make_run(runs, "2_c", "Adam", 1e-3, True, 0.10)
    make_run(runs, "3_d", "Adam", 2e-3, True, 0.30)
    make_run(runs, "4_e", "SGD", 1e-3, False, 0.05)
    make_run(runs, "5_untested", "Adam", 1e-3, False, 0.99)
    untested = json.loads((runs / "5_untested" / "metrics.json").read_text())
    del untested["test_sets"]  # trained with run_test=false
    (runs / "5_untested" / "metrics.json").write_text(json.dumps(untested))
    out = tmp_path / "lr.png"
    result = subprocess.run(
        [sys.executable, str(SCRIPT), str(runs), "--out", str(out), "--reference-lr", "1e-3"],
        capture_output=True,
        text=True,
        check=True,
    )
    rows = [
        line
        for line in result.stdout.splitlines()
        if line.startswith("| Adam") or line.startswith("| SGD")
    ]
    # mean of 20 and 24 is 22.0; sample std = sqrt(((20-22)^2 + (24-22)^2) / 1) = 2.83
    assert rows == [
        "| Adam, no warmup | 0.001 | 2 | 22.0 ± 2.8 | 20.0, 24.0 |",
        "| Adam, warmup | 0.001 | 1 | 10.0 | 10.0 |",
        "| Adam, warmup | 0.002 | 1 | 30.0 | 30.0 |",
        "| SGD, no warmup | 0.001 | 1 | 5.0 | 5.0 |",
    ]
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert f"left out: {runs / '5_untested'} (no test_sets" in result.stderr


def test_a_folder_without_runs_is_a_one_line_error(tmp_path):
    result = subprocess.run(
        [sys.executable, str(SCRIPT), str(tmp_path)], capture_output=True, text=True
    )
    assert result.returncode != 0
    assert result.stderr.strip().splitlines()[-1] == (
        f"error: {tmp_path}: no finished job folders (expected <job>/metrics.json)"
    )
