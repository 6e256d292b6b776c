"""Training augmentations as a pure function of (seed, epoch, index): the same batches for any
number of DataLoader workers, persistent or not, an exact resume, and the settings' distribution."""

from __future__ import annotations

import math

import numpy as np
import pytest
import pytorch_lightning as pl
import torch
from PIL import Image

from helpers import compose_train, tiny_overrides
from reidtricks.data.datamodule import ReIDDataModule
from reidtricks.data.datasets import SyntheticReID
from reidtricks.data.sample_rng import sample_generator
from reidtricks.data.settings import TransformConfig
from reidtricks.data.transforms import build_train_transform

LOADERS = [(0, False), (1, False), (1, True), (2, False), (2, True)]


def _datamodule(root, workers: int, persistent: bool, **transform) -> ReIDDataModule:
    tiny = SyntheticReID(root, preset="tiny", seed=0)
    return ReIDDataModule(
        train_sources={"synthetic": tiny},
        test_sources={"synthetic": tiny},
        sampler={"p": 4, "k": 4},
        transform={"height": 32, "width": 16, "pad": 3, "erasing_prob": 0.5, **transform},
        loader={"num_workers": workers, "persistent_workers": persistent},
        seed=7,
        verify_images=False,
    )


def _epochs(
    root, workers: int, persistent: bool, epochs: int = 2, **transform
) -> list[list[torch.Tensor]]:
    """The image batches of `epochs` epochs, the epoch set on the sampler as Lightning does."""
    from lightning_fabric.utilities.data import _set_sampler_epoch

    loader = _datamodule(root, workers, persistent, **transform).train_dataloader()
    out = []
    for epoch in range(epochs):
        _set_sampler_epoch(loader, epoch)
        torch.manual_seed(1000 + epoch)  # the global RNG must play no part
        out.append([images for images, _, _, _ in loader])
    return out


@pytest.mark.slow  # runs DataLoader workers
def test_batches_are_identical_for_any_workers_and_epochs_differ(tiny_data_dir):
    reference = _epochs(tiny_data_dir, 0, False)
    assert not torch.equal(reference[0][0], reference[1][0])  # a new epoch, new draws
    for workers, persistent in LOADERS[1:]:
        got = _epochs(tiny_data_dir, workers, persistent)
        for epoch, (ref, new) in enumerate(zip(reference, got, strict=True)):
            assert len(ref) == len(new)
            for step, (a, b) in enumerate(zip(ref, new, strict=True)):
                assert torch.equal(a, b), (workers, persistent, epoch, step)


@pytest.mark.slow  # runs DataLoader workers
@pytest.mark.parametrize("auto_augment", ["autoaugment", "trivialaugment"])
def test_colour_augmentation_is_the_same_for_any_workers(tiny_data_dir, auto_augment):
    colour = {"color_jitter": 0.4, "grayscale_prob": 0.3, "auto_augment": auto_augment}
    reference = _epochs(tiny_data_dir, 0, False, **colour)
    plain = _epochs(tiny_data_dir, 0, False)
    assert not torch.equal(reference[0][0], plain[0][0])  # the colour steps are on
    assert not torch.equal(reference[0][0], reference[1][0])
    for workers, persistent in [(2, False), (1, True)]:
        got = _epochs(tiny_data_dir, workers, persistent, **colour)
        for epoch, (ref, new) in enumerate(zip(reference, got, strict=True)):
            assert len(ref) == len(new)
            for step, (a, b) in enumerate(zip(ref, new, strict=True)):
                assert torch.equal(a, b), (workers, persistent, epoch, step)


def test_sample_generator_is_a_function_of_seed_epoch_index():
    def draw(*key):
        return torch.rand(4, generator=sample_generator(*key))

    assert torch.equal(draw(0, 1, 2), draw(0, 1, 2))
    keys = [(0, 1, 2), (1, 1, 2), (0, 2, 2), (0, 1, 3), (0, 2, 1)]
    assert len({tuple(draw(*k).tolist()) for k in keys}) == len(keys)


# -- the distribution is the one the settings describe -------------------------------------------
def _augment(transform, img, n: int, epoch: int = 0) -> list[torch.Tensor]:
    return [transform(img, sample_generator(3, epoch, i)) for i in range(n)]


