"""docs/EXTENDING.md: every file it names exists (or, for a file the reader creates, its folder
does), and its dataset recipe, taken from the page as written, trains and evaluates."""

from __future__ import annotations

import re
import types
from pathlib import Path

import pytest
import yaml
from omegaconf import OmegaConf, open_dict

from helpers import compose_evaluate, compose_train, tiny_overrides
from reidtricks.data import datasets
from reidtricks.errors import InputError

REPO = Path(__file__).resolve().parents[1]
PAGE = (REPO / "docs" / "EXTENDING.md").read_text()
NEW_FILE = re.compile(r"(NAME|toy)")  # files the reader creates


def named_paths() -> list[str]:
    return sorted(set(re.findall(r"`((?:src|conf|tests|docs)/[\w./-]+)`", PAGE)))


def section(title: str) -> str:
    return PAGE.split(f"## {title}\n", 1)[1].split("\n## ", 1)[0]


def code_blocks(text: str, language: str) -> list[str]:
    blocks = re.findall(rf"```{language}\n(.*?)```", text, flags=re.S)
    return [re.sub(r"^ {3}", "", b, flags=re.M) for b in blocks]  # list-item indentation


def test_every_path_the_page_names_exists():
    paths = named_paths()
    assert len(paths) > 20
    for path in paths:
        target = REPO / path
        where = target.parent if NEW_FILE.search(target.name) else target
        assert where.exists(), path


@pytest.mark.slow
def test_the_dataset_recipe_works_as_written(tiny_data_dir, tmp_path, monkeypatch):
    from reidtricks.cli.evaluate import evaluate_checkpoint
    from reidtricks.cli.train import train

    recipe = section("A dataset")
    [source], [entry] = code_blocks(recipe, "python"), code_blocks(recipe, "yaml")
    module = types.ModuleType("reidtricks.data.datasets.toy")
    exec(compile(source, "docs/EXTENDING.md", "exec"), module.__dict__)  # step 1
    monkeypatch.setattr(datasets, "Toy", module.Toy, raising=False)  # step 2
    monkeypatch.setattr(datasets, "__all__", [*datasets.__all__, "Toy"])

    node = yaml.safe_load(entry)  # step 3, pointed at the tiny synthetic set
    assert node["_target_"] == "reidtricks.data.datasets.Toy"
    node["folder"] = "synthetic-tiny-seed0"
    run = tmp_path / "run"
    cfg = compose_train(
        *tiny_overrides(tiny_data_dir, run), "trainer.max_epochs=1",
        "++trainer.limit_train_batches=2", "trainer.check_val_every_n_epoch=1",
    )  # fmt: skip
    with open_dict(cfg):  # step 4: train and test on it
        cfg.data.train_sources = {"toy": OmegaConf.create(node)}
        cfg.data.test_sources = {"toy": OmegaConf.create(node)}
    metrics = train(cfg)
    assert metrics["train_sets"] == ["toy"] and 0.0 <= metrics["mAP"] <= 1.0

    ckpt = run / "checkpoints" / "last.ckpt"
    result = evaluate_checkpoint(compose_evaluate(ckpt, tmp_path / "eval", "plot_queries=0"))
    assert result["test_sets"]["toy"]["mAP"] == pytest.approx(metrics["mAP"], abs=1e-6)
    monkeypatch.setattr(datasets, "__all__", [n for n in datasets.__all__ if n != "Toy"])
    with pytest.raises(InputError, match=r"_target_='reidtricks.data.datasets.Toy'"):
        evaluate_checkpoint(compose_evaluate(ckpt, tmp_path / "eval2", "plot_queries=0"))
