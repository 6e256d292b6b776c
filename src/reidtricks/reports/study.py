"""Study report of a sweep folder: report.md, report.csv, report.png (`python -m reidtricks.report`).

Reads every job's metrics.json, groups jobs by setting (the full configuration without the seed
and run-specific keys; rows named by cell) over seeds and writes, per test set, mean +- std, the
delta to the previous row (`~` within the seed noise, `?` noise unknown) and the paper's published
numbers for Market-1501 / DukeMTMC-reID. Missing, failed, corrupt and non-finite jobs are listed.
"""

from __future__ import annotations

import csv
import json
import math
import re
import statistics
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from hydra.errors import HydraException

from reidtricks.errors import InputError, error_summary
from reidtricks.reports.paper_results import published
from reidtricks.reports.report_csv import pool_rows, rows_from_report_csv
from reidtricks.reports.rows import MEAN_OF_SETS, SHOWN, Row, test_set_names
from reidtricks.reports.study_plots import plot_deltas, plot_rows

READ_METRICS = (*SHOWN, "rank5", "rank10", "mINP")  # what a row keeps of each test set


@dataclass
class StudyJobs:
    done: list[dict[str, Any]]
    failed: list[str]  # job folders without metrics.json
    missing: int  # jobs the sweep expected that have no folder at all
    corrupt: list[str] = field(default_factory=list)  # `<path>: corrupt metrics.json (<why>)`
    not_finite: list[str] = field(default_factory=list)  # `<job>: test_sets.X.mAP=nan`
    errors: dict[str, str] = field(default_factory=dict)  # failed job -> its error.txt line


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
        for metric in READ_METRICS:
            number = metrics.get(metric)
            if number is None and metric not in SHOWN:
                continue
            if isinstance(number, bool) or not isinstance(number, (int, float)):
                return f"{key}.{test_set}.{metric}={number!r}, expected a number"
            if math.isfinite(number) and not 0.0 <= number <= 1.0:  # non-finite: listed apart
                return f"{key}.{test_set}.{metric}={number!r}, expected a fraction in [0, 1]"
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


def _not_finite(metrics: dict[str, Any]) -> str | None:
    """`test_sets.X.KEY=nan` for the first non-finite metric of a job, or None."""
    for test_set, values in (metrics.get("test_sets") or {}).items():
        for key in (*SHOWN, "mINP"):
            value = values.get(key)
            if value is not None and not math.isfinite(value):
                return f"test_sets.{test_set}.{key}={value}"
    return None


def job_config(job_dir: Path) -> dict[str, Any] | None:
    """The job's .hydra/config.yaml as Hydra saved it: interpolations kept as text, so a key that
    follows the seed or a path (`data.seed: ${seed}`) reads the same in every job, while the keys
    it follows are compared themselves."""
    try:
        config = yaml.safe_load((job_dir / ".hydra" / "config.yaml").read_text())
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return None
    return config if isinstance(config, dict) else None


def collect_jobs(multirun_dir: Path) -> StudyJobs:
    """Every job folder (it holds .hydra/) under the sweep: finished, failed or corrupt."""
    jobs = StudyJobs([], [], 0)
    job_dirs = sorted(
        (p.parent for p in multirun_dir.glob("*/.hydra")),
        key=lambda p: (int(p.name.split("_")[0]) if p.name.split("_")[0].isdigit() else 0, p.name),
    )
    for job_dir in job_dirs:
        metrics_path = job_dir / "metrics.json"
        if not metrics_path.is_file():
            jobs.failed.append(job_dir.name)
            error = job_dir / "error.txt"  # a failed sweep job's one-line error
            if error.is_file():
                jobs.errors[job_dir.name] = error.read_text(errors="replace").strip()[:300]
            continue
        try:
            metrics = read_metrics(metrics_path)
        except InputError as err:
            jobs.corrupt.append(str(err))
            continue
        if bad := _not_finite(metrics):
            jobs.not_finite.append(f"{job_dir.name}: {bad} (left out of the means)")
            continue
        metrics["job"] = job_dir.name
        metrics["folder"] = str(job_dir)
        config = job_config(job_dir)
        metrics["setting"] = setting_of(config)
        metrics["splits"] = trained_splits_of(config)
        jobs.done.append(metrics)
    expected = expected_job_count(multirun_dir)
    jobs.missing = max(0, expected - len(job_dirs)) if expected is not None else 0
    return jobs


