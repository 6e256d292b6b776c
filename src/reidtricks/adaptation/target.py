"""What `adapt` adapts to: a folder of unlabelled crops, or a dataset's training split whose
identities are kept aside for measurement only (pseudo-label quality), with its test split."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reidtricks.data.datamodule import ReIDDataModule
from reidtricks.data.settings import LoaderConfig
from reidtricks.data.splits import ReIDItem
from reidtricks.errors import InputError
from reidtricks.inference.checkpoint import InputSpec, dataset_from_spec
from reidtricks.inference.files import list_image_files


@dataclass(frozen=True)
class Target:
    """The target images (sorted paths, the order every round uses). `pids` are for measuring
    the pseudo-labels only and never reach training; `test` scores each round; `spec` is the
    dataset entry (plain values) that the adapted checkpoints name; `camids` measure how the
    clusters lie across cameras and reach training only with adapt.camera_aware or
    adapt.camera_bn_training."""

    name: str
    paths: tuple[str, ...]
    pids: tuple[int, ...] | None = None
    camids: tuple[int, ...] | None = None  # cameras (None: fewer than 2)
    test: ReIDDataModule | None = None
    spec: Mapping[str, Any] | None = None
    train_items: tuple[ReIDItem, ...] = ()  # a dataset's training items (for the trial rule)
    root: str = ""  # a folder target's folder

    def describe(self) -> dict[str, Any]:
        """Plain description for metrics.json and the checkpoints."""
        kind = "folder" if self.spec is None else "dataset"
        out: dict[str, Any] = {"kind": kind, "name": self.name, "num_images": len(self.paths)}
        if self.spec is None:
            out["images"] = self.root
        else:
            out["dataset"] = dict(self.spec)
        out["labelled"] = self.pids is not None
        out["tested"] = self.test is not None
        return out


def folder_target(images: str | os.PathLike, key: str = "target.images") -> Target:
    """Every image file under a folder (sub-folders searched, any file names), unlabelled."""
    paths = list_image_files(images, key)[0]  # one line for a missing or image-less folder
    name = Path(images).resolve().name or "folder"
    return Target(
        name=name,
        paths=tuple(os.fspath(p) for p in paths),
        camids=folder_cameras(images, paths),
        root=os.fspath(images),
    )


def folder_cameras(root: str | os.PathLike, paths: Sequence[Path]) -> tuple[int, ...] | None:
    """One camera per top-level sub-folder of `root` (numbered in name order; images directly
    in `root` share one more), or None with fewer than two such groups."""
    parts = [p.relative_to(root).parts for p in paths]
    top = [part[0] if len(part) > 1 else "" for part in parts]  # "": directly in root
    names = sorted(set(top))
    if len(names) < 2:
        return None
    index = {n: i for i, n in enumerate(names)}
    return tuple(index[t] for t in top)


def dataset_target(
    name: str, spec: Mapping[str, Any], input_spec: InputSpec, loader: LoaderConfig
) -> Target:
    """A dataset entry (conf/dataset) as a target: its training images, their identities kept
    for measurement, and its query / gallery (at the checkpoint's input size) as the test."""
    source = dataset_from_spec(name, spec, f"target={name}")
    training_only = getattr(source, "training_only", "")  # a set without a test protocol
    test_sources = {} if training_only else {name: source}
    if training_only:
        items = source.load().train
        test = None
    else:
        test = ReIDDataModule(
            train_sources={name: source},
            test_sources=test_sources,
            sampler={"p": 1, "k": 1},  # its training batches are never drawn
            transform={
                "height": input_spec.height,
                "width": input_spec.width,
                "mean": list(input_spec.mean),
                "std": list(input_spec.std),
            },
            loader=loader,
            seed=0,
            verify_images=False,
        )
        test.prepare_data()
        test.setup("test")
        items = test.train_items
    if not items:
        raise InputError(
            f"target={name}: the dataset has no training images to adapt to (a test-only "
            "set?); give a set with a training split, or target=folder target.images=DIR"
        )
    ordered = sorted(items)  # by path: the order does not depend on the identities
    cameras = tuple(camid for _, _, camid in ordered)
    return Target(
        name=name,
        paths=tuple(path for path, _, _ in ordered),
        pids=tuple(pid for _, pid, _ in ordered),
        camids=cameras if len(set(cameras)) > 1 else None,
        test=test,
        spec=dict(spec),
        train_items=tuple(ordered),
    )


def check_batch_fits(target: Target, p: int, k: int) -> None:
    """One line when the target holds fewer images than one P x K batch."""
    if len(target.paths) < p * k:
        raise InputError(
            f"target {target.name}: {len(target.paths)} images, fewer than one P x K batch "
            f"(adapt.p={p} x adapt.k={k} = {p * k}); give more images or lower adapt.p / adapt.k"
        )
