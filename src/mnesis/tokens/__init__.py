"""Token estimation."""

from mnesis.tokens.estimator import (
    MESSAGE_OVERHEAD,
    TokenEstimator,
    encoding_for_model,
    heuristic_count,
)

__all__ = ["MESSAGE_OVERHEAD", "TokenEstimator", "encoding_for_model", "heuristic_count"]
