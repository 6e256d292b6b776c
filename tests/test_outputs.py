"""Output paths: an input (the checkpoint through a symlink too, a file under an input folder), a
folder, a file of another run, or an existing file without overwrite=true is refused before
anything is written; outputs are written atomically; search's PNG names fit the file system."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

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


# -- out=: inputs, other runs' files and existing files (issue 32, item 4) -------------------------
def market_images(folder, count: int = 2, suffix: str = ".jpg"):
    """`count` small Market-named images in `folder`, their paths."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f"000{i}_c1s1_00000{i}_00{suffix}" for i in range(count)]
    for i, path in enumerate(paths):
        Image.new("RGB", (32, 64), (40 * i, 80, 120)).save(path)
    return paths


def other_run(root):
    """A finished run's folder: .hydra/, checkpoints/last.ckpt and metrics.json."""
    (root / ".hydra").mkdir(parents=True)
    (root / ".hydra" / "config.yaml").write_text("task_name: train\n")
    (root / "checkpoints").mkdir()
    (root / "checkpoints" / "last.ckpt").write_bytes(b"a checkpoint of 134 MB")
    (root / "metrics.json").write_text('{"mAP": 0.4}\n')
    return root


def run_extract(ckpt, images, tmp_path, *overrides: str):
    from reidtricks.cli.extract import extract_folder

    return extract_folder(command_cfg("extract", f"ckpt={ckpt}", f"images={images}",
                                      f"paths.output_dir={tmp_path / 'run'}", *overrides))  # fmt: skip


@pytest.mark.parametrize("command", ["extract", "export"])
def test_out_is_never_an_input_image(command, untrained_checkpoint, tmp_path):
    from reidtricks.cli.export import export_checkpoint
    from reidtricks.cli.extract import extract_folder

    images = market_images(tmp_path / "images")
    before = images[0].read_bytes()
    run = {"extract": extract_folder, "export": export_checkpoint}[command]
    for overwrite in ("false", "true"):
        cfg = command_cfg(command, f"ckpt={untrained_checkpoint}", f"images={images[0].parent}",
                          f"out={images[0]}", f"overwrite={overwrite}",
                          f"paths.output_dir={tmp_path / 'run'}")  # fmt: skip
        with pytest.raises(
            InputError,
            match=rf"^out={images[0]}: is inside the input folder "
            rf"images={images[0].parent}; .*give an output path",
        ):
            run(cfg)
    assert images[0].read_bytes() == before
    assert sorted(p.name for p in images[0].parent.iterdir()) == sorted(p.name for p in images)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("victim", ["checkpoints/last.ckpt", "metrics.json", "new.npz"])
def test_out_inside_another_run_folder_is_refused_even_with_overwrite(
    victim, untrained_checkpoint, tmp_path
):
    run = other_run(tmp_path / "logs" / "train" / "runs" / "old")
    before = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    images = market_images(tmp_path / "images")[0].parent
    for overwrite in ("false", "true"):
        with pytest.raises(
            InputError,
            match=rf"^out={run / victim}: is inside the run folder "
            rf"{run} \(\.hydra, checkpoints, metrics\.json\)",
        ):
            run_extract(untrained_checkpoint, images, tmp_path, f"out={run / victim}",
                        f"overwrite={overwrite}")  # fmt: skip
    assert {p: p.read_bytes() for p in run.rglob("*") if p.is_file()} == before
    assert not (tmp_path / "run").exists()


def test_an_existing_output_needs_overwrite_true(untrained_checkpoint, tmp_path):
    images = market_images(tmp_path / "images")
    out = tmp_path / "results" / "features.npz"
    out.parent.mkdir()
    out.write_bytes(b"features of another extract")
    with pytest.raises(InputError, match=rf"^out={out}: already exists; give overwrite=true"):
        run_extract(untrained_checkpoint, images[0].parent, tmp_path, f"out={out}")
    assert out.read_bytes() == b"features of another extract"
    run_extract(untrained_checkpoint, images[0].parent, tmp_path, f"out={out}", "overwrite=true")
    with np.load(out, allow_pickle=False) as data:
        assert sorted(str(p) for p in data["paths"]) == sorted(str(p) for p in images)
    assert sorted(p.name for p in out.parent.iterdir()) == ["features.npz"]  # no temporary file
    # The default output in the command's own folder follows the same rule.
    written = tmp_path / "run" / "features.npz"
    run_extract(untrained_checkpoint, images[0].parent, tmp_path)
    with pytest.raises(InputError, match=rf"^out={written}: already exists; give overwrite=true"):
        run_extract(untrained_checkpoint, images[0].parent, tmp_path)
    run_extract(untrained_checkpoint, images[0].parent, tmp_path, "overwrite=true")


