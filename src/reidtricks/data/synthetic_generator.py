"""Procedural person-ReID dataset in the Market-1501 layout (128x64 JPEGs, 6 cameras).

Identity = attributes (body proportions, clothing colours and textures, hair, accessories);
each image adds nuisance that does not define identity (viewpoint, lighting and per-camera colour
cast, background clutter, occlusion, scale/crop jitter, blur, JPEG quality). Deterministic from
the seed. Command line: `python -m reidtricks.synthetic --preset small --root data`.

Images are staged in `.<name>.tmp<pid>` and renamed into place at the end. SIGTERM, SIGINT or an
error stops the render pool and removes that folder; a later run removes the staging folders of
processes that no longer exist (e.g. killed with SIGKILL).
"""

from __future__ import annotations

import ctypes
import io
import json
import multiprocessing
import os
import re
import shutil
import signal
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from reidtricks.errors import ExistingOutputError, InputError, error_summary

HEIGHT, WIDTH, NUM_CAMERAS = 128, 64, 6
FORMAT_VERSION = 2


@dataclass(frozen=True)
class Preset:
    """Sizes of a synthetic dataset (means; the exact counts follow from the seed)."""

    train_ids: int
    train_images_per_id: float
    test_ids: int
    queries_per_id: float
    gallery_per_id: float
    distractors: int
    junk: int


PRESETS: dict[str, Preset] = {
    "tiny": Preset(12, 8, 10, 2, 5, 4, 3),
    "small": Preset(100, 8, 100, 3, 14, 60, 30),
    # Market-1501: 751 ids / 12,936 train; 3,368 queries; 15,913 gallery incl. 2,793 distractors.
    "market": Preset(751, 17.2, 750, 4.49, 17.49, 2793, 500),
}

# Clothing palette: few enough colours that identities share them (the task is not trivial).
PALETTE = np.array(
    [
        [20, 20, 25], [235, 235, 230], [120, 120, 125], [170, 30, 35], [30, 50, 140],
        [35, 110, 50], [225, 200, 40], [230, 120, 30], [110, 60, 30], [200, 150, 170],
        [90, 160, 210], [120, 40, 120], [200, 185, 150], [60, 90, 60],
    ],
    dtype=np.float32,
)  # fmt: skip
SKIN = np.array([[250, 215, 185], [225, 180, 140], [175, 120, 85], [110, 75, 50]], np.float32)
HAIR = np.array(
    [[15, 12, 10], [80, 50, 25], [200, 170, 100], [150, 150, 150], [140, 60, 30]], np.float32
)
CAMERA_CAST = np.array(
    [[1.0, 1.0, 1.0], [1.1, 1.0, 0.85], [0.85, 0.95, 1.1], [1.0, 1.1, 0.9], [0.9, 0.85, 0.95],
     [1.15, 1.05, 1.0]],
    dtype=np.float32,
)  # fmt: skip
CAMERA_BRIGHTNESS = np.array([1.0, 0.8, 1.15, 0.9, 0.7, 1.05], np.float32)
CAMERA_BACKGROUND = np.array(
    [[150, 150, 140], [90, 100, 90], [190, 185, 170], [120, 110, 100], [70, 75, 85], [160, 140, 120]],
    np.float32,
)  # fmt: skip