def _binomial_ok(hits: int, n: int, p: float) -> bool:
    """Within 5 standard deviations of n * p."""
    return abs(hits - n * p) <= 5 * math.sqrt(n * p * (1 - p)) + 1e-9


def _train_transform(height: int, width: int, **changes):
    """build_train_transform for TransformConfig's defaults with these changes."""
    return build_train_transform(TransformConfig(height=height, width=width, **changes))


@pytest.mark.slow  # samples thousands of augmentations
@pytest.mark.parametrize("flip_prob", [0.0, 0.3, 0.5, 1.0])
def test_flip_rate_matches_flip_prob(flip_prob):
    arr = np.zeros((8, 4, 3), dtype=np.uint8)
    arr[:, 2:] = 255  # right half white: a flip moves it to the left
    t = _train_transform(8, 4, flip_prob=flip_prob, pad=0, mean=(0, 0, 0), std=(1, 1, 1))
    outs = _augment(t, Image.fromarray(arr), 2000)
    flipped = [bool(out[0, 0, 0] == 1.0) for out in outs]
    assert _binomial_ok(sum(flipped), len(outs), flip_prob), sum(flipped)


@pytest.mark.slow  # samples thousands of augmentations
def test_pad_crop_offsets_are_uniform_over_the_padding():
    height, width, pad = 12, 8, 3
    t = _train_transform(height, width, flip_prob=0.0, pad=pad, mean=(0, 0, 0), std=(1, 1, 1))
    white = Image.new("RGB", (width, height), (255, 255, 255))
    counts = np.zeros((2 * pad + 1, 2 * pad + 1), dtype=int)
    for out in _augment(t, white, 4900):
        rows = (out[0] == 1.0).any(dim=1).nonzero().flatten()
        cols = (out[0] == 1.0).any(dim=0).nonzero().flatten()
        # a crop at (top, left) of the padded image keeps the content rows [pad - top, ...)
        top = pad - int(rows[0]) if rows[0] > 0 else pad + (height - 1 - int(rows[-1]))
        left = pad - int(cols[0]) if cols[0] > 0 else pad + (width - 1 - int(cols[-1]))
        counts[top, left] += 1
    expected = 4900 / counts.size
    assert counts.min() > 0
    chi2 = float(((counts - expected) ** 2 / expected).sum())
    assert chi2 < 48 + 5 * math.sqrt(2 * 48), chi2  # 48 degrees of freedom


@pytest.mark.slow  # samples thousands of augmentations
def test_erasing_rate_area_and_aspect_follow_the_settings():
    height, width = 40, 20
    area, aspect = (0.05, 0.3), (0.5, 2.0)
    t = _train_transform(
        height, width, flip_prob=0.0, pad=0, mean=(0, 0, 0), std=(1, 1, 1),
        erasing_prob=0.4, erasing_area=area, erasing_aspect=aspect, erasing_fill="zero",
    )  # fmt: skip
    white = Image.new("RGB", (width, height), (255, 255, 255))
    erased = 0
    for out in _augment(t, white, 2000, epoch=5):
        hole = out[0] == 0
        if not hole.any():
            continue
        erased += 1
        rows, cols = hole.any(dim=1).nonzero().flatten(), hole.any(dim=0).nonzero().flatten()
        h, w = int(rows[-1] - rows[0] + 1), int(cols[-1] - cols[0] + 1)
        assert int(hole.sum()) == h * w and (out[:, hole] == 0).all()  # one filled rectangle
        assert 0 < h < height and 0 < w < width
        # h = round(sqrt(A r)), w = round(sqrt(A / r)): A and r within their ranges up to rounding
        lo_a, hi_a = area[0] * height * width, area[1] * height * width
        assert (math.sqrt(lo_a) - 1) ** 2 <= h * w <= (math.sqrt(hi_a) + 1) ** 2
        assert (math.sqrt(aspect[0] * lo_a) - 0.5) / (math.sqrt(hi_a / aspect[0]) + 0.5) <= h / w
        assert h / w <= (math.sqrt(hi_a * aspect[1]) + 0.5) / (math.sqrt(lo_a / aspect[1]) - 0.5)
    assert _binomial_ok(erased, 2000, 0.4), erased


