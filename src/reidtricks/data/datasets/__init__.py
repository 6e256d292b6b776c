"""Dataset parsers: cheap specs whose `load()` returns ReIDSplits (Hydra `_target_`s)."""

from reidtricks.data.datasets.cuhk03 import CUHK03NP
from reidtricks.data.datasets.dukemtmc import DukeMTMC
from reidtricks.data.datasets.folder import FolderDataset
from reidtricks.data.datasets.market1501 import Market1501
from reidtricks.data.datasets.msmt17 import MSMT17
from reidtricks.data.datasets.synthetic import SyntheticReID

__all__ = ["CUHK03NP", "MSMT17", "DukeMTMC", "FolderDataset", "Market1501", "SyntheticReID"]
