"""The project's one error type for bad input, and a one-line summary of a library's error."""

from __future__ import annotations


class InputError(ValueError):
    """Bad input (a file, a config key or value): the message names it and what was expected.

    The command-line entry points print it as one `error:` line; any other exception is a bug
    and keeps its traceback.
    """


def error_summary(err: BaseException) -> str:
    """`Type: first line of the message` (at most 200 characters of it), for one-line errors that
    wrap a library's exception."""
    text = str(err).strip()
    return f"{type(err).__name__}: {text.splitlines()[0][:200] if text else ''}"


class MissingInputError(InputError, FileNotFoundError):
    """An input file or folder that is not there (also a FileNotFoundError)."""


class UnreadableInputError(InputError, OSError):
    """An input file that is there but cannot be read: a corrupt image (also an OSError)."""


class ExistingOutputError(InputError, FileExistsError):
    """An output path that is taken by something this command must not overwrite."""


class UnwritableOutputError(InputError, OSError):
    """An output that cannot be written (full disk, no permission); what was there is kept."""
