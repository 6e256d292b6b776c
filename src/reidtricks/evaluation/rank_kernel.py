"""The CPU kernel of evaluate(): other-identity images ahead of each correct match, in one pass.

Compiled with numba (nogil, so that evaluate's worker threads run it in parallel) on the first
call in a process, 2-4 s per dtype, then cached on disk (beside this file, or in numba's user
cache; NUMBA_CACHE_DIR moves it). A chain of torch ops makes ~9 passes over every distance; this
reads each distance once: 3-4x faster on CPU (docs/BENCHMARKS.md).

Per query row with c correct matches sorted by (distance, gallery index), a non-decreasing map
sends each distance to one of up to `max_bins` + 2 bins: bin 0 below the first match, 1..nb
spanning the matches, nb + 1 beyond the last. A table gives each bin the number of matches in
lower bins; only images that share a bin with a match are compared with those matches exactly.
An image that precedes matches p..c-1 adds 1 to counter p; prefix sums give each match's count.
"""

from __future__ import annotations

import numba
import numpy as np

# Block of a row whose distances are binned together; a block wholly past the last match (most
# of a row on good features) is skipped after one vectorised count.
BLOCK = 128
# Bins per correct match between the first and last match (so about 1 image in 64 of that
# span needs an exact comparison), and their cap (an int32 table per row, kept in L1).
BINS_PER_MATCH = 64
MAX_BINS = 4096
# Counter copies, by gallery index mod 4: images past the last match all increment counter c,
# and 4 independent counters avoid a chain of dependent read-modify-writes on one.
_COPIES = 4


@numba.njit(nogil=True, cache=True)
def _to_bin(d, lo, scale, top):
    """Bin of distance d: (d - lo) * scale + 1 clamped to [0, top], truncated.

    Separate IEEE operations (no fused multiply-add: numba does not contract without fastmath),
    each non-decreasing in d, so the map is non-decreasing, for matches and images alike.
    """
    x = (d - lo) * scale + 1.0
    x = x if x > 0.0 else 0.0
    x = x if x < top else top
    return np.int32(x)


@numba.njit(nogil=True, cache=True)
def _matches_ahead(d, j, r, m, c, pd, pi):
    """Matches of row r that precede image j at distance d, counting on from match m (the
    image's bin's first match: all before it are in lower bins, so strictly closer)."""
    while m < c and (pd[r, m] < d or (pd[r, m] == d and pi[r, m] < j)):
        m += 1
    return m


@numba.njit(nogil=True, cache=True)
def count_ahead(
    dist, a, pd, pi, counts, same_start, same_col, ahead, bins_per_match, max_bins, block
):
    """Fill ahead[a + r, m] with the other-identity gallery images before match m of query a + r,
    for the rows r of `dist` (a block of the distance matrix starting at query a).

    pd, pi, counts: sorted correct matches (distance, gallery index; +inf / G padding) and their
    number per query; same_start/same_col: the same-identity gallery columns of each query
    (correct matches and same-camera ones, CSR by query), which precede no match. Returns
    whether the block holds a NaN distance.
    """
    rows, num_g = dist.shape
    width = pd.shape[1]
    table = np.empty(max_bins + 2, np.int32)
    bins = np.empty(block, np.int32)
    mbin = np.empty(width, np.int32)
    copies = np.empty((_COPIES, width + 1), np.int64)
    count = np.empty(width + 1, np.int64)
    has_nan = False
    for rr in range(rows):
        r = a + rr
        row = dist[rr]
        c = counts[r]
        for m in range(width):
            ahead[r, m] = 0
        if c == 0:
            for j in range(num_g):
                if row[j] != row[j]:
                    has_nan = True
            continue
        lo, hi = pd[r, 0], pd[r, c - 1]
        nb = min(max(bins_per_match * c, 4), max_bins)
        scale = (nb - 1) / (hi - lo) if hi > lo else 0.0
        if not (np.isfinite(scale) and np.isfinite(lo) and np.isfinite(hi)):
            scale = 0.0  # one distance, or infinite matches: every image compared exactly
        top = nb + 1.0
        for m in range(c):
            mbin[m] = _to_bin(pd[r, m], lo, scale, top) if scale > 0.0 else 0
        # table[b]: matches in lower bins, or -(1 + first match) when bin b holds matches.
        m = 0
        for b in range(nb + 2):
            if m < c and mbin[m] == b:
                table[b] = -(1 + m)
                while m < c and mbin[m] == b:
                    m += 1
            else:
                table[b] = m
        for p in range(c + 1):
            count[p] = 0
            for k in range(_COPIES):
                copies[k, p] = 0
        if scale == 0.0:
            for j in range(num_g):
                d = row[j]
                if d != d:
                    has_nan = True
                count[_matches_ahead(d, j, r, 0, c, pd, pi)] += 1
        else:
            for j0 in range(0, num_g, block):
                n = min(block, num_g - j0)
                blk = row[j0 : j0 + n]
                inside, nans = 0, 0
                for j in range(n):  # vectorised: no stores
                    d = blk[j]
                    if d <= hi:
                        inside += 1
                    if d != d:
                        nans += 1
                if nans:
                    has_nan = True
                if inside == 0:
                    continue
                for j in range(n):
                    bins[j] = _to_bin(blk[j], lo, scale, top)
                for j in range(n):
                    t = table[bins[j]]
                    if t >= 0:
                        copies[j & (_COPIES - 1), t] += 1
                    else:
                        count[_matches_ahead(blk[j], j0 + j, r, -t - 1, c, pd, pi)] += 1
        for k in range(same_start[r], same_start[r + 1]):  # take the same identity back out
            j = same_col[k]
            d = row[j]
            b = _to_bin(d, lo, scale, top) if scale > 0.0 else 0
            t = table[b]
            count[t if t >= 0 else _matches_ahead(d, j, r, -t - 1, c, pd, pi)] -= 1
        total = 0
        for m in range(c):
            total += count[m]
            for k in range(_COPIES):
                total += copies[k, m]
            ahead[r, m] = total
    return has_nan
