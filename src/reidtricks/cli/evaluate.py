"""Evaluate a checkpoint: `python -m reidtricks.evaluate ckpt=PATH [data=NAME] [eval.rerank=true]`."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
from hydra.core.config_store import ConfigStore
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from reidtricks.adaptation.camera_bn import CameraBNFeatureModule, checkpoint_camera_statistics
from reidtricks.cli.app import hydra_command
from reidtricks.cli.options import apply_threads
from reidtricks.cli.sweep import job_errors
from reidtricks.data.datamodule import ReIDDataModule
from reidtricks.data.trained_ids import check_unseen, image_keys
from reidtricks.data.trials import check_trials, num_splits_of, with_split
from reidtricks.evaluation.evaluator import Evaluator
from reidtricks.evaluation.feature_module import FeatureModule
from reidtricks.evaluation.settings import eval_overrides_schema
from reidtricks.inference.checkpoint import (
    CheckpointSpec,
    build_net_from_checkpoint,
    checkpoint_spec,
    checkpoint_test_sources,
    dataset_classes,
    dataset_from_spec,
    generated_under,
    load_checkpoint,
)
from reidtricks.reports.plots import plot_ranked_retrievals
from reidtricks.reports.tables import print_results_table
from reidtricks.validate import require_bool

# conf/evaluate.yaml composes it as its `eval` node: every test-time key, null by default.
ConfigStore.instance().store(name="eval_overrides", node=eval_overrides_schema())


def explicit_data_dir(cfg: DictConfig) -> str | None:
    """paths.data_dir when the user chose it (command line or REIDTRICKS_DATA_DIR), else None:
    the checkpoint's test sets are then read where training read them."""
    try:
        overrides = HydraConfig.get().overrides.task
    except ValueError:  # not under @hydra.main (compose API in tests)
        overrides = []
    chosen = any(o.lstrip("+~").startswith("paths.data_dir=") for o in overrides)
    if chosen or os.environ.get("REIDTRICKS_DATA_DIR"):
        return str(cfg.paths.data_dir)
    return None


def command_line_overrides() -> list[str]:
    """The task overrides of this command ([] outside @hydra.main, e.g. the compose API)."""
    try:
        return list(HydraConfig.get().overrides.task)
    except ValueError:
        return []


def checkpoint_trained_images(
    spec: CheckpointSpec, source: str, test_sources: dict[str, Any]
) -> tuple[set[str], dict[type, int]]:
    """The training images of the checkpoint's sets that a test source shares a class with, read
    where that test set lies; and the split it trained on of each such class (not combineall)."""
    stored = spec.data.get("train_sources")
    if not isinstance(stored, dict):
        return set(), {}
    classes = dataset_classes()
    trained: set[str] = set()
    trained_split: dict[type, int] = {}
    for name, entry in stored.items():
        cls = classes.get(entry.get("_target_")) if isinstance(entry, dict) else None
        for test in test_sources.values():
            if cls is None or type(test) is not cls:
                continue
            dataset = dataset_from_spec(name, entry, source, getattr(test, "root", None))
            trained |= image_keys(dataset.load().train)
            if not getattr(dataset, "combineall", False):
                trained_split[cls] = int(getattr(dataset, "split", 0))
    return trained, trained_split


def use_trained_splits(
    datamodule: ReIDDataModule, trained_split: dict[type, int], trials_chosen: bool
) -> None:
    """A test set the model trained a split of is scored on that split by default (not the data
    config's split 0), unless the user chose a split or trials on the command line."""
    chosen = trials_chosen or any(".split=" in o for o in command_line_overrides())
    for name, test in list(datamodule.test_sources.items()):
        split = trained_split.get(type(test))
        if chosen or split is None or num_splits_of(test) == 1 or test.split == split:
            continue
        datamodule.test_sources[name] = with_split(test, split)
        print(f"{name}: scoring split {split}, the split the checkpoint trained on")


def build_test_datamodule(cfg: DictConfig, checkpoint: dict[str, Any]) -> ReIDDataModule:
    """The test sets: the user's `data=...` (a config they chose), or the checkpoint's own sets
    rebuilt from plain fields; images at the size and normalisation the network was trained on."""
    source = str(cfg.ckpt)
    spec = checkpoint_spec(checkpoint, source)
    size = {"height": spec.input.height, "width": spec.input.width}
    stats = {"mean": list(spec.input.mean), "std": list(spec.input.std)}
    trials = cfg.get("trials")
    if OmegaConf.is_config(trials):
        trials = OmegaConf.to_container(trials, resolve=True)
    # `trials` (null: as the data config, or the checkpoint, says) for sets with random splits.
    trials = {} if trials is None else {"test_trials": check_trials(trials, "trials")}
    trials_key = {"test_trials_key": "trials" if trials else "data.test_trials"}
    if cfg.get("data"):
        data_cfg = OmegaConf.to_container(cfg.data, resolve=True)
        data_cfg["transform"].update(size)
        return instantiate({**data_cfg, **trials, **trials_key}, _convert_="all")
    stored = checkpoint_test_sources(spec, source, explicit_data_dir(cfg))
    test_sources = generated_under(stored, str(cfg.paths.data_dir))
    return ReIDDataModule(
        train_sources=test_sources,  # parsed once; evaluation trains nothing
        test_sources=test_sources,
        sampler={"p": 1, "k": 1},
        transform={**size, **stats},
        loader=OmegaConf.to_container(cfg.loader, resolve=True),
        seed=0,  # no training batches are drawn
        verify_images=False,
        test_trials=trials.get("test_trials", spec.data.get("test_trials")),
        **trials_key,
    )


