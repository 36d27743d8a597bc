"""What every picture shares: a title naming model, checkpoint and what is shown, an
atomic PNG write, and the model passes (first convolution, penultimate features)."""

from __future__ import annotations

import contextlib
import os
import textwrap
from pathlib import Path

import torch
import torch.nn as nn

from cnnlab.io import atomic_path
from cnnlab.plot import _pyplot


def model_label(model: nn.Module, checkpoint: str | os.PathLike | None = None) -> str:
    """``"lenet5 (runs/last.safetensors)"``: the first line of every picture's title (the
    checkpoint as its folder and file name)."""
    name = getattr(model, "model_name", type(model).__name__)
    if not checkpoint:
        return f"{name} (no checkpoint)"
    path = Path(checkpoint)
    return f"{name} ({path.parent.name + '/' if path.parent.name else ''}{path.name})"


def suptitle(fig, model: nn.Module, checkpoint, what: str) -> None:
    """Title a figure with model, checkpoint and what it shows, wrapped to its width."""
    chars = max(30, int(fig.get_figwidth() * 15))
    fig.suptitle(f"{model_label(model, checkpoint)}\n{textwrap.fill(what, chars)}", fontsize=8)


def pyplot():
    return _pyplot()


def save_png(fig, path: str | os.PathLike) -> str:
    """Write ``fig`` to ``path`` atomically (temp file, fsync, rename) and close it."""
    plt = pyplot()
    try:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format="png")
    finally:
        plt.close(fig)
    return str(path)


def first_conv(model: nn.Module) -> tuple[str, nn.Conv2d]:
    """The first 2-d convolution in registration order (the stem of every cnnlab model)."""
    for name, m in model.named_modules():
        if isinstance(m, nn.Conv2d):
            return name, m
    raise ValueError(f"{getattr(model, 'model_name', type(model).__name__)} has no "
                     "convolution: there are no filters to show")


@contextlib.contextmanager
def no_inplace(model: nn.Module):
    """Turn off ``inplace`` on every module while hooks read activations and gradients
    (an in-place ReLU would overwrite the tensor a hook holds)."""
    changed = [m for m in model.modules() if getattr(m, "inplace", False) is True]
    for m in changed:
        m.inplace = False
    try:
        yield
    finally:
        for m in changed:
            m.inplace = True


def _last_linear(model: nn.Module) -> nn.Linear:
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise ValueError(f"{type(model).__name__} has no forward_head and no linear layer: "
                         "cannot tell its penultimate features")
    return linears[-1]


def penultimate(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The features the classifier reads (``forward_head(..., pre_logits=True)``); for a
    plain ``nn.Module``, the input of its last linear layer."""
    if hasattr(model, "forward_head") and hasattr(model, "forward_features"):
        return model.forward_head(model.forward_features(x), pre_logits=True).flatten(1)
    seen = []
    h = _last_linear(model).register_forward_hook(lambda m, args, out: seen.append(args[0]))
    try:
        model(x)
    finally:
        h.remove()
    return seen[-1].flatten(1)
