"""Every study of conf/experiment/ as a real Hydra multirun at tiny scale, then its report.

Each study runs as a user would (`python -m reidtricks.train -m experiment=NAME ...`) on the tiny
synthetic set, one training batch per job. Where the paper's grid cannot run on 12 identities
(P = 32 needs 32), the command line narrows the sweep, as a user may; test_configs.py checks the
full grids. Market-1501 and DukeMTMC-reID are stand-ins: the tiny set under their folder layouts.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # trains models: `make test` runs it, `make test-fast` does not

REPO = Path(__file__).resolve().parents[1]
STAGES = ["baseline", "warmup", "rea", "label_smooth", "last_stride", "bnneck", "center_loss"]


@pytest.fixture(scope="module")
def study_data_dir(tiny_data_dir, tmp_path_factory) -> Path:
    """tiny, and tiny again in the Market-1501 and DukeMTMC-reID layouts (for cross-domain)."""
    root = tmp_path_factory.mktemp("study_data")
    tiny = next(tiny_data_dir.glob("synthetic-tiny-*"))
    (root / tiny.name).symlink_to(tiny)
    (root / "market1501").symlink_to(tiny)
    (root / "dukemtmc-reid").mkdir()
    (root / "dukemtmc-reid" / "DukeMTMC-reID").symlink_to(tiny)
    return root


def run_study(data_dir: Path, logs: Path, experiment: str, *extra: str) -> Path:
    """Run one study sweep in a fresh process at demo scale on tiny; return its sweep folder."""
    synthetic = "data=synthetic" in extra
    # Demo scale on tiny, except for the keys the study itself sweeps (a fixed key would win).
    sampler = [] if experiment == "batch_size" else ["data.sampler.p=4", "data.sampler.k=4"]
    sweeps_size, sweeps_model = experiment == "image_size", experiment == "backbones"
    size = [] if sweeps_size else ["data.transform.height=64", "data.transform.width=32"]
    model = [] if sweeps_model else ["model=resnet18"]
    command = [
        sys.executable, "-m", "reidtricks.train", "-m", f"experiment={experiment}",
        f"paths.data_dir={data_dir}", f"paths.log_dir={logs}", "trainer=cpu", "logger=csv",
        *model, "model.pretrained=false", *size, "data.transform.pad=3", *sampler,
        "data.loader.num_workers=0", "data.loader.persistent_workers=false",
        "trainer.max_epochs=1", "trainer.check_val_every_n_epoch=1",
        "++trainer.limit_train_batches=1", "+trainer.enable_progress_bar=false",
        "+trainer.enable_model_summary=false",
        *(["data.train_sources.synthetic.preset=tiny"] if synthetic else []), *extra,
    ]  # fmt: skip
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    sweeps = list((logs / experiment).glob("multirun/*"))
    assert len(sweeps) == 1, sweeps
    return sweeps[0]


def job_metrics(sweep: Path) -> dict[str, dict]:
    return {
        job.name: json.loads((job / "metrics.json").read_text())
        for job in sorted(sweep.iterdir())
        if (job / ".hydra").is_dir()
    }


def report_rows(sweep: Path) -> list[dict[str, str]]:
    from reidtricks.reports.study import write_report

    md = write_report(sweep)
    assert (sweep / "report.png").stat().st_size > 1000
    assert "Missing or failed jobs" not in md.read_text()
    return list(csv.DictReader((sweep / "report.csv").read_text().splitlines()))


def test_ablation_study(study_data_dir, tmp_path):
    sweep = run_study(study_data_dir, tmp_path, "ablation", "data=synthetic", "seed=0,1")
    jobs = job_metrics(sweep)
    expected = [f"{i}_{stage}_seed{seed}" for i, (stage, seed) in
                enumerate((s, seed) for s in STAGES for seed in (0, 1))]  # fmt: skip
    assert sorted(jobs) == sorted(expected)
    for name, metrics in jobs.items():
        assert name.startswith(f"{STAGES.index(metrics['stage']) * 2 + metrics['seed']}_")
        assert set(metrics["variants"]) == {"rerank"}
        assert 0.0 <= metrics["variants"]["rerank"]["synthetic"]["mAP"] <= 1.0
    rows = report_rows(sweep)
    assert [r["row"] for r in rows] == [*STAGES, "center_loss+rerank"]
    assert all(r["seeds"] == "2" and "±" in r["mAP"] for r in rows)


def test_bnneck_metrics_study(study_data_dir, tmp_path):
    sweep = run_study(study_data_dir, tmp_path, "bnneck_metrics", "data=synthetic", "seed=0")
    (metrics,) = job_metrics(sweep).values()
    assert metrics["stage"] == "bnneck"
    cells = metrics["variants"]
    assert set(cells) == {"f_t_euclidean", "f_t_cosine", "f_i_euclidean", "f_i_cosine"}
    # The default test-time setting of the bnneck stage is f_i with cosine: the same numbers.
    assert cells["f_i_cosine"]["synthetic"]["mAP"] == pytest.approx(metrics["mAP"], abs=1e-9)
    # Euclidean and cosine on f_t rank differently (f_t is not normalised).
    assert cells["f_t_euclidean"]["synthetic"] != cells["f_t_cosine"]["synthetic"]
    assert [r["row"] for r in report_rows(sweep)] == list(cells)


def test_cross_domain_study(study_data_dir, tmp_path):
    sweep = run_study(study_data_dir, tmp_path, "cross_domain", "+trick=baseline,bnneck")
    jobs = job_metrics(sweep)
    assert sorted(jobs) == [
        "0_baseline_from_market1501_seed0",
        "1_bnneck_from_market1501_seed0",
        "2_baseline_from_dukemtmc_seed0",
        "3_bnneck_from_dukemtmc_seed0",
    ]
    for metrics in jobs.values():
        assert set(metrics["test_sets"]) == {"market1501", "dukemtmc"}
    rows = report_rows(sweep)
    by_cell = {r["row"]: r for r in rows}
    assert len(by_cell) == len(rows) == 4  # one row per cell, a column group per test set
    for train in ("market1501", "dukemtmc"):
        first, second = by_cell[f"baseline_from_{train}"], by_cell[f"bnneck_from_{train}"]
        assert first["trained on"] == second["trained on"] == train
        for test in ("market1501", "dukemtmc"):
            # Deltas compare stages trained on the same data, never across training sets.
            assert first[f"{test} Δ mAP"] == "" and second[f"{test} Δ mAP"] != ""
            assert first[f"{test} paper R1/mAP"] == ""  # the paper has no cross-domain rows


def test_batch_size_study(study_data_dir, tmp_path):
    sweep = run_study(
        study_data_dir, tmp_path, "batch_size", "data=synthetic", "data.sampler={p:2,k:2},{p:4,k:3}"
    )
    jobs = job_metrics(sweep)
    assert sorted(jobs) == ["0_p2k2_seed0", "1_p4k3_seed0"]
    assert all(m["stage"] == "bnneck" for m in jobs.values())
    assert [r["row"] for r in report_rows(sweep)] == ["p2k2", "p4k3"]


def test_image_size_study(study_data_dir, tmp_path):
    sweep = run_study(study_data_dir, tmp_path, "image_size", "data=synthetic")
    jobs = job_metrics(sweep)
    assert sorted(jobs) == [
        "0_256x128_seed0",
        "1_224x224_seed0",
        "2_320x160_seed0",
        "3_384x128_seed0",
    ]
    for name, metrics in jobs.items():
        config = (sweep / name / ".hydra" / "config.yaml").read_text()
        height, width = name.split("_")[1].split("x")
        assert f"height: {height}" in config and f"width: {width}" in config
        assert metrics["stage"] == "bnneck"


def test_backbones_study(study_data_dir, tmp_path):
    sweep = run_study(study_data_dir, tmp_path, "backbones", "data=synthetic")
    jobs = job_metrics(sweep)
    names = ["resnet18", "resnet34", "resnet50", "resnet101", "seresnext50"]
    assert sorted(jobs) == sorted(f"{i}_{n}_seed0" for i, n in enumerate(names))
    assert all(m["stage"] == "center_loss" for m in jobs.values())
    rows = report_rows(sweep)
    assert [r["row"] for r in rows] == names
    assert rows[4]["paper R1/mAP"] == ""  # paper numbers only when the test set is Market-1501
