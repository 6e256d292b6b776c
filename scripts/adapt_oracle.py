"""The ceiling of `adapt` with perfect clusters: the same rounds, training and measurement, but
each round's pseudo-labels are the target's TRUE identities (the labels `adapt` keeps aside to
measure purity), every image kept. A diagnostic for labelled targets only: it tells whether a
loss after adapting comes from the clusters or from the training on the target.

    python scripts/adapt_oracle.py ckpt=SOURCE.ckpt target=caviar4reid paths.data_dir=DATA [adapt.* ...]

Takes the arguments of `python -m reidtricks.adapt`; its run folder and metrics.json are adapt's.
Never use its checkpoints as an unsupervised result: they were trained with the target's labels.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from reidtricks.adaptation import rounds
from reidtricks.errors import InputError

_original_round = rounds.Adaptation.round
_true_labels: dict[str, np.ndarray] = {}


def round_with_true_labels(self: rounds.Adaptation, index: int) -> Any:
    """Adaptation.round, with the target's identities (0..n-1) ready for the clustering step."""
    if self.target.pids is None:
        raise InputError(
            f"target {self.target.name}: no identities; the oracle needs a labelled target"
        )
    _, _true_labels["labels"] = np.unique(np.asarray(self.target.pids), return_inverse=True)
    return _original_round(self, index)


def true_labels(distances: Any, eps: float, min_samples: int) -> np.ndarray:
    """In place of DBSCAN: the target's identities, every image kept."""
    return _true_labels["labels"].astype(np.int64)


def main() -> None:
    rounds.Adaptation.round = round_with_true_labels
    rounds.dbscan_labels = true_labels
    from reidtricks.cli.adapt import main as adapt_main

    adapt_main()


if __name__ == "__main__":
    main()
