"""evaluate, extract, search and export take `threads=` as train does: torch's intra-op threads
set first thing (before the checkpoint is read); a bad value is one line naming the key."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

from helpers import compose_config, compose_evaluate
from reidtricks.errors import InputError, MissingInputError

INPUTS = {"extract": ["images=x"], "search": ["query=x", "gallery=x"], "export": []}
COMMANDS = ["evaluate", *INPUTS]


def command(name: str) -> Callable[[Any], Any]:
    from reidtricks.cli.evaluate import evaluate_checkpoint
    from reidtricks.cli.export import export_checkpoint
    from reidtricks.cli.extract import extract_folder
    from reidtricks.cli.search import search_gallery

    return {"evaluate": evaluate_checkpoint, "extract": extract_folder,
            "search": search_gallery, "export": export_checkpoint}[name]  # fmt: skip


def config(name: str, tmp_path: Path, *overrides: str):
    """The command's config for a checkpoint that does not exist."""
    ckpt, out = tmp_path / "missing.ckpt", tmp_path / "out"
    if name == "evaluate":
        return compose_evaluate(ckpt, out, *overrides)
    return compose_config(
        name, f"ckpt={ckpt}", f"paths.output_dir={out}", *INPUTS[name], *overrides
    )


@pytest.fixture
def threads_restored() -> Iterator[int]:
    """torch's thread count before the test, set back after it (the suite runs with 1)."""
    before = torch.get_num_threads()
    yield before
    torch.set_num_threads(before)


@pytest.mark.parametrize("name", COMMANDS)
def test_every_command_composes_threads_null(name, tmp_path):
    assert config(name, tmp_path).threads is None


@pytest.mark.parametrize("name", COMMANDS)
@pytest.mark.parametrize("value", ["0", "-1", "no", "1.5", "true"])
def test_a_bad_threads_value_is_one_line_naming_the_key(name, value, tmp_path, threads_restored):
    with pytest.raises(InputError, match=r"^threads=.*: expected an integer >= 1$") as err:
        command(name)(config(name, tmp_path, f"threads={value}"))
    assert "\n" not in str(err.value)
    assert torch.get_num_threads() == threads_restored and not (tmp_path / "out").exists()


@pytest.mark.parametrize("name", COMMANDS)
def test_threads_is_set_before_the_checkpoint_is_read(name, tmp_path, threads_restored):
    wanted = threads_restored + 1  # not the suite's own setting
    with pytest.raises(MissingInputError, match="missing.ckpt"):
        command(name)(config(name, tmp_path, f"threads={wanted}"))
    assert torch.get_num_threads() == wanted
    torch.set_num_threads(threads_restored)
    with pytest.raises(MissingInputError, match="missing.ckpt"):
        command(name)(config(name, tmp_path, "threads=null"))
    assert torch.get_num_threads() == threads_restored  # null: left as it was
