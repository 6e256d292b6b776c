"""Benchmark evaluation and re-ranking against straightforward NumPy versions (on this machine).

Each (case, implementation) runs in its own subprocess; its peak memory is the child's ru_maxrss
as reported by the OS (os.wait4); its time covers only the evaluated call (not data generation),
best of up to 3 runs for calls under 10 s. The cores may be shared with other work: the
`other load` column is the share of all cores that other processes kept busy meanwhile.
Features are synthetic but clustered by identity (identity centre + camera offset + noise, with
Market-like distractors), fixed seed, so rankings are meaningful.

    python scripts/bench_eval.py                       # all cases
    python scripts/bench_eval.py --cases small,market  # a subset; --markdown FILE saves the table
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import numpy as np

# torch and reidtricks are imported in the workers only: a child's peak RSS as the kernel reports
# it includes the RSS of the parent that spawned it, so the parent stays a bare NumPy process.


@dataclass(frozen=True)
class Size:
    num_q: int
    num_g: int
    num_ids: int
    num_cams: int
    distractors: float  # share of gallery images with pid 0, each from its own random centre


SIZES = {
    "small": Size(300, 1700, 150, 6, 0.18),
    "market": Size(3368, 15913, 750, 6, 0.18),
    "msmt": Size(11659, 82161, 3060, 15, 0.0),
}
EVAL_DIM, RERANK_DIM = 256, 2048
NOISE = {EVAL_DIM: 1.0, RERANK_DIM: 2.5}  # per-dimension noise std (rank-1 ~ 85-95% before)
# (case, task, implementation); the dense re-ranking cannot hold MSMT17's N x N matrices.
JOBS = [
    ("small", "rerank", "numpy"),
    ("small", "rerank", "torch"),
    ("market", "eval", "numpy"),
    ("market", "eval", "torch"),
    ("market", "rerank", "numpy"),
    ("market", "rerank", "torch"),
    ("msmt", "eval", "numpy"),
    ("msmt", "eval", "torch"),
    ("msmt", "rerank", "torch"),
]


def make_features(size: Size, dim: int, seed: int = 0):
    """Query and gallery features with pids and camera ids (torch, CPU)."""
    import torch

    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(size.num_ids + 1, dim, generator=g)
    cam_offsets = 0.7 * torch.randn(size.num_cams, dim, generator=g)
    q_pids = torch.randint(1, size.num_ids + 1, (size.num_q,), generator=g)
    g_pids = torch.randint(1, size.num_ids + 1, (size.num_g,), generator=g)
    g_pids[torch.rand(size.num_g, generator=g) < size.distractors] = 0
    q_cams = torch.randint(0, size.num_cams, (size.num_q,), generator=g)
    g_cams = torch.randint(0, size.num_cams, (size.num_g,), generator=g)

    def feats(pids, cams):
        x = torch.empty(len(pids), dim)
        for a in range(0, len(pids), 4096):  # in slices, so that setup adds little to the peak
            p, c = pids[a : a + 4096], cams[a : a + 4096]
            x[a : a + 4096] = NOISE[dim] * torch.randn(len(p), dim, generator=g)
            x[a : a + 4096] += centres[p] + cam_offsets[c]
            distractor = p == 0  # unrelated people: a random centre each
            x[a : a + 4096][distractor] += torch.randn(int(distractor.sum()), dim, generator=g)
            x[a : a + 4096][distractor] -= centres[0]
        return x

    return feats(q_pids, q_cams), feats(g_pids, g_cams), q_pids, g_pids, q_cams, g_cams


# -- straightforward NumPy baselines ---------------------------------------------------------
def numpy_evaluate(distmat, q_pids, g_pids, q_cams, g_cams, max_rank=50):
    """Per query: argsort, drop same id + camera, cumsum for CMC / AP / INP (torchreid-style)."""
    cmcs, aps, inps = [], [], []
    for i in range(len(q_pids)):
        order = np.argsort(distmat[i])
        remove = (g_pids[order] == q_pids[i]) & (g_cams[order] == q_cams[i])
        matches = (g_pids[order][~remove] == q_pids[i]).astype(np.int32)
        if not matches.any():
            continue
        hits = matches.cumsum()
        last = np.flatnonzero(matches)[-1]
        inps.append(hits[last] / (last + 1.0))
        cmc = np.minimum(hits, 1)[:max_rank]
        cmcs.append(np.pad(cmc, (0, max_rank - len(cmc)), mode="edge"))
        precision = hits / np.arange(1, len(hits) + 1)
        aps.append((precision * matches).sum() / matches.sum())
    return np.mean(cmcs, 0), float(np.mean(aps)), float(np.mean(inps))


def _reciprocal(rank: np.ndarray, i: int, k: int) -> np.ndarray:
    """k-reciprocal neighbours of i: its k+1 nearest that have i among their k+1 nearest."""
    forward = rank[i, : k + 1]
    return forward[np.any(rank[forward, : k + 1] == i, axis=1)]


def numpy_dense_rerank(qf, gf, k1=20, k2=6, lam=0.3):
    """k-reciprocal re-ranking on dense N x N matrices, as in the authors' code (fp16 V)."""
    x = np.concatenate([qf, gf]).astype(np.float32)
    n, nq = len(x), len(qf)
    sq = np.einsum("ij,ij->i", x, x)
    dist = x @ x.T
    dist *= -2.0
    dist += sq[:, None]
    dist += sq[None, :]
    dist /= dist.max(axis=0)  # column max, then read transposed
    dist = dist.T
    rank = np.argsort(dist, axis=1).astype(np.int32)

    v = np.zeros((n, n), dtype=np.float16)
    k_half = int(np.around(k1 / 2))
    for i in range(n):
        r = _reciprocal(rank, i, k1)
        parts = [r]
        for c in r:
            half = _reciprocal(rank, c, k_half)
            if len(np.intersect1d(half, r)) > 2 / 3 * len(half):
                parts.append(half)
        cols = np.unique(np.concatenate(parts))
        w = np.exp(-dist[i, cols])
        v[i, cols] = w / w.sum()
    original = np.array(dist[:nq, nq:])
    if k2 != 1:
        v_qe = np.zeros_like(v)
        for i in range(n):
            v_qe[i] = v[rank[i, :k2]].mean(axis=0)
        v = v_qe
    del rank, dist
    holders = [np.flatnonzero(v[:, j]) for j in range(n)]  # inverted index
    jaccard = np.zeros((nq, n - nq), dtype=np.float16)
    for i in range(nq):
        shared = np.zeros(n, dtype=np.float16)
        for j in np.flatnonzero(v[i]):
            rows = holders[j]
            shared[rows] += np.minimum(v[i, j], v[rows, j])
        jaccard[i] = (1 - shared / (2 - shared))[nq:]
    return jaccard * (1 - lam) + original * lam


