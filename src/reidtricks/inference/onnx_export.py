"""ONNX export of a FeatureExtractor's network and the parity check of onnxruntime against PyTorch.

The exported graph is `reidtricks.inference.InferenceNet` traced by the TorchScript exporter
(`torch.onnx.export(dynamo=False)`, no onnxscript needed): normalised images in, the checkpoint's
test-time feature out (flip averaging inside the graph when the checkpoint evaluates with flip).
"""

from __future__ import annotations

import copy
import json
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from reidtricks import __version__
from reidtricks.errors import InputError
from reidtricks.evaluation import pairwise_distance
from reidtricks.inference.extractor import FeatureExtractor

INPUT_NAME, OUTPUT_NAME = "images", "features"
EXPORT_EXTRA = "pip install 'reidtricks[export]'"


class ParityError(RuntimeError):
    """The exported model's features or rankings differ from PyTorch's beyond the tolerance."""


def require_onnx() -> tuple[Any, Any]:
    """(onnx, onnxruntime), or a one-line error saying how to install them."""
    try:
        import onnx
        import onnxruntime
    except ImportError as err:
        raise InputError(
            f"ONNX export needs onnx and onnxruntime ({err}): {EXPORT_EXTRA}"
        ) from None
    return onnx, onnxruntime


def onnx_metadata(extractor: FeatureExtractor, **extra: Any) -> dict[str, str]:
    """What a deployment needs besides the graph: input size, normalisation, feature, metric."""
    settings = extractor.settings()
    net = extractor.spec.net if extractor.spec else None
    meta = {
        "input_name": INPUT_NAME,
        "output_name": OUTPUT_NAME,
        "input_layout": "NCHW float32 RGB",
        "input_height": settings["height"],
        "input_width": settings["width"],
        "mean": json.dumps(settings["mean"]),
        "std": json.dumps(settings["std"]),
        "preprocessing": "bilinear resize to input_height x input_width, x / 255, "
        "(x - mean) / std per channel",
        "feature": settings["feature"],
        "flip": settings["flip"],
        "feature_dim": extractor.feat_dim,
        "metric": settings["metric"],
        "stage": settings["stage"],
        "backbone": net.backbone if net else None,
        "last_stride": net.last_stride if net else None,
        "neck": net.neck if net else None,
        "reidtricks_version": __version__,
        **extra,
    }
    return {k: v if isinstance(v, str) else json.dumps(v) for k, v in meta.items()}