def test_a_crash_while_writing_leaves_the_old_file_and_no_temporary(
    untrained_checkpoint, tmp_path, monkeypatch
):
    images = market_images(tmp_path / "images")
    out = tmp_path / "results" / "features.npz"
    out.parent.mkdir()
    out.write_bytes(b"the previous features")

    def crash(handle, **arrays):
        handle.write(b"PK\x03\x04 half an npz")
        raise KeyboardInterrupt

    monkeypatch.setattr(np, "savez", crash)
    with pytest.raises(KeyboardInterrupt):
        run_extract(untrained_checkpoint, images[0].parent, tmp_path, f"out={out}",
                    "overwrite=true")  # fmt: skip
    assert out.read_bytes() == b"the previous features"
    assert sorted(p.name for p in out.parent.iterdir()) == ["features.npz"]


def test_atomic_output_renames_on_success_and_cleans_up_on_failure(tmp_path):
    from reidtricks.inference.files import atomic_output

    target = tmp_path / ("x" * 250 + ".csv")  # the temporary name must fit the file system too
    with atomic_output(target) as tmp:
        assert tmp.parent == tmp_path and tmp != target and len(tmp.name.encode()) <= 255
        tmp.write_text("new")
        assert not target.exists()
    assert target.read_text() == "new" and list(tmp_path.iterdir()) == [target]
    with pytest.raises(RuntimeError, match="disk gone"), atomic_output(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("disk gone")
    assert target.read_text() == "new" and list(tmp_path.iterdir()) == [target]


def test_out_in_a_folder_that_is_a_file_is_one_line(untrained_checkpoint, tmp_path):
    (tmp_path / "notes.txt").write_text("x")
    out = tmp_path / "notes.txt" / "features.npz"
    with pytest.raises(InputError, match=rf"^out={out}: {tmp_path / 'notes.txt'} is a file; "):
        run_extract(untrained_checkpoint, market_images(tmp_path / "images")[0], tmp_path,
                    f"out={out}")  # fmt: skip


# -- search's outputs (issue 32, item 8) ------------------------------------------------------------
def run_search(ckpt, query, gallery, tmp_path, *overrides: str):
    from reidtricks.cli.search import search_gallery

    return search_gallery(command_cfg("search", f"ckpt={ckpt}", f"query={query}",
                                      f"gallery={gallery}", f"cache_dir={tmp_path / 'cache'}",
                                      f"paths.output_dir={tmp_path / 'run'}", "print_queries=0",
                                      *overrides))  # fmt: skip


def test_search_with_a_250_character_query_name(untrained_checkpoint, tmp_path):
    gallery = market_images(tmp_path / "gallery", 3)[0].parent
    queries = tmp_path / "queries"
    queries.mkdir()
    stems = ["0001_c2s1_" + "a" * 240, "0001_c2s1_" + "a" * 239 + "b", "0002_c2s1_short"]
    for i, stem in enumerate(stems):
        Image.new("RGB", (32, 64), (90, 30 * i, 10)).save(queries / f"{stem}.jpg")
    assert len(f"{stems[0]}.jpg") == 254
    result = run_search(untrained_checkpoint, queries, gallery, tmp_path)
    names = [p.name for p in result["pngs"]]
    assert len(names) == 3 and len(set(names)) == 3
    assert all(
        len(n.encode()) <= 255 and (tmp_path / "run" / "ranked" / n).is_file() for n in names
    )
    assert names[2] == "0002_0002_c2s1_short.png"  # short names are kept as they were
    assert all(n.startswith(f"000{i}_0001_c2s1_aaaa") for i, n in enumerate(names[:2]))
    rows = (tmp_path / "run" / "ranking.csv").read_text().splitlines()
    assert len(rows) == 1 + 3 * 3


def test_png_names_are_short_unique_and_keep_short_stems():
    from reidtricks.cli.search import strip_png_name

    long_a, long_b = "é" * 200 + "a", "é" * 200 + "b"  # 2 bytes a character in UTF-8
    a, b = strip_png_name(7, f"/x/{long_a}.jpg"), strip_png_name(7, f"/x/{long_b}.jpg")
    assert a != b and len(a.encode()) <= 128 and len(b.encode()) <= 128
    assert a.startswith("0007_éé") and a.endswith(".png")
    assert strip_png_name(12, "/x/0001_c1s1_000001_00.jpg") == "0012_0001_c1s1_000001_00.png"


def test_search_never_writes_into_its_gallery_or_another_run(untrained_checkpoint, tmp_path):
    from reidtricks.cli.search import search_gallery

    gallery = market_images(tmp_path / "gallery", 3)[0].parent
    query = market_images(tmp_path / "query", 1)[0]
    run = other_run(tmp_path / "old_run")
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}
    for output_dir, what in ((gallery / "results", "the input folder gallery="),
                             (run / "checkpoints", "the run folder")):  # fmt: skip
        cfg = command_cfg("search", f"ckpt={untrained_checkpoint}", f"query={query}",
                          f"gallery={gallery}", f"cache_dir={tmp_path / 'cache'}",
                          f"paths.output_dir={output_dir}")  # fmt: skip
        with pytest.raises(InputError, match=rf"ranking.csv: is inside {what}"):
            search_gallery(cfg)
    assert {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()} == before
