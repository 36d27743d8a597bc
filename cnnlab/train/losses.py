"""Dense-prediction losses, as ``loss_fn(outputs, targets)`` for :func:`cnnlab.train.train`.

A list or tuple of outputs is intermediate supervision (Newell et al. 2016, Sec. 3.4: the
same target for every stack): the loss is the sum over the outputs.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def _outputs(out) -> list[torch.Tensor]:
    return list(out) if isinstance(out, (list, tuple)) else [out]


def pixel_cross_entropy(ignore_index: int = 255, weight: torch.Tensor | None = None):
    """Per-pixel softmax cross-entropy averaged over labelled pixels (Long et al. 2015 sum
    it; the mean only rescales the learning rate). Outputs N×C×H×W, targets N×H×W."""
    def loss_fn(out, target):
        losses = []
        for o in _outputs(out):
            if o.shape[-2:] != target.shape[-2:]:
                raise ValueError(f"scores {tuple(o.shape[-2:])} and labels "
                                 f"{tuple(target.shape[-2:])} differ in size")
            w = weight.to(o.device) if weight is not None else None
            losses.append(F.cross_entropy(o, target.long(), weight=w, ignore_index=ignore_index))
        return torch.stack(losses).sum()
    return loss_fn


def heatmap_mse():
    """Mean squared error between predicted and target heatmaps (Newell et al. 2016,
    Sec. 3.4), summed over the stacks' outputs."""
    def loss_fn(out, target):
        losses = []
        for o in _outputs(out):
            if o.shape != target.shape:
                raise ValueError(f"heatmaps {tuple(o.shape)} and targets {tuple(target.shape)} "
                                 "differ in shape")
            losses.append(F.mse_loss(o, target.to(o.dtype)))
        return torch.stack(losses).sum()
    return loss_fn
