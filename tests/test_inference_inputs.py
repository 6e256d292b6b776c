"""What extract and search read: TIFF files, hidden files counted, a gallery that is a file, and a
query that is the gallery's only image (issue 32's weak lines), on an untrained checkpoint."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from helpers import compose_config
from reidtricks.errors import InputError
from reidtricks.inference import list_image_files


def command_cfg(name: str, ckpt, tmp_path, *overrides: str):
    return compose_config(name, f"ckpt={ckpt}", f"paths.output_dir={tmp_path / 'run'}",
                          "num_workers=0", "progress=false", *overrides)  # fmt: skip


def save(path, shade: int = 0):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (32, 64), (shade, 80, 120)).save(path)
    return path


def test_extract_reads_tiff_files(untrained_checkpoint, tmp_path):
    from reidtricks.cli.extract import extract_folder

    tif = save(tmp_path / "images" / "0001_c1s1_000001_00.tif", 10)
    tiff = save(tmp_path / "images" / "0002_c2s1_000001_00.TIFF", 200)
    summary = extract_folder(command_cfg("extract", untrained_checkpoint, tmp_path,
                                         f"images={tif.parent}"))  # fmt: skip
    assert summary["num_images"] == 2 and summary["others"] == 0
    with np.load(summary["out"], allow_pickle=False) as data:
        assert [str(p) for p in data["paths"]] == [str(tif), str(tiff)]
        assert data["pids"].tolist() == [1, 2] and data["camids"].tolist() == [0, 1]
        assert not np.allclose(data["features"][0], data["features"][1])


def test_hidden_images_are_counted_and_reported(untrained_checkpoint, tmp_path, capsys):
    from reidtricks.cli.extract import extract_folder

    root = tmp_path / "images"
    shown = save(root / "0001_c1s1_000001_00.jpg")
    save(root / ".0002_c1s1_000001_00.jpg")  # a hidden image
    save(root / ".thumbs" / "0003_c1s1_000001_00.png")  # an image in a hidden folder
    save(root / ".thumbs" / "deeper" / "0004_c1s1_000001_00.png")
    (root / ".DS_Store").write_bytes(b"\0")  # hidden, not an image: not counted as one
    (root / "notes.txt").write_text("not an image")
    listing = list_image_files(root, "images")
    assert listing.paths == [shown] and listing.others == 1 and listing.hidden == 3
    capsys.readouterr()
    summary = extract_folder(command_cfg("extract", untrained_checkpoint, tmp_path,
                                         f"images={root}"))  # fmt: skip
    assert summary["num_images"] == 1 and summary["hidden"] == 3
    lines = capsys.readouterr().out.splitlines()
    assert sum("3 hidden images skipped (a name or folder starting with '.')" in ln
               for ln in lines) == 1  # fmt: skip
    # A hidden file named on its own is read; a folder of hidden images only says so.
    assert list_image_files(root / ".0002_c1s1_000001_00.jpg").paths[0].name.startswith(".")
    only_hidden = tmp_path / "only_hidden"
    save(only_hidden / ".a.jpg")
    save(only_hidden / ".b.jpg")
    with pytest.raises(InputError, match=r"images=.*only_hidden: holds no image files .*; "
                                         r"2 hidden images skipped"):  # fmt: skip
        list_image_files(only_hidden, "images")


def test_search_gallery_that_is_a_file_says_so(untrained_checkpoint, tmp_path):
    from reidtricks.cli.search import search_gallery

    image = save(tmp_path / "0001_c1s1_000001_00.jpg")
    cfg = command_cfg("search", untrained_checkpoint, tmp_path, f"query={image}",
                      f"gallery={image}", f"cache_dir={tmp_path / 'cache'}")  # fmt: skip
    with pytest.raises(InputError, match=rf"^gallery={image}: is a file, expected a folder of "):
        search_gallery(cfg)
    missing = tmp_path / "missing"
    cfg = command_cfg("search", untrained_checkpoint, tmp_path, f"query={image}",
                      f"gallery={missing}", f"cache_dir={tmp_path / 'cache'}")  # fmt: skip
    with pytest.raises(FileNotFoundError, match=rf"^gallery={missing}: no such folder"):
        search_gallery(cfg)


def test_a_query_that_is_the_only_gallery_image_is_refused(untrained_checkpoint, tmp_path):
    from reidtricks.cli.search import search_gallery

    image = save(tmp_path / "gallery" / "0001_c1s1_000001_00.jpg")
    cfg = command_cfg("search", untrained_checkpoint, tmp_path, f"query={image}",
                      f"gallery={image.parent}", f"cache_dir={tmp_path / 'cache'}")  # fmt: skip
    with pytest.raises(InputError, match=rf"^query={image}: is the only image of gallery="
                                         r".*nothing else to rank"):  # fmt: skip
        search_gallery(cfg)
    assert not (tmp_path / "run" / "ranking.csv").exists()


def test_queries_left_without_a_gallery_image_are_named_in_a_warning(
    untrained_checkpoint, tmp_path, capsys
):
    from reidtricks.cli.search import search_gallery

    lone = save(tmp_path / "gallery" / "0001_c1s1_000001_00.jpg")
    other = save(tmp_path / "queries" / "0002_c1s1_000001_00.jpg", 90)
    queries = other.parent
    (queries / lone.name).symlink_to(lone)  # the gallery's one image is also a query
    cfg = command_cfg("search", untrained_checkpoint, tmp_path, f"query={queries}",
                      f"gallery={lone.parent}", f"cache_dir={tmp_path / 'cache'}",
                      "print_queries=0")  # fmt: skip
    capsys.readouterr()
    result = search_gallery(cfg)
    assert [len(m) for m in result["ranking"]] == [0, 1]
    err = capsys.readouterr().err
    assert "warning: 1 of 2 queries" in err and str(queries / lone.name) in err
