"""The inverted residual with linear bottleneck (Sandler et al. 2018, Fig. 3b, Table 1) and
its squeeze-excited, swish-activated form MBConv (Tan & Le 2019 after MnasNet).

A thin bottleneck tensor is expanded ``t``-fold by a 1×1 convolution, filtered by a depthwise
k×k convolution in the wide space, and projected back by a 1×1 convolution with *no*
non-linearity (the linear bottleneck: ReLU on a low-dimensional manifold destroys
information, Sec. 3.2). The shortcut joins the thin tensors, the reverse of ResNet's
bottleneck, so only small tensors need live in memory between blocks (Sec. 5.1).
"""

from __future__ import annotations

import torch
import torch.nn as nn

from cnnlab.layers.conv import ConvNormAct
from cnnlab.layers.se import SqueezeExcite


def drop_path(x: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """Stochastic depth per sample: zero a whole residual branch with probability ``p`` and
    scale the survivors by ``1 / (1 - p)`` (EfficientNet's "drop connect")."""
    if p == 0.0 or not training:
        return x
    keep = 1.0 - p
    mask = x.new_empty((x.shape[0],) + (1,) * (x.dim() - 1)).bernoulli_(keep)
    return x * mask / keep


class DropPath(nn.Module):
    """:func:`drop_path` as a module; the identity in eval mode."""

    def __init__(self, p: float = 0.0):
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"drop-path rate must be in [0, 1), got {p!r}")
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return drop_path(x, self.p, self.training)

    def extra_repr(self) -> str:
        return f"p={self.p}"


class InvertedResidual(nn.Module):
    """1×1 expand (×``expand_ratio``) → k×k depthwise (``stride``) → [SE] → 1×1 linear
    project, with a shortcut when ``stride == 1`` and the channels match.

    ``expand_ratio=1`` drops the expansion convolution (MobileNetV2's first bottleneck,
    EfficientNet's MBConv1). ``se_ratio`` > 0 inserts squeeze-excitation on the expanded
    tensor, its width measured against ``in_chs`` as EfficientNet does. ``drop_path`` is the
    stochastic-depth rate of the residual branch (only blocks with a shortcut use it).
    """

    def __init__(self, in_chs: int, out_chs: int, stride: int = 1, expand_ratio: float = 6,
                 kernel_size: int = 3, act: type[nn.Module] = nn.ReLU6, se_ratio: float = 0.0,
                 se_act: type[nn.Module] | None = None, se_gate: type[nn.Module] = nn.Sigmoid,
                 dilation: int = 1, drop_path: float = 0.0, skip: bool = True):
        super().__init__()
        if stride not in (1, 2):
            raise ValueError(f"inverted residual stride must be 1 or 2, got {stride!r}")
        if expand_ratio < 1:
            raise ValueError(f"expand_ratio must be >= 1, got {expand_ratio!r}")
        hidden = int(round(in_chs * expand_ratio))
        self.in_chs, self.out_chs, self.stride = in_chs, out_chs, stride
        self.hidden_chs = hidden
        self.has_skip = skip and stride == 1 and in_chs == out_chs
        self.expand = (ConvNormAct(in_chs, hidden, 1, act=act) if expand_ratio != 1
                       else nn.Identity())
        self.dw = ConvNormAct(hidden, hidden, kernel_size, stride, groups=hidden,
                              dilation=dilation, act=act)
        self.se = (SqueezeExcite(hidden, se_ratio, base_channels=in_chs, act=se_act or act,
                                 gate=se_gate) if se_ratio else nn.Identity())
        self.project = ConvNormAct(hidden, out_chs, 1, act=None)  # linear: no activation
        self.drop_path = DropPath(drop_path) if self.has_skip and drop_path else nn.Identity()
        self.out_channels = out_chs

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.project(self.se(self.dw(self.expand(x))))
        return x + self.drop_path(y) if self.has_skip else y


class MBConv(InvertedResidual):
    """Mobile inverted bottleneck of MnasNet/EfficientNet: an :class:`InvertedResidual` with
    squeeze-excitation (ratio 0.25 of the block's input) and swish (SiLU) activations."""

    def __init__(self, in_chs: int, out_chs: int, stride: int = 1, expand_ratio: float = 6,
                 kernel_size: int = 3, se_ratio: float = 0.25,
                 act: type[nn.Module] = nn.SiLU, drop_path: float = 0.0, **kwargs):
        super().__init__(in_chs, out_chs, stride, expand_ratio, kernel_size, act=act,
                         se_ratio=se_ratio, drop_path=drop_path, **kwargs)
