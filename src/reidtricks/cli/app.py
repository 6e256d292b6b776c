"""What every command shares: where the Hydra configs are, and bad input (missing dataset, bad
value, corrupt file) shown as one line, not a traceback."""

from __future__ import annotations

import functools
import os
import re
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import hydra
from hydra.errors import CompactHydraException
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


# "1" while a command runs Hydra with HYDRA_FULL_ERROR=1 on its own behalf (see hydra_command),
# so that our checks still print one line; inherited by sweep and DDP worker processes.
_RAISES_FOR_US = "REIDTRICKS_HYDRA_RAISES"


def full_tracebacks() -> bool:
    """Whether the user asked for tracebacks (HYDRA_FULL_ERROR=1), not `hydra_command` for us."""
    return os.environ.get("HYDRA_FULL_ERROR") == "1" and os.environ.get(_RAISES_FOR_US) != "1"


def config_error_line(err: BaseException) -> str:
    """Hydra's multi-line message of a config error (an unknown key or group option, a bad
    override) in one line: lists of options joined by commas, the search path left out."""
    text = str(err)
    if err.__cause__ is not None and str(err.__cause__) not in text:
        text += "\n" + str(err.__cause__)
    parts: list[str] = []
    listing = False
    for line in (raw.strip() for raw in text.splitlines()):
        if line.startswith("Config search path"):
            break
        if not line or line.startswith(("full_key:", "object_type=", "reference_type=")):
            continue
        if listing and not line.endswith(":"):
            parts[-1] += (" " if parts[-1].endswith(":") else ", ") + line
            continue
        listing = line.endswith(":") and not line.startswith("In ")
        parts.append(line.rstrip("."))
    override = getattr(err, "override", None)  # OverrideParseException: the text it could not read
    return (f"{override}: " if override else "") + "; ".join(parts)


def hydra_command(config_name: str) -> Callable[[Callable[[DictConfig], Any]], Callable[[], Any]]:
    """`hydra.main` for the command's config, with Hydra's own config errors (an unknown key,
    trick or experiment, a bad override) as one `error:` line instead of its several lines."""

    def decorate(task: Callable[[DictConfig], Any]) -> Callable[[], Any]:
        hydra_main = hydra.main(
            config_path=config_dir(), config_name=config_name, version_base="1.3"
        )(task)

        @functools.wraps(task)
        def main() -> Any:
            if os.environ.get("HYDRA_FULL_ERROR") == "1":
                return hydra_main()
            # Hydra prints its errors itself unless HYDRA_FULL_ERROR=1, when it raises them.
            os.environ.update({"HYDRA_FULL_ERROR": "1", _RAISES_FOR_US: "1"})
            try:
                return hydra_main()
            except CompactHydraException as err:
                print(f"error: {config_error_line(err)}", file=sys.stderr)
                raise SystemExit(1) from None
            finally:
                os.environ.pop("HYDRA_FULL_ERROR", None)
                os.environ.pop(_RAISES_FOR_US, None)

        return main

    return decorate


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
    if full_tracebacks():
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
