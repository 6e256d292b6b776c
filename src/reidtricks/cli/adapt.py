"""Adapt a trained model to unlabelled images by clustering pseudo-identities:
`python -m reidtricks.adapt ckpt=SOURCE.ckpt target=folder target.images=DIR` or `target=NAME`."""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
from hydra.core.config_store import ConfigStore
from hydra.experimental.callback import Callback
from hydra.utils import instantiate
from omegaconf import DictConfig

from reidtricks.adaptation.checkpoint_info import stored_channels_last, stored_training
from reidtricks.adaptation.rounds import Adaptation, AdaptResult, AdaptSetup, scores_line
from reidtricks.adaptation.settings import AdaptConfig
from reidtricks.adaptation.target import Target, check_batch_fits, dataset_target, folder_target
from reidtricks.cli.app import hydra_command, one_line_errors
from reidtricks.cli.evaluate import checkpoint_trained_images
from reidtricks.cli.options import apply_threads
from reidtricks.cli.sweep import job_errors
from reidtricks.config import typed_config
from reidtricks.data.settings import LoaderConfig
from reidtricks.data.trained_ids import check_unseen, image_keys
from reidtricks.errors import InputError
from reidtricks.inference.checkpoint import (
    CheckpointSpec,
    build_net_from_checkpoint,
    checkpoint_spec,
    load_checkpoint,
)
from reidtricks.inference.files import save_npz
from reidtricks.reports.adaptation_plots import plot_adaptation_rounds
from reidtricks.training.run_safety import claimed_run_dir
from reidtricks.training.settings import plain
from reidtricks.validate import require_bool, require_int

# conf/adapt.yaml composes it as its `adapt` node: AdaptConfig's defaults.
ConfigStore.instance().store(name="_adapt", node=asdict(AdaptConfig()))


def check_adapt_settings(cfg: DictConfig) -> tuple[AdaptConfig, LoaderConfig]:
    """Every setting of the command, checked (one line naming the key) before anything runs."""
    require_int("seed", cfg.get("seed"))
    if cfg.get("threads") is not None:
        require_int("threads", cfg.threads, minimum=1)
    require_bool("progress", cfg.get("progress"))
    require_bool("test_on_trained_ids", cfg.get("test_on_trained_ids"))
    loader = typed_config(
        LoaderConfig, {"persistent_workers": False, **plain(cfg.get("loader") or {})}, "loader"
    )
    return AdaptConfig.from_mapping(plain(cfg.adapt)), loader


class CheckSettings(Callback):
    """Hydra callback of conf/adapt.yaml: the settings checked before Hydra creates the run
    folder; bad input is one `error:` line."""

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        with one_line_errors():
            check_adapt_settings(config)


def build_target(cfg: DictConfig, spec: CheckpointSpec, loader: LoaderConfig) -> Target:
    """target=folder (target.images) or target=NAME (target.dataset, a conf/dataset entry)."""
    node = cfg.get("target")
    keys = set(node) if isinstance(node, DictConfig) else set()  # `in node` skips a ??? value
    if "images" in keys:
        return folder_target(str(node.images))
    if "dataset" in keys:
        name = str(node.get("name") or "target")
        return dataset_target(name, plain(node.dataset), spec.input, loader)
    raise InputError(
        f"target={plain(node)!r}: expected target=folder target.images=DIR or target=NAME "
        "(a dataset, see conf/target)"
    )


def check_trial_rule(cfg: DictConfig, spec: CheckpointSpec, target: Target) -> None:
    """The target's test people were never trained on: not in its own training split (which
    adaptation trains on, unlabelled) nor among the source's training images of that set."""
    if target.test is None:
        return
    trained, _ = checkpoint_trained_images(spec, str(cfg.ckpt), target.test.test_sources)
    trained |= image_keys(target.train_items)
    for test_set in target.test.test_sets:
        check_unseen(
            test_set.name,
            [(t.split, t.query, t.gallery) for t in test_set.trials]
            or [(None, test_set.query, test_set.gallery)],
            trained,
            bool(cfg.test_on_trained_ids),
            "the source checkpoint or the target's training split holds them; adapt to "
            "another split, or say test_on_trained_ids=true",
        )


