"""Study report of a sweep folder: report.md, report.csv, report.png (`python -m reidtricks.report`).

Reads every job's metrics.json, groups jobs by cell (stage, P x K, image size, ...) over seeds and
writes mean +- std, the delta to the previous row (marked `~` when it lies within the seed noise),
and the paper's published numbers for Market-1501 / DukeMTMC-reID. Missing, failed and corrupt jobs
are listed.
"""

from __future__ import annotations

import csv
import json
import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from hydra.errors import HydraException

from reidtricks.errors import InputError, error_summary
from reidtricks.reports.paper_results import published

SHOWN = ("rank1", "mAP")


@dataclass
class Row:
    """One table row: a cell (or a test-time variant of a cell) on one test set, over seeds."""

    name: str
    test_set: str
    trained_on: str = ""  # the training set(s); deltas compare rows trained on the same data
    values: dict[str, list[float]] = field(default_factory=dict)
    seeds: list[int] = field(default_factory=list)

    @property
    def in_domain(self) -> bool:
        """Trained on its test set (or training set unknown): the paper's rows are all in-domain."""
        return self.trained_on in ("", self.test_set)

    def mean(self, key: str) -> float:
        return statistics.fmean(self.values[key])

    def std(self, key: str) -> float:
        vals = self.values[key]
        return statistics.stdev(vals) if len(vals) > 1 else float("nan")


@dataclass
class StudyJobs:
    done: list[dict[str, Any]]
    failed: list[str]  # job folders without metrics.json
    missing: int  # jobs the sweep expected that have no folder at all
    corrupt: list[str] = field(default_factory=list)  # `<path>: corrupt metrics.json (<why>)`


def count_sweep_values(value: str) -> int:
    """Number of choices in a sweep value (`a,b`, `{p:1,k:2},{p:2,k:4}`, `range(0,3)`,
    `choice(1,2)`), as Hydra's own override parser reads it."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    override = OverridesParser.create().parse_override(f"key={value}")
    return len(list(override.sweep_iterator())) if override.is_sweep_override() else 1


def expected_job_count(multirun_dir: Path) -> int | None:
    """Jobs the sweep should have produced, from multirun.yaml (sweeper params x CLI sweeps)."""
    path = multirun_dir / "multirun.yaml"
    if not path.is_file():
        return None
    sweeps: dict[str, int] = {}
    try:
        hydra_cfg = yaml.safe_load(path.read_text()).get("hydra", {})
        for key, value in (hydra_cfg.get("sweeper", {}).get("params") or {}).items():
            sweeps[key.lstrip("+~")] = count_sweep_values(value)
        for override in hydra_cfg.get("overrides", {}).get("task", []):
            key, _, value = override.partition("=")
            sweeps[key.lstrip("+~")] = count_sweep_values(value)  # the command line wins
    except (OSError, UnicodeDecodeError, yaml.YAMLError, AttributeError, TypeError, HydraException):
        return None  # unreadable: the count of never-started jobs is unknown, not fatal
    return math.prod(sweeps.values())


def _metric_sets_problem(value: Any, key: str) -> str | None:
    """Why `value` is not a `{test set: {metric: number}}` mapping (with rank1 and mAP), or None."""
    if not isinstance(value, dict):
        return f"{key} is a {type(value).__name__}, expected a mapping of test sets"
    for test_set, metrics in value.items():
        if not isinstance(metrics, dict):
            return f"{key}.{test_set} is a {type(metrics).__name__}, expected a mapping"
        for metric in (*SHOWN, "rank5", "rank10", "mINP"):
            number = metrics.get(metric)
            if number is None and metric not in SHOWN:
                continue
            if isinstance(number, bool) or not isinstance(number, (int, float)):
                return f"{key}.{test_set}.{metric}={number!r}, expected a number"
    return None


def metrics_problem(payload: Any) -> str | None:
    """Why a parsed metrics.json cannot go into the report (one phrase), or None when it can."""
    if not isinstance(payload, dict):
        return f"expected a JSON object, got a {type(payload).__name__}"
    for key in ("cell", "stage"):
        if key in payload and not isinstance(payload[key], str):
            return f"{key}={payload[key]!r}, expected a string"
    train_sets = payload.get("train_sets", [])
    if not isinstance(train_sets, list) or not all(isinstance(t, str) for t in train_sets):
        return f"train_sets={train_sets!r}, expected a list of names"
    if "test_sets" in payload and (
        problem := _metric_sets_problem(payload["test_sets"], "test_sets")
    ):
        return problem
    variants = payload.get("variants") or {}
    if not isinstance(variants, dict):
        return f"variants is a {type(variants).__name__}, expected a mapping"
    for name, per_set in variants.items():
        if problem := _metric_sets_problem(per_set, f"variants.{name}"):
            return problem
    return None


def read_metrics(path: Path) -> dict[str, Any]:
    """A job's metrics.json; InputError `<path>: corrupt metrics.json (<why>)` if it is unusable."""
    try:
        payload = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise InputError(f"{path}: corrupt metrics.json ({error_summary(err)})") from err
    if problem := metrics_problem(payload):
        raise InputError(f"{path}: corrupt metrics.json ({problem})")
    return payload


