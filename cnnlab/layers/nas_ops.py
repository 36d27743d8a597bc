"""NAS cell operations and a cell that executes a genotype (Zoph et al. 2018, Sec. 3).

A cell takes two hidden states, h_{i-1} and h_i (the outputs of the two previous cells), and
builds B blocks; each block picks two existing hidden states, applies one operation to each
and combines the results (Fig. 3, steps 1-5). The cell's output concatenates the chosen
hidden states along the channels. Which states, which operations and how they combine is
*data*, a :class:`Genotype`; :class:`Cell` executes any genotype built from :data:`OPS`.

Hidden-state indices: ``0`` = h_{i-1}, ``1`` = h_i, ``2 + k`` = the output of block ``k``.

The operations follow the authors' released code (TF-slim ``nasnet_utils.py``): every
convolutional operation is ReLU → conv → BN; a separable convolution is applied twice;
a reduction cell strides only the operations applied to its two inputs; pooling and identity
get a 1×1 convolution + BN where the channel count must change (identity also where it
strides). Average pooling ignores padded positions, as TF's "SAME" pooling does.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from cnnlab.layers.conv import ConvNormAct
from cnnlab.layers.inverted_residual import drop_path
from cnnlab.layers.separable import SeparableConv2d


class SepConv(nn.Module):
    """NASNet's "k×k depthwise-separable conv": (ReLU, separable conv, BN) applied twice;
    only the first strides and changes the channel count."""

    def __init__(self, in_chs: int, out_chs: int, kernel_size: int, stride: int = 1):
        super().__init__()
        self.separable_1 = SeparableConv2d(in_chs, out_chs, kernel_size, stride)
        self.bn_sep_1 = nn.BatchNorm2d(out_chs)
        self.separable_2 = SeparableConv2d(out_chs, out_chs, kernel_size)
        self.bn_sep_2 = nn.BatchNorm2d(out_chs)

    def forward(self, x):
        x = self.bn_sep_1(self.separable_1(F.relu(x)))
        return self.bn_sep_2(self.separable_2(F.relu(x)))


class ReLUConvBN(nn.Module):
    """ReLU → convolution(s) → BN; ``kernels`` like ``[(1, 7), (7, 1)]`` stack convolutions
    (a factorised k×k), the stride going to the convolution that spans that axis."""

    def __init__(self, in_chs: int, out_chs: int, kernels, stride: int = 1, dilation: int = 1):
        super().__init__()
        convs, c = [], in_chs
        for k in kernels:
            kh, kw = k if isinstance(k, tuple) else (k, k)
            s = (stride if kh > 1 or len(kernels) == 1 else 1,
                 stride if kw > 1 or len(kernels) == 1 else 1)
            pad = ((kh - 1) // 2 * dilation, (kw - 1) // 2 * dilation)
            convs.append(nn.Conv2d(c, out_chs, (kh, kw), s, pad, dilation=dilation, bias=False))
            c = out_chs
        self.conv = convs[0] if len(convs) == 1 else nn.Sequential(*convs)
        self.bn = nn.BatchNorm2d(out_chs)

    def forward(self, x):
        return self.bn(self.conv(F.relu(x)))


class Pool(nn.Module):
    """k×k max or average pooling ("SAME" size), then 1×1 conv + BN if channels change."""

    def __init__(self, kind: str, kernel_size: int, in_chs: int, out_chs: int, stride: int = 1):
        super().__init__()
        pad = kernel_size // 2
        self.pool = (nn.MaxPool2d(kernel_size, stride, pad) if kind == "max" else
                     nn.AvgPool2d(kernel_size, stride, pad, count_include_pad=False))
        self.proj = ConvNormAct(in_chs, out_chs, 1, act=None) if in_chs != out_chs else None

    def forward(self, x):
        x = self.pool(x)
        return x if self.proj is None else self.proj(x)


class FactorizedReduce(nn.Module):
    """Halve the resolution without dropping pixels: two 1×1 convolutions with stride 2, the
    second on the input shifted by one pixel, each giving half the channels; concat, BN.
    With stride 1 it is a 1×1 convolution + BN (TF-slim ``factorized_reduction``)."""

    def __init__(self, in_chs: int, out_chs: int, stride: int = 2, act: bool = False):
        super().__init__()
        if stride == 2 and out_chs % 2:
            raise ValueError(f"factorized reduction needs an even channel count, got {out_chs}")
        self.act = act
        self.stride = stride
        if stride == 1:
            self.conv = nn.Conv2d(in_chs, out_chs, 1, bias=False)
        else:
            self.path1 = nn.Conv2d(in_chs, out_chs // 2, 1, stride=2, bias=False)
            self.path2 = nn.Conv2d(in_chs, out_chs // 2, 1, stride=2, bias=False)
        self.bn = nn.BatchNorm2d(out_chs)

    def forward(self, x):
        x = F.relu(x) if self.act else x
        if self.stride == 1:
            return self.bn(self.conv(x))
        shifted = F.pad(x, (0, 1, 0, 1))[:, :, 1:, 1:]
        return self.bn(torch.cat([self.path1(x), self.path2(shifted)], 1))


class Identity(nn.Module):
    """The identity ("none" in the released code); ReLU → strided 1×1 conv → BN where it must
    stride or change channels."""

    def __init__(self, in_chs: int, out_chs: int, stride: int = 1):
        super().__init__()
        self.proj = (ReLUConvBN(in_chs, out_chs, [1], stride) if stride > 1 or in_chs != out_chs
                     else None)

    def forward(self, x):
        return x if self.proj is None else self.proj(x)


# The search space of Sec. 3 (the 13 operations listed there): builder(in_chs, out_chs, stride)
OPS: dict[str, Callable[[int, int, int], nn.Module]] = {
    "identity": lambda i, o, s: Identity(i, o, s),
    "conv_1x3_3x1": lambda i, o, s: ReLUConvBN(i, o, [(1, 3), (3, 1)], s),
    "conv_1x7_7x1": lambda i, o, s: ReLUConvBN(i, o, [(1, 7), (7, 1)], s),
    "dil_conv_3x3": lambda i, o, s: ReLUConvBN(i, o, [3], s, dilation=2),
    "avg_pool_3x3": lambda i, o, s: Pool("avg", 3, i, o, s),
    "max_pool_3x3": lambda i, o, s: Pool("max", 3, i, o, s),
    "max_pool_5x5": lambda i, o, s: Pool("max", 5, i, o, s),
    "max_pool_7x7": lambda i, o, s: Pool("max", 7, i, o, s),
    "conv_1x1": lambda i, o, s: ReLUConvBN(i, o, [1], s),
    "conv_3x3": lambda i, o, s: ReLUConvBN(i, o, [3], s),
    "sep_conv_3x3": lambda i, o, s: SepConv(i, o, 3, s),
    "sep_conv_5x5": lambda i, o, s: SepConv(i, o, 5, s),
    "sep_conv_7x7": lambda i, o, s: SepConv(i, o, 7, s),
}


@dataclass(frozen=True)
class Genotype:
    """A cell as data: ``nodes`` are blocks ``(input_a, op_a, input_b, op_b)`` (indices as in
    the module docstring, op names from :data:`OPS`), combined by ``combine`` ("add" or
    "concat"); ``concat`` lists the hidden states concatenated into the cell's output."""

    nodes: tuple[tuple[int, str, int, str], ...]
    concat: tuple[int, ...]
    combine: str = "add"

    def __post_init__(self):
        object.__setattr__(self, "nodes", tuple(tuple(n) for n in self.nodes))
        object.__setattr__(self, "concat", tuple(self.concat))
        if self.combine not in ("add", "concat"):
            raise ValueError(f"combine must be 'add' or 'concat', got {self.combine!r}")
        if not self.nodes or not self.concat:
            raise ValueError("a genotype needs at least one block and one concatenated state")
        for k, node in enumerate(self.nodes):
            if len(node) != 4:
                raise ValueError(f"block {k} must be (input_a, op_a, input_b, op_b), got {node}")
            for idx, op in (node[:2], node[2:]):
                if not isinstance(idx, int) or not 0 <= idx < 2 + k:
                    raise ValueError(f"block {k} reads hidden state {idx!r}; only 0..{k + 1} "
                                     "exist before it")
                if op not in OPS:
                    raise ValueError(f"unknown operation {op!r}; choose from {sorted(OPS)}")
        if any(not 0 <= i < 2 + len(self.nodes) for i in self.concat):
            raise ValueError(f"concat {self.concat} names a hidden state that does not exist")


