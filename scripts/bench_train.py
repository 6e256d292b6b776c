"""Training-step throughput (images/s) of the BoT model: fp32 baseline vs channels-last vs bf16.

    python scripts/bench_train.py [--backbone resnet18] [--height 128 --width 64] [--batch 32]

Each variant runs the full step (forward, CE + triplet + center loss, backward, Adam step) on
random data; the ratio column compares with the plain fp32 (NCHW) step measured in the same run.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace

import torch

from reidtricks.losses import CenterLoss, batch_hard_triplet_loss, cross_entropy_loss
from reidtricks.models import build_reid_net
from reidtricks.models.settings import ModelConfig
from reidtricks.training.optim import build_param_groups


def step_time(args, channels_last: bool, dtype: torch.dtype | None, device: str) -> float:
    torch.manual_seed(0)
    net = build_reid_net(
        num_classes=751,
        **replace(ModelConfig(), backbone=args.backbone, last_stride=1, neck="bnneck").as_kwargs(),
    ).to(device)
    center = CenterLoss(751, net.feat_dim).to(device)
    opt = torch.optim.Adam(build_param_groups(net, 3.5e-4, 5e-4))
    x = torch.randn(args.batch, 3, args.height, args.width, device=device)
    y = torch.arange(args.batch, device=device) // 4
    if channels_last:
        net = net.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)

    def step() -> None:
        with torch.autocast(
            device_type=device, dtype=dtype or torch.float32, enabled=dtype is not None
        ):
            out = net(x)
        loss = cross_entropy_loss(out.logits, y, 0.1) + batch_hard_triplet_loss(
            out.feat_before_bn, y, 0.3, soft_margin=False, normalize_features=False
        )
        loss = loss + 0.0005 * center(out.feat_before_bn.float(), y)
        opt.zero_grad()
        loss.backward()
        opt.step()

    for _ in range(args.warmup):
        step()
    if device == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(args.steps):
        step()
    if device == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - start) / args.steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", default="resnet18")
    parser.add_argument("--height", type=int, default=128)
    parser.add_argument("--width", type=int, default=64)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    args = parser.parse_args()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    variants = [("fp32 NCHW (baseline)", False, None), ("fp32 channels-last", True, None),
                ("bf16-mixed", False, torch.bfloat16), ("bf16-mixed channels-last", True, torch.bfloat16)]  # fmt: skip
    print(f"device={device} threads={torch.get_num_threads()} torch={torch.__version__} "
          f"backbone={args.backbone} input={args.height}x{args.width} batch={args.batch}")  # fmt: skip
    print("| variant | s/step | images/s | vs baseline |\n|---|---|---|---|")
    base = None
    for name, cl, dtype in variants:
        t = step_time(args, cl, dtype, device)
        base = base or t
        print(f"| {name} | {t:.3f} | {args.batch / t:.1f} | {base / t:.2f}x |")


if __name__ == "__main__":
    main()
