"""Test-time augmentation: the views a batch is scored on, and VGG's dense evaluation.

- ``flip``: the centre crop and its mirror.
- ``10crop``: AlexNet (Krizhevsky et al. 2012, Sec. 4.1): four corner crops and the centre
  crop, each with its mirror; images no larger than the input are first padded by an eighth.
- ``multiscale``: VGG's dense evaluation (Simonyan & Zisserman 2015, Secs. 3.2 and 4.2): the
  short side rescaled to Q ∈ {1, 8/7, 9/7}× the input (Q ∈ {224, 256, 288} for 224 crops), the
  network applied fully-convolutionally to the whole image and its mirror, each class score
  map averaged over its positions.
- ``multicrop``: VGG's multi-crop evaluation (Sec. 4.3): a 5×5 regular grid of crops with
  their mirrors at the same three scales, 150 views.

The softmax outputs of the views are averaged (Sec. 4.2). A network whose head is a global
pooling is already fully convolutional; a VGG or AlexNet head (fully-connected layers over a
k×k grid) is run as convolutions by :class:`DenseForm`; any other network (LeNet-5's fixed
32×32, say) is scored on the centre crop of each rescaled image instead.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from cnnlab.data.augment import center_crop
from cnnlab.models.base import DenseForm  # noqa: F401  (its home is the model; kept here)

TTA = ("flip", "10crop", "multiscale", "multicrop")
SCALES = (1.0, 8 / 7, 9 / 7)


def dense_form(model: nn.Module) -> nn.Module | None:
    """``model`` itself when its head pools globally, a :class:`DenseForm` of it when its head
    is fully-connected layers over an adaptive k×k pool, else None (not fully convolutional):
    the model's own :meth:`~cnnlab.models.base.ConvNet.as_fully_convolutional`."""
    as_fc = getattr(model, "as_fully_convolutional", None)
    return as_fc() if callable(as_fc) else None


def _resize(x: torch.Tensor, side: int) -> torch.Tensor:
    """Short side → ``side``, aspect kept."""
    h, w = x.shape[-2:]
    s = side / min(h, w)
    return F.interpolate(x, size=(max(side, round(h * s)), max(side, round(w * s))),
                         mode="bilinear", align_corners=False, antialias=True)


def _grid(x: torch.Tensor, size: tuple[int, int], n: int = 5) -> list[torch.Tensor]:
    H, W = x.shape[-2:]
    h, w = size
    tops = torch.linspace(0, H - h, n).round().long().tolist()
    lefts = torch.linspace(0, W - w, n).round().long().tolist()
    return [x[..., t:t + h, lf:lf + w] for t in tops for lf in lefts]


def tta_views(x: torch.Tensor, mode: str | None, size: tuple[int, int],
              dense: bool = False) -> list[torch.Tensor]:
    """The views one batch is scored on (see the module's docstring). ``dense``: the network
    is fully convolutional, so ``multiscale`` passes whole rescaled images."""
    h, w = size
    if mode is None:
        return [center_crop(x, size)]
    if mode == "flip":
        c = center_crop(x, size)
        return [c, c.flip(-1)]
    if mode == "10crop":
        if x.shape[-2] <= h or x.shape[-1] <= w:
            p = max(1, h // 8)
            x = F.pad(center_crop(x, (min(h, x.shape[-2]), min(w, x.shape[-1]))),
                      (p, p, p, p), mode="reflect")
        H, W = x.shape[-2:]
        crops = [x[..., :h, :w], x[..., :h, W - w:], x[..., H - h:, :w], x[..., H - h:, W - w:],
                 center_crop(x, size)]
        return crops + [c.flip(-1) for c in crops]
    if mode in ("multiscale", "multicrop"):
        views = []
        for q in SCALES:
            r = _resize(x, round(min(h, w) * q))
            if mode == "multicrop":
                crops = _grid(r, size)
            else:
                crops = [r if dense else center_crop(r, size)]
            views += crops + [c.flip(-1) for c in crops]
        return views
    raise ValueError(f"unknown --tta {mode!r}; known: {', '.join(TTA)}")
