"""Mean average precision at IoU 0.5 (PASCAL VOC's detection measure, all-point
interpolation as from VOC 2010).

Per class, the detections of all images are ranked by score; a detection is a true positive
when the ground-truth box of its class in its image that it overlaps most does so by IoU ≥ 0.5
and no better-ranked detection has claimed that box; otherwise (a miss or a duplicate) it is
a false positive, as in the VOC development kit. AP is the area under
the precision-recall curve after precision is made non-increasing in recall; mAP is its mean
over the classes that have ground truth.
"""

from __future__ import annotations

import torch

from cnnlab.detect.boxes import box_iou


def average_precision(tp: torch.Tensor, n_gt: int) -> float:
    """AP of a ranked list of hits (``tp``, best score first) against ``n_gt`` boxes."""
    if n_gt == 0:
        raise ValueError("average precision needs at least one ground-truth box")
    tp = tp.double()
    hits = tp.cumsum(0)
    recall = torch.cat([torch.zeros(1, dtype=torch.float64), hits / n_gt])
    precision = torch.cat([torch.ones(1, dtype=torch.float64),
                           hits / torch.arange(1, len(tp) + 1, dtype=torch.float64)])
    precision = precision.flip(0).cummax(0).values.flip(0)  # the envelope
    return float(((recall[1:] - recall[:-1]) * precision[1:]).sum())


def mean_average_precision(detections: list[torch.Tensor], truths: list[torch.Tensor],
                           iou_threshold: float = 0.5) -> dict:
    """``detections``: per image, rows (x1, y1, x2, y2, score, class); ``truths``: per image,
    rows (x1, y1, x2, y2, class) (class < 0: padding). Returns ``{"map", "ap": {class: AP}}``."""
    if len(detections) != len(truths):
        raise ValueError(f"{len(detections)} images of detections but {len(truths)} of truths")
    truths = [t[t[:, 4] >= 0] for t in truths]
    classes = sorted({int(c) for t in truths for c in t[:, 4].tolist()})
    ap = {}
    for c in classes:
        found = [(float(d[4]), i, d[:4]) for i, det in enumerate(detections)
                 for d in det if int(d[5]) == c]
        found.sort(key=lambda r: -r[0])
        gts = [t[t[:, 4] == c, :4] for t in truths]
        claimed = [torch.zeros(len(g), dtype=torch.bool) for g in gts]
        tp = torch.zeros(len(found))
        for j, (_, i, box) in enumerate(found):
            if len(gts[i]) == 0:
                continue
            iou = box_iou(box[None], gts[i])[0]
            best = int(iou.argmax())
            if iou[best] >= iou_threshold and not claimed[i][best]:
                tp[j] = 1
                claimed[i][best] = True
        ap[c] = average_precision(tp, sum(len(g) for g in gts))
    return {"map": sum(ap.values()) / len(ap) if ap else 0.0, "ap": ap}
