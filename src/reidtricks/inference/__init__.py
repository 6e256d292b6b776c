"""Use a trained model: a checkpoint read as data, features for any images (`FeatureExtractor`),
image and feature files, the search gallery's cache, ONNX export with its parity check.

    from reidtricks.inference import FeatureExtractor
    extractor = FeatureExtractor.from_checkpoint("logs/demo/runs/<date>/checkpoints/last.ckpt")
    feats = extractor.extract(["a.jpg", "b.jpg"], normalize=True)   # 2 x D float32
"""

from reidtricks.inference.extractor import Extraction, FeatureExtractor, InferenceNet
from reidtricks.inference.files import (
    BadImage,
    ImageFiles,
    file_sha256,
    list_image_files,
    market_ids,
)

__all__ = [
    "BadImage",
    "Extraction",
    "FeatureExtractor",
    "ImageFiles",
    "InferenceNet",
    "file_sha256",
    "list_image_files",
    "market_ids",
]
