"""k-reciprocal re-ranking (Zhong et al., CVPR 2017) without any dense N x N matrix.

Same definition as the Bag-of-Tricks authors' dense code, for the N = Q + G stacked features:
  d(i, j)  = |x_i|^2 + |x_j|^2 - 2 x_i.x_j, divided by max_k d(i, k) (their column max, transposed);
  R(i, k)  = {j in top(k+1)(i) : i in top(k+1)(j)}, top(m) = the m nearest, self included;
  E(i)     = R(i, k1) plus every R(c, round(k1/2)), c in R(i, k1), sharing > 2/3 of it with R(i, k1);
  V[i, j]  = exp(-d(i, j)) / sum over E(i), for j in E(i) (0 elsewhere);
  V[i]     = mean of V over top(k2)(i) (when k2 != 1);
  jac(q,g) = 1 - s / (2 - s), s = sum_j min(V[q, j], V[g, j]);
  final    = (1 - lambda) * jac + lambda * d, on the query x gallery block.
Here the nearest-neighbour tables come from one pass over symmetric distance blocks, V is kept as
sparse rows, and the Jaccard term is accumulated per query chunk from an inverted index of the
gallery rows. Everything is fp32 (the authors keep V and Jaccard in fp16, a ~1e-3 difference);
neighbours at exactly equal distances come in arbitrary order, as with their unstable argsort.
On CPU, the distance blocks and row chunks go to worker threads with torch's intra-op
parallelism off, so that a core kept busy by another process costs only its share of the work.
`jaccard_distance_pairs` gives the Jaccard term alone between every two of N features (one set,
not stacked twice), as the sparse pairs below distance 1, for clustering (`reidtricks.adapt`);
optionally on camera-penalised distances, d'(i, j) = d(i, j) + penalty for two images of one
camera (i != j), used for every step above in place of d.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable
from typing import TypeVar

import torch
from torch import Tensor

from reidtricks.evaluation.metrics import map_in_threads, torch_threads
from reidtricks.evaluation.ragged import ragged_arange

R = TypeVar("R")

# Upper bound on elements of the temporaries built at once (gathered features, Jaccard triples).
_BUDGET = 1 << 21
# (query entry, gallery entry) pairs per chunk of the Jaccard pass: ~60 bytes of temporaries
# each, per worker. Random features share columns with ~35x more gallery rows than good ones.
_PAIR_BUDGET = 1 << 19

# Camera ids of the N items and the amount added to the squared distance of two items of one camera.
CameraPenalty = tuple[Tensor, float]


def re_rank(
    q_feats: Tensor,
    g_feats: Tensor,
    k1: int,
    k2: int,
    lambda_value: float,
    chunk_size: int = 2048,
    threads: int | None = None,
) -> Tensor:
    """Q x G re-ranked distances (float32, on the features' device); see the module docstring.
    k1, k2, lambda_value: EvalConfig's settings (the paper's 20, 6, 0.3 by default).

    `chunk_size` is the block edge of the distance pass and the row chunk of the later stages;
    `threads` the CPU worker threads (default: torch's thread setting).
    """
    if q_feats.dim() != 2 or g_feats.dim() != 2 or q_feats.shape[1] != g_feats.shape[1]:
        raise ValueError(
            f"features must be 2-D with the same width, got query {tuple(q_feats.shape)} "
            f"and gallery {tuple(g_feats.shape)}"
        )
    if len(q_feats) == 0 or len(g_feats) == 0:
        raise ValueError(
            f"need at least one query and one gallery feature, got {len(q_feats)}, {len(g_feats)}"
        )
    if not 0.0 <= lambda_value <= 1.0:
        raise ValueError(f"expected 0 <= lambda_value <= 1, got lambda_value={lambda_value}")
    _check_settings(k1, k2, chunk_size, threads)
    on_cpu = q_feats.device.type == "cpu"
    workers = (threads or torch.get_num_threads()) if on_cpu else 1
    with torch_threads(1 if on_cpu else None):
        return _re_rank(q_feats, g_feats, k1, k2, lambda_value, chunk_size, workers)


def jaccard_distance_pairs(
    feats: Tensor,
    k1: int,
    k2: int,
    chunk_size: int = 2048,
    threads: int | None = None,
    camera_penalty: CameraPenalty | None = None,
) -> tuple[Tensor, Tensor, Tensor]:
    """The k-reciprocal Jaccard distance between every two of N features (the module docstring's
    jac, with the N features as the one stacked set), as sparse (rows, cols, distances) of the
    pairs that share a neighbour; every other pair is at distance 1. Row-major, exactly
    symmetric, each row holding itself (at ~0, never below). Memory: the pairs, and re_rank's
    bounded blocks. `camera_penalty` (camera ids, amount): the distances it starts from are
    camera-penalised (module docstring).
    """
    if feats.dim() != 2 or len(feats) == 0:
        raise ValueError(f"features must be 2-D with at least one row, got {tuple(feats.shape)}")
    _check_settings(k1, k2, chunk_size, threads)
    if camera_penalty is not None:
        cams, amount = camera_penalty
        if cams.shape != (len(feats),) or not amount >= 0:
            raise ValueError(
                f"camera_penalty: expected {len(feats)} camera ids and an amount >= 0, got "
                f"{tuple(cams.shape)} ids and {amount}"
            )
        camera_penalty = (cams.to(feats.device), float(amount))
    on_cpu = feats.device.type == "cpu"
    workers = (threads or torch.get_num_threads()) if on_cpu else 1
    with torch_threads(1 if on_cpu else None):
        x = feats.float()
        n = len(x)
        rows, cols, vals = _sparse_v(
            x, k1, k2, chunk_size, x.new_empty(0, n), workers, camera_penalty
        )[0]

        def upper_pairs(a: int, b: int, shared: Tensor) -> tuple[Tensor, Tensor, Tensor]:
            # Each pair once (i <= j), mirrored below, so that (i, j) and (j, i) are equal.
            i, j = (shared > 0).nonzero(as_tuple=True)
            i = i + a
            keep = i <= j
            s = shared[i[keep] - a, j[keep]]
            return i[keep], j[keep], (1.0 - s / (2.0 - s)).clamp_(min=0.0)  # s may pass 1 by ~1e-7

        parts = _shared_blocks(rows, cols, vals, n, n, 0, chunk_size, workers, upper_pairs)
        i, j, dist = (torch.cat(p) for p in zip(*parts, strict=True))
        off = i != j
        i, j, dist = torch.cat([i, j[off]]), torch.cat([j, i[off]]), torch.cat([dist, dist[off]])
        order = torch.argsort(i * n + j)
        return i[order], j[order], dist[order]


def _check_settings(k1: int, k2: int, chunk_size: int, threads: int | None) -> None:
    if k1 < 1 or k2 < 1 or chunk_size < 1:
        raise ValueError(
            f"expected k1 >= 1, k2 >= 1, chunk_size >= 1; got k1={k1}, k2={k2}, "
            f"chunk_size={chunk_size}"
        )
    if threads is not None and threads < 1:
        raise ValueError(f"threads must be >= 1 or None, got {threads}")


def _re_rank(
    q_feats: Tensor,
    g_feats: Tensor,
    k1: int,
    k2: int,
    lambda_value: float,
    chunk_size: int,
    workers: int,
) -> Tensor:
    """re_rank() on validated arguments, `workers` threads (with intra-op threads at 1 on CPU)."""
    x = torch.cat([q_feats.float(), g_feats.to(q_feats.device).float()])
    n, nq = len(x), len(q_feats)
    final = torch.empty(nq, n - nq, dtype=torch.float32, device=x.device)
    (rows, cols, vals), row_max = _sparse_v(x, k1, k2, chunk_size, final, workers)
    final /= row_max[:nq, None]  # normalised original distance, query x gallery
    _blend_jaccard(final, rows, cols, vals, lambda_value, chunk_size, workers)
    return final


def _sparse_v(
    x: Tensor,
    k1: int,
    k2: int,
    chunk_size: int,
    qg_out: Tensor,
    workers: int,
    camera_penalty: CameraPenalty | None = None,
) -> tuple[tuple[Tensor, Tensor, Tensor], Tensor]:
    """The sparse rows of V (after the local expansion when k2 != 1) and each row's largest
    distance; the raw distances of the first len(qg_out) rows x the rest go to `qg_out`."""
    n = len(x)
    k_half = round(k1 / 2)  # banker's rounding, like numpy.around in the reference
    width = min(max(k1 + 1, k2), n)
    knn, knn_d, row_max = _neighbour_tables(x, width, chunk_size, qg_out, workers, camera_penalty)
    top1, toph = knn[:, : min(k1 + 1, n)], knn[:, : min(k_half + 1, n)]
    rows, cols, vals = _encode(
        x,
        row_max,
        knn,
        knn_d,
        (top1, k_reciprocal_mask(top1)),
        (toph, k_reciprocal_mask(toph)),
        chunk_size,
        workers,
        camera_penalty,
    )
    if k2 != 1:
        nbrs = knn[:, : min(k2, n)]
        rows, cols, vals = _local_expansion(rows, cols, vals, nbrs, chunk_size, workers)
    return (rows, cols, vals), row_max


def _neighbour_tables(
    x: Tensor,
    k: int,
    block: int,
    qg_out: Tensor,
    workers: int,
    camera_penalty: CameraPenalty | None = None,
) -> tuple[Tensor, Tensor, Tensor]:
    """Each row's k nearest (indices and squared distances, ascending) and largest distance.

    Visits each pair of row blocks once (the matrix is symmetric), `workers` pairs at a time,
    and copies the raw query x gallery distances into `qg_out` on the way.
    """
    n, nq = len(x), len(qg_out)
    sq = _squared_norms(x)
    best_d = torch.full((n, k), float("inf"), device=x.device)
    best_i = torch.zeros((n, k), dtype=torch.int64, device=x.device)
    row_max = torch.full((n,), -float("inf"), device=x.device)
    locks = {a: threading.Lock() for a in range(0, n, block)}  # one per block of rows

    def merge(r0: int, blk: Tensor, c0: int) -> None:
        rows = slice(r0, r0 + len(blk))
        top_max = blk.amax(1)
        v, i = torch.topk(blk, min(k, blk.shape[1]), dim=1, largest=False, sorted=False)
        with locks[r0]:
            torch.maximum(row_max[rows], top_max, out=row_max[rows])
            cand_d, cand_i = torch.cat([best_d[rows], v], 1), torch.cat([best_i[rows], i + c0], 1)
            v, sel = torch.topk(cand_d, k, dim=1, largest=False, sorted=True)
            best_d[rows], best_i[rows] = v, cand_i.gather(1, sel)

    def visit(pair: tuple[int, int]) -> None:
        a, c = pair
        xa, sa = x[a : a + block], sq[a : a + block, None]
        blk = torch.addmm(sa + sq[None, c : c + block], xa, x[c : c + block].t(), alpha=-2.0)
        if camera_penalty is not None:
            rows = torch.arange(a, a + len(blk), device=x.device)[:, None]
            cols = torch.arange(c, c + blk.shape[1], device=x.device)[None, :]
            blk += _camera_penalty_of(camera_penalty, rows, cols)
        merge(a, blk, c)
        if c != a:
            merge(c, blk.t().contiguous(), a)
        a_end, c_end = a + len(blk), c + blk.shape[1]
        if a < nq and c_end > nq:  # query rows x gallery columns (only when rows <= cols)
            c0 = max(c, nq)
            qg_out[a : min(a_end, nq), c0 - nq : c_end - nq] = blk[: nq - a, c0 - c :]

    pairs = [(a, c) for a in range(0, n, block) for c in range(a, n, block)]
    map_in_threads(visit, pairs, workers)
    return best_i, best_d, row_max


def k_reciprocal_mask(top: Tensor, chunk_size: int = 4096) -> Tensor:
    """mask[i, p]: whether top[i, p] is a k-reciprocal neighbour of i, i.e. i is in its row.

    `top` holds each sample's k+1 nearest indices (self included), one row per sample.
    """
    mask = torch.empty(top.shape, dtype=torch.bool, device=top.device)
    for a in range(0, len(top), chunk_size):
        nb = top[a : a + chunk_size]
        me = torch.arange(a, a + len(nb), device=top.device)[:, None, None]
        mask[a : a + chunk_size] = (top[nb] == me).any(2)
    return mask


def _encode(
    x: Tensor,
    row_max: Tensor,
    table_idx: Tensor,
    table_d: Tensor,
    reciprocal: tuple[Tensor, Tensor],
    reciprocal_half: tuple[Tensor, Tensor],
    chunk_size: int,
    workers: int,
    camera_penalty: CameraPenalty | None = None,
) -> tuple[Tensor, Tensor, Tensor]:
    """Sparse V rows (row, col, value; row-major, ascending columns): Gaussian weights of E(i).

    `reciprocal` / `reciprocal_half`: top-(k+1) tables and their k-reciprocal masks, k1 and k1/2.
    """
    (top1, mask1), (toph, maskh) = reciprocal, reciprocal_half
    n = len(x)
    sq = _squared_norms(x)
    chunk = max(1, min(chunk_size, _BUDGET // (top1.shape[1] ** 2 * toph.shape[1])))

    def rows_of(a: int) -> tuple[Tensor, Tensor, Tensor]:
        r = torch.arange(a, min(a + chunk, n), device=x.device)
        near, near_ok = top1[r], mask1[r]  # R(i, k1) = near[near_ok]
        cand, cand_ok = toph[near], maskh[near]  # R(c, k1/2) for every c in near
        in_r = ((cand[..., None] == near[:, None, None, :]) & near_ok[:, None, None, :]).any(3)
        shared, size = (in_r & cand_ok).sum(2), cand_ok.sum(2)
        # The reference's test, len(intersection) > 2/3 * len(candidate set), in float64.
        accept = near_ok & (shared.double() > 2 / 3 * size.double())
        slots = torch.cat(
            [
                torch.where(near_ok, near, n),
                torch.where(accept[..., None] & cand_ok, cand, n).flatten(1),
            ],
            1,
        )
        slots = torch.sort(slots, dim=1).values
        dup = torch.zeros_like(slots, dtype=torch.bool)
        dup[:, 1:] = slots[:, 1:] == slots[:, :-1]
        slots = torch.sort(slots.masked_fill(dup, n), dim=1).values  # unique first, then n
        ok = slots < n
        rr, cc = r[:, None].expand_as(slots)[ok], slots[ok]
        # Squared distances: from the neighbour table where it holds them, else recomputed.
        found = table_idx[rr] == cc[:, None]
        hit = found.any(1)
        dist = table_d[rr].gather(1, found.int().argmax(1, keepdim=True)).squeeze(1)
        dist[~hit] = _pair_sqdist(x, sq, rr[~hit], cc[~hit], camera_penalty)
        w = torch.exp(-dist / row_max[rr])
        sums = torch.zeros(len(r), device=x.device).index_add_(0, rr - a, w)
        return rr, cc, w / sums[rr - a]

    parts = map_in_threads(rows_of, range(0, n, chunk), workers)
    return tuple(torch.cat(p) for p in zip(*parts, strict=True))


def _pair_sqdist(
    x: Tensor, sq: Tensor, rows: Tensor, cols: Tensor, camera_penalty: CameraPenalty | None = None
) -> Tensor:
    """d(rows[p], cols[p]) with the formula of the distance pass, in sub-chunks of pairs."""
    out = torch.empty(len(rows), device=x.device)
    step = max(1, _BUDGET // (2 * x.shape[1]))
    for s in range(0, len(rows), step):
        r, c = rows[s : s + step], cols[s : s + step]
        out[s : s + step] = (sq[r] + sq[c]) - 2.0 * (x[r] * x[c]).sum(1)
        if camera_penalty is not None:
            out[s : s + step] += _camera_penalty_of(camera_penalty, r, c)
    return out


def _camera_penalty_of(camera_penalty: CameraPenalty, rows: Tensor, cols: Tensor) -> Tensor:
    """What d' adds to d(rows, cols) (index tensors, broadcast): the amount for two different
    items of one camera, 0 otherwise (an item's distance to itself stays as it is)."""
    cams, amount = camera_penalty
    return amount * ((cams[rows] == cams[cols]) & (rows != cols))


def _squared_norms(x: Tensor, rows: int = 4096) -> Tensor:
    """|x_i|^2 per row, without an N x D temporary."""
    return torch.cat([(part * part).sum(1) for part in x.split(rows)])


def _row_pointers(rows: Tensor, n: int) -> Tensor:
    ptr = torch.zeros(n + 1, dtype=torch.int64, device=rows.device)
    ptr[1:] = torch.cumsum(torch.bincount(rows, minlength=n), 0)
    return ptr


def _local_expansion(
    rows: Tensor, cols: Tensor, vals: Tensor, nbrs: Tensor, chunk_size: int, workers: int
) -> tuple[Tensor, Tensor, Tensor]:
    """Sparse V'[i] = mean of V[j] over j in nbrs[i] (the k2 nearest, self included)."""
    n, k = nbrs.shape
    ptr = _row_pointers(rows, n)

    def rows_of(a: int) -> tuple[Tensor, Tensor, Tensor]:
        nb = nbrs[a : a + chunk_size].reshape(-1)
        start = ptr.index_select(0, nb)
        owner, pos = ragged_arange(start, ptr.index_select(0, nb + 1) - start)
        key = (owner // k + a) * n + cols.index_select(0, pos)
        key, inverse = torch.unique(key, sorted=True, return_inverse=True)
        summed = torch.zeros(len(key), device=vals.device)
        summed.index_add_(0, inverse, vals.index_select(0, pos))
        return key // n, key % n, summed / k

    parts = map_in_threads(rows_of, range(0, n, chunk_size), workers)
    return tuple(torch.cat(p) for p in zip(*parts, strict=True))


def _blend_jaccard(
    final: Tensor,
    rows: Tensor,
    cols: Tensor,
    vals: Tensor,
    lam: float,
    chunk_size: int,
    workers: int,
) -> None:
    """final <- (1 - lam) * Jaccard + lam * final, query rows x gallery rows of V, in place."""
    nq, ng = final.shape

    def blend(a: int, b: int, shared: Tensor) -> None:
        shared /= 2.0 - shared  # Jaccard distance = 1 - this
        final[a:b].mul_(lam).add_(1.0 - lam).sub_(shared, alpha=1.0 - lam)

    _shared_blocks(rows, cols, vals, nq + ng, nq, nq, chunk_size, workers, blend)


def _shared_blocks(
    rows: Tensor,
    cols: Tensor,
    vals: Tensor,
    n: int,
    nq: int,
    g_start: int,
    chunk_size: int,
    workers: int,
    use: Callable[[int, int, Tensor], R],
) -> list[R]:
    """s[q, g] = sum_j min(V[q, j], V[g, j]) for the query rows [0, nq) and the gallery rows
    [g_start, n) of V, built per chunk [a, b) of query rows as a (b - a) x (n - g_start) block
    handed to `use(a, b, block)`; `use`'s results in chunk order."""
    ng = n - g_start
    ptr = _row_pointers(rows, n)
    # Inverted index: for each column j, the gallery rows g with V[g, j] != 0 and their values.
    g0 = int(ptr[g_start])
    g_cols = cols[g0:]
    order = torch.argsort(g_cols, stable=True)
    col_ptr = _row_pointers(g_cols, n)
    inv_rows, inv_vals = rows[g0:][order] - g_start, vals[g0:][order]
    # Work per query row = number of (query entry, gallery entry) pairs sharing a column.
    col_len = col_ptr[1:] - col_ptr[:-1]
    q_end = int(ptr[nq])
    work = torch.zeros(nq, dtype=torch.int64, device=rows.device)
    work.index_add_(0, rows[:q_end], col_len[cols[:q_end]])
    cum_work = torch.cumsum(work, 0).cpu()
    bounds = [0]  # query chunks of about _PAIR_BUDGET pairs (and at most _BUDGET // ng rows)
    while bounds[-1] < nq:
        a = bounds[-1]
        done = int(cum_work[a - 1]) if a else 0
        b = int(torch.searchsorted(cum_work, done + _PAIR_BUDGET, right=True))
        bounds.append(min(max(b, a + 1), a + max(1, min(chunk_size, _BUDGET // ng)), nq))

    def block(span: tuple[int, int]) -> R:
        a, b = span
        e0, e1 = int(ptr[a]), int(ptr[b])
        e_cols = cols[e0:e1]
        owner, pos = ragged_arange(col_ptr.index_select(0, e_cols), col_len.index_select(0, e_cols))
        flat = (rows[e0:e1] - a).index_select(0, owner) * ng + inv_rows.index_select(0, pos)
        mins = torch.minimum(vals[e0:e1].index_select(0, owner), inv_vals.index_select(0, pos))
        shared = torch.zeros((b - a) * ng, device=vals.device).index_add_(0, flat, mins)
        return use(a, b, shared.view(b - a, ng))

    return map_in_threads(block, itertools.pairwise(bounds), workers)
