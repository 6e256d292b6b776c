"""How a model is run over images: the defaults of extract / search / export (their `_extraction`
base, cli/schemas.py) and of the Python API's FeatureExtractor, written once."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ExtractionConfig:
    """`feature` / `flip` None keep what the checkpoint was trained with; `num_workers` and
    `progress` are the commands' (a library call reads in-process, without a bar, unless asked)."""

    device: str = "cpu"  # cpu | cuda
    batch_size: int = 64
    num_workers: int = 2  # image-reading processes
    progress: bool = True  # a progress bar on the terminal
    feature: str | None = None  # before_bn | after_bn; None: as the checkpoint was trained
    flip: bool | None = None  # average with the horizontally flipped image; None: as trained


EXTRACTION = ExtractionConfig()