# -- one job per subprocess ------------------------------------------------------------------
def timed(fn, repeat_below: float = 10.0, max_runs: int = 3):
    """(best wall time, result): calls shorter than `repeat_below` s are rerun up to max_runs."""
    best, runs, total = float("inf"), 0, 0.0
    while runs < max_runs and (runs == 0 or total < repeat_below):
        out = None  # drop the previous result, so that it does not add to the peak
        start = time.perf_counter()
        out = fn()
        elapsed = time.perf_counter() - start
        best, runs, total = min(best, elapsed), runs + 1, total + elapsed
    return best, out


def run_job(case: str, task: str, impl: str, out_dir: Path) -> dict:
    import torch

    from reidtricks.evaluation import evaluate, pairwise_distance, re_rank

    if task == "idle":  # the interpreter with torch and numpy imported, nothing else
        gpu = torch.cuda.get_device_name() if torch.cuda.is_available() else "no GPU"
        return {
            "seconds": 0.0,
            "torch": torch.__version__,
            "threads": torch.get_num_threads(),
            "gpu": gpu,
        }
    size = SIZES[case]
    qf, gf, q_pids, g_pids, q_cams, g_cams = make_features(
        size, EVAL_DIM if task == "eval" else RERANK_DIM
    )
    labels = [t.numpy() for t in (q_pids, g_pids, q_cams, g_cams)]
    result = {}
    if task == "eval":
        distmat = pairwise_distance(qf, gf)
        del qf, gf
        if impl == "numpy":
            result["seconds"], (cmc, mean_ap, minp) = timed(
                lambda: numpy_evaluate(distmat.numpy(), *labels)
            )
        else:
            result["seconds"], res = timed(
                lambda: evaluate(distmat, q_pids, g_pids, q_cams, g_cams)
            )
            cmc, mean_ap, minp = res.cmc, res.mAP, res.mINP
    else:
        if impl == "numpy":
            result["seconds"], distmat = timed(lambda: numpy_dense_rerank(qf.numpy(), gf.numpy()))
        else:
            result["seconds"], distmat = timed(lambda: re_rank(qf, gf).numpy())
        distmat = np.asarray(distmat, dtype=np.float32)
        if case != "msmt":
            np.save(out_dir / f"{case}_{impl}.npy", distmat)
        res = evaluate(distmat, *labels)
        cmc, mean_ap, minp = res.cmc, res.mAP, res.mINP
        if impl == "numpy":  # the same features ranked by the original distance, for context
            before = evaluate(pairwise_distance(qf, gf, "sqeuclidean"), *labels)
            result.update(rank1_before=float(before.cmc[0]), mAP_before=before.mAP)
    result.update(rank1=float(cmc[0]), mAP=float(mean_ap), mINP=float(minp))
    return result


