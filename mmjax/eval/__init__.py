"""Full-ranking evaluation (Recall, NDCG, Precision and MAP at k over all items, MMRec's evaluator) and top-K lists."""

from mmjax.eval.ranking import (
    DEFAULT_KS,
    METRICS,
    EvalSet,
    NonFiniteScoresError,
    ScoreFn,
    TopKFn,
    build_eval_set,
    evaluate,
    hit_matrix,
    metric_names,
    per_user_metrics,
    top_k_masked,
    top_k_unmasked,
)
from mmjax.eval.recommend import recommend_top_k

__all__ = [
    "DEFAULT_KS",
    "METRICS",
    "EvalSet",
    "NonFiniteScoresError",
    "ScoreFn",
    "TopKFn",
    "build_eval_set",
    "evaluate",
    "hit_matrix",
    "metric_names",
    "per_user_metrics",
    "recommend_top_k",
    "top_k_masked",
    "top_k_unmasked",
]
