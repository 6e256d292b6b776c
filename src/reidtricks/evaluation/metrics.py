"""CMC, mAP and mINP under the Market-1501 and CUHK03 single-gallery-shot protocols.

Ranking order: ascending distance, ties broken by gallery index (a stable sort). Gallery images
with the query's identity AND camera are removed; pids are taken as given (drop Market's junk,
pid -1, when loading; distractors, pid 0, are ordinary gallery images). No gallery row is sorted:
a query's metrics depend only on the rank of each correct match, i.e. on how many other-identity
images come before it, so each chunk of queries is scanned once for the images no farther than
its farthest correct match, and only those are compared with the (few, sorted) correct matches.
Everything runs on the distmat's device; no Q x G index matrix is ever built.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

PROTOCOLS = ("market", "cuhk03")
# CUHK03 single-gallery-shot: CMC averaged over this many random draws of one gallery image per
# identity (the classic evaluation, as in torchreid's eval_cuhk03), drawn from a fixed seed.
CUHK03_REPEATS = 10
CUHK03_SEED = 0
# Upper bound on (candidate x correct-match) comparisons held in memory at once.
_COMPARE_BUDGET = 1 << 22


@dataclass
class EvalResult:
    """Ranking metrics over the valid queries; all rates are fractions in [0, 1]."""

    cmc: np.ndarray
    mAP: float
    mINP: float
    num_valid_queries: int

    def as_dict(self) -> dict[str, float]:
        """rank1/5/10, mAP, mINP (NaN for a rank beyond len(cmc)) and num_valid_queries."""
        out = {
            f"rank{k}": float(self.cmc[k - 1]) if k <= len(self.cmc) else float("nan")
            for k in (1, 5, 10)
        }
        out.update(mAP=self.mAP, mINP=self.mINP, num_valid_queries=self.num_valid_queries)
        return out


def _as_tensor(x, name: str, device: torch.device) -> Tensor:
    t = x if isinstance(x, Tensor) else torch.as_tensor(np.asarray(x))
    if t.dim() != 1:
        raise ValueError(f"{name} must be 1-D, got shape {tuple(t.shape)}")
    if t.is_floating_point() or t.is_complex() or t.dtype == torch.bool:
        raise ValueError(f"{name} must hold integers, got dtype {t.dtype}")
    return t.to(device=device, dtype=torch.int64)


def _ragged_arange(starts: Tensor, lengths: Tensor) -> tuple[Tensor, Tensor]:
    """(owner, index) pairs enumerating starts[o] + 0..lengths[o]-1 for every owner o."""
    owner = torch.repeat_interleave(torch.arange(len(lengths), device=lengths.device), lengths)
    first = torch.cumsum(lengths, 0) - lengths
    index = starts[owner] + torch.arange(len(owner), device=lengths.device) - first[owner]
    return owner, index


def _positives(
    d: Tensor, q_pid: Tensor, q_cam: Tensor, g_order: Tensor, g_pids_sorted: Tensor, g_cams: Tensor
) -> tuple[Tensor, Tensor, Tensor]:
    """Correct matches of each query row, sorted by (distance, gallery index), right-padded.

    Returns their distances (padding +inf), gallery indices (padding G) and counts per row.
    """
    lo = torch.searchsorted(g_pids_sorted, q_pid)
    hi = torch.searchsorted(g_pids_sorted, q_pid, right=True)
    row, pos = _ragged_arange(lo, hi - lo)
    col = g_order[pos]  # same-identity gallery images, ascending index within each row
    keep = g_cams[col] != q_cam[row]
    row, col = row[keep], col[keep]
    counts = torch.bincount(row, minlength=len(q_pid))
    width = max(int(counts.max()), 1) if len(counts) else 1
    pd = torch.full((len(q_pid), width), float("inf"), dtype=d.dtype, device=d.device)
    pi = torch.full((len(q_pid), width), d.shape[1], dtype=torch.int64, device=d.device)
    slot = torch.arange(len(row), device=d.device) - (torch.cumsum(counts, 0) - counts)[row]
    pd[row, slot] = d[row, col]
    pi[row, slot] = col
    # Slots hold increasing gallery indices, so a stable sort by distance orders by (d, index).
    pd, order = torch.sort(pd, dim=1, stable=True)
    return pd, pi.gather(1, order), counts


def _precedes(d: Tensor, j: Tensor, pd: Tensor, pi: Tensor) -> Tensor:
    """Whether gallery image j at distance d comes before (pd, pi) in the stable ranking."""
    return (d < pd) | ((d == pd) & (j < pi))


def _match_ranks(
    d: Tensor, pd: Tensor, pi: Tensor, counts: Tensor, q_pid: Tensor, g_pids: Tensor
) -> Tensor:
    """1-based rank of each sorted correct match among the kept gallery (rows x width, int64)."""
    rows, width = pd.shape
    valid = counts > 0
    # Only other-identity images no farther than a row's last correct match can precede one.
    last = pd.gather(1, (counts - 1).clamp(min=0)[:, None])
    last = torch.where(valid[:, None], last, torch.full_like(last, -float("inf")))
    cr, cc = torch.nonzero(d <= last, as_tuple=True)
    other = g_pids[cc] != q_pid[cr]
    cr, cc = cr[other], cc[other]
    cd = d[cr, cc]
    # bucket = number of the row's correct matches ranked before each candidate.
    bucket = torch.empty_like(cr)
    step = max(1, _COMPARE_BUDGET // width)
    for s in range(0, len(cr), step):
        r, j, v = cr[s : s + step], cc[s : s + step, None], cd[s : s + step, None]
        bucket[s : s + step] = _precedes(pd[r], pi[r], v, j).sum(1)
    hist = torch.bincount(cr * (width + 1) + bucket, minlength=rows * (width + 1))
    before = hist.view(rows, width + 1).cumsum(1)[:, :width]
    return before + torch.arange(1, width + 1, device=d.device)


def _single_shot_draws(
    g_pids: Tensor, num_q: int, device: torch.device
) -> tuple[list[Tensor], Tensor]:
    """Per repeat: one gallery image per identity, and a uniform number per query (seeded)."""
    gen = torch.Generator().manual_seed(CUHK03_SEED)
    group = torch.unique(g_pids.cpu(), return_inverse=True)[1]
    reps = []
    for _ in range(CUHK03_REPEATS):
        perm = torch.randperm(len(group), generator=gen)
        order = torch.argsort(group[perm], stable=True)
        grouped = group[perm][order]
        first = torch.ones_like(grouped, dtype=torch.bool)
        first[1:] = grouped[1:] != grouped[:-1]
        reps.append(perm[order[first]].to(device))
    u = torch.rand(CUHK03_REPEATS, num_q, generator=gen, dtype=torch.float64).to(device)
    return reps, u


def _single_shot_first_ranks(
    d: Tensor,
    pd: Tensor,
    pi: Tensor,
    counts: Tensor,
    q_pid: Tensor,
    g_pids: Tensor,
    reps: Tensor,
    u: Tensor,
) -> Tensor:
    """First-match rank when each identity keeps only its drawn image (the query's own keeps
    a uniformly drawn correct match instead)."""
    slot = (u * counts).long().clamp(max=pd.shape[1] - 1, min=0)[:, None]
    sd, si = pd.gather(1, slot), pi.gather(1, slot)
    before = _precedes(d[:, reps], reps[None, :], sd, si)
    before &= g_pids[reps][None, :] != q_pid[:, None]
    return before.sum(1) + 1


def evaluate(
    distmat,
    q_pids,
    g_pids,
    q_camids,
    g_camids,
    max_rank: int = 50,
    protocol: str = "market",
    chunk_size: int = 256,
) -> EvalResult:
    """CMC (length max_rank), mAP and mINP of a Q x G distance matrix (numpy or torch).

    Queries with no correct match left are skipped. CMC beyond the gallery size repeats its
    last value. `cuhk03` averages the CMC over CUHK03_REPEATS single-gallery-shot draws; its mAP
    and mINP use the full gallery. Runs on the distmat's device, `chunk_size` queries at a time.
    """
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol {protocol!r}; expected one of {PROTOCOLS}")
    if max_rank < 1 or chunk_size < 1:
        raise ValueError(f"max_rank and chunk_size must be >= 1, got {max_rank}, {chunk_size}")
    dist = distmat if isinstance(distmat, Tensor) else torch.as_tensor(np.asarray(distmat))
    if dist.dim() != 2:
        raise ValueError(f"distmat must be 2-D (queries x gallery), got {tuple(dist.shape)}")
    num_q, num_g = dist.shape
    device = dist.device
    q_pids, q_cams = (
        _as_tensor(x, n, device) for x, n in ((q_pids, "q_pids"), (q_camids, "q_camids"))
    )
    g_pids, g_cams = (
        _as_tensor(x, n, device) for x, n in ((g_pids, "g_pids"), (g_camids, "g_camids"))
    )
    for t, n, size in (
        (q_pids, "q_pids", num_q),
        (q_cams, "q_camids", num_q),
        (g_pids, "g_pids", num_g),
        (g_cams, "g_camids", num_g),
    ):
        if len(t) != size:
            raise ValueError(
                f"{n} has {len(t)} entries, expected {size} to match distmat {tuple(dist.shape)}"
            )

    g_order = torch.argsort(g_pids, stable=True)
    g_pids_sorted = g_pids[g_order]
    single_shot = protocol == "cuhk03"
    if single_shot:
        reps, u = _single_shot_draws(g_pids, num_q, device)
    hist = torch.zeros(max_rank + 1, dtype=torch.int64, device=device)
    ap_sum = torch.zeros((), dtype=torch.float64, device=device)
    inp_sum = torch.zeros((), dtype=torch.float64, device=device)
    num_valid = torch.zeros((), dtype=torch.int64, device=device)
    for a in range(0, num_q, chunk_size):
        b = min(a + chunk_size, num_q)
        d = dist[a:b]
        if d.dtype in (torch.float16, torch.bfloat16):
            d = d.float()
        elif not d.is_floating_point():
            d = d.double()
        if torch.isnan(d).any():
            raise ValueError(f"distmat contains NaN (in query rows {a}..{b - 1})")
        q_pid, q_cam = q_pids[a:b], q_cams[a:b]
        pd, pi, counts = _positives(d, q_pid, q_cam, g_order, g_pids_sorted, g_cams)
        valid = counts > 0
        ranks = _match_ranks(d, pd, pi, counts, q_pid, g_pids).double()
        k = torch.arange(1, pd.shape[1] + 1, device=device, dtype=torch.float64)
        in_row = k <= counts[:, None]
        m = counts.clamp(min=1).double()
        ap = torch.where(in_row, k / ranks, 0.0).sum(1) / m
        inp = m / ranks.gather(1, (counts - 1).clamp(min=0)[:, None]).squeeze(1)
        ap_sum += ap[valid].sum()
        inp_sum += inp[valid].sum()
        num_valid += valid.sum()
        if single_shot:
            for t in range(CUHK03_REPEATS):
                first = _single_shot_first_ranks(
                    d, pd, pi, counts, q_pid, g_pids, reps[t], u[t, a:b]
                )
                hist += torch.bincount(
                    first[valid].clamp(max=max_rank + 1) - 1, minlength=max_rank + 1
                )
        else:
            first = ranks[:, 0].long()
            hist += torch.bincount(first[valid].clamp(max=max_rank + 1) - 1, minlength=max_rank + 1)

    n = int(num_valid)
    if n == 0:
        raise ValueError(
            f"no valid query: none of the {num_q} queries has a gallery image of its identity "
            "from another camera"
        )
    draws = CUHK03_REPEATS if single_shot else 1
    cmc = (torch.cumsum(hist[:max_rank], 0).double() / (n * draws)).cpu().numpy()
    return EvalResult(cmc=cmc, mAP=float(ap_sum) / n, mINP=float(inp_sum) / n, num_valid_queries=n)
