"""Features of a trained checkpoint for any images: the numbers `evaluate` ranks with, as an API.

    from reidtricks.inference import FeatureExtractor
    extractor = FeatureExtractor.from_checkpoint("logs/demo/runs/<date>/checkpoints/last.ckpt")
    feats = extractor.extract(["a.jpg", "b.jpg"], normalize=True)   # 2 x D float32

The network is rebuilt from the checkpoint's plain fields (`reidtricks.inference.checkpoint`), images go
through the checkpoint's test transform, and the feature is the trained test-time one (before or
after the BNNeck, optionally averaged with the flipped image), in fp32, as the Evaluator computes it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset

from reidtricks.data.image_dataset import read_image, to_rgb
from reidtricks.data.transforms import build_test_transform
from reidtricks.errors import InputError, UnreadableInputError
from reidtricks.evaluation.settings import EvalConfig
from reidtricks.inference.checkpoint import (
    CheckpointSpec,
    InputSpec,
    build_net_from_checkpoint,
    checkpoint_spec,
    load_checkpoint,
)
from reidtricks.inference.files import BadImage
from reidtricks.inference.settings import EXTRACTION
from reidtricks.models import ReIDNet
from reidtricks.validate import require_bool

FEATURES = ("before_bn", "after_bn")
ImageLike = str | os.PathLike | Image.Image | np.ndarray
SKIP_BAD_HINT = "(skip_bad=true skips unreadable images and lists them)"


class InferenceNet(nn.Module):
    """Normalised N x 3 x H x W images -> the test-time feature (fp32), averaged with the
    horizontally flipped image when `flip`; the module that extraction runs and ONNX export traces."""

    def __init__(self, net: ReIDNet, feature: str, flip: bool) -> None:
        super().__init__()
        if feature not in FEATURES:
            raise InputError(f"feature={feature!r}: expected one of {FEATURES}")
        self.net, self.feature, self.flip = net, feature, require_bool("flip", flip)

    def forward(self, images: Tensor) -> Tensor:
        feats = self.net(images).feature(self.feature).float()
        if self.flip:  # same arithmetic as evaluation.evaluator.eval_time_features
            flipped = self.net(images.flip(dims=[3])).feature(self.feature).float()
            feats = (feats + flipped) / 2
        return feats


@dataclass
class Extraction:
    """Features of the readable files (rows in the order of `paths`) and the unreadable ones."""

    paths: list[str]
    features: Tensor
    bad: list[BadImage] = field(default_factory=list)


def progress_bar(enabled: bool) -> Any:
    """A rich progress bar (count, rate, time left); a no-op display when not enabled."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        disable=not enabled,
        transient=False,
    )


class _ImageFiles(Dataset):
    """Item i -> (i, transformed image or None, error line): bad files are reported, not raised,
    so that DataLoader workers pass them back as data."""

    def __init__(self, paths: Sequence[str], transform: Any) -> None:
        self.paths, self.transform = list(paths), transform

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> tuple[int, Tensor | None, str]:
        try:
            return index, self.transform(read_image(self.paths[index])), ""
        except (OSError, ValueError) as err:  # read_image's one-line errors name the file
            return index, None, str(err).strip().splitlines()[0]


def _collate(
    samples: list[tuple[int, Tensor | None, str]],
) -> tuple[list[int], Tensor | None, list]:
    good = [(i, x) for i, x, _ in samples if x is not None]
    bad = [(i, e) for i, x, e in samples if x is None]
    images = torch.stack([x for _, x in good]) if good else None
    return [i for i, _ in good], images, bad


