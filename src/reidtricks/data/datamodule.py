"""LightningDataModule: P x K training batches from one or more datasets, query+gallery test sets."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import pytorch_lightning as pl
import torch.distributed as dist
from torch.utils.data import DataLoader, DistributedSampler

from reidtricks.data.image_dataset import ImageDataset, check_images_readable
from reidtricks.data.sampler import PKBatchSampler
from reidtricks.data.settings import DataConfig, LoaderConfig, SamplerConfig, TransformConfig
from reidtricks.data.splits import ReIDItem, ReIDSplits, merge_train_splits
from reidtricks.data.transforms import build_test_transform, build_train_transform
from reidtricks.errors import InputError


class DatasetSource(Protocol):
    """What a `conf/dataset/*.yaml` entry instantiates to: a cheap spec whose `load()` parses."""

    def load(self) -> ReIDSplits: ...


@dataclass(frozen=True)
class TestSet:
    """One evaluation set: query items first, then gallery items (their order is the index)."""

    name: str
    query: list[ReIDItem]
    gallery: list[ReIDItem]

    @property
    def items(self) -> list[ReIDItem]:
        return self.query + self.gallery

    @property
    def num_query(self) -> int:
        return len(self.query)


class ReIDDataModule(pl.LightningDataModule):
    """Loads the train sources (pids offset per source) and one test set per test source."""

    def __init__(
        self,
        train_sources: Mapping[str, DatasetSource],
        test_sources: Mapping[str, DatasetSource],
        sampler: SamplerConfig | Mapping[str, Any],
        transform: TransformConfig | Mapping[str, Any],
        loader: LoaderConfig | Mapping[str, Any],
        seed: int,
        verify_images: bool,
    ) -> None:
        """Settings as typed configs or as mappings of some of their fields (checked here)."""
        super().__init__()
        settings = DataConfig.from_mapping(
            {
                "sampler": sampler,
                "transform": transform,
                "loader": loader,
                "seed": seed,
                "verify_images": verify_images,
            }
        )
        if not train_sources:
            raise InputError("data.train_sources is empty: name at least one dataset to train on")
        if not test_sources:
            raise InputError("data.test_sources is empty: name at least one dataset to test on")
        self.train_sources = dict(train_sources)
        self.test_sources = dict(test_sources)
        self.settings = settings
        self.p, self.k = settings.sampler.p, settings.sampler.k
        self.seed = settings.seed
        self.verify_images = settings.verify_images
        self._splits: dict[str, ReIDSplits] = {}
        self.train_items: list[ReIDItem] = []
        self.num_classes = 0
        self.test_sets: list[TestSet] = []

    # -- loading -------------------------------------------------------------------------------
    def prepare_data(self) -> None:
        """Parse every source once on the main process (generates the synthetic set if needed)."""
        for source in [*self.train_sources.values(), *self.test_sources.values()]:
            self._load(source)

    def _load(self, source: DatasetSource) -> ReIDSplits:
        # A source used for training and testing (same settings) is parsed once.
        key = f"{type(source).__name__}:{sorted(vars(source).items())!r}"
        if key not in self._splits:
            self._splits[key] = source.load()
        return self._splits[key]

    def setup(self, stage: str | None = None) -> None:
        if self.test_sets:
            return
        train_splits = [self._load(s) for s in self.train_sources.values()]
        self.train_items, self.num_classes = merge_train_splits(train_splits)
        for name, source in self.test_sources.items():
            splits = self._load(source)
            self.test_sets.append(TestSet(name, splits.query, splits.gallery))
        if self.verify_images:  # decode every image now rather than fail hours into training
            check_images_readable(
                [self.train_items, *(t.items for t in self.test_sets)], "data.verify_images"
            )

    def statistics(self) -> str:
        """Per-dataset statistics tables (ids, images, cameras per split)."""
        return "\n".join(s.statistics_table() for s in self._splits.values())

    # -- loaders -------------------------------------------------------------------------------
    def _loader_kwargs(self) -> dict[str, Any]:
        loader = self.settings.loader
        return {
            "num_workers": loader.num_workers,
            "pin_memory": loader.pin_memory,
            "persistent_workers": loader.persistent_workers and loader.num_workers > 0,
        }

    def train_dataloader(self) -> DataLoader:
        self.setup("fit")
        dataset = ImageDataset(self.train_items, build_train_transform(self.settings.transform))
        batch_sampler = PKBatchSampler(
            [pid for _, pid, _ in self.train_items], p=self.p, k=self.k, seed=self.seed
        )
        return DataLoader(dataset, batch_sampler=batch_sampler, **self._loader_kwargs())

    def _test_loader(self, test_set: TestSet) -> DataLoader:
        t = self.settings.transform
        dataset = ImageDataset(
            test_set.items, build_test_transform(t.height, t.width, t.mean, t.std)
        )
        sampler = None
        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            # Each rank extracts a shard; padding duplicates are removed by index after gathering.
            sampler = DistributedSampler(dataset, shuffle=False, drop_last=False)
        return DataLoader(
            dataset,
            batch_size=self.settings.loader.test_batch_size,
            shuffle=False,
            sampler=sampler,
            **self._loader_kwargs(),
        )

    def val_dataloader(self) -> list[DataLoader]:
        self.setup("validate")
        return [self._test_loader(t) for t in self.test_sets]

    def test_dataloader(self) -> list[DataLoader]:
        return self.val_dataloader()
