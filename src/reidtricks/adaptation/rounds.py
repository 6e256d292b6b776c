"""Clustering-based adaptation, round by round (docs/METHOD.md, "Adapting to unlabelled images"):
features of every target image with the current network, pseudo-identities from DBSCAN on their
k-reciprocal Jaccard distance, a new classifier from the cluster centroids, P x K training on the
clustered images, then a checkpoint and, where the target has them, its measurements."""

from __future__ import annotations

import copy
import dataclasses
import logging
import math
import os
import shutil
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import DataLoader

from reidtricks.adaptation.batchnorm import (
    bn_statistics,
    load_bn_statistics,
    reestimate_bn_statistics,
)
from reidtricks.adaptation.camera_bn import (
    CameraBatchModule,
    CameraBNFeatureModule,
    CameraStatistics,
    stored_camera_statistics,
)
from reidtricks.adaptation.checkpoint_info import adapted_run_info
from reidtricks.adaptation.clustering import (
    NOISE,
    camera_spread,
    cluster_centroids,
    dbscan_labels,
    jaccard_distances,
    label_quality,
)
from reidtricks.adaptation.memory import ClusterMemory
from reidtricks.adaptation.settings import AdaptConfig
from reidtricks.adaptation.target import Target
from reidtricks.data.image_dataset import ImageDataset
from reidtricks.data.sample_rng import EpochTaggedBatches
from reidtricks.data.sampler import PKBatchSampler
from reidtricks.data.settings import LoaderConfig, TransformConfig
from reidtricks.data.splits import ReIDItem
from reidtricks.data.transforms import build_train_transform
from reidtricks.errors import InputError
from reidtricks.evaluation.evaluator import Evaluator
from reidtricks.evaluation.feature_module import FeatureModule
from reidtricks.inference.checkpoint import CheckpointSpec
from reidtricks.inference.extractor import FeatureExtractor
from reidtricks.models import ReIDNet
from reidtricks.training.module import ReIDModule
from reidtricks.training.run_safety import AtomicCheckpointIO
from reidtricks.training.settings import LossConfig, OptimConfig

BAD_TARGET_IMAGE = "(every target image must be readable: remove or replace the file)"


@dataclass(frozen=True)
class AdaptSetup:
    """What a run reads besides the network and the target: the source checkpoint's fields and
    the command's settings. `make_trainer(**overrides)` builds a Lightning Trainer."""

    spec: CheckpointSpec
    source_info: Mapping[str, Any]
    source_path: str
    settings: AdaptConfig
    transform: TransformConfig
    loader: LoaderConfig
    loss: LossConfig
    seed: int
    output_dir: Path
    make_trainer: Callable[..., pl.Trainer]
    threads: int | None = None
    progress: bool = True
    channels_last: bool = False  # the source run's memory layout (a speed setting)

    @property
    def batch(self) -> tuple[int, int]:
        """(P, K) of the training batches."""
        return self.settings.batch(self.spec.data.get("sampler"))

    @property
    def optim(self) -> OptimConfig:
        """Adam at adapt.lr with adapt.weight_decay, constant within a round."""
        s = self.settings
        return OptimConfig(lr=s.lr, weight_decay=s.weight_decay, weight_decay_bias=s.weight_decay,
                           milestones=(), warmup=False)  # fmt: skip


@dataclass
class AdaptResult:
    """Per round: its metrics.json record and its pseudo-labels (one per target image, NOISE
    for those left out); `direct`: the source network's test scores (None without a test)."""

    rounds: list[dict[str, Any]] = field(default_factory=list)
    labels: list[np.ndarray] = field(default_factory=list)
    direct: dict[str, dict[str, Any]] | None = None
    adabn: dict[str, dict[str, Any]] | None = None  # after adapt.adabn, before round 1
    camera_bn: dict[str, dict[str, Any]] | None = None  # round 0 with adapt.camera_bn

    @property
    def checkpoint(self) -> str | None:
        return self.rounds[-1]["checkpoint"] if self.rounds else None


