"""Training and evaluation: ``train(model, split, cfg)``, ``evaluate(model, data)``, the
papers' recipes, crash-proof checkpoints, DistributedDataParallel under ``torchrun``; the
dense-prediction losses (:mod:`.losses`) and metrics (:mod:`.metrics`)."""

from cnnlab.train.checkpoint import load_checkpoint, save_checkpoint
from cnnlab.train.config import RECIPES, Recipe, TrainConfig, get_recipe, list_recipes, recipe_for
from cnnlab.train.evaluate import cross_entropy, evaluate
from cnnlab.train.losses import heatmap_mse, pixel_cross_entropy
from cnnlab.train.metrics import (
    KeypointMetrics,
    SegmentationMetrics,
    confusion_matrix,
    heatmap_argmax,
    iou_per_class,
    mean_iou,
    pck,
    pck_counts,
    pixel_accuracy,
)
from cnnlab.train.trainer import TrainingDiverged, TrainResult, train

__all__ = ["RECIPES", "KeypointMetrics", "Recipe", "SegmentationMetrics", "TrainConfig",
           "TrainResult", "TrainingDiverged", "confusion_matrix", "cross_entropy", "evaluate",
           "get_recipe", "heatmap_argmax", "heatmap_mse", "iou_per_class", "list_recipes",
           "load_checkpoint", "mean_iou", "pck", "pck_counts", "pixel_accuracy",
           "pixel_cross_entropy", "recipe_for", "save_checkpoint", "train"]
