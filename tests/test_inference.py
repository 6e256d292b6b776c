"""Using a trained model: the FeatureExtractor API and the extract / search / export commands,
on the tiny model trained once per session (conftest's trained_ckpt)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from helpers import compose_config
from reidtricks.data.image_dataset import read_image
from reidtricks.data.transforms import build_test_transform
from reidtricks.errors import InputError
from reidtricks.evaluation.evaluator import eval_time_features
from reidtricks.inference import FeatureExtractor
from reidtricks.inference.checkpoint import (
    build_net_from_checkpoint,
    checkpoint_spec,
    load_checkpoint,
)

pytestmark = pytest.mark.slow  # needs the trained checkpoint: `make test-fast` leaves it out

REPO = Path(__file__).resolve().parents[1]


def command_cfg(name: str, ckpt: Path, out: Path, *extra: str):
    """A command's config as the CLI would build it, without progress bars or loader processes."""
    return compose_config(
        name, f"ckpt={ckpt}", f"paths.output_dir={out}", "num_workers=0", "progress=false", *extra
    )


@pytest.fixture(scope="module")
def tiny_split(tiny_data_dir) -> dict[str, Path]:
    root = tiny_data_dir / "synthetic-tiny-seed0"
    return {"query": root / "query", "gallery": root / "bounding_box_test"}


def evaluate_features(ckpt: Path, paths: list[str], **eval_overrides) -> torch.Tensor:
    """The features `evaluate` ranks: eval_time_features of the network on the test transform."""
    checkpoint = load_checkpoint(ckpt)
    spec = checkpoint_spec(checkpoint, str(ckpt))
    net = build_net_from_checkpoint(checkpoint, str(ckpt)).eval()
    transform = build_test_transform(
        height=spec.input.height, width=spec.input.width, mean=spec.input.mean, std=spec.input.std
    )
    images = torch.stack([transform(read_image(p)) for p in paths])
    return eval_time_features(net, images, spec.eval.updated(eval_overrides))


def test_api_features_equal_evaluate_features(trained_ckpt, tiny_split):
    paths = sorted(str(p) for p in tiny_split["query"].iterdir())[:10]
    paths += sorted(str(p) for p in tiny_split["gallery"].iterdir())[:14]
    extractor = FeatureExtractor.from_checkpoint(trained_ckpt, batch_size=5)
    assert (extractor.feature, extractor.flip, extractor.metric) == ("after_bn", True, "cosine")
    expected = evaluate_features(trained_ckpt, paths)
    feats = extractor.extract(paths)
    assert feats.dtype == torch.float32 and feats.shape == expected.shape
    torch.testing.assert_close(feats, expected, atol=1e-5, rtol=0)
    # Every kind of input gives the same numbers: files through loader batches, PIL images,
    # uint8 arrays, the prepared tensor.
    torch.testing.assert_close(extractor.extract_files(paths).features, feats, atol=1e-5, rtol=0)
    pil = [Image.open(p) for p in paths[:4]]
    batch = extractor.preprocess(paths[:4])
    assert batch.shape == (4, 3, 64, 32) and batch.dtype == torch.float32
    assert torch.equal(extractor.preprocess(pil), batch)
    assert torch.equal(extractor.preprocess(np.stack([np.asarray(im) for im in pil])), batch)
    torch.testing.assert_close(extractor.extract(batch), feats[:4], atol=1e-5, rtol=0)
    norms = extractor.extract(paths[:4], normalize=True).norm(dim=1)
    torch.testing.assert_close(norms, torch.ones(4))
    # Overrides of the trained test-time settings match evaluate's eval.* overrides.
    plain = FeatureExtractor.from_checkpoint(trained_ckpt, flip=False, feature="before_bn")
    expected = evaluate_features(trained_ckpt, paths[:6], flip=False, feature="before_bn")
    torch.testing.assert_close(plain.extract(paths[:6]), expected, atol=1e-5, rtol=0)
    with pytest.raises(InputError, match=r"expected N x 3 x 64 x 32"):
        extractor.extract(torch.zeros(2, 3, 128, 64))


def junk_folder(root: Path, tiny_split) -> Path:
    """Market-named images at two depths, one image without a Market name, a text file and a
    hidden file."""
    (root / "nested" / "deeper").mkdir(parents=True)
    for src in sorted(tiny_split["query"].iterdir())[:3]:
        shutil.copy(src, root / src.name)
    for src in sorted(tiny_split["gallery"].iterdir())[:2]:
        shutil.copy(src, root / "nested" / "deeper" / src.name)
    Image.open(next(tiny_split["gallery"].iterdir())).save(root / "nested" / "person.png")
    (root / "notes.txt").write_text("not an image")
    (root / ".DS_Store").write_bytes(b"\0")
    return root


