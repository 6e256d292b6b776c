"""What every command shares: where the Hydra configs are, and bad input (missing dataset, bad
value, corrupt file) shown as one line, not a traceback."""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from omegaconf import DictConfig
from omegaconf.errors import MissingMandatoryValue

from reidtricks.cli.schemas import register_schemas
from reidtricks.errors import InputError, MissingInputError
from reidtricks.inference import BadImage, FeatureExtractor

_PACKAGE_DIR = Path(__file__).resolve().parents[1]
register_schemas()  # conf/'s groups build on the typed settings' defaults


def config_dir() -> str:
    """Absolute path of the `conf` folder (inside the installed package or the repository's),
    for `hydra.main` and the compose API."""
    candidates = (_PACKAGE_DIR / "conf", _PACKAGE_DIR.parents[1] / "conf")
    for candidate in candidates:
        if (candidate / "train.yaml").is_file():
            return str(candidate)
    tried = ", ".join(str(c) for c in candidates)
    raise MissingInputError(f"reidtricks configs not found (looked for train.yaml in {tried})")


def one_line(err: BaseException) -> str:
    """The error's message; for an error re-raised from a DataLoader worker (whose message holds
    the worker's whole traceback) the original message, which names the file."""
    text = str(err).strip()
    if "Original Traceback" in text:
        last = [line for line in text.splitlines() if line.strip()][-1].strip()
        # "module.Type: message" (the worker's traceback qualifies our own exception types)
        return re.sub(rf"^(?:[\w.]+\.)?{type(err).__name__}: ", "", last)
    return text


def input_error_message(err: BaseException) -> str | None:
    """The one-line message of a user error (an InputError, also wrapped by Hydra's instantiate);
    None for any other error (a bug, which keeps its traceback) or when HYDRA_FULL_ERROR=1."""
    cause = err.__cause__ if type(err).__name__ == "InstantiationException" else err
    if os.environ.get("HYDRA_FULL_ERROR") == "1":
        return None
    if isinstance(cause, MissingMandatoryValue):  # a `???` key the command needs
        return f"{cause.full_key}: missing; give {cause.full_key}=VALUE"
    return one_line(cause) if isinstance(cause, InputError) else None


@contextmanager
def one_line_errors() -> Iterator[None]:
    """Print `error: <message>` and exit 1 on an InputError; HYDRA_FULL_ERROR=1 re-raises it."""
    try:
        yield
    except Exception as err:
        # Our input checks raise InputError (naming the file, key or value); Hydra's instantiate
        # wraps what a constructor raises. Any other error is a bug and keeps its traceback.
        message = input_error_message(err)
        if message is None:
            raise
        print(f"error: {message}  (HYDRA_FULL_ERROR=1 shows the traceback)", file=sys.stderr)
        raise SystemExit(1) from None


def extractor_from_config(cfg: DictConfig, device: str | None = None) -> FeatureExtractor:
    """The checkpoint's extractor with the command's overrides (feature, flip, device, batch)."""
    return FeatureExtractor.from_checkpoint(
        cfg.ckpt,
        device=device or str(cfg.device),
        batch_size=int(cfg.batch_size),
        flip=cfg.get("flip"),
        feature=cfg.get("feature"),
    )


def warn_bad_images(bad: list[BadImage], where: str) -> None:
    """A warning on stderr listing the unreadable images (the first 10 shown; all in `where`)."""
    if not bad:
        return
    shown = "; ".join(b.error for b in bad[:10])
    more = f"; and {len(bad) - 10} more" if len(bad) > 10 else ""
    print(
        f"warning: skipped {len(bad)} unreadable image(s), listed in {where}: {shown}{more}",
        file=sys.stderr,
    )
