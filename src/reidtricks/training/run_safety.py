"""Never lose a run: atomic checkpoint writes, last.ckpt every N epochs, one run per folder,
resume only from local weights-only files."""

from __future__ import annotations

import contextlib
import errno
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import Checkpoint
from pytorch_lightning.plugins.io import TorchCheckpointIO

from reidtricks.data.trained_ids import check_same_training_data
from reidtricks.errors import InputError, UnwritableOutputError, error_summary
from reidtricks.inference.checkpoint import load_checkpoint

LOCK_NAME = ".run.lock"
# What a command leaves in its folder: a folder holding any of these holds a run.
RUN_MARKERS = (LOCK_NAME, ".hydra", "checkpoints", "metrics.json", "multirun.yaml", "parity.json",
               "features.npz", "ranking.csv")  # fmt: skip


def run_markers(folder: str | Path) -> list[str]:
    """The entries of `folder` that show it holds a run (empty for a new or unrelated folder)."""
    folder = Path(folder)
    return [name for name in RUN_MARKERS if (folder / name).exists()]


def atomic_torch_save(obj: Any, path: str | Path) -> None:
    """torch.save to a temporary file in the same folder, fsync, then rename over `path`: a
    crash or a full disk leaves the old file intact, never a truncated one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        with open(tmp, "wb") as handle:
            torch.save(obj, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except (OSError, RuntimeError) as err:  # torch's zip writer reports a full disk as such
        tmp.unlink(missing_ok=True)
        if not isinstance(err, OSError) and "write" not in str(err):
            raise
        kept = f"; the previous {path.name} is kept" if path.exists() else ""
        raise UnwritableOutputError(
            f"{path}: cannot write the checkpoint ({error_summary(err)}){kept}"
        ) from err
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    with contextlib.suppress(OSError):  # make the rename itself durable (not on every platform)
        fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning's checkpoint writer with `atomic_torch_save`."""

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: str | Path, storage_options: Any = None
    ) -> None:
        if storage_options is not None:
            raise TypeError("AtomicCheckpointIO takes no storage_options")
        atomic_torch_save(checkpoint, path)


class LastCheckpoint(Checkpoint):
    """Writes `last.ckpt` at the end of every `every_n_epochs`-th training epoch and of the last
    one, after the LR scheduler has stepped (a `Checkpoint` runs after the module's hooks), so a
    resume continues exactly where it stopped."""

    def __init__(self, dirpath: str | Path, every_n_epochs: int = 1) -> None:
        if isinstance(every_n_epochs, bool) or int(every_n_epochs) < 1:
            raise InputError(f"checkpoint.every_n_epochs={every_n_epochs}: expected an int >= 1")
        self.dirpath, self.every_n_epochs = Path(dirpath), int(every_n_epochs)

    @property
    def path(self) -> Path:
        return self.dirpath / "last.ckpt"

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        epoch = trainer.current_epoch + 1
        if epoch % self.every_n_epochs == 0 or epoch >= (trainer.max_epochs or 0):
            trainer.save_checkpoint(self.path, weights_only=False)  # full state, to resume


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except OSError as err:
        return err.errno == errno.EPERM
    return True


def is_secondary_rank() -> bool:
    """A DDP process other than global rank 0 (Lightning, torchrun and SLURM set these)."""
    for name in ("RANK", "SLURM_PROCID", "LOCAL_RANK"):
        value = os.environ.get(name, "")
        if value.isdigit():
            return int(value) > 0
    return False


def live_owner(output_dir: str | Path) -> int | None:
    """The pid of another live process holding `output_dir`'s claim, or None."""
    try:
        owner = int((Path(output_dir) / LOCK_NAME).read_text().strip() or 0)
    except (OSError, ValueError):
        return None
    return owner if owner and owner != os.getpid() and _pid_alive(owner) else None


def check_creatable(key: str, folder: str | Path) -> None:
    """One-line error unless `folder` is a folder, or can be made one: its nearest existing parent
    must be a writable folder."""
    folder = Path(folder)
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise InputError(
            f"{key}={folder}: {existing} is a file; expected a folder to write runs in"
        )
    if not os.access(existing, os.W_OK | os.X_OK):
        raise InputError(f"{key}={folder}: {existing} is not writable; give a folder you can write")


def only_failed_leftovers(folder: Path) -> bool:
    """Whether `folder` holds only what a command or sweep that failed at start-up leaves
    (Hydra's `.hydra/` or `multirun.yaml`, and a log file): no results, so it may be used again."""
    entries = [p for p in folder.iterdir() if p.name not in (".hydra", "multirun.yaml")]
    started = (folder / ".hydra").is_dir() or (folder / "multirun.yaml").is_file()
    return started and all(p.is_file() and p.suffix == ".log" for p in entries)


def enclosing_run(folder: str | Path) -> Path | None:
    """The nearest folder above `folder` that is a run's own (it holds `.hydra/` or a run lock),
    or None. A sweep folder (multirun.yaml) holds job folders and does not count."""
    for parent in Path(folder).absolute().parents:
        if (parent / ".hydra").is_dir() or (parent / LOCK_NAME).exists():
            return parent
    return None