def test_extract_folder_with_junk_and_a_corrupt_image(trained_ckpt, tiny_split, tmp_path, capsys):
    from reidtricks.cli.extract import extract_folder

    folder = junk_folder(tmp_path / "images", tiny_split)
    out = tmp_path / "run"
    summary = extract_folder(command_cfg("extract", trained_ckpt, out, f"images={folder}"))
    assert summary["num_images"] == 6 and summary["others"] == 1 and not summary["bad"]
    with np.load(out / "features.npz", allow_pickle=False) as data:
        paths = [str(p) for p in data["paths"]]
        assert len(paths) == 6 and data["features"].shape == (6, 512)
        assert data["features"].dtype == np.float32
        assert sum(p.endswith("person.png") for p in paths) == 1
        named = dict(zip(paths, data["named"], strict=True))
        assert named[str(folder / "nested" / "person.png")] == 0 and sum(named.values()) == 5
        i = paths.index(str(sorted(folder.glob("*.jpg"))[0]))
        assert data["pids"][i] >= 0 and data["camids"][i] >= 0
        expected = FeatureExtractor.from_checkpoint(trained_ckpt).extract(paths)
        np.testing.assert_allclose(data["features"], expected.numpy(), atol=1e-5)

    corrupt = folder / "nested" / "0001_c1s1_000001_00.jpg"
    corrupt.write_bytes(b"\xff\xd8 truncated jpeg")
    out2 = tmp_path / "run2"
    with pytest.raises(OSError, match="0001_c1s1_000001_00.jpg: cannot read image") as err:
        extract_folder(command_cfg("extract", trained_ckpt, out2, f"images={folder}"))
    assert "\n" not in str(err.value) and "skip_bad=true" in str(err.value)
    assert not out2.exists()

    capsys.readouterr()
    summary = extract_folder(
        command_cfg("extract", trained_ckpt, out2, f"images={folder}", "skip_bad=true")
    )
    assert summary["num_images"] == 6 and [b.path for b in summary["bad"]] == [str(corrupt)]
    assert "warning: skipped 1 unreadable image" in capsys.readouterr().err
    with np.load(out2 / "features.npz", allow_pickle=False) as data:
        assert [str(p) for p in data["bad_paths"]] == [str(corrupt)]
        assert str(corrupt) not in {str(p) for p in data["paths"]}

    with pytest.raises(FileNotFoundError, match="images=.*missing: no such folder"):
        extract_folder(command_cfg("extract", trained_ckpt, out2, f"images={tmp_path / 'missing'}"))


@pytest.mark.slow
def test_extract_cli_reports_a_corrupt_image_in_one_line(trained_ckpt, tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    (folder / "0002_c1s1_000001_00.jpg").write_bytes(b"not a jpeg")
    command = [sys.executable, "-m", "reidtricks.extract", f"ckpt={trained_ckpt}",
               f"images={folder}", f"paths.log_dir={tmp_path / 'logs'}", "num_workers=0"]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}
    proc = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith(f"error: {folder / '0002_c1s1_000001_00.jpg'}: cannot read image")
    assert not list((tmp_path / "logs").rglob("features.npz"))


def test_search_finds_the_same_identity_and_reuses_the_gallery_cache(
    trained_ckpt, tiny_split, tmp_path
):
    from reidtricks.cli.search import search_gallery
    from reidtricks.inference import market_ids

    gallery = tmp_path / "gallery"
    shutil.copytree(tiny_split["gallery"], gallery)
    cache = tmp_path / "cache"
    args = (f"query={tiny_split['query']}", f"gallery={gallery}", f"cache_dir={cache}",
            "plot_queries=2", "print_queries=1")  # fmt: skip
    first = search_gallery(command_cfg("search", trained_ckpt, tmp_path / "run1", *args))
    assert not first["cache_hit"] and first["cache_file"].is_file()
    num_q = len(first["queries"])
    assert num_q == len(list(tiny_split["query"].iterdir())) and first["metric"] == "cosine"
    g_pids = np.array([market_ids(p)[0] for p in sorted(map(str, gallery.iterdir()))])
    hits, chance = 0, 0.0
    for q_path, matches in zip(first["queries"], first["ranking"], strict=True):
        q_pid = market_ids(q_path)[0]
        assert len(matches) == 10
        assert [d for _, d in matches] == sorted(d for _, d in matches)
        hits += market_ids(matches[0][0])[0] == q_pid
        chance += float((g_pids == q_pid).mean())
    assert hits / num_q > max(2 * chance / num_q, 0.3), (hits / num_q, chance / num_q)
    rows = first["csv"].read_text().splitlines()
    assert len(rows) == 1 + 10 * num_q and rows[0].startswith("query,rank,gallery,distance")
    assert len(first["pngs"]) == 2 and all(p.stat().st_size > 1000 for p in first["pngs"])

    # Unchanged checkpoint and folder: the cached features, the same ranking.
    second = search_gallery(command_cfg("search", trained_ckpt, tmp_path / "run2", *args))
    assert second["cache_hit"] and second["ranking"] == first["ranking"]
    with np.load(second["cache_file"], allow_pickle=False) as data:
        assert data["features"].shape == (len(g_pids), 512)
    # A query that is in the gallery folder is not its own match.
    own = sorted(gallery.iterdir())[5]
    self_args = (f"query={own}", *args[1:])
    alone = search_gallery(command_cfg("search", trained_ckpt, tmp_path / "run_self", *self_args))
    assert alone["cache_hit"] and str(own) not in [p for p, _ in alone["ranking"][0]]
    # Touched only (same bytes): still the cache. New bytes: extracted again.
    changed = sorted(gallery.iterdir())[0]
    os.utime(changed, ns=(changed.stat().st_atime_ns, changed.stat().st_mtime_ns + 10**9))
    touched = search_gallery(command_cfg("search", trained_ckpt, tmp_path / "run_touch", *args))
    assert touched["cache_hit"] and touched["ranking"] == first["ranking"]
    changed.write_bytes(sorted(gallery.iterdir())[1].read_bytes())
    third = search_gallery(
        command_cfg("search", trained_ckpt, tmp_path / "run3", *args, "rerank=true", "topk=3")
    )
    assert not third["cache_hit"] and all(len(m) == 3 for m in third["ranking"])


