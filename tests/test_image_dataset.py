"""Reading images: RGB, index returned, corrupt or missing files named in the error."""

from __future__ import annotations

import pytest
from PIL import Image

from reidtricks.data.image_dataset import ImageDataset


def test_reads_rgb_and_returns_labels(tmp_path):
    Image.new("L", (8, 16), 200).save(tmp_path / "a.jpg")
    dataset = ImageDataset([(str(tmp_path / "a.jpg"), 5, 2)], transform=lambda im: im.size)
    assert len(dataset) == 1 and dataset[0] == ((8, 16), 5, 2, 0)
    raw = ImageDataset([(str(tmp_path / "a.jpg"), 5, 2)])[0][0]
    assert raw.mode == "RGB"


def test_corrupt_and_missing_files_are_named(tmp_path):
    (tmp_path / "bad.jpg").write_bytes(b"not a jpeg at all")
    with pytest.raises(OSError, match=r"bad.jpg: cannot read image"):
        ImageDataset([(str(tmp_path / "bad.jpg"), 1, 0)])[0]
    with pytest.raises(FileNotFoundError, match=r"gone.jpg: image file does not exist"):
        ImageDataset([(str(tmp_path / "gone.jpg"), 1, 0)])[0]
    Image.new("RGB", (8, 16)).save(tmp_path / "trunc.jpg")
    data = (tmp_path / "trunc.jpg").read_bytes()
    (tmp_path / "trunc.jpg").write_bytes(data[: len(data) // 2])
    with pytest.raises(OSError, match=r"trunc.jpg: cannot read image"):
        ImageDataset([(str(tmp_path / "trunc.jpg"), 1, 0)])[0]
