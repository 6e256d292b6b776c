"""optim.warmup_per_step in a real fit: the LR of every optimiser step is the per-step ramp, then
the milestones; and Adam's step-size monitor logs its quantiles."""

from __future__ import annotations

import csv

import pytest

from helpers import compose_train, tiny_overrides
from reidtricks.cli.train import train

pytestmark = pytest.mark.slow  # trains a model


def test_every_step_follows_the_ramp_and_the_monitor_logs(tiny_data_dir, tmp_path):
    cfg = compose_train(
        *tiny_overrides(tiny_data_dir, tmp_path),
        "+trick=warmup",
        "optim.warmup_epochs=2",
        "optim.warmup_per_step=true",
        "optim.milestones=[3]",
        "trainer.max_epochs=4",
        "+trainer.limit_train_batches=3",
        "trainer.log_every_n_steps=1",
        "callbacks=adam_monitor",
        "+callbacks.adam_step_size.every_n_steps=2",
        "run_test=false",
    )
    train(cfg)
    (log,) = tmp_path.glob("csv/**/metrics.csv")
    rows = list(csv.DictReader(log.open()))
    lrs = {int(r["step"]): float(r["train/lr"]) for r in rows if r.get("train/lr")}
    base, start, steps = 3.5e-4, 0.01, 3  # 3 steps per epoch, warmup over 6 steps
    assert sorted(lrs) == list(range(4 * steps))
    for step, lr in lrs.items():
        expected = base * (start + (1 - start) * step / (2 * steps)) if step < 2 * steps else base
        expected *= 0.1 if step // steps >= 3 else 1.0
        assert lr == pytest.approx(expected, rel=1e-5), step
    quantiles = [r for r in rows if r.get("adam/backbone_q50")]
    # One computation every 2nd batch (Lightning may repeat a callback's value in the next row).
    assert len({r["adam/backbone_q50"] for r in quantiles}) == 4 * steps // 2
    for r in quantiles:
        q10, q50, q90 = (float(r[f"adam/backbone_q{q}"]) for q in ("10", "50", "90"))
        assert 0 < q10 <= q50 <= q90
