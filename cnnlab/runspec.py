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
    preprocess: str | None = None  # mean-image / zca[:EPS], fitted on the training split

    @classmethod
    def from_checkpoint(cls, path: str | os.PathLike) -> RunSpec:
        """The run behind any weights file cnnlab writes: a training checkpoint, a ``.dcz``
        (``cnnlab compress``) or the plain weights ``cnnlab decompress`` writes."""
        kind = weights_kind(path)
        if kind == "dcz":
            from cnnlab.compress import fileformat as ff

            f = ff.read(path)
            return cls._from_run({**f.info.get("run", {}), "model": f.model,
                                  "model_args": f.config}, path)
        if kind == "weights":
            return cls._from_run(_weights_meta(path), path)
        from cnnlab.train.checkpoint import read_meta

        return cls._from_run(read_meta(path), path)

    @classmethod
    def _from_run(cls, meta: dict, path) -> RunSpec:
        stats = meta.get("data") or {}
        size = meta.get("input_size")
        return cls(model=meta.get("model"), model_args=dict(meta.get("model_args") or {}),
                   input_size=tuple(size) if size else None, data_spec=meta.get("data_spec"),
                   val_split=meta.get("val_split"), split_seed=meta.get("split_seed") or 0,
                   mean=tuple(stats["mean"]) if stats.get("mean") else None,
                   std=tuple(stats["std"]) if stats.get("std") else None, source=str(path),
                   preprocess=meta.get("preprocess"))

    def to_run_info(self) -> dict:
        """What a ``.dcz`` stores of the run (``info["run"]``), normalisation included."""
        out = self.to_meta()
        if self.mean:
            out["data"] = {"mean": list(self.mean), "std": list(self.std)}
        return out

    def to_meta(self) -> dict:
        """The keys ``train(..., meta=)`` stores (the data statistics it adds itself)."""
        return {"model": self.model, "model_args": self.model_args,
                "input_size": list(self.input_size) if self.input_size else None,
                "data_spec": self.data_spec, "val_split": self.val_split,
                "split_seed": self.split_seed, "preprocess": self.preprocess}

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


def weights_kind(path: str | os.PathLike) -> str:
    """'checkpoint' (cnnlab train), 'dcz' (cnnlab compress) or 'weights' (a safetensors
    file of weights alone, as cnnlab decompress writes), by the file's first bytes."""
    from pathlib import Path

    p = Path(path)
    if p.is_dir():
        raise IsADirectoryError(f"{path} is a directory, not a weights file")
    if not p.is_file():
        raise FileNotFoundError(f"weights file {path} not found")
    with open(p, "rb") as fh:
        head = fh.read(8)
    from cnnlab.compress.fileformat import MAGIC

    if head == MAGIC:
        return "dcz"
    if len(head) == 8 and _weights_meta(path, strict=False) is not None:
        return "weights"
    return "checkpoint"


def _weights_meta(path, strict: bool = True) -> dict | None:
    """The run stored in a plain safetensors weights file (None if it is not one)."""
    import json

    from cnnlab.train.checkpoint import read_header

    try:
        header, _ = read_header(path)
    except ValueError:
        if strict:
            raise
        return None
    meta = header.get("__metadata__") or {}
    if "cnnlab" in meta or "model" not in meta:
        if strict:
            raise ValueError(f"{path}: not a weights file cnnlab wrote")
        return None
    try:
        run = json.loads(meta.get("cnnlab_run") or "{}")
    except ValueError:
        run = {}
    return {**run, "model": meta["model"]}


