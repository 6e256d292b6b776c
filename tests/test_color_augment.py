"""Colour augmentation in the training transform (data/color_augment.py): off changes nothing;
each option equals torchvision's own class run on the same random stream and formulas written
out; the settings compose from the command line; bad values are one line."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from PIL import Image
from torchvision import transforms as T
from torchvision.transforms import functional as F

from helpers import compose_train
from reidtricks.data.settings import IMAGENET_MEAN, IMAGENET_STD, DataConfig, TransformConfig
from reidtricks.data.transforms import build_train_transform
from reidtricks.errors import InputError

SIZE = (32, 16)  # H, W
PLAIN = {"flip_prob": 0.0, "pad": 0, "mean": (0, 0, 0), "std": (1, 1, 1)}  # output = pixels / 255
SEEDS = range(12)


def _array(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(*SIZE, 3), dtype=np.uint8)


def _image(seed: int = 0) -> Image.Image:
    """A random RGB image of a size other than SIZE, so that the resize does work."""
    arr = np.random.default_rng(seed).integers(0, 256, size=(45, 20, 3), dtype=np.uint8)
    return Image.fromarray(arr)


def _transform(**changes):
    return build_train_transform(TransformConfig(height=SIZE[0], width=SIZE[1], **changes))


def _generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _clone(generator: torch.Generator) -> torch.Generator:
    return torch.Generator().set_state(generator.get_state())


def _pixels(out: torch.Tensor) -> np.ndarray:
    """A transform's output under PLAIN (pixels / 255) as H x W x 3 floats in [0, 255]."""
    return out.permute(1, 2, 0).double().numpy() * 255


def _torchvision(*colour, pad: int = 10, erasing_prob: float = 0.0):
    """The default pipeline with `colour` steps, built from torchvision's classes (global RNG):
    run after torch.manual_seed(s), they see the stream of a torch.Generator seeded with s."""
    steps = T.Compose(
        [
            T.Resize(SIZE, interpolation=T.InterpolationMode.BILINEAR),
            T.RandomHorizontalFlip(0.5),
            T.Pad(pad),
            T.RandomCrop(SIZE),
            *colour,
            T.ToTensor(),
            T.Normalize(IMAGENET_MEAN, IMAGENET_STD),
        ]
    )
    erasing = TransformConfig(erasing_prob=erasing_prob).random_erasing()

    def run(image: Image.Image, seed: int) -> torch.Tensor:
        torch.manual_seed(seed)
        return erasing(steps(image)) if erasing_prob > 0 else steps(image)

    return run


def _same_as_torchvision(ours, reference, seeds=SEEDS) -> None:
    for seed in seeds:
        image = _image(seed)
        assert torch.equal(ours(image, _generator(seed)), reference(image, seed)), seed


# -- off: the pipeline as it was -----------------------------------------------------------------
@pytest.mark.parametrize(
    "off",
    [{}, {"color_jitter": 0}, {"color_jitter": [0, 0, 0, 0]}, {"grayscale_prob": 0.0},
     {"auto_augment": "none"}],
)  # fmt: skip
def test_off_values_give_the_pipeline_of_before(off):
    """Resize, flip, pad + crop, normalise, erasing: torchvision's classes on the same stream."""
    _same_as_torchvision(_transform(erasing_prob=0.5, **off), _torchvision(erasing_prob=0.5))


# -- colour jitter -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "setting,strengths",
    [
        (0.4, (0.4, 0.4, 0.4, 0.1)),  # one strength s: hue s / 4
        (3.0, (3.0, 3.0, 3.0, 0.5)),  # hue at most 0.5; factors from max(0, 1 - s)
        ([0.3, 0.2, 0.5, 0.05], (0.3, 0.2, 0.5, 0.05)),
        ([0.5, 0.0, 0.0, 0.0], (0.5, 0.0, 0.0, 0.0)),  # brightness only
        ([0.0, 0.0, 0.0, 0.2], (0.0, 0.0, 0.0, 0.2)),  # hue only
    ],
)
def test_jitter_is_torchvisions_color_jitter_on_the_same_stream(setting, strengths):
    ours = _transform(color_jitter=setting, erasing_prob=0.5)
    _same_as_torchvision(ours, _torchvision(T.ColorJitter(*strengths), erasing_prob=0.5))
    plain = _transform(erasing_prob=0.5)
    assert not torch.equal(ours(_image(), _generator(0)), plain(_image(), _generator(0)))


