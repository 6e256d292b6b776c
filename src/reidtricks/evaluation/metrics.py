"""CMC, mAP and mINP under the Market-1501 and CUHK03 single-gallery-shot protocols.

Ranking order: ascending distance, ties broken by gallery index (a stable sort). Gallery images
with the query's identity AND camera are removed; pids are taken as given (drop Market's junk,
pid -1, when loading; distractors, pid 0, are ordinary gallery images).

No gallery row is sorted: a query's metrics depend only on the rank of each correct match, i.e.
on how many other-identity images come before it. A non-decreasing map sends every distance of
a row to a bin between the row's first and last correct match; images in bins below a match's
bin are counted, and only the few that share a bin with a correct match are compared exactly,
by (distance, gallery index). On CPU that is one compiled pass over each distance
(rank_kernel.py); on other devices, per chunk of query rows, a fixed number of torch passes
(~G/2 bins per row, one histogram, about 10 bytes of working set per distance of a chunk). Either
way the cost does not depend on the features' quality and no Q x G index matrix is built.
"""

from __future__ import annotations

import queue
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from typing import ClassVar, TypeVar

import numpy as np
import torch
from torch import Tensor

from reidtricks.evaluation.ragged import ragged_arange

T = TypeVar("T")
R = TypeVar("R")

PROTOCOLS = ("market", "cuhk03")
# CUHK03 single-gallery-shot: CMC averaged over this many random draws of one gallery image per
# identity (the classic evaluation, as in torchreid's eval_cuhk03), drawn from a fixed seed.
CUHK03_REPEATS = 10
CUHK03_SEED = 0
# Distances per chunk of query rows (default chunk size), and gallery images per bin.
_ELEMENT_BUDGET = 1 << 20
_IMAGES_PER_BIN = 2
_MAX_BINS = 1 << 16
# Bins after a row's last match bin. Images past the last match (most of a row on good
# features) take one of them by column, so that the histogram's increments do not all hit one
# counter in a row: a chain of dependent read-modify-writes that ran the histogram 1.7x slower.
_TOP_BINS = 4
# On CPU, the compiled one-pass kernel (rank_kernel) instead of the binned torch passes, which
# stay for other devices (and run on CPU in the tests, with this off).
_CPU_KERNEL = True


@dataclass
class EvalResult:
    """Ranking metrics over the valid queries; all rates are fractions in [0, 1]."""

    # The metrics every table, log and metrics.json shows, in this order.
    KEYS: ClassVar[tuple[str, ...]] = ("rank1", "rank5", "rank10", "mAP", "mINP")

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


def evaluate(
    distmat,
    q_pids,
    g_pids,
    q_camids,
    g_camids,
    max_rank: int,
    protocol: str,
    chunk_size: int | None = None,
    threads: int | None = None,
) -> EvalResult:
    """CMC (length max_rank), mAP and mINP of a Q x G distance matrix (numpy or torch).

    Queries with no correct match left are skipped. CMC beyond the gallery size repeats its
    last value. `cuhk03` averages the CMC over CUHK03_REPEATS single-gallery-shot draws; its mAP
    and mINP use the full gallery. Runs on the distmat's device, `chunk_size` queries at a time
    (default: about a million distances). On CPU, `threads` threads (default: torch's setting)
    each take whole chunks with torch's intra-op parallelism off, so that a core kept busy by
    another process slows the call down by its share of the cores, not several-fold.
    """
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol {protocol!r}; expected one of {PROTOCOLS}")
    if max_rank < 1 or (chunk_size is not None and chunk_size < 1):
        raise ValueError(f"max_rank and chunk_size must be >= 1, got {max_rank}, {chunk_size}")
    if threads is not None and threads < 1:
        raise ValueError(f"threads must be >= 1 or None, got {threads}")
    dist = distmat if isinstance(distmat, Tensor) else torch.as_tensor(np.asarray(distmat))
    dist = dist.detach()
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
    workers = threads or torch.get_num_threads()
    with torch_threads(1 if device.type == "cpu" else None):
        return _evaluate(
            dist, q_pids, g_pids, q_cams, g_cams, max_rank, protocol, chunk_size, workers
        )