def goal(text: str, met: bool, detail: str = "") -> str:
    return f"- {text}: {'met' if met else 'NOT met'}{f' ({detail})' if detail else ''}"


def check_goals(case: str, task: str, res: dict, base: dict | None) -> list[str]:
    """The targets of the evaluation / re-ranking work, as 'met' or 'NOT met' lines."""
    out = []
    if case == "market" and base:
        ratio = base["seconds"] / res["seconds"]
        if task == "eval":
            out.append(
                goal("market eval >= 3x faster than per-query NumPy", ratio >= 3, f"{ratio:.1f}x")
            )
        else:
            mem = base["peak_mb"] / res["peak_mb"]
            out.append(
                goal("market re-ranking <= 1/5 of the dense time", ratio >= 5, f"1/{ratio:.1f}")
            )
            out.append(
                goal("market re-ranking <= 1/4 of the dense peak memory", mem >= 4, f"1/{mem:.1f}")
            )
    if case == "msmt":
        limit = 8192 if task == "eval" else 16384
        out.append(
            goal(
                f"msmt {task} completes within {limit // 1024} GB peak",
                res["peak_mb"] <= limit,
                f"{res['peak_mb']:.0f} MB, {res['seconds']:.0f} s",
            )
        )
    return out


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown CPU"