def test_jitter_factors_and_order_recomputed_from_a_cloned_generator():
    b, c, s, h = 0.3, 0.4, 0.5, 0.1
    t = _transform(color_jitter=[b, c, s, h], pad=3)
    adjust = [F.adjust_brightness, F.adjust_contrast, F.adjust_saturation, F.adjust_hue]
    ranges = [(1 - b, 1 + b), (1 - c, 1 + c), (1 - s, 1 + s), (-h, h)]
    orders = set()
    for seed in SEEDS:
        generator = _generator(seed)
        replay = _clone(generator)
        image = _image(seed)
        out = t(image, generator)
        # the documented draws: flip, crop top and left, op order, then the four factors
        expected = F.resize(image, list(SIZE), interpolation=T.InterpolationMode.BILINEAR)
        if torch.rand(1, generator=replay).item() < 0.5:
            expected = F.hflip(expected)
        top, left = (int(torch.randint(0, 7, (1,), generator=replay)) for _ in range(2))
        expected = F.crop(F.pad(expected, 3), top, left, *SIZE)
        order = torch.randperm(4, generator=replay).tolist()
        factors = [float(torch.empty(1).uniform_(*r, generator=replay)) for r in ranges]
        for op in order:
            expected = adjust[op](expected, factors[op])
        expected = F.normalize(F.to_tensor(expected), IMAGENET_MEAN, IMAGENET_STD)
        assert torch.equal(out, expected), seed
        orders.add(tuple(order))
    assert len(orders) > 3  # the order is drawn, not fixed


def test_brightness_jitter_scales_pixels_by_a_factor_spread_over_its_range():
    colour = np.array([100.0, 150.0, 170.0])
    image = Image.new("RGB", SIZE[::-1], tuple(int(v) for v in colour))
    t = _transform(color_jitter=[0.5, 0, 0, 0], **PLAIN)
    factors = []
    for seed in range(200):
        generator = _generator(seed)
        replay = _clone(generator)
        out = _pixels(t(image, generator))
        torch.rand(1, generator=replay)  # the flip draw
        torch.randperm(4, generator=replay)
        factor = float(torch.empty(1).uniform_(0.5, 1.5, generator=replay))
        scaled = np.minimum(colour * factor, 255)  # PIL: v * f, truncated to an integer
        assert np.all(np.abs(out - scaled) < 1 + 1e-6), seed
        factors.append(out[0, 0, 0] / colour[0])
    assert min(factors) < 0.55 and max(factors) > 1.45


# -- random grayscale ----------------------------------------------------------------------------
def test_grayscale_with_p_1_is_the_luma_in_every_channel():
    for seed in range(3):
        arr = _array(seed)
        out = _pixels(_transform(grayscale_prob=1.0, **PLAIN)(Image.fromarray(arr), _generator(0)))
        luma = 0.299 * arr[..., 0] + 0.587 * arr[..., 1] + 0.114 * arr[..., 2]  # ITU-R 601-2
        for ch in range(3):
            assert np.all(np.abs(out[..., ch] - luma) <= 0.5 + 1e-4)  # rounded to an integer


def test_grayscale_rate_and_torchvisions_random_grayscale_on_the_same_stream():
    t = _transform(grayscale_prob=0.3, **PLAIN)
    image = Image.fromarray(_array())
    n = 600
    gray = sum(
        bool(torch.equal(out[0], out[1]) and torch.equal(out[1], out[2]))
        for out in (t(image, _generator(seed)) for seed in range(n))
    )
    assert abs(gray - n * 0.3) <= 5 * math.sqrt(n * 0.3 * 0.7), gray
    _same_as_torchvision(_transform(grayscale_prob=0.3), _torchvision(T.RandomGrayscale(0.3)))


