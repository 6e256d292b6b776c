"""DDP: the launcher patch for Hydra multiruns, rank-aware P x K batches, a real 2-process sweep."""

from __future__ import annotations

import inspect
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from hydra.core.hydra_config import HydraConfig

from helpers import compose_evaluate, compose_train, tiny_overrides
from reidtricks.data.sampler import PKBatchSampler
from reidtricks.training.ddp import (
    isolated_ddp_job,
    job_subprocess_command,
    patch_lightning_ddp_launcher,
)

pytestmark = pytest.mark.slow  # trains models: `make test` runs it, `make test-fast` does not

REPO = Path(__file__).resolve().parents[1]


def test_patch_targets_the_function_lightning_calls():
    from pytorch_lightning.strategies.launchers import subprocess_script

    source = inspect.getsource(subprocess_script._SubprocessScriptLauncher._call_children_scripts)
    assert "_hydra_subprocess_cmd(" in source  # Lightning still looks the builder up by name
    patch_lightning_ddp_launcher()
    assert subprocess_script._hydra_subprocess_cmd is job_subprocess_command


def test_child_command_runs_only_the_current_job(tmp_path):
    cfg = compose_train("seed=3", "+trick=warmup", hydra_cfg=True)
    cfg.hydra.runtime.output_dir = str(tmp_path / "sweep" / "1_warmup_seed3")
    cfg.hydra.runtime.cwd = str(tmp_path)
    HydraConfig.instance().set_config(cfg)
    try:
        command, cwd = job_subprocess_command(local_rank=1)
    finally:
        HydraConfig.instance().cfg = None
    assert "seed=3" in command and "+trick=warmup" in command
    assert "-m" not in command[3:] and "--multirun" not in command
    assert f'hydra.run.dir="{tmp_path / "sweep" / "1_warmup_seed3"}"' in command
    assert "hydra.output_subdir=null" in command and cwd == str(tmp_path)


def test_isolated_job_restores_launcher_environment(monkeypatch):
    monkeypatch.delenv("LOCAL_RANK", raising=False)
    monkeypatch.setenv("MASTER_ADDR", "keep.me")
    with isolated_ddp_job():
        os.environ["LOCAL_RANK"] = "0"
        os.environ["MASTER_ADDR"] = "127.0.0.1"
    assert "LOCAL_RANK" not in os.environ and os.environ["MASTER_ADDR"] == "keep.me"


def _sampler_worker(rank: int, world: int, port: int, pids: list[int], out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    sampler = PKBatchSampler(pids, p=3, k=2, seed=5)  # replicas and rank from the process group
    sampler.set_epoch(1)
    batches = list(sampler)
    torch.save({"batches": batches, "len": len(sampler)}, f"{out}/rank{rank}.pt")
    dist.destroy_process_group()


def test_sampler_under_a_real_process_group(tmp_path):
    pids = [i // 5 for i in range(5 * 20)]  # 20 identities x 5 images
    with socket.socket() as probe:  # a port free now (a fixed one may be taken by another test)
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    mp.spawn(_sampler_worker, args=(2, port, pids, str(tmp_path)), nprocs=2, join=True)
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in range(2)]
    assert ranks[0]["len"] == ranks[1]["len"] == len(ranks[0]["batches"]) > 0
    for b0, b1 in zip(ranks[0]["batches"], ranks[1]["batches"], strict=True):
        ids0, ids1 = {pids[i] for i in b0}, {pids[i] for i in b1}
        assert len(b0) == len(b1) == 6 and len(ids0) == len(ids1) == 3
        assert not ids0 & ids1


@pytest.mark.slow
def test_two_job_sweep_under_cpu_ddp(tiny_data_dir, tmp_path):
    logs = tmp_path / "logs"
    overrides = [
        o for o in tiny_overrides(tiny_data_dir, tmp_path) if not o.startswith("paths.output_dir")
    ]
    command = [
        sys.executable, "-m", "reidtricks.train", "-m", *overrides,
        f"paths.log_dir={logs}", "trainer=ddp_cpu", "trainer.max_epochs=1",
        "trainer.check_val_every_n_epoch=1", "+trick=baseline,bnneck",
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    proc = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    sweeps = list((logs / "demo" / "multirun").iterdir())
    assert len(sweeps) == 1, sweeps  # children did not start sweeps of their own
    assert not (logs / "demo" / "runs").exists()
    jobs = sorted(p for p in sweeps[0].iterdir() if p.is_dir())
    assert [j.name for j in jobs] == ["0_baseline_seed0", "1_bnneck_seed0"]
    for job in jobs:
        metrics = json.loads((job / "metrics.json").read_text())
        assert 0.0 <= metrics["mAP"] <= 1.0

    # The DDP evaluation (features gathered from 2 ranks, de-duplicated) equals one process.
    from reidtricks.cli.evaluate import evaluate_checkpoint

    job = jobs[1]
    ecfg = compose_evaluate(job / "checkpoints" / "last.ckpt", tmp_path / "eval", "plot_queries=0")
    single = evaluate_checkpoint(ecfg)["test_sets"]["synthetic"]
    ddp = json.loads((job / "metrics.json").read_text())["test_sets"]["synthetic"]
    for key in ("rank1", "rank5", "mAP", "mINP"):
        assert single[key] == pytest.approx(ddp[key], abs=1e-6), key