def round_seed(seed: int, round_index: int) -> int:
    """The sampler and augmentation seed of one round: a hash of (seed, round)."""
    words = [int(seed) % 2**64, int(round_index)]
    return int(np.random.SeedSequence(words).generate_state(1, dtype=np.uint32)[0])


@torch.no_grad()
def target_features(
    extractor: FeatureExtractor, paths: Sequence[str], num_workers: int, progress: bool
) -> tuple[Tensor, Tensor]:
    """(test-time feature, classifier input f_i) of every image, rows in the order of `paths`,
    each averaged with the mirrored image when the extractor flips; fp32 on the CPU."""
    net, name = extractor.net, extractor.feature
    tested, head = [], []
    for _, images, _ in extractor.iter_file_batches(
        paths,
        num_workers=num_workers,
        progress=progress,
        description=f"features of {len(paths)} target images",
        bad_image_hint=BAD_TARGET_IMAGE,
    ):
        images = images.to(extractor.device)
        out = net(images)
        feat, feat_i = out.feature(name).float(), out.feat_after_bn.float()
        if extractor.flip:  # as evaluation.evaluator.eval_time_features
            mirror = net(images.flip(dims=[3]))
            feat = (feat + mirror.feature(name).float()) / 2
            feat_i = (feat_i + mirror.feat_after_bn.float()) / 2
        tested.append(feat.cpu())
        head.append(feat_i.cpu())
    return torch.cat(tested), torch.cat(head)


def centroid_classifier(centroids: Tensor, bias: bool) -> nn.Linear:
    """A C-way identity classifier whose weight rows are the L2-normalised cluster centroids of
    the features it sees (bias, if any, 0): each pseudo-identity starts at its cluster."""
    layer = nn.Linear(centroids.shape[1], centroids.shape[0], bias=bias)
    with torch.no_grad():
        layer.weight.copy_(F.normalize(centroids.float(), dim=1))
        if layer.bias is not None:
            layer.bias.zero_()
    return layer


def class_cameras(labels: np.ndarray, camids: Sequence[int], classes: int) -> Tensor:
    """Each class's camera: the most common one among its images (ties: the lowest id)."""
    labels, camids = np.asarray(labels), np.asarray(camids)
    out = np.zeros(classes, dtype=np.int64)
    for c in range(classes):
        out[c] = np.bincount(camids[labels == c]).argmax()
    return torch.from_numpy(out)


def round_classifier(
    centroids: Tensor, settings: AdaptConfig, bias: bool, row_cameras: Tensor | None = None
) -> nn.Linear:
    """The round's classifier from its class centroids: adapt.classifier "linear" (learned) or
    "memory" (a ClusterMemory, moved by momentum; camera-aware with `row_cameras`)."""
    if settings.classifier == "memory":
        return ClusterMemory(
            centroids, settings.memory_temperature, settings.memory_momentum, bias=bias,
            row_cameras=row_cameras,
        )  # fmt: skip
    return centroid_classifier(centroids, bias=bias)


class MemoryUpdate(pl.Callback):
    """Before every training step a camera-aware ClusterMemory learns the batch's labels and
    cameras; after it, the memory takes in the batch's features."""

    def on_train_batch_start(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        memory = pl_module.net.classifier
        if memory.row_cameras is not None:
            memory.expect(batch[1], batch[2])

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any,
        batch_idx: int,
    ) -> None:  # fmt: skip
        pl_module.net.classifier.update(batch[1])


