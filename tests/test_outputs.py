"""Output paths: an input (the checkpoint, through a symlink too) or a folder is refused before
anything is written."""

from __future__ import annotations

import pytest

from helpers import compose_config
from reidtricks.cli.outputs import checked_output
from reidtricks.errors import InputError


def command_cfg(name: str, *overrides: str):
    return compose_config(name, "num_workers=0", "progress=false", *overrides)


def test_checked_output_refuses_inputs_and_folders(tmp_path):
    ckpt = tmp_path / "model.ckpt"
    ckpt.write_bytes(b"weights")
    link = tmp_path / "link.npz"
    link.symlink_to(ckpt)
    with pytest.raises(InputError, match=rf"out={ckpt}: is the input ckpt={ckpt}"):
        checked_output("out", ckpt, {"ckpt": ckpt})
    with pytest.raises(InputError, match=rf"out={link}: is the input ckpt="):
        checked_output("out", link, {"ckpt": str(ckpt)})
    with pytest.raises(InputError, match=rf"out={tmp_path}: is a folder"):
        checked_output("out", tmp_path, {"ckpt": ckpt})
    assert checked_output("out", tmp_path / "f.npz", {"ckpt": ckpt, "images": None}).name == "f.npz"


@pytest.mark.parametrize("command", ["extract", "export"])
def test_commands_refuse_to_write_over_their_checkpoint(command, untrained_checkpoint, tmp_path):
    checkpoint = untrained_checkpoint
    from reidtricks.cli.export import export_checkpoint
    from reidtricks.cli.extract import extract_folder

    images = tmp_path / "images"
    images.mkdir()
    from PIL import Image

    for i in range(2):
        Image.new("RGB", (32, 64), (40 * i, 80, 120)).save(images / f"000{i}_c1s1_000001_00.jpg")
    before = checkpoint.read_bytes()
    link = tmp_path / "alias.ckpt"
    link.symlink_to(checkpoint)
    run = {"extract": extract_folder, "export": export_checkpoint}[command]
    for out in (checkpoint, link, images):
        cfg = command_cfg(command, f"ckpt={checkpoint}", f"images={images}", f"out={out}",
                          f"paths.output_dir={tmp_path / 'run'}")  # fmt: skip
        with pytest.raises(InputError, match=rf"out={out}: is (the input|a folder)"):
            run(cfg)
    assert checkpoint.read_bytes() == before
    assert sorted(p.name for p in images.iterdir()) == ["0000_c1s1_000001_00.jpg",
                                                        "0001_c1s1_000001_00.jpg"]  # fmt: skip
    assert not (tmp_path / "run").exists()
