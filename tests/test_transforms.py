"""Train/test transforms and random erasing, checked against hand computations and statistics."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from PIL import Image

from reidtricks.data.random_erasing import RandomErasing
from reidtricks.data.settings import IMAGENET_MEAN, IMAGENET_STD, TransformConfig
from reidtricks.data.transforms import build_test_transform, build_train_transform

SENTINEL = 100.0  # never produced by any fill mode


def train_transform(*size: int, **changes):
    """The training transform of TransformConfig's defaults with some changed (size: H, W)."""
    if size:
        changes.update(height=size[0], width=size[1])
    return build_train_transform(TransformConfig(**changes))


def eval_transform(height: int = 256, width: int = 128):
    return build_test_transform(height, width, IMAGENET_MEAN, IMAGENET_STD)


def _erased_box(img: torch.Tensor, out: torch.Tensor):
    """(top, left, h, w) of the changed rectangle, or None; asserts the change is one rectangle."""
    changed = (out != img).any(dim=0)
    if not changed.any():
        return None
    rows = torch.nonzero(changed.any(dim=1)).flatten()
    cols = torch.nonzero(changed.any(dim=0)).flatten()
    top, left = int(rows[0]), int(cols[0])
    h, w = int(rows[-1]) - top + 1, int(cols[-1]) - left + 1
    assert int(changed.sum()) == h * w  # a filled rectangle, nothing else
    return top, left, h, w


def _sentinel(c: int = 3, h: int = 256, w: int = 128) -> torch.Tensor:
    return torch.full((c, h, w), SENTINEL)


# -- random erasing ----------------------------------------------------------------------------
def test_erasing_statistics():
    torch.manual_seed(0)
    height, width, n, p = 256, 128, 1000, 0.5
    lo_a, hi_a, lo_r, hi_r = 0.02, 0.4, 0.3, 3.33
    rea = RandomErasing(p, (lo_a, hi_a), (lo_r, hi_r), fill="zero")
    img = _sentinel(1, height, width)  # the rectangle does not depend on the channels
    boxes = [_erased_box(img, rea(img)) for _ in range(n)]
    assert (img == SENTINEL).all()  # input untouched
    erased = [b for b in boxes if b is not None]
    # binomial(n, p): 5 standard deviations
    assert abs(len(erased) - n * p) <= 5 * math.sqrt(n * p * (1 - p))

    total = height * width
    # h = round(sqrt(A r)), w = round(sqrt(A / r)), each off by <= 0.5, so
    # |h*w - A| <= 0.5 * sqrt(A) * (sqrt(r) + 1/sqrt(r)) + 0.25, worst r at the range ends.
    c = max(math.sqrt(r) + 1 / math.sqrt(r) for r in (lo_r, hi_r))
    a_min, a_max = lo_a * total, hi_a * total
    area_lo = (a_min - 0.5 * math.sqrt(a_min) * c) / total
    area_hi = (a_max + 0.5 * math.sqrt(a_max) * c + 0.25) / total
    # h/w in [(sqrt(A r)-.5)/(sqrt(A/r)+.5), (sqrt(A r)+.5)/(sqrt(A/r)-.5)], loosest at A_min
    asp_lo = (math.sqrt(a_min * lo_r) - 0.5) / (math.sqrt(a_min / lo_r) + 0.5)
    asp_hi = (math.sqrt(a_min * hi_r) + 0.5) / (math.sqrt(a_min / hi_r) - 0.5)
    areas = np.array([h * w / total for _, _, h, w in erased])
    aspects = np.array([h / w for _, _, h, w in erased])
    assert areas.min() >= area_lo and areas.max() <= area_hi
    assert aspects.min() >= asp_lo and aspects.max() <= asp_hi
    # the ranges are actually covered
    assert areas.min() < 0.04 and areas.max() > 0.3
    assert aspects.min() < 0.5 and aspects.max() > 2.5
    for top, left, h, w in erased:
        assert h < height and w < width
        assert 0 <= top <= height - h and 0 <= left <= width - w
    tops = np.array([t for t, _, _, _ in erased])
    assert tops.min() < 10  # placement spans the image
    assert (tops + np.array([h for _, _, h, _ in erased])).max() > height - 10


