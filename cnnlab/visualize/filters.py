"""First-layer filters as an image grid (Krizhevsky et al. 2012, Fig. 3: the 96 11×11×3
filters of AlexNet's first layer; deck 002:125-138)."""

from __future__ import annotations

import math
import os

import numpy as np
import torch
import torch.nn as nn

from cnnlab.visualize.common import first_conv, pyplot, save_png, suptitle


def filter_tiles(weight: torch.Tensor) -> np.ndarray:
    """``O×C×kh×kw`` weights → tiles in [0, 1], each filter min–max scaled on its own.

    Three input channels give ``O×kh×kw×3`` RGB tiles (AlexNet's picture); any other count
    gives grey tiles, one per filter and input channel (``O·C×kh×kw``)."""
    w = weight.detach().float().cpu()
    lo = w.flatten(1).min(1).values.view(-1, 1, 1, 1)
    hi = w.flatten(1).max(1).values.view(-1, 1, 1, 1)
    w = (w - lo) / (hi - lo).clamp_min(1e-12)
    if w.shape[1] == 3:
        return w.permute(0, 2, 3, 1).numpy()
    return w.flatten(0, 1).numpy()


def plot_filters(model: nn.Module, path: str | os.PathLike, checkpoint=None,
                 columns: int | None = None) -> str:
    """Save the first convolution's filters as a grid PNG; raises ``ValueError`` for a
    model without a convolution."""
    name, conv = first_conv(model)
    tiles = filter_tiles(conv.weight)
    rgb = tiles.ndim == 4
    per_filter = 1 if rgb else conv.weight.shape[1]
    n = len(tiles)
    cols = columns or (per_filter if per_filter > 1 else n if n <= 8 else math.ceil(n ** 0.5))
    rows = math.ceil(n / cols)
    plt = pyplot()
    size = 0.6 + 0.35 * max(conv.weight.shape[-1], 5) / 5
    fig, axes = plt.subplots(rows, cols, figsize=(max(3.2, cols * size), rows * size + 0.7),
                             dpi=100, squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i < n:
            ax.imshow(tiles[i], cmap=None if rgb else "gray", vmin=0, vmax=1,
                      interpolation="nearest")
    k = "×".join(map(str, conv.kernel_size))
    what = (f"first-layer filters {name}: {conv.out_channels} × {k}"
            f"{'×3 RGB' if rgb else f' × {conv.in_channels} in' if per_filter > 1 else ''}")
    suptitle(fig, model, checkpoint, what)
    fig.tight_layout()
    return save_png(fig, path)
