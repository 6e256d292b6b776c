"""Export to ONNX with a parity check: `python -m reidtricks.export ckpt=PATH [out=model.onnx]`
(the library code: `reidtricks.inference.onnx_export`)."""

from __future__ import annotations

import json
import os
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import DictConfig

from reidtricks.cli.app import extractor_from_config, hydra_command
from reidtricks.cli.options import apply_threads, check_options
from reidtricks.cli.outputs import checked_output
from reidtricks.cli.sweep import job_errors
from reidtricks.errors import InputError, MissingInputError
from reidtricks.inference import FeatureExtractor, file_sha256, list_image_files
from reidtricks.inference.checkpoint import checkpoint_test_sources
from reidtricks.inference.files import atomic_output, temp_path
from reidtricks.inference.onnx_export import (
    ParityError,
    check_parity,
    export_onnx,
    onnx_metadata,
    require_onnx,
    write_metadata,
)


def _spread(paths: list[str], limit: int | None) -> list[str]:
    """At most `limit` paths, evenly spread over the list (all when limit is None)."""
    if limit is None or limit >= len(paths):
        return paths
    if limit < 1:
        raise InputError(f"parity.max_query/max_gallery={limit}: expected >= 1 or null")
    keep = np.unique(np.linspace(0, len(paths) - 1, num=limit).round().astype(int))
    return [paths[i] for i in keep]


def parity_images(cfg: DictConfig, extractor: FeatureExtractor) -> tuple[list[str], list[str]]:
    """(query paths, gallery paths or []) for the parity check: images=DIR, else the
    checkpoint's own first test set when it is present (it is not generated or downloaded)."""
    parity = cfg.get("parity", {})
    if cfg.get("images"):
        listing = list_image_files(cfg.images, "images")
        if listing.hidden:
            print(f"images={cfg.images}{listing.hidden_note(': ')}")
        return _spread([os.fspath(p) for p in listing.paths], parity.get("max_query")), []
    source = str(cfg.ckpt)
    hint = "give a folder of images with images=DIR (or data_dir=WHERE_THE_TEST_SET_IS)"
    try:
        sources = checkpoint_test_sources(extractor.spec, source, cfg.get("data_dir"))
    except InputError as err:
        raise InputError(f"no parity images: {err}; {hint}") from None
    name, dataset = next(iter(sources.items()))
    is_complete = getattr(dataset, "is_complete", None)
    if callable(is_complete) and not is_complete():
        raise MissingInputError(
            f"no parity images: the checkpoint's test set {name!r} is not at "
            f"{dataset.dataset_dir}; {hint}"
        )
    try:
        splits = dataset.load()
    except (FileNotFoundError, InputError) as err:
        raise MissingInputError(f"no parity images: test set {name!r}: {err}; {hint}") from None
    query = _spread([p for p, _, _ in splits.query], parity.get("max_query"))
    gallery = _spread([p for p, _, _ in splits.gallery], parity.get("max_gallery"))
    return query, gallery


def _check_outputs(cfg: DictConfig, outputs: list[Path], inputs: dict[str, Any]) -> None:
    """Every file export may write checked (cli/outputs.py) before anything is written."""
    for i, path in enumerate(outputs):
        checked_output(
            "out" if i == 0 else None,
            path,
            inputs,
            own_dir=cfg.paths.output_dir,
            overwrite=bool(cfg.overwrite),
        )


# -- the command -----------------------------------------------------------------------------------
def export_checkpoint(cfg: DictConfig) -> dict[str, Any]:
    """Export, check parity, then write the model with its metadata (kept as
    `<name>.parity-failed.onnx` and ParityError raised when the check fails)."""
    check_options(cfg, "export")  # format=onnx is the only export format
    apply_threads(cfg)  # also onnxruntime's threads in the parity check
    output_dir = Path(cfg.paths.output_dir)
    out = Path(cfg.get("out") or output_dir / "model.onnx")
    failed = out.with_name(f"{out.stem}.parity-failed.onnx")
    inputs = {"ckpt": cfg.ckpt, "images": cfg.get("images"), "data_dir": cfg.get("data_dir")}
    _check_outputs(cfg, [out, failed, output_dir / "parity.json"], inputs)
    require_onnx()
    # Parity is PyTorch on the CPU vs onnxruntime on the CPU, both fp32; refusals stop here.
    extractor = extractor_from_config(cfg, device="cpu")
    query, gallery = parity_images(cfg, extractor)
    if not cfg.get("images"):  # the checkpoint's test set: its folders are inputs too
        for folder in sorted({os.path.dirname(p) for p in query + gallery}):
            _check_outputs(cfg, [out, failed], {"test set": folder})
    fixed = None if cfg.dynamic_batch else int(cfg.batch_size)
    traced = export_onnx(
        extractor,
        temp_path(out),
        opset=int(cfg.opset),
        dynamic_batch=bool(cfg.dynamic_batch),
        batch_size=fixed or 2,
    )
    try:
        report = check_parity(
            extractor,
            traced,
            query,
            gallery,
            topk=int(cfg.parity.topk),
            atol=float(cfg.parity.atol),
            fixed_batch=fixed,
            num_workers=int(cfg.num_workers),
            progress=bool(cfg.progress),
            allow_near_ties=bool(cfg.parity.get("allow_near_ties", True)),
        )
        metadata = onnx_metadata(
            extractor,
            checkpoint_sha256=file_sha256(cfg.ckpt),
            opset=int(cfg.opset),
            dynamic_batch=bool(cfg.dynamic_batch),
            batch_size=fixed,
            parity_max_abs_diff=report.max_abs_diff,
        )
        final = out if report.passed else failed
        write_metadata(traced, metadata)  # in the temporary file, then renamed: never half a model
        os.replace(traced, final)
    finally:
        traced.unlink(missing_ok=True)
    with atomic_output(output_dir / "parity.json") as tmp:
        tmp.write_text(json.dumps({**asdict(report), "onnx": str(final)}, indent=2) + "\n")
    print(report.summary())
    if not report.passed:
        raise ParityError(f"{report.summary()}; the model is kept as {final} for inspection")
    print(f"ONNX model: {out} (opset {cfg.opset}, {metadata['feature']}, flip={metadata['flip']})")
    return {"out": out, "parity": report, "metadata": metadata}


@hydra_command("export")
def main(cfg: DictConfig) -> None:
    with job_errors():
        try:
            export_checkpoint(cfg)
        except ParityError as err:
            print(f"error: {err}", file=sys.stderr)
            raise SystemExit(1) from None


if __name__ == "__main__":
    main()