@pytest.mark.parametrize(
    "fill,expected",
    [
        ("imagenet_mean", (0.485, 0.456, 0.406)),
        ("zero", (0.0, 0.0, 0.0)),
        ((1.5, -2.0, 3.25), (1.5, -2.0, 3.25)),
        ([0.1, 0.2, 0.3], (0.1, 0.2, 0.3)),
    ],
)
def test_erasing_constant_fills(fill, expected):
    torch.manual_seed(1)
    rea = RandomErasing(1.0, fill=fill)
    img = _sentinel()
    for _ in range(50):
        out = rea(img)
        top, left, h, w = _erased_box(img, out)
        patch = out[:, top : top + h, left : left + w]
        for ch, value in enumerate(expected):
            assert (patch[ch] == torch.tensor(value, dtype=torch.float32)).all()


def test_erasing_random_fill_is_normal_noise():
    torch.manual_seed(2)
    rea = RandomErasing(1.0, fill="random")
    img = _sentinel()
    values = []
    for _ in range(20):
        out = rea(img)
        top, left, h, w = _erased_box(img, out)
        patch = out[:, top : top + h, left : left + w]
        assert not torch.equal(patch[0], patch[1])  # per pixel and per channel
        values.append(patch.flatten())
    v = torch.cat(values)
    assert abs(float(v.mean())) < 0.02 and abs(float(v.std()) - 1.0) < 0.02


def test_erasing_probability_extremes_and_rng():
    img = _sentinel()
    never = RandomErasing(0.0)
    always = RandomErasing(1.0)
    torch.manual_seed(3)
    assert all(torch.equal(never(img), img) for _ in range(100))
    assert all(_erased_box(img, always(img)) is not None for _ in range(100))
    # torch's RNG drives it: same seed, same rectangle
    torch.manual_seed(4)
    a = always(img)
    torch.manual_seed(4)
    assert torch.equal(a, always(img))


def test_erasing_gives_up_when_nothing_fits():
    # area >= 0.9 of a 4 x 4 image never fits strictly inside it
    rea = RandomErasing(1.0, area_range=(0.9, 1.0), aspect_range=(1.0, 1.0), max_attempts=5)
    img = _sentinel(3, 4, 4)
    assert torch.equal(rea(img), img)


@pytest.mark.parametrize(
    "kwargs,word",
    [
        ({"probability": -0.1}, "probability"),
        ({"probability": 1.5}, "probability"),
        ({"area_range": (0.5, 0.1)}, "area_range"),
        ({"area_range": (0.0, 0.4)}, "area_range"),
        ({"area_range": (0.1, 1.5)}, "area_range"),
        ({"area_range": (0.1,)}, "area_range"),
        ({"aspect_range": (0.0, 1.0)}, "aspect_range"),
        ({"aspect_range": (3.0, 1.0)}, "aspect_range"),
        ({"fill": "mean"}, "fill"),
        ({"fill": []}, "fill"),
        ({"max_attempts": 0}, "max_attempts"),
    ],
)
def test_erasing_bad_values(kwargs, word):
    with pytest.raises(ValueError, match=word):
        RandomErasing(**kwargs)


def test_erasing_fill_channel_mismatch():
    with pytest.raises(ValueError, match=r"fill .*2 values .*3 channels"):
        RandomErasing(1.0, fill=(0.1, 0.2))(_sentinel())
    with pytest.raises(ValueError, match=r"fill .*3 values .*1 channels"):
        RandomErasing(1.0)(_sentinel(1))


# -- transforms --------------------------------------------------------------------------------
def _random_image(height: int, width: int, seed: int = 0) -> tuple[Image.Image, np.ndarray]:
    arr = np.random.default_rng(seed).integers(0, 256, size=(height, width, 3), dtype=np.uint8)
    return Image.fromarray(arr), arr


def _normalise(arr: np.ndarray) -> torch.Tensor:
    """H x W x 3 uint8 -> 3 x H x W, (x / 255 - mean) / std, written out."""
    x = arr.astype(np.float64) / 255.0
    x = (x - np.array(IMAGENET_MEAN)) / np.array(IMAGENET_STD)
    return torch.from_numpy(x.transpose(2, 0, 1).copy()).float()


def test_output_shape_and_dtype():
    img, _ = _random_image(90, 50)
    for t in (
        train_transform(),
        eval_transform(),
        train_transform(erasing_prob=1),
    ):
        out = t(img)
        assert out.shape == (3, 256, 128) and out.dtype == torch.float32
    out = train_transform(64, 32, pad=4)(img)
    assert out.shape == (3, 64, 32)


