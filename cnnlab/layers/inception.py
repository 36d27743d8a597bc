"""Inception branches: parallel towers whose outputs are concatenated (Szegedy et al. 2014).

A module is written as its paper figure reads: a dict of named branches, each a list of
:func:`conv` / :func:`pool` steps, e.g. GoogLeNet's (3a) or Inception v3's Fig. 5 module::

    {"branch1x1": [conv(64, 1)],
     "branch5x5": [conv(48, 1), conv(64, 5)],
     "branch3x3dbl": [conv(64, 1), conv(96, 3), conv(96, 3)],
     "branch_pool": [pool("avg"), conv(32, 1)]}

A dict inside a branch splits it again (Inception v3's Fig. 7 "expanded filter bank" outputs).
:class:`InceptionResidual` is the Inception-ResNet block: branches, a linear 1×1 that restores
the width, a scaled residual add (Szegedy et al. 2016, Sec. 3.3).
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

import torch
import torch.nn as nn

from cnnlab.layers.conv import ConvNormAct


@dataclass(frozen=True)
class Conv:
    out: int
    kernel: int | tuple[int, int]
    stride: int = 1
    padding: int | tuple[int, int] | None = None  # None: "same" at stride 1, none at stride 2


@dataclass(frozen=True)
class Pool:
    kind: str  # "max" or "avg"
    kernel: int = 3
    stride: int = 1
    padding: int | None = None  # None: "same" at stride 1, none at stride 2


def conv(out: int, kernel: int | tuple[int, int], s: int = 1,
         p: int | tuple[int, int] | None = None) -> Conv:
    return Conv(out, kernel, s, p)


def pool(kind: str, kernel: int = 3, s: int = 1, p: int | None = None) -> Pool:
    if kind not in ("max", "avg"):
        raise ValueError(f"unknown pool {kind!r}")
    return Pool(kind, kernel, s, p)


class BasicConv(ConvNormAct):
    """Convolution → BN → ReLU, the unit of every BN-era Inception network. ``norm=False``
    gives GoogLeNet's convolution with bias; ``eps`` is TF's 1e-3 in the released v3/v4."""

    def __init__(self, in_chs: int, out_chs: int, kernel_size: int | tuple = 1, stride: int = 1,
                 padding: int | tuple | None = None, norm: bool = True, eps: float = 1e-3):
        if padding is None:
            ks = kernel_size if isinstance(kernel_size, tuple) else (kernel_size,) * 2
            padding = tuple(k // 2 for k in ks) if stride == 1 else 0
        super().__init__(in_chs, out_chs, kernel_size, stride, padding, norm=norm)
        if norm:
            self.bn.eps = eps


def _pool_layer(p: Pool) -> nn.Module:
    padding = p.padding if p.padding is not None else (p.kernel // 2 if p.stride == 1 else 0)
    if p.kind == "max":
        return nn.MaxPool2d(p.kernel, p.stride, padding)
    # TF "SAME" average pooling divides by the number of real pixels under the window
    return nn.AvgPool2d(p.kernel, p.stride, padding, count_include_pad=False)


def make_branch(in_chs: int, steps, conv_layer=BasicConv) -> tuple[nn.Module, int]:
    """A list of :func:`conv` / :func:`pool` steps (or a dict: a split) as one module, and its
    output width."""
    layers, c = OrderedDict(), in_chs
    for i, step in enumerate(steps):
        if isinstance(step, Conv):
            layers[f"conv{i}" if len(steps) > 1 else "conv"] = conv_layer(
                c, step.out, step.kernel, step.stride, step.padding)
            c = step.out
        elif isinstance(step, Pool):
            layers["pool"] = _pool_layer(step)
        elif isinstance(step, dict):
            split = Branches(c, step, conv_layer)
            layers["split"] = split
            c = split.out_channels
        else:
            raise TypeError(f"not a branch step: {step!r}")
    if len(layers) == 1:
        return next(iter(layers.values())), c
    return nn.Sequential(layers), c


class Branches(nn.Module):
    """Runs every named branch on the same input and concatenates along channels.

    ``spec`` maps branch names to lists of steps (see the module docstring); a branch given as
    ``[pool("max", s=2)]`` alone is Inception's pass-through pooling.
    """

    def __init__(self, in_chs: int, spec: dict, conv_layer=BasicConv):
        super().__init__()
        self.out_channels = 0
        for name, steps in spec.items():
            branch, c = make_branch(in_chs, steps, conv_layer)
            self.add_module(name, branch)
            self.out_channels += c

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([branch(x) for branch in self.children()], 1)


def googlenet_module(c1x1: int, c3x3_reduce: int, c3x3: int, c5x5_reduce: int, c5x5: int,
                     pool_proj: int | str, double_3x3: bool = False, pool_kind: str = "max",
                     stride: int = 1) -> dict:
    """One row of GoogLeNet's Table 1 (or BN-Inception's Fig. 5) as a branch spec.

    ``double_3x3`` replaces the 5×5 by two 3×3 (BN-Inception); a row with ``c1x1 = 0`` and
    ``stride = 2`` is a grid-reduction module whose pooling branch passes through
    (``pool_proj = "pass"``).
    """
    # stride-2 convolutions keep padding 1, so 28 -> 14 and 14 -> 7 as the tables print
    sp = 1 if stride == 2 else None
    spec = {}
    if c1x1:
        spec["branch1x1"] = [conv(c1x1, 1)]
    spec["branch3x3"] = [conv(c3x3_reduce, 1), conv(c3x3, 3, stride, sp)]
    if double_3x3:
        spec["branch3x3dbl"] = [conv(c5x5_reduce, 1), conv(c5x5, 3), conv(c5x5, 3, stride, sp)]
    else:
        spec["branch5x5"] = [conv(c5x5_reduce, 1), conv(c5x5, 5, stride)]
    if pool_proj == "pass":
        spec["branch_pool"] = [pool(pool_kind, 3, stride, 1)]
    else:
        spec["branch_pool"] = [pool(pool_kind, 3, stride), conv(pool_proj, 1)]
    return spec


class InceptionResidual(nn.Module):
    """Inception-ResNet block: ``relu(x + scale · up(concat(branches(x))))``.

    ``up`` is a 1×1 convolution without activation ("linear") that restores the input width;
    ``scale`` (0.1–0.3) stabilises very wide residual Inception networks (Sec. 3.3).
    ``activate=False`` leaves out the final ReLU (the released network's last block).
    """

    def __init__(self, in_chs: int, spec: dict, scale: float, activate: bool = True,
                 conv_layer=BasicConv):
        super().__init__()
        self.branches = Branches(in_chs, spec, conv_layer)
        self.up = nn.Conv2d(self.branches.out_channels, in_chs, 1)  # bias, no BN
        self.scale = scale
        self.act = nn.ReLU(inplace=True) if activate else nn.Identity()
        self.out_channels = in_chs

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(x + self.scale * self.up(self.branches(x)))