@pytest.mark.slow
def test_export_onnx_matches_pytorch_on_the_tiny_test_set(trained_ckpt, tiny_split, tmp_path):
    import onnxruntime as ort

    from reidtricks.cli.export import ParityError, export_checkpoint

    out = tmp_path / "run"
    result = export_checkpoint(command_cfg("export", trained_ckpt, out))
    report = result["parity"]
    num_q = len(list(tiny_split["query"].iterdir()))
    assert report.passed and report.ranked_against == "gallery" and report.queries == num_q
    assert report.max_abs_diff <= 1e-4 and report.identical + report.near_ties == num_q
    assert (out / "parity.json").is_file()
    session = ort.InferenceSession(str(out / "model.onnx"), providers=["CPUExecutionProvider"])
    meta = session.get_modelmeta().custom_metadata_map
    assert (meta["input_height"], meta["input_width"], meta["feature"]) == ("64", "32", "after_bn")
    assert meta["flip"] == "true" and meta["stage"] == "center_loss"
    assert session.get_inputs()[0].name == "images"
    # The graph does the flip averaging: onnxruntime gives the API's features for any batch size.
    extractor = FeatureExtractor.from_checkpoint(trained_ckpt)
    paths = sorted(str(p) for p in tiny_split["query"].iterdir())[:3]
    x = extractor.preprocess(paths)
    onnx_feats = session.run(None, {"images": x.numpy()})[0]
    np.testing.assert_allclose(onnx_feats, extractor.extract(paths).numpy(), atol=1e-4)

    # A fixed batch size, parity on a folder; then a parity failure fails loudly.
    query_dir = f"images={tiny_split['query']}", "parity.max_query=8"
    fixed_args = (*query_dir, "dynamic_batch=false", "batch_size=3")
    fixed = export_checkpoint(command_cfg("export", trained_ckpt, tmp_path / "fixed", *fixed_args))
    assert fixed["parity"].passed and fixed["parity"].ranked_against == "queries"
    assert fixed["parity"].queries == 8  # 3 + 3 + 2: the last batch is padded for the model
    fixed_session = ort.InferenceSession(str(fixed["out"]), providers=["CPUExecutionProvider"])
    assert fixed_session.get_inputs()[0].shape == [3, 3, 64, 32]
    failing = tmp_path / "failing"
    with pytest.raises(ParityError, match=r"parity FAILED: .* kept as .*parity-failed.onnx"):
        export_checkpoint(
            command_cfg("export", trained_ckpt, failing, *query_dir, "parity.atol=-1")
        )
    assert not (failing / "model.onnx").exists()
    assert (failing / "model.parity-failed.onnx").is_file()


@pytest.mark.parametrize("where", ["model", "test_sources"])
def test_foreign_target_is_refused_by_every_command(trained_ckpt, tiny_split, tmp_path, where):
    from reidtricks.cli.export import export_checkpoint
    from reidtricks.cli.extract import extract_folder
    from reidtricks.cli.search import search_gallery

    raw = torch.load(trained_ckpt, map_location="cpu", weights_only=True)
    config = raw["reidtricks"]["config"]
    if where == "model":
        config["model"]["_target_"] = "os.system"
    else:
        config["data"]["test_sources"]["synthetic"]["_target_"] = "builtins.eval"
    bad = tmp_path / "foreign.ckpt"
    torch.save(raw, bad)
    runs = {
        "extract": (extract_folder, [f"images={tiny_split['query']}"]),
        "search": (search_gallery, [f"query={tiny_split['query']}",
                                    f"gallery={tiny_split['gallery']}",
                                    f"cache_dir={tmp_path / 'out_search' / 'cache'}"]),
        "export": (export_checkpoint, []),
    }  # fmt: skip
    for name, (command, args) in runs.items():
        out = tmp_path / f"out_{name}"
        with pytest.raises(InputError, match=r"_target_=.* is not a reidtricks class.*refused"):
            command(command_cfg(name, bad, out, *args))
        assert not out.exists(), f"{name} wrote {list(out.rglob('*'))}"
