"""Terminal tables of ranking results (rich)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rich.console import Console
from rich.table import Table

from reidtricks.evaluation.metrics import EvalResult


def results_table(results: Mapping[str, Mapping[str, Any]], title: str = "") -> Table:
    """One row per test set; metrics shown as percentages (mean ± std for a set scored over
    random-split trials, its name followed by the number of trials)."""
    table = Table(title=title or None)
    table.add_column("test set")
    for key in EvalResult.KEYS:
        table.add_column(f"{key} %", justify="right")
    for name, metrics in results.items():
        std = metrics.get("std")
        if isinstance(std, Mapping):
            name = f"{name} ({metrics['trials']} trials)"
            cells = [
                f"{100 * float(metrics[k]):.2f} ± {100 * float(std[k]):.2f}"
                for k in EvalResult.KEYS
            ]
        else:
            cells = [f"{100 * float(metrics[k]):.2f}" for k in EvalResult.KEYS]
        table.add_row(name, *cells)
    return table


def print_results_table(results: Mapping[str, Mapping[str, Any]], title: str = "") -> None:
    Console().print(results_table(results, title))
