"""User errors end in one line naming the key, the value or the file (not a traceback), and odd
settings are warned about at start-up."""

from __future__ import annotations

import errno
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from PIL import Image

from helpers import compose_config, compose_evaluate, new_net, tiny_overrides
from reidtricks.cli.app import one_line_errors
from reidtricks.errors import InputError
from reidtricks.inference.checkpoint import load_checkpoint

REPO = Path(__file__).resolve().parents[1]


def compose_cfg(name: str, *overrides: str):
    return compose_config(name, *overrides)


def short_run(data_dir: Path, out: Path, *extra: str):
    return compose_cfg(
        "train",
        *tiny_overrides(data_dir, out),
        "++trainer.limit_train_batches=2",
        "trainer.check_val_every_n_epoch=100",
        *extra,
    )


def one_line_of(capsys, run) -> str:
    """What the command prints for `run()`: exactly one `error:` line, exit status 1."""
    with pytest.raises(SystemExit) as exit_info, one_line_errors():
        run()
    assert exit_info.value.code == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("error: "), err
    return err


def test_run_keys_are_checked_before_the_data(tmp_path, capsys):
    from reidtricks.cli.train import train

    nowhere = tmp_path / "no-data"  # the checks come first: no data set is needed to fail
    for override, expected in (
        ("trainer.max_epochs=abc", "trainer.max_epochs='abc': expected an integer >= 0"),
        ("trainer.max_epochs=-1", "trainer.max_epochs=-1: expected an integer >= 0"),
        ("threads=0", "threads=0: expected an integer >= 1"),
    ):
        out = tmp_path / override.split("=")[0]
        err = one_line_of(capsys, lambda o=override, d=out: train(short_run(nowhere, d, o)))
        assert expected in err
        assert not (out / "checkpoints").exists()


def test_start_up_warnings_for_the_schedule_and_the_loss(caplog):
    from reidtricks.training.preflight import check_run_keys

    cfg = compose_cfg("train", "trainer.max_epochs=20", "optim.warmup=true",
                      "optim.warmup_epochs=30", "optim.milestones=[10,40]", "loss.id_weight=0",
                      "loss.triplet_weight=0", "paths.output_dir=unused")  # fmt: skip
    with caplog.at_level(logging.WARNING, logger="reidtricks"):
        check_run_keys(cfg)
    lines = [r.getMessage() for r in caplog.records]
    assert lines == [
        "optim.milestones [40]: at or beyond trainer.max_epochs=20, the LR never drops there",
        "optim.warmup_epochs=30: beyond trainer.max_epochs=20, training ends inside the warmup",
        "loss.id_weight/triplet_weight/center_weight are all 0: the loss is 0 and nothing is "
        "learned",
    ]
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="reidtricks"):
        check_run_keys(compose_cfg("train", "paths.output_dir=unused"))  # the defaults
    assert caplog.records == []


def test_evaluate_without_ckpt_and_search_with_a_bad_topk(untrained_checkpoint, tmp_path, capsys):
    from reidtricks.cli.evaluate import evaluate_checkpoint
    from reidtricks.cli.search import search_gallery

    cfg = compose_cfg("evaluate", f"paths.output_dir={tmp_path}")
    err = one_line_of(capsys, lambda: evaluate_checkpoint(cfg))
    assert err.startswith("error: ckpt: missing; give ckpt=VALUE")
    cfg = compose_cfg("search", f"ckpt={untrained_checkpoint}", "topk=abc", f"query={tmp_path}",
                      f"gallery={tmp_path}", f"paths.output_dir={tmp_path / 's'}")  # fmt: skip
    assert "topk='abc': expected an integer >= 1" in one_line_of(
        capsys, lambda: search_gallery(cfg)
    )


def test_checkpoint_paths_that_are_not_files(tmp_path):
    for path, expected in (
        ("https://example.org/model.ckpt", "is a URL; download the file"),
        (str(tmp_path), "is a folder; expected a .ckpt file"),
        ("/dev/null", "is not a regular file"),
    ):
        with pytest.raises(InputError, match=f"checkpoint {path}: {expected}"):
            load_checkpoint(path)


class _Module(torch.nn.Module):
    def __init__(self, backbone: str, num_classes: int) -> None:
        super().__init__()
        self.net = new_net(backbone, num_classes, last_stride=2, neck="none")


