"""Residual blocks (He et al. 2015; pre-activation: He et al. 2016) and their shortcuts.

Shortcut options of He et al. 2015, Sec. 3.3 / Table 3:

* ``"A"``: identity; where the dimensions grow, zero-padded channels and a strided subsample
  (no parameters);
* ``"B"``: identity; a 1×1 projection (conv + BN) only where the dimensions change;
* ``"C"``: a projection on every block;
* ``"none"``: no shortcut at all (the "plain" networks of Sec. 4.1).

Pre-activation blocks (He et al. 2016, Fig. 4e) end with a convolution and no activation; a
projection shortcut there is a bare 1×1 convolution fed with the pre-activated input, as in the
authors' code (and in Wide ResNets).
"""

from __future__ import annotations

from collections import OrderedDict

import torch
import torch.nn as nn
import torch.nn.functional as F

from cnnlab.layers.conv import ConvNormAct, _make_act

SHORTCUTS = ("A", "B", "C", "none")


class ZeroPadShortcut(nn.Module):
    """Option A: subsample by ``stride`` and append zero channels up to ``out_chs``."""

    def __init__(self, in_chs: int, out_chs: int, stride: int = 1):
        super().__init__()
        if out_chs < in_chs:
            raise ValueError(f"option A cannot shrink channels ({in_chs} -> {out_chs})")
        self.extra, self.stride = out_chs - in_chs, stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride > 1:
            x = x[:, :, ::self.stride, ::self.stride]
        return F.pad(x, (0, 0, 0, 0, 0, self.extra)) if self.extra else x


def make_shortcut(option: str, in_chs: int, out_chs: int, stride: int = 1,
                  preact: bool = False) -> nn.Module | None:
    """The shortcut of one block: ``None`` (plain), ``nn.Identity``, zero-pad or projection."""
    if option not in SHORTCUTS:
        raise ValueError(f"unknown shortcut option {option!r}; choose from {', '.join(SHORTCUTS)}")
    if option == "none":
        return None
    same = in_chs == out_chs and stride == 1
    if option == "C" or (option == "B" and not same):
        if preact:
            return nn.Conv2d(in_chs, out_chs, 1, stride, bias=False)
        return ConvNormAct(in_chs, out_chs, 1, stride, act=None)
    return nn.Identity() if same else ZeroPadShortcut(in_chs, out_chs, stride)


def _shortcut(shortcut, downsample, in_chs, out_chs, stride, preact=False):
    if downsample is not None:
        return downsample
    return make_shortcut(shortcut, in_chs, out_chs, stride, preact)


class BasicBlock(nn.Module):
    """Two 3×3 convolutions (He et al. 2015, Fig. 5 left); ``downsample`` (a module) replaces
    the shortcut that ``shortcut`` (an option letter) would build."""

    def __init__(self, in_chs: int, out_chs: int, stride: int = 1, shortcut: str = "B",
                 downsample: nn.Module | None = None, act: type[nn.Module] = nn.ReLU):
        super().__init__()
        self.conv1 = ConvNormAct(in_chs, out_chs, 3, stride, act=act)
        self.conv2 = ConvNormAct(out_chs, out_chs, 3, act=None)
        self.shortcut = _shortcut(shortcut, downsample, in_chs, out_chs, stride)
        self.act = _make_act(act)
        self.out_channels = out_chs

    def forward(self, x):
        out = self.conv2(self.conv1(x))
        if self.shortcut is not None:
            out = out + self.shortcut(x)
        return self.act(out)


