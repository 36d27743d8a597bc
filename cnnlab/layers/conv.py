"""Convolution + norm + activation, and the depthwise separable convolution."""

from __future__ import annotations

from collections import OrderedDict

import torch.nn as nn


def make_divisible(v: float, divisor: int = 8, min_value: int | None = None) -> int:
    """Round channels to a multiple of ``divisor`` without losing more than 10 %.

    The rule of the released MobileNetV2/EfficientNet networks (Sandler et al. 2018 round
    every layer's width to a multiple of 8).
    """
    min_value = min_value or divisor
    new_v = max(min_value, int(v + divisor / 2) // divisor * divisor)
    if new_v < 0.9 * v:
        new_v += divisor
    return new_v


class ConvNormAct(nn.Sequential):
    """``conv`` (no bias when a norm follows) → ``bn`` → ``act``; padding keeps "same" size
    for odd kernels at stride 1."""

    def __init__(self, in_chs: int, out_chs: int, kernel_size: int | tuple = 3, stride: int = 1,
                 padding: int | tuple | None = None, groups: int = 1, dilation: int = 1,
                 norm: bool = True, act: type[nn.Module] | None = nn.ReLU,
                 bias: bool | None = None):
        if padding is None:
            ks = kernel_size if isinstance(kernel_size, tuple) else (kernel_size, kernel_size)
            padding = tuple((k - 1) // 2 * dilation for k in ks)
        layers = [("conv", nn.Conv2d(in_chs, out_chs, kernel_size, stride, padding,
                                     dilation=dilation, groups=groups,
                                     bias=(not norm) if bias is None else bias))]
        if norm:
            layers.append(("bn", nn.BatchNorm2d(out_chs)))
        if act is not None:
            layers.append(("act", _make_act(act)))
        super().__init__(OrderedDict(layers))
        self.out_channels = out_chs


def _make_act(act):
    if isinstance(act, nn.Module):
        return act
    try:
        return act(inplace=True)
    except TypeError:
        return act()


class DepthwiseSeparable(nn.Sequential):
    """Depthwise k×k convolution (one filter per input channel) then a 1×1 pointwise one,
    each followed by BN and ReLU (Howard et al. 2017, Fig. 3 right)."""

    def __init__(self, in_chs: int, out_chs: int, stride: int = 1, kernel_size: int = 3,
                 act: type[nn.Module] | None = nn.ReLU, pw_act: bool = True):
        super().__init__(OrderedDict(
            dw=ConvNormAct(in_chs, in_chs, kernel_size, stride, groups=in_chs, act=act),
            pw=ConvNormAct(in_chs, out_chs, 1, act=act if pw_act else None),
        ))
        self.out_channels = out_chs