def identity_attributes(seed: int, pid: int) -> dict:
    """The attributes that define one identity (same for every image of it)."""
    rng = np.random.default_rng([seed, 1, pid])
    return {
        "skin": int(rng.integers(len(SKIN))),
        "hair": int(rng.integers(len(HAIR))),
        "long_hair": bool(rng.random() < 0.35),
        "head": float(rng.uniform(0.075, 0.1)),
        "torso": float(rng.uniform(0.3, 0.38)),
        "width": float(rng.uniform(0.42, 0.62)),
        "upper": int(rng.integers(len(PALETTE))),
        "upper2": int(rng.integers(len(PALETTE))),
        "upper_texture": str(rng.choice(["plain", "plain", "stripes", "checks", "logo"])),
        "lower": int(rng.integers(len(PALETTE))),
        "lower_type": str(rng.choice(["trousers", "trousers", "shorts", "skirt"])),
        "shoes": int(rng.integers(len(PALETTE))),
        "accessory": str(rng.choice(["none", "none", "backpack", "bag", "hat"])),
        "accessory_color": int(rng.integers(len(PALETTE))),
        # per-identity shades: ids share palette colours only approximately (similar, not equal)
        "upper_shade": [float(v) for v in rng.uniform(0.85, 1.15, 3)],
        "lower_shade": [float(v) for v in rng.uniform(0.85, 1.15, 3)],
        "stride": float(rng.uniform(0.0, 0.12)),
    }


def _color(base: np.ndarray, light: np.ndarray) -> tuple[int, int, int]:
    return tuple(int(v) for v in np.clip(base * light, 0, 255))


