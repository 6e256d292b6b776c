"""Bad input (missing dataset, bad value, corrupt file) shown as one line, not a traceback."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager

# What our input checks raise; each message names the file, key or value and what was expected.
INPUT_ERRORS = (FileNotFoundError, FileExistsError, ValueError, OSError)


def one_line(err: BaseException) -> str:
    """The error's message; for an error re-raised from a DataLoader worker (whose message holds
    the worker's whole traceback) the original message, which names the file."""
    text = str(err).strip()
    if "Original Traceback" in text:
        last = [line for line in text.splitlines() if line.strip()][-1].strip()
        prefix = f"{type(err).__name__}: "
        return last.removeprefix(prefix)
    return text


@contextmanager
def one_line_errors() -> Iterator[None]:
    """Print `error: <message>` and exit 1 on an input error; HYDRA_FULL_ERROR=1 re-raises it."""
    try:
        yield
    except INPUT_ERRORS as err:
        if os.environ.get("HYDRA_FULL_ERROR") == "1":
            raise
        print(f"error: {one_line(err)}  (HYDRA_FULL_ERROR=1 shows the traceback)", file=sys.stderr)
        raise SystemExit(1) from None