def check_clusters(labels: np.ndarray, settings: AdaptConfig, p: int, round_index: int) -> int:
    """The number of clusters; one line naming adapt.eps when there are too few to train on."""
    clusters = int(labels.max()) + 1 if len(labels) else 0
    kept = int((labels != NOISE).sum())
    where = f"round {round_index}: DBSCAN (adapt.min_samples={settings.min_samples})"
    eps = settings.eps
    if clusters == 0:
        raise InputError(
            f"adapt.eps={eps}: {where} left all {len(labels)} target images out (no cluster); "
            f"raise adapt.eps (e.g. {min(eps + 0.1, 0.95):.2g}) or lower adapt.min_samples"
        )
    if clusters == 1:
        raise InputError(
            f"adapt.eps={eps}: {where} put all {kept} clustered images in one cluster; lower "
            f"adapt.eps (e.g. {max(eps - 0.1, 0.05):.2g}) to split it"
        )
    if clusters < p:
        raise InputError(
            f"adapt.eps={eps}: {where} found {clusters} clusters, fewer than the P={p} "
            f"identities of a batch ({len(labels) - kept} images left out); lower adapt.p, "
            "lower adapt.min_samples where people have few images each (e.g. 2), raise "
            "adapt.eps if most images were left out, lower it if clusters merged"
        )
    return clusters


def training_labels(labels: np.ndarray, clusters: int, outliers: str) -> np.ndarray:
    """The round's training classes: the clusters 0..clusters-1, and with outliers="instance"
    each image DBSCAN left out as a class of its own (clusters, clusters+1, ... in image order);
    with "drop" those images stay NOISE and out of the round."""
    if outliers == "drop":
        return labels
    out = labels.copy()
    noise = np.flatnonzero(labels == NOISE)
    out[noise] = clusters + np.arange(len(noise))
    return out


def pseudo_label_loader(items: Sequence[ReIDItem], setup: AdaptSetup, seed: int) -> DataLoader:
    """P x K batches over the pseudo-identities with the checkpoint's training augmentation,
    every draw a function of (seed, epoch, index) as in training (data/sample_rng.py)."""
    p, k = setup.batch
    dataset = ImageDataset(items, build_train_transform(setup.transform), seed=seed)
    sampler = PKBatchSampler([pid for _, pid, _ in items], p=p, k=k, seed=seed)
    return DataLoader(
        dataset,
        batch_sampler=EpochTaggedBatches(sampler),
        num_workers=setup.loader.num_workers,
        pin_memory=setup.loader.pin_memory,
        generator=torch.Generator().manual_seed(seed),
    )


def _percent(value: float) -> str:
    return f"{100 * value:.1f}%"


def scores_line(scores: Mapping[str, Mapping[str, Any]] | None) -> str:
    """`NAME R1 x% mAP y%` for every test set ('' without scores)."""
    if not scores:
        return ""
    return "; ".join(
        f"{name} R1 {_percent(m['rank1'])} mAP {_percent(m['mAP'])}" for name, m in scores.items()
    )


def round_line(record: Mapping[str, Any], rounds: int) -> str:
    """The one line a round prints: clusters, images kept and left out, the pseudo-labels'
    quality and the test scores where the target has labels."""
    parts = [
        f"round {record['round']}/{rounds}: {record['clusters']} clusters, "
        f"{record['kept']} of {record['images']} images kept ({record['left_out']} left out"
        + (", each its own class)" if record.get("instance_classes") else ")")
    ]
    if record.get("purity") is not None:
        parts.append(
            f"purity {record['purity']:.3f} NMI {record['nmi']:.3f} ARI {record['ari']:.3f}"
        )
    if record.get("multi_camera_clusters") is not None:
        spread = f"{record['multi_camera_clusters']} clusters span 2+ cameras"
        together = record.get("cross_camera_together")
        if together is not None and not math.isnan(together):
            spread += f", {_percent(together)} of cross-camera same-person pairs together"
        parts.append(spread)
    if record.get("test_sets"):
        parts.append(scores_line(record["test_sets"]))
    if record.get("camera_bn"):
        parts.append(f"camera BN: {scores_line(record['camera_bn'])}")
    parts.append(f"{record['seconds']:.1f} s")
    return "; ".join(parts)


