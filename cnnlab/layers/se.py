"""Squeeze-and-excitation (Hu et al. 2018): a per-channel gate computed from global context.

Global average pooling *squeezes* each channel to one number, a two-layer bottleneck
(1×1 convolutions with bias, i.e. fully connected layers) *excites* a gate in (0, 1) per
channel, and the input is rescaled by it.

The bottleneck width is ``max(1, int(base_channels * ratio))``. SENet measures it against
the gated channels (``ratio = 1/16``); EfficientNet/MnasNet gate the *expanded* tensor of an
MBConv block but size the bottleneck from the block's *input* channels (``ratio = 0.25``), so
``base_channels`` can differ from ``channels``.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from cnnlab.layers.conv import _make_act


class SqueezeExcite(nn.Module):
    """``x * gate(expand(act(reduce(mean(x)))))`` over channels.

    ``channels``: channels of the tensor gated; ``ratio``: bottleneck width relative to
    ``base_channels`` (default ``channels``); ``reduced_channels`` overrides the width.
    """

    def __init__(self, channels: int, ratio: float = 1 / 16, base_channels: int | None = None,
                 act: type[nn.Module] = nn.ReLU, gate: type[nn.Module] = nn.Sigmoid,
                 reduced_channels: int | None = None):
        super().__init__()
        if reduced_channels is None:
            if not 0 < ratio <= 1:
                raise ValueError(f"SE ratio must be in (0, 1], got {ratio!r}")
            reduced_channels = max(1, int((base_channels or channels) * ratio))
        self.channels = channels
        self.reduced_channels = reduced_channels
        self.conv_reduce = nn.Conv2d(channels, reduced_channels, 1, bias=True)
        self.act = _make_act(act)
        self.conv_expand = nn.Conv2d(reduced_channels, channels, 1, bias=True)
        self.gate = gate()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = F.adaptive_avg_pool2d(x, 1)  # a pool op, so the profiler counts it
        s = self.conv_expand(self.act(self.conv_reduce(s)))
        return x * self.gate(s)
