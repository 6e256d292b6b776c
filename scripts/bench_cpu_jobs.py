"""How to spend 2 CPU cores on training jobs: one 2-thread job after another, or two 1-thread jobs
at once (what `hydra/launcher=cpu_parallel threads=1` does), and fp32 against channels-last and
bf16-mixed (fast where the CPU has bf16 matrix units, e.g. AMX; many times slower where it has none).

    python scripts/bench_cpu_jobs.py [--steps 30] [--experiment cuhk03_cpu] [--skip-bf16]

Each case runs the real training command (`python -m reidtricks.train`, data loading included)
for `--steps` training steps without evaluation and reports wall time per job and the
throughput of the pair against two 2-thread jobs run one after the other (measured in the same
run). Needs the experiment's data and weights (`make weights`; CUHK03 under REIDTRICKS_DATA_DIR).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_eval import cpu_model  # scripts/ is on sys.path when run as a script

BF16_FLAGS = ("avx512_bf16", "amx_bf16")


def command(args: argparse.Namespace, logs: str, *extra: str) -> list[str]:
    return [sys.executable, "-m", "reidtricks.train", f"experiment={args.experiment}",
            "trainer.max_epochs=1", f"++trainer.limit_train_batches={args.steps}", "run_test=false",
            "++trainer.enable_progress_bar=false", "logger={}", f"paths.log_dir={logs}", *extra]  # fmt: skip


def cpu_description() -> str:
    """The CPU's model name (bench_eval's reading) and its bf16 features, from /proc/cpuinfo."""
    try:
        flags = {f for f in Path("/proc/cpuinfo").read_text().split() if f in BF16_FLAGS}
    except OSError:
        return "unknown CPU"
    return f"{cpu_model()} ({', '.join(sorted(flags)) or 'no bf16 units'})"


def run_jobs(jobs: list[tuple[list[str], int]]) -> float:
    """Start every (command, threads) job at once; seconds until the last one ends."""
    start = time.perf_counter()
    procs = []
    for cmd, threads in jobs:
        env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
        procs.append(
            subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        )
    for proc in procs:
        _, err = proc.communicate()
        if proc.returncode != 0:
            raise SystemExit(f"error: a benchmark job failed: {err.decode()[-500:]}")
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--experiment", default="cuhk03_cpu")
    parser.add_argument("--skip-bf16", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as logs:
        job = command(args, logs, "data.loader.num_workers=0")
        one_2t = run_jobs([(command(args, logs, "data.loader.num_workers=1"), 2)])
        one_1t = run_jobs([(job, 1)])
        pair_1t = run_jobs([(job, 1), ([*job, "seed=1"], 1)])
        cl = [*job, "channels_last=true"]
        pair_cl = run_jobs([(cl, 1), ([*cl, "seed=1"], 1)])
        bf16 = pair_bf16 = None
        if not args.skip_bf16:
            bf16 = run_jobs([(command(args, logs, "data.loader.num_workers=1",
                                      "trainer.precision=bf16-mixed"), 2)])  # fmt: skip
            cl_bf16 = [*cl, "trainer.precision=bf16-mixed"]
            pair_bf16 = run_jobs([(cl_bf16, 1), ([*cl_bf16, "seed=1"], 1)])
    load = os.getloadavg()[0]
    print(f"experiment={args.experiment} steps={args.steps} cores={os.cpu_count()} "
          f"load(1 min)={load:.2f}; {cpu_description()}")  # fmt: skip
    print("| case | wall s | jobs | throughput vs 2-thread jobs in turn |\n|---|---|---|---|")
    print(f"| one job, 2 threads, 1 loader worker (fp32) | {one_2t:.1f} | 1 | 1.00x |")
    print(f"| one job, 1 thread, no loader worker | {one_1t:.1f} | 1 | {one_2t / one_1t:.2f}x |")
    print(f"| two jobs at once, 1 thread each | {pair_1t:.1f} | 2 | {2 * one_2t / pair_1t:.2f}x |")
    print(f"| two jobs at once, 1 thread each, channels-last | {pair_cl:.1f} | 2 | "
          f"{2 * one_2t / pair_cl:.2f}x |")  # fmt: skip
    if bf16 is not None:
        print(f"| one job, 2 threads, bf16-mixed | {bf16:.1f} | 1 | {one_2t / bf16:.2f}x |")
        print(f"| two jobs at once, 1 thread each, bf16-mixed channels-last | {pair_bf16:.1f} | 2 "
              f"| {2 * one_2t / pair_bf16:.2f}x |")  # fmt: skip


if __name__ == "__main__":
    main()
