"""Run safety: never run a checkpoint's code, never lose a run, find bad settings at start-up,
resume exactly."""

from __future__ import annotations

import errno
import json
import logging
import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from helpers import compose_evaluate, compose_train, new_net, tiny_overrides
from reidtricks.cli.train import train
from reidtricks.data.datamodule import TestSet
from reidtricks.errors import InputError
from reidtricks.inference.checkpoint import load_checkpoint
from reidtricks.training.run_safety import atomic_torch_save, claimed_run_dir, resolve_resume_path

REPO = Path(__file__).resolve().parents[1]


def short_run(data_dir: Path, out: Path, *extra: str):
    """The tiny demo config: 2 batches per epoch, no validation unless asked."""
    return compose_train(
        *tiny_overrides(data_dir, out),
        "++trainer.limit_train_batches=2",
        "trainer.check_val_every_n_epoch=100",
        "trainer.log_every_n_steps=1",
        *extra,
    )


@pytest.fixture(scope="module")
def tiny_checkpoint(tiny_data_dir, tmp_path_factory) -> Path:
    """A checkpoint as training writes it (plain data), for an untrained ResNet-18 on tiny."""
    out = tmp_path_factory.mktemp("ckpt")
    cfg = short_run(tiny_data_dir, out, "+trick=bnneck")
    config = OmegaConf.to_container(cfg, resolve=True)
    net = new_net("resnet18", num_classes=12, last_stride=1, neck="bnneck")
    checkpoint = {
        "state_dict": {f"net.{k}": v for k, v in net.state_dict().items()},
        "reidtricks": {"config": config, "stage": "bnneck", "seed": 0, "num_classes": 12},
    }
    path = out / "model.ckpt"
    torch.save(checkpoint, path)
    return path


def tampered(path: Path, tmp_path: Path, edit) -> Path:
    checkpoint = torch.load(path, weights_only=True)
    edit(checkpoint["reidtricks"]["config"])
    bad = tmp_path / "tampered.ckpt"
    torch.save(checkpoint, bad)
    return bad


# -- 1. a checkpoint is data ---------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("where", ["data.loader", "model", "data.test_sources.synthetic"])
def test_evaluate_refuses_code_named_in_a_checkpoint(where, tiny_checkpoint, tmp_path):
    from reidtricks.cli.evaluate import evaluate_checkpoint

    victim = tmp_path / "written_by_checkpoint.txt"
    payload = {"_target_": "pathlib.Path.write_text", "self": str(victim), "data": "pwned"}

    def edit(config):
        if where == "model":
            config["model"]["_target_"] = "pathlib.Path.write_text"
            config["model"]["self"] = str(victim)
            return
        parent, key = where.rsplit(".", 1)
        target = config
        for part in parent.split("."):
            target = target[part]
        target[key] = {**target[key], **payload}

    bad = tampered(tiny_checkpoint, tmp_path, edit)
    out = tmp_path / "eval"
    with pytest.raises(InputError, match=r"_target_='pathlib.Path.write_text'"):
        evaluate_checkpoint(compose_evaluate(bad, out, "plot_queries=0"))
    assert not victim.exists()
    assert not (out / "metrics.json").exists()


@pytest.mark.slow
def test_evaluate_rebuilds_test_sets_from_fields_and_honours_data_dir(
    tiny_checkpoint, tiny_data_dir, tmp_path, monkeypatch
):
    from reidtricks.cli.evaluate import evaluate_checkpoint

    # The stored root points nowhere; REIDTRICKS_DATA_DIR names where the data are now.
    def move(config):
        config["data"]["test_sources"]["synthetic"]["root"] = str(tmp_path / "moved-away")

    moved = tampered(tiny_checkpoint, tmp_path, move)
    monkeypatch.setenv("REIDTRICKS_DATA_DIR", str(tiny_data_dir))
    result = evaluate_checkpoint(compose_evaluate(moved, tmp_path / "e1", "plot_queries=0"))
    assert 0.0 <= result["test_sets"]["synthetic"]["mAP"] <= 1.0
    assert not (tmp_path / "moved-away").exists()  # nothing generated at the stored root


