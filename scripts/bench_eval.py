"""Benchmark evaluation and re-ranking against straightforward NumPy versions (on this machine).

Cases (--cases): small = 300 queries x 1,700 gallery images, market = 3,368 x 15,913 (Market-1501),
msmt = 11,659 x 82,161 (MSMT17). Feature kinds (--kind), identity centre + camera offset + noise
with a noise scale per kind and width, 18% Market-like distractors, fixed seed: good (mAP ~0.85 at
Market size), medium (mAP ~0.3) and random (no identity signal, mAP at chance). Evaluation gets
the distances of 256-d features, re-ranking 2048-d features (ResNet-50's width). A kind followed
by @N (e.g. medium@8; eval only) rounds the distances onto N + 1 levels, an adversarial case of
many ties with the correct matches (hashing codes, quantised features); the per-query reference
then sorts stably, so that its ties break by gallery index as evaluate's do.

The baselines come from tests/reference.py: a per-query NumPy evaluator (argsort each row, as
torchreid's Python evaluator; at msmt timed on every 8th query and scaled by 8) and the dense
N x N re-ranking of the Bag-of-Tricks authors' code (not at msmt: several 35 GB matrices).
Each (case, kind, task, implementation) runs in its own subprocess; peak memory is the child's
ru_maxrss as the OS reports it (os.wait4); time covers only the call under test, best of up to
10 runs while they total under 4 s. With --busy (the default), every reidtricks job but msmt
re-ranking runs once more beside a competing process that keeps one core busy (a bounded Python
loop that also stops by itself), to show the slowdown. `other load` is the share of all cores
that other processes kept busy during a job (the busy process included).

    python scripts/bench_eval.py                          # the full bench (make bench): every
                                                          # case and kind, 13-40 min on 2 idle cores
    python scripts/bench_eval.py --cases small --no-busy  # a quick check, under a minute
    python scripts/bench_eval.py --cases market --kind random,good --markdown out.md
    python scripts/bench_eval.py --cases market --tasks eval --no-busy   # evaluate only
    python scripts/bench_eval.py --cases market --tasks eval --kind medium@8,good@64 --no-busy
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

# The NumPy references live with the tests (one copy for both).
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from reference import dense_rerank, evaluate_per_query

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
KINDS = ("random", "medium", "good")
EVAL_DIM, RERANK_DIM = 256, 2048
# Per-dimension noise std per kind and width (mAP of the plain distance at Market size: ~0.3 and
# ~0.85); "random" features are noise alone, without identity or camera.
NOISE = {"medium": {EVAL_DIM: 1.45, RERANK_DIM: 2.8}, "good": {EVAL_DIM: 0.95, RERANK_DIM: 2.0}}
MSMT_QUERY_STEP = 8  # the per-query NumPy baseline at msmt: every 8th query, time x 8
# (case, task, implementation); the dense re-ranking cannot hold MSMT17's N x N matrices.
JOBS = [
    ("small", "eval", "numpy"),
    ("small", "eval", "torch"),
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
BUSY_SECONDS = 900  # upper bound on the busy process's life; it is stopped after each job
WORKING_SET_MB = 512  # the evaluation's allowance beyond the interpreter and distance matrix


def make_features(size: Size, dim: int, kind: str, seed: int = 0):
    """Query and gallery features with pids and camera ids (torch, CPU)."""
    import torch

    g = torch.Generator().manual_seed(seed)
    signal = 0.0 if kind == "random" else 1.0
    noise = 1.0 if kind == "random" else NOISE[kind][dim]
    centres = signal * torch.randn(size.num_ids + 1, dim, generator=g)
    cam_offsets = 0.7 * signal * torch.randn(size.num_cams, dim, generator=g)
    q_pids = torch.randint(1, size.num_ids + 1, (size.num_q,), generator=g)
    g_pids = torch.randint(1, size.num_ids + 1, (size.num_g,), generator=g)
    g_pids[torch.rand(size.num_g, generator=g) < size.distractors] = 0
    q_cams = torch.randint(0, size.num_cams, (size.num_q,), generator=g)
    g_cams = torch.randint(0, size.num_cams, (size.num_g,), generator=g)

    def feats(pids, cams):
        x = torch.empty(len(pids), dim)
        for a in range(0, len(pids), 4096):  # in slices, so that setup adds little to the peak
            p, c = pids[a : a + 4096], cams[a : a + 4096]
            x[a : a + 4096] = noise * torch.randn(len(p), dim, generator=g)
            x[a : a + 4096] += centres[p] + cam_offsets[c]
            distractor = p == 0  # unrelated people: a random centre each
            extra = signal * torch.randn(int(distractor.sum()), dim, generator=g)
            x[a : a + 4096][distractor] += extra - centres[0]
        return x

    return feats(q_pids, q_cams), feats(g_pids, g_cams), q_pids, g_pids, q_cams, g_cams


def _valid_kind(kind: str) -> bool:
    base, at, levels = kind.partition("@")
    return base in KINDS and (not at or (levels.isdigit() and int(levels) >= 1))


def timed(fn, repeat_below: float = 4.0, max_runs: int = 10):
    """(best wall time, result): reruns up to max_runs while the runs total under repeat_below s."""
    best, runs, total = float("inf"), 0, 0.0
    while runs < max_runs and (runs == 0 or total < repeat_below):
        out = None  # drop the previous result, so that it does not add to the peak
        start = time.perf_counter()
        out = fn()
        elapsed = time.perf_counter() - start
        best, runs, total = min(best, elapsed), runs + 1, total + elapsed
    return best, out


def run_job(case: str, task: str, impl: str, kind: str, out_dir: Path) -> dict:
    """One measurement in this (worker) process; returns what the table needs."""
    import torch

    from reidtricks.evaluation import evaluate, pairwise_distance, re_rank

    if task == "idle":  # the interpreter with torch and numpy imported, nothing else
        gpu = torch.cuda.get_device_name() if torch.cuda.is_available() else "no GPU"
        return {"seconds": 0.0, "torch": torch.__version__, "threads": torch.get_num_threads(),
                "gpu": gpu}  # fmt: skip
    size = SIZES[case]
    dim = EVAL_DIM if task == "eval" else RERANK_DIM
    kind, _, levels = kind.partition("@")
    qf, gf, q_pids, g_pids, q_cams, g_cams = make_features(size, dim, kind)
    labels = [t.numpy() for t in (q_pids, g_pids, q_cams, g_cams)]
    result = {}
    if task == "eval":
        distmat = pairwise_distance(qf, gf, "euclidean")
        del qf, gf
        if levels:  # ties: N + 1 distinct distances
            low, high = distmat.min(), distmat.max()  # in place: no second matrix in the peak
            distmat.sub_(low).div_(high - low).mul_(int(levels)).round_()
        if impl == "numpy":
            step = MSMT_QUERY_STEP if case == "msmt" else 1
            rows = slice(None, None, step)
            sub = [labels[0][rows], labels[1], labels[2][rows], labels[3]]
            seconds, (cmc, mean_ap, minp, _) = timed(
                lambda: evaluate_per_query(
                    distmat.numpy()[rows], *sub, kind="stable" if levels else "quicksort"
                )
            )
            result.update(seconds=seconds * step, query_step=step)
        else:
            result["seconds"], res = timed(
                lambda: evaluate(
                    distmat, q_pids, g_pids, q_cams, g_cams, max_rank=50, protocol="market"
                )
            )
            cmc, mean_ap, minp = res.cmc, res.mAP, res.mINP
        result["distmat_mb"] = distmat.numel() * 4 / 2**20
    else:
        if impl == "numpy":
            result["seconds"], distmat = timed(
                lambda: dense_rerank(qf.numpy(), gf.numpy(), precise=False)
            )
        else:
            result["seconds"], distmat = timed(
                lambda: re_rank(qf, gf, k1=20, k2=6, lambda_value=0.3).numpy()
            )
        distmat = np.asarray(distmat, dtype=np.float32)
        if case != "msmt":
            np.save(out_dir / f"{case}_{kind}_{impl}.npy", distmat)
        res = evaluate(distmat, *labels, max_rank=50, protocol="market")
        cmc, mean_ap, minp = res.cmc, res.mAP, res.mINP
        if impl == "numpy":  # the same features ranked by the original distance, for context
            before = evaluate(
                pairwise_distance(qf, gf, "sqeuclidean"), *labels, max_rank=50, protocol="market"
            )
            result.update(rank1_before=float(before.cmc[0]), mAP_before=before.mAP)
    result.update(rank1=float(cmc[0]), mAP=float(mean_ap), mINP=float(minp))
    return result


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown CPU"


def busy_cpu_seconds() -> float:
    """CPU time spent busy by the whole machine since boot (all processes, all cores)."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(fields[:8]) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")