# -- auto-augment --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "policy,reference",
    [
        ("autoaugment", T.AutoAugment(T.AutoAugmentPolicy.IMAGENET)),
        ("trivialaugment", T.TrivialAugmentWide()),
    ],
)
def test_auto_augment_is_torchvisions_policy_on_the_same_stream(policy, reference):
    ours = _transform(auto_augment=policy, erasing_prob=0.5)
    _same_as_torchvision(ours, _torchvision(reference, erasing_prob=0.5), seeds=range(40))


def _posterize(arr: np.ndarray, bits: int) -> np.ndarray:
    return arr & np.uint8((0xFF << (8 - bits)) & 0xFF)


def _solarize(arr: np.ndarray, threshold: float) -> np.ndarray:
    return np.where(arr >= threshold, 255 - arr, arr).astype(np.uint8)


def _translate_x(arr: np.ndarray, dx: int) -> np.ndarray:
    out = np.zeros_like(arr)  # black fill
    if abs(dx) >= arr.shape[1]:
        return out
    if dx >= 0:
        out[:, dx:] = arr[:, : arr.shape[1] - dx]
    else:
        out[:, :dx] = arr[:, -dx:]
    return out


# TrivialAugmentWide's ops in their documented order (torchvision 0.13+), 31 magnitude bins
# (the magnitudes are float32 steps: torch.linspace, as documented, not exact decimals).
BINS = 31
TRIVIAL_OPS = ["Identity", "ShearX", "ShearY", "TranslateX", "TranslateY", "Rotate", "Brightness",
               "Color", "Contrast", "Sharpness", "Posterize", "Solarize", "AutoContrast",
               "Equalize"]  # fmt: skip
TRIVIAL_SIGNED = {"ShearX", "ShearY", "TranslateX", "TranslateY", "Rotate", "Brightness", "Color",
                  "Contrast", "Sharpness"}  # fmt: skip


def test_trivial_augment_ops_written_out():
    """Identity, posterize, solarize, brightness and x-translation by hand, from a replayed
    generator: op uniform over 14, magnitude bin uniform over 31, sign a coin."""
    t = _transform(auto_augment="trivialaugment", **PLAIN)
    seen = set()
    for seed in range(300):
        arr = _array(seed)
        generator = _generator(seed)
        replay = _clone(generator)
        out = _pixels(t(Image.fromarray(arr), generator))
        torch.rand(1, generator=replay)  # the flip draw
        op = TRIVIAL_OPS[int(torch.randint(14, (1,), generator=replay))]
        level = 0
        if op not in ("Identity", "AutoContrast", "Equalize"):
            level = int(torch.randint(BINS, (1,), generator=replay))
        sign = -1 if op in TRIVIAL_SIGNED and torch.randint(2, (1,), generator=replay) else 1
        if op == "Identity":
            expected = arr
        elif op == "Posterize":
            expected = _posterize(arr, 8 - round(level / 5))
        elif op == "Solarize":
            expected = _solarize(arr, float(torch.linspace(255, 0, BINS)[level]))
        elif op == "Brightness":
            factor = 1 + sign * float(torch.linspace(0, 0.99, BINS)[level])
            expected = np.clip(np.floor(arr * np.float32(factor)), 0, 255)  # PIL truncates
        elif op == "TranslateX":
            expected = _translate_x(arr, int(sign * float(torch.linspace(0, 32, BINS)[level])))
        else:
            continue
        assert np.allclose(out, expected, rtol=0, atol=1e-3), (seed, op, level, sign)
        seen.add(op)
    assert seen == {"Identity", "Posterize", "Solarize", "Brightness", "TranslateX"}


# Sub-policies of AutoAugment's ImageNet policy (Cubuk et al., torchvision's order) whose ops
# have a formula here: (op, probability, magnitude bin of 10).
AUTO_POLICIES = {
    1: [("Solarize", 0.6, 5), ("AutoContrast", 0.6, None)],
    3: [("Posterize", 0.6, 7), ("Posterize", 0.6, 6)],
    4: [("Equalize", 0.4, None), ("Solarize", 0.2, 4)],
    6: [("Solarize", 0.6, 3), ("Equalize", 0.6, None)],
    17: [("Sharpness", 0.4, 7), ("Invert", 0.6, None)],
}


