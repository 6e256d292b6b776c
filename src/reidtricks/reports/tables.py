"""Terminal tables of ranking results (rich)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rich.console import Console
from rich.table import Table

from reidtricks.evaluation.metrics import EvalResult


def results_table(results: Mapping[str, Mapping[str, Any]], title: str = "") -> Table:
    """One row per test set, metrics in %; a set scored over random-split trials gets a second
    row, its std over the trials. Set names never wrap: the table reads whole at 80 columns."""
    table = Table(title=title or None)
    table.add_column("test set", no_wrap=True)
    for key in EvalResult.KEYS:
        table.add_column(f"{key} %", justify="right")
    for name, metrics in results.items():
        table.add_row(name, *(f"{100 * float(metrics[k]):.2f}" for k in EvalResult.KEYS))
        std = metrics.get("std")
        if isinstance(std, Mapping):
            table.add_row(
                f" ± std, {metrics['trials']} trials",
                *(f"± {100 * float(std[k]):.2f}" for k in EvalResult.KEYS),
                style="dim",
            )
    return table


def print_results_table(results: Mapping[str, Mapping[str, Any]], title: str = "") -> None:
    Console().print(results_table(results, title))
