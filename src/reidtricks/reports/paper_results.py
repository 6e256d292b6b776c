"""Published numbers of Luo et al. (CVPR-W 2019), rank-1 / mAP in %, as listed in docs/METHOD.md."""

from __future__ import annotations

# Cumulative ablation rows; "center_loss+rerank" is the re-ranked final model.
ABLATION: dict[str, dict[str, tuple[float, float]]] = {
    "market1501": {
        "baseline": (87.7, 74.0),
        "warmup": (88.7, 75.2),
        "rea": (91.3, 79.3),
        "label_smooth": (91.4, 80.3),
        "last_stride": (92.0, 81.7),
        "bnneck": (94.1, 85.7),
        "center_loss": (94.5, 85.9),
        "center_loss+rerank": (95.4, 94.2),
    },
    "dukemtmc": {
        "baseline": (79.7, 63.8),
        "warmup": (80.6, 65.1),
        "rea": (81.5, 68.3),
        "label_smooth": (82.4, 69.3),
        "last_stride": (82.6, 70.6),
        "bnneck": (86.2, 75.9),
        "center_loss": (86.4, 76.4),
        "center_loss+rerank": (90.3, 89.1),
    },
}

# All tricks, other backbones, Market-1501 (keys: the model config names).
BACKBONES_MARKET: dict[str, tuple[float, float]] = {
    "resnet18": (91.7, 77.8),
    "resnet34": (92.7, 82.7),
    "resnet50": (94.5, 85.9),
    "resnet101": (94.5, 87.1),
    "seresnext50": (94.9, 87.6),
}


def published(dataset: str, row: str) -> tuple[float, float] | None:
    """The paper's (rank-1, mAP) for an ablation stage or backbone row on a dataset, if any."""
    if row in ABLATION.get(dataset, {}):
        return ABLATION[dataset][row]
    if dataset == "market1501":
        return BACKBONES_MARKET.get(row)
    return None