# Keys that differ between runs of one setting: seeds, where files go, how fast it ran.
# Not settings: the run's own bookkeeping, and `cell`, the row's name (its text may be a template).
RUN_SPECIFIC = ("seed", "cell", "paths", "ckpt_path", "task_name", "threads", "data.loader", "callbacks",
                "logger", "hydra", "trainer.enable_progress_bar", "trainer.enable_model_summary",
                "trainer.default_root_dir")  # fmt: skip


def _flatten(node: Any, prefix: str = "") -> dict[str, str]:
    if isinstance(node, dict):
        out: dict[str, str] = {}
        for key, value in node.items():
            out.update(_flatten(value, f"{prefix}{key}."))
        return out
    return {prefix[:-1]: json.dumps(node, sort_keys=True, default=str)}


# The split a source trains / tests on: one model per split is a replicate of one setting, like a
# seed (the honest in-domain protocol of the small sets; docs/DATASETS.md, "The trial rule").
SPLIT_KEY = re.compile(r"data\.(train|test)_sources\.[^.]+\.split")


def setting_of(config: dict[str, Any] | None) -> dict[str, str] | None:
    """A job's setting: its flattened configuration without the seed, the data splits and the
    run-specific keys."""
    if config is None:
        return None
    flat = _flatten(config)
    return {
        k: v
        for k, v in flat.items()
        if not any(k == key or k.startswith(f"{key}.") for key in RUN_SPECIFIC)
        and not SPLIT_KEY.fullmatch(k)
    }


def trained_splits_of(config: dict[str, Any] | None) -> str:
    """The splits a job's training sources name (`viper=3`), "" when none is another than 0."""
    flat = _flatten(config or {})
    named = [
        f"{k.split('.')[2]}={v}"
        for k, v in sorted(flat.items())
        if k.startswith("data.train_sources.") and SPLIT_KEY.fullmatch(k)
    ]
    return ",".join(named) if any(not item.endswith("=0") for item in named) else ""


def _trained_on(job: dict[str, Any]) -> str:
    return "+".join(job.get("train_sets", []))


