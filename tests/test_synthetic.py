"""The built-in synthetic dataset: deterministic, Market layout, expected statistics."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from reidtricks.cli.synthetic import main
from reidtricks.data.datasets import Market1501, SyntheticReID
from reidtricks.data.synthetic_generator import (
    PRESETS,
    generate_dataset,
    plan_dataset,
    remove_stale_staging,
)
from reidtricks.errors import InputError

MARKET_NAME = re.compile(r"^(\d{4}|-1)_c([1-6])s\d_\d{6}_\d{2}\.jpg$")


def test_tiny_loads_through_the_market_parser(tiny_data_dir):
    dataset = SyntheticReID(tiny_data_dir, preset="tiny", seed=0)
    assert dataset.dataset_dir == tiny_data_dir / "synthetic-tiny-seed0"
    splits = Market1501(dataset.dataset_dir).load()
    preset = PRESETS["tiny"]
    files = sorted(dataset.dataset_dir.rglob("*.jpg"))
    assert all(MARKET_NAME.match(f.name) for f in files)
    assert sum(f.name.startswith("-1_") for f in files) == preset.junk
    assert sum(f.name.startswith("0000_") for f in files) == preset.distractors

    assert splits.num_train_pids == preset.train_ids
    assert sorted({pid for _, pid, _ in splits.train}) == list(range(preset.train_ids))
    expected_train = preset.train_ids * preset.train_images_per_id
    assert 0.7 * expected_train <= len(splits.train) <= 1.3 * expected_train
    query_pids = {pid for _, pid, _ in splits.query}
    gallery_pids = {pid for _, pid, _ in splits.gallery}
    assert len(query_pids) == preset.test_ids and gallery_pids == query_pids | {0}
    assert not query_pids & {0, -1}
    assert len(splits.gallery) == len(files) - len(splits.train) - len(splits.query) - preset.junk
    # Market rule: one query per identity and camera, each with a gallery match in another camera.
    assert len({(pid, cam) for _, pid, cam in splits.query}) == len(splits.query)
    for _, pid, cam in splits.query:
        assert any(g_pid == pid and g_cam != cam for _, g_pid, g_cam in splits.gallery)
    assert {cam for _, _, cam in splits.train + splits.gallery} == set(range(6))
    for path in files[:: max(1, len(files) // 20)]:
        with Image.open(path) as img:
            assert img.size == (64, 128) and img.format == "JPEG" and img.mode == "RGB"


def test_tiny_is_learnable_but_not_trivial(tiny_data_dir):
    """Raw 16x8 pixels + Euclidean, Market protocol by brute force: above random, below perfect."""
    splits = SyntheticReID(tiny_data_dir, preset="tiny", seed=0).load()

    def features(items):
        return [np.asarray(Image.open(p).resize((8, 16)), np.float64).ravel() for p, _, _ in items]

    gallery = list(zip(features(splits.gallery), splits.gallery, strict=True))
    aps, random_aps = [], []
    for q_feat, (_, q_pid, q_cam) in zip(features(splits.query), splits.query, strict=True):
        kept = [(f, pid) for f, (_, pid, cam) in gallery if not (pid == q_pid and cam == q_cam)]
        ranked = sorted(kept, key=lambda fp: float(((fp[0] - q_feat) ** 2).sum()))
        hits = [r for r, (_, pid) in enumerate(ranked) if pid == q_pid]
        aps.append(sum((k + 1) / (r + 1) for k, r in enumerate(hits)) / len(hits))
        # expected AP of a random ranking, about (#matches / #candidates)
        random_aps.append(len(hits) / len(kept))
    assert np.mean(aps) > 2 * np.mean(random_aps)
    assert np.mean(aps) < 0.9


def test_market_preset_matches_market1501_sizes():
    plan = plan_dataset(PRESETS["market"], seed=0)
    train_pids = {pid for _, pid, _, _ in plan["bounding_box_train"]}
    query_pids = {pid for _, pid, _, _ in plan["query"]}
    gallery = [pid for _, pid, _, _ in plan["bounding_box_test"] if pid != -1]
    assert len(train_pids) == 751 and len(query_pids) == 750 and not train_pids & query_pids
    assert abs(len(plan["bounding_box_train"]) - 12936) < 0.03 * 12936
    assert abs(len(plan["query"]) - 3368) < 0.03 * 3368
    assert abs(len(gallery) - 15913) < 0.03 * 15913 and gallery.count(0) == 2793


def test_small_preset_is_the_demo_set_of_the_readme():
    """The demo's `small` set: 100 train ids / 806 images, 295 queries, 1,480 gallery images
    (60 distractors) after dropping 30 junk images, 6 cameras (README)."""
    plan = plan_dataset(PRESETS["small"], seed=0)
    train = [(pid, cam) for _, pid, cam, _ in plan["bounding_box_train"]]
    query = [(pid, cam) for _, pid, cam, _ in plan["query"]]
    gallery = [(pid, cam) for _, pid, cam, _ in plan["bounding_box_test"] if pid != -1]
    assert (len({p for p, _ in train}), len(train)) == (100, 806)
    assert (len({p for p, _ in query}), len(query)) == (100, 295)
    assert len(gallery) == 1480 and [p for p, _ in gallery].count(0) == 60
    assert {c for _, c in train + query + gallery} == set(range(6))
    assert not {p for p, _ in train} & {p for p, _ in query}


def read_all(folder):
    return {p.relative_to(folder): p.read_bytes() for p in sorted(folder.rglob("*.jpg"))}


@pytest.mark.slow  # generates the dataset three times
def test_deterministic_from_the_seed(tmp_path):
    a = read_all(generate_dataset(tmp_path / "a", "tiny", seed=3))
    b = read_all(generate_dataset(tmp_path / "b", "tiny", seed=3))
    c = read_all(generate_dataset(tmp_path / "c", "tiny", seed=4))
    assert len(a) > 100 and a == b
    assert a.keys() != c.keys() or all(a[k] != c[k] for k in a)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "b", "c"]  # no temp folders left


@pytest.mark.slow  # generates the dataset several times
def test_load_reuses_regenerates_stale_and_refuses_foreign(tmp_path):
    dataset = SyntheticReID(tmp_path, preset="tiny", seed=1)
    first = dataset.load()
    manifest = dataset.dataset_dir / "manifest.json"
    stamp = manifest.stat().st_mtime_ns
    assert dataset.load() == first and manifest.stat().st_mtime_ns == stamp
    stale = json.loads(manifest.read_text())
    stale["format"] = -1
    manifest.write_text(json.dumps(stale))
    (dataset.dataset_dir / "query" / "extra.jpg").write_bytes(b"left over")
    assert dataset.load() == first  # a stale generated copy is replaced
    assert not (dataset.dataset_dir / "query" / "extra.jpg").exists()
    manifest.unlink()
    with pytest.raises(FileExistsError, match=rf"{dataset.dataset_dir} exists but has no manifest"):
        dataset.load()
    with pytest.raises(ValueError, match=r"preset='huge'.*tiny"):
        SyntheticReID(tmp_path, preset="huge")


def test_cli_generates_and_prints_statistics(tmp_path, capsys):
    main(["--preset", "tiny", "--seed", "2", "--root", str(tmp_path / "data")])
    out = capsys.readouterr().out
    assert (tmp_path / "data" / "synthetic-tiny-seed2" / "manifest.json").is_file()
    train_row = next(line.split() for line in out.splitlines() if line.split()[:1] == ["train"])
    assert train_row[1:2] == [str(PRESETS["tiny"].train_ids)]


@pytest.mark.slow  # starts two processes
def test_the_command_runs_as_a_module_and_the_library_module_points_at_it(tmp_path):
    """`python -m reidtricks.synthetic` is the command; the generator's own module (data/, which
    does not know the commands) is no command and says where it went, writing nothing."""
    root = tmp_path / "data"
    args = ["--preset", "tiny", "--root", str(root)]
    old = subprocess.run([sys.executable, "-m", "reidtricks.data.synthetic_generator", *args],
                         capture_output=True, text=True, timeout=120)  # fmt: skip
    assert old.returncode == 2 and old.stdout == ""
    assert old.stderr.startswith("error: run `python -m reidtricks.synthetic` (same options)")
    assert len(old.stderr.strip().splitlines()) == 1 and not root.exists()
    new = subprocess.run([sys.executable, "-m", "reidtricks.synthetic", *args],
                         capture_output=True, text=True, timeout=120)  # fmt: skip
    assert new.returncode == 0, new.stderr
    assert (root / "synthetic-tiny-seed0" / "manifest.json").is_file()
    assert f"{root / 'synthetic-tiny-seed0'} ready in " in new.stdout


@pytest.mark.parametrize("content", ['{"format": 2, "preset": "ti', "[]"])
def test_a_corrupt_manifest_is_named_in_one_line(tmp_path, capsys, content):
    dataset = SyntheticReID(tmp_path, preset="tiny", seed=0)
    dataset.dataset_dir.mkdir()
    manifest = dataset.dataset_dir / "manifest.json"
    manifest.write_text(content)
    expected = rf"{manifest}: .*expected .*delete {dataset.dataset_dir} to regenerate"
    with pytest.raises(InputError, match=expected):
        dataset.load()
    with pytest.raises(InputError, match=expected):
        generate_dataset(dataset.dataset_dir, "tiny", 0)
    with pytest.raises(SystemExit) as exit_info:
        main(["--preset", "tiny", "--root", str(tmp_path)])
    assert exit_info.value.code == 1
    err = capsys.readouterr().err
    assert err.startswith(f"error: {manifest}: ") and len(err.strip().splitlines()) == 1
    assert manifest.read_text() == content  # nothing was overwritten


def _child_pids(pid: int) -> set[int]:
    """Live children of `pid`, from /proc/<pid>/stat of every process."""
    children = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rpartition(")")[2].split()
        except OSError:
            continue
        if int(fields[1]) == pid and fields[0] != "Z":
            children.add(int(stat.parent.name))
    return children


def _alive(pid: int) -> bool:
    """True while `pid` runs (a zombie counts as ended)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.slow  # starts and kills a generator process with its worker pool, three times
