"""The built-in synthetic dataset: generated once under the data folder, read as Market-1501."""

from __future__ import annotations

from pathlib import Path

from reidtricks.data.datasets.base import DatasetParser
from reidtricks.data.datasets.market_naming import read_market_style
from reidtricks.data.splits import ReIDSplits
from reidtricks.data.synthetic_generator import (
    PRESETS,
    generate_dataset,
    is_complete,
    synthetic_dataset_dir,
)
from reidtricks.errors import InputError


class SyntheticReID(DatasetParser):
    """<root>/synthetic-<preset>-seed<seed>/ in the Market-1501 layout (generated if missing)."""

    name = "synthetic"
    num_splits = 1

    def __init__(
        self,
        root: str | Path,
        preset: str = "tiny",
        seed: int = 0,
        split: int = 0,
        combineall: bool = False,
    ) -> None:
        if preset not in PRESETS:
            raise InputError(f"synthetic preset={preset!r}: expected one of {sorted(PRESETS)}")
        super().__init__(root, split, combineall)
        self.preset, self.seed = preset, int(seed)

    @property
    def dataset_dir(self) -> Path:
        """Where the dataset is (or will be) generated."""
        return synthetic_dataset_dir(self.root, self.preset, self.seed)

    def is_complete(self) -> bool:
        """A finished copy of this preset and seed is there (InputError: its manifest is corrupt)."""
        return is_complete(self.dataset_dir, self.preset, self.seed)

    def load(self) -> ReIDSplits:
        """Generate unless a finished copy exists (a stale generated copy is replaced), then parse."""
        if Path(self.root).exists() and not Path(self.root).is_dir():
            raise InputError(
                f"synthetic root={self.root}: is a file; expected the folder (paths.data_dir) "
                "to generate the data set in"
            )
        if not self.is_complete():
            generate_dataset(self.dataset_dir, self.preset, self.seed)
        return read_market_style(self.name, self.dataset_dir, combineall=self.combineall)