@contextmanager
def torch_threads(threads: int | None) -> Iterator[None]:
    """torch's intra-op thread count set to `threads` inside the block (None: left as is)."""
    before = torch.get_num_threads()
    if threads is None or threads == before:
        yield
        return
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def map_in_threads(fn: Callable[[T], R], items: Iterable[T], workers: int) -> list[R]:
    """[fn(item) for item in items], on `workers` threads that each take the next item when done.

    With torch's intra-op threads at 1 (torch_threads), a core lost to another process costs its
    share of the work, while an intra-op barrier after every op would wait on it each time.
    """
    items = list(items)
    if workers <= 1 or len(items) <= 1:
        return [fn(item) for item in items]
    # Inference and grad modes are thread-local: the workers take the caller's, so that they may
    # write into tensors the caller made (e.g. under Lightning's test loop, in inference mode).
    inference, grad = torch.is_inference_mode_enabled(), torch.is_grad_enabled()

    def in_callers_mode(item: T) -> R:
        with torch.inference_mode(inference), torch.set_grad_enabled(grad):
            return fn(item)

    with ThreadPoolExecutor(min(workers, len(items))) as pool:
        return list(pool.map(in_callers_mode, items))


def _as_tensor(x, name: str, device: torch.device) -> Tensor:
    t = x if isinstance(x, Tensor) else torch.as_tensor(np.asarray(x))
    if t.dim() != 1:
        raise ValueError(f"{name} must be 1-D, got shape {tuple(t.shape)}")
    if t.is_floating_point() or t.is_complex() or t.dtype == torch.bool:
        raise ValueError(f"{name} must hold integers, got dtype {t.dtype}")
    return t.to(device=device, dtype=torch.int64)


