"""DenseNet's dense block and transition layer (Huang et al. 2017, Sec. 3).

Each layer of a dense block reads the concatenation of every earlier feature map and adds
``growth_rate`` (k) new ones: H_ℓ = BN-ReLU-conv3×3, or with a bottleneck ("B")
BN-ReLU-conv1×1 (4k maps)-BN-ReLU-conv3×3. A transition is BN-ReLU-conv1×1 (θ × the input
maps, "C" compression) followed by 2×2 average pooling. ``drop_rate`` puts dropout after every
convolution (Sec. 4.2; the authors' code, ``dropRate``).

``memory_efficient=True`` (Pleiss et al. 2017, "Memory-Efficient Implementation of DenseNets")
recomputes the concatenation and the first BN-ReLU-conv of each layer in the backward pass
instead of storing them, so training memory grows linearly rather than quadratically with
depth; outputs and gradients are unchanged.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
import torch.nn as nn
import torch.nn.functional as F
import torch.utils.checkpoint as cp


class DenseLayer(nn.Module):
    def __init__(self, in_chs: int, growth_rate: int, bottleneck: bool = True,
                 bn_size: int = 4, drop_rate: float = 0.0, memory_efficient: bool = False):
        super().__init__()
        mid = bn_size * growth_rate if bottleneck else growth_rate
        self.norm1 = nn.BatchNorm2d(in_chs)
        self.act1 = nn.ReLU(inplace=True)
        self.conv1 = nn.Conv2d(in_chs, mid, 1 if bottleneck else 3, 1, 0 if bottleneck else 1,
                               bias=False)
        if bottleneck:
            self.norm2 = nn.BatchNorm2d(mid)
            self.act2 = nn.ReLU(inplace=True)
            self.conv2 = nn.Conv2d(mid, growth_rate, 3, 1, 1, bias=False)
        self.bottleneck = bottleneck
        self.drop = nn.Dropout(drop_rate) if drop_rate > 0 else nn.Identity()
        self.memory_efficient = memory_efficient
        self._recomputing = False

    def _first(self, *features: torch.Tensor) -> torch.Tensor:
        x = torch.cat(features, 1)
        n = self.norm1
        if self._recomputing and n.training:
            # the backward pass's rerun: same batch statistics, running averages untouched
            x = F.batch_norm(x, n.running_mean, n.running_var, n.weight, n.bias, True, 0.0,
                             n.eps)
        else:
            x = n(x)
        return self.conv1(self.act1(x))

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        if self.memory_efficient and torch.is_grad_enabled() and any(
                f.requires_grad for f in features):
            self._recomputing = False
            out = cp.checkpoint(self._first, *features, use_reentrant=False)
            self._recomputing = True  # any later call of _first is the recomputation
        else:
            self._recomputing = False
            out = self._first(*features)
        out = self.drop(out)
        if self.bottleneck:
            out = self.drop(self.conv2(self.act2(self.norm2(out))))
        return out


class DenseBlock(nn.Module):
    """``num_layers`` dense layers; outputs the input and all new maps, concatenated."""

    def __init__(self, num_layers: int, in_chs: int, growth_rate: int, bottleneck: bool = True,
                 bn_size: int = 4, drop_rate: float = 0.0, memory_efficient: bool = False):
        super().__init__()
        self.layers = nn.ModuleList(
            DenseLayer(in_chs + i * growth_rate, growth_rate, bottleneck, bn_size, drop_rate,
                       memory_efficient) for i in range(num_layers))
        self.out_channels = in_chs + num_layers * growth_rate

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = [x]
        for layer in self.layers:
            features.append(layer(features))
        return torch.cat(features, 1)


class Transition(nn.Sequential):
    """BN-ReLU-conv1×1 to ``out_chs`` maps, then 2×2 average pooling, stride 2."""

    def __init__(self, in_chs: int, out_chs: int, drop_rate: float = 0.0):
        layers = [("norm", nn.BatchNorm2d(in_chs)), ("act", nn.ReLU(inplace=True)),
                  ("conv", nn.Conv2d(in_chs, out_chs, 1, bias=False))]
        if drop_rate > 0:
            layers.append(("drop", nn.Dropout(drop_rate)))
        layers.append(("pool", nn.AvgPool2d(2, 2)))
        super().__init__(OrderedDict(layers))
        self.out_channels = out_chs
