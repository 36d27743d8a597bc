"""Datasets held as tensors, readers for files on disk, and augmentation on whole batches.

``load_dataset("digits")`` (built in), ``load_dataset("mnist:data/mnist", val_split=2000)``;
``register_dataset(name)`` adds a loader. Nothing is ever downloaded. The MNIST canvases
(``mnist-canvas:DIR``) are a dense-prediction task made of real digits (:mod:`.canvas`).
"""

import cnnlab.data.readers  # noqa: F401, E402  (registers the built-in readers)
from cnnlab.data.canvas import Canvases, canvas_split, gaussian_heatmaps, make_canvases
from cnnlab.data.core import (
    DataSplit,
    TensorData,
    carve_val,
    channel_stats,
    complete_size,
    fit_images,
    fit_split,
    list_datasets,
    load_dataset,
    parse_spec,
    register_dataset,
)

__all__ = ["Canvases", "DataSplit", "TensorData", "canvas_split", "carve_val", "channel_stats",
           "complete_size", "fit_images", "fit_split", "gaussian_heatmaps", "list_datasets",
           "load_dataset", "make_canvases", "parse_spec", "register_dataset"]