def load_weights(path: str | os.PathLike, model) -> None:
    """Load any weights file cnnlab writes (see :func:`weights_kind`) into ``model``;
    names and shapes must match exactly. A run trained with ``--preprocess`` gets its
    (unfitted) preprocessing module attached first; the file holds its fitted buffers."""
    kind = weights_kind(path)
    run = RunSpec.from_checkpoint(path)
    if run.preprocess and run.input_size and not hasattr(model, "preprocess"):
        from cnnlab.data.whiten import attach_preprocess, empty_preprocess

        attach_preprocess(model, empty_preprocess(run.preprocess, tuple(run.input_size)))
    if kind == "checkpoint":
        from cnnlab.train.checkpoint import load_checkpoint

        load_checkpoint(path, model)
        return
    if kind == "dcz":
        from cnnlab.compress.pipeline import read_weights

        state = read_weights(path)[1]
    else:
        from safetensors.torch import load_file

        state = load_file(str(path))
    try:
        model.load_state_dict(state)
    except RuntimeError as e:
        raise ValueError(f"{path}: does not match this model: "
                         f"{str(e).splitlines()[-1].strip()}") from None


def model_and_data(name: str, spec: str, val_split: int | None = None, split_seed: int = 0,
                   size: tuple[int, ...] | None = None, sets: dict | None = None,
                   seed: int | None = None):
    """Load the data, build the model for it and fit the images to the model's input: the
    data's own size, or the model's minimum if that is larger (LeNet-5: MNIST 28 → 32);
    image folders are decoded at the model's paper input size (or ``size``). ``seed`` seeds
    the model's initialisation (the same seed gives the same initial weights).
    Returns (model, split, input size, builder arguments)."""
    from cnnlab.data import fit_split, load_dataset, parse_spec
    from cnnlab.models import model_info

    sets = sets or {}
    opts = {}
    if parse_spec(spec)[0] == "folder":  # decode straight to the model's input size
        full = model_info(name).input_size
        side = size[-1] if size else full[-1]
        opts["input_size"] = (int(sets.get("in_chans", full[0])), side, side)
    split = load_dataset(spec, val_split=val_split, seed=split_seed or 0, **opts)
    check_fits(split, sets, size)
    kwargs = {"num_classes": split.num_classes, "in_chans": split.in_chans, **sets}
    if seed is not None:
        import torch

        torch.manual_seed(seed)
    model = build_model(name, kwargs)
    size = complete_size(size, kwargs["in_chans"], _data_size(split, model, kwargs["in_chans"]))
    least = getattr(model, "min_input_size", 1)
    if min(size[-2:]) < least:
        raise ValueError(f"{name} needs inputs of at least {least}x{least} pixels, got "
                         f"{'x'.join(map(str, size))}")
    return model, fit_split(split, size), size, kwargs


def check_fits(split: DataSplit, args: dict, size: tuple[int, ...] | None = None) -> None:
    """The model's classes and channels must be the data's: a 3-class head on 10-class data
    would fail with an index error in the middle of a run, a 2-class folder scored by a
    10-class model would read 0 % without a word."""
    classes, chans = args.get("num_classes"), args.get("in_chans")
    if classes is not None and classes != split.num_classes:
        raise ValueError(f"the model has num_classes={classes} (from --set or the "
                         f"checkpoint), but {split.name} has {split.num_classes} classes")
    if chans is not None and chans != split.in_chans:
        raise ValueError(f"the model has in_chans={chans} (from --set or the checkpoint), "
                         f"but {split.name} has {split.in_chans} channel(s)")
    if size is not None and len(size) == 3 and size[0] != split.in_chans:
        raise ValueError(f"input size {'x'.join(map(str, size))} has {size[0]} channel(s), "
                         f"but {split.name} has {split.in_chans}")


def build_model(name: str, kwargs: dict):
    """``create_model`` whose refusals of the arguments are ValueErrors (one line in the CLI):
    an unknown keyword, or a size no tensor can have (``width_mult=1e9``)."""
    from cnnlab.models import create_model

    try:
        return create_model(name, **kwargs)
    except (TypeError, RuntimeError, OverflowError, MemoryError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ValueError(f"cannot build {name} with "
                         f"{', '.join(f'{k}={v!r}' for k, v in kwargs.items())}: {first}") \
            from None


def _data_size(split: DataSplit, model, channels: int) -> tuple[int, int, int]:
    ref = split.val if len(split.val) else split.train
    least = getattr(model, "min_input_size", 1)
    return channels, max(ref.x.shape[-2], least), max(ref.x.shape[-1], least)
