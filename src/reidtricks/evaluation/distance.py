"""Query x gallery distance matrices, computed in fp32 chunk by chunk on the features' device."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

METRICS = ("euclidean", "sqeuclidean", "cosine")


def pairwise_distance(qf: Tensor, gf: Tensor, metric: str, chunk_size: int = 4096) -> Tensor:
    """Q x G float32 distances: `euclidean` sqrt(|q-g|^2), `sqeuclidean` |q-g|^2, `cosine` 1-cos.

    Squared distances use |q|^2 + |g|^2 - 2 q.g (clamped at 0); cosine L2-normalises first.
    Chunks of `chunk_size` queries are written straight into the output, so the temporary
    memory is that of the features; half inputs are upcast to fp32.
    """
    if metric not in METRICS:
        raise ValueError(f"unknown distance metric {metric!r}; expected one of {METRICS}")
    if qf.dim() != 2 or gf.dim() != 2 or qf.shape[1] != gf.shape[1]:
        raise ValueError(
            f"features must be 2-D with the same width, got query {tuple(qf.shape)} "
            f"and gallery {tuple(gf.shape)}"
        )
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    gf = gf.float()
    if metric == "cosine":
        gf = F.normalize(gf, dim=1)
    g_sq = torch.cat([(part * part).sum(1) for part in gf.split(chunk_size)])
    out = torch.empty(qf.shape[0], gf.shape[0], dtype=torch.float32, device=gf.device)
    for start in range(0, qf.shape[0], chunk_size):
        q = qf[start : start + chunk_size].to(device=gf.device, dtype=torch.float32)
        block = out[start : start + chunk_size]
        if metric == "cosine":
            torch.mm(F.normalize(q, dim=1), gf.t(), out=block)
            block.neg_().add_(1.0).clamp_(0.0, 2.0)
            continue
        # |g|^2 broadcast into the block, then |q|^2 added in place: no second block-sized array.
        torch.addmm(g_sq[None, :], q, gf.t(), alpha=-2.0, out=block)
        block.add_((q * q).sum(1, keepdim=True)).clamp_(min=0.0)
        if metric == "euclidean":
            block.sqrt_()
    return out
