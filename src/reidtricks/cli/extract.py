"""Extract features: `python -m reidtricks.extract ckpt=PATH images=DIR [out=features.npz]`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import DictConfig

from reidtricks.cli.app import extractor_from_config, hydra_command, warn_bad_images
from reidtricks.cli.options import apply_threads, check_options
from reidtricks.cli.outputs import checked_output
from reidtricks.cli.sweep import job_errors
from reidtricks.errors import InputError
from reidtricks.inference import list_image_files, market_ids
from reidtricks.inference.files import save_npz


def extract_folder(cfg: DictConfig) -> dict[str, Any]:
    """Features of every image under cfg.images, written to an .npz; returns a summary."""
    check_options(cfg, "extract")
    apply_threads(cfg)
    extractor = extractor_from_config(cfg)  # a refused checkpoint stops here, nothing written
    root = Path(cfg.images)
    listing = list_image_files(root, "images")
    images = listing.paths
    output_dir = Path(cfg.paths.output_dir)
    out = checked_output(
        "out",
        cfg.get("out") or output_dir / "features.npz",
        {"ckpt": cfg.ckpt, "images": cfg.images},
        own_dir=output_dir,
        overwrite=bool(cfg.overwrite),
    )
    result = extractor.extract_files(
        images,
        skip_bad=bool(cfg.skip_bad),
        num_workers=int(cfg.num_workers),
        normalize=bool(cfg.normalize),
        progress=bool(cfg.progress),
        description=f"extracting {len(images)} images",
    )
    if not result.paths:
        raise InputError(f"images={root}: none of the {len(images)} image files could be read")
    ids = [market_ids(p) for p in result.paths]
    settings = {**extractor.settings(), "normalized": bool(cfg.normalize)}
    save_npz(
        out,
        paths=np.array(result.paths, dtype=str),
        features=result.features.numpy().astype(np.float32),
        pids=np.array([i[0] if i else -1 for i in ids], dtype=np.int64),
        camids=np.array([i[1] if i else -1 for i in ids], dtype=np.int64),
        named=np.array([i is not None for i in ids], dtype=bool),
        bad_paths=np.array([b.path for b in result.bad], dtype=str),
        bad_errors=np.array([b.error for b in result.bad], dtype=str),
        root=np.array(str(root)),
        checkpoint=np.array(str(cfg.ckpt)),
        settings=np.array(json.dumps(settings)),
    )
    warn_bad_images(result.bad, f"{out} (bad_paths)")
    named = sum(i is not None for i in ids)
    print(
        f"{len(result.paths)} images -> features {tuple(result.features.shape)} "
        f"({extractor.feature}, flip={extractor.flip}, normalized={bool(cfg.normalize)}); "
        f"{named} with Market-style pid/camid; {len(result.bad)} unreadable skipped; "
        f"{listing.others} non-image files passed over{listing.hidden_note()}"
    )
    print(f"Features: {out}")
    return {
        "out": out,
        "num_images": len(result.paths),
        "feat_dim": int(result.features.shape[1]),
        "bad": result.bad,
        "others": listing.others,
        "hidden": listing.hidden,
    }


@hydra_command("extract")
def main(cfg: DictConfig) -> None:
    with job_errors():
        extract_folder(cfg)


if __name__ == "__main__":
    main()
