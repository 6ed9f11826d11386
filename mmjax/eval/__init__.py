"""Full-ranking evaluation views and metrics (Recall, NDCG, Precision, MAP, HR, MRR at any k) and top-K lists."""

from mmjax.eval.ranking import (
    DEFAULT_KS,
    METRIC_FUNCTIONS,
    METRICS,
    Query,
    EvalSet,
    NonFiniteScoresError,
    ScoreFn,
    TopKFn,
    build_eval_set,
    check_metrics,
    evaluate,
    hit_matrix,
    metric_names,
    parse_metric,
    per_user_metrics,
    top_k_masked,
    top_k_unmasked,
)
from mmjax.eval.recommend import recommend_top_k

__all__ = [
    "DEFAULT_KS",
    "METRIC_FUNCTIONS",
    "METRICS",
    "Query",
    "EvalSet",
    "NonFiniteScoresError",
    "ScoreFn",
    "TopKFn",
    "build_eval_set",
    "check_metrics",
    "evaluate",
    "hit_matrix",
    "metric_names",
    "parse_metric",
    "per_user_metrics",
    "recommend_top_k",
    "top_k_masked",
    "top_k_unmasked",
]
