"""ResNeXt's three equivalent forms of an aggregated residual block (Xie et al. 2017, Fig. 3).

(a) split-transform-merge: C paths, each 1×1 (in → d), 3×3 (d → d), 1×1 (d → out), summed;
(b) early concatenation: the paths' 3×3 outputs are concatenated and one 1×1 (C·d → out)
    follows — the sum of (a)'s last 1×1s is one 1×1 over the concatenation;
(c) grouped convolution: (b)'s first 1×1s are one 1×1 (in → C·d) and its C 3×3s one grouped
    convolution with C groups — :class:`cnnlab.layers.resnet_blocks.Bottleneck` with
    ``groups=C``, the form the networks use (it runs fastest).

Batch norm is per channel, so BN on each path's channels is BN on the concatenation; in (a)
the BN after the last 1×1 sits after the sum, where (b) and (c) have it. :func:`as_form` copies
a grouped block's weights into form (a) or (b): the three then compute the same function.
"""

from __future__ import annotations

import copy

import torch
import torch.nn as nn

from cnnlab.layers.conv import ConvNormAct, _make_act
from cnnlab.layers.resnet_blocks import Bottleneck, make_shortcut


def _path(in_chs: int, width: int, stride: int) -> nn.Sequential:
    return nn.Sequential(ConvNormAct(in_chs, width, 1), ConvNormAct(width, width, 3, stride))


class _AggregatedBlock(nn.Module):
    def __init__(self, in_chs, cardinality, width, out_chs, stride, shortcut):
        super().__init__()
        self.paths = nn.ModuleList(_path(in_chs, width, stride) for _ in range(cardinality))
        self.shortcut = make_shortcut(shortcut, in_chs, out_chs, stride)
        self.act = _make_act(nn.ReLU)
        self.cardinality, self.width, self.out_channels = cardinality, width, out_chs

    def merge(self, outs: list[torch.Tensor]) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, x):
        out = self.merge([p(x) for p in self.paths])
        if self.shortcut is not None:
            out = out + self.shortcut(x)
        return self.act(out)


class SplitTransformMerge(_AggregatedBlock):
    """Fig. 3a: C paths ending in their own 1×1 (d → out), summed, then BN."""

    def __init__(self, in_chs: int, cardinality: int, width: int, out_chs: int,
                 stride: int = 1, shortcut: str = "B"):
        super().__init__(in_chs, cardinality, width, out_chs, stride, shortcut)
        self.expand = nn.ModuleList(nn.Conv2d(width, out_chs, 1, bias=False)
                                    for _ in range(cardinality))
        self.bn = nn.BatchNorm2d(out_chs)

    def merge(self, outs):
        return self.bn(sum(e(o) for e, o in zip(self.expand, outs)))


class EarlyConcat(_AggregatedBlock):
    """Fig. 3b: the C paths' 3×3 outputs concatenated, then one 1×1 (C·d → out) and BN."""

    def __init__(self, in_chs: int, cardinality: int, width: int, out_chs: int,
                 stride: int = 1, shortcut: str = "B"):
        super().__init__(in_chs, cardinality, width, out_chs, stride, shortcut)
        self.expand = ConvNormAct(cardinality * width, out_chs, 1, act=None)

    def merge(self, outs):
        return self.expand(torch.cat(outs, 1))


def _copy_bn(dst: nn.BatchNorm2d, src: nn.BatchNorm2d, rows: slice) -> None:
    for name in ("weight", "bias", "running_mean", "running_var"):
        getattr(dst, name).copy_(getattr(src, name)[rows])
    dst.num_batches_tracked.copy_(src.num_batches_tracked)
    dst.eps, dst.momentum = src.eps, src.momentum


@torch.no_grad()
def as_form(block: Bottleneck, form: str) -> nn.Module:
    """Form ``"a"`` (:class:`SplitTransformMerge`) or ``"b"`` (:class:`EarlyConcat`) of a
    grouped ResNeXt bottleneck, with its weights (its stride in the 3×3)."""
    if form not in ("a", "b"):
        raise ValueError(f"form must be 'a' or 'b', got {form!r}")
    c = block.conv2.conv.groups
    in_chs, mid = block.conv1.conv.in_channels, block.conv1.conv.out_channels
    out_chs, d = block.out_channels, mid // c
    if block.conv1.conv.stride != (1, 1):
        raise ValueError("the three forms stride the 3x3; this block strides its first 1x1")
    cls = SplitTransformMerge if form == "a" else EarlyConcat
    new = cls(in_chs, c, d, out_chs, block.conv2.conv.stride[0], "none").to(
        block.conv1.conv.weight.device)
    new.shortcut, new.act = copy.deepcopy(block.shortcut), copy.deepcopy(block.act)
    for i, path in enumerate(new.paths):
        rows = slice(i * d, (i + 1) * d)
        for mine, theirs in zip(path, (block.conv1, block.conv2)):
            mine.conv.weight.copy_(theirs.conv.weight[rows])
            _copy_bn(mine.bn, theirs.bn, rows)
    if form == "a":
        for i, e in enumerate(new.expand):
            e.weight.copy_(block.conv3.conv.weight[:, i * d:(i + 1) * d])
        new.bn.load_state_dict(block.conv3.bn.state_dict())
        new.bn.eps = block.conv3.bn.eps
    else:
        new.expand.load_state_dict(block.conv3.state_dict())
    return new.train(block.training)
