"""Per-source balance of the P x K sampler (docs/METHOD.md, "Per-source balance"): each training
source's expected share of the identities of a step, and one step's whole-number quotas."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from reidtricks.errors import InputError

NONE, SQRT = "none", "sqrt"
BALANCES = (NONE, SQRT)  # none: plain concatenation (identities drawn alike across sources)


def source_shares(sizes: Sequence[int], need: int) -> np.ndarray:
    """Expected identities of each source per step (they sum to `need`): need * sqrt(n_s) / sum
    sqrt(n), where n_s counts a source's identities; a source is capped at n_s and its excess
    shared among the others by the same rule."""
    n = np.asarray(sizes, dtype=np.float64)
    if n.ndim != 1 or not n.size or (n < 1).any() or n.sum() < need:
        raise InputError(
            f"per-source balance needs >= 1 identity per source and {need} in all, got {list(sizes)}"
        )
    shares = np.zeros_like(n)
    free = np.ones(n.shape, dtype=bool)
    left = float(need)
    while free.any():
        weights = np.where(free, np.sqrt(n), 0.0)
        alloc = left * weights / weights.sum()
        over = free & (alloc > n)
        if not over.any():
            return np.where(free, alloc, shares)
        shares[over] = n[over]
        left -= n[over].sum()
        free &= ~over
    return shares


def step_quotas(shares: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Whole identities per source for one step: floor(share) plus one more with probability
    equal to its fraction (systematic sampling), so the mean is the share and the total fixed."""
    base = np.floor(shares).astype(np.int64)
    extra = round(float(shares.sum())) - int(base.sum())
    if extra <= 0:
        return base
    edges = np.cumsum(shares - base)
    edges *= extra / edges[-1]  # float drift: the fractions sum to `extra` exactly
    points = rng.random() + np.arange(extra)  # one uniform start, `extra` unit-spaced points
    hit = np.searchsorted(edges, points, side="right")  # the source whose interval holds each
    return base + np.bincount(hit, minlength=len(shares))