def name_rows(jobs: Sequence[dict[str, Any]]) -> dict[str, dict[str, str]]:
    """Set each job's `row`: its cell, plus the differing keys when jobs of one cell and training
    set have different settings (they are not seeds of one setting); a cell trained on other sets
    keeps its name, the table's "trained on" column tells the rows apart. Refuses a seed that
    appears twice in one row. Returns, for every key whose value differs between rows,
    {row: value} (a row named with its training set when its name has several)."""
    groups: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    for job in jobs:
        cell = job.get("cell", job.get("stage", "?"))
        setting = job["setting"]
        frozen = json.dumps(setting, sort_keys=True) if setting is not None else ""
        groups.setdefault((cell, _trained_on(job), frozen), []).append(job)
    by_cell: dict[tuple[str, str], list[tuple[str, str, str]]] = {}
    for cell, trained_on, frozen in groups:
        by_cell.setdefault((cell, trained_on), []).append((cell, trained_on, frozen))
    sets_per_cell = Counter(cell for cell, _ in by_cell)
    row_setting: dict[str, dict[str, str]] = {}
    for (cell, trained_on), keys in by_cell.items():
        settings = [json.loads(frozen) if frozen else {} for _, _, frozen in keys]
        differing = sorted(
            {k for a in settings for b in settings for k in a if a.get(k) != b.get(k)}
        )
        for key, setting in zip(keys, settings, strict=True):
            name = cell
            if len(keys) > 1:
                shown = ", ".join(f"{k}={setting.get(k, '-')}" for k in differing[:3])
                more = f", +{len(differing) - 3} more" if len(differing) > 3 else ""
                name = (
                    f"{cell} [{shown}{more}]" if shown else f"{cell} [setting {len(row_setting)}]"
                )
            seen: dict[tuple[int, str], str] = {}
            for job in groups[key]:
                seed, splits = job.get("seed", 0), job.get("splits", "")
                if (seed, splits) in seen:
                    which = f"seed {seed}" + (f" with split {splits}" if splits else "")
                    raise InputError(
                        f"row {name}: {which} appears twice, in {seen[seed, splits]} and "
                        f"{job['folder']} (the same setting and seed run twice); report the "
                        "sweeps apart or remove one"
                    )
                seen[seed, splits] = job["folder"]
                job["row"] = name
            label = f"{name} (on {trained_on})" if sets_per_cell[cell] > 1 else name
            row_setting[label] = settings[keys.index(key)] if key[2] else {}
    all_keys = sorted({k for setting in row_setting.values() for k in setting})
    differs = {}
    for key in all_keys:
        values = {row: setting.get(key, "-") for row, setting in row_setting.items() if setting}
        if len(set(values.values())) > 1:
            differs[key] = values
    return differs


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
    """Rows in sweep order: one per setting (see `name_rows`); then test-time variants.

    With one row whose default evaluation is one of its variants (e.g. bnneck_metrics) every
    variant is a row; otherwise (the ablation, or one job of it) the variants of the last row
    follow it as extra rows (e.g. `center_loss+rerank`).
    """
    rows: dict[tuple[str, str], Row] = {}  # by (name, training sets)
    names = list(dict.fromkeys((job["row"], _trained_on(job)) for job in jobs))
    variants_only = len(names) == 1 and any(_default_is_a_variant(job) for job in jobs)
    averaged = _tests_unseen_sets_only(jobs)

    def add(name: str, per_set: dict[str, dict[str, float]], job: dict[str, Any]) -> None:
        trained_on = _trained_on(job)
        row = rows.setdefault((name, trained_on), Row(name, trained_on))
        if averaged:
            per_set = {**per_set, MEAN_OF_SETS: _mean_over_sets(per_set)}
        for test_set, metrics in per_set.items():
            values = row.values.setdefault(test_set, {})
            for key in READ_METRICS:
                if isinstance(metrics.get(key), (int, float)) and math.isfinite(metrics[key]):
                    values.setdefault(key, []).append(float(metrics[key]))
        row.seeds.append(job.get("seed", 0))

    for job in jobs:
        if not variants_only and job.get("test_sets"):
            add(job["row"], job["test_sets"], job)
    for job in jobs:
        if (job["row"], _trained_on(job)) != names[-1]:
            continue
        for variant, per_set in (job.get("variants") or {}).items():
            add(variant if variants_only else f"{job['row']}+{variant}", per_set, job)
    return list(rows.values())


def _tests_unseen_sets_only(jobs: Sequence[dict[str, Any]]) -> bool:
    """Whether every job tests on the same two or more sets, none of which it trained on (a
    study of unseen cameras): only then is their mean a column."""
    names = {tuple(sorted(job.get("test_sets") or {})) for job in jobs}
    if len(names) != 1 or len(sets := next(iter(names))) < 2:
        return False
    return all(not set(sets) & set(job.get("train_sets", [])) for job in jobs)


def _mean_over_sets(per_set: dict[str, dict[str, float]]) -> dict[str, float]:
    """Each metric averaged over one run's test sets (the metrics that every set has; numbers,
    checked when the job was read)."""
    return {
        key: statistics.fmean(metrics[key] for metrics in per_set.values())
        for key in READ_METRICS
        if all(key in metrics for metrics in per_set.values())
    }


def _default_is_a_variant(job: dict[str, Any]) -> bool:
    """Whether one of the job's variants gives exactly its default metrics (the variants are
    then alternatives to the default evaluation, not additions to it)."""
    default = job.get("test_sets") or {}
    return any(per_set == default for per_set in (job.get("variants") or {}).values())


def _pct(value: float) -> str:
    return "-" if math.isnan(value) else f"{100 * value:.1f}"


def _mean_std(row: Row, test_set: str, key: str) -> str:
    std = row.std(test_set, key)
    return _pct(row.mean(test_set, key)) + ("" if math.isnan(std) else f" ± {100 * std:.1f}")


