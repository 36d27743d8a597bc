"""Dense prediction: per-pixel losses and metrics (cross-entropy, pixel accuracy, mean IoU;
heatmap MSE, PCK) and the MNIST-canvas task (``--data mnist-canvas:DIR``).

The models live with the others: ``fcn32s``/``fcn16s``/``fcn8s``, ``unet``, ``hourglass``.
"""

from cnnlab.dense.canvas import Canvases, canvas_split, gaussian_heatmaps, make_canvases
from cnnlab.dense.losses import heatmap_mse, pixel_cross_entropy
from cnnlab.dense.metrics import (
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

__all__ = ["Canvases", "KeypointMetrics", "SegmentationMetrics", "canvas_split",
           "confusion_matrix", "gaussian_heatmaps", "heatmap_argmax", "heatmap_mse",
           "iou_per_class", "make_canvases", "mean_iou", "pck", "pck_counts",
           "pixel_accuracy", "pixel_cross_entropy"]