class Bottleneck(nn.Module):
    """1×1 reduce, 3×3 (grouped: ResNeXt, Xie et al. 2017, Fig. 3c), 1×1 expand.

    ``mid_chs`` is the width of the 3×3 (ResNeXt: cardinality × bottleneck width d).
    ``stride_in_1x1=True`` strides the first 1×1 as He et al. 2015 do ("v1"); False strides
    the 3×3 ("v1.5", and ResNeXt).
    """

    def __init__(self, in_chs: int, mid_chs: int, out_chs: int, stride: int = 1,
                 groups: int = 1, shortcut: str = "B", downsample: nn.Module | None = None,
                 stride_in_1x1: bool = False, act: type[nn.Module] = nn.ReLU):
        super().__init__()
        if mid_chs % groups:
            raise ValueError(f"width {mid_chs} is not divisible by {groups} groups")
        s1, s3 = (stride, 1) if stride_in_1x1 else (1, stride)
        self.conv1 = ConvNormAct(in_chs, mid_chs, 1, s1, act=act)
        self.conv2 = ConvNormAct(mid_chs, mid_chs, 3, s3, groups=groups, act=act)
        self.conv3 = ConvNormAct(mid_chs, out_chs, 1, act=None)
        self.shortcut = _shortcut(shortcut, downsample, in_chs, out_chs, stride)
        self.act = _make_act(act)
        self.out_channels = out_chs

    def forward(self, x):
        out = self.conv3(self.conv2(self.conv1(x)))
        if self.shortcut is not None:
            out = out + self.shortcut(x)
        return self.act(out)


class PreAct(nn.Sequential):
    """BN → ReLU → conv (He et al. 2016, Fig. 4e): one "weight layer" of a pre-act block."""

    def __init__(self, in_chs, out_chs, kernel_size, stride=1, groups=1, drop_rate=0.0):
        layers = [("bn", nn.BatchNorm2d(in_chs)), ("act", nn.ReLU(inplace=True))]
        if drop_rate > 0:
            layers.append(("drop", nn.Dropout(drop_rate)))
        layers.append(("conv", nn.Conv2d(in_chs, out_chs, kernel_size, stride,
                                         kernel_size // 2, groups=groups, bias=False)))
        super().__init__(OrderedDict(layers))


class _PreActBlock(nn.Module):
    def _finish(self, shortcut, downsample, in_chs, out_chs, stride):
        self.shortcut = _shortcut(shortcut, downsample, in_chs, out_chs, stride, preact=True)
        # a projection sees the pre-activated input (the authors' code), identity the raw one
        self.project = not isinstance(self.shortcut, (nn.Identity, ZeroPadShortcut))
        self.out_channels = out_chs

    def forward(self, x):
        pre = self.preact(x)
        out = self.body(pre)
        if self.shortcut is None:
            return out
        return out + self.shortcut(pre if self.project else x)


def final_bn_relu(channels: int) -> nn.Sequential:
    """The BN-ReLU after the last pre-activation block (He et al. 2016, "Identity Mappings",
    Sec. 4): the blocks hand on un-normalised sums, so the head needs one more of it."""
    return nn.Sequential(OrderedDict(bn=nn.BatchNorm2d(channels), act=nn.ReLU(True)))


class PreActBasicBlock(_PreActBlock):
    """Pre-activation basic block: (BN-ReLU-conv3×3) ×2; ``drop_rate`` puts dropout between
    the two convolutions (Wide ResNet, Zagoruyko & Komodakis 2016, Sec. 2.4)."""

    def __init__(self, in_chs: int, out_chs: int, stride: int = 1, shortcut: str = "B",
                 downsample: nn.Module | None = None, drop_rate: float = 0.0):
        super().__init__()
        self.preact = nn.Sequential(nn.BatchNorm2d(in_chs), nn.ReLU(inplace=True))
        self.body = nn.Sequential(OrderedDict(
            conv1=nn.Conv2d(in_chs, out_chs, 3, stride, 1, bias=False),
            conv2=PreAct(out_chs, out_chs, 3, drop_rate=drop_rate)))
        self._finish(shortcut, downsample, in_chs, out_chs, stride)


class PreActBottleneck(_PreActBlock):
    """Pre-activation bottleneck: BN-ReLU-conv1×1, BN-ReLU-conv3×3 (stride), BN-ReLU-conv1×1."""

    def __init__(self, in_chs: int, mid_chs: int, out_chs: int, stride: int = 1,
                 groups: int = 1, shortcut: str = "B", downsample: nn.Module | None = None):
        super().__init__()
        self.preact = nn.Sequential(nn.BatchNorm2d(in_chs), nn.ReLU(inplace=True))
        self.body = nn.Sequential(OrderedDict(
            conv1=nn.Conv2d(in_chs, mid_chs, 1, bias=False),
            conv2=PreAct(mid_chs, mid_chs, 3, stride, groups),
            conv3=PreAct(mid_chs, out_chs, 1)))
        self._finish(shortcut, downsample, in_chs, out_chs, stride)