def render_person(attrs: dict, cam: int, rng: np.random.Generator) -> Image.Image:
    """One 128x64 view of an identity under camera `cam`'s nuisance."""
    light = (
        CAMERA_CAST[cam]
        * CAMERA_BRIGHTNESS[cam]
        * rng.uniform(0.8, 1.2)
        * rng.uniform(0.93, 1.07, 3)
    )
    bg = CAMERA_BACKGROUND[cam] * rng.uniform(0.8, 1.2, 3)
    img = Image.new("RGB", (WIDTH, HEIGHT), _color(bg, np.ones(3)))
    draw = ImageDraw.Draw(img)
    for _ in range(int(rng.integers(2, 7))):  # background clutter
        x0, y0 = rng.integers(-10, WIDTH), rng.integers(-10, HEIGHT)
        w, h = rng.integers(4, 30), rng.integers(4, 60)
        draw.rectangle(
            [x0, y0, x0 + w, y0 + h], fill=_color(bg * rng.uniform(0.6, 1.4, 3), np.ones(3))
        )

    view = str(rng.choice(["front", "back", "side"], p=[0.4, 0.35, 0.25]))
    scale = rng.uniform(0.82, 1.0)
    body_h = HEIGHT * scale
    cx = WIDTH / 2 + rng.uniform(-5, 5)
    top = (HEIGHT - body_h) * rng.uniform(0.1, 0.9)
    width = WIDTH * attrs["width"] * scale * (0.7 if view == "side" else 1.0)
    head_r = body_h * attrs["head"]
    neck_y = top + 2 * head_r
    torso_b = neck_y + body_h * attrs["torso"]
    feet_y = top + body_h - 2
    skin = SKIN[attrs["skin"]]
    upper = PALETTE[attrs["upper"]] * np.asarray(attrs["upper_shade"], np.float32)
    lower = PALETTE[attrs["lower"]] * np.asarray(attrs["lower_shade"], np.float32)

    # legs / lower garment; the walking phase moves the legs apart or together
    leg_w = width * 0.22
    step = width * attrs["stride"] * rng.uniform(-1.0, 1.0) * (2.0 if view == "side" else 1.0)
    left, right = cx - width * 0.28 - step, cx + width * 0.06 + step
    legs = [(left, left + leg_w), (right, right + leg_w)]
    garment_end = {"trousers": feet_y - 4, "shorts": torso_b + (feet_y - torso_b) * 0.4,
                   "skirt": torso_b + (feet_y - torso_b) * 0.5}[attrs["lower_type"]]  # fmt: skip
    for x0, x1 in legs:
        draw.rectangle([x0, torso_b, x1, feet_y - 4], fill=_color(skin, light))
        if attrs["lower_type"] != "skirt":
            draw.rectangle([x0, torso_b, x1, garment_end], fill=_color(lower, light))
        draw.rectangle(
            [x0 - 1, feet_y - 4, x1 + 1, feet_y], fill=_color(PALETTE[attrs["shoes"]], light)
        )
    if attrs["lower_type"] == "skirt":
        draw.polygon([(cx - width * 0.3, torso_b), (cx + width * 0.3, torso_b),
                      (cx + width * 0.42, garment_end), (cx - width * 0.42, garment_end)],
                     fill=_color(lower, light))  # fmt: skip

    # torso / upper garment with texture
    x0, x1 = cx - width / 2, cx + width / 2
    draw.rectangle([x0, neck_y, x1, torso_b], fill=_color(upper, light))
    second = _color(PALETTE[attrs["upper2"]], light)
    texture = attrs["upper_texture"]
    if texture == "stripes":
        for y in np.arange(neck_y + 3, torso_b, 6):
            draw.rectangle([x0, y, x1, y + 2], fill=second)
    elif texture == "checks":
        for i, y in enumerate(np.arange(neck_y, torso_b, 6)):
            for j, x in enumerate(np.arange(x0, x1, 6)):
                if (i + j) % 2:
                    draw.rectangle([x, y, x + 5, y + 5], fill=second)
    elif texture == "logo" and view != "back":
        r = width * 0.15
        cy = (neck_y + torso_b) / 2
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=second)
    # arms
    arm_w = width * 0.16
    if view != "side":
        for ax in (x0 - arm_w, x1):
            draw.rectangle(
                [ax, neck_y + 2, ax + arm_w, torso_b - 2], fill=_color(upper * 0.9, light)
            )
            draw.rectangle([ax, torso_b - 2, ax + arm_w, torso_b + 6], fill=_color(skin, light))

    # head and hair
    hair = _color(HAIR[attrs["hair"]], light)
    draw.ellipse([cx - head_r, top, cx + head_r, neck_y], fill=_color(skin, light))
    if view == "back":
        draw.ellipse([cx - head_r, top, cx + head_r, neck_y], fill=hair)
    else:
        draw.chord([cx - head_r, top, cx + head_r, neck_y - head_r * 0.6], 180, 360, fill=hair)
    if attrs["long_hair"]:
        draw.rectangle([cx - head_r, top + head_r, cx + head_r, neck_y + head_r * 1.5], fill=hair)
        if view != "back":
            draw.ellipse([cx - head_r * 0.7, top + head_r * 0.5, cx + head_r * 0.7, neck_y - 1],
                         fill=_color(skin, light))  # fmt: skip

    # accessories (what is visible depends on the viewpoint)
    acc = _color(PALETTE[attrs["accessory_color"]], light)
    if attrs["accessory"] == "backpack":
        if view == "back":
            draw.rectangle(
                [cx - width * 0.35, neck_y + 3, cx + width * 0.35, torso_b - 3], fill=acc
            )
        elif view == "side":
            draw.rectangle([x1, neck_y + 3, x1 + width * 0.35, torso_b - 5], fill=acc)
        else:
            draw.line([(x0 + 3, neck_y), (x0 + 3, torso_b - 4)], fill=acc, width=2)
            draw.line([(x1 - 3, neck_y), (x1 - 3, torso_b - 4)], fill=acc, width=2)
    elif attrs["accessory"] == "bag":
        side = x1 + 1 if view != "side" else cx - width * 0.2
        draw.rectangle([side, torso_b - 6, side + width * 0.3, torso_b + 10], fill=acc)
    elif attrs["accessory"] == "hat":
        draw.rectangle(
            [cx - head_r * 1.2, top - 1, cx + head_r * 1.2, top + head_r * 0.6], fill=acc
        )

    if rng.random() < 0.2:  # partial occlusion (a pole, a car, another pedestrian)
        oy = rng.uniform(HEIGHT * 0.4, HEIGHT * 0.85)
        ox = rng.uniform(-WIDTH * 0.3, WIDTH * 0.6)
        draw.rectangle([ox, oy, ox + rng.uniform(12, 40), HEIGHT],
                       fill=_color(PALETTE[int(rng.integers(len(PALETTE)))], light))  # fmt: skip
    if rng.random() < 0.3:  # detector-box jitter: a slightly wrong crop, resized back
        dx, dy = rng.uniform(-0.08, 0.08) * WIDTH, rng.uniform(-0.06, 0.06) * HEIGHT
        zoom = rng.uniform(0.88, 1.0)
        w, h = WIDTH * zoom, HEIGHT * zoom
        x0, y0 = (WIDTH - w) / 2 + dx, (HEIGHT - h) / 2 + dy
        img = img.transform((WIDTH, HEIGHT), Image.Transform.EXTENT, (x0, y0, x0 + w, y0 + h),
                            Image.Resampling.BILINEAR, fillcolor=_color(bg, np.ones(3)))  # fmt: skip
    if rng.random() < 0.6:
        img = img.filter(ImageFilter.GaussianBlur(radius=float(rng.uniform(0.3, 1.3))))
    arr = np.asarray(img, dtype=np.float32) + rng.normal(0, 4, (HEIGHT, WIDTH, 3))
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))


