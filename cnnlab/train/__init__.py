"""Training and evaluation: ``train(model, split, cfg)``, ``evaluate(model, data)``, the
papers' recipes, crash-proof checkpoints, DistributedDataParallel under ``torchrun``."""

from cnnlab.train.checkpoint import load_checkpoint, save_checkpoint
from cnnlab.train.config import RECIPES, Recipe, TrainConfig, get_recipe, list_recipes, recipe_for
from cnnlab.train.evaluate import cross_entropy, evaluate
from cnnlab.train.trainer import TrainingDiverged, TrainResult, train

__all__ = ["RECIPES", "Recipe", "TrainConfig", "TrainResult", "TrainingDiverged",
           "cross_entropy", "evaluate", "get_recipe", "list_recipes", "load_checkpoint",
           "recipe_for", "save_checkpoint", "train"]
