"""The built-in synthetic dataset: generated once under the data folder, read as Market-1501."""

from __future__ import annotations

import json
from pathlib import Path

from reidtricks.data.datasets.market1501 import read_market_style
from reidtricks.data.splits import ReIDSplits
from reidtricks.data.synthetic_generator import FORMAT_VERSION, PRESETS, generate_dataset


class SyntheticReID:
    """<root>/synthetic-<preset>-seed<seed>/ in the Market-1501 layout (generated if missing)."""

    name = "synthetic"

    def __init__(self, root: str | Path, preset: str = "small", seed: int = 0) -> None:
        if preset not in PRESETS:
            raise ValueError(f"synthetic preset={preset!r}: expected one of {sorted(PRESETS)}")
        self.root, self.preset, self.seed = str(root), preset, int(seed)

    @property
    def dataset_dir(self) -> Path:
        return Path(self.root) / f"synthetic-{self.preset}-seed{self.seed}"

    def is_complete(self) -> bool:
        manifest = self.dataset_dir / "manifest.json"
        return manifest.is_file() and json.loads(manifest.read_text()).get("format") == FORMAT_VERSION

    def load(self) -> ReIDSplits:
        if not self.is_complete():
            if self.dataset_dir.exists():
                raise ValueError(
                    f"{self.dataset_dir} exists but is not a complete synthetic dataset of this "
                    "version (no matching manifest.json); delete it to regenerate"
                )
            Path(self.root).mkdir(parents=True, exist_ok=True)
            generate_dataset(self.dataset_dir, self.preset, self.seed)
        return read_market_style(self.name, self.dataset_dir)
