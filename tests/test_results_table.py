"""The results table that train and evaluate print reads at 80 columns (a terminal's default,
and rich's width when the output is a file): set names whole, no line wider than 80."""

from __future__ import annotations

import io

from rich.console import Console

from reidtricks.reports.tables import results_table

KEYS = ("rank1", "rank5", "rank10", "mAP", "mINP")
# The longest names of the shipped sets, with and without random-split trials.
TRIALS = {"viper": 10, "caviar4reid": 10, "threedpes": 10, "prid2011": 10}
PLAIN = ("market1501", "cuhk03_detected", "dukemtmcreid")


def metrics(seed: int, trials: int | None) -> dict:
    values = {k: round(0.05 + 0.9 * ((seed * 7 + i * 3) % 11) / 10, 4) for i, k in enumerate(KEYS)}
    if trials is None:
        return values
    std = {k: round(0.001 + 0.01 * ((seed + i) % 5), 4) for i, k in enumerate(KEYS)}
    return {**values, "trials": trials, "std": std}


def test_the_table_reads_at_80_columns():
    results = {name: metrics(i, TRIALS.get(name)) for i, name in enumerate([*TRIALS, *PLAIN])}
    console = Console(width=80, record=True, file=io.StringIO())
    console.print(results_table(results, title="logs/train/runs/2026-12-06/last.ckpt + re-ranking"))
    lines = console.export_text().splitlines()
    assert max(len(line) for line in lines) <= 80, "\n".join(lines)
    for name, values in results.items():
        rows = [i for i, line in enumerate(lines) if name in line.split()]
        assert len(rows) == 1, (name, lines)  # whole, on one line, once
        cells = [cell.strip() for cell in lines[rows[0]].split("│")[2:-1]]
        assert cells == [f"{100 * values[k]:.2f}" for k in KEYS]
        below = lines[rows[0] + 1]
        if name in TRIALS:  # the std over the trials, on the line below
            std = [cell.strip() for cell in below.split("│")[2:-1]]
            assert f"± std, {TRIALS[name]} trials" in below
            assert std == [f"± {100 * values['std'][k]:.2f}" for k in KEYS]
        else:
            assert "±" not in below