@pytest.mark.slow
def test_evaluate_cross_domain_form_with_data_override(tiny_checkpoint, tiny_data_dir, tmp_path):
    """`evaluate ckpt=... data=NAME` composes (it needs `seed`) and evaluates that data set."""
    from reidtricks.cli.evaluate import evaluate_checkpoint

    cfg = compose_evaluate(
        tiny_checkpoint,
        tmp_path,
        "data=synthetic",
        f"paths.data_dir={tiny_data_dir}",
        "data.train_sources.synthetic.preset=tiny",
        "data.loader.num_workers=0",
        "data.loader.persistent_workers=false",
        "plot_queries=0",
    )
    result = evaluate_checkpoint(cfg)
    assert set(result["test_sets"]) == {"synthetic"}


# -- 2. resume never unpickles -------------------------------------------------------------------
class _Payload:
    def __init__(self, victim: str) -> None:
        self.victim = victim

    def __reduce__(self):
        return (Path.write_text, (Path(self.victim), "pwned"))


def test_resume_refuses_urls_and_pickled_files(tmp_path):
    with pytest.raises(InputError, match="resuming from a URL is refused"):
        resolve_resume_path("http://127.0.0.1:9/last.ckpt", tmp_path, "train")
    victim = tmp_path / "ran.txt"
    payload = tmp_path / "payload.ckpt"
    with open(payload, "wb") as handle:
        pickle.dump({"state_dict": {}, "x": _Payload(str(victim))}, handle)
    with pytest.raises(InputError, match="payload.ckpt: cannot be read as a weights-only"):
        resolve_resume_path(str(payload), tmp_path, "train")
    assert not victim.exists()
    with pytest.raises(InputError, match="ckpt_path=last: no last.ckpt under"):
        resolve_resume_path("last", tmp_path / "logs", "demo")


# -- 3. one run per folder -----------------------------------------------------------------------
def test_run_folder_claim(tmp_path, monkeypatch):
    with claimed_run_dir(tmp_path):
        (tmp_path / ".run.lock").write_text("1")  # pid 1 is alive: another live run
        with pytest.raises(InputError, match="is in use by another run"), claimed_run_dir(tmp_path):
            pass
        (tmp_path / ".run.lock").write_text(str(os.getpid()))
    assert not (tmp_path / ".run.lock").exists()
    (tmp_path / ".run.lock").write_text("999999999")  # a dead run's lock is taken over
    with claimed_run_dir(tmp_path):
        assert (tmp_path / ".run.lock").read_text() == str(os.getpid())
        # A DDP rank > 0 runs in rank 0's folder: it neither takes nor fails on the lock.
        monkeypatch.setenv("LOCAL_RANK", "1")
        with claimed_run_dir(tmp_path):
            assert (tmp_path / ".run.lock").read_text() == str(os.getpid())
        monkeypatch.delenv("LOCAL_RANK")


