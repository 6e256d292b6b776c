"""The adaptation settings (`adapt.*` of conf/adapt.yaml) as a typed, checked object; its field
defaults are the one place for the defaults (docs/METHOD.md, "Adapting to unlabelled images")."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from reidtricks.config import typed_config
from reidtricks.errors import InputError
from reidtricks.validate import require_choice, require_int, require_number, require_positive

OUTLIER_MODES = ("drop", "instance")
CLASSIFIERS = ("linear", "memory")


@dataclass(frozen=True)
class AdaptConfig:
    """Rounds of (features -> k-reciprocal Jaccard distance -> DBSCAN -> training on the
    pseudo-identities). k1, k2, eps, min_samples: SpCL's clustering values; lr, weight_decay:
    the BoT / MMT / SpCL Adam values, kept constant within a round."""

    rounds: int = 5
    epochs_per_round: int = 2
    k1: int = 30  # k-reciprocal neighbours of the Jaccard distance
    k2: int = 6  # local query expansion of the Jaccard distance
    eps: float = 0.6  # DBSCAN radius on the Jaccard distance (0 < eps < 1)
    min_samples: int = 4  # DBSCAN: images within eps (itself included) that make a core image
    lr: float = 3.5e-4
    weight_decay: float = 5.0e-4
    p: int | None = None  # identities per batch; None: the checkpoint's data.sampler.p
    k: int | None = None  # images per identity; None: the checkpoint's data.sampler.k
    # Images DBSCAN leaves out: "drop" them from the round, or train on each as its own class
    # ("instance", SpCL's un-clustered instances; docs/METHOD.md).
    outliers: str = "drop"
    # The pseudo-identities' classifier: a "linear" layer started at the centroids and learned,
    # or a "memory" of the centroids moved by momentum and scored by cosine / temperature
    # (Cluster Contrast, Dai et al. 2022; docs/METHOD.md).
    classifier: str = "linear"
    memory_temperature: float = 0.05
    memory_momentum: float = 0.2  # share of the old row kept at each update
    # With the memory: contrast each sample with its own camera's clusters only (CAP's intra-
    # camera loss). The target's camera ids then reach training (never its identities).
    camera_aware: bool = False
    # Before round 1: every BatchNorm's statistics re-estimated on all target images (AdaBN);
    # scored as "round 0 + AdaBN" where the target has a test split.
    adabn: bool = False
    # Every round: BatchNorm statistics per target camera (CBN); each image's features for the
    # clustering, and the extra "camera BN" test score, use its own camera's statistics.
    camera_bn: bool = False
    # Added to the squared distance (of L2-normalised features, 0..4) of two images of one camera
    # before the Jaccard distance's neighbourhoods are found, so that a person's views from
    # other cameras can share a cluster; 0: off (docs/METHOD.md, "Camera-penalised distance").
    same_camera_penalty: float = 0.0
    # With camera_bn: the rounds' training batches also normalised camera by camera (CBN's
    # training; the target's camera ids then reach training, never its identities).
    camera_bn_training: bool = False

    def __post_init__(self) -> None:
        for name in ("rounds", "epochs_per_round", "k1", "k2", "min_samples"):
            require_int(f"adapt.{name}", getattr(self, name), minimum=1)
        eps = require_number("adapt.eps", self.eps, 0.0, 1.0)
        if not 0.0 < eps < 1.0:
            raise InputError(
                f"adapt.eps={self.eps!r}: expected a Jaccard distance strictly between 0 and 1"
            )
        require_positive("adapt.lr", self.lr)
        require_number("adapt.weight_decay", self.weight_decay, low=0.0)
        require_choice("adapt.outliers", self.outliers, OUTLIER_MODES)
        require_choice("adapt.classifier", self.classifier, CLASSIFIERS)
        require_positive("adapt.memory_temperature", self.memory_temperature)
        require_number("adapt.same_camera_penalty", self.same_camera_penalty, 0.0, 4.0)
        for name in ("camera_aware", "adabn", "camera_bn", "camera_bn_training"):
            if not isinstance(getattr(self, name), bool):
                raise InputError(f"adapt.{name}={getattr(self, name)!r}: expected true or false")
        if self.camera_aware and self.classifier != "memory":
            raise InputError(
                f"adapt.camera_aware=true needs adapt.classifier=memory (got "
                f"{self.classifier!r}): only the memory's logits are masked by camera"
            )
        if self.camera_bn_training and not self.camera_bn:
            raise InputError(
                "adapt.camera_bn_training=true needs adapt.camera_bn=true: the network it "
                "trains is tested and clustered with each camera's statistics"
            )
        momentum = require_number("adapt.memory_momentum", self.memory_momentum, 0.0, 1.0)
        if momentum >= 1.0:
            raise InputError(
                f"adapt.memory_momentum={self.memory_momentum!r}: expected 0 <= momentum < 1 "
                "(1 would never move the memory)"
            )
        for name in ("p", "k"):
            if getattr(self, name) is not None:
                require_int(f"adapt.{name}", getattr(self, name), minimum=1)

    def batch(self, stored_sampler: Any) -> tuple[int, int]:
        """(P, K): adapt.p / adapt.k, or the checkpoint's data.sampler values where None."""
        stored = stored_sampler if isinstance(stored_sampler, Mapping) else {}
        p = self.p if self.p is not None else stored.get("p", 16)
        k = self.k if self.k is not None else stored.get("k", 4)
        return require_int("adapt.p", p, minimum=1), require_int("adapt.k", k, minimum=1)

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> AdaptConfig:
        return typed_config(cls, values, "adapt")
