"""SSD (Liu et al. 2016) and SSDLite (Sandler et al. 2018, Sec. 6.2) on any registered
backbone.

The backbone runs as ``create_model(name, features_only=True)``; its last feature maps (the
strides 16 and 32 by default, where MobileNetV2's SSDLite attaches) and a few extra stride-2
layers each get a 3×3 predictor of, per default box, 4 offsets and C + 1 class scores (class
0 is the background). SSDLite replaces every regular convolution of the extra layers and the
predictors by a depthwise convolution followed by a 1×1 projection. The output is one tensor
N×boxes×(4 + C + 1); ``model.anchors`` holds the default boxes in the same order.

The paper's SSDLite reads MobileNetV2's expansion of layer 15 and its 1280-channel last
layer; here every backbone gives the maps its ``feature_info`` names (the blocks' outputs),
so at Table 6's setting (320 px, 90 classes, extras 512/256/256/128) SSDLite on MobileNetV2
has 3.15 M parameters and 0.64 B mult-adds against the paper's 4.3 M / 0.8 B, and on
MobileNet v1 5.39 M / 1.38 B against 5.1 M / 1.3 B.

Training (Sec. 2.2): each ground-truth box is matched to the default box it overlaps most and
to every default box with Jaccard overlap above 0.5; the loss is (L_conf + α L_loc)/N over the
N matched boxes (Eq. 1, α = 1), smooth L1 on the offsets of the matches, softmax
cross-entropy on the matches and on the hardest negatives, at most 3 per match.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
import torch.nn as nn
import torch.nn.functional as F

from cnnlab.detect.anchors import ASPECT_RATIOS, boxes_per_cell, default_boxes, ssd_scales
from cnnlab.detect.boxes import box_iou, corners, decode, encode, nms
from cnnlab.layers import ConvNormAct

SSD_PAPER = "SSD: Single Shot MultiBox Detector, Liu et al. 2016 (arXiv 1512.02325)"
SSDLITE_PAPER = ("MobileNetV2: Inverted Residuals and Linear Bottlenecks, Sandler et al. 2018, "
                 "Sec. 6.2 (arXiv 1801.04381)")


def _conv(cin, cout, k, stride, lite, act=True):
    """A k×k convolution, or (SSDLite) depthwise k×k + BN + ReLU6 then a 1×1 projection."""
    if not lite or k == 1:
        return ConvNormAct(cin, cout, k, stride, act=nn.ReLU6 if act else None, norm=act)
    return nn.Sequential(OrderedDict(
        dw=ConvNormAct(cin, cin, k, stride, groups=cin, act=nn.ReLU6),
        pw=ConvNormAct(cin, cout, 1, act=nn.ReLU6 if act else None, norm=act)))


def extra_layer(cin, cout, lite):
    """SSD's extra feature layer: 1×1 to half the width, then 3×3 stride 2."""
    return nn.Sequential(OrderedDict(reduce=_conv(cin, cout // 2, 1, 1, lite),
                                     conv=_conv(cout // 2, cout, 3, 2, lite)))


class SSD(nn.Module):
    """``backbone``: a :class:`~cnnlab.models.base.FeatureExtractor`; ``image_size``: the
    square input the default boxes are laid out for (SSD300's 300)."""

    def __init__(self, backbone: nn.Module, num_classes: int, image_size: int,
                 extras: tuple[int, ...] = (256, 128), lite: bool = False,
                 aspect_ratios=ASPECT_RATIOS, s_min: float = 0.2, s_max: float = 0.9):
        super().__init__()
        if num_classes < 1:
            raise ValueError(f"num_classes must be at least 1, got {num_classes!r}")
        self.backbone, self.num_classes, self.lite = backbone, num_classes, lite
        self.image_size = image_size
        widths = list(backbone.channels)
        self.extras = nn.ModuleList()
        for c in extras:
            self.extras.append(extra_layer(widths[-1], c, lite))
            widths.append(c)
        a = boxes_per_cell(aspect_ratios)
        self.loc = nn.ModuleList(_conv(c, a * 4, 3, 1, lite, act=False) for c in widths)
        self.conf = nn.ModuleList(_conv(c, a * (num_classes + 1), 3, 1, lite, act=False)
                                  for c in widths)
        self.eval()  # a shape probe: batch norm must not see it as a batch of one
        with torch.no_grad():
            probe = torch.zeros(1, backbone.model.pretrained_cfg["input_size"][0], image_size,
                                image_size)
            grids = [tuple(f.shape[-2:]) for f in self._maps(probe)]
        self.train()
        self.grids = grids
        self.register_buffer("anchors", default_boxes(
            grids, ssd_scales(len(grids), s_min, s_max), aspect_ratios), persistent=False)

    def _maps(self, x):
        maps = list(self.backbone(x))
        for layer in self.extras:
            maps.append(layer(maps[-1]))
        return maps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, out = len(x), []
        for f, loc, conf in zip(self._maps(x), self.loc, self.conf):
            box = loc(f).permute(0, 2, 3, 1).reshape(n, -1, 4)
            cls = conf(f).permute(0, 2, 3, 1).reshape(n, -1, self.num_classes + 1)
            out.append(torch.cat([box, cls], -1))
        return torch.cat(out, 1)


def build_ssd(backbone: str, num_classes: int, image_size: int, lite: bool = False,
              out_indices: tuple[int, ...] = (-2, -1), in_chans: int = 3, **kw) -> SSD:
    """SSD (``lite=False``) or SSDLite on the registered ``backbone`` (its keyword arguments
    such as ``width_mult`` go in ``kw`` as ``backbone_kw``)."""
    from cnnlab.models import create_model

    feats = create_model(backbone, features_only=True, out_indices=out_indices,
                         in_chans=in_chans, num_classes=0, **kw.pop("backbone_kw", {}))
    return SSD(feats, num_classes, image_size, lite=lite, **kw)


def match(gt_boxes: torch.Tensor, anchors: torch.Tensor, threshold: float = 0.5):
    """For one image: the index of the ground truth each default box is matched to, −1 for
    none (Sec. 2.2, "Matching strategy"). ``gt_boxes`` are corners, ``anchors`` (cx, cy, w, h)."""
    matched = torch.full((len(anchors),), -1, dtype=torch.long, device=anchors.device)
    if len(gt_boxes) == 0:
        return matched
    iou = box_iou(gt_boxes, corners(anchors))  # G×A
    best_gt_iou, best_gt = iou.max(0)
    matched[best_gt_iou > threshold] = best_gt[best_gt_iou > threshold]
    matched[iou.argmax(1)] = torch.arange(len(gt_boxes), device=anchors.device)
    return matched


class MultiBoxLoss(nn.Module):
    """Eq. 1 with hard negative mining. Targets: N×M×5 rows (x1, y1, x2, y2, class), class −1
    for padding rows."""

    def __init__(self, anchors: torch.Tensor, neg_pos_ratio: int = 3, alpha: float = 1.0,
                 threshold: float = 0.5):
        super().__init__()
        self.register_buffer("anchors", anchors, persistent=False)
        self.neg_pos_ratio, self.alpha, self.threshold = neg_pos_ratio, alpha, threshold

    def targets(self, y: torch.Tensor):
        """Per default box: its class (0 background, 1 + label) and its offsets; the whole
        batch at once (:func:`match` is the same rule for one image)."""
        n, m = y.shape[:2]
        valid = y[..., 4] >= 0
        iou = box_iou(y[..., :4].reshape(-1, 4), corners(self.anchors)).view(n, m, -1)
        iou = iou.masked_fill(~valid[..., None], -1.0)
        best_iou, best_gt = iou.max(1)  # per default box
        matched = torch.where(best_iou > self.threshold, best_gt, -1)
        # every ground truth claims the default box it overlaps most
        img, gt = valid.nonzero(as_tuple=True)
        matched[img, iou[img, gt].argmax(1)] = gt
        hit = matched >= 0
        rows = y.gather(1, matched.clamp_min(0)[..., None].expand(-1, -1, 5))
        labels = torch.where(hit, rows[..., 4].long() + 1, 0)
        offsets = torch.zeros(*labels.shape, 4, device=y.device)
        offsets[hit] = encode(rows[..., :4][hit], self.anchors.expand(n, -1, -1)[hit])
        return labels, offsets

    def forward(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        labels, offsets = self.targets(y)
        pos = labels > 0
        n_pos = pos.sum()
        ce = F.cross_entropy(out[..., 4:].flatten(0, 1), labels.flatten(),
                             reduction="none").view_as(labels)
        # hard negatives: the background boxes with the highest loss, 3 per match per image
        neg_ce = ce.detach().masked_fill(pos, -1.0)
        rank = neg_ce.argsort(1, descending=True).argsort(1)
        neg = rank < (self.neg_pos_ratio * pos.sum(1, keepdim=True))
        conf = ce[pos | neg].sum()
        loc = F.smooth_l1_loss(out[..., :4][pos], offsets[pos], reduction="sum")
        return (conf + self.alpha * loc) / n_pos.clamp_min(1)


@torch.no_grad()
def detect(out: torch.Tensor, anchors: torch.Tensor, score_threshold: float = 0.01,
           iou_threshold: float = 0.45, top_k: int = 200) -> list[torch.Tensor]:
    """Per image, rows (x1, y1, x2, y2, score, class): softmax scores, decoded boxes, NMS
    per class (Sec. 3, "0.45 overlap per class ... top 200 detections per image")."""
    results = []
    for o in out:
        boxes = decode(o[:, :4], anchors).clamp(0, 1)
        scores = o[:, 4:].softmax(-1)[:, 1:]
        rows = []
        for c in range(scores.shape[1]):
            s = scores[:, c]
            keep = s > score_threshold
            if keep.any():
                b, s = boxes[keep], s[keep]
                k = nms(b, s, iou_threshold)
                rows.append(torch.cat([b[k], s[k, None], torch.full_like(s[k, None], c)], 1))
        det = torch.cat(rows) if rows else out.new_zeros(0, 6)
        results.append(det[det[:, 4].argsort(descending=True)[:top_k]])
    return results
