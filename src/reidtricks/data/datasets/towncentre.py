"""PETA's TownCentre (Benfold and Reid 2011): 222 people, one street camera, consecutive frames."""

from __future__ import annotations

import re

from reidtricks.data.datasets.training_only import TrainingOnlySet


class TownCentre(TrainingOnlySet):
    """<root>/peta/PETA dataset/TownCentre/archive/<id>_<n>.jpg (n: a frame-like index); training
    only, camera 0; `max_per_id` keeps at most N frames per person, spread evenly in n order."""

    name = "towncentre"
    subset = "TownCentre"
    pattern = re.compile(r"(\d+)_(\d+)\.jpg", re.IGNORECASE)
    expected = "<id>_<n>.jpg (e.g. 100_1726.jpg)"

    def frame_key(self, frame: str) -> int | str:
        return int(frame)
