"""Training-step throughput (images/s) of the BoT model: fp32 baseline vs channels-last, bf16 and
torch.compile.

    python scripts/bench_train.py [--backbone resnet18] [--height 128 --width 64] [--batch 32]
                                  [--last-stride 1 --neck bnneck] [--skip-bf16] [--compile]
    python scripts/bench_train.py --backbone timm:mobilenetv2_100,timm:tf_efficientnet_lite1 ...

Each variant runs the full step (forward, CE + triplet + center loss, backward, Adam step) on
random data; the ratio column compares with the plain fp32 (NCHW) step measured in the same run
(with several comma-separated backbones: the first backbone's).
With --compile the network's forward is compiled (torch.compile, inductor; on CPU it needs a C++
compiler); the compile time is reported apart and the step time is measured after it.
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


def step_time(
    args,
    backbone: str,
    channels_last: bool,
    dtype: torch.dtype | None,
    device: str,
    compiled: bool = False,
) -> tuple[float, float]:
    """(seconds per step, seconds of the warm-up steps, where compilation happens)."""
    torch.manual_seed(0)
    net = build_reid_net(
        num_classes=751,
        **replace(
            ModelConfig(),
            backbone=backbone,
            pretrained=False,
            last_stride=args.last_stride,
            neck=args.neck,
        ).as_kwargs(),
    ).to(device)
    center = CenterLoss(751, net.feat_dim).to(device)
    opt = torch.optim.Adam(build_param_groups(net, 3.5e-4, 5e-4))
    x = torch.randn(args.batch, 3, args.height, args.width, device=device)
    y = torch.arange(args.batch, device=device) // 4
    if channels_last:
        net = net.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    forward = torch.compile(net) if compiled else net

    def step() -> None:
        with torch.autocast(
            device_type=device, dtype=dtype or torch.float32, enabled=dtype is not None
        ):
            out = forward(x)
        loss = cross_entropy_loss(out.logits, y, 0.1) + batch_hard_triplet_loss(
            out.feat_before_bn, y, 0.3, soft_margin=False, normalize_features=False
        )
        loss = loss + 0.0005 * center(out.feat_before_bn.float(), y)
        opt.zero_grad()
        loss.backward()
        opt.step()

    start = time.perf_counter()
    for _ in range(args.warmup):
        step()
    if device == "cuda":
        torch.cuda.synchronize()
    warmup = time.perf_counter() - start
    start = time.perf_counter()
    for _ in range(args.steps):
        step()
    if device == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - start) / args.steps, warmup


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", default="resnet18")
    parser.add_argument("--height", type=int, default=128)
    parser.add_argument("--width", type=int, default=64)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument(
        "--last-stride", type=int, default=1, help="1: the BoT's; 2: the baseline's"
    )
    parser.add_argument(
        "--neck", default="bnneck", help="bnneck (the BoT's) or none (the baseline's)"
    )
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--skip-bf16", action="store_true", help="e.g. on a CPU without bf16 units")
    parser.add_argument("--compile", action="store_true", help="add torch.compile variants")
    args = parser.parse_args()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    variants = [
        ("fp32 NCHW (baseline)", False, None, False),
        ("fp32 channels-last", True, None, False),
    ]
    if not args.skip_bf16:
        variants += [
            ("bf16-mixed", False, torch.bfloat16, False),
            ("bf16-mixed channels-last", True, torch.bfloat16, False),
        ]
    if args.compile:
        variants += [("fp32 compiled", False, None, True),
                     ("fp32 channels-last compiled", True, None, True)]  # fmt: skip
    backbones = args.backbone.split(",")
    print(f"device={device} threads={torch.get_num_threads()} torch={torch.__version__} "
          f"input={args.height}x{args.width} batch={args.batch} "
          f"last_stride={args.last_stride} neck={args.neck}")  # fmt: skip
    print(
        "| backbone | variant | s/step | images/s | vs baseline | warm-up s (compile) |\n"
        "|---|---|---|---|---|---|"
    )
    base = None
    for backbone in backbones:
        for name, cl, dtype, compiled in variants:
            t, warmup = step_time(args, backbone, cl, dtype, device, compiled)
            if base is not None:
                name = name.removesuffix(" (baseline)")
            base = base or t
            print(f"| {backbone} | {name} | {t:.3f} | {args.batch / t:.1f} | {base / t:.2f}x "
                  f"| {warmup:.1f} |")  # fmt: skip


if __name__ == "__main__":
    main()
