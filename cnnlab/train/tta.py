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
- ``multicrop+dense``: both sets of views, their softmax outputs averaged together (Table 5's
  "multi-crop & dense", VGG's best single-network result).
- ``144crop``: GoogLeNet's test crops (Szegedy et al. 2015, Sec. 7): the short side rescaled to
  4 scales (256, 288, 320, 352 for 224 crops: 8/7 … 11/7 of the input), the left, centre and
  right squares of each (top, centre, bottom for portrait images), from each square the 4
  corner crops, the centre crop and the square itself resized to the input, all mirrored:
  4 × 3 × 6 × 2 = 144 views.

VGG's test scales follow the training scale S (Sec. 4.2, the "Q rule"): Q = {S − 32, S, S + 32}
for a single S, Q = {S_min, ½(S_min + S_max), S_max} for scale jittering S ∈ [S_min, S_max]
(:func:`q_scales`). The default {1, 8/7, 9/7}× the input is the rule at S = 256 on 224 crops.

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

TTA = ("flip", "10crop", "multiscale", "multicrop", "multicrop+dense", "144crop")
SCALES = (1.0, 8 / 7, 9 / 7)
GOOGLENET_SCALES = (8 / 7, 9 / 7, 10 / 7, 11 / 7)  # 256, 288, 320, 352 for 224 crops


def q_scales(train_scale: tuple[float, float] | None, crop: int = 224) -> tuple[float, ...]:
    """VGG's test scales Q for the training scale S (Sec. 4.2), as multiples of the crop side:
    ``train_scale`` is (S_min, S_max) in the same units, equal for a single S (then Q = S and
    S ± 32 pixels of a ``crop``-pixel input). None: S = 256 on 224 crops, the default."""
    if train_scale is None:
        return SCALES
    lo, hi = train_scale
    if not 0 < lo <= hi:
        raise ValueError(f"training scale must satisfy 0 < S_min <= S_max, got {train_scale}")
    if lo == hi:  # no scale below the crop itself (S = 224 on 224 crops: Q = {224, 256})
        return tuple(dict.fromkeys((max(1.0, lo - 32 / crop), lo, lo + 32 / crop)))
    return (lo, (lo + hi) / 2, hi)


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


def _squares(x: torch.Tensor) -> list[torch.Tensor]:
    """The left, centre and right squares of a landscape image (top, centre, bottom of a
    portrait one)."""
    H, W = x.shape[-2:]
    s = min(H, W)
    if W >= H:
        return [x[..., :, lf:lf + s] for lf in (0, (W - s) // 2, W - s)]
    return [x[..., t:t + s, :] for t in (0, (H - s) // 2, H - s)]


def googlenet_views(x: torch.Tensor, size: tuple[int, int],
                    scales=GOOGLENET_SCALES) -> list[torch.Tensor]:
    """GoogLeNet's 144 crops (see the module's docstring)."""
    h, w = size
    views = []
    for q in scales:
        for sq in _squares(_resize(x, round(min(h, w) * q))):
            S = sq.shape[-1]
            crops = [sq[..., :h, :w], sq[..., :h, S - w:], sq[..., S - h:, :w],
                     sq[..., S - h:, S - w:], center_crop(sq, size),
                     F.interpolate(sq, size=size, mode="bilinear", align_corners=False,
                                   antialias=True)]
            views += crops + [c.flip(-1) for c in crops]
    return views


def tta_views(x: torch.Tensor, mode: str | None, size: tuple[int, int],
              dense: bool = False, scales=None) -> list[torch.Tensor]:
    """The views one batch is scored on (see the module's docstring). ``dense``: the network
    is fully convolutional, so ``multiscale`` passes whole rescaled images. ``scales``: VGG's
    test scales Q (:func:`q_scales`), default {1, 8/7, 9/7}."""
    h, w = size
    scales = SCALES if scales is None else scales
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
    if mode == "144crop":
        return googlenet_views(x, size)
    if mode == "multicrop+dense":
        return (tta_views(x, "multicrop", size, dense, scales)
                + tta_views(x, "multiscale", size, dense, scales))
    if mode in ("multiscale", "multicrop"):
        views = []
        for q in scales:
            r = _resize(x, round(min(h, w) * q))
            if mode == "multicrop":
                crops = _grid(r, size)
            else:
                crops = [r if dense else center_crop(r, size)]
            views += crops + [c.flip(-1) for c in crops]
        return views
    raise ValueError(f"unknown --tta {mode!r}; known: {', '.join(TTA)}")