def start_busy() -> subprocess.Popen:
    """A process that keeps one core busy: a Python loop that ends by itself after a while."""
    loop = f"import time\nend = time.time() + {BUSY_SECONDS}\nwhile time.time() < end:\n    pass\n"
    proc = subprocess.Popen([sys.executable, "-c", loop])
    time.sleep(0.5)  # let it get going before the measurement starts
    return proc


def spawn(args: list[str], threads: int | None, busy: bool) -> tuple[dict, float]:
    """Run this script as a worker; return its JSON result and its peak RSS in MB.

    The result also gets `others`: the share of the machine's cores busy with other processes
    while the worker ran, to flag timings taken under contention.
    """
    env = dict(os.environ)
    if threads:  # torch (OpenMP) and NumPy's BLAS alike
        for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
            env[var] = str(threads)
    competitor = start_busy() if busy else None
    start, cpu = time.perf_counter(), busy_cpu_seconds()
    try:
        proc = subprocess.Popen(
            [sys.executable, __file__, "--worker", *args],
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        out = proc.stdout.read()
        _, status, usage = os.wait4(proc.pid, 0)
    finally:
        if competitor is not None:
            competitor.terminate()
            competitor.wait()
    wall = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"worker {args} failed with status {status}")
    other = busy_cpu_seconds() - cpu - usage.ru_utime - usage.ru_stime
    result = json.loads(out.strip().splitlines()[-1])
    result["others"] = max(0.0, other) / (wall * (os.cpu_count() or 1))
    return result, usage.ru_maxrss / 1024


