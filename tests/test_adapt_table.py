"""scripts/adapt_table.py on fabricated adapt runs: the per-round mAP, the change from direct
transfer and the unfinished run, checked by hand; scripts/adapt_oracle.py: a tiny run whose
pseudo-labels are the true identities (purity 1, nothing left out)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "adapt_table.py"


def make_run(
    folder: Path, direct: float, per_round: list[float], eps: float, **more: object
) -> None:
    folder.mkdir(parents=True)
    adapt = {"eps": eps, "k1": 20, "min_samples": 2, "lr": 1e-4, "epochs_per_round": 2, **more}
    scores = lambda m: {"viper": {"mAP": m, "rank1": m}}  # noqa: E731
    rounds = [
        {"round": i + 1, "purity": 0.8, "ari": 0.5, "test_sets": scores(m)}
        | ({"cross_camera_together": 0.0125} if more else {})
        | ({"camera_bn": scores(m + 0.1)} if more.get("camera_bn") else {})
        for i, m in enumerate(per_round)
    ]
    payload = {
        "target": {"name": "viper", "dataset": {"split": 3}},
        "adapt": adapt,
        "batch": {"p": 8, "k": 4},
        "seed": 1,
        "direct_transfer": scores(direct),
        "adabn": scores(0.21) if more.get("adabn") else None,
        "camera_bn": scores(0.23) if more.get("camera_bn") else None,
        "rounds": rounds,
        "stopped": more.get("stopped"),
    }
    (folder / "metrics.json").write_text(json.dumps(payload))
    (folder / "adapt.log").write_text("")


def test_rows_hold_direct_transfer_each_round_and_the_change(tmp_path):
    make_run(tmp_path / "runs" / "a", 0.200, [0.150, 0.2512], 0.4)
    make_run(tmp_path / "runs" / "b", 0.200, [0.190], 0.3, classifier="memory", outliers="drop",
             adabn=True, camera_bn=True, same_camera_penalty=0.1,
             stopped="adapt.eps=0.3: round 2: ...")  # fmt: skip
    (tmp_path / "runs" / "failed").mkdir()
    (tmp_path / "runs" / "failed" / "adapt.log").write_text("")
    result = subprocess.run(
        [sys.executable, str(SCRIPT), str(tmp_path / "runs")], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[2] == (
        "| a | viper split 3 | eps 0.4 k1 20 min_samples 2 lr 0.0001 epochs_per_round 2 | 8 | 1 "
        "| 20.0 | - | 15.0 / 25.1 | +5.1 | - | 0.80 / 0.50 | - |"
    )
    assert lines[3] == (
        "| b | viper split 3 | eps 0.3 k1 20 min_samples 2 lr 0.0001 epochs_per_round 2 "
        "classifier memory adabn True camera_bn True same_camera_penalty 0.1 | 8 | 1 | 20.0 | 21.0 | 19.0 / stopped | -1.0 "
        "| 23.0 / 29.0 | 0.80 / 0.50 | 1.2% |"
    )
    assert lines[-1] == f"no metrics.json (failed or unfinished): {tmp_path / 'runs' / 'failed'}"


def test_no_run_is_a_one_line_error(tmp_path):
    result = subprocess.run(
        [sys.executable, str(SCRIPT), str(tmp_path)], capture_output=True, text=True
    )
    assert result.returncode != 0
    assert result.stderr.strip().startswith("error: no adapt run")


ORACLE = Path(__file__).resolve().parents[1] / "scripts" / "adapt_oracle.py"


def test_the_oracle_trains_on_the_true_identities_with_every_image_kept(
    trained_ckpt, tiny_data_dir, tmp_path
):
    out = tmp_path / "oracle"
    result = subprocess.run(
        [sys.executable, str(ORACLE), f"ckpt={trained_ckpt}", "target=synthetic",
         "target.dataset.preset=tiny", f"paths.data_dir={tiny_data_dir}", "trainer=cpu",
         "progress=false", "+trainer.enable_progress_bar=false", "loader.num_workers=0",
         "adapt.rounds=1", "adapt.epochs_per_round=1", f"hydra.run.dir={out}"],
        capture_output=True, text=True,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    (record,) = json.loads((out / "metrics.json").read_text())["rounds"]
    assert record["left_out"] == 0 and record["kept"] == record["images"] == 102
    assert record["purity"] == record["ari"] == record["nmi"] == 1.0