def _evaluate(
    dist: Tensor,
    q_pids: Tensor,
    g_pids: Tensor,
    q_cams: Tensor,
    g_cams: Tensor,
    max_rank: int,
    protocol: str,
    chunk_size: int | None,
    workers: int,
) -> EvalResult:
    """evaluate() on validated tensors, all on the distmat's device."""
    num_q, num_g = dist.shape
    device = dist.device
    if dist.dtype in (torch.float16, torch.bfloat16):
        dtype = torch.float32
    else:
        dtype = dist.dtype if dist.is_floating_point() else torch.float64
    g_order = torch.argsort(g_pids, stable=True)
    pd, pi, counts, *same = _positives(
        dist, dtype, q_pids, q_cams, g_order, g_pids[g_order], g_cams
    )
    valid = counts > 0
    n = int(valid.sum())
    if n == 0:
        if num_q and num_g and bool(torch.isnan(dist).any()):
            raise ValueError("distmat contains NaN")
        raise ValueError(
            f"no valid query: none of the {num_q} queries has a gallery image of its identity "
            "from another camera"
        )
    rows = chunk_size or max(1, _ELEMENT_BUDGET // num_g)
    ranks = _match_ranks(dist, dtype, pd, pi, counts, tuple(same), q_pids, g_pids, rows, workers)
    ranks = ranks.double()
    k = torch.arange(1, pd.shape[1] + 1, device=device, dtype=torch.float64)
    m = counts.clamp(min=1).double()
    ap = torch.where(k <= counts[:, None], k / ranks, 0.0).sum(1) / m
    inp = m / ranks.gather(1, (counts - 1).clamp(min=0)[:, None]).squeeze(1)
    if protocol == "cuhk03":
        hist = _single_shot_histogram(dist, dtype, pd, pi, counts, q_pids, g_pids, max_rank, rows)
        draws = CUHK03_REPEATS
    else:
        first = ranks[:, 0].long()[valid]
        hist = torch.bincount(first.clamp(max=max_rank + 1) - 1, minlength=max_rank + 1)
        draws = 1
    cmc = (torch.cumsum(hist[:max_rank], 0).double() / (n * draws)).cpu().numpy()
    return EvalResult(
        cmc=cmc,
        mAP=float(ap[valid].sum()) / n,
        mINP=float(inp[valid].sum()) / n,
        num_valid_queries=n,
    )


def _positives(
    dist: Tensor,
    dtype: torch.dtype,
    q_pids: Tensor,
    q_cams: Tensor,
    g_order: Tensor,
    g_pids_sorted: Tensor,
    g_cams: Tensor,
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """Correct matches of each query, sorted by (distance, gallery index), right-padded.

    Returns their distances (padding +inf), gallery indices (padding G), counts per query, and
    (row, column) of every same-identity gallery image (correct matches and removed ones) in
    row order.
    """
    num_q, num_g = dist.shape
    lo = torch.searchsorted(g_pids_sorted, q_pids)
    hi = torch.searchsorted(g_pids_sorted, q_pids, right=True)
    same_row, pos = ragged_arange(lo, hi - lo)
    same_col = g_order[pos]  # same-identity gallery images, ascending index within each row
    keep = g_cams[same_col] != q_cams[same_row]
    row, col = same_row[keep], same_col[keep]
    counts = torch.bincount(row, minlength=num_q)
    width = max(int(counts.max()), 1) if num_q else 1
    pd = torch.full((num_q, width), float("inf"), dtype=dtype, device=dist.device)
    pi = torch.full((num_q, width), num_g, dtype=torch.int64, device=dist.device)
    slot = torch.arange(len(row), device=dist.device) - (torch.cumsum(counts, 0) - counts)[row]
    pd[row, slot] = _pick(dist, row, col).to(dtype)
    pi[row, slot] = col
    # Slots hold increasing gallery indices, so a stable sort by distance orders by (d, index).
    pd, order = torch.sort(pd, dim=1, stable=True)
    return pd, pi.gather(1, order), counts, same_row, same_col


def _precedes(d: Tensor, j: Tensor, pd: Tensor, pi: Tensor) -> Tensor:
    """Whether gallery image j at distance d comes before (pd, pi) in the stable ranking."""
    return (d < pd) | ((d == pd) & (j < pi))


def _pick(dist: Tensor, rows: Tensor, cols: Tensor) -> Tensor:
    """dist[rows, cols]; through index_select when it can (advanced indexing is slower on CPU)."""
    if dist.is_contiguous():
        return dist.view(-1).index_select(0, rows * dist.shape[1] + cols)
    return dist[rows, cols]


def _bin_map(dist: Tensor, pd: Tensor, counts: Tensor, num_bins: int) -> tuple[Tensor, Tensor]:
    """Per-row offset and scale of a non-decreasing map of distances onto bins 1..num_bins-1.

    It sends a row's first correct match to bin 1 and its last one to bin num_bins - 1 (or its
    farthest image, when all its matches are at one distance). Scale 0 marks the rows where that
    fails (no correct match, a single distinct distance, an infinite match or farthest image):
    they are compared exactly.
    """
    has = counts > 0
    lo = pd[:, 0]
    hi = pd.gather(1, (counts - 1).clamp(min=0)[:, None]).squeeze(1)
    flat = torch.nonzero(has & (hi == lo)).squeeze(1)
    if len(flat):
        hi = hi.index_put((flat,), dist.index_select(0, flat).amax(1).to(hi.dtype))
    scale = (num_bins - 2) / (hi - lo)
    ok = has & torch.isfinite(scale) & (scale > 0)
    return torch.where(ok, lo, 0.0), torch.where(ok, scale, 0.0)


class _Workspace:
    """Buffers for one chunk of query rows, allocated once per evaluate() call.

    Fresh multi-megabyte temporaries per chunk cost more in page faults than the passes over
    them, so every rows x G and rows x bins array lives here and is reused chunk after chunk.
    """

    def __init__(self, rows: int, num_g: int, num_bins: int, dtype: torch.dtype, device):
        nb = num_bins + _TOP_BINS
        self.scaled = torch.empty(rows, num_g, dtype=dtype, device=device)
        self.bins = torch.empty(rows, num_g, dtype=torch.int32, device=device)
        # Whole 8-byte words, so that _nonzero can skip the all-zero words first.
        self.hits = torch.empty(-(-rows * num_g // 8) * 8, dtype=torch.bool, device=device)
        self.hist = torch.empty(rows * nb, dtype=torch.int32, device=device)
        self.below = torch.empty(rows, nb, dtype=torch.int32, device=device)
        self.mark = torch.empty(rows * nb, dtype=torch.bool, device=device)
        # First and one-past-last match slot (row-major over Q x width) of each marked bin.
        self.first = torch.empty(rows * nb, dtype=torch.int64, device=device)
        self.last = torch.empty(rows * nb, dtype=torch.int64, device=device)
        self.ones = torch.ones(1, dtype=torch.int32, device=device).expand(rows * num_g)
        # Row r's bins are r * nb + 0..num_bins; the + 1.5 puts the first match in bin 1.
        self.offset = torch.arange(rows, device=device, dtype=dtype)[:, None] * nb + 1.5
        # Clamp bounds: below the first match, bin 0; past the last, num_bins + column % _TOP_BINS.
        self.bottom = torch.tensor(-1.5, dtype=dtype, device=device)
        column = torch.arange(num_g, device=device) % _TOP_BINS
        self.top = (num_bins - 1.5 + column).to(dtype)[None, :]


def _nonzero(hits: Tensor) -> Tensor:
    """Indices of the True entries of a sparse bool vector whose length is a multiple of 8."""
    words = torch.nonzero(hits.view(torch.int64)).squeeze(1)
    sub = torch.nonzero(hits.view(-1, 8).index_select(0, words))
    return words.index_select(0, sub[:, 0]) * 8 + sub[:, 1]


def _match_ranks(
    dist: Tensor,
    dtype: torch.dtype,
    pd: Tensor,
    pi: Tensor,
    counts: Tensor,
    same: tuple[Tensor, Tensor],
    q_pids: Tensor,
    g_pids: Tensor,
    rows: int,
    workers: int,
) -> Tensor:
    """1-based rank of each sorted correct match among the kept gallery (Q x width, int64).

    `same`: (row, column) of the same-identity gallery images, which rank no other image.
    Chunks of `rows` queries go to `workers` threads, each taking the next chunk when done.
    """
    if dist.device.type == "cpu" and _CPU_KERNEL:
        return _match_ranks_compiled(dist, dtype, pd, pi, counts, same, rows, workers)
    num_q, num_g = dist.shape
    width = pd.shape[1]
    device = dist.device
    num_bins = max(4, min(num_g // _IMAGES_PER_BIN, _MAX_BINS))
    rows = max(1, min(rows, num_q, (1 << 24) // (num_bins + _TOP_BINS)))  # exact in float32
    scan = _Scan(dist, pd, pi, counts, same, num_bins)
    spare: queue.SimpleQueue[_Workspace] = queue.SimpleQueue()  # one workspace per thread

    def run(a: int) -> None:
        try:
            work = spare.get_nowait()
        except queue.Empty:
            work = _Workspace(rows, num_g, num_bins, dtype, device)
        b = min(a + rows, num_q)
        cand, first, last = scan(a, b, work)
        spare.put(work)
        cr = torch.div(cand, num_g, rounding_mode="floor")
        cc = cand - cr * num_g
        other = torch.nonzero(g_pids.index_select(0, cc) != q_pids.index_select(0, cr)).squeeze(1)
        cr, cc = cr.index_select(0, other), cc.index_select(0, other)
        first, last = (x.index_select(0, other) - a * width for x in (first, last))
        _count_same_bin(dist, dtype, pd[a:b], pi[a:b], scan.before[a:b], cr, cc, first, last)

    map_in_threads(run, range(0, num_q, rows), workers if device.type == "cpu" else 1)
    return scan.before + torch.arange(1, width + 1, device=device)


def _match_ranks_compiled(
    dist: Tensor,
    dtype: torch.dtype,
    pd: Tensor,
    pi: Tensor,
    counts: Tensor,
    same: tuple[Tensor, Tensor],
    rows: int,
    workers: int,
) -> Tensor:
    """_match_ranks on CPU through the one-pass compiled kernel (rank_kernel.count_ahead)."""
    # Imported here: numba (0.5 s, ~40 MB) loads only when something is evaluated on CPU.
    from reidtricks.evaluation import rank_kernel

    num_q = dist.shape[0]
    ahead = np.empty(tuple(pd.shape), dtype=np.int64)
    pd_np, pi_np, counts_np = pd.numpy(), pi.numpy(), counts.numpy()
    same_start = np.zeros(num_q + 1, dtype=np.int64)
    np.cumsum(np.bincount(same[0].numpy(), minlength=num_q), out=same_start[1:])
    same_col = same[1].numpy()

    def run(a: int) -> None:
        block = dist[a : a + rows]
        if block.dtype != dtype or not block.is_contiguous():
            block = block.to(dtype).contiguous()  # one chunk at a time: bounded memory
        has_nan = rank_kernel.count_ahead(
            block.numpy(), a, pd_np, pi_np, counts_np, same_start, same_col, ahead,
            rank_kernel.BINS_PER_MATCH, rank_kernel.MAX_BINS, rank_kernel.BLOCK,
        )  # fmt: skip
        if has_nan:
            raise ValueError(f"distmat contains NaN (in query rows {a}..{a + len(block) - 1})")

    map_in_threads(run, range(0, num_q, rows), workers)
    return torch.from_numpy(ahead) + torch.arange(1, pd.shape[1] + 1)


class _Scan:
    """The pass over one chunk of query rows: fills `before` and finds the images to compare."""

    def __init__(
        self,
        dist: Tensor,
        pd: Tensor,
        pi: Tensor,
        counts: Tensor,
        same: tuple[Tensor, Tensor],
        num_bins: int,
    ):
        num_q, width = pd.shape
        self.dist, self.pi, self.same, self.num_bins = dist, pi, same, num_bins
        self.lo, self.scale = _bin_map(dist, pd, counts, num_bins)
        self.exact = torch.nonzero(self.scale == 0).squeeze(1)
        self.in_row = torch.arange(width, device=dist.device) < counts[:, None]
        starts = torch.cumsum(torch.bincount(same[0], minlength=num_q), 0)
        self.same_start = [0, *starts.tolist()]
        self.before = torch.empty(num_q, width, dtype=torch.int64, device=dist.device)

    def __call__(self, a: int, b: int, work: _Workspace) -> tuple[Tensor, Tensor, Tensor]:
        """Rows a..b-1: `before` from the histogram; returns the (flat index, first and last
        match slot) of every image that shares a bin with a correct match."""
        num_g, num_bins = self.dist.shape[1], self.num_bins
        # Bin 0: before the first match's bin; num_bins and up: after the last match's bin.
        nb = num_bins + _TOP_BINS
        n, size = b - a, (b - a) * num_g
        # Separate IEEE operations (no fused multiply-add), each non-decreasing in d, so the map
        # is too: an image in a lower bin than a match is strictly closer, in a higher one
        # strictly farther. Only the images in a match's own bin need an exact comparison.
        # Infinite distances go to the first or top bins, like any beyond the matches; the top
        # bins' order is of no account, as no match lies in them.
        t = torch.sub(self.dist[a:b], self.lo[a:b, None], out=work.scaled[:n])
        if bool(torch.isnan(t.sum())) and bool(torch.isnan(self.dist[a:b]).any()):
            raise ValueError(f"distmat contains NaN (in query rows {a}..{b - 1})")
        t.mul_(self.scale[a:b, None]).clamp_(work.bottom, work.top).add_(work.offset[:n])
        bins = work.bins[:n]
        bins.copy_(t)  # truncation: (r - a) * nb + bin, exact integers
        exact = self.exact[(self.exact >= a) & (self.exact < b)] - a
        if len(exact):  # the whole row in bin 0 (this also drops any NaN from 0 * inf)
            bins[exact] = (exact * nb).to(bins.dtype)[:, None]
        flat = bins.view(-1)
        pos = bins.gather(1, self.pi[a:b].clamp(max=num_g - 1)).view(-1).long()
        # Other-identity images in lower bins than each match: all, less the same-identity ones.
        hist = work.hist[: n * nb].zero_()
        hist.index_add_(0, flat, work.ones[:size])
        s = slice(self.same_start[a], self.same_start[b])
        same_bins = flat.index_select(0, (self.same[0][s] - a) * num_g + self.same[1][s])
        hist.index_add_(0, same_bins, torch.full_like(same_bins, -1))
        below = torch.cumsum(hist.view(n, nb), 1, out=work.below[:n]).view(-1)
        self.before[a:b] = (below.index_select(0, pos) - hist.index_select(0, pos)).view(n, -1)
        # Images sharing a bin with a correct match, and the slots of that bin's matches: as
        # bins do not decrease along a row's sorted matches, those slots are one run.
        real = torch.nonzero(self.in_row[a:b].reshape(-1)).squeeze(1)
        pos = pos.index_select(0, real)
        head = torch.ones_like(pos, dtype=torch.bool)
        head[1:] = pos[1:] != pos[:-1]
        tail = torch.ones_like(head)
        tail[:-1] = head[1:]
        head, tail = torch.nonzero(head).squeeze(1), torch.nonzero(tail).squeeze(1)
        slot = real + a * self.in_row.shape[1]
        work.first.index_copy_(0, pos.index_select(0, head), slot.index_select(0, head))
        work.last.index_copy_(0, pos.index_select(0, tail), slot.index_select(0, tail) + 1)
        mark = work.mark[: n * nb].zero_()
        mark.index_fill_(0, pos, True)
        hits = work.hits[: -(-size // 8) * 8]
        hits[size:] = False
        torch.index_select(mark, 0, flat, out=hits[:size])
        cand = _nonzero(hits)
        key = flat.index_select(0, cand)
        first, last = work.first.index_select(0, key), work.last.index_select(0, key)
        return cand + a * num_g, first, last


def _count_same_bin(
    dist: Tensor,
    dtype: torch.dtype,
    pd: Tensor,
    pi: Tensor,
    before: Tensor,
    cr: Tensor,
    cc: Tensor,
    first: Tensor,
    last: Tensor,
) -> None:
    """Add to `before` the other-identity images (row cr, column cc of dist) that precede a
    correct match of their own bin, whose slots (row-major over pd, pi, before) are
    first..last-1. pd, pi and before may be a block of rows of the full arrays."""
    d = _pick(dist, cr, cc).to(dtype)
    pd_flat, pi_flat = pd.view(-1), pi.view(-1)
    # The bin's matches are sorted by (distance, index): those ahead of the image are a prefix.
    ahead_end = first.clone()
    for o in range(int((last - first).max()) if len(first) else 0):
        at = first + o
        live = at < last
        at = torch.where(live, at, first)
        ahead = _precedes(pd_flat.index_select(0, at), pi_flat.index_select(0, at), d, cc)
        ahead_end += live & ahead
    # The image precedes the bin's matches from slot ahead_end to last - 1: +1 over that range.
    diff = torch.zeros(pd.numel() + 1, dtype=torch.int64, device=before.device)
    diff.index_add_(0, ahead_end, torch.ones_like(ahead_end))
    diff.index_add_(0, last, torch.full_like(last, -1))
    before.view(-1).add_(torch.cumsum(diff[:-1], 0))


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


def _single_shot_histogram(
    dist: Tensor,
    dtype: torch.dtype,
    pd: Tensor,
    pi: Tensor,
    counts: Tensor,
    q_pids: Tensor,
    g_pids: Tensor,
    max_rank: int,
    rows: int,
) -> Tensor:
    """Histogram (max_rank + 1 bins, the last for beyond) of the first-match rank over the
    CUHK03_REPEATS single-shot draws: each identity keeps only its drawn image (the query's own
    identity keeps a uniformly drawn correct match instead)."""
    num_q = len(q_pids)
    reps, u = _single_shot_draws(g_pids, num_q, dist.device)
    hist = torch.zeros(max_rank + 1, dtype=torch.int64, device=dist.device)
    valid = counts > 0
    for t in range(CUHK03_REPEATS):
        slot = (u[t] * counts).long().clamp(max=pd.shape[1] - 1, min=0)[:, None]
        sd, si = pd.gather(1, slot), pi.gather(1, slot)
        rep_pids = g_pids[reps[t]][None, :]
        for a in range(0, num_q, rows):
            d = dist[a : a + rows, reps[t]].to(dtype)
            ahead = _precedes(d, reps[t][None, :], sd[a : a + rows], si[a : a + rows])
            first = (ahead & (rep_pids != q_pids[a : a + rows, None])).sum(1) + 1
            first = first[valid[a : a + rows]]
            hist += torch.bincount(first.clamp(max=max_rank + 1) - 1, minlength=max_rank + 1)
    return hist
