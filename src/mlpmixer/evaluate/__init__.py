"""Evaluation: accuracy and confusion on a data set, predictions for image files, few-shot probes."""

from .features import extract_features, tensor_batches
from .fewshot import DEFAULT_SHOTS, FewShotResult, fewshot_evaluate, ridge_fit

__all__ = [
    "DEFAULT_SHOTS",
    "FewShotResult",
    "extract_features",
    "fewshot_evaluate",
    "ridge_fit",
    "tensor_batches",
]