class FeatureExtractor:
    """A trained ReID network ready for inference: images in, N x D float32 features out."""

    def __init__(
        self,
        net: ReIDNet,
        input_spec: InputSpec,
        feature: str,
        flip: bool,
        device: str | torch.device = EXTRACTION.device,
        batch_size: int = EXTRACTION.batch_size,
        spec: CheckpointSpec | None = None,
        source: str = "model",
    ) -> None:
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise InputError(f"batch_size={batch_size!r}: expected an integer >= 1")
        self.device = _device(device)
        self.input = input_spec
        self.model = InferenceNet(net, feature, flip).eval().requires_grad_(False).to(self.device)
        self.batch_size = batch_size
        self.spec, self.source = spec, source
        self.transform = build_test_transform(
            height=input_spec.height,
            width=input_spec.width,
            mean=input_spec.mean,
            std=input_spec.std,
        )

    @classmethod
    def from_checkpoint(
        cls,
        path: str | os.PathLike,
        device: str | torch.device = EXTRACTION.device,
        batch_size: int = EXTRACTION.batch_size,
        flip: bool | None = None,
        feature: str | None = None,
    ) -> FeatureExtractor:
        """Rebuild the network, transform and test-time settings from a training checkpoint;
        `flip` / `feature` override the trained settings (None keeps them)."""
        source = os.fspath(path)
        checkpoint = load_checkpoint(path)
        spec = checkpoint_spec(checkpoint, source)
        net = build_net_from_checkpoint(checkpoint, source)
        return cls(
            net,
            spec.input,
            feature=feature if feature is not None else spec.eval.feature,
            flip=flip if flip is not None else spec.eval.flip,
            device=device,
            batch_size=batch_size,
            spec=spec,
            source=source,
        )

    # -- settings ------------------------------------------------------------------------------
    @property
    def net(self) -> ReIDNet:
        return self.model.net

    @property
    def feature(self) -> str:
        return self.model.feature

    @property
    def flip(self) -> bool:
        return self.model.flip

    @property
    def feat_dim(self) -> int:
        return int(self.net.feat_dim)

    @property
    def metric(self) -> str:
        """The distance the checkpoint was evaluated with (EvalConfig's default without one)."""
        return (self.spec.eval if self.spec else EvalConfig()).metric

    def settings(self) -> dict[str, Any]:
        """Plain description of what produces the features (stored beside them and in exports)."""
        return {
            "feature": self.feature,
            "flip": self.flip,
            "height": self.input.height,
            "width": self.input.width,
            "mean": list(self.input.mean),
            "std": list(self.input.std),
            "metric": self.metric,
            "stage": self.spec.stage if self.spec else None,
        }

    # -- images -> tensors ---------------------------------------------------------------------
    def preprocess(self, images: ImageLike | Sequence[ImageLike] | Tensor) -> Tensor:
        """The normalised N x 3 x H x W float32 tensor the network (and the ONNX model) takes:
        files, PIL images or uint8 arrays (H x W [x 3], or N x H x W x 3) go through the
        checkpoint's test transform; a prepared tensor is checked and returned."""
        if isinstance(images, Tensor):
            return self._check_tensor(images)
        pil = [_to_pil(item) for item in _as_list(images)]
        if not pil:
            raise InputError("no images given")
        return torch.stack([self.transform(img) for img in pil])

    def _check_tensor(self, images: Tensor) -> Tensor:
        if images.dim() == 3:
            images = images.unsqueeze(0)
        expected = (3, self.input.height, self.input.width)
        if (
            images.dim() != 4
            or tuple(images.shape[1:]) != expected
            or not images.is_floating_point()
        ):
            raise InputError(
                f"image tensor of shape {tuple(images.shape)} ({images.dtype}): expected "
                f"N x {' x '.join(map(str, expected))} floats, normalised (see preprocess)"
            )
        return images.float()

    # -- tensors -> features -------------------------------------------------------------------
    @torch.no_grad()
    def forward(self, images: Tensor) -> Tensor:
        """Features of one prepared batch (no batching, no checks), on the CPU."""
        return self.model(images.to(self.device)).cpu()

    def extract(
        self,
        images: ImageLike | Sequence[ImageLike] | Tensor,
        normalize: bool = False,
        progress: bool = False,
    ) -> Tensor:
        """N x D float32 features of images (see `preprocess` for the kinds), in batches of
        `batch_size`; L2-normalised rows when `normalize`. An unreadable file raises its error."""
        require_bool("normalize", normalize)
        if isinstance(images, Tensor):
            batch = self._check_tensor(images)
            chunks = [batch[i : i + self.batch_size] for i in range(0, len(batch), self.batch_size)]
            feats = [self.forward(chunk) for chunk in chunks]
        else:
            items = _as_list(images)
            if not items:
                raise InputError("no images given")
            feats = []
            with progress_bar(progress) as bar:
                task = bar.add_task("extracting", total=len(items))
                for start in range(0, len(items), self.batch_size):
                    chunk = items[start : start + self.batch_size]
                    feats.append(self.forward(self.preprocess(chunk)))
                    bar.advance(task, len(chunk))
        out = torch.cat(feats) if feats else torch.empty(0, self.feat_dim)
        return F.normalize(out, dim=1) if normalize else out

    def iter_file_batches(
        self,
        paths: Sequence[str | os.PathLike],
        skip_bad: bool = False,
        num_workers: int = 0,
        progress: bool = False,
        description: str = "extracting",
        bad_image_hint: str = SKIP_BAD_HINT,
    ) -> Iterator[tuple[list[int], Tensor | None, list[BadImage]]]:
        """(indices into `paths`, prepared batch, bad files of the batch) per batch, images read
        by `num_workers` loader processes; a bad file raises its one-line error (followed by
        `bad_image_hint`) unless skip_bad."""
        names = [os.fspath(p) for p in paths]
        loader = DataLoader(
            _ImageFiles(names, self.transform),
            batch_size=self.batch_size,
            shuffle=False,
            num_workers=int(num_workers),
            collate_fn=_collate,
        )
        with progress_bar(progress) as bar:
            task = bar.add_task(description, total=len(names))
            for indices, images, bad in loader:
                bad_images = [BadImage(names[i], error) for i, error in bad]
                if bad_images and not skip_bad:
                    raise UnreadableInputError(f"{bad_images[0].error} {bad_image_hint}".rstrip())
                yield indices, images, bad_images
                bar.advance(task, len(indices) + len(bad))

    def extract_files(
        self,
        paths: Sequence[str | os.PathLike],
        skip_bad: bool = False,
        num_workers: int = 0,
        normalize: bool = False,
        progress: bool = False,
        description: str = "extracting",
    ) -> Extraction:
        """Features of image files; with skip_bad, unreadable files are left out of the features
        and listed in `Extraction.bad` (otherwise the first one raises its one-line error)."""
        require_bool("normalize", normalize)
        require_bool("skip_bad", skip_bad)
        kept: list[str] = []
        feats: list[Tensor] = []
        bad: list[BadImage] = []
        for indices, images, bad_images in self.iter_file_batches(
            paths, skip_bad, num_workers, progress, description
        ):
            bad.extend(bad_images)
            if images is not None:
                feats.append(self.forward(images))
                kept.extend(os.fspath(paths[i]) for i in indices)
        out = torch.cat(feats) if feats else torch.empty(0, self.feat_dim)
        return Extraction(kept, F.normalize(out, dim=1) if normalize else out, bad)


