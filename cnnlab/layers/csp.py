"""Cross-stage partial stage (Wang et al. 2020, CSPNet, Sec. 3.1 and Fig. 2-3).

The stage's input is split in two along the channels: one part goes through the stage's
blocks, the other bypasses them and is concatenated back at the end, so the gradient of the
bypass never flows through the blocks twice. Transitions (1×1 conv + BN + act) close the
block path ("partial transition") and fuse the concatenation.

The authors' Darknet configurations (``csresnet50.cfg``, ``csresnext50.cfg``,
``csdarknet53.cfg``) produce the two parts with two 1×1 convolutions of the stage's input;
that is one 1×1 convolution whose output channels are split, which is how it is written here.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn as nn

from cnnlab.layers.conv import ConvNormAct


class CrossStagePartial(nn.Module):
    """``down`` (optional) → 1×1 conv split into ``part_chs`` (through ``blocks``, then the
    partial transition) and ``cross_chs`` (bypass) → concat → 1×1 fusion to ``out_chs``.

    ``blocks`` take ``part_chs`` channels and give ``block_chs``; ``split_act=False`` leaves
    the split convolution linear (the authors' middle stages of CSPResNe(X)t).
    """

    def __init__(self, blocks: Sequence[nn.Module], in_chs: int, part_chs: int, cross_chs: int,
                 block_chs: int, out_chs: int, down: nn.Module | None = None,
                 act: type[nn.Module] = nn.ReLU, split_act: bool = True):
        super().__init__()
        self.down = down
        self.split = ConvNormAct(in_chs, part_chs + cross_chs, 1, act=act if split_act else None)
        self.part_chs, self.cross_chs = part_chs, cross_chs
        self.blocks = nn.Sequential(*blocks)
        self.transition_b = ConvNormAct(block_chs, block_chs, 1, act=act)
        self.transition = ConvNormAct(block_chs + cross_chs, out_chs, 1, act=act)
        self.out_channels = out_chs

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.down is not None:
            x = self.down(x)
        part, cross = torch.split(self.split(x), [self.part_chs, self.cross_chs], 1)
        return self.transition(torch.cat([self.transition_b(self.blocks(part)), cross], 1))


class DarkBlock(nn.Module):
    """Darknet-53's residual block (Redmon & Farhadi 2018): 1×1 conv to ``mid_chs``, 3×3 conv
    back to ``chs``, added to the input with no activation after the sum."""

    def __init__(self, chs: int, mid_chs: int, act: type[nn.Module] = nn.ReLU):
        super().__init__()
        self.conv1 = ConvNormAct(chs, mid_chs, 1, act=act)
        self.conv2 = ConvNormAct(mid_chs, chs, 3, act=act)
        self.out_channels = chs

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(self.conv1(x))
