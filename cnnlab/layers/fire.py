"""SqueezeNet's Fire module (Iandola et al. 2016, Sec. 3.2, Fig. 1).

A squeeze layer of ``s1x1`` 1×1 filters feeds an expand layer that mixes ``e1x1`` 1×1 and
``e3x3`` 3×3 filters; the two expand outputs are concatenated. Strategy 2 of the paper keeps
``s1x1 < e1x1 + e3x3`` so the 3×3 filters see few input channels.
"""

from __future__ import annotations

import torch
import torch.nn as nn


class Fire(nn.Module):
    """squeeze1x1 → ReLU → [expand1x1, expand3x3] → ReLU → concat (``e1x1 + e3x3`` channels).

    ``bypass`` adds the input to the output (Sec. 6, Fig. 2): ``"simple"`` is the identity
    (needs equal channel counts), ``"complex"`` a 1×1 convolution to the output width. The
    paper does not say whether that convolution has a bias; it has none here, like ResNet's
    projection shortcuts.
    """

    def __init__(self, in_chs: int, s1x1: int, e1x1: int, e3x3: int,
                 bypass: str | None = None):
        super().__init__()
        for n, v in (("s1x1", s1x1), ("e1x1", e1x1), ("e3x3", e3x3)):
            if not isinstance(v, int) or v < 1:
                raise ValueError(f"Fire needs a positive integer {n}, got {v!r}")
        if bypass not in (None, "simple", "complex"):
            raise ValueError(f"Fire bypass must be None, 'simple' or 'complex', got {bypass!r}")
        out = e1x1 + e3x3
        if bypass == "simple" and in_chs != out:
            raise ValueError(f"a simple bypass needs equal channels, got {in_chs} -> {out}")
        self.in_channels, self.out_channels = in_chs, out
        self.squeeze1x1 = nn.Conv2d(in_chs, s1x1, 1)
        self.expand1x1 = nn.Conv2d(s1x1, e1x1, 1)
        self.expand3x3 = nn.Conv2d(s1x1, e3x3, 3, padding=1)  # 1-pixel zero border (Sec. 3.3)
        self.act = nn.ReLU(inplace=True)
        self.bypass_kind = bypass
        self.bypass = nn.Conv2d(in_chs, out, 1, bias=False) if bypass == "complex" else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.act(self.squeeze1x1(x))
        out = torch.cat([self.act(self.expand1x1(s)), self.act(self.expand3x3(s))], 1)
        if self.bypass_kind == "simple":
            out = out + x
        elif self.bypass_kind == "complex":
            out = out + self.bypass(x)
        return out
