"""Detection pieces against hand computations: IoU, SSD's encoding, default boxes, matching,
the multibox loss with hard negatives, NMS, mAP@0.5, canvas boxes and the SSD/SSDLite heads."""

import math

import pytest
import torch
import torch.nn as nn

from cnnlab.data.canvas import canvas_boxes
from cnnlab.detect import (
    MultiBoxLoss,
    box_iou,
    build_ssd,
    decode,
    default_boxes,
    detect,
    encode,
    match,
    mean_average_precision,
    nms,
    ssd_scales,
)
from cnnlab.detect.anchors import boxes_per_cell


def test_iou_by_hand():
    a = torch.tensor([[0.0, 0, 2, 2]])
    b = torch.tensor([[1.0, 1, 3, 3], [0, 0, 2, 2], [5, 5, 6, 6]])
    assert torch.allclose(box_iou(a, b), torch.tensor([[1 / 7, 1.0, 0.0]]))


def test_encode_by_hand_and_decode_inverts_it():
    anchor = torch.tensor([[0.5, 0.5, 0.2, 0.2]])
    box = torch.tensor([[0.45, 0.4, 0.65, 0.8]])  # centre (0.55, 0.6), size (0.2, 0.4)
    off = encode(box, anchor)
    assert torch.allclose(off, torch.tensor([[2.5, 5.0, 0.0, math.log(2) / 0.2]]), atol=1e-5)
    assert torch.allclose(decode(off, anchor), box, atol=1e-6)


def test_ssd300_scales_and_default_boxes_by_hand():
    assert ssd_scales(6) == pytest.approx([0.2, 0.34, 0.48, 0.62, 0.76, 0.9])
    assert boxes_per_cell() == 6 and boxes_per_cell((1.0, 2.0, 0.5)) == 4
    boxes = default_boxes([(2, 2), (1, 1)], ssd_scales(2), aspect_ratios=(1.0, 2.0))
    assert boxes.shape == (2 * 2 * 3 + 3, 4)
    r2 = math.sqrt(2)
    first_cell = [[0.25, 0.25, 0.2, 0.2], [0.25, 0.25, math.sqrt(0.18), math.sqrt(0.18)],
                  [0.25, 0.25, 0.2 * r2, 0.2 / r2]]
    assert torch.allclose(boxes[:3], torch.tensor(first_cell))
    assert torch.allclose(boxes[3:6, :2], torch.tensor([[0.75, 0.25]] * 3))  # row-major
    last = [[0.5, 0.5, 0.9, 0.9], [0.5, 0.5, math.sqrt(0.9), math.sqrt(0.9)],
            [0.5, 0.5, 0.9 * r2, 0.9 / r2]]  # the scale after the last map is 1
    assert torch.allclose(boxes[-3:], torch.tensor(last))


def test_matching_strategy():
    anchors = torch.tensor([[0.25, 0.25, 0.5, 0.5], [0.3, 0.3, 0.5, 0.5],
                            [0.4, 0.4, 0.5, 0.5], [0.8, 0.8, 0.1, 0.1]])
    # ground truth 0: IoU 1, 0.68 (> 0.5: matched too) and 0.32 with anchors 0-2;
    # ground truth 1: IoU 0.25 with anchor 3, its best, so matched though below 0.5
    gt = torch.tensor([[0.0, 0.0, 0.5, 0.5], [0.78, 0.78, 0.9, 0.9]])
    assert torch.allclose(box_iou(gt[:1], torch.tensor([[0.05, 0.05, 0.55, 0.55]])),
                          torch.tensor(0.2025 / 0.2975))
    m = match(gt, anchors)
    assert m.tolist() == [0, 0, -1, 1]
    assert match(gt[:0], anchors).tolist() == [-1] * 4


def test_multibox_loss_mines_three_negatives_per_match():
    anchors = default_boxes([(4, 4)], [0.25], aspect_ratios=(1.0,))  # 16 × 2 boxes
    y = torch.full((2, 3, 5), -1.0)
    y[0, 0] = torch.tensor([0.0, 0.0, 0.25, 0.25, 1])  # one ground truth on image 0
    loss = MultiBoxLoss(anchors)
    labels, offsets = loss.targets(y)
    assert labels[0].tolist().count(2) == 1 and labels[1].eq(0).all()
    out = torch.zeros(2, len(anchors), 4 + 3)  # uniform scores: every box costs log 3
    loc = nn.functional.smooth_l1_loss(torch.zeros(4), offsets[0][labels[0] > 0][0],
                                       reduction="sum")
    # the match and its 3 hardest negatives on image 0; image 1 has no match, so no negatives
    assert float(loss(out, y)) == pytest.approx(4 * math.log(3) + float(loc), rel=1e-5)
    assert float(loss(out, torch.full((2, 3, 5), -1.0))) == 0.0