@pytest.mark.slow  # trains
def test_resume_onto_another_network_or_a_shorter_run(tmp_path):
    from reidtricks.training.run_safety import check_resume_fits

    stored = _Module("resnet18", 12)
    path = tmp_path / "last.ckpt"
    torch.save({"state_dict": stored.state_dict(), "epoch": 4,
                "reidtricks": {"config": {"model": {"backbone": "resnet18"}}}}, path)  # fmt: skip
    check_resume_fits(path, _Module("resnet18", 12), max_epochs=5)  # 5 epochs done: fits
    with pytest.raises(InputError, match=r"net.classifier.bias: shape \[12\] in the "
                       r"checkpoint of backbone resnet18, shape \[10\] here"):  # fmt: skip
        check_resume_fits(path, _Module("resnet18", 10), max_epochs=10)
    with pytest.raises(InputError, match="do not fit this run's network"):
        check_resume_fits(path, _Module("resnet34", 12), max_epochs=10)
    with pytest.raises(InputError, match=r"finished 5 epochs, beyond trainer.max_epochs=3"):
        check_resume_fits(path, _Module("resnet18", 12), max_epochs=3)


def test_decompression_bomb_is_refused_by_name_and_skipped(untrained_checkpoint, tmp_path,
                                                         monkeypatch, capsys):  # fmt: skip
    from reidtricks.cli.extract import extract_folder
    from reidtricks.data.image_dataset import read_image

    images = tmp_path / "images"
    images.mkdir()
    good = images / "0001_c1s1_000001_00.jpg"
    Image.new("RGB", (32, 64), (90, 20, 200)).save(good)
    bomb = images / "bomb.png"  # over twice the limit: PIL raises DecompressionBombError
    Image.new("RGB", (200, 200)).save(bomb)
    warned = images / "large.png"  # between the limit and twice it: PIL only warns
    Image.new("RGB", (110, 110)).save(warned)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 10_000)
    for path in (bomb, warned):
        with pytest.raises(OSError, match=f"{path}: cannot read image .*decompression bomb"):
            read_image(str(path))
    assert read_image(str(good)).size == (32, 64)
    cfg = compose_cfg("extract", f"ckpt={untrained_checkpoint}", f"images={images}",
                      f"paths.output_dir={tmp_path / 'run'}", "num_workers=0", "progress=false")  # fmt: skip
    err = one_line_of(capsys, lambda: extract_folder(cfg))
    assert "bomb.png: cannot read image" in err and "skip_bad=true" in err
    cfg = compose_cfg("extract", f"ckpt={untrained_checkpoint}", f"images={images}",
                      f"paths.output_dir={tmp_path / 'run'}", "num_workers=0", "progress=false",
                      "skip_bad=true")  # fmt: skip
    summary = extract_folder(cfg)
    assert summary["num_images"] == 1
    assert sorted(Path(b.path).name for b in summary["bad"]) == ["bomb.png", "large.png"]
    assert "warning: skipped 2 unreadable image(s)" in capsys.readouterr().err


def test_a_data_root_that_is_a_file(tmp_path):
    from reidtricks.data.datasets import SyntheticReID

    a_file = tmp_path / "datasets"
    a_file.write_text("x")
    with pytest.raises(InputError, match=f"synthetic root={a_file}: is a file"):
        SyntheticReID(a_file, preset="tiny").load()


