"""Box arithmetic for detection: IoU, SSD's offset encoding, greedy non-maximum suppression.

Boxes are ``(x1, y1, x2, y2)`` corners; default boxes (anchors) are ``(cx, cy, w, h)``, all in
the image's 0-1 coordinates.
"""

from __future__ import annotations

import torch

# The authors' SSD code divides the offsets of Eq. 2 by these "variances" (centre, size);
# Eq. 2 itself is (1, 1).
VARIANCES = (0.1, 0.2)


def box_area(b: torch.Tensor) -> torch.Tensor:
    return (b[..., 2] - b[..., 0]).clamp_min(0) * (b[..., 3] - b[..., 1]).clamp_min(0)


def box_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Jaccard overlap |a ∩ b| / |a ∪ b| of every box in ``a`` (N×4) with every one in ``b``
    (M×4): N×M."""
    lt = torch.maximum(a[:, None, :2], b[None, :, :2])
    rb = torch.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = (rb - lt).clamp_min(0).prod(-1)
    union = box_area(a)[:, None] + box_area(b)[None, :] - inter
    return inter / union.clamp_min(1e-12)


def corners(cxcywh: torch.Tensor) -> torch.Tensor:
    c, s = cxcywh[..., :2], cxcywh[..., 2:]
    return torch.cat([c - s / 2, c + s / 2], -1)


def centres(xyxy: torch.Tensor) -> torch.Tensor:
    return torch.cat([(xyxy[..., :2] + xyxy[..., 2:]) / 2, xyxy[..., 2:] - xyxy[..., :2]], -1)


def encode(boxes: torch.Tensor, anchors: torch.Tensor, variances=VARIANCES) -> torch.Tensor:
    """SSD's regression targets (Liu et al. 2016, Eq. 2): the centre offset in units of the
    default box's size, the log of the size ratio."""
    g = centres(boxes)
    xy = (g[..., :2] - anchors[..., :2]) / (anchors[..., 2:] * variances[0])
    wh = torch.log(g[..., 2:] / anchors[..., 2:]) / variances[1]
    return torch.cat([xy, wh], -1)


def decode(offsets: torch.Tensor, anchors: torch.Tensor, variances=VARIANCES) -> torch.Tensor:
    """The inverse of :func:`encode`: predicted offsets → corner boxes."""
    xy = anchors[..., :2] + offsets[..., :2] * variances[0] * anchors[..., 2:]
    wh = anchors[..., 2:] * torch.exp(offsets[..., 2:] * variances[1])
    return corners(torch.cat([xy, wh], -1))


def nms(boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float = 0.45) -> torch.Tensor:
    """Greedy non-maximum suppression: the indices of the boxes kept, best score first; a box
    is dropped when it overlaps a better kept one by more than ``iou_threshold``."""
    order = scores.argsort(descending=True)
    iou = box_iou(boxes[order], boxes[order])
    alive = torch.ones(len(order), dtype=torch.bool)
    keep = []
    for i in range(len(order)):
        if alive[i]:
            keep.append(i)
            alive &= iou[i] <= iou_threshold
    return order[torch.tensor(keep, dtype=torch.long)]