def test_nms_by_hand():
    boxes = torch.tensor([[0.0, 0, 10, 10], [1, 1, 11, 11], [20, 20, 30, 30], [0, 0, 10, 10]])
    scores = torch.tensor([0.9, 0.8, 0.7, 0.95])
    assert nms(boxes, scores, 0.5).tolist() == [3, 2]        # 0 is a copy of 3, 1 overlaps 0.68
    assert nms(boxes, scores, 0.7).tolist() == [3, 1, 2]


def test_map_by_hand():
    gt = [torch.tensor([[0.0, 0, 10, 10, 0], [20, 20, 30, 30, 0]]),
          torch.tensor([[0.0, 0, 10, 10, 0], [50, 50, 60, 60, 1]])]
    det = [torch.tensor([[0.0, 0, 10, 10, 0.9, 0],      # TP
                         [0.0, 0, 10, 10, 0.85, 0],     # duplicate: FP
                         [50, 50, 60, 60, 0.4, 1]]),    # class 1 in the wrong image: FP
           torch.tensor([[1.0, 1, 11, 11, 0.8, 0],      # IoU 0.68: TP
                         [50, 50, 60, 60, 0.3, 1]])]    # TP
    # class 0: ranks TP FP TP over 3 boxes -> P/R (1, 1/3) (1/2, 1/3) (2/3, 2/3):
    # AP = 1/3 · 1 + 1/3 · 2/3 = 5/9; class 1: FP then TP -> AP = 1 · 1/2
    r = mean_average_precision(det, gt)
    assert r["ap"][0] == pytest.approx(5 / 9) and r["ap"][1] == pytest.approx(0.5)
    assert r["map"] == pytest.approx((5 / 9 + 0.5) / 2)
    assert mean_average_precision([d[:0] for d in det], gt)["map"] == 0.0


def test_detect_decodes_and_suppresses_per_class():
    anchors = default_boxes([(2, 2)], [0.5], aspect_ratios=(1.0,))  # 8 boxes
    out = torch.full((1, len(anchors), 4 + 3), 0.0)
    out[0, :, 4] = 10.0                   # background everywhere ...
    out[0, 0, 4:] = torch.tensor([0.0, 10.0, 0.0])   # ... but class 0 at box 0
    out[0, 1, 4:] = torch.tensor([0.0, 9.0, 0.0])    # and at box 1 (same cell, larger)
    rows = detect(out, anchors, score_threshold=0.5)[0]
    assert rows.shape == (1, 6)  # box 1 (clamped) overlaps box 0 by 0.69 > 0.45: suppressed
    assert torch.allclose(rows[0, :4], torch.tensor([0.0, 0, 0.5, 0.5])) and rows[0, 5] == 0


def test_canvas_boxes_enclose_the_strokes():
    masks = torch.zeros(1, 8, 8, dtype=torch.long)
    masks[0, 2:5, 1:3] = 4  # digit 3
    masks[0, 6, 7] = 10     # digit 9
    rows = canvas_boxes(masks)[0]
    assert rows[3].tolist() == [1 / 8, 2 / 8, 3 / 8, 5 / 8, 3.0]
    assert rows[9].tolist() == [7 / 8, 6 / 8, 1.0, 7 / 8, 9.0]
    assert (rows[[0, 1, 2, 4, 5, 6, 7, 8], 4] == -1).all()


@pytest.mark.parametrize("backbone,lite,width", [("mobilenet_v1", False, 0.25),
                                                 ("mobilenet_v2", True, 0.35)])
def test_ssd_and_ssdlite_heads(backbone, lite, width):
    torch.manual_seed(0)
    m = build_ssd(backbone, 10, 64, lite=lite, in_chans=1, out_indices=(2, 3, 4),
                  extras=(64,), backbone_kw={"width_mult": width})
    assert m.grids == [(8, 8), (4, 4), (2, 2), (1, 1)]
    assert len(m.anchors) == 6 * (64 + 16 + 4 + 1)
    y = m(torch.randn(2, 1, 64, 64))
    assert y.shape == (2, len(m.anchors), 4 + 11)
    convs = [c for c in m.conf.modules() if isinstance(c, nn.Conv2d)]
    depthwise = [c for c in convs if c.groups > 1 and c.groups == c.in_channels]
    assert bool(depthwise) == lite  # SSDLite: depthwise 3×3 then a 1×1 projection
    assert all(c.kernel_size == (1, 1) for c in convs if c.groups == 1) == lite
    assert m.backbone.model.num_classes == 0  # the classifier is dropped