def _delta(row: Row, prev: Row | None, test_set: str, key: str) -> str:
    """Delta to the previous row in points: `~` within the seeds' noise, `?` noise unknown (a row
    with one seed), no mark outside the noise."""
    if prev is None:
        return ""
    delta, noise = row.change_from(prev, test_set, key)
    if math.isnan(delta):
        return "-"
    mark = " ?" if math.isnan(noise) else (" ~" if abs(delta) <= noise else "")
    return f"{100 * delta:+.1f}{mark}"


def table_records(rows: Sequence[Row], delta_from: str | None = None) -> list[dict[str, str]]:
    """One dict per row with the columns of the markdown/CSV table: one column group per test set
    (named `SET rank1`, ... when there are several). Δ is taken from the previous row, or from
    the row named `delta_from` (e.g. the full BoT of a leave-one-out study)."""
    test_sets = test_set_names(rows)
    single = len(test_sets) == 1
    cross_domain = not all(r.in_domain(t) for r in rows for t in r.values)
    references = [r for r in rows if r.name == delta_from]
    records = []
    for i, row in enumerate(rows):
        record = {"row": row.name}
        if single:
            record["test set"] = test_sets[0]
        if cross_domain:
            record["trained on"] = row.trained_on
        record["seeds"] = str(len(row.seeds))
        candidates = rows[:i] if delta_from is None else [r for r in references if r is not row]
        for test_set in test_sets:
            prefix = "" if single else f"{test_set} "
            earlier = [
                r for r in candidates if r.trained_on == row.trained_on and test_set in r.values
            ]
            prev = earlier[-1] if earlier and test_set in row.values else None
            for key in (*SHOWN, "mINP"):
                record[f"{prefix}{key}"] = _mean_std(row, test_set, key)
                record[f"{prefix}Δ {key}"] = _delta(row, prev, test_set, key)
            paper = published(test_set, row.name)
            record[f"{prefix}paper R1/mAP"] = (
                f"{paper[0]:.1f} / {paper[1]:.1f}" if paper and row.in_domain(test_set) else ""
            )
        records.append(record)
    return records


def compact_records(records: Sequence[dict[str, str]], test_sets: Sequence[str]) -> list[dict]:
    """The table's records with, per test set, `SET R1 / mAP` and `SET Δ mAP` only."""
    compact = []
    for record in records:
        row = {k: record[k] for k in ("row", "trained on", "seeds") if k in record}
        for test_set in test_sets:
            row[f"{test_set} R1 / mAP"] = (
                f"{record[f'{test_set} rank1']} / {record[f'{test_set} mAP']}"
            )
            row[f"{test_set} Δ mAP"] = record[f"{test_set} Δ mAP"]
        compact.append(row)
    return compact


def collect_inputs(sources: Sequence[Path]) -> tuple[StudyJobs, list[Path]]:
    """The jobs of every sweep folder among `sources` (one StudyJobs) and the report.csv files."""
    jobs = StudyJobs([], [], 0)
    csv_files = []
    for source in sources:
        if source.is_file() and source.suffix == ".csv":
            csv_files.append(source)
            continue
        found = collect_jobs(source)
        if not found.done and len(sources) > 1:
            raise _no_jobs_error(source, found)
        prefix = f"{source.name}/" if len(sources) > 1 else ""
        jobs.done += found.done
        jobs.failed += [prefix + name for name in found.failed]
        jobs.errors.update({prefix + name: line for name, line in found.errors.items()})
        jobs.corrupt += found.corrupt
        jobs.not_finite += found.not_finite
        jobs.missing += found.missing
    return jobs, csv_files


