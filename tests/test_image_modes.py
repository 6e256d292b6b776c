"""Every PIL image mode is read as the 8-bit RGB picture it holds (16-bit PNGs were pure white)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from reidtricks.data.image_dataset import read_image, to_rgb


def _picture(seed: int = 0) -> np.ndarray:
    """A 24 x 16 8-bit RGB picture: gradients plus noise, every level range covered."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:24, 0:16]
    base = np.stack([y * 10, x * 15, (x + y) * 6], axis=2) + rng.integers(0, 20, (24, 16, 3))
    return np.clip(base, 0, 255).astype(np.uint8)


def _grey(rgb: np.ndarray) -> np.ndarray:
    return rgb[:, :, 1]  # any 8-bit channel serves as a grey picture


def _sixteen(grey: np.ndarray, seed: int = 1) -> np.ndarray:
    """A 16-bit picture whose 8-bit copy is `grey`: v * 257 plus noise that rounds away."""
    noise = np.random.default_rng(seed).integers(-128, 129, grey.shape)
    return np.clip(grey.astype(np.int64) * 257 + noise, 0, 65535)


def _palette_rgb(img: Image.Image) -> np.ndarray:
    palette = np.array(img.getpalette(), dtype=np.uint8).reshape(-1, 3)
    index = np.asarray(img)
    return palette[index[..., 0] if index.ndim == 3 else index]


def _cases():
    rgb = _picture()
    grey = _grey(rgb)
    grey3 = np.repeat(grey[:, :, None], 3, axis=2)
    wide = _sixteen(grey)
    alpha = np.full(grey.shape, 77, dtype=np.uint8)
    p_img = Image.fromarray(rgb).convert("P", palette=Image.Palette.ADAPTIVE, colors=64)
    pa_img = p_img.convert("PA")
    bits = grey > 127
    cmyk = np.concatenate([255 - rgb, np.zeros_like(grey)[:, :, None]], axis=2)
    return {
        "I;16": (Image.fromarray(wide.astype(np.uint16)), grey3),
        "I;16B": (Image.frombytes("I;16B", (16, 24), wide.astype(">u2").tobytes()), grey3),
        "I": (Image.fromarray(wide.astype(np.int32)), grey3),
        "F": (Image.fromarray(grey.astype(np.float32)), grey3),
        "P": (p_img, _palette_rgb(p_img)),
        "PA": (pa_img, _palette_rgb(p_img)),
        "LA": (Image.fromarray(np.stack([grey, alpha], axis=2)), grey3),
        "L": (Image.fromarray(grey), grey3),
        "1": (Image.fromarray(bits), np.repeat(bits[:, :, None] * 255, 3, axis=2)),
        "CMYK": (Image.frombytes("CMYK", (16, 24), cmyk.tobytes()), rgb),
        "RGBA": (Image.fromarray(np.concatenate([rgb, alpha[:, :, None]], axis=2)), rgb),
        "RGB": (Image.fromarray(rgb), rgb),
    }


@pytest.mark.parametrize("mode", list(_cases()))
def test_every_mode_reads_as_its_8_bit_rgb_copy(mode):
    img, expected = _cases()[mode]
    assert img.mode == mode
    out = to_rgb(img)
    assert out.mode == "RGB" and out.size == (16, 24)
    diff = np.abs(np.asarray(out).astype(int) - expected.astype(int))
    assert diff.max() <= (1 if mode in ("I;16", "I;16B", "I") else 0), diff.max()


@pytest.mark.parametrize("fmt,suffix", [("PNG", ".png"), ("TIFF", ".tif")])
def test_16_bit_files_read_within_one_level_of_the_8_bit_copy(tmp_path, fmt, suffix):
    grey = _grey(_picture(2))
    wide = Image.fromarray(_sixteen(grey, seed=3).astype(np.uint16))
    path = tmp_path / f"wide{suffix}"
    wide.save(path, fmt)
    with Image.open(path) as img:
        assert img.mode in ("I;16", "I;16B", "I")  # the file really is 16-bit
    out = np.asarray(read_image(str(path))).astype(int)
    assert np.abs(out - grey[:, :, None]).max() <= 1
    assert out.std() > 30  # not a flat (white) picture


def test_extractor_features_of_a_16_bit_png_equal_its_8_bit_copy(tmp_path):
    from helpers import new_net
    from reidtricks.inference import FeatureExtractor
    from reidtricks.inference.checkpoint import InputSpec

    torch.manual_seed(0)
    net = new_net("resnet18", 4, last_stride=1, neck="bnneck")
    spec = InputSpec(32, 16, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
    extractor = FeatureExtractor(net.eval(), spec, feature="before_bn", flip=False)
    grey = _grey(_picture(4))
    Image.fromarray(grey).save(tmp_path / "eight.png")
    Image.fromarray(grey.astype(np.uint16) * 257).save(tmp_path / "sixteen.png")
    Image.new("L", (16, 24), 255).save(tmp_path / "white.png")
    feats = extractor.extract(
        [str(tmp_path / n) for n in ("eight.png", "sixteen.png", "white.png")]
    )
    assert torch.equal(feats[0], feats[1])
    assert not torch.allclose(feats[1], feats[2])


def test_search_strips_show_a_16_bit_png_as_its_8_bit_copy(tmp_path, monkeypatch):
    import matplotlib.pyplot as plt

    from reidtricks.reports.plots import plot_query_strip

    grey = _grey(_picture(5))
    path = tmp_path / "query.png"
    Image.fromarray(_sixteen(grey, seed=6).astype(np.uint16)).save(path)
    shown = []
    real_imshow = plt.Axes.imshow

    def spy(ax, image, *args, **kwargs):
        shown.append(np.asarray(image).astype(int))
        return real_imshow(ax, image, *args, **kwargs)

    monkeypatch.setattr(plt.Axes, "imshow", spy)
    plot_query_strip(str(path), [(str(path), 0.0)], tmp_path / "strip.png", "q", ["grey"])
    assert len(shown) == 2 and all(np.abs(s - grey[:, :, None]).max() <= 1 for s in shown)
