"""ENAS's weight-shared supernets (Sec. 2.1: "the local computations at each node have their
own parameters, which are used only when the particular computation is activated").

Each supernet holds every operation of its space once and runs the child model a decoded
config names (``forward(x, arch)``); a child's gradient reaches only the parameters it used.
As in the released search code (``general_child.py``/``micro_child.py`` without a fixed arc)
a macro layer *adds* its skip inputs and normalises (the retrained network concatenates and
projects them), a micro cell projects each loose end with its own 1×1 convolution and adds
the projections (= a 1×1 convolution over their concatenation with the unused input
channels' weights dropped), and batch norm uses the batch's statistics while searching.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from cnnlab.layers.conv import ConvNormAct
from cnnlab.layers.nas_ops import OPS, FactorizedReduce, ReLUConvBN
from cnnlab.models.base import ClassifierHead
from cnnlab.models.enas import MACRO_OPS, MICRO_OPS, MacroOp, macro_pool_layers, micro_pool_layers
from cnnlab.search.spaces import MacroSpace, MicroSpace


class MacroSupernet(nn.Module):
    """Every layer holds all six :class:`~cnnlab.models.enas.MacroOp`; channels stay
    ``filters`` throughout (the released search does not double them)."""

    def __init__(self, space: MacroSpace, num_classes: int = 10, in_chans: int = 3):
        super().__init__()
        self.space = space
        c, n = space.filters, space.num_layers
        self.pools = macro_pool_layers(n)
        self.stem = ConvNormAct(in_chans, c, 3, act=None)
        self.layers = nn.ModuleList()
        for _ in range(n):
            layer = nn.Module()
            layer.ops = nn.ModuleDict({op: MacroOp(op, c, c) for op in MACRO_OPS})
            layer.bn = nn.BatchNorm2d(c)
            self.layers.append(layer)
        # layer i's output reduced at each pool after it: "p_i"
        self.reduce = nn.ModuleDict({f"{p}_{j}": FactorizedReduce(c, c)
                                     for p, at in enumerate(self.pools)
                                     for j in range(at + 1)})
        self.head = ClassifierHead(c, num_classes)

    def forward(self, x, arch: dict):
        x = self.stem(x)
        outs = []
        for i, layer in enumerate(self.layers):
            out = layer.ops[arch["ops"][i]](x)
            if i:
                skips = [outs[j] for j, b in enumerate(arch["skips"][i]) if b]
                out = layer.bn(torch.stack([out, *skips]).sum(0)) if skips else layer.bn(out)
            outs.append(out)
            x = out
            if i in self.pools:
                p = self.pools.index(i)
                outs = [self.reduce[f"{p}_{j}"](o) for j, o in enumerate(outs)]
                x = outs[-1]
        return self.head(x)


class SharedCell(nn.Module):
    """A micro cell holding, for every block k, input state j and operation, one module
    (``edges["k_j_op"]``, shared by the block's two inputs), and a 1×1 projection per state
    for the loose ends."""

    def __init__(self, num_blocks: int, c_prev: int, c: int, channels: int, reduction: bool,
                 reduce_prev: bool):
        super().__init__()
        self.reduction = reduction
        self.prev = (FactorizedReduce(c_prev, channels, 2, act=True) if reduce_prev else
                     ReLUConvBN(c_prev, channels, [1]) if c_prev != channels else nn.Identity())
        self.conv_1x1 = ReLUConvBN(c, channels, [1])
        self.edges = nn.ModuleDict()
        for k in range(num_blocks):
            for j in range(k + 2):
                s = 2 if reduction and j < 2 else 1
                for op in MICRO_OPS:
                    self.edges[f"{k}_{j}_{op}"] = OPS[op](channels, channels, s)
        self.proj = nn.ModuleList(
            FactorizedReduce(channels, channels, 2, act=True) if reduction and j < 2 else
            ReLUConvBN(channels, channels, [1]) for j in range(num_blocks + 2))

    def forward(self, h_prev, h, blocks):
        states = [self.prev(h_prev), self.conv_1x1(h)]
        used = set()
        for k, (a, op_a, b, op_b) in enumerate(blocks):
            used |= {a, b}
            states.append(self.edges[f"{k}_{a}_{op_a}"](states[a]) +
                          self.edges[f"{k}_{b}_{op_b}"](states[b]))
        loose = [j for j in range(len(states)) if j not in used]
        return torch.stack([self.proj[j](states[j]) for j in loose]).sum(0)


class MicroSupernet(nn.Module):
    """The micro search network: stem with 3F channels, ``num_layers`` normal cells and two
    reduction cells (F doubling at each), every cell a :class:`SharedCell`; cells of a type
    run the same sampled genotype with their own weights."""

    def __init__(self, space: MicroSpace, num_classes: int = 10, in_chans: int = 3):
        super().__init__()
        self.space = space
        f = space.filters
        self.stem = ConvNormAct(in_chans, 3 * f, 3, act=None)
        self.cells = nn.ModuleList()
        self.is_reduction = []
        chans, sizes = [3 * f, 3 * f], [1, 1]
        for i in range(space.num_layers + 2):
            red = i in micro_pool_layers(space.num_layers)
            f = f * 2 if red else f
            self.cells.append(SharedCell(space.num_blocks, chans[-2], chans[-1], f, red,
                                         sizes[-2] != sizes[-1]))
            self.is_reduction.append(red)
            chans.append(f)
            sizes.append(sizes[-1] * (2 if red else 1))
        self.act = nn.ReLU()
        self.head = ClassifierHead(f, num_classes)

    def forward(self, x, arch: dict):
        normal = [tuple(n) for n in arch["normal"]["nodes"]]
        reduction = [tuple(n) for n in arch["reduction"]["nodes"]]
        prev = cur = self.stem(x)
        for cell, red in zip(self.cells, self.is_reduction):
            prev, cur = cur, cell(prev, cur, reduction if red else normal)
        return self.head(self.act(cur))


def make_supernet(space, num_classes: int = 10, in_chans: int = 3) -> nn.Module:
    cls = MacroSupernet if space.kind == "macro" else MicroSupernet
    return cls(space, num_classes, in_chans)
