"""EpochTimer: seconds per training epoch with the validation inside it left out."""

from __future__ import annotations

import itertools

from reidtricks.training import epoch_timer
from reidtricks.training.epoch_timer import EpochTimer


class LogRecorder:
    def __init__(self) -> None:
        self.logged: list[tuple[str, float]] = []

    def log(self, name: str, value: float, **kwargs) -> None:
        self.logged.append((name, value))


def test_epoch_seconds_leave_out_validation(monkeypatch):
    # clock readings, in call order: epoch 1 start 0, validation 4 -> 7, end 10; epoch 2 start 10,
    # end 12.5 (no validation)
    clock = iter([0.0, 4.0, 7.0, 10.0, 10.0, 12.5])
    monkeypatch.setattr(epoch_timer.time, "perf_counter", lambda: next(clock))
    timer, module = EpochTimer(), LogRecorder()
    timer.on_train_epoch_start(None, module)
    timer.on_validation_start(None, module)
    timer.on_validation_end(None, module)
    timer.on_train_epoch_end(None, module)
    timer.on_train_epoch_start(None, module)
    timer.on_train_epoch_end(None, module)
    assert timer.seconds == [10.0 - 3.0, 2.5]
    assert module.logged == [("time/train_epoch_s", 7.0), ("time/train_epoch_s", 2.5)]


def test_sanity_validation_before_training_is_not_counted(monkeypatch):
    clock = itertools.count(0.0, 1.0)  # every reading one second later
    monkeypatch.setattr(epoch_timer.time, "perf_counter", lambda: next(clock))
    timer, module = EpochTimer(), LogRecorder()
    timer.on_validation_start(None, module)  # Lightning's sanity check: 0 -> 1
    timer.on_validation_end(None, module)
    timer.on_train_epoch_end(None, module)  # no epoch started: nothing recorded
    timer.on_train_epoch_start(None, module)  # 2
    timer.on_train_epoch_end(None, module)  # 3
    assert timer.seconds == [1.0]
