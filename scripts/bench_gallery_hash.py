"""What keying the search gallery cache by content costs: blake2b of every gallery file, cold
(no recorded digests) and warm (stat shortcut), against extracting the gallery's features.

    python scripts/bench_gallery_hash.py [--images 1500] [--extract 300] [--backbone resnet18]

A synthetic gallery of small JPEGs (128 x 64, Market-1501 crop size) is written to a temporary
folder; extraction (untrained network, CPU, the demo input 64 x 32 unless --height/--width) is
timed on `--extract` images and scaled to the whole gallery.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from reidtricks.inference import FeatureExtractor, content_hash
from reidtricks.inference.checkpoint import InputSpec
from reidtricks.inference.content_hash import file_digests
from reidtricks.models import build_reid_net


def write_gallery(root: Path, n: int) -> list[Path]:
    rng = np.random.default_rng(0)
    files = []
    for i in range(n):
        y = np.linspace(0, 255, 128)[:, None, None]
        img = np.clip(y + rng.normal(0, 40, (128, 64, 3)), 0, 255).astype(np.uint8)
        path = root / f"{i % 750:04d}_c{i % 6 + 1}s1_{i:06d}_00.jpg"
        Image.fromarray(img).save(path, quality=90)
        files.append(path)
    return files


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=1500)
    parser.add_argument("--extract", type=int, default=300)
    parser.add_argument("--backbone", default="resnet18")
    parser.add_argument("--height", type=int, default=64)
    parser.add_argument("--width", type=int, default=32)
    args = parser.parse_args()
    content_hash.RACY_NS = 0  # the files were just written: trust their stamps at once
    with tempfile.TemporaryDirectory() as tmp:
        files = write_gallery(Path(tmp), args.images)
        size_mb = sum(f.stat().st_size for f in files) / 1e6
        start = time.perf_counter()
        _, index, hashed = file_digests(files)
        cold = time.perf_counter() - start
        start = time.perf_counter()
        _, _, rehashed = file_digests(files, index)  # the stat shortcut
        warm = time.perf_counter() - start
        net = build_reid_net(args.backbone, num_classes=10, last_stride=1, neck="bnneck")
        spec = InputSpec(args.height, args.width, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
        extractor = FeatureExtractor(net.eval(), spec, batch_size=64)
        subset = files[: args.extract]
        start = time.perf_counter()
        extractor.extract_files(subset)
        extract = (time.perf_counter() - start) * len(files) / len(subset)
    print(f"{len(files)} JPEGs, {size_mb:.1f} MB, torch threads {torch.get_num_threads()}")
    print(f"hash, cold ({hashed} files read): {cold * 1e3:.0f} ms")
    print(f"hash, warm (stat shortcut, {rehashed} files read): {warm * 1e3:.0f} ms")
    print(f"extract ({args.backbone} {args.height}x{args.width}, scaled): {extract:.1f} s")
    print(f"hashing / extraction: {cold / extract:.2%}")


if __name__ == "__main__":
    main()