def write_report(
    inputs: Path | Sequence[Path], out_dir: Path | None = None, delta_from: str | None = None
) -> Path:
    """Write report.md, report.csv and report.png for one or more sweep folders (their jobs pooled
    by setting) and earlier one-seed report.csv files (rows pooled by name); returns the markdown
    path. `delta_from`: the row every Δ is taken from (default: each row's previous row)."""
    sources = [inputs] if isinstance(inputs, Path) else list(inputs)
    if out_dir is None:
        if len(sources) > 1 or not sources[0].is_dir():
            raise InputError("--out: needed with several inputs or a report.csv (where to write)")
        out_dir = sources[0]
    if out_dir.exists() and not out_dir.is_dir():
        raise InputError(f"--out {out_dir}: is a file; expected a folder for report.md/.csv/.png")
    jobs, csv_files = collect_inputs(sources)
    if not jobs.done and not csv_files:
        raise _no_jobs_error(sources[0], jobs)
    differs = name_rows(jobs.done)
    rows = build_rows(jobs.done)
    for csv_file in csv_files:
        rows = pool_rows(rows, rows_from_report_csv(csv_file))
    if not rows:
        raise InputError(
            f"{sources[0]}: no metrics.json under it holds test_sets "
            "(expected jobs trained with run_test=true)"
        )
    if delta_from is not None and delta_from not in {row.name for row in rows}:
        names = ", ".join(row.name for row in rows)
        unread = [*jobs.corrupt, *jobs.not_finite, *jobs.failed]
        why = (
            f"; {len(unread)} job(s) were left out as failed or corrupt, the first: {unread[0]}"
            if unread
            else ""
        )
        raise InputError(f"--delta-from {delta_from}: no such row (rows: {names}){why}")
    records = table_records(rows, delta_from)
    columns = list(dict.fromkeys(c for r in records for c in r))
    # Several test sets: the markdown keeps one readable column pair per set (all in the CSV).
    test_sets = test_set_names(rows)
    shown = compact_records(records, test_sets) if len(test_sets) > 2 else records
    shown_columns = list(dict.fromkeys(c for r in shown for c in r))

    title = ", ".join(str(source) for source in sources)
    lines = [f"# Study report: {title}", ""]
    earlier = f" and {len(csv_files)} earlier report.csv" if csv_files else ""
    lines += [
        f"{len(jobs.done)} finished jobs{earlier}; metrics in % (mean ± std over seeds, and over splits where one model was trained per split). "
        f"Δ: change from {'the row ' + delta_from if delta_from else 'the previous row'} on "
        "the same test set and training set; `~` marks a "
        "change within the seed noise (|Δ| <= sqrt(std_prev² + std_row²)); `?` a change of "
        "unknown noise (a row with one seed): neither within the noise nor beyond it."
        + (
            f" `{MEAN_OF_SETS}`: each run's metrics averaged over the {len(test_sets) - 1} test "
            "sets it never trained on, then mean ± std over seeds."
            if MEAN_OF_SETS in test_sets
            else ""
        ),
        "",
        "| " + " | ".join(shown_columns) + " |",
        "|" + "---|" * len(shown_columns),
    ]
    lines += ["| " + " | ".join(r.get(c, "") for c in shown_columns) + " |" for r in shown]
    if shown is not records:
        lines += ["", "(rank-1 and mAP with the Δ of mAP per test set; every column in report.csv)"]
    if differs:
        lines += ["", "## Settings that differ between rows", ""]
        lines += [
            f"- {key}: " + "; ".join(f"{row}: {value}" for row, value in values.items())
            for key, values in differs.items()
        ]
    if jobs.failed or jobs.missing or jobs.corrupt or jobs.not_finite:
        lines += ["", "## Missing or failed jobs", ""]
        lines += [
            f"- {name}: failed: {jobs.errors[name]}"
            if name in jobs.errors
            else f"- {name}: no metrics.json (failed or still running)"
            for name in jobs.failed
        ]
        lines += [f"- {problem}" for problem in jobs.corrupt]
        lines += [f"- {problem}" for problem in jobs.not_finite]
        if jobs.missing:
            lines.append(f"- {jobs.missing} job(s) of the sweep never started")
    out_dir.mkdir(parents=True, exist_ok=True)
    md_path = out_dir / "report.md"
    md_path.write_text("\n".join(lines) + "\n")
    with open(out_dir / "report.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns, restval="")
        writer.writeheader()
        writer.writerows(records)
    first = sources[0].resolve()
    study = first.parent.parent.name  # <log_dir>/<task>/multirun/<date>
    plot_title = (
        f"{study}: {first.name}"
        if len(sources) == 1
        else f"{first.parent.name}: {len(sources)} inputs pooled"
    )
    plot_rows(rows, out_dir / "report.png", title=plot_title)
    if delta_from is not None:
        plot_deltas(rows, delta_from, out_dir / "report_delta.png", title=plot_title)
    return md_path
