"""Data set statistics: `python -m reidtricks.stats data=NAME [paths.data_dir=DIR] [format=json]`."""

from __future__ import annotations

import json
from typing import Any

from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from reidtricks.cli.app import hydra_command, one_line_errors
from reidtricks.data.splits import ReIDSplits
from reidtricks.errors import InputError

FORMATS = ("table", "json")


def data_sources(cfg: DictConfig) -> dict[str, Any]:
    """Every train and test source of cfg.data by name (a name in both, with the same settings,
    once; with different settings the test one is named `NAME (test)`)."""
    sources: dict[str, Any] = {}
    for group in ("train_sources", "test_sources"):
        for name, conf in (cfg.data.get(group) or {}).items():
            plain = OmegaConf.to_container(conf, resolve=True)
            if name in sources and sources[name][0] != plain:
                name = f"{name} (test)"
            sources.setdefault(name, (plain, conf))
    return {name: conf for name, (_, conf) in sources.items()}


def split_counts(splits: ReIDSplits) -> dict[str, dict[str, int]]:
    """{"train"|"query"|"gallery": {"ids", "images", "cameras"}, "excluded": {"images"}}."""
    return {**splits.counts(), "excluded": {"images": len(splits.excluded)}}


def keyed_table(key: str, splits: ReIDSplits) -> str:
    """The statistics table headed by the source's key, and its set's name where they differ."""
    table = splits.statistics_table()
    if key == splits.name:
        return table
    head, _, rest = table.partition("\n")
    return f"{key} ({head})\n{rest}"


def run_stats(cfg: DictConfig) -> str:
    """The text to print: the statistics tables, or one JSON object (per source name when the
    config has several sources)."""
    if cfg.format not in FORMATS:
        raise InputError(f"format={cfg.format!r}: expected one of {FORMATS}")
    loaded = {name: instantiate(conf).load() for name, conf in data_sources(cfg).items()}
    if cfg.format == "table":  # each table under its source's key (two keys may hold one set)
        return "\n".join(keyed_table(name, splits) for name, splits in loaded.items())
    counts = {name: split_counts(splits) for name, splits in loaded.items()}
    return json.dumps(next(iter(counts.values())) if len(counts) == 1 else counts)


@hydra_command("stats")
def main(cfg: DictConfig) -> None:
    with one_line_errors():
        print(run_stats(cfg))


if __name__ == "__main__":
    main()
