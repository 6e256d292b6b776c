"""Ctrl-C (SIGINT) that stops: the job and the sweep end at once, in one line naming the last
checkpoint (written atomically, so an interrupted save leaves the previous one intact)."""

from __future__ import annotations

import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType

INTERRUPTED_EXIT = 130  # 128 + SIGINT, as a shell reports a process stopped by Ctrl-C


class InterruptFlag:
    """Whether SIGINT arrived while a job ran (whatever the exception it turned into)."""

    def __init__(self) -> None:
        self.hit = False

    def handle(self, signum: int, frame: FrameType | None) -> None:
        self.hit = True
        raise KeyboardInterrupt


@contextmanager
def noted_interrupts() -> Iterator[InterruptFlag]:
    """Note SIGINT (and still raise KeyboardInterrupt) while the block runs; the previous handler
    comes back after it. Outside the main thread it only yields the flag."""
    flag = InterruptFlag()
    try:
        previous = signal.signal(signal.SIGINT, flag.handle)
    except ValueError:  # not the main thread: signals cannot be handled here
        yield flag
        return
    try:
        yield flag
    finally:
        signal.signal(signal.SIGINT, previous)


def stop_interrupted(output_dir: str | Path) -> None:
    """One line on stderr naming the job's last checkpoint (if any), then exit 130: a sweep stops
    here rather than start its next job."""
    last = Path(output_dir) / "checkpoints" / "last.ckpt"
    kept = (
        f"its last checkpoint {last} is intact; resume with ckpt_path={last}"
        if last.is_file()
        else "no checkpoint was written yet"
    )
    print(f"interrupted (Ctrl-C): {output_dir} stopped, {kept}", file=sys.stderr)
    raise SystemExit(INTERRUPTED_EXIT)
