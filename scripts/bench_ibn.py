"""IBN-a's cost on CPU: one training step (forward + backward) of MobileNetV2 at 128x64, batch 64,
without IBN, with the IBN layer normalising through `nn.InstanceNorm2d` on the caller's layout
(the naive layer, kept here as the baseline) and with the project's layer (instance norm in NCHW,
the caller's layout handed back), in channels-last and NCHW.

    python scripts/bench_ibn.py [--steps 5] [--threads 1] [--repeats 2]

Ratios are to "no IBN" in the same layout, measured in the same run (cases interleaved, best of
--repeats); the weights are random (timing only).
"""

from __future__ import annotations

import argparse
import time

import torch
from torch import Tensor

from bench_eval import cpu_model  # scripts/ is on sys.path when run as a script
from reidtricks.models import ibn as ibn_module
from reidtricks.models.backbones import build_backbone


def naive_forward(self: ibn_module.IBN, x: Tensor) -> Tensor:
    """The straightforward IBN forward: InstanceNorm2d on the first half as the tensor comes."""
    first, rest = torch.split(x, [self.half, x.shape[1] - self.half], dim=1)
    return self.act(torch.cat([self.inst(first), self.bn(rest)], dim=1))


def step_seconds(ibn: str, naive: bool, channels_last: bool, steps: int) -> float:
    """Mean seconds of one forward + backward step after one warm-up step."""
    project_forward = ibn_module.IBN.forward
    ibn_module.IBN.forward = naive_forward if naive else project_forward
    try:
        trunk, _ = build_backbone("timm:mobilenetv2_100", 1, False, None, "name", ibn)
        x = torch.randn(64, 3, 128, 64)
        if channels_last:
            trunk, x = (
                trunk.to(memory_format=torch.channels_last),
                x.to(memory_format=torch.channels_last),
            )
        trunk.train()
        trunk(x).square().mean().backward()
        start = time.perf_counter()
        for _ in range(steps):
            trunk(x).square().mean().backward()
        return (time.perf_counter() - start) / steps
    finally:
        ibn_module.IBN.forward = project_forward


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    cases = [
        ("no IBN", "none", False),
        ("IBN-a, naive layer", "a", True),
        ("IBN-a, project", "a", False),
    ]
    best: dict[tuple[str, bool], float] = {}
    for _ in range(args.repeats):
        for channels_last in (True, False):
            for name, ibn, naive in cases:
                t = step_seconds(ibn, naive, channels_last, args.steps)
                best[name, channels_last] = min(best.get((name, channels_last), t), t)
    print(
        f"# {cpu_model()}, {args.threads} thread(s), MobileNetV2 128x64 batch 64, {args.steps} steps"
    )
    print("| layout | case | s/step | x no IBN |")
    print("|---|---|---|---|")
    for channels_last in (True, False):
        layout = "channels-last" if channels_last else "NCHW"
        base = best["no IBN", channels_last]
        for name, _, _ in cases:
            t = best[name, channels_last]
            print(f"| {layout} | {name} | {t:.3f} | {t / base:.2f} |")


if __name__ == "__main__":
    main()
