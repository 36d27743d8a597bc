"""Weights shipped in the package (``cnnlab/weights/``): small models trained here on the
data the repository has, so ``create_model("lenet5", pretrained=True)`` works offline.

``cnnlab/weights/index.json`` lists each file with the run that made it and the accuracy
measured on that run's held-out split; ``tools/bundle_weights.py`` writes both from a
``cnnlab train`` run. An entry is a model's default weights (key ``lenet5``: MNIST) or tagged
as timm tags them (``lenet5.digits``: ``create_model("lenet5", pretrained="digits")``); an
entry may name its Deep Compression file (``dcz``, in the same folder) and what it measured.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch.nn as nn

WEIGHTS = Path(__file__).resolve().parent / "weights"


def index() -> dict[str, dict]:
    """model name -> {"file", "data", "accuracy", "val", "mean", "std", ...}."""
    path = WEIGHTS / "index.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def tags(name: str) -> list[str]:
    """The tags of ``name``'s bundled weights besides its default (``["digits"]``)."""
    return [k.partition(".")[2] for k in index() if k.startswith(f"{name}.")]


def load_bundled(name: str, model: nn.Module, tag: str | None = None) -> dict:
    """Load ``name``'s bundled weights (its default, or those tagged ``tag``) into ``model``;
    one line naming the file to pass when there are none."""
    entry = index().get(name if tag is None else f"{name}.{tag}")
    if entry is None:
        raise ValueError(f"{name}: no bundled weights; pass the file: "
                         f"create_model({name!r}, pretrained='path/to/{name}.pth')")
    num_classes = getattr(model, "num_classes", None)
    if num_classes is not None and num_classes != entry["num_classes"]:
        raise ValueError(f"{name}: the bundled weights have {entry['num_classes']} classes, "
                         f"not {num_classes}")
    _load_state(WEIGHTS / entry["file"], model)
    cfg = getattr(model, "pretrained_cfg", None)
    if isinstance(cfg, dict):
        cfg.update(mean=tuple(entry["mean"]), std=tuple(entry["std"]), crop_pct=1.0,
                   input_size=tuple(entry["input_size"]),
                   source=f"bundled: {entry['file']} ({entry['data']}, "
                          f"{entry['accuracy']:.2f} % on {entry['val']})")
    return entry


def _load_state(path: Path, model: nn.Module) -> None:
    """A bundled file is a plain safetensors state dict of ``model``'s own names."""
    from safetensors.torch import load_file

    from cnnlab.state import mismatch

    state = load_file(str(path))
    wrong = mismatch(model.state_dict(), state)
    if wrong:
        raise ValueError(f"{path.name}: does not match this model: {wrong}")
    model.load_state_dict(state)