class Adaptation:
    """Runs the rounds on one network (trained in place) for one target."""

    def __init__(
        self,
        net: ReIDNet,
        setup: AdaptSetup,
        target: Target,
        report: Callable[[str], None] = print,
    ) -> None:
        self.net, self.setup, self.target, self.report = net, setup, target, report
        for flag in ("camera_aware", "camera_bn", "same_camera_penalty"):
            value = getattr(setup.settings, flag)
            if value and len(set(target.camids or ())) < 2:
                shown = str(value).lower() if isinstance(value, bool) else value
                raise InputError(
                    f"adapt.{flag}={shown}: target {target.name} has "
                    + ("one camera" if target.camids else "no camera ids")
                    + "; it needs images of 2+ cameras (target=folder: one sub-folder per camera)"
                )
        self.statistics: CameraStatistics | None = None  # adapt.camera_bn: the current ones
        if setup.channels_last:  # every pass in the source run's layout, not only training's
            self.net.to(memory_format=torch.channels_last)
        self._trainers = 0
        self.device = self.trainer(logger=False).strategy.root_device

    def trainer(self, **overrides: Any) -> pl.Trainer:
        """setup.make_trainer; Lightning's start-up lines (devices, tips) show once per run."""
        log = logging.getLogger("pytorch_lightning.utilities.rank_zero")
        level = log.level
        if self._trainers:
            log.setLevel(logging.WARNING)
        try:
            return self.setup.make_trainer(**overrides)
        finally:
            log.setLevel(level)
            self._trainers += 1

    def run(self, result: AdaptResult | None = None) -> AdaptResult:
        """Every round; the direct-transfer test first where the target has a test split.
        Fills `result` as it goes, so that a caller keeps the finished rounds of a run that
        stops with an error."""
        result = AdaptResult() if result is None else result
        result.direct = self.test()
        if result.direct is not None:
            self.report(f"round 0 (direct transfer): {scores_line(result.direct)}")
        if self.setup.settings.adabn:
            seen = self.adabn()
            result.adabn = self.test()
            scores = f": {scores_line(result.adabn)}" if result.adabn else ""
            self.report(f"round 0 + AdaBN (BatchNorm statistics of {seen} target images){scores}")
        if self.setup.settings.camera_bn:
            self.statistics = self.camera_statistics()
            result.camera_bn = self.test(self.statistics)
            if result.camera_bn is not None:
                self.report(
                    f"round 0 + camera BN (BatchNorm statistics of each of {len(self.statistics)}"
                    f" cameras): {scores_line(result.camera_bn)}"
                )
        for index in range(1, self.setup.settings.rounds + 1):
            record, labels = self.round(index)
            result.rounds.append(record)
            result.labels.append(labels)
            self.report(round_line(record, self.setup.settings.rounds))
        return result

    def round(self, index: int) -> tuple[dict[str, Any], np.ndarray]:
        """One round: cluster, train, checkpoint, measure; (its record, its pseudo-labels)."""
        settings, (p, _) = self.setup.settings, self.setup.batch
        clock = [time.time()]

        def lap() -> float:
            clock.append(time.time())
            return round(clock[-1] - clock[-2], 1)

        tested, head = self.features(self.statistics)
        seconds = {"features": lap()}
        distances = jaccard_distances(
            tested,
            settings.k1,
            settings.k2,
            self.setup.threads,
            cams=self.target.camids,
            same_camera_penalty=settings.same_camera_penalty,
        )
        labels = dbscan_labels(distances, settings.eps, settings.min_samples)
        clusters = check_clusters(labels, settings, p, index)
        kept = int((labels != NOISE).sum())
        seconds["clustering"] = lap()
        instances = len(labels) - kept if settings.outliers == "instance" else 0
        also = ", each trained as its own class" if instances else ""
        self.report(
            f"round {index}/{settings.rounds}: {clusters} clusters of {kept} images, "
            f"{len(labels) - kept} of {len(labels)} left out (in no cluster){also}; training "
            f"{settings.epochs_per_round} epoch(s)"
        )
        trainer = self.train(labels, head, clusters, index)
        seconds["training"] = lap()
        if self.statistics is not None:  # the checkpoint's, and the next round clusters with them
            self.statistics = self.camera_statistics()
            trainer.lightning_module.run_info["camera_bn"] = stored_camera_statistics(
                self.target.name, self.statistics
            )
            seconds["camera_statistics"] = lap()
        checkpoint = self.save(trainer, index)
        seconds["checkpoint"] = lap()
        scores = self.test()
        if scores is not None:
            seconds["test"] = lap()
        camera_scores = None
        if self.statistics is not None:
            camera_scores = self.test(self.statistics)
            seconds["camera_bn"] = lap()
        record: dict[str, Any] = {
            "round": index,
            "clusters": clusters,
            "images": len(labels),
            "kept": kept,
            "left_out": len(labels) - kept,
            "instance_classes": instances,
        }
        pids = None if self.target.pids is None else np.asarray(self.target.pids)
        if pids is not None:  # measurement only: after the round's training
            record.update(label_quality(labels, pids))
        if self.target.camids is not None:
            record.update(camera_spread(labels, np.asarray(self.target.camids), pids))
        loss = trainer.callback_metrics.get("train/loss_total")
        record["train_loss"] = float(loss) if loss is not None else None
        if scores is not None:
            first = next(iter(scores.values()))
            record.update(rank1=first["rank1"], mAP=first["mAP"], test_sets=scores)
        if camera_scores is not None:
            record["camera_bn"] = camera_scores
        record.update(
            checkpoint=str(checkpoint),
            seconds=round(clock[-1] - clock[0], 1),
            seconds_by_step=seconds,
        )
        return record, labels

    def extractor(self, flip: bool) -> FeatureExtractor:
        """A FeatureExtractor over a copy of the current network (it freezes what it wraps)."""
        spec = self.setup.spec
        return FeatureExtractor(
            copy.deepcopy(self.net),
            spec.input,
            feature=spec.eval.feature,
            flip=flip,
            device=self.device,
            batch_size=self.setup.loader.test_batch_size,
            spec=spec,
        )

    def features(self, statistics: CameraStatistics | None = None) -> tuple[Tensor, Tensor]:
        """Features of every target image with the current weights (a copy runs them); with
        `statistics`, each camera's images with that camera's BatchNorm statistics."""
        flip, paths = self.setup.spec.eval.flip, self.target.paths
        workers, progress = self.setup.loader.num_workers, self.setup.progress
        if statistics is None:
            return target_features(self.extractor(flip), paths, workers, progress)
        cams = np.asarray(self.target.camids)
        tested = head = None
        for cam, values in statistics.items():
            rows = np.flatnonzero(cams == cam)
            extractor = self.extractor(flip)
            load_bn_statistics(extractor.net, values)
            part = target_features(extractor, [paths[i] for i in rows], workers, progress)
            if tested is None:
                tested = part[0].new_zeros(len(paths), part[0].shape[1])
                head = part[1].new_zeros(len(paths), part[1].shape[1])
            tested[rows], head[rows] = part
        return tested, head

    def reestimate(self, extractor: FeatureExtractor, paths: Sequence[str], what: str) -> int:
        """reestimate_bn_statistics of the extractor's network over `paths` (the test
        transform, no mirror); the number of images."""
        layout = torch.channels_last if self.setup.channels_last else torch.contiguous_format
        batches = (
            images.to(self.device).contiguous(memory_format=layout)
            for _, images, _ in extractor.iter_file_batches(
                paths,
                num_workers=self.setup.loader.num_workers,
                progress=self.setup.progress,
                description=what,
                bad_image_hint=BAD_TARGET_IMAGE,
            )
        )
        return reestimate_bn_statistics(extractor.net, batches)

    def adabn(self) -> int:
        """Every BatchNorm's running statistics re-estimated on all target images on a copy,
        then loaded into the network; the number of images."""
        extractor = self.extractor(flip=False)
        paths = self.target.paths
        seen = self.reestimate(extractor, paths, f"AdaBN over {len(paths)} target images")
        self.net.load_state_dict(extractor.net.state_dict())
        return seen

    def camera_statistics(self) -> CameraStatistics:
        """Per target camera, every BatchNorm's statistics re-estimated on that camera's images
        with the current weights (on a copy: the network keeps its own)."""
        cams = np.asarray(self.target.camids)
        out: CameraStatistics = {}
        for cam in np.unique(cams).tolist():
            paths = [self.target.paths[i] for i in np.flatnonzero(cams == cam)]
            extractor = self.extractor(flip=False)
            self.reestimate(extractor, paths, f"camera {cam}: BatchNorm over {len(paths)} images")
            out[int(cam)] = bn_statistics(extractor.net)
        return out

    def train(self, labels: np.ndarray, head: Tensor, clusters: int, index: int) -> pl.Trainer:
        """A classifier from the centroids, then adapt.epochs_per_round epochs on the clusters."""
        setup = self.setup
        old = self.net.classifier
        labels = training_labels(labels, clusters, setup.settings.outliers)
        classes = int(labels.max()) + 1
        centroids = cluster_centroids(head, labels)
        aware = setup.settings.camera_aware
        by_camera = aware or setup.settings.camera_bn_training
        cameras = self.target.camids if by_camera else None  # the only ids training may see
        rows = class_cameras(labels, cameras, classes) if aware else None
        layer = round_classifier(centroids, setup.settings, old.bias is not None, rows)
        self.net.classifier = layer.to(old.weight.device)
        memory = isinstance(layer, ClusterMemory)
        item_cameras = cameras if cameras is not None else (0,) * len(labels)  # 0: unused
        items = [
            (self.target.paths[i], int(labels[i]), int(item_cameras[i]))
            for i in np.flatnonzero(labels >= 0)
        ]
        seed = round_seed(setup.seed, index)
        # The memory's cosine softmax is Cluster Contrast's InfoNCE, without label smoothing.
        loss = dataclasses.replace(setup.loss, label_smoothing=0.0) if memory else setup.loss
        info = adapted_run_info(
            setup.source_info, setup.spec, self.target, setup.settings,
            (loss, setup.optim), classes, index, setup.source_path, setup.seed,
        )  # fmt: skip
        module_class = CameraBatchModule if setup.settings.camera_bn_training else ReIDModule
        module = module_class(
            self.net, classes, loss=loss, optim=setup.optim, eval=setup.spec.eval,
            channels_last=setup.channels_last, run_info=info,
        )  # fmt: skip
        trainer = self.trainer(
            max_epochs=setup.settings.epochs_per_round,
            logger=False,
            callbacks=[MemoryUpdate()] if memory else [],
            enable_checkpointing=False,
            enable_model_summary=False,
            plugins=[AtomicCheckpointIO()],
            limit_val_batches=0,
            num_sanity_val_steps=0,
        )
        self.net.train()
        with warnings.catch_warnings():  # ReIDModule validates in training runs, not here
            warnings.filterwarnings("ignore", message=".*`validation_step` but have no")
            trainer.fit(module, train_dataloaders=pseudo_label_loader(items, setup, seed))
        return trainer

    def save(self, trainer: pl.Trainer, index: int) -> Path:
        """checkpoints/roundNN.ckpt, and the last round's also as checkpoints/last.ckpt."""
        folder = self.setup.output_dir / "checkpoints"
        path = folder / f"round{index:02d}.ckpt"
        trainer.save_checkpoint(path, weights_only=True)
        if index == self.setup.settings.rounds:
            last = folder / "last.ckpt"
            last.unlink(missing_ok=True)
            try:
                os.link(path, last)
            except OSError:  # a file system without hard links
                shutil.copyfile(path, last)
        return path

    def test(self, statistics: CameraStatistics | None = None) -> dict[str, dict[str, Any]] | None:
        """The target's test split scored with the checkpoint's test-time settings (None
        without one); with `statistics`, each image with its camera's BatchNorm statistics."""
        if self.target.test is None:
            return None
        evaluator = Evaluator(self.setup.spec.eval)
        module = (
            FeatureModule(self.net, evaluator)
            if statistics is None
            else CameraBNFeatureModule(copy.deepcopy(self.net), evaluator, statistics)
        )
        trainer = self.trainer(logger=False, callbacks=[])
        trainer.test(module, datamodule=self.target.test, verbose=False)
        return {name: score.metrics for name, score in evaluator.score(evaluator.eval_cfg).items()}
