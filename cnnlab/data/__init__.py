"""Datasets held as tensors, readers for files on disk, and augmentation on whole batches.

``load_dataset("digits")`` (built in), ``load_dataset("mnist:data/mnist", val_split=2000)``;
``register_dataset(name)`` adds a loader. Nothing is ever downloaded.
"""

from cnnlab.data.core import (
    DataSplit,
    TensorData,
    carve_val,
    channel_stats,
    fit_images,
    fit_split,
    list_datasets,
    load_dataset,
    parse_spec,
    register_dataset,
)

__all__ = ["DataSplit", "TensorData", "carve_val", "channel_stats", "fit_images", "fit_split",
           "list_datasets", "load_dataset", "parse_spec", "register_dataset"]
