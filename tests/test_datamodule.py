"""ReIDDataModule on the tiny synthetic set: P x K training batches, query-then-gallery test sets."""

from __future__ import annotations

import pytest
import torch

from reidtricks.data.datamodule import ReIDDataModule
from reidtricks.data.datasets import Market1501, SyntheticReID


def make_datamodule(root, p=4, k=4, **sources) -> ReIDDataModule:
    tiny = SyntheticReID(root, preset="tiny", seed=0)
    return ReIDDataModule(
        train_sources=sources.get("train", {"synthetic": tiny}),
        test_sources=sources.get("test", {"synthetic": tiny}),
        sampler={"p": p, "k": k},
        transform={"height": 64, "width": 32, "pad": 3, "erasing_prob": 0.5},
        loader={"num_workers": 0, "test_batch_size": 32},
        seed=0,
        verify_images=False,
    )


def test_train_batches_are_p_by_k_and_labelled(tiny_data_dir):
    dm = make_datamodule(tiny_data_dir)
    dm.prepare_data()
    dm.setup("fit")
    assert dm.num_classes == 12
    loader = dm.train_dataloader()
    batches = list(loader)
    assert len(batches) == len(loader) > 0
    for images, pids, camids, indices in batches:
        assert images.shape == (16, 3, 64, 32) and images.dtype == torch.float32
        counts = torch.bincount(pids, minlength=12)
        assert sorted(counts[counts > 0].tolist()) == [4, 4, 4, 4]
        for pid, cam, index in zip(pids.tolist(), camids.tolist(), indices.tolist(), strict=True):
            assert dm.train_items[index][1:] == (pid, cam)


def test_test_loader_keeps_query_then_gallery_order(tiny_data_dir):
    dm = make_datamodule(tiny_data_dir)
    dm.setup("validate")
    (test_set,) = dm.test_sets
    splits = Market1501(SyntheticReID(tiny_data_dir, "tiny", 0).dataset_dir).load()
    assert test_set.query == splits.query and test_set.gallery == splits.gallery
    seen = []
    for images, pids, camids, indices in dm.val_dataloader()[0]:
        assert images.shape[1:] == (3, 64, 32)
        seen += list(zip(indices.tolist(), pids.tolist(), camids.tolist(), strict=True))
    assert [i for i, _, _ in seen] == list(range(len(test_set.items)))
    assert [(p, c) for _, p, c in seen] == [(p, c) for _, p, c in test_set.items]


def test_two_training_sources_are_offset_and_too_big_p_is_refused(tiny_data_dir):
    other = SyntheticReID(tiny_data_dir, preset="tiny", seed=1)
    dm = make_datamodule(
        tiny_data_dir, train={"a": SyntheticReID(tiny_data_dir, "tiny", 0), "b": other}
    )
    dm.setup("fit")
    assert dm.num_classes == 24 and {pid for _, pid, _ in dm.train_items} == set(range(24))
    too_big = make_datamodule(tiny_data_dir, p=13)
    too_big.setup("fit")
    with pytest.raises(ValueError, match="data.sampler.p"):
        too_big.train_dataloader()


def test_training_on_a_test_only_folder_is_one_line_error(tmp_path):
    from PIL import Image

    from reidtricks.data.datasets import FolderDataset
    from reidtricks.errors import InputError

    for sub, name in (("query", "0003_c1_a.jpg"), ("bounding_box_test", "0003_c2_a.jpg")):
        (tmp_path / "only" / sub).mkdir(parents=True)
        Image.new("RGB", (4, 8)).save(tmp_path / "only" / sub / name)
    only = FolderDataset(tmp_path / "only")
    evaluation = make_datamodule(tmp_path, train={"mine": only}, test={"mine": only})
    evaluation.setup("test")  # evaluation only: the test set is there, nothing to train on
    assert evaluation.num_classes == 0 and [len(t.items) for t in evaluation.test_sets] == [2]
    for call in ("setup", "train_dataloader"):
        dm = make_datamodule(tmp_path, train={"mine": only}, test={"mine": only})
        with pytest.raises(InputError) as err:
            dm.setup("fit") if call == "setup" else dm.train_dataloader()
        assert str(err.value).startswith("data.train_sources.mine (only) has no training images")
        assert "\n" not in str(err.value)
