"""Train and evaluate: `python -m reidtricks.train [+trick=STAGE] [experiment=NAME] [key=value ...]`."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from hydra.experimental.callback import Callback
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.callbacks import ModelCheckpoint
from pytorch_lightning.loggers import CSVLogger
from pytorch_lightning.utilities import rank_zero_only

from reidtricks import __version__
from reidtricks.cli.app import hydra_command, one_line_errors
from reidtricks.cli.sweep import job_errors
from reidtricks.errors import InputError
from reidtricks.evaluation.metrics import EvalResult
from reidtricks.reports.plots import plot_training_curves
from reidtricks.reports.tables import print_results_table
from reidtricks.training.ddp import isolated_ddp_job, patch_lightning_ddp_launcher
from reidtricks.training.epoch_timer import EpochTimer
from reidtricks.training.module import ReIDModule
from reidtricks.training.preflight import check_before_training, check_run_keys
from reidtricks.training.run_safety import (
    AtomicCheckpointIO,
    LastCheckpoint,
    check_resume_fits,
    claimed_run_dir,
    link_resumed_run,
    resolve_resume_path,
)
from reidtricks.training.settings import check_run_settings


def build_callbacks(cfg: DictConfig) -> tuple[list[pl.Callback], ModelCheckpoint, LastCheckpoint]:
    """The callbacks of conf/callbacks, and among them the best-mAP and last checkpoints."""
    callbacks = [instantiate(conf) for conf in (cfg.get("callbacks") or {}).values()]
    best = next((c for c in callbacks if isinstance(c, ModelCheckpoint)), None)
    last = next((c for c in callbacks if isinstance(c, LastCheckpoint)), None)
    if best is None or last is None:
        raise InputError(
            "callbacks: expected a ModelCheckpoint (best) and a LastCheckpoint (last), as in "
            "conf/callbacks/default.yaml"
        )
    return callbacks, best, last


def build_loggers(cfg: DictConfig) -> list[Any]:
    return [instantiate(conf) for conf in (cfg.get("logger") or {}).values()]


def test_final_weights(
    trainer: pl.Trainer, module: ReIDModule, datamodule: pl.LightningDataModule
) -> dict[str, dict[str, dict[str, Any]]]:
    """Every test set scored with the default settings ("") and each eval variant, from one
    feature extraction of the final weights (a validation at the last step is reused)."""
    if not module.evaluator.has_features(trainer.global_step):
        trainer.test(module, datamodule=datamodule, verbose=False)
    return module.evaluator.results()


def write_training_curves(trainer: pl.Trainer, output_dir: Path) -> None:
    """training_curves.png from the CSV log, when there is one."""
    for logger in trainer.loggers:
        if isinstance(logger, CSVLogger):
            csv_path = Path(logger.log_dir) / "metrics.csv"
            if csv_path.is_file():
                plot_training_curves(csv_path, output_dir / "training_curves.png")


class CheckSettings(Callback):
    """Hydra callback of conf/train.yaml: every setting checked before Hydra creates the run
    folder; bad input is one `error:` line."""

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        with one_line_errors():
            check_run_settings(config)


def train(cfg: DictConfig) -> dict[str, Any]:
    """Fit, then evaluate the final weights on every test set; returns what metrics.json holds."""
    settings = check_run_settings(cfg)  # every key checked before a folder or file is written
    check_run_keys(cfg)  # trainer.max_epochs, threads; warnings for a schedule past the end
    with claimed_run_dir(cfg.paths.output_dir):
        return _train(cfg, settings)


def _train(cfg: DictConfig, checked: dict[str, Any]) -> dict[str, Any]:
    start = time.time()
    output_dir = Path(cfg.paths.output_dir)
    settings, model_cfg = checked["module"], checked["model"]
    resume_path = resolve_resume_path(cfg.get("ckpt_path"), cfg.paths.log_dir, cfg.task_name)
    if cfg.get("threads") is not None:
        torch.set_num_threads(int(cfg.threads))
    pl.seed_everything(cfg.seed, workers=True)

    datamodule = instantiate(cfg.data, _convert_="all")
    datamodule.prepare_data()
    datamodule.setup("fit")
    rank_zero_only(print)(datamodule.statistics())
    check_before_training(cfg, datamodule)

    net = instantiate(cfg.model)(num_classes=datamodule.num_classes)
    run_info = {
        "config": OmegaConf.to_container(cfg, resolve=True),
        # build_reid_net's arguments, whole: what evaluate / extract / export rebuild the net with
        "model_args": {**model_cfg.as_kwargs(), "num_classes": datamodule.num_classes},
        "stage": cfg.stage,
        "seed": int(cfg.seed),
        "reidtricks_version": __version__,
    }
    module = ReIDModule(
        net,
        num_classes=datamodule.num_classes,
        **settings,
        channels_last=bool(cfg.get("channels_last", False)),
        run_info=run_info,
    )
    callbacks, best, last = build_callbacks(cfg)
    trainer: pl.Trainer = instantiate(
        cfg.trainer,
        callbacks=callbacks,
        logger=build_loggers(cfg),
        plugins=[AtomicCheckpointIO()],
    )
    if resume_path is not None:
        check_resume_fits(
            resume_path,
            module,
            cfg.trainer.get("max_epochs"),
            OmegaConf.to_container(cfg.data.train_sources, resolve=True),
        )
        if trainer.is_global_zero:
            link_resumed_run(output_dir, resume_path)
    trainer.fit(module, datamodule=datamodule, ckpt_path=resume_path, weights_only=True)

    metrics: dict[str, Any] = {
        "stage": cfg.stage,
        "cell": cfg.cell,
        "seed": int(cfg.seed),
        "train_sets": list(cfg.data.train_sources),
        "epochs": trainer.current_epoch,
        "best_checkpoint": best.best_model_path or None,
        "resumed_from": str(resume_path) if resume_path else None,
    }
    if cfg.get("run_test", True):
        per_variant = test_final_weights(trainer, module, datamodule)
        per_set = per_variant.pop("")
        # The final weights, as last.ckpt holds them (written at the end of the last epoch).
        metrics["checkpoint"] = str(last.path) if last.path.is_file() else None
        first = next(iter(per_set.values()))
        metrics.update({"dataset": next(iter(per_set)), **{k: first[k] for k in EvalResult.KEYS}})
        metrics["test_sets"] = per_set
        # Other test-time settings of the same weights (re-ranking, BNNeck feature x metric).
        metrics["variants"] = per_variant
    timer = next((c for c in callbacks if isinstance(c, EpochTimer)), None)
    if timer is not None:
        metrics["train_epoch_s"] = [round(s, 2) for s in timer.seconds]
    metrics["wall_time_s"] = round(time.time() - start, 1)
    if trainer.is_global_zero:
        (output_dir / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
        write_training_curves(trainer, output_dir)
        if "test_sets" in metrics:
            print_results_table(metrics["test_sets"], title=f"{cfg.stage} (seed {cfg.seed})")
        print(f"Run folder: {output_dir}")
    return metrics


@hydra_command("train")
def main(cfg: DictConfig) -> float | None:
    patch_lightning_ddp_launcher()
    with job_errors(), isolated_ddp_job():
        return train(cfg).get("mAP")  # the value an optimising sweeper maximises
    return None  # a failed sweep job (its error is in its folder; the sweep goes on)


if __name__ == "__main__":
    main()