def cli(name: str, *args: str) -> str:
    env = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}
    proc = subprocess.run([sys.executable, "-m", f"reidtricks.{name}", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert proc.returncode == 1, proc.stderr[-2000:]
    err = proc.stderr.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    return err


@pytest.mark.slow  # two processes of their own (the command as a user starts it)
def test_cli_log_and_data_roots(tmp_path):
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    err = cli("train", f"paths.log_dir={a_file}", "trainer=cpu")
    assert f"error: paths.log_dir={a_file}: {a_file} is a file; expected a folder" in err
    err = cli("train", f"paths.log_dir={tmp_path / 'logs'}", f"paths.data_dir={a_file}",
              "experiment=demo")  # fmt: skip
    assert f"error: paths.data_dir={a_file}: is a file; expected the folder of datasets" in err
    assert not (tmp_path / "logs").exists()  # refused before Hydra made the run folder


def test_unwritable_log_root(tmp_path, monkeypatch):
    from reidtricks.training.run_safety import check_creatable

    real_access = os.access
    monkeypatch.setattr(
        os, "access", lambda p, mode: False if Path(p) == tmp_path else real_access(p, mode)
    )  # fmt: skip  (root may write anywhere)
    with pytest.raises(InputError, match=f"paths.log_dir={tmp_path / 'logs'}: {tmp_path} is not "
                       "writable"):  # fmt: skip
        check_creatable("paths.log_dir", tmp_path / "logs")


@pytest.mark.slow
def test_a_full_disk_keeps_the_previous_checkpoint(tiny_data_dir, tmp_path, monkeypatch, capsys):
    from reidtricks.cli.train import train

    real_save, calls = torch.save, []

    def full_disk(obj, handle, *args, **kwargs):
        calls.append(obj.get("epoch"))
        if len(calls) > 1:  # the first epoch's last.ckpt is written; the second finds it full
            handle.write(b"partial")
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_save(obj, handle, *args, **kwargs)

    monkeypatch.setattr(torch, "save", full_disk)
    cfg = short_run(tiny_data_dir, tmp_path, "trainer.max_epochs=2", "run_test=false")
    err = one_line_of(capsys, lambda: train(cfg))
    last = tmp_path / "checkpoints" / "last.ckpt"
    assert f"{last}: cannot write the checkpoint (OSError: [Errno 28] No space left" in err
    assert "the previous last.ckpt is kept" in err
    monkeypatch.setattr(torch, "save", real_save)
    assert torch.load(last, weights_only=True)["epoch"] == 0
    assert sorted(p.name for p in last.parent.iterdir()) == ["last.ckpt"]


@pytest.mark.slow
def test_evaluate_never_writes_where_the_checkpoint_says(untrained_checkpoint, tiny_data_dir,
                                                         tmp_path):  # fmt: skip
    from reidtricks.cli.evaluate import evaluate_checkpoint

    raw = torch.load(untrained_checkpoint, weights_only=True)
    elsewhere = tmp_path / "chosen-by-the-checkpoint"
    raw["reidtricks"]["config"]["data"]["test_sources"]["synthetic"].update(
        root=str(elsewhere), preset="tiny"
    )
    raw["reidtricks"]["config"]["data"]["train_sources"]["synthetic"].update(
        root=str(elsewhere), preset="tiny"
    )
    ckpt = tmp_path / "moved.ckpt"
    torch.save(raw, ckpt)
    cfg = compose_evaluate(ckpt, tmp_path / "eval", f"paths.data_dir={tiny_data_dir}",
                           "plot_queries=0", "loader.num_workers=0",
                           "loader.persistent_workers=false")  # fmt: skip
    result = evaluate_checkpoint(cfg)
    assert 0.0 <= result["test_sets"]["synthetic"]["mAP"] <= 1.0
    assert not elsewhere.exists()


@pytest.mark.slow  # one process per command, as a user starts it
def test_hydra_config_errors_are_one_line():
    err = cli("train", "+trick=nope")
    assert err.startswith("error: In 'train': Could not find 'trick/nope'; Available options in "
                          "'trick': baseline, bnneck, center_loss, label_smooth")  # fmt: skip
    err = cli("train", "optim.lrr=1")
    assert "Could not override 'optim.lrr'; To append to your config use +optim.lrr=1" in err
    assert cli("train", "seed=[").startswith("error: seed=[: no viable alternative")
    # a sweep value composed only when its job starts
    err = cli("train", "-m", "+trick=baseline,nope", "trainer.max_epochs=0")
    assert "Could not find 'trick/nope'" in err
    assert "Could not override 'nope'" in cli("evaluate", "ckpt=x.ckpt", "nope=1")


def test_config_error_line_joins_hydras_lines():
    from hydra.errors import ConfigCompositionException, OverrideParseException

    from reidtricks.cli.app import config_error_line

    err = ConfigCompositionException("In 'train': Could not find 'trick/x'\n\nAvailable options in "
                                     "'trick':\n\tbaseline\n\twarmup\nConfig search path:\n\tpkg")  # fmt: skip
    assert config_error_line(err) == (
        "In 'train': Could not find 'trick/x'; Available options in 'trick': baseline, warmup"
    )
    assert config_error_line(OverrideParseException("a=[", "bad input\nSee docs")) == (
        "a=[: bad input; See docs"
    )
