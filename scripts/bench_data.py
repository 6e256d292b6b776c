"""Is decoding worth caching? Time per training batch of reading + decoding the image files
against the augmentation alone (from images decoded once and kept in memory), next to the
training step they feed (bench_train.py's figure for the same batch).

    python scripts/bench_data.py [--data-dir ../shared/data] [--batch 64] [--batches 20]

Reads the real CUHK03-NP labeled train split (what ../shared/data holds) with the
project's dataset class and the CPU studies' train transform (128x64, pad 5, REA on).
"""

from __future__ import annotations

import argparse
import os
import time

import torch

from reidtricks.data.datasets import CUHK03NP
from reidtricks.data.image_dataset import read_image
from reidtricks.data.sample_rng import sample_generator
from reidtricks.data.settings import TransformConfig
from reidtricks.data.transforms import build_train_transform


def per_batch(fn, paths: list[str], batch: int, batches: int) -> float:
    """Mean seconds per batch of `fn(index, path)` over `batches` consecutive batches."""
    start = time.perf_counter()
    for b in range(batches):
        for i in range(b * batch, (b + 1) * batch):
            fn(i, paths[i % len(paths)])
    return (time.perf_counter() - start) / batches


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data-dir", default=os.environ.get("REIDTRICKS_DATA_DIR", "../shared/data")
    )
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--batches", type=int, default=20)
    args = parser.parse_args()
    torch.set_num_threads(1)
    paths = [path for path, _, _ in CUHK03NP(args.data_dir, variant="labeled").load().train]
    transform = build_train_transform(
        TransformConfig(height=128, width=64, pad=5, erasing_prob=0.5)
    )
    n = args.batch * args.batches
    decoded = {p: read_image(p) for p in paths[:n]}
    read_only = per_batch(lambda i, p: read_image(p), paths, args.batch, args.batches)
    full = per_batch(
        lambda i, p: transform(read_image(p), sample_generator(0, 0, i)),
        paths, args.batch, args.batches,
    )  # fmt: skip
    cached = per_batch(
        lambda i, p: transform(decoded[p], sample_generator(0, 0, i)),
        paths, args.batch, args.batches,
    )  # fmt: skip
    print(f"CUHK03 train images={len(paths)} batch={args.batch} batches={args.batches} threads=1")
    print("| per batch | seconds | vs read + augment |\n|---|---|---|")
    print(f"| read + decode + augment (now) | {full:.3f} | 1.00x |")
    print(f"| read + decode only | {read_only:.3f} | {read_only / full:.2f} of it |")
    print(f"| augment from decoded images in memory | {cached:.3f} | {full / cached:.2f}x faster |")


if __name__ == "__main__":
    main()