def collect_jobs(multirun_dir: Path) -> StudyJobs:
    """Every job folder (it holds .hydra/) under the sweep: finished, failed or corrupt."""
    done, failed, corrupt = [], [], []
    job_dirs = sorted(
        (p.parent for p in multirun_dir.glob("*/.hydra")),
        key=lambda p: (int(p.name.split("_")[0]) if p.name.split("_")[0].isdigit() else 0, p.name),
    )
    for job_dir in job_dirs:
        metrics_path = job_dir / "metrics.json"
        if metrics_path.is_file():
            try:
                metrics = read_metrics(metrics_path)
            except InputError as err:
                corrupt.append(str(err))
                continue
            metrics["job"] = job_dir.name
            done.append(metrics)
        else:
            failed.append(job_dir.name)
    expected = expected_job_count(multirun_dir)
    missing = max(0, expected - len(job_dirs)) if expected is not None else 0
    return StudyJobs(done, failed, missing, corrupt)


def _no_jobs_error(multirun_dir: Path, jobs: StudyJobs) -> InputError:
    """The one-line error for a folder without a readable metrics.json."""
    if jobs.corrupt:
        return InputError(
            f"{multirun_dir}: no readable metrics.json under it ({len(jobs.corrupt)} corrupt, "
            f"the first: {jobs.corrupt[0]})"
        )
    expected = "expected a multirun folder holding <job>/.hydra/ and <job>/metrics.json"
    if (multirun_dir / ".hydra").is_dir():
        expected += "; this is one run's folder: pass the sweep folder above it"
    elif jobs.failed:
        expected += f"; its {len(jobs.failed)} job folder(s) have not finished"
    return InputError(f"{multirun_dir}: no metrics.json found under it ({expected})")


def build_rows(jobs: Sequence[dict[str, Any]]) -> list[Row]:
    """Rows in sweep order: one per (cell, test set); then test-time variants.

    With one cell (e.g. bnneck_metrics) every variant is a row; with several cells (the ablation),
    the variants of the last cell follow as extra rows (e.g. `center_loss+rerank`).
    """
    rows: dict[tuple[str, str], Row] = {}
    cells = list(dict.fromkeys(job.get("cell", job.get("stage", "?")) for job in jobs))

    def add(name: str, test_set: str, metrics: dict[str, float], job: dict[str, Any]) -> None:
        trained_on = "+".join(job.get("train_sets", []))
        row = rows.setdefault((name, test_set), Row(name, test_set, trained_on))
        seed = job.get("seed", 0)
        for key in (*SHOWN, "rank5", "rank10", "mINP"):
            if key in metrics:
                row.values.setdefault(key, []).append(float(metrics[key]))
        row.seeds.append(seed)

    for job in jobs:
        cell = job.get("cell", job.get("stage", "?"))
        if len(cells) > 1 or not job.get("variants"):
            for test_set, metrics in job.get("test_sets", {}).items():
                add(cell, test_set, metrics, job)
    for job in jobs:
        cell = job.get("cell", job.get("stage", "?"))
        if len(cells) > 1 and cell != cells[-1]:
            continue
        for variant, per_set in (job.get("variants") or {}).items():
            name = f"{cell}+{variant}" if len(cells) > 1 else variant
            for test_set, metrics in per_set.items():
                add(name, test_set, metrics, job)
    return list(rows.values())


def _pct(value: float) -> str:
    return "-" if math.isnan(value) else f"{100 * value:.1f}"


def _mean_std(row: Row, key: str) -> str:
    std = row.std(key)
    return _pct(row.mean(key)) + ("" if math.isnan(std) else f" ± {100 * std:.1f}")