class Cell(nn.Module):
    """Executes a :class:`Genotype` with ``channels`` filters per operation.

    ``in_chs_prev``/``in_chs``: channels of h_{i-1} and h_i. h_i goes through ReLU → 1×1 conv
    → BN; h_{i-1} through a factorised reduction when it has twice h_i's resolution
    (``reduce_prev``), a 1×1 conv when its channels differ, else unchanged. With
    ``in_chs_prev=None`` the cell has one input (NASNet's first stem cell) and h_{i-1} is h_i
    as it comes in. ``reduction=True`` strides the operations on the two inputs by 2.
    """

    def __init__(self, genotype: Genotype, in_chs_prev: int | None, in_chs: int, channels: int,
                 reduction: bool = False, reduce_prev: bool = False, drop_path_rate: float = 0.0):
        super().__init__()
        self.genotype = genotype
        self.reduction = reduction
        self.drop_path_rate = drop_path_rate
        self.conv_1x1 = ReLUConvBN(in_chs, channels, [1])
        self.single_input = in_chs_prev is None
        if in_chs_prev is None:
            self.prev, c_prev = None, in_chs
        elif reduce_prev:
            self.prev, c_prev = FactorizedReduce(in_chs_prev, channels, 2, act=True), channels
        elif in_chs_prev != channels:
            self.prev, c_prev = ReLUConvBN(in_chs_prev, channels, [1]), channels
        else:
            self.prev, c_prev = None, channels
        chans = [c_prev, channels]
        for k, (a, op_a, b, op_b) in enumerate(genotype.nodes):
            block = nn.Module()
            block.left = OPS[op_a](chans[a], channels, 2 if reduction and a < 2 else 1)
            block.right = OPS[op_b](chans[b], channels, 2 if reduction and b < 2 else 1)
            self.add_module(f"comb_iter_{k}", block)
            chans.append(channels * (2 if genotype.combine == "concat" else 1))
        self.fit = nn.ModuleDict()  # concatenated inputs whose resolution/channels differ
        for i in genotype.concat:
            stride = 2 if reduction and i < 2 else 1
            if i < 2 and (stride > 1 or chans[i] != channels):
                self.fit[str(i)] = FactorizedReduce(chans[i], channels, stride)
                chans[i] = channels
        self.out_channels = sum(chans[i] for i in genotype.concat)

    def _run_op(self, op: nn.Module, name: str, x: torch.Tensor) -> torch.Tensor:
        x = op(x)
        return x if name == "identity" else drop_path(x, self.drop_path_rate, self.training)

    def forward(self, h_prev: torch.Tensor | None, h: torch.Tensor) -> torch.Tensor:
        if self.single_input:
            h_prev = h
        states = [h_prev if self.prev is None else self.prev(h_prev), self.conv_1x1(h)]
        for k, (a, op_a, b, op_b) in enumerate(self.genotype.nodes):
            block = getattr(self, f"comb_iter_{k}")
            left = self._run_op(block.left, op_a, states[a])
            right = self._run_op(block.right, op_b, states[b])
            states.append(left + right if self.genotype.combine == "add"
                          else torch.cat([left, right], 1))
        out = [self.fit[str(i)](states[i]) if str(i) in self.fit else states[i]
               for i in self.genotype.concat]
        return torch.cat(out, 1)