def refuse_taken_folder(key: str, folder: str | Path, resume_from: str | None = None) -> None:
    """One-line error if `folder` holds a run (or is not a folder): a command never writes into
    another run's folder. A resume from a checkpoint inside a folder no live run holds may
    continue there."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise InputError(f"{key}={folder}: is a file; expected a folder for the run's outputs")
    holder = enclosing_run(folder)
    if holder is not None:
        raise InputError(
            f"{key}={folder}: is inside the run folder {holder}; a command never writes into "
            "another run's folder: give a folder outside it"
        )
    markers = run_markers(folder)
    if not markers or only_failed_leftovers(folder):
        return
    owner = live_owner(folder)
    if owner is None and resume_from and "://" not in resume_from:
        inside = Path(resume_from).resolve().is_relative_to(folder.resolve())
        if inside:
            return
    what = f"is in use by another run (pid {owner})" if owner else "holds another run"
    raise InputError(
        f"{key}={folder}: {what} ({', '.join(markers)}); a run folder is never written by "
        "another command: give a new folder (or leave it unset for a fresh one)"
    )


@contextlib.contextmanager
def claimed_run_dir(output_dir: str | Path) -> Iterator[Path]:
    """Hold `output_dir` for this run: a second live run in the same folder fails with one line
    instead of overwriting its metrics and checkpoints. A lock left by a dead process is taken."""
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    if is_secondary_rank():  # DDP ranks > 0 share the folder of rank 0, which holds it
        yield output_dir
        return
    lock = output_dir / LOCK_NAME
    for _ in range(2):
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            break
        except FileExistsError:
            owner = live_owner(output_dir)
            if owner:
                raise InputError(
                    f"run folder {output_dir} is in use by another run (pid {owner}); "
                    "start this run in another folder (hydra.run.dir=...)"
                ) from None
            lock.unlink(missing_ok=True)  # left by a run that died
    else:
        raise InputError(f"run folder {output_dir}: cannot take {lock}")
    with os.fdopen(fd, "w") as handle:
        handle.write(str(os.getpid()))
    try:
        yield output_dir
    finally:
        lock.unlink(missing_ok=True)


def resolve_resume_path(ckpt_path: str | None, log_dir: str | Path, task_name: str) -> Path | None:
    """The local checkpoint to resume from: a path, or `last` (the newest last.ckpt of the same
    task's runs). URLs are refused (Lightning would unpickle them); the file must load with
    weights_only=True and be a reidtricks checkpoint."""
    if ckpt_path is None or str(ckpt_path) == "":
        return None
    text = str(ckpt_path)
    if "://" in text:
        raise InputError(
            f"ckpt_path={text}: resuming from a URL is refused (download the file and give its "
            "local path)"
        )
    if text == "last":
        runs = Path(log_dir) / task_name
        found = sorted(
            runs.glob("*/*/checkpoints/last.ckpt"), key=lambda p: p.stat().st_mtime, reverse=True
        )
        if not found:
            raise InputError(
                f"ckpt_path=last: no last.ckpt under {runs}/*/*/checkpoints/ (task_name="
                f"{task_name}); nothing to resume, give ckpt_path=PATH or leave it unset"
            )
        path = found[0]
    else:
        path = Path(text)
    load_checkpoint(path)  # one-line errors for missing, pickled or foreign files
    return path


def _shape(value: Any) -> str:
    return f"shape {list(value.shape)}" if isinstance(value, torch.Tensor) else "missing"


def check_resume_fits(
    path: Path,
    module: torch.nn.Module,
    max_epochs: int | None,
    train_sources: Mapping[str, Any] | None = None,
) -> None:
    """One-line error when the checkpoint cannot continue into this run: its weights do not fit
    the network (another backbone or class count), they are not finite, max_epochs is below its
    finished epochs, or (given this run's `train_sources`) it trained on other sets or splits."""
    checkpoint = load_checkpoint(path)
    stored = checkpoint["reidtricks"].get("config")
    if train_sources is not None:
        stored_data = stored.get("data") if isinstance(stored, dict) else None
        check_same_training_data((stored_data or {}).get("train_sources"), train_sources, str(path))
    model = stored.get("model", {}) if isinstance(stored, dict) else {}
    backbone = model.get("backbone", "?") if isinstance(model, dict) else "?"
    theirs, ours = checkpoint["state_dict"], module.state_dict()
    for key in sorted(set(theirs) | set(ours)):
        stored_shape, own_shape = _shape(theirs.get(key)), _shape(ours.get(key))
        if stored_shape != own_shape:
            raise InputError(
                f"ckpt_path={path}: its weights do not fit this run's network ({key}: "
                f"{stored_shape} in the checkpoint of backbone {backbone}, {own_shape} here); "
                "resume with the checkpoint's model and data (the same backbone and identities)"
            )
    for key, value in theirs.items():  # a diverged run's weights would only give NaN again
        if isinstance(value, torch.Tensor) and value.is_floating_point():
            bad = int((~torch.isfinite(value)).sum())
            if bad:
                raise InputError(
                    f"ckpt_path={path}: weight {key} has {bad} non-finite value(s) (NaN or inf); "
                    "a diverged checkpoint cannot be resumed: resume from an earlier one, or "
                    "start again with a lower optim.lr"
                )
    done = int(checkpoint.get("epoch", -1)) + 1
    if max_epochs is not None and max_epochs < done:
        raise InputError(
            f"ckpt_path={path}: the checkpoint has finished {done} epochs, beyond "
            f"trainer.max_epochs={max_epochs}; expected trainer.max_epochs >= {done} to resume"
        )


def link_resumed_run(output_dir: Path, resume_path: Path) -> Path:
    """`resumed_from` in the new run folder points at the run folder it continues."""
    previous = resume_path.resolve().parent.parent
    link = output_dir / "resumed_from"
    if previous != output_dir.resolve() and not link.exists():
        link.symlink_to(previous, target_is_directory=True)
    return previous
