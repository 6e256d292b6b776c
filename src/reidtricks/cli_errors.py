"""Bad input (missing dataset, bad value, corrupt file) shown as one line, not a traceback."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager

# What our input checks raise; each message names the file, key or value and what was expected.
INPUT_ERRORS = (FileNotFoundError, FileExistsError, ValueError, OSError)


@contextmanager
def one_line_errors() -> Iterator[None]:
    """Print `error: <message>` and exit 1 on an input error; HYDRA_FULL_ERROR=1 re-raises it."""
    try:
        yield
    except INPUT_ERRORS as err:
        if os.environ.get("HYDRA_FULL_ERROR") == "1":
            raise
        print(f"error: {err}  (HYDRA_FULL_ERROR=1 shows the traceback)", file=sys.stderr)
        raise SystemExit(1) from None
