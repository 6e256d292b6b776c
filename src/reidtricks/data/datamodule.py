"""LightningDataModule: P x K training batches from one or more datasets, query+gallery test sets."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Protocol

import pytorch_lightning as pl
import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, DistributedSampler

from reidtricks.data.image_dataset import ImageDataset, check_images_readable
from reidtricks.data.sample_rng import EpochTaggedBatches
from reidtricks.data.sampler import PKBatchSampler
from reidtricks.data.settings import DataConfig, LoaderConfig, SamplerConfig, TransformConfig
from reidtricks.data.splits import ReIDItem, ReIDSplits, merge_train_splits, test_set_name
from reidtricks.data.trained_ids import check_unseen, image_keys
from reidtricks.data.transforms import build_test_transform, build_train_transform
from reidtricks.data.trials import check_trials, num_splits_of, select_splits, with_split
from reidtricks.data.workers import die_with_parent
from reidtricks.errors import InputError


class DatasetSource(Protocol):
    """What a `conf/dataset/*.yaml` entry instantiates to: a cheap spec whose `load()` parses."""

    def load(self) -> ReIDSplits: ...


@dataclass(frozen=True)
class Trial:
    """One random split of a set with several (VIPeR, PRID2011, ...): its query and gallery."""

    split: int
    query: list[ReIDItem]
    gallery: list[ReIDItem]


@dataclass(frozen=True)
class TestSet:
    """One evaluation set: query items first, then gallery items (their order is the index).

    A set scored over random-split trials holds them in `trials`; query and gallery are then the
    first trial's, and `items` the union of every trial's images (one feature pass for all)."""

    name: str
    query: list[ReIDItem]
    gallery: list[ReIDItem]
    trials: tuple[Trial, ...] = ()

    @cached_property
    def items(self) -> list[ReIDItem]:
        if not self.trials:
            return self.query + self.gallery
        union: dict[str, ReIDItem] = {}
        for trial in self.trials:
            for item in trial.query + trial.gallery:
                union.setdefault(item[0], item)
        return list(union.values())

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
        test_trials: Any = None,
        test_trials_key: str = "data.test_trials",
        test_on_trained_ids: bool = False,
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
                "test_on_trained_ids": test_on_trained_ids,
            }
        )
        if not train_sources:
            raise InputError("data.train_sources is empty: name at least one dataset to train on")
        if not test_sources:
            raise InputError("data.test_sources is empty: name at least one dataset to test on")
        for name, source in test_sources.items():
            why = getattr(source, "training_only", "")  # e.g. TownCentre: one camera
            if why:
                raise InputError(
                    f"data.test_sources.{name} ({type(source).__name__}) is a training-only set "
                    f"({why}): name it in data.train_sources only"
                )
        self.train_sources = dict(train_sources)
        self.test_sources = dict(test_sources)
        self.settings = settings
        self.p, self.k = settings.sampler.p, settings.sampler.k
        self.seed = settings.seed
        self.verify_images = settings.verify_images
        # Which splits of each test set with several (num_splits > 1) are scored: null (the
        # configured split), all, the first N or a list of ids; sets with one split ignore it.
        self.test_trials = check_trials(test_trials, test_trials_key)
        self.test_trials_key = test_trials_key
        self._splits: dict[str, ReIDSplits] = {}
        self.train_items: list[ReIDItem] = []
        self.train_item_sources: list[int] = []  # which train source each item is from (0, 1, ..)
        self.num_classes = 0
        self.test_sets: list[TestSet] = []

    # -- loading -------------------------------------------------------------------------------
    def prepare_data(self) -> None:
        """Parse every source once on the main process (generates the synthetic set if needed)."""
        for source in self.train_sources.values():
            self._load(source)
        for name, source in self.test_sources.items():
            self._test_splits(name, source)

    def _load(self, source: DatasetSource) -> ReIDSplits:
        # A source used for training and testing (same settings) is parsed once.
        key = f"{type(source).__name__}:{sorted(vars(source).items())!r}"
        if key not in self._splits:
            self._splits[key] = source.load()
        return self._splits[key]

    def setup(self, stage: str | None = None) -> None:
        if self.test_sets:
            return
        if stage == "fit":
            self.check_training_sets()
            self.check_sources_apart()
        train_splits = [self._load(s) for s in self.train_sources.values()]
        self.train_items, self.num_classes = merge_train_splits(train_splits)
        # merge_train_splits keeps the sources' order: for the sampler's per-source balance
        self.train_item_sources = [i for i, split in enumerate(train_splits) for _ in split.train]
        for name, source in self.test_sources.items():
            loaded = self._test_splits(name, source)
            first = loaded[0][1]
            set_name = test_set_name(name, first)  # e.g. grid-random: not the official partitions
            if num_splits_of(source) == 1:
                self.test_sets.append(TestSet(set_name, first.query, first.gallery))
                continue
            trials = tuple(Trial(split, s.query, s.gallery) for split, s in loaded)
            self.test_sets.append(TestSet(set_name, trials[0].query, trials[0].gallery, trials))
        if stage == "fit":
            self.check_trial_rule()
        if self.verify_images:  # decode every image now rather than fail hours into training
            check_images_readable(
                [self.train_items, *(t.items for t in self.test_sets)], "data.verify_images"
            )

    def check_training_sets(self) -> None:
        """One-line error for a training source without training images (a test-only folder):
        evaluation accepts it, training does not."""
        for name, source in self.train_sources.items():
            splits = self._load(source)
            if not splits.train:
                raise InputError(
                    f"data.train_sources.{name} ({splits.name}) has no training images: "
                    "train on a set with a training split, or use it in data.test_sources only"
                )

    def check_sources_apart(self) -> None:
        """One-line error for a training source sharing images with another (the same set twice
        would count each of its people as two identities); once per fit, at set-up."""
        owner: dict[str, str] = {}
        for name, source in self.train_sources.items():
            keys = image_keys(self._load(source).train)
            shared = [owner[k] for k in keys if k in owner]
            if shared:
                raise InputError(
                    f"data.train_sources.{name} and data.train_sources.{shared[0]} share "
                    f"{len(shared)} training images: each person would count as two identities; "
                    "name every set once"
                )
            owner.update(dict.fromkeys(keys, name))

    def check_trial_rule(self) -> None:
        """One-line error when a test set (any trial) holds a person trained on: another split of
        a training set, or a tested set trained with combineall (docs/DATASETS.md)."""
        trained = image_keys(self.train_items)
        for test_set in self.test_sets:
            trials = [(t.split, t.query, t.gallery) for t in test_set.trials] or [
                (None, test_set.query, test_set.gallery)
            ]
            check_unseen(
                test_set.name,
                trials,
                trained,
                self.settings.test_on_trained_ids,
                "test the trained split only (data.test_trials=null), train one model per split "
                "(-m data.train_sources.NAME.split=0,1,...), leave combineall off on a tested set, "
                "or say data.test_on_trained_ids=true",
            )

    def _test_splits(self, name: str, source: DatasetSource) -> list[tuple[int, ReIDSplits]]:
        """(split id, parsed split) of each trial of a test source; one entry without trials."""
        num_splits = num_splits_of(source)
        if num_splits == 1:
            return [(int(getattr(source, "split", 0)), self._load(source))]
        ids = select_splits(
            self.test_trials, num_splits, getattr(source, "split", 0), self.test_trials_key, name
        )
        return [(split, self._load(with_split(source, split))) for split in ids]

    def statistics(self) -> str:
        """Per-dataset statistics tables (ids, images, cameras per split); a set scored over
        several trials shows its first trial's table and how many more trials it has."""
        tables: dict[str, str] = {}
        more: dict[str, int] = {}
        for splits in self._splits.values():
            if splits.name in tables:
                more[splits.name] = more.get(splits.name, 0) + 1
            else:
                tables[splits.name] = splits.statistics_table()
        return "\n".join(
            table + (f"\n  (+ {more[name]} more trials)" if name in more else "")
            for name, table in tables.items()
        )

    # -- loaders -------------------------------------------------------------------------------
    def _loader_kwargs(self) -> dict[str, Any]:
        loader = self.settings.loader
        return {
            "num_workers": loader.num_workers,
            "pin_memory": loader.pin_memory,
            "persistent_workers": loader.persistent_workers and loader.num_workers > 0,
            # Worker seeds come from this generator, not the global RNG, which a new loader
            # iterator would otherwise advance (persistent workers create theirs once).
            "generator": torch.Generator().manual_seed(int(self.seed)),
            "worker_init_fn": die_with_parent,
        }

    def train_dataloader(self) -> DataLoader:
        self.setup("fit")
        self.check_training_sets()
        # Every augmentation draw is a function of (seed, epoch, index): the same batches for any
        # num_workers, persistent or not, and after a resume.
        transform = build_train_transform(self.settings.transform)
        dataset = ImageDataset(self.train_items, transform, seed=int(self.seed))
        batch_sampler = PKBatchSampler(
            [pid for _, pid, _ in self.train_items],
            p=self.p,
            k=self.k,
            seed=self.seed,
            sources=self.train_item_sources,
            source_balance=self.settings.sampler.source_balance,
        )
        if self.trainer is not None:
            # A resumed fit starts the workers' prefetch before it calls set_epoch.
            batch_sampler.set_epoch(self.trainer.fit_loop.epoch_progress.current.processed)
        return DataLoader(
            dataset, batch_sampler=EpochTaggedBatches(batch_sampler), **self._loader_kwargs()
        )

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
