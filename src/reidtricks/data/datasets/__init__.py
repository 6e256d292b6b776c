"""Dataset parsers: cheap specs whose `load()` returns ReIDSplits (Hydra `_target_`s)."""

from reidtricks.data.datasets.caviar4reid import CAVIAR4REID
from reidtricks.data.datasets.cuhk01 import CUHK01
from reidtricks.data.datasets.cuhk03 import CUHK03NP
from reidtricks.data.datasets.dukemtmc import DukeMTMC
from reidtricks.data.datasets.folder import FolderDataset
from reidtricks.data.datasets.grid import GRID
from reidtricks.data.datasets.ilids import ILIDS
from reidtricks.data.datasets.market1501 import Market1501
from reidtricks.data.datasets.msmt17 import MSMT17
from reidtricks.data.datasets.prid2011 import PRID2011
from reidtricks.data.datasets.sarc3d import SARC3D
from reidtricks.data.datasets.synthetic import SyntheticReID
from reidtricks.data.datasets.threedpes import ThreeDPeS
from reidtricks.data.datasets.towncentre import TownCentre
from reidtricks.data.datasets.viper import VIPeR

__all__ = [
    "CAVIAR4REID",
    "CUHK01",
    "CUHK03NP",
    "GRID",
    "ILIDS",
    "MSMT17",
    "PRID2011",
    "SARC3D",
    "DukeMTMC",
    "FolderDataset",
    "Market1501",
    "SyntheticReID",
    "ThreeDPeS",
    "TownCentre",
    "VIPeR",
]