@pytest.mark.slow
def test_two_runs_started_together_get_their_own_folders(tiny_data_dir, tmp_path):
    logs = tmp_path / "logs"
    command = [sys.executable, "-m", "reidtricks.train", "experiment=demo", "trainer.max_epochs=0",
               f"paths.data_dir={tiny_data_dir}", f"paths.log_dir={logs}", "run_test=false",
               "data.train_sources.synthetic.preset=tiny", "data.sampler.p=4",
               "data.loader.num_workers=0", "data.loader.persistent_workers=false",
               "logger=csv"]  # fmt: skip
    procs = [
        subprocess.Popen(
            [*command, f"seed={i}"],
            cwd=REPO,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(2)
    ]
    for proc in procs:
        assert proc.wait(timeout=300) == 0, proc.stderr.read()
    folders = sorted((logs / "demo" / "runs").iterdir())
    assert len(folders) == 2
    seeds = sorted(json.loads((f / "metrics.json").read_text())["seed"] for f in folders)
    assert seeds == [0, 1]


# -- 4, 5. checkpoints every epoch, atomically ---------------------------------------------------
@pytest.mark.slow
def test_last_checkpoint_every_epoch_without_validation(tiny_data_dir, tmp_path):
    metrics = train(short_run(tiny_data_dir, tmp_path, "trainer.max_epochs=2", "run_test=false"))
    last = tmp_path / "checkpoints" / "last.ckpt"
    assert last.is_file()  # no validation ran, the weights are saved all the same
    assert torch.load(last, weights_only=True)["epoch"] == 1
    assert metrics["best_checkpoint"] is None


@pytest.mark.slow
def test_metrics_name_the_final_weights_checkpoint(tiny_data_dir, tmp_path):
    metrics = train(
        short_run(
            tiny_data_dir, tmp_path, "trainer.max_epochs=2", "trainer.check_val_every_n_epoch=1"
        )
    )
    written = json.loads((tmp_path / "metrics.json").read_text())
    assert written["checkpoint"] == str(tmp_path / "checkpoints" / "last.ckpt")
    assert torch.load(written["checkpoint"], weights_only=True)["epoch"] == 1
    assert metrics["best_checkpoint"] and "best-epoch" in metrics["best_checkpoint"]


def test_atomic_save_keeps_the_old_file_on_a_failed_write(tmp_path, monkeypatch):
    path = tmp_path / "last.ckpt"
    atomic_torch_save({"epoch": 1}, path)
    real_save = torch.save

    def full_disk(obj, handle):
        real_save(obj, handle)
        handle.truncate(10)
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch, "save", full_disk)
    with pytest.raises(OSError, match="No space left"):
        atomic_torch_save({"epoch": 2}, path)
    monkeypatch.setattr(torch, "save", real_save)
    assert torch.load(path, weights_only=True) == {"epoch": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["last.ckpt"]


# -- 6, 7, 13. found at start-up, not after training --------------------------------------------
@pytest.mark.slow
def test_bad_eval_settings_fail_before_training(tiny_data_dir, tmp_path):
    for override, key in (("eval.metric=cosin", "eval.metric"), ("eval.protocol=duke", "eval.protocol"),
                          ("+eval_variants.x.k1=0", "eval_variants.x.k1"), ("optim.lr=abc", "optim.lr"),
                          ("seed=abc", "seed")):  # fmt: skip
        out = tmp_path / key
        with pytest.raises(InputError, match=key.replace(".", r"\.")):
            train(short_run(tiny_data_dir, out, "trainer.max_epochs=1", override))
        assert not (out / "checkpoints").exists()


def test_test_set_without_valid_queries_fails_at_start(tmp_path):
    from reidtricks.training.preflight import check_test_sets

    only_same_camera = TestSet("mine", [("q.jpg", 1, 0)], [("g.jpg", 1, 0), ("h.jpg", 2, 1)])
    with pytest.raises(InputError, match="test set mine: none of its 1 queries"):
        check_test_sets([only_same_camera])


def test_start_up_warnings(caplog):
    from reidtricks.training.preflight import check_test_sets, warn_small_identities

    test_set = TestSet("mine", [("q1.jpg", 1, 0), ("q2.jpg", 3, 0)], [("g", 1, 1), ("h", 3, 0)])
    with caplog.at_level(logging.WARNING, logger="reidtricks"):
        check_test_sets([test_set])
        assert warn_small_identities([("a", 1, 0)] * 4 + [("b", 2, 0)] * 3, k=4) == 1
    text = caplog.text
    assert "test set mine: 1 of 2 queries have no valid gallery match" in text
    assert "1 of 2 training identities have fewer than K=4 images" in text


@pytest.mark.slow
def test_max_epochs_zero_warns(tiny_data_dir, tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="reidtricks"):
        train(short_run(tiny_data_dir, tmp_path, "trainer.max_epochs=0", "run_test=false"))
    assert "trainer.max_epochs=0: no training epoch will run" in caplog.text


@pytest.mark.slow
def test_verify_images_names_a_corrupt_image(tiny_data_dir, tmp_path):
    import shutil

    data = tmp_path / "data"
    shutil.copytree(tiny_data_dir, data)
    query = next(data.glob("synthetic-tiny-seed0/**/query/*.jpg"))
    query.write_bytes(b"\xff\xd8 broken")
    cfg = short_run(data, tmp_path / "run", "trainer.max_epochs=1", "data.verify_images=true")
    with pytest.raises(OSError, match=rf"{query.name}: cannot read image"):
        train(cfg)
    assert not (tmp_path / "run" / "checkpoints").exists()


@pytest.mark.slow
def test_divergence_stops_at_the_first_non_finite_loss(tiny_data_dir, tmp_path):
    cfg = short_run(tiny_data_dir, tmp_path, "trainer.max_epochs=3", "optim.lr=1e30")
    with pytest.raises(
        InputError, match=r"training diverged: loss_\w+=(nan|inf).* at step \d+ .*lr=1e\+30"
    ):
        train(cfg)


# -- 8. resume reaches the same weights ---------------------------------------------------------
@pytest.mark.slow
def test_resume_reaches_the_same_final_weights(tiny_data_dir, tmp_path):
    common = (
        "+trick=center_loss",
        "optim.warmup_epochs=2",
        "optim.milestones=[2]",
        "run_test=false",
    )
    straight = tmp_path / "straight"
    train(short_run(tiny_data_dir, straight, "trainer.max_epochs=3", *common))
    first = tmp_path / "logs" / "demo" / "runs" / "first"
    train(short_run(tiny_data_dir, first, "trainer.max_epochs=2", *common))
    resumed = tmp_path / "resumed"
    metrics = train(
        short_run(
            tiny_data_dir,
            resumed,
            "trainer.max_epochs=3",
            *common,
            f"paths.log_dir={tmp_path / 'logs'}",
            "ckpt_path=last",
        )
    )
    assert metrics["resumed_from"] == str(first / "checkpoints" / "last.ckpt")
    assert (resumed / "resumed_from").resolve() == first.resolve()
    a = torch.load(straight / "checkpoints" / "last.ckpt", weights_only=True)
    b = torch.load(resumed / "checkpoints" / "last.ckpt", weights_only=True)
    assert a["epoch"] == b["epoch"] == 2
    assert a["state_dict"].keys() == b["state_dict"].keys()
    for key, value in a["state_dict"].items():
        assert torch.equal(value, b["state_dict"][key]), key
    assert load_checkpoint(resumed / "checkpoints" / "last.ckpt")["rng_states"]["torch"].numel()


# -- 9. worker errors in one line -----------------------------------------------------------------
def test_dataloader_worker_error_is_one_line(tmp_path):
    from torch.utils.data import DataLoader

    from reidtricks.cli.app import one_line
    from reidtricks.data.image_dataset import ImageDataset

    bad = tmp_path / "0001_c1s1_000001_00.jpg"
    bad.write_bytes(b"not a jpeg")
    loader = DataLoader(ImageDataset([(str(bad), 1, 0)]), batch_size=1, num_workers=1)
    batches = iter(loader)
    with pytest.raises(OSError) as info:
        next(batches)
    message, line = str(info.value), one_line(info.value)
    # The error's traceback keeps the iterator in a reference cycle: left to a later garbage
    # collection, its worker's shutdown waits 5 s (the queues go first), so stop it now.
    batches._shutdown_workers()
    assert "Traceback" in message  # what torch re-raises holds the worker's traceback
    assert "\n" not in line
    assert line.startswith(f"{bad}: cannot read image")
