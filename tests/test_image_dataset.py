"""Reading images: RGB, index returned, corrupt or missing files named in the error."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from reidtricks.data.image_dataset import ImageDataset


def test_reads_rgb_and_returns_labels_and_index(tmp_path):
    Image.new("L", (8, 16), 200).save(tmp_path / "a.jpg")
    Image.new("RGBA", (6, 12), (10, 20, 30, 0)).save(tmp_path / "b.png")
    items = [(str(tmp_path / "a.jpg"), 5, 2), (str(tmp_path / "b.png"), 7, 0)]
    dataset = ImageDataset(items, transform=lambda im: (im.mode, im.size))
    assert len(dataset) == 2
    assert dataset[0] == (("RGB", (8, 16)), 5, 2, 0)
    assert dataset[1] == (("RGB", (6, 12)), 7, 0, 1)
    raw, pid, camid, index = ImageDataset(items)[1]
    assert raw.mode == "RGB" and (pid, camid, index) == (7, 0, 1)
    assert np.asarray(raw)[0, 0].tolist() == [10, 20, 30]


def test_works_in_a_dataloader(tmp_path):
    for i in range(3):
        Image.new("RGB", (4, 8), (i * 50, 0, 0)).save(tmp_path / f"{i}.png")
    items = [(str(tmp_path / f"{i}.png"), i + 10, i) for i in range(3)]
    to_tensor = lambda im: torch.from_numpy(np.asarray(im).copy()).permute(2, 0, 1)  # noqa: E731
    images, pids, camids, index = next(iter(torch.utils.data.DataLoader(
        ImageDataset(items, to_tensor), batch_size=3)))  # fmt: skip
    assert images.shape == (3, 3, 8, 4) and images[:, 0, 0, 0].tolist() == [0, 50, 100]
    assert pids.tolist() == [10, 11, 12] and camids.tolist() == [0, 1, 2]
    assert index.tolist() == [0, 1, 2]


def one_line_error(exc_type, path):
    with pytest.raises(exc_type) as err:
        ImageDataset([(str(path), 1, 0)])[0]
    message = str(err.value)
    assert message.startswith(str(path)) and "\n" not in message
    return message


def test_corrupt_missing_and_truncated_files_are_named(tmp_path):
    (tmp_path / "bad.jpg").write_bytes(b"not a jpeg at all")
    assert "cannot read image" in one_line_error(OSError, tmp_path / "bad.jpg")
    assert "does not exist" in one_line_error(FileNotFoundError, tmp_path / "gone.jpg")
    Image.new("RGB", (32, 64), (90, 10, 10)).save(tmp_path / "trunc.jpg")
    data = (tmp_path / "trunc.jpg").read_bytes()
    (tmp_path / "trunc.jpg").write_bytes(data[: len(data) // 2])
    assert "cannot read image" in one_line_error(OSError, tmp_path / "trunc.jpg")
    (tmp_path / "folder.jpg").mkdir()
    assert "cannot read image" in one_line_error(OSError, tmp_path / "folder.jpg")
