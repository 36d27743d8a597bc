"""Xception's separable convolution (Chollet 2017, Sec. 2 and Fig. 4).

A depthwise k×k convolution (one spatial filter per channel) followed directly by a 1×1
pointwise convolution: no normalisation and no nonlinearity in between, which is what
separates it from MobileNet's block (:class:`cnnlab.layers.DepthwiseSeparable`). Sec. 4.7
(Fig. 10) shows that an intermediate ReLU or ELU hurts; ``act`` rebuilds that ablation.
"""

from __future__ import annotations

from collections import OrderedDict

import torch.nn as nn


class SeparableConv2d(nn.Sequential):
    """``dw`` (k×k, groups = in_chs) → optional ``act`` → ``pw`` (1×1); biases off by default
    because a batch norm follows every one in Xception."""

    def __init__(self, in_chs: int, out_chs: int, kernel_size: int = 3, stride: int = 1,
                 padding: int | None = None, dilation: int = 1, bias: bool = False,
                 act: type[nn.Module] | None = None):
        if padding is None:
            padding = (kernel_size - 1) // 2 * dilation
        layers = [("dw", nn.Conv2d(in_chs, in_chs, kernel_size, stride, padding,
                                   dilation=dilation, groups=in_chs, bias=False))]
        if act is not None:
            layers.append(("act", act()))
        layers.append(("pw", nn.Conv2d(in_chs, out_chs, 1, bias=bias)))
        super().__init__(OrderedDict(layers))
        self.out_channels = out_chs
