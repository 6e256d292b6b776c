"""Terminal tables of ranking results (rich)."""

from __future__ import annotations

from collections.abc import Mapping

from rich.console import Console
from rich.table import Table

from reidtricks.evaluation.metrics import EvalResult


def results_table(results: Mapping[str, Mapping[str, float]], title: str = "") -> Table:
    """One row per test set; metrics shown as percentages."""
    table = Table(title=title or None)
    table.add_column("test set")
    for key in EvalResult.KEYS:
        table.add_column(f"{key} %", justify="right")
    for name, metrics in results.items():
        table.add_row(name, *(f"{100 * float(metrics[k]):.2f}" for k in EvalResult.KEYS))
    return table


def print_results_table(results: Mapping[str, Mapping[str, float]], title: str = "") -> None:
    Console().print(results_table(results, title))
