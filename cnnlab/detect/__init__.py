"""Object detection for the decks' application tables: SSD and SSDLite heads on any
registered backbone, default boxes, matching, the multibox loss, NMS and mAP@0.5, and
MNIST canvases with boxes to train them on (``--data mnist-canvas-boxes:DIR``)."""

from cnnlab.detect.anchors import default_boxes, ssd_scales
from cnnlab.detect.boxes import box_iou, decode, encode, nms
from cnnlab.detect.metrics import average_precision, mean_average_precision
from cnnlab.detect.ssd import SSD, MultiBoxLoss, build_ssd, detect, match

__all__ = ["SSD", "MultiBoxLoss", "average_precision", "box_iou", "build_ssd", "decode",
           "default_boxes", "detect", "encode", "match", "mean_average_precision",
           "nms", "ssd_scales"]
