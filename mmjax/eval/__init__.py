"""Full-ranking evaluation: Recall, NDCG, Precision and MAP at k over all items (MMRec's evaluator)."""

from mmjax.eval.ranking import (
    DEFAULT_KS,
    METRICS,
    EvalSet,
    ScoreFn,
    build_eval_set,
    evaluate,
    hit_matrix,
    metric_names,
    per_user_metrics,
    top_k_unmasked,
)

__all__ = [
    "DEFAULT_KS",
    "METRICS",
    "EvalSet",
    "ScoreFn",
    "build_eval_set",
    "evaluate",
    "hit_matrix",
    "metric_names",
    "per_user_metrics",
    "top_k_unmasked",
]
