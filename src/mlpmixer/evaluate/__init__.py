"""Evaluation: accuracy and confusion on a data set, predictions for image files, few-shot probes."""

from .confusion import confusion_figure, save_confusion_png
from .eval import EvalResult, evaluate, evaluate_checkpoint, load_eval_split, normalizer
from .features import extract_features, tensor_batches
from .fewshot import DEFAULT_SHOTS, FewShotResult, fewshot_evaluate, ridge_fit
from .predict import PredictReport, collect_images, predict_files, prepare_image

__all__ = [
    "DEFAULT_SHOTS",
    "EvalResult",
    "FewShotResult",
    "PredictReport",
    "collect_images",
    "confusion_figure",
    "evaluate",
    "evaluate_checkpoint",
    "extract_features",
    "fewshot_evaluate",
    "load_eval_split",
    "normalizer",
    "predict_files",
    "prepare_image",
    "ridge_fit",
    "save_confusion_png",
    "tensor_batches",
]