def _device(device: str | torch.device) -> torch.device:
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise InputError(f"device={device!r}: expected cpu or cuda ({err})") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise InputError(f"device={device!r}: no CUDA GPU is available here (use device=cpu)")
    return dev


def _as_list(images: Any) -> list[Any]:
    """One image or a sequence of them as a list; an N x H x W x 3 array is N images."""
    if isinstance(images, str | os.PathLike | Image.Image):
        return [images]
    if isinstance(images, np.ndarray):
        return list(images) if images.ndim == 4 else [images]
    if isinstance(images, Sequence):
        return list(images)
    raise InputError(
        f"images of type {type(images).__name__}: expected paths, PIL images, uint8 arrays "
        "or a prepared tensor"
    )


def _to_pil(item: Any) -> Image.Image:
    if isinstance(item, str | os.PathLike):
        return read_image(os.fspath(item))
    if isinstance(item, Image.Image):
        return to_rgb(item)
    if isinstance(item, np.ndarray):
        if (
            item.dtype != np.uint8
            or item.ndim not in (2, 3)
            or (item.ndim == 3 and item.shape[2] not in (1, 3, 4))
        ):
            raise InputError(
                f"array of shape {item.shape} ({item.dtype}): expected a uint8 H x W x 3 RGB "
                "image (or H x W grey)"
            )
        array = item.squeeze(2) if item.ndim == 3 and item.shape[2] == 1 else item
        return Image.fromarray(array).convert("RGB")
    raise InputError(f"image of type {type(item).__name__}: expected a path, PIL image or array")