def test_normalisation_on_constant_image():
    img = Image.new("RGB", (40, 70), (200, 100, 50))
    expected = [
        (200 / 255 - 0.485) / 0.229,
        (100 / 255 - 0.456) / 0.224,
        (50 / 255 - 0.406) / 0.225,
    ]
    for t in (eval_transform(32, 16), train_transform(32, 16, pad=0)):
        out = t(img)
        for ch in range(3):
            assert torch.allclose(out[ch], torch.full((32, 16), expected[ch]), atol=1e-5)


def test_flip_probability():
    img, arr = _random_image(32, 16, seed=1)
    keep = train_transform(32, 16, flip_prob=0.0, pad=0)
    flip = train_transform(32, 16, flip_prob=1.0, pad=0)
    plain, mirrored = _normalise(arr), _normalise(arr[:, ::-1])
    for _ in range(5):
        assert torch.allclose(keep(img), plain, atol=1e-6)
        assert torch.allclose(flip(img), mirrored, atol=1e-6)


def test_pad_and_crop_only_shift_content():
    height, width, pad = 24, 12, 4
    img, arr = _random_image(height, width, seed=2)
    t = train_transform(height, width, flip_prob=0.0, pad=pad)
    padded = np.zeros((height + 2 * pad, width + 2 * pad, 3), dtype=np.uint8)
    padded[pad : pad + height, pad : pad + width] = arr
    reference = _normalise(padded)
    zero_pixel = _normalise(np.zeros((1, 1, 3), dtype=np.uint8))[:, 0, 0]
    offsets = set()
    for seed in range(25):
        torch.manual_seed(seed)
        out = t(img)
        torch.manual_seed(seed)
        assert torch.equal(out, t(img))  # fixed seed, same crop
        matches = [
            (dy, dx)
            for dy in range(2 * pad + 1)
            for dx in range(2 * pad + 1)
            if torch.allclose(out, reference[:, dy : dy + height, dx : dx + width], atol=1e-6)
        ]
        assert len(matches) == 1
        dy, dx = matches[0]
        offsets.add((dy, dx))
        if dy < pad:  # shifted down: the top rows are the zero border
            assert torch.allclose(
                out[:, : pad - dy], zero_pixel.view(3, 1, 1).expand(3, pad - dy, width)
            )
        if dx > pad:  # shifted left: the right columns are the zero border
            border = out[:, :, width - (dx - pad) :]
            assert torch.allclose(border, zero_pixel.view(3, 1, 1).expand_as(border))
    assert len(offsets) > 5 and any(o != (pad, pad) for o in offsets)


def test_test_transform_deterministic_and_bilinear():
    img, _ = _random_image(70, 30, seed=3)
    t = eval_transform(32, 16)
    a, b = t(img), t(img)
    assert torch.equal(a, b)
    resized = np.asarray(img.resize((16, 32), Image.BILINEAR))
    assert torch.allclose(a, _normalise(resized), atol=1e-6)


def test_train_erasing_only_when_enabled():
    img, arr = _random_image(32, 16, seed=4)
    plain = _normalise(arr)
    off = train_transform(32, 16, flip_prob=0.0, pad=0, erasing_prob=0.0)
    on = train_transform(32, 16, flip_prob=0.0, pad=0, erasing_prob=1.0, erasing_fill="zero")
    torch.manual_seed(5)
    for _ in range(20):
        assert torch.allclose(off(img), plain, atol=1e-6)
        out = on(img)
        changed = ~torch.isclose(out, plain, atol=1e-6)
        assert changed.any() and (out[changed] == 0).all()


@pytest.mark.parametrize(
    "kwargs,word",
    [
        ({"height": 0}, "data.transform.height"),
        ({"width": -3}, "data.transform.width"),
        ({"pad": -1}, "data.transform.pad"),
        ({"flip_prob": 1.5}, "data.transform.flip_prob"),
        ({"mean": (0.5, 0.5)}, "data.transform.mean"),
        ({"std": (0.2, 0.0, 0.2)}, "data.transform.std"),
        ({"erasing_prob": 2.0}, "data.transform.erasing_prob"),
        ({"erasing_fill": "foo"}, "data.transform.erasing_.*fill"),
        ({"erasing_area": (0.5, 0.1)}, "data.transform.erasing_.*area_range"),
    ],
)
def test_transform_bad_values(kwargs, word):
    with pytest.raises(ValueError, match=word):
        TransformConfig(**kwargs)