def test_auto_augment_sub_policies_written_out():
    """A sub-policy uniform over 25, each op applied if its uniform draw <= its probability;
    posterize to 8 - round(bin / 2.25) bits, solarize from linspace(255, 0, 10)[bin] up, invert
    to 255 - x."""
    t = _transform(auto_augment="autoaugment", **PLAIN)
    checked, ops = set(), set()
    for seed in range(400):
        arr = _array(seed)
        generator = _generator(seed)
        replay = _clone(generator)
        out = _pixels(t(Image.fromarray(arr), generator))
        torch.rand(1, generator=replay)  # the flip draw
        chosen = int(torch.randint(25, (1,), generator=replay))
        probs = torch.rand(2, generator=replay).tolist()
        if chosen not in AUTO_POLICIES:
            continue
        applied = [op for op, prob in zip(AUTO_POLICIES[chosen], probs, strict=True)
                   if prob <= op[1]]  # fmt: skip
        if any(name in ("AutoContrast", "Equalize", "Sharpness") for name, _, _ in applied):
            continue
        expected = arr
        for name, _, level in applied:
            if name == "Posterize":
                expected = _posterize(expected, 8 - round(level / 2.25))
            elif name == "Solarize":
                expected = _solarize(expected, float(torch.linspace(255, 0, 10)[level]))
            else:
                expected = 255 - expected
        assert np.allclose(out, expected, rtol=0, atol=1e-3), (seed, chosen, applied)
        checked.add((chosen, len(applied)))
        ops.update(name for name, _, _ in applied)
    assert {c for c, _ in checked} == set(AUTO_POLICIES)
    assert ops == {"Posterize", "Solarize", "Invert"}
    assert {n for _, n in checked} == {0, 1, 2}  # skipped, one op and both ops all met


# -- settings ------------------------------------------------------------------------------------
KEYS = {
    "data.transform.color_jitter=[0.4,0.3,0.2,0.1]": ("color_jitter", (0.4, 0.3, 0.2, 0.1)),
    "data.transform.color_jitter=0.25": ("color_jitter", 0.25),
    "data.transform.grayscale_prob=0.1": ("grayscale_prob", 0.1),
    "data.transform.auto_augment=trivialaugment": ("auto_augment", "trivialaugment"),
    "data.transform.auto_augment=autoaugment": ("auto_augment", "autoaugment"),
}


def _data_values(*overrides: str) -> dict:
    cfg = compose_train("paths.data_dir=/data", *overrides)
    return OmegaConf.to_container(cfg.data, resolve=True)


@pytest.mark.parametrize("override", list(KEYS))
def test_each_key_composes_and_changes_only_itself(override):
    field, value = KEYS[override]
    base, changed = _data_values(), _data_values(override)
    assert changed["transform"].pop(field) != base["transform"].pop(field)
    assert changed == base
    assert getattr(DataConfig.from_mapping(_data_values(override)).transform, field) == value


@pytest.mark.parametrize(
    "changes,key",
    [
        ({"color_jitter": -0.1}, "color_jitter"),
        ({"color_jitter": "0.4"}, "color_jitter"),
        ({"color_jitter": True}, "color_jitter"),
        ({"color_jitter": [0.1, 0.2, 0.3]}, "color_jitter"),
        ({"color_jitter": [0.1, -0.2, 0.3, 0.1]}, "color_jitter"),
        ({"color_jitter": [0.1, 0.2, 0.3, 0.6]}, "color_jitter"),
        ({"color_jitter": float("inf")}, "color_jitter"),
        ({"color_jitter": [0.1, float("nan"), 0.3, 0.1]}, "color_jitter"),
        ({"color_jitter": []}, "color_jitter"),
        ({"grayscale_prob": 1.5}, "grayscale_prob"),
        ({"grayscale_prob": -0.1}, "grayscale_prob"),
        ({"auto_augment": "randaugment"}, "auto_augment"),
        ({"auto_augment": None}, "auto_augment"),
        ({"auto_augment": "AutoAugment"}, "auto_augment"),
    ],
)
def test_bad_colour_values_are_one_line(changes, key):
    with pytest.raises(InputError) as err:
        TransformConfig(**changes)
    message = str(err.value)
    assert message.startswith(f"data.transform.{key}=") and "expected" in message
    assert "\n" not in message
