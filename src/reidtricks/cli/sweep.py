"""Commands under Hydra: run folders that hold a run are refused before Hydra writes into them,
and a failing sweep job is reported in one line while the sweep goes on (non-zero exit at the
end, naming the failed jobs)."""

from __future__ import annotations

import sys
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from reidtricks.cli.app import full_tracebacks, input_error_message, one_line_errors
from reidtricks.cli.interrupt import noted_interrupts, stop_interrupted
from reidtricks.errors import InputError, error_summary
from reidtricks.training.run_safety import (
    check_creatable,
    is_secondary_rank,
    refuse_taken_folder,
)

ERROR_NAME = "error.txt"  # a failed sweep job's one-line error, in its job folder


def in_sweep() -> bool:
    """True inside a job of a Hydra multirun."""
    try:
        return HydraConfig.get().mode == RunMode.MULTIRUN
    except ValueError:  # not under Hydra (compose API)
        return False


@contextmanager
def job_errors() -> Iterator[None]:
    """A single run: `one_line_errors` (exit 1). A sweep job: the error in one line on stderr and
    in the job folder's error.txt, and the job returns, so the next job still runs."""
    with noted_interrupts() as interrupt:
        try:
            if not in_sweep():
                with one_line_errors():
                    yield
                return
            yield
        except BaseException as err:
            # A Ctrl-C may surface as KeyboardInterrupt, as Lightning's exit after its graceful
            # shutdown, or as an error of whatever it interrupted (a checkpoint save): all stop.
            if interrupt.hit or isinstance(err, KeyboardInterrupt):
                stop_interrupted(job_output_dir())
            if not isinstance(err, Exception) or not in_sweep():
                raise
            report_failed_job(err)


def job_output_dir() -> str:
    """The running job's folder ("." outside Hydra)."""
    try:
        return str(HydraConfig.get().runtime.output_dir)
    except ValueError:
        return "."


def report_failed_job(err: Exception) -> None:
    """A failed sweep job: its error in one line on stderr and in its folder's error.txt (the
    sweep goes on with its next job)."""
    message = input_error_message(err)
    if message is None:
        if full_tracebacks():
            raise err
        traceback.print_exception(err)
        message = f"{error_summary(err)} (a bug: traceback above)"
    job_dir = Path(HydraConfig.get().runtime.output_dir)
    (job_dir / ERROR_NAME).write_text(message + "\n")
    print(f"error: job {job_dir.name}: {message}", file=sys.stderr)


def _exit_with(message: str) -> None:
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(1)


def _raw(config: DictConfig, key: str) -> str | None:
    """`key`'s value without resolving it (None when unset or an interpolation)."""
    parent, _, leaf = key.rpartition(".")
    node = OmegaConf.select(config, parent) if parent else config
    if not isinstance(node, DictConfig) or leaf not in node:
        return None
    value = OmegaConf.to_container(node, resolve=False).get(leaf)
    return None if value is None or "${" in str(value) else str(value)


def _check_paths(config: DictConfig) -> None:
    """paths.log_dir can hold run folders; paths.data_dir, when it exists, is a folder."""
    log_dir = OmegaConf.select(config, "paths.log_dir")
    if log_dir is not None:
        check_creatable("paths.log_dir", str(log_dir))
    data_dir = OmegaConf.select(config, "paths.data_dir")
    if data_dir is not None and Path(str(data_dir)).exists() and not Path(str(data_dir)).is_dir():
        raise InputError(f"paths.data_dir={data_dir}: is a file; expected the folder of datasets")


class RunFolderGuard(Callback):
    """Refuses a run or sweep folder that holds another run, before Hydra writes .hydra/ there."""

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        if is_secondary_rank():  # a DDP rank > 0 re-run in rank 0's folder, which holds it
            return
        resume = _raw(config, "ckpt_path")
        try:
            _check_paths(config)
            check_creatable("hydra.run.dir", str(config.hydra.run.dir))
            refuse_taken_folder("hydra.run.dir", str(config.hydra.run.dir), resume)
            if (out := _raw(config, "paths.output_dir")) is not None:
                refuse_taken_folder("paths.output_dir", out, resume)
        except InputError as err:
            _exit_with(str(err))

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        try:
            _check_paths(config)
            check_creatable("hydra.sweep.dir", str(config.hydra.sweep.dir))
            refuse_taken_folder("hydra.sweep.dir", str(config.hydra.sweep.dir))
        except InputError as err:
            _exit_with(str(err))


def _job_number(job: Path) -> int:
    head = job.name.split("_")[0]
    return int(head) if head.isdigit() else 0


class SweepSummary(Callback):
    """At the end of a sweep: the failed jobs named (one line each) and exit status 1. The sweep
    folder is new (RunFolderGuard), so every error.txt under it is this sweep's."""

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep = Path(str(config.hydra.sweep.dir))
        jobs = [p.parent for p in sweep.glob("*/.hydra")]
        failed = sorted((j for j in jobs if (j / ERROR_NAME).is_file()), key=_job_number)
        if not failed:
            return
        for job in failed:
            text = (job / ERROR_NAME).read_text().strip()
            print(f"error: job {job.name} failed: {text}", file=sys.stderr)
        _exit_with(
            f"sweep {sweep}: {len(failed)} of {len(jobs)} jobs failed "
            f"({', '.join(j.name for j in failed)}); the others finished"
        )
