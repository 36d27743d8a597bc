"""SSD's default boxes (Liu et al. 2016, Sec. 2.2, "Choosing scales and aspect ratios").

Feature map k of m has boxes of scale s_k = s_min + (s_max − s_min)(k − 1)/(m − 1) (s_min 0.2,
s_max 0.9), one per aspect ratio a_r (width s_k√a_r, height s_k/√a_r) and, for a_r = 1, one
more of scale s'_k = √(s_k s_{k+1}); centres ((i + 0.5)/|f_k|, (j + 0.5)/|f_k|).
"""

from __future__ import annotations

import math

import torch

ASPECT_RATIOS = (1.0, 2.0, 3.0, 1 / 2, 1 / 3)  # Sec. 2.2
S_MIN, S_MAX = 0.2, 0.9


def ssd_scales(m: int, s_min: float = S_MIN, s_max: float = S_MAX) -> list[float]:
    """s_1 … s_m, evenly spaced (Eq. 4); one map alone gets s_min."""
    if m == 1:
        return [s_min]
    return [s_min + (s_max - s_min) * k / (m - 1) for k in range(m)]


def boxes_per_cell(aspect_ratios=ASPECT_RATIOS) -> int:
    return len(aspect_ratios) + (1 if 1.0 in aspect_ratios else 0)


def default_boxes(grids: list[tuple[int, int]], scales: list[float],
                  aspect_ratios=ASPECT_RATIOS) -> torch.Tensor:
    """(cx, cy, w, h) of every default box, map by map, row-major cell by cell, the cell's
    boxes in ``aspect_ratios`` order with the extra a_r = 1 box after the first. The scale
    after the last map is 1 (the authors' code), for its extra box."""
    if len(grids) != len(scales):
        raise ValueError(f"{len(grids)} feature maps but {len(scales)} scales")
    out = []
    for k, ((h, w), s) in enumerate(zip(grids, scales)):
        s_next = scales[k + 1] if k + 1 < len(scales) else 1.0
        sizes = []
        for a in aspect_ratios:
            sizes.append((s * math.sqrt(a), s / math.sqrt(a)))
            if a == 1.0:
                sizes.append((math.sqrt(s * s_next),) * 2)
        ys, xs = torch.meshgrid((torch.arange(h) + 0.5) / h, (torch.arange(w) + 0.5) / w,
                                indexing="ij")
        cells = torch.stack([xs, ys], -1).reshape(-1, 1, 2).expand(-1, len(sizes), 2)
        wh = torch.tensor(sizes).expand(len(cells), -1, -1)
        out.append(torch.cat([cells, wh], -1).reshape(-1, 4))
    return torch.cat(out).float()