def write_outputs(
    output_dir: Path, metrics: dict[str, Any], result: AdaptResult, target: Target
) -> None:
    """metrics.json, adapt_rounds.png and pseudo_labels.npz (every round's labels per image)."""
    (output_dir / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    plot_adaptation_rounds(
        result.rounds, result.direct, output_dir / "adapt_rounds.png", result.camera_bn
    )
    save_npz(
        output_dir / "pseudo_labels.npz",
        paths=np.array(target.paths, dtype=str),
        labels=np.stack(result.labels).astype(np.int64),  # rounds x images, -1: left out
    )


def adaptation_setup(
    cfg: DictConfig, checkpoint: dict[str, Any], settings: AdaptConfig, loader: LoaderConfig
) -> AdaptSetup:
    """What the rounds read from the source checkpoint and the command's config."""
    source = str(cfg.ckpt)
    loss, transform = stored_training(checkpoint["reidtricks"])
    return AdaptSetup(
        spec=checkpoint_spec(checkpoint, source),
        source_info=checkpoint["reidtricks"],
        source_path=source,
        settings=settings,
        transform=transform,
        loader=loader,
        loss=loss,
        seed=int(cfg.seed),
        output_dir=Path(cfg.paths.output_dir),
        make_trainer=lambda **overrides: instantiate(cfg.trainer, **overrides),
        threads=cfg.get("threads"),
        progress=bool(cfg.progress),
        channels_last=stored_channels_last(checkpoint["reidtricks"]),
    )


def adapt(cfg: DictConfig) -> dict[str, Any]:
    """Every round of the adaptation; returns what metrics.json holds."""
    start = time.time()
    settings, loader = check_adapt_settings(cfg)
    apply_threads(cfg)  # first, as the other commands: reading and parsing use them too
    source = str(cfg.ckpt)
    checkpoint = load_checkpoint(source)
    setup = adaptation_setup(cfg, checkpoint, settings, loader)
    net = build_net_from_checkpoint(checkpoint, source)
    target = build_target(cfg, setup.spec, loader)
    p, k = setup.batch
    check_batch_fits(target, p, k)
    check_trial_rule(cfg, setup.spec, target)
    pl.seed_everything(int(cfg.seed), workers=True)
    with claimed_run_dir(setup.output_dir):
        print(
            f"adapting {source} to {target.name}: {len(target.paths)} images"
            + (" (identities kept aside to measure the pseudo-labels)" if target.pids else "")
            + f"; P {p} x K {k}, {settings.rounds} rounds of {settings.epochs_per_round} epoch(s)"
        )
        result = AdaptResult()

        def run_metrics(stopped: str | None = None) -> dict[str, Any]:
            return {
                "source_checkpoint": source,
                "target": target.describe(),
                "adapt": asdict(settings),
                "batch": {"p": p, "k": k},
                "seed": int(cfg.seed),
                "direct_transfer": result.direct,
                "adabn": result.adabn,
                "camera_bn": result.camera_bn,
                "rounds": result.rounds,
                "checkpoint": result.checkpoint,
                "stopped": stopped,  # the error that ended the run before its last round
                "wall_time_s": round(time.time() - start, 1),
            }

        try:
            Adaptation(net, setup, target).run(result)
        except InputError as error:  # e.g. too few clusters: keep what the rounds measured
            if result.rounds:
                write_outputs(setup.output_dir, run_metrics(str(error)), result, target)
                print(f"{len(result.rounds)} round(s) kept in {setup.output_dir / 'metrics.json'}")
            raise
        metrics = run_metrics()
        write_outputs(setup.output_dir, metrics, result, target)
    if result.direct:
        print(f"direct transfer: {scores_line(result.direct)}")
        if result.adabn:
            print(f"AdaBN:           {scores_line(result.adabn)}")
        if result.camera_bn:
            print(f"camera BN:       {scores_line(result.camera_bn)}")
        print(f"adapted:         {scores_line(result.rounds[-1]['test_sets'])}")
        if result.rounds[-1].get("camera_bn"):
            print(f"adapted, camera BN: {scores_line(result.rounds[-1]['camera_bn'])}")
    print(f"Adapted checkpoint: {result.checkpoint}")
    print(f"Run folder: {setup.output_dir}")
    return metrics


@hydra_command("adapt")
def main(cfg: DictConfig) -> None:
    with job_errors():
        adapt(cfg)


if __name__ == "__main__":
    main()