@pytest.mark.skipif(not Path("/proc/self/stat").is_file(), reason="reads /proc")
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT, signal.SIGKILL])
def test_killed_generator_leaves_no_workers_and_no_staging_folder(tmp_path, signum):
    """SIGTERM/SIGINT: the generator cleans up. SIGKILL: its workers still end (parent-death
    signal) and the next run removes the staging folder."""
    root = tmp_path / "data"
    # The market preset (~32,000 images) is still rendering when the signal comes, however slow
    # the machine (the small one can finish first).
    cmd = [sys.executable, "-m", "reidtricks.synthetic", "--preset", "market",
           "--root", str(root), "--workers", "2"]  # fmt: skip
    # output to files: orphaned workers holding a pipe open would block reading it
    log = tmp_path / "generator.log"
    with open(log, "w") as out:
        # As after a terminal's Ctrl-C: SIGINT at its default even where this test runs with it
        # ignored (a background job of a non-interactive shell), which Python would inherit.
        proc = subprocess.Popen(
            cmd,
            stdout=out,
            stderr=subprocess.STDOUT,
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )
    workers: set[int] = set()
    try:
        deadline = time.monotonic() + 90  # a ceiling: on a loaded machine start-up is slow
        while len(workers) < 2 or not list(root.glob(".*.tmp*/*/*.jpg")):
            assert proc.poll() is None and time.monotonic() < deadline, "no pool started"
            workers |= _child_pids(proc.pid)
            time.sleep(0.05)
        staging = list(root.glob(".*.tmp*"))
        assert [p.name for p in staging] == [f".synthetic-market-seed0.tmp{proc.pid}"]
        proc.send_signal(signum)
        proc.wait(timeout=10)
        err = log.read_text()
        assert proc.returncode != 0 and "Traceback" not in err, err
        deadline = time.monotonic() + 3
        while any(map(_alive, workers)) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not [pid for pid in workers if _alive(pid)], "orphaned pool workers"
        if signum == signal.SIGKILL:
            assert remove_stale_staging(root) == staging
        assert not staging[0].exists(), "staging folder left behind"
    finally:
        for pid in workers | {proc.pid}:
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
        proc.wait()


def test_a_later_run_removes_stale_staging_folders(tmp_path):
    ended = subprocess.Popen([sys.executable, "-c", "pass"])
    ended.wait()
    stale = tmp_path / f".synthetic-tiny-seed0.tmp{ended.pid}"
    (stale / "query").mkdir(parents=True)
    (stale / "query" / "0002_c1s1_000001_00.jpg").write_bytes(b"half written")
    stale_other = tmp_path / f".synthetic-small-seed3.old{ended.pid}"
    (stale_other / "bounding_box_train").mkdir(parents=True)
    running = tmp_path / f".synthetic-tiny-seed0.tmp{os.getppid()}"  # a live generator's
    (running / "query").mkdir(parents=True)
    foreign = tmp_path / f".notes.tmp{ended.pid}"  # not a dataset folder: not ours to delete
    foreign.mkdir()
    SyntheticReID(tmp_path, preset="tiny", seed=0).load()
    assert not stale.exists() and not stale_other.exists()
    assert running.exists() and foreign.exists()
