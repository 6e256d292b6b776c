"""End to end on the tiny synthetic set: every trick stage trains, metrics.json, checkpoints."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from helpers import compose_evaluate, compose_train, tiny_overrides
from reidtricks.cli.train import train
from reidtricks.evaluation import evaluate
from reidtricks.inference.checkpoint import build_net_from_checkpoint, load_checkpoint

pytestmark = pytest.mark.slow  # trains models: `make test` runs it, `make test-fast` does not

STAGES = ["baseline", "warmup", "rea", "label_smooth", "last_stride", "bnneck", "center_loss"]


@pytest.mark.parametrize("stage", [*STAGES, "rerank"])
def test_every_stage_trains_one_batch_and_evaluates(stage, tiny_data_dir, tmp_path):
    cfg = compose_train(
        *tiny_overrides(tiny_data_dir, tmp_path),
        f"+trick={stage}",
        "trainer.max_epochs=1",
        "trainer.check_val_every_n_epoch=1",
        "++trainer.limit_train_batches=2",
    )
    metrics = train(cfg)
    written = json.loads((tmp_path / "metrics.json").read_text())
    assert written["stage"] == stage == metrics["stage"]
    for key in ("rank1", "rank5", "rank10", "mAP", "mINP"):
        assert 0.0 <= written[key] <= 1.0
    assert written["rank1"] <= written["rank5"] <= written["rank10"]
    assert written["seed"] == 0 and written["wall_time_s"] > 0


@pytest.fixture(scope="module")
def trained_run(tiny_data_dir, tmp_path_factory):
    """A short full-BoT training on tiny (all tricks), shared by the tests below."""
    out = tmp_path_factory.mktemp("run")
    cfg = compose_train(
        *tiny_overrides(tiny_data_dir, out),
        "+trick=center_loss",
        "trainer.max_epochs=8",
        "trainer.check_val_every_n_epoch=4",
        "optim.milestones=[6]",
        "optim.warmup_epochs=2",
        "optim.lr=1e-3",
        "trainer.log_every_n_steps=1",
    )
    metrics = train(cfg)
    return cfg, metrics, out


def test_every_epoch_is_timed_in_the_log_and_metrics(trained_run):
    _, metrics, out = trained_run
    seconds = metrics["train_epoch_s"]
    assert len(seconds) == 8 and all(s > 0 for s in seconds)
    assert sum(seconds) < metrics["wall_time_s"]
    log = next(out.glob("csv/version_*/metrics.csv")).read_text().splitlines()
    col = log[0].split(",").index("time/train_epoch_s")
    logged = [float(r.split(",")[col]) for r in log[1:] if r.split(",")[col]]
    assert [round(s, 2) for s in logged] == seconds


def test_short_training_loss_falls_and_beats_random_features(trained_run):
    cfg, metrics, out = trained_run
    log = next(out.glob("csv/version_*/metrics.csv")).read_text().splitlines()
    header = log[0].split(",")
    col = header.index("train/loss_total")
    losses = [float(r.split(",")[col]) for r in log[1:] if r.split(",")[col]]
    assert len(losses) >= 20
    first, last = sum(losses[:5]) / 5, sum(losses[-5:]) / 5
    assert last < 0.8 * first, (first, last)

    # mAP of random features on the same query/gallery split, averaged over draws.
    from reidtricks.data.datasets import SyntheticReID

    splits = SyntheticReID(cfg.paths.data_dir, preset="tiny", seed=0).load()
    q_pids = torch.tensor([p for _, p, _ in splits.query])
    g_pids = torch.tensor([p for _, p, _ in splits.gallery])
    q_cams = torch.tensor([c for _, _, c in splits.query])
    g_cams = torch.tensor([c for _, _, c in splits.gallery])
    gen = torch.Generator().manual_seed(0)
    random_maps = [
        evaluate(
            torch.rand(len(q_pids), len(g_pids), generator=gen),
            q_pids,
            g_pids,
            q_cams,
            g_cams,
            max_rank=50,
            protocol="market",
        ).mAP
        for _ in range(20)
    ]
    chance = sum(random_maps) / len(random_maps)
    assert metrics["mAP"] > chance + 0.15, (metrics["mAP"], chance)
    assert (out / "training_curves.png").stat().st_size > 1000


def test_checkpoint_is_plain_data_and_reloads_to_identical_features(trained_run):
    _cfg, metrics, out = trained_run
    ckpt_path = out / "checkpoints" / "last.ckpt"
    raw = torch.load(ckpt_path, map_location="cpu", weights_only=True)
    assert raw["reidtricks"]["stage"] == "center_loss"
    assert any(k.startswith("center_loss.") for k in raw["state_dict"])
    net = build_net_from_checkpoint(load_checkpoint(ckpt_path)).eval()
    net2 = build_net_from_checkpoint(load_checkpoint(ckpt_path)).eval()
    x = torch.randn(3, 3, 128, 64)
    with torch.no_grad():
        a, b = net(x), net2(x)
    assert torch.equal(a.feat_after_bn, b.feat_after_bn)
    state = {
        k.removeprefix("net."): v for k, v in raw["state_dict"].items() if k.startswith("net.")
    }
    for key, value in net.state_dict().items():
        assert torch.equal(value, state[key])
    assert metrics["best_checkpoint"] and (out / "checkpoints").is_dir()


def test_checkpoint_errors(trained_run, tmp_path):
    _, _, out = trained_run
    with pytest.raises(FileNotFoundError, match="set ckpt=PATH"):
        load_checkpoint(tmp_path / "missing.ckpt")
    (tmp_path / "corrupt.ckpt").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="corrupt.ckpt: cannot be read as a weights-only"):
        load_checkpoint(tmp_path / "corrupt.ckpt")
    torch.save({"state_dict": {}}, tmp_path / "foreign.ckpt")
    with pytest.raises(ValueError, match="not a reidtricks training checkpoint"):
        load_checkpoint(tmp_path / "foreign.ckpt")
    ckpt = load_checkpoint(out / "checkpoints" / "last.ckpt")
    key = next(k for k in ckpt["state_dict"] if k.endswith("classifier.weight"))
    ckpt["state_dict"][key] = ckpt["state_dict"][key][:-1]
    with pytest.raises(ValueError, match=r"classifier.weight has shape"):
        build_net_from_checkpoint(ckpt, source="x.ckpt")


def test_evaluate_entry_point_on_a_trained_checkpoint(trained_run, tmp_path):
    from reidtricks.cli.evaluate import evaluate_checkpoint

    _cfg, metrics, out = trained_run
    ecfg = compose_evaluate(out / "checkpoints" / "last.ckpt", tmp_path, "plot_queries=3")
    result = evaluate_checkpoint(ecfg)
    # Same weights, same test set and settings as the final test of training.
    assert result["test_sets"]["synthetic"]["mAP"] == pytest.approx(metrics["mAP"], abs=1e-6)
    assert (tmp_path / "metrics.json").is_file()
    assert (tmp_path / "ranked_synthetic.png").stat().st_size > 1000
    OmegaConf.set_struct(ecfg, False)
    rerank_cfg = OmegaConf.merge(ecfg, {"eval": {"rerank": True}, "plot_queries": 0})
    reranked = evaluate_checkpoint(rerank_cfg)
    assert reranked["eval"]["rerank"] is True
    assert 0.0 < reranked["test_sets"]["synthetic"]["mAP"] <= 1.0


def test_mixed_precision_channels_last_and_clipping_run(tiny_data_dir, tmp_path):
    cfg = compose_train(
        *tiny_overrides(tiny_data_dir, tmp_path),
        "+trick=center_loss",
        "trainer.max_epochs=1",
        "trainer.check_val_every_n_epoch=1",
        "++trainer.limit_train_batches=1",
        "trainer.log_every_n_steps=1",
        "trainer.precision=bf16-mixed",
        "channels_last=true",
        "optim.gradient_clip_val=5.0",
        "++trainer.limit_val_batches=0",
        "run_test=false",  # bf16 on CPU is very slow: train one step only
    )
    metrics = train(cfg)
    assert metrics["epochs"] == 1 and (tmp_path / "checkpoints" / "last.ckpt").is_file()
    log = next(tmp_path.glob("csv/version_*/metrics.csv")).read_text()
    assert "train/loss_center" in log.splitlines()[0]


def test_cli_reports_bad_input_in_one_line(tmp_path):
    """A user's view: a missing dataset is one `error:` line naming the paths and the key."""
    command = [sys.executable, "-m", "reidtricks.train", f"paths.data_dir={tmp_path / 'none'}",
               f"paths.log_dir={tmp_path / 'logs'}", "trainer=cpu"]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}
    repo = Path(__file__).resolve().parents[1]
    proc = subprocess.run(command, cwd=repo, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith(f"error: dataset not found: tried {tmp_path / 'none'}")
    assert "market1501/{bounding_box_train,query,bounding_box_test}" in last
    assert "paths.data_dir" in last


def test_one_line_errors_keeps_the_traceback_on_request(monkeypatch, capsys):
    from hydra.errors import InstantiationException

    from reidtricks.cli.app import one_line_errors
    from reidtricks.errors import InputError, MissingInputError

    monkeypatch.delenv("HYDRA_FULL_ERROR", raising=False)
    with pytest.raises(SystemExit) as exit_info, one_line_errors():
        raise InputError("data.sampler.p=0: expected >= 1")
    assert exit_info.value.code == 1
    assert capsys.readouterr().err.startswith("error: data.sampler.p=0: expected >= 1")
    with pytest.raises(SystemExit), one_line_errors():  # as Hydra's instantiate wraps it
        try:
            raise MissingInputError("data/x is not a folder")
        except InputError as err:
            raise InstantiationException("Error in call to target ...") from err
    assert capsys.readouterr().err.startswith("error: data/x is not a folder")
    # A bug is not an input error, even when it is a ValueError or an OSError: traceback kept.
    for bug in (ValueError("bug"), OSError("disk"), KeyError("bug")):
        with pytest.raises(type(bug)), one_line_errors():
            raise bug
    monkeypatch.setenv("HYDRA_FULL_ERROR", "1")
    with pytest.raises(InputError, match="p=0"), one_line_errors():
        raise InputError("data.sampler.p=0: expected >= 1")


def test_eval_variants_come_from_one_feature_extraction(tiny_data_dir, tmp_path, monkeypatch):
    """Every variant is scored from the features of one pass (the final validation, reused), and
    equals what `evaluate` computes for the same checkpoint and settings from scratch."""
    from reidtricks.cli.evaluate import evaluate_checkpoint
    from reidtricks.evaluation.evaluator import Evaluator

    calls = {"steps": 0}
    real_collect = Evaluator.collect

    def counting(self, forward, batch, dataloader_idx):
        calls["steps"] += 1
        return real_collect(self, forward, batch, dataloader_idx)

    monkeypatch.setattr(Evaluator, "collect", counting)
    variants = {"rr": "{rerank: true}", "fl": "{flip: true}", "ft": "{feature: before_bn}"}
    cfg = compose_train(
        *tiny_overrides(tiny_data_dir, tmp_path),
        "+trick=bnneck",
        "trainer.max_epochs=1",
        "trainer.check_val_every_n_epoch=1",
        "++trainer.limit_train_batches=2",
        *(f"+eval_variants.{name}={value}" for name, value in variants.items()),
    )
    metrics = train(cfg)
    num_batches = -(-(18 + 73) // 64)  # tiny: 18 queries + 73 gallery images, batches of 64
    assert calls["steps"] == num_batches  # the validation pass only: no re-extraction
    ckpt = metrics["checkpoint"]
    for name, overrides in (("rr", "eval.rerank=true"), ("fl", "eval.flip=true"),
                            ("ft", "eval.feature=before_bn")):  # fmt: skip
        alone = evaluate_checkpoint(
            compose_evaluate(ckpt, tmp_path / name, overrides, "plot_queries=0")
        )
        got = metrics["variants"][name]["synthetic"]
        for key in ("rank1", "mAP", "mINP"):
            assert got[key] == pytest.approx(alone["test_sets"]["synthetic"][key], abs=1e-6)
    # `evaluate` scores the same variants from one extraction too.
    calls["steps"] = 0
    together = evaluate_checkpoint(
        compose_evaluate(
            ckpt,
            tmp_path / "all",
            "plot_queries=0",
            "loader.test_batch_size=64",  # as in training: the same number of batches
            *(f"+variants.{name}={value}" for name, value in variants.items()),
        )
    )
    assert calls["steps"] == num_batches
    for name in variants:
        for key in ("rank1", "mAP", "mINP"):
            assert together["variants"][name]["synthetic"][key] == pytest.approx(
                metrics["variants"][name]["synthetic"][key], abs=1e-6
            )