def busy_cpu_seconds() -> float:
    """CPU time spent busy by the whole machine since boot (all processes, all cores)."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(fields[:8]) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")


def spawn(args: list[str], threads: int | None) -> tuple[dict, float]:
    """Run this script as a worker; return its JSON result and its peak RSS in MB.

    The result also gets `others`: the share of the machine's cores busy with other processes
    while the worker ran, to flag timings taken under contention.
    """
    start, busy = time.perf_counter(), busy_cpu_seconds()
    env = dict(os.environ)
    if threads:  # torch (OpenMP) and NumPy's BLAS alike
        for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
            env[var] = str(threads)
    proc = subprocess.Popen(
        [sys.executable, __file__, "--worker", *args], stdout=subprocess.PIPE, text=True, env=env
    )
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise RuntimeError(f"worker {args} failed with exit code {proc.returncode}")
    wall = time.perf_counter() - start
    other = busy_cpu_seconds() - busy - usage.ru_utime - usage.ru_stime
    result = json.loads(out.strip().splitlines()[-1])
    result["others"] = max(0.0, other) / (wall * (os.cpu_count() or 1))
    return result, usage.ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", default="small,market,msmt", help="comma list of cases")
    parser.add_argument("--markdown", type=Path, help="also write the table to this file")
    parser.add_argument(
        "--threads",
        type=int,
        help="threads for torch and BLAS in the workers (default: theirs); 1 gives steadier "
        "timings when other processes share the cores",
    )
    parser.add_argument("--worker", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        case, task, impl, out_dir = args.worker
        res = run_job(case, task, impl, Path(out_dir))
        res["self_maxrss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(json.dumps(res))
        return

    cases = [c.strip() for c in args.cases.split(",") if c.strip()]
    unknown = sorted(set(cases) - set(SIZES))
    if unknown:
        parser.error(f"unknown case(s) {unknown}; expected some of {sorted(SIZES)}")
    load_before = os.getloadavg()[0]
    tmp = Path(tempfile.mkdtemp(prefix="bench_eval_"))
    env, idle_mb = spawn(["small", "idle", "torch", str(tmp)], args.threads)
    results = {}
    for job in JOBS:
        if job[0] not in cases:
            continue
        print(f"running {' / '.join(job)} ...", file=sys.stderr, flush=True)
        results[job], peak = spawn([*job, str(tmp)], args.threads)
        results[job]["peak_mb"] = peak
        print(f"  {results[job]}", file=sys.stderr, flush=True)

    ram_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    lines = [
        f"{date.today()}; {cpu_model()}, {os.cpu_count()} CPU cores, {ram_gb:.0f} GB RAM, "
        f"{env['gpu']}; Python {platform.python_version()}, torch {env['torch']} "
        f"({env['threads']} threads), numpy {np.__version__}. Peak RSS includes "
        f"{idle_mb:.0f} MB for the interpreter with torch and numpy imported. Load average "
        f"(1 min) {load_before:.2f} at the start, {os.getloadavg()[0]:.2f} at the end.",
        "",
        "| case | task | implementation | time (s) | speed-up | peak RSS (MB) | memory ratio "
        "| rank-1 | mAP | mINP | other load |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    notes, goals = [], []
    for (case, task, impl), res in results.items():
        base = results.get((case, task, "numpy"))
        speed = mem = ""
        if impl == "torch" and base:
            speed = f"{base['seconds'] / res['seconds']:.1f}x"
            mem = f"{base['peak_mb'] / res['peak_mb']:.1f}x"
        if impl == "torch":
            goals.extend(check_goals(case, task, res, base))
        size = SIZES[case]
        name = "per-query NumPy" if task == "eval" else "dense NumPy"
        lines.append(
            f"| {case} ({size.num_q} x {size.num_g}) | {task} | "
            f"{name if impl == 'numpy' else 'reidtricks'} | {res['seconds']:.2f} | {speed} | "
            f"{res['peak_mb']:.0f} | {mem} | {100 * res['rank1']:.2f} | "
            f"{100 * res['mAP']:.2f} | {100 * res['mINP']:.2f} | {100 * res['others']:.0f}% |"
        )
        if task == "rerank" and impl == "torch" and base:
            ours = np.load(tmp / f"{case}_torch.npy")
            theirs = np.load(tmp / f"{case}_numpy.npy")
            mad = float(np.abs(ours - theirs).mean())
            gap = 100 * abs(res["mAP"] - base["mAP"])
            notes.append(
                f"- {case} re-ranking: mean |reidtricks - dense| = {mad:.2e} "
                f"(max {np.abs(ours - theirs).max():.2e}); mAP difference {gap:.3f} points; "
                f"original distance: rank-1 {100 * base['rank1_before']:.2f}, "
                f"mAP {100 * base['mAP_before']:.2f}."
            )
            if case == "small":
                goals.append(goal("small re-ranking: mean abs. difference <= 1e-3", mad <= 1e-3))
                goals.append(goal("small re-ranking: mAP within 0.1 point", gap <= 0.1))
    table = "\n".join([*lines, "", *notes, "", "Goals:", *goals])
    print(table)
    if args.markdown:
        args.markdown.write_text(table + "\n")
    for path in tmp.iterdir():
        path.unlink()
    tmp.rmdir()


if __name__ == "__main__":
    main()
