"""Where the Hydra configs live: inside the installed package (wheel) or the repository's conf/."""

from __future__ import annotations

from pathlib import Path

_PACKAGE_DIR = Path(__file__).resolve().parent


def config_dir() -> str:
    """Absolute path of the `conf` folder, for `hydra.main` and the compose API."""
    candidates = (_PACKAGE_DIR / "conf", _PACKAGE_DIR.parents[1] / "conf")
    for candidate in candidates:
        if (candidate / "train.yaml").is_file():
            return str(candidate)
    tried = ", ".join(str(c) for c in candidates)
    raise FileNotFoundError(f"reidtricks configs not found (looked for train.yaml in {tried})")