def render_distractor(cam: int, rng: np.random.Generator) -> Image.Image:
    """A gallery distractor (pid 0): background with clutter and a fragment of a person."""
    attrs = identity_attributes(int(rng.integers(1 << 30)), 0)
    img = np.asarray(render_person(attrs, cam, rng), dtype=np.float32)
    cut = int(rng.integers(HEIGHT // 4, HEIGHT // 2))
    img[:cut] = img[:cut].mean(axis=(0, 1))  # only a lower fragment is left
    return Image.fromarray(img.astype(np.uint8))


# (file name, pid, cam, image seed); pid 0 = distractor, -1 = junk
Job = tuple[str, int, int, int]


def _count(rng: np.random.Generator, mean: float, low: int) -> int:
    return max(low, int(rng.poisson(mean)))


def plan_dataset(preset: Preset, seed: int) -> dict[str, list[Job]]:
    """What to render for each split (file names follow Market-1501's PPPP_cCsS_FFFFFF_NN.jpg)."""
    rng = np.random.default_rng([seed, 0])
    pids = rng.permutation(np.arange(1, 1 + preset.train_ids + preset.test_ids) * 2)
    train_pids, test_pids = sorted(pids[: preset.train_ids]), sorted(pids[preset.train_ids :])
    plan: dict[str, list[Job]] = {"bounding_box_train": [], "query": [], "bounding_box_test": []}
    frame = 0

    def job(split: str, pid: int, cam: int) -> None:
        nonlocal frame
        frame += 1
        name = (
            f"{pid:04d}_c{cam + 1}s1_{frame:06d}_00.jpg"
            if pid >= 0
            else f"-1_c{cam + 1}s1_{frame:06d}_00.jpg"
        )
        plan[split].append((name, int(pid), cam, int(rng.integers(1 << 31))))

    for pid in train_pids:
        count = _count(rng, preset.train_images_per_id, 2)
        cams = rng.choice(NUM_CAMERAS, size=int(rng.integers(2, NUM_CAMERAS + 1)), replace=False)
        for i in range(count):
            job("bounding_box_train", pid, int(cams[i % len(cams)]))
    for pid in test_pids:
        # 1..5 queries in distinct cameras (mean queries_per_id), leaving a camera for the gallery
        spread = NUM_CAMERAS - 2
        num_query = 1 + int(rng.binomial(spread, (preset.queries_per_id - 1) / spread))
        cams = rng.choice(NUM_CAMERAS, size=min(NUM_CAMERAS, num_query + 1 + int(rng.integers(0, 2))),
                          replace=False)  # fmt: skip
        for cam in cams[:num_query]:
            job("query", pid, int(cam))
        # every camera of the identity gets gallery images, so each query has a cross-camera match
        gallery = max(len(cams), _count(rng, preset.gallery_per_id, 2))
        for i in range(gallery):
            job("bounding_box_test", pid, int(cams[i % len(cams)]))
    for _ in range(preset.distractors):
        job("bounding_box_test", 0, int(rng.integers(NUM_CAMERAS)))
    for _ in range(preset.junk):
        job("bounding_box_test", -1, int(rng.integers(NUM_CAMERAS)))
    return plan


def _render_job(args: tuple[int, str, Job]) -> tuple[str, bytes]:
    seed, split, (name, pid, cam, image_seed) = args
    rng = np.random.default_rng([seed, 2, image_seed])
    if pid > 0:
        img = render_person(identity_attributes(seed, pid), cam, rng)
    else:
        img = render_distractor(cam, rng)
    buf = io.BytesIO()
    img.save(buf, format="JPEG", quality=int(rng.integers(60, 96)))
    return f"{split}/{name}", buf.getvalue()


MANIFEST = "manifest.json"


def manifest_key(preset: str, seed: int) -> dict:
    """What a finished dataset's manifest must say for it to be reused as is."""
    return {
        "format": FORMAT_VERSION,
        "preset": preset,
        "seed": seed,
        "sizes": asdict(PRESETS[preset]),
    }


def read_manifest(out_dir: str | Path) -> dict[str, Any] | None:
    """The manifest of the dataset in `out_dir` (None without one); InputError when it is corrupt."""
    manifest = Path(out_dir) / MANIFEST
    if not manifest.is_file():
        return None
    expected = (
        f"expected the JSON object a finished synthetic dataset ends with; "
        f"delete {Path(out_dir)} to regenerate it"
    )
    try:
        found = json.loads(manifest.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise InputError(f"{manifest}: unreadable ({error_summary(err)}); {expected}") from err
    if not isinstance(found, dict):
        raise InputError(f"{manifest}: holds a JSON {type(found).__name__}; {expected}")
    return found


def is_complete(out_dir: str | Path, preset: str, seed: int) -> bool:
    """True when `out_dir` holds a finished dataset of this preset, seed and generator version."""
    found = read_manifest(out_dir)
    if found is None:
        return False
    return all(found.get(k) == v for k, v in manifest_key(preset, seed).items())


SPLITS = ("bounding_box_train", "query", "bounding_box_test")
# `.<name>.tmp<pid>`: a dataset being written; `.<name>.old<pid>`: a replaced copy being deleted
STAGING_NAME = re.compile(r"^\.(?P<name>.+)\.(?:tmp|old)(?P<pid>\d+)$")


def pid_alive(pid: int) -> bool:
    """True when a process `pid` exists (possibly another user's)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except PermissionError:
        return True
    except (ProcessLookupError, OverflowError):
        return False
    return True


def remove_stale_staging(parent: str | Path) -> list[Path]:
    """Delete the staging folders in `parent` left by generators that no longer run; returns them.

    Only folders named `.<name>.tmp<pid>` / `.<name>.old<pid>` holding a split folder or a
    manifest count: anything else is not ours.
    """
    parent, removed = Path(parent), []
    if not parent.is_dir():
        return removed
    for path in parent.iterdir():
        match = STAGING_NAME.match(path.name)
        if not match or not path.is_dir() or path.is_symlink() or pid_alive(int(match["pid"])):
            continue
        if any((path / split).is_dir() for split in SPLITS) or (path / MANIFEST).is_file():
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed


@contextmanager
def _sigterm_raises() -> Iterator[None]:
    """Within: SIGTERM raises SystemExit(143), so `finally` blocks run (main thread, and only
    where SIGTERM still has its default handler)."""
    if (
        threading.current_thread() is not threading.main_thread()
        or signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL
    ):
        yield
        return

    def terminate(signum: int, _frame: object) -> None:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # let the cleanup finish
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _init_worker() -> None:
    """A render worker: Ctrl-C is the parent's to handle; SIGTERM (Pool.terminate) ends it; and on
    Linux it gets SIGTERM when its parent dies, even by SIGKILL."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    if sys.platform.startswith("linux"):
        with suppress(OSError, AttributeError):
            ctypes.CDLL(None).prctl(1, int(signal.SIGTERM))  # PR_SET_PDEATHSIG


def _render_all(jobs: list[tuple[int, str, Job]], tmp: Path, workers: int) -> None:
    """Render every job into `tmp`; a pool of `workers` processes for large sets."""
    if len(jobs) < 2000 or workers == 1:
        for rel, data in map(_render_job, jobs):
            (tmp / rel).write_bytes(data)
        return
    # Leaving the `with` block (done, error, SIGTERM, Ctrl-C) terminates the workers.
    with multiprocessing.Pool(workers, initializer=_init_worker) as pool:
        for rel, data in pool.imap(_render_job, jobs, chunksize=128):
            (tmp / rel).write_bytes(data)


def generate_dataset(
    out_dir: str | Path, preset: str = "small", seed: int = 0, workers: int | None = None
) -> Path:
    """Write the dataset into `out_dir` (a temp folder renamed at the end; manifest marks it done).

    An older generated copy (a manifest of another version or size) is replaced; a folder without
    a manifest is not ours and is left alone (error).
    """
    if preset not in PRESETS:
        raise InputError(f"synthetic preset={preset!r}: expected one of {sorted(PRESETS)}")
    out_dir = Path(out_dir)
    if out_dir.exists() and not (out_dir / MANIFEST).is_file():
        raise ExistingOutputError(
            f"{out_dir} exists but has no {MANIFEST}, so it is not a generated dataset; "
            "move it away or set paths.data_dir to another folder"
        )
    read_manifest(out_dir)  # a corrupt manifest: stop here, naming it
    plan = plan_dataset(PRESETS[preset], seed)
    jobs = [(seed, split, job) for split, split_jobs in plan.items() for job in split_jobs]
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_staging(out_dir.parent)
    tmp = out_dir.with_name(f".{out_dir.name}.tmp{os.getpid()}")
    start = time.time()
    workers = min(workers or os.cpu_count() or 1, 8)
    with _sigterm_raises():
        try:
            shutil.rmtree(tmp, ignore_errors=True)
            for split in plan:
                (tmp / split).mkdir(parents=True)
            _render_all(jobs, tmp, workers)
            manifest = {**manifest_key(preset, seed), "files": {s: len(j) for s, j in plan.items()},
                        "seconds": round(time.time() - start, 1)}  # fmt: skip
            (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
        except BaseException:  # an error, SIGTERM or Ctrl-C: leave no staging folder behind
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    if is_complete(out_dir, preset, seed):  # another process finished first: keep its copy
        shutil.rmtree(tmp, ignore_errors=True)
        return out_dir
    old = out_dir.with_name(f".{out_dir.name}.old{os.getpid()}")
    if out_dir.exists():  # a stale generated copy
        out_dir.rename(old)
    try:
        tmp.rename(out_dir)
    except OSError:  # lost a race against another process writing the same dataset
        if not is_complete(out_dir, preset, seed):
            raise
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.rmtree(old, ignore_errors=True)
    return out_dir


def synthetic_dataset_dir(root: str | Path, preset: str, seed: int) -> Path:
    """Where a preset and seed is generated under the data folder: <root>/synthetic-PRESET-seedSEED."""
    return Path(root) / f"synthetic-{preset}-seed{int(seed)}"


if __name__ == "__main__":  # the command moved to cli/ (data does not know the commands)
    print(
        "error: run `python -m reidtricks.synthetic` (same options); "
        "reidtricks.data.synthetic_generator is the library",
        file=sys.stderr,
    )
    raise SystemExit(2)