# -- training: straight and resumed runs end with the same weights for any loader ----------------
def _train(data_dir, out, workers: int, persistent: bool, epochs: int, *extra: str):
    from reidtricks.cli.train import train

    overrides = [
        *tiny_overrides(data_dir, out),
        f"data.loader.num_workers={workers}",
        f"data.loader.persistent_workers={str(persistent).lower()}",
        "data.transform.erasing_prob=0.5",
        "++trainer.limit_train_batches=2",
        "trainer.check_val_every_n_epoch=100",
        "run_test=false",
        "+trick=center_loss",
        "optim.warmup_epochs=1",
        f"trainer.max_epochs={epochs}",
        *extra,
    ]
    train(compose_train(*overrides))
    return torch.load(out / "checkpoints" / "last.ckpt", weights_only=True)


def _assert_same_training(a: dict, b: dict, what) -> None:
    assert a["epoch"] == b["epoch"], what
    assert a["state_dict"].keys() == b["state_dict"].keys()
    for key, value in a["state_dict"].items():
        assert torch.equal(value, b["state_dict"][key]), (what, key)
    for sa, sb in zip(a["optimizer_states"], b["optimizer_states"], strict=True):
        for (ka, va), (kb, vb) in zip(sa["state"].items(), sb["state"].items(), strict=True):
            assert ka == kb
            for name, tensor in va.items():
                assert torch.equal(tensor, vb[name]), (what, "optimizer", ka, name)


@pytest.mark.slow
def test_straight_and_resumed_training_match_for_any_loader(tiny_data_dir, tmp_path):
    reference = _train(tiny_data_dir, tmp_path / "ref", 0, False, 3)
    for workers, persistent in LOADERS:
        tag = f"w{workers}{'p' if persistent else ''}"
        if workers:
            straight = _train(tiny_data_dir, tmp_path / tag, workers, persistent, 3)
            _assert_same_training(reference, straight, (tag, "straight"))
        logs = tmp_path / tag / "logs"
        _train(tiny_data_dir, logs / "demo" / "runs" / "first", workers, persistent, 2)
        resumed = _train(
            tiny_data_dir, tmp_path / f"{tag}-resumed", workers, persistent, 3,
            f"paths.log_dir={logs}", "ckpt_path=last",
        )  # fmt: skip
        _assert_same_training(reference, resumed, (tag, "resumed"))


class Recorder(pl.LightningModule):
    """A linear layer on the images that records every training batch per epoch."""

    def __init__(self) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(3 * 32 * 16, 1)
        self.seen: dict[int, list[torch.Tensor]] = {}

    def training_step(self, batch, batch_idx):
        images = batch[0]
        self.seen.setdefault(self.current_epoch, []).append(images.clone())
        return self.layer(images.flatten(1)).mean()

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.01)


def _fit(root, out, epochs: int, ckpt_path=None):
    """Fit the recorder with one non-persistent worker; (batches per epoch, trainer)."""
    module = Recorder()
    trainer = pl.Trainer(
        max_epochs=epochs, limit_train_batches=2, limit_val_batches=0, logger=False,
        enable_progress_bar=False, enable_model_summary=False, default_root_dir=out,
        accelerator="cpu", num_sanity_val_steps=0,
    )  # fmt: skip
    trainer.fit(module, datamodule=_datamodule(root, 1, False), ckpt_path=ckpt_path)
    return module.seen, trainer


@pytest.mark.slow  # trains, with DataLoader workers
def test_a_resumed_fit_with_workers_sees_the_batches_of_its_epoch(tiny_data_dir, tmp_path):
    straight, _ = _fit(tiny_data_dir, tmp_path / "a", 3)
    _, first = _fit(tiny_data_dir, tmp_path / "b", 2)
    ckpt = tmp_path / "b.ckpt"
    first.save_checkpoint(ckpt)
    resumed, _ = _fit(tiny_data_dir, tmp_path / "c", 3, ckpt_path=ckpt)
    assert list(resumed) == [2]
    assert len(resumed[2]) == len(straight[2]) == 2
    for a, b in zip(straight[2], resumed[2], strict=True):
        assert torch.equal(a, b)