def _delta(row: Row, prev: Row | None, key: str) -> tuple[str, bool | None]:
    """Delta to the previous row in points, and whether it lies within the seeds' noise."""
    if prev is None:
        return "", None
    delta = row.mean(key) - prev.mean(key)
    noise = math.hypot(row.std(key), prev.std(key))
    within = None if math.isnan(noise) else abs(delta) <= noise
    return f"{100 * delta:+.1f}{' ~' if within else ''}", within


def table_records(rows: Sequence[Row]) -> list[dict[str, str]]:
    """One dict per row with the columns of the markdown/CSV table."""
    records, prev_by_set = [], {}
    cross_domain = not all(r.in_domain for r in rows)
    for row in rows:
        prev = prev_by_set.get((row.test_set, row.trained_on))
        record = {"row": row.name, "test set": row.test_set}
        if cross_domain:
            record["trained on"] = row.trained_on
        record["seeds"] = str(len(row.seeds))
        for key in SHOWN:
            record[key] = _mean_std(row, key)
            record[f"Δ {key}"] = _delta(row, prev, key)[0]
        paper = published(row.test_set, row.name)
        record["paper R1/mAP"] = (
            f"{paper[0]:.1f} / {paper[1]:.1f}" if paper and row.in_domain else ""
        )
        records.append(record)
        prev_by_set[(row.test_set, row.trained_on)] = row
    return records


def write_report(multirun_dir: Path, out_dir: Path | None = None) -> Path:
    """Write report.md, report.csv and report.png for a sweep folder; returns the markdown path."""
    out_dir = out_dir or multirun_dir
    if out_dir.exists() and not out_dir.is_dir():
        raise InputError(f"--out {out_dir}: is a file; expected a folder for report.md/.csv/.png")
    jobs = collect_jobs(multirun_dir)
    if not jobs.done:
        raise _no_jobs_error(multirun_dir, jobs)
    rows = build_rows(jobs.done)
    if not rows:
        raise InputError(
            f"{multirun_dir}: no metrics.json under it holds test_sets "
            "(expected jobs trained with run_test=true)"
        )
    records = table_records(rows)
    columns = list(records[0])

    lines = [f"# Study report: {multirun_dir}", ""]
    lines += [
        f"{len(jobs.done)} finished jobs; metrics in % (mean ± std over seeds). "
        "Δ: change from the previous row on the same test set and training set; `~` marks a "
        "change within the seed noise (|Δ| <= sqrt(std_prev² + std_row²)).",
        "",
        "| " + " | ".join(columns) + " |",
        "|" + "---|" * len(columns),
    ]
    lines += ["| " + " | ".join(r[c] for c in columns) + " |" for r in records]
    if jobs.failed or jobs.missing or jobs.corrupt:
        lines += ["", "## Missing or failed jobs", ""]
        lines += [f"- {name}: no metrics.json (failed or still running)" for name in jobs.failed]
        lines += [f"- {problem}" for problem in jobs.corrupt]
        if jobs.missing:
            lines.append(f"- {jobs.missing} job(s) of the sweep never started")
    out_dir.mkdir(parents=True, exist_ok=True)
    md_path = out_dir / "report.md"
    md_path.write_text("\n".join(lines) + "\n")
    with open(out_dir / "report.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns)
        writer.writeheader()
        writer.writerows(records)
    study = multirun_dir.resolve().parent.parent.name  # <log_dir>/<task>/multirun/<date>
    plot_rows(rows, out_dir / "report.png", title=f"{study}: {multirun_dir.name}")
    return md_path


def plot_rows(rows: Sequence[Row], out_png: Path, title: str = "") -> Path:
    """Grouped bars of rank-1 and mAP per row, with seed std as error bars."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [
        r.name if r.test_set == rows[0].test_set else f"{r.name}\n({r.test_set})" for r in rows
    ]
    x = range(len(rows))
    fig, ax = plt.subplots(figsize=(max(6.0, 1.1 * len(rows)), 4))
    width = 0.38
    for offset, key in ((-width / 2, "rank1"), (width / 2, "mAP")):
        means = [100 * r.mean(key) for r in rows]
        stds = [0 if math.isnan(r.std(key)) else 100 * r.std(key) for r in rows]
        ax.bar([i + offset for i in x], means, width, yerr=stds, capsize=3, label=key)
    ax.set_xticks(list(x), labels, rotation=30, ha="right", fontsize=8)
    ax.set_ylabel("%")
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    fig.savefig(out_png, dpi=90)
    plt.close(fig)
    return out_png
