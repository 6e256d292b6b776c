"""Query/gallery evaluation: distances, k-reciprocal re-ranking and ranking metrics."""

from reidtricks.evaluation.distance import METRICS, pairwise_distance
from reidtricks.evaluation.metrics import CUHK03_REPEATS, PROTOCOLS, EvalResult, evaluate
from reidtricks.evaluation.rerank import jaccard_distance_pairs, k_reciprocal_mask, re_rank

__all__ = [
    "CUHK03_REPEATS",
    "METRICS",
    "PROTOCOLS",
    "EvalResult",
    "evaluate",
    "jaccard_distance_pairs",
    "k_reciprocal_mask",
    "pairwise_distance",
    "re_rank",
]