def export_onnx(
    extractor: FeatureExtractor,
    out: str | os.PathLike,
    opset: int = 17,
    dynamic_batch: bool = True,
    batch_size: int = 1,
) -> Path:
    """Trace the extractor's InferenceNet (on the CPU) to an ONNX file; returns its path."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    model = copy.deepcopy(extractor.model).cpu().eval()
    dummy = torch.zeros(batch_size, 3, extractor.input.height, extractor.input.width)
    axes = {INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}} if dynamic_batch else None
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
        torch.onnx.export(
            model,
            (dummy,),
            os.fspath(out),
            dynamo=False,
            opset_version=int(opset),
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            dynamic_axes=axes,
            do_constant_folding=True,
        )
    return out


def write_metadata(path: Path, metadata: dict[str, str], out: Path | None = None) -> Path:
    """Store metadata_props in an ONNX file (checked with onnx.checker) at `out` or in place."""
    onnx, _ = require_onnx()
    model = onnx.load(os.fspath(path))
    onnx.helper.set_model_props(model, metadata)
    model.doc_string = "reidtricks ReID feature extractor: " + metadata.get("preprocessing", "")
    onnx.checker.check_model(model)
    onnx.save(model, os.fspath(out or path))
    return out or path


def onnx_session(path: str | os.PathLike, threads: int | None = None) -> Any:
    """An onnxruntime CPU session (intra-op threads as given, else onnxruntime's default)."""
    _, ort = require_onnx()
    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = int(threads)
    return ort.InferenceSession(
        os.fspath(path), sess_options=options, providers=["CPUExecutionProvider"]
    )


def run_onnx(session: Any, images: Tensor | np.ndarray, fixed_batch: int | None = None) -> Tensor:
    """Features from an onnxruntime session; a fixed-batch model gets zero-padded chunks."""
    x = images.numpy() if isinstance(images, Tensor) else images
    x = np.ascontiguousarray(x, dtype=np.float32)
    if not fixed_batch:
        return torch.from_numpy(session.run(None, {INPUT_NAME: x})[0])
    parts = []
    for start in range(0, len(x), fixed_batch):
        chunk = x[start : start + fixed_batch]
        padded = np.zeros((fixed_batch, *x.shape[1:]), dtype=np.float32)
        padded[: len(chunk)] = chunk
        parts.append(session.run(None, {INPUT_NAME: padded})[0][: len(chunk)])
    return torch.from_numpy(np.concatenate(parts))


# -- parity ----------------------------------------------------------------------------------------
@dataclass
class ParityReport:
    """Torch vs onnxruntime on the same preprocessed images."""

    images: int
    queries: int
    ranked_against: str  # "gallery" (N_g images) or "queries" (each query vs the others)
    candidates: int
    max_abs_diff: float  # of the L2-normalised features
    max_abs_diff_raw: float  # of the features as output
    distance_noise: float  # max |d_torch - d_onnx| over the distance matrix
    topk: int
    identical: int  # queries whose top-k is identical, in order
    near_ties: int  # differ only by swapping items whose distances are within the noise
    mismatched: int
    atol: float
    passed: bool

    def summary(self) -> str:
        """One line: the numbers a user looks at."""
        verdict = "passed" if self.passed else "FAILED"
        ties = f", {self.near_ties} differ only at near-ties" if self.near_ties else ""
        against = (
            f"against {self.candidates} gallery images"
            if self.ranked_against == "gallery"
            else f"among the {self.queries} images themselves"
        )
        return (
            f"parity {verdict}: {self.images} images, max |torch - onnxruntime| of L2-normalised "
            f"features {self.max_abs_diff:.2e} (goal <= {self.atol:g}); top-{self.topk} "
            f"identical for {self.identical}/{self.queries} queries{ties} (ranked {against})"
        )


def check_parity(
    extractor: FeatureExtractor,
    onnx_path: str | os.PathLike,
    query: list[str],
    gallery: list[str],
    topk: int = 10,
    atol: float = 1e-4,
    fixed_batch: int | None = None,
    num_workers: int = 0,
    progress: bool = False,
    allow_near_ties: bool = True,
) -> ParityReport:
    """Run PyTorch and onnxruntime on the same preprocessed images; compare the L2-normalised
    features and each query's top-k ranking (against the gallery, else the other queries).
    With allow_near_ties, a ranking that differs only by swapping items whose PyTorch distances
    are within twice the observed PyTorch-vs-onnxruntime distance noise still passes."""
    session = onnx_session(onnx_path, threads=torch.get_num_threads())

    def both(paths: list[str], label: str) -> tuple[Tensor, Tensor]:
        ours, theirs = [], []
        for _, images, _ in extractor.iter_file_batches(
            paths,
            num_workers=num_workers,
            progress=progress,
            description=f"parity: {label}",
            bad_image_hint="(parity needs every image; give another folder with images=DIR)",
        ):
            ours.append(extractor.forward(images))
            theirs.append(run_onnx(session, images, fixed_batch))
        return torch.cat(ours), torch.cat(theirs)

    tq, oq = both(query, f"{len(query)} queries")
    if gallery:
        tg, og = both(gallery, f"{len(gallery)} gallery images")
        against = "gallery"
    else:
        tg, og, against = tq, oq, "queries"
    metric = extractor.metric
    dt = pairwise_distance(tq, tg, metric=metric)
    do = pairwise_distance(oq, og, metric=metric)
    noise = float((dt - do).abs().max())
    if not gallery:  # a query is not its own candidate
        dt.fill_diagonal_(float("inf"))
        do.fill_diagonal_(float("inf"))
    k = min(topk, dt.shape[1] - (0 if gallery else 1))
    rt = torch.sort(dt, dim=1, stable=True).indices[:, :k]
    ro = torch.sort(do, dim=1, stable=True).indices[:, :k]
    same = (rt == ro).all(dim=1)
    near_ties = 0
    for q in torch.nonzero(~same).flatten().tolist():
        gap = (dt[q, ro[q]] - dt[q, rt[q]]).abs().max()
        near_ties += int(gap <= 2 * noise + 1e-7)
    feats_t, feats_o = (
        torch.cat([tq, tg]) if gallery else tq,
        torch.cat([oq, og]) if gallery else oq,
    )
    max_norm = float((F.normalize(feats_t, dim=1) - F.normalize(feats_o, dim=1)).abs().max())
    identical = int(same.sum())
    mismatched = len(query) - identical - (near_ties if allow_near_ties else 0)
    return ParityReport(
        images=len(query) + len(gallery),
        queries=len(query),
        ranked_against=against,
        candidates=dt.shape[1],
        max_abs_diff=max_norm,
        max_abs_diff_raw=float((feats_t - feats_o).abs().max()),
        distance_noise=noise,
        topk=k,
        identical=identical,
        near_ties=near_ties,
        mismatched=mismatched,
        atol=float(atol),
        passed=max_norm <= atol and mismatched == 0,
    )