def evaluate_checkpoint(cfg: DictConfig) -> dict[str, Any]:
    """Test the checkpoint's network on every test set of the chosen data; write metrics.json."""
    start = time.time()
    apply_threads(cfg)
    output_dir = Path(cfg.paths.output_dir)
    checkpoint = load_checkpoint(cfg.ckpt)
    spec = checkpoint_spec(checkpoint, str(cfg.ckpt))
    net = build_net_from_checkpoint(checkpoint, source=str(cfg.ckpt))
    datamodule = build_test_datamodule(cfg, checkpoint)
    trained, trained_split = checkpoint_trained_images(spec, str(cfg.ckpt), datamodule.test_sources)
    use_trained_splits(datamodule, trained_split, cfg.get("trials") is not None)
    datamodule.prepare_data()
    datamodule.setup("test")
    for test_set in datamodule.test_sets:  # the trial rule (docs/DATASETS.md)
        check_unseen(
            test_set.name,
            [(t.split, t.query, t.gallery) for t in test_set.trials]
            or [(None, test_set.query, test_set.gallery)],
            trained,
            require_bool("test_on_trained_ids", cfg.get("test_on_trained_ids", False)),
            f"{cfg.ckpt} trained on them; score the split it trained on (trials=null), or say "
            "test_on_trained_ids=true",
        )
    print(datamodule.statistics())

    overrides = OmegaConf.to_container(cfg.eval, resolve=True)
    eval_cfg = spec.eval.updated({k: v for k, v in overrides.items() if v is not None})
    variants = OmegaConf.to_container(cfg.variants, resolve=True) if cfg.get("variants") else {}
    variants = {k: eval_cfg.updated(v, key=f"variants.{k}") for k, v in variants.items()}
    evaluator = Evaluator(eval_cfg, variants)
    trainer: pl.Trainer = instantiate(cfg.trainer, logger=False, callbacks=[])
    module = FeatureModule(net, evaluator)
    if require_bool("camera_bn", cfg.get("camera_bn", False)):  # adapt.camera_bn checkpoints
        names = [t.name for t in datamodule.test_sets]
        statistics = checkpoint_camera_statistics(checkpoint, str(cfg.ckpt), names)
        module = CameraBNFeatureModule(net, evaluator, statistics)
    trainer.test(module, datamodule=datamodule, verbose=False)
    scored = evaluator.score(eval_cfg)
    per_set = {name: score.metrics for name, score in scored.items()}
    metrics = {
        "checkpoint": str(cfg.ckpt),
        "stage": spec.stage,
        "eval": eval_cfg.as_dict(),
        "camera_bn": bool(cfg.get("camera_bn", False)),
        "test_sets": per_set,
        # Other test-time settings, scored from the same features (one pass of the network).
        "variants": {
            name: {test_set: score.metrics for test_set, score in evaluator.score(vcfg).items()}
            for name, vcfg in variants.items()
        },
        "wall_time_s": round(time.time() - start, 1),
    }
    if trainer.is_global_zero:
        output_dir.mkdir(parents=True, exist_ok=True)
        (output_dir / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
        rerank = " + re-ranking" if eval_cfg.rerank else ""
        print_results_table(per_set, title=f"{cfg.ckpt}{rerank}")
        for name, variant_sets in metrics["variants"].items():
            print_results_table(variant_sets, title=f"variant {name}")
        if cfg.get("plot_queries", 0):
            for name, score in scored.items():  # a set with trials: its first trial
                png = output_dir / f"ranked_{name}.png"
                plot_ranked_retrievals(
                    score.distmat.cpu(), score.shown, png, num_queries=int(cfg.plot_queries)
                )
                print(f"Ranked retrievals: {png}")
        print(f"Run folder: {output_dir}")
    return metrics


@hydra_command("evaluate")
def main(cfg: DictConfig) -> None:
    with job_errors():
        evaluate_checkpoint(cfg)


if __name__ == "__main__":
    main()
