"""Feature-extraction throughput: PyTorch eager vs onnxruntime (CPU), same batch, same run.

For each model (random weights; the demo's ResNet-18 at 64x32 and ResNet-50 at 256x128, both
with last stride 1 and BNNeck as in the full BoT), the network is exported with
`reidtricks.inference.onnx_export.export_onnx` and both backends run the same prepared batch in alternating
rounds, so that a change of load on a shared machine hits both alike; images/s is the median over
rounds. Image decoding and resizing are excluded (measured on their own in the last column:
128x64 JPEGs read and transformed to the model's input size in one process).

    python scripts/bench_inference.py                      # both models, batch 32, 2 threads
    python scripts/bench_inference.py --models demo --rounds 9 --markdown out.md
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from reidtricks.data.settings import IMAGENET_MEAN, IMAGENET_STD
from reidtricks.inference import FeatureExtractor
from reidtricks.inference.checkpoint import InputSpec, NetSpec
from reidtricks.inference.onnx_export import export_onnx, onnx_session, run_onnx
from reidtricks.models.settings import ModelConfig


@dataclass(frozen=True)
class Model:
    label: str
    backbone: str
    height: int
    width: int
    num_classes: int


MODELS = {
    "demo": Model("demo: ResNet-18", "resnet18", 64, 32, 100),
    "r50": Model("ResNet-50", "resnet50", 256, 128, 751),
}


def timed_rate(run, images: int, min_time: float) -> float:
    """Images/s of `run` (one batch per call), repeated until min_time has passed."""
    calls, start = 0, time.perf_counter()
    while True:
        run()
        calls += 1
        elapsed = time.perf_counter() - start
        if elapsed >= min_time:
            return calls * images / elapsed


def bench_model(model: Model, batch: int, rounds: int, min_time: float, threads: int) -> dict:
    """Median images/s of both backends over alternating rounds, and their feature difference."""
    args = {"backbone": model.backbone, "num_classes": model.num_classes, "last_stride": 1}
    net = NetSpec({**ModelConfig(neck="bnneck").as_kwargs(), **args}).build()
    spec = InputSpec(model.height, model.width, IMAGENET_MEAN, IMAGENET_STD)
    extractor = FeatureExtractor(net, spec, feature="after_bn", flip=False, batch_size=batch)
    x = torch.randn(batch, 3, model.height, model.width, generator=torch.Generator().manual_seed(0))
    with tempfile.TemporaryDirectory() as tmp:
        path = export_onnx(extractor, Path(tmp) / "model.onnx", dynamic_batch=True)
        session = onnx_session(path, threads=threads)
        ours, theirs = extractor.forward(x), run_onnx(session, x)
        diff = float((F.normalize(ours, dim=1) - F.normalize(theirs, dim=1)).abs().max())
        runs = {"torch": lambda: extractor.forward(x), "onnxruntime": lambda: run_onnx(session, x)}
        for run in runs.values():  # warm-up (allocations, oneDNN / ORT kernel selection)
            run()
        rates: dict[str, list[float]] = {name: [] for name in runs}
        for r in range(rounds):
            order = list(runs) if r % 2 == 0 else list(runs)[::-1]
            for name in order:
                rates[name].append(timed_rate(runs[name], batch, min_time))
    torch_rate = statistics.median(rates["torch"])
    ort_rate = statistics.median(rates["onnxruntime"])
    return {
        "model": model,
        "batch": batch,
        "torch": torch_rate,
        "onnxruntime": ort_rate,
        "spread": {k: (min(v), max(v)) for k, v in rates.items()},
        "ratio": ort_rate / torch_rate,
        "diff": diff,
    }


def bench_preprocessing(model: Model, count: int = 128) -> float:
    """Images/s of reading a 128x64 JPEG and applying the model's test transform (one process)."""
    from PIL import Image

    from reidtricks.data.image_dataset import read_image
    from reidtricks.data.transforms import build_test_transform

    transform = build_test_transform(model.height, model.width, IMAGENET_MEAN, IMAGENET_STD)
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        paths = []
        for i in range(count):
            path = Path(tmp) / f"{i:04d}.jpg"
            Image.fromarray(rng.integers(0, 256, (128, 64, 3), dtype=np.uint8)).save(path)
            paths.append(str(path))
        start = time.perf_counter()
        for path in paths:
            transform(read_image(path))
        return count / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="demo,r50", help=f"comma list of {sorted(MODELS)}")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=5, help="alternating rounds per backend")
    parser.add_argument("--min-time", type=float, default=3.0, help="seconds per round at least")
    parser.add_argument("--threads", type=int, default=min(2, os.cpu_count() or 1))
    parser.add_argument("--markdown", type=Path, help="also write the table to this file")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    import onnxruntime

    load_start = os.getloadavg()[0]
    results = [
        bench_model(MODELS[name], args.batch, args.rounds, args.min_time, args.threads)
        for name in args.models.split(",")
    ]
    for r in results:
        r["prep"] = bench_preprocessing(r["model"])
    load_end = os.getloadavg()[0]

    header = (
        f"{date.today()}; {platform.processor() or platform.machine()}, {os.cpu_count()} CPU "
        f"cores; torch {torch.__version__} and onnxruntime {onnxruntime.__version__}, "
        f"{args.threads} threads each; batch {args.batch}; median of {args.rounds} alternating "
        f"rounds of >= {args.min_time:g} s; load average (1 min) {load_start:.2f} at the start, "
        f"{load_end:.2f} at the end."
    )
    lines = [
        header,
        "",
        "| model | input | PyTorch eager (images/s) | onnxruntime (images/s) | onnxruntime / "
        "PyTorch | max abs diff (L2-normalised) | JPEG decode + transform (images/s) |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        m = r["model"]
        t_lo, t_hi = r["spread"]["torch"]
        o_lo, o_hi = r["spread"]["onnxruntime"]
        lines.append(
            f"| {m.label} | {m.height}x{m.width} | {r['torch']:.1f} ({t_lo:.1f}-{t_hi:.1f}) | "
            f"{r['onnxruntime']:.1f} ({o_lo:.1f}-{o_hi:.1f}) | {r['ratio']:.2f}x | "
            f"{r['diff']:.1e} | {r['prep']:.0f} |"
        )
    text = "\n".join(lines)
    print(text)
    if args.markdown:
        args.markdown.write_text(text + "\n")


if __name__ == "__main__":
    main()
