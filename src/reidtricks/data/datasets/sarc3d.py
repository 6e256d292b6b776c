"""PETA's SARC3D (Baltieri et al. 2011): 50 people x 4 views (front, back, left, right)."""

from __future__ import annotations

import re

from reidtricks.data.datasets.training_only import TrainingOnlySet


class SARC3D(TrainingOnlySet):
    """<root>/peta/PETA dataset/SARC3D/archive/<id>_<view>.bmp; the views are not cameras: training
    only, camera 0; `max_per_id` orders a person's views by name (back, front, left, right)."""

    name = "sarc3d"
    subset = "SARC3D"
    pattern = re.compile(r"(\d+)_(front|back|left|right)\.bmp", re.IGNORECASE)
    expected = "<id>_<view>.bmp, view front, back, left or right (e.g. 001_front.bmp)"
    extra_notes = ("the 4 views of a person are not cameras: all are camera 0",)

    def frame_key(self, frame: str) -> int | str:
        return frame.lower()