def goal(text: str, met: bool, detail: str = "") -> str:
    return f"- {text}: {'met' if met else 'NOT met'}{f' ({detail})' if detail else ''}"


def check_goals(key: tuple, res: dict, base: dict | None, idle_mb: float) -> list[str]:
    """The targets of the evaluation / re-ranking work, as 'met' or 'NOT met' lines."""
    case, kind, task, _, busy = key
    name = f"{case} {kind} {task}"
    out = []
    if busy:
        return out
    if task == "eval" and case in ("market", "msmt"):
        if base:
            ratio = res["seconds"] / base["seconds"]
            out.append(goal(f"{name} <= 0.1x per-query NumPy time", ratio <= 0.1, f"{ratio:.3f}x"))
        extra = res["peak_mb"] - idle_mb - res["distmat_mb"]
        out.append(
            goal(
                f"{name} peak <= interpreter + distance matrix + {WORKING_SET_MB} MB",
                extra <= WORKING_SET_MB,
                f"{extra:.0f} MB beyond the {res['distmat_mb']:.0f} MB matrix",
            )
        )
    if task == "rerank" and case == "market" and base:
        ratio = base["seconds"] / res["seconds"]
        mem = base["peak_mb"] / res["peak_mb"]
        out.append(goal(f"{name} <= 1/5 of the dense time", ratio >= 5, f"1/{ratio:.1f}"))
        out.append(goal(f"{name} <= 1/4 of the dense peak memory", mem >= 4, f"1/{mem:.1f}"))
    if task == "rerank" and case == "msmt":
        out.append(
            goal(
                f"{name} completes within 16 GB peak",
                res["peak_mb"] <= 16384,
                f"{res['peak_mb']:.0f} MB, {res['seconds']:.0f} s",
            )
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--cases", default="small,market,msmt", help="comma list of sizes")
    parser.add_argument("--kind", default=",".join(KINDS), help="comma list of feature kinds")
    parser.add_argument("--tasks", default="eval,rerank", help="comma list of eval, rerank")
    parser.add_argument(
        "--busy",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also run the reidtricks jobs (but msmt re-ranking) beside a busy core",
    )
    parser.add_argument("--markdown", type=Path, help="also write the table to this file")
    parser.add_argument(
        "--threads",
        type=int,
        help="threads for torch and BLAS in the workers (default: theirs); evaluate() uses as "
        "many worker threads",
    )
    parser.add_argument("--worker", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        case, task, impl, kind, out_dir = args.worker
        res = run_job(case, task, impl, kind, Path(out_dir))
        res["self_maxrss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(json.dumps(res))
        return

    cases = [c.strip() for c in args.cases.split(",") if c.strip()]
    kinds = [k.strip() for k in args.kind.split(",") if k.strip()]
    tasks = [t.strip() for t in args.tasks.split(",") if t.strip()]
    tied = [k for k in kinds if "@" in k]
    bad_kinds = [k for k in kinds if not _valid_kind(k)]
    if set(cases) - set(SIZES) or bad_kinds or set(tasks) - {"eval", "rerank"}:
        parser.error(
            f"expected cases among {sorted(SIZES)}, kinds among {list(KINDS)} (or KIND@N, N >= 1) "
            f"and tasks among eval, rerank; got {args.cases!r}, {args.kind!r}, {args.tasks!r}"
        )
    if tied and "rerank" in tasks:
        parser.error(f"--kind {','.join(tied)}: tied distances are for --tasks eval only")
    load_before = os.getloadavg()[0]
    tmp = Path(tempfile.mkdtemp(prefix="bench_eval_"))
    env, idle_mb = spawn(["small", "idle", "torch", "random", str(tmp)], args.threads, False)
    runs = []
    for kind in kinds:
        for case, task, impl in JOBS:
            if case not in cases or task not in tasks:
                continue
            runs.append((case, kind, task, impl, False))
            if args.busy and impl == "torch" and (case, task) != ("msmt", "rerank"):
                runs.append((case, kind, task, impl, True))
    results = {}
    for key in runs:
        case, kind, task, impl, busy = key
        label = " / ".join([case, kind, task, impl] + (["busy core"] if busy else []))
        print(f"running {label} ...", file=sys.stderr, flush=True)
        results[key], peak = spawn([case, task, impl, kind, str(tmp)], args.threads, busy)
        results[key]["peak_mb"] = peak
        print(f"  {results[key]}", file=sys.stderr, flush=True)

    ram_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    lines = [
        f"{date.today()}; {cpu_model()}, {os.cpu_count()} CPU cores, {ram_gb:.0f} GB RAM, "
        f"{env['gpu']}; Python {platform.python_version()}, torch {env['torch']} "
        f"({env['threads']} threads), numpy {np.__version__}. Peak RSS includes "
        f"{idle_mb:.0f} MB for the interpreter with torch and numpy imported. Load average "
        f"(1 min) {load_before:.2f} at the start, {os.getloadavg()[0]:.2f} at the end.",
        "",
        "| case | kind | task | implementation | time (s) | vs baseline | busy core: time (s), "
        "slowdown | peak RSS (MB) | memory ratio | rank-1 | mAP | mINP | other load |",
        "|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    notes, goals = [], []
    for key, res in results.items():
        case, kind, task, impl, busy = key
        if busy:
            continue
        base = results.get((case, kind, task, "numpy", False))
        loaded = results.get((*key[:4], True))
        speed = mem = slow = ""
        if impl == "torch" and base:
            speed = f"{res['seconds'] / base['seconds']:.3f}x"
            mem = f"1/{base['peak_mb'] / res['peak_mb']:.1f}"
        if loaded:
            factor = loaded["seconds"] / res["seconds"]
            slow = f"{loaded['seconds']:.2f}, {factor:.2f}x"
            goals.append(goal(f"{case} {kind} {task}: busy-core slowdown < 2x", factor < 2))
        if impl == "torch":
            goals.extend(check_goals(key, res, base, idle_mb))
        size = SIZES[case]
        name = "reidtricks"
        if impl == "numpy":
            name = "per-query NumPy" if task == "eval" else "dense NumPy"
            if res.get("query_step", 1) > 1:
                name += f" (1/{res['query_step']} of the queries, time x{res['query_step']})"
        lines.append(
            f"| {case} ({size.num_q} x {size.num_g}) | {kind} | {task} | {name} | "
            f"{res['seconds']:.2f} | {speed} | {slow} | {res['peak_mb']:.0f} | {mem} | "
            f"{100 * res['rank1']:.2f} | {100 * res['mAP']:.2f} | {100 * res['mINP']:.2f} | "
            f"{100 * res['others']:.0f}% |"
        )
        if task == "rerank" and impl == "torch" and base and case != "msmt":
            ours = np.load(tmp / f"{case}_{kind}_torch.npy")
            theirs = np.load(tmp / f"{case}_{kind}_numpy.npy")
            mad = float(np.abs(ours - theirs).mean())
            gap = 100 * abs(res["mAP"] - base["mAP"])
            notes.append(
                f"- {case} {kind} re-ranking: mean |reidtricks - dense| = {mad:.2e} "
                f"(max {np.abs(ours - theirs).max():.2e}); mAP difference {gap:.3f} points; "
                f"original distance: rank-1 {100 * base['rank1_before']:.2f}, "
                f"mAP {100 * base['mAP_before']:.2f}."
            )
            if case == "small":
                goals.append(goal(f"small {kind} re-ranking: mean |diff| <= 1e-3", mad <= 1e-3))
                goals.append(goal(f"small {kind} re-ranking: mAP within 0.1 point", gap <= 0.1))
    table = "\n".join([*lines, "", *notes, "", "Goals:", *goals])
    print(table)
    if args.markdown:
        args.markdown.write_text(table + "\n")
    for path in tmp.iterdir():
        path.unlink()
    tmp.rmdir()


if __name__ == "__main__":
    main()
