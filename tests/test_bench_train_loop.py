"""scripts/bench_train_loop.py on the tiny synthetic set: two real runs, the ratio from their logs."""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import tiny_overrides

pytestmark = pytest.mark.slow  # trains two models

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "bench_train_loop.py"


def test_the_table_holds_each_runs_epoch_seconds_and_their_ratio(tiny_data_dir, tmp_path):
    overrides = [o for o in tiny_overrides(tiny_data_dir, tmp_path) if "output_dir" not in o]
    overrides = [o for o in overrides if not o.startswith("experiment=")]
    runs = tmp_path / "runs"
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--experiment", "demo", "--epochs", "2", "--leave-out",
         "all", "--keep", str(runs), "--", *overrides, "++trainer.limit_train_batches=2"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    seconds = {
        cl: json.loads((runs / f"all_channels_last_{cl}" / "metrics.json").read_text())[
            "train_epoch_s"
        ]
        for cl in (False, True)
    }
    assert all(len(s) == 2 for s in seconds.values())
    nchw, cl = statistics.mean(seconds[False]), statistics.mean(seconds[True])
    row = next(line for line in result.stdout.splitlines() if line.startswith("| all |"))
    assert row.endswith(f"| {nchw / cl:.2f}x |")
    assert f"(mean {nchw:.1f})" in row and f"(mean {cl:.1f})" in row
