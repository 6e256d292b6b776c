"""Make Lightning's DDP launcher work inside Hydra multiruns (one sweep job at a time).

Lightning starts ranks 1..W-1 by re-running `sys.argv`; under `-m` that re-runs the whole sweep
in every child, writing into the *run* folder pattern. We replace its command builder so each
job's children run exactly that job (its own overrides, its own output folder), and we restore
the environment and destroy the process group between jobs so the next job launches afresh.
Touches `pytorch_lightning.strategies.launchers.subprocess_script._hydra_subprocess_cmd`
(Lightning 2.6.x, pinned in pyproject.toml; tests/test_ddp.py covers it).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import torch.distributed as dist

# What Lightning's launcher writes into os.environ of the main process.
_LAUNCHER_ENV_KEYS = ("MASTER_ADDR", "MASTER_PORT", "NODE_RANK", "LOCAL_RANK", "WORLD_SIZE")


def job_subprocess_command(local_rank: int) -> tuple[Sequence[str], str]:
    """Command for DDP rank `local_rank` of the *current* Hydra job (run or sweep job)."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.utils import get_original_cwd

    import __main__

    hydra_cfg = HydraConfig.get()
    if __main__.__spec__ is None:
        command = [sys.executable, os.path.abspath(sys.argv[0])]
    else:
        command = [sys.executable, "-m", __main__.__spec__.name]
    command += list(hydra_cfg.overrides.task)
    command += [
        f'hydra.run.dir="{hydra_cfg.runtime.output_dir}"',
        f"hydra.job.name=ddp_rank_{local_rank}",
        "hydra.output_subdir=null",
    ]
    return command, get_original_cwd()


def patch_lightning_ddp_launcher() -> None:
    """Route Lightning's subprocess launcher through `job_subprocess_command` (idempotent)."""
    from pytorch_lightning.strategies.launchers import subprocess_script

    subprocess_script._hydra_subprocess_cmd = job_subprocess_command


@contextmanager
def isolated_ddp_job() -> Iterator[None]:
    """Undo what one job's DDP launch left behind: launcher env variables and process group."""
    saved = {key: os.environ.get(key) for key in _LAUNCHER_ENV_KEYS}
    try:
        yield
    finally:
        if dist.is_available() and dist.is_initialized():
            dist.destroy_process_group()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
