"""Bad input (missing dataset, bad value, corrupt file) shown as one line, not a traceback."""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager

from reidtricks.errors import InputError


def one_line(err: BaseException) -> str:
    """The error's message; for an error re-raised from a DataLoader worker (whose message holds
    the worker's whole traceback) the original message, which names the file."""
    text = str(err).strip()
    if "Original Traceback" in text:
        last = [line for line in text.splitlines() if line.strip()][-1].strip()
        # "module.Type: message" (the worker's traceback qualifies our own exception types)
        return re.sub(rf"^(?:[\w.]+\.)?{type(err).__name__}: ", "", last)
    return text


@contextmanager
def one_line_errors() -> Iterator[None]:
    """Print `error: <message>` and exit 1 on an InputError; HYDRA_FULL_ERROR=1 re-raises it."""
    try:
        yield
    except Exception as err:
        # Our input checks raise InputError (naming the file, key or value); Hydra's instantiate
        # wraps what a constructor raises. Any other error is a bug and keeps its traceback.
        cause = err.__cause__ if type(err).__name__ == "InstantiationException" else err
        if not isinstance(cause, InputError) or os.environ.get("HYDRA_FULL_ERROR") == "1":
            raise
        print(
            f"error: {one_line(cause)}  (HYDRA_FULL_ERROR=1 shows the traceback)", file=sys.stderr
        )
        raise SystemExit(1) from None
