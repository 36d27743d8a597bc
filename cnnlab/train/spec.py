"""What a training run is made of — the model's name and builder arguments, the data, the
input size — as ``cnnlab train`` records it in every checkpoint and as every later command
(eval, export, compress) reads it back to rebuild the same model on the same data."""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace

from cnnlab.data.core import DataSplit, TensorData, complete_size


@dataclass(frozen=True)
class RunSpec:
    """The run a checkpoint came from (every field may be missing in a foreign checkpoint)."""

    model: str | None = None
    model_args: dict = field(default_factory=dict)
    input_size: tuple[int, ...] | None = None
    data_spec: str | None = None
    val_split: int | None = None
    split_seed: int = 0
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    source: str = ""

    @classmethod
    def from_checkpoint(cls, path: str | os.PathLike) -> RunSpec:
        from cnnlab.train.checkpoint import read_meta

        meta = read_meta(path)
        stats = meta.get("data", {})
        size = meta.get("input_size")
        return cls(model=meta.get("model"), model_args=dict(meta.get("model_args", {})),
                   input_size=tuple(size) if size else None, data_spec=meta.get("data_spec"),
                   val_split=meta.get("val_split"), split_seed=meta.get("split_seed", 0),
                   mean=tuple(stats["mean"]) if stats.get("mean") else None,
                   std=tuple(stats["std"]) if stats.get("std") else None, source=str(path))

    def to_meta(self) -> dict:
        """The keys ``train(..., meta=)`` stores (the data statistics it adds itself)."""
        return {"model": self.model, "model_args": self.model_args,
                "input_size": list(self.input_size) if self.input_size else None,
                "data_spec": self.data_spec, "val_split": self.val_split,
                "split_seed": self.split_seed}

    def check_model(self, name: str) -> None:
        if self.model and self.model != name:
            raise ValueError(f"{self.source} holds {self.model}, not {name}")

    def builder_args(self, overrides: dict | None = None) -> dict:
        """The builder arguments the run used, ``overrides`` (``--set``) winning."""
        return {**self.model_args, **(overrides or {})}

    def split_args(self, spec: str | None, val_split: int | None = None,
                   split_seed: int | None = None) -> tuple[str | None, int | None, int]:
        """(dataset, validation size, split seed): the run's own unless given; the run's
        split is reused only for the run's dataset."""
        spec = spec or self.data_spec
        same = spec == self.data_spec
        if val_split is None and same:
            val_split = self.val_split
        if split_seed is None:
            split_seed = self.split_seed if same else 0
        return spec, val_split, split_seed

    def normalise(self, data: TensorData) -> TensorData:
        """``data`` normalised with the training run's statistics (when channels match)."""
        if self.mean and len(self.mean) == data.x.shape[1]:
            return replace(data, mean=self.mean, std=self.std)
        return data


def model_and_data(name: str, spec: str, val_split: int | None = None, split_seed: int = 0,
                   size: tuple[int, ...] | None = None, sets: dict | None = None):
    """Load the data, build the model for it and fit the images to the model's input: the
    data's own size, or the model's minimum if that is larger (LeNet-5: MNIST 28 → 32);
    image folders are decoded at the model's paper input size (or ``size``).
    Returns (model, split, input size, builder arguments)."""
    from cnnlab.data import fit_split, load_dataset, parse_spec
    from cnnlab.registry import create_model, model_info

    sets = sets or {}
    opts = {}
    if parse_spec(spec)[0] == "folder":  # decode straight to the model's input size
        full = model_info(name).input_size
        side = size[-1] if size else full[-1]
        opts["input_size"] = (int(sets.get("in_chans", full[0])), side, side)
    split = load_dataset(spec, val_split=val_split, seed=split_seed or 0, **opts)
    kwargs = {"num_classes": split.num_classes, "in_chans": split.in_chans, **sets}
    model = create_model(name, **kwargs)
    size = complete_size(size, kwargs["in_chans"], _data_size(split, model, kwargs["in_chans"]))
    return model, fit_split(split, size), size, kwargs


def _data_size(split: DataSplit, model, channels: int) -> tuple[int, int, int]:
    ref = split.val if len(split.val) else split.train
    least = getattr(model, "min_input_size", 1)
    return channels, max(ref.x.shape[-2], least), max(ref.x.shape[-1], least)
