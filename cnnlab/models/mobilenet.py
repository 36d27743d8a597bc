"""MobileNet v1 (Howard et al. 2017), Table 1.

Every full convolution but the first is factorised into a depthwise 3×3 and a pointwise 1×1
convolution (Sec. 3.1), each followed by BN and ReLU. The width multiplier α thins every layer
(Sec. 3.2); the resolution multiplier ρ is simply the input size.

Releases (:mod:`cnnlab.layers.release`): ``"tf"`` is the TF-slim ``mobilenet_v1`` the
authors released: ReLU6 where the paper says ReLU, BatchNorm eps 1e-3 (decay 0.9997) and TF
"SAME" padding (asymmetric on even inputs to the stride-2 convolutions); same parameters.
``"timm"`` is timm's ``mobilenetv1_100``/``_125`` (its own training, not the TF-slim
weights): ReLU6 only, with PyTorch's symmetric padding and BN eps 1e-5.
"""

from __future__ import annotations

from collections import OrderedDict

import torch.nn as nn

from cnnlab.layers import ConvNormAct, DepthwiseSeparable
from cnnlab.layers.release import Release
from cnnlab.models.base import ClassifierHead, ConvNet, check_arg
from cnnlab.registry import Paper, register_model

MOBILENET_V1 = Paper("MobileNets: Efficient Convolutional Neural Networks for Mobile Vision "
                     "Applications", "Howard, Zhu, Chen, Kalenichenko, Wang, Weyand, Andreetto, "
                     "Adam", 2017, "1704.04861")

RELEASES = {"tf": Release("tf", "TF-slim: ReLU6, BN eps 1e-3, TF SAME padding", bn_eps=1e-3,
                          bn_momentum=0.0003, same="all", act=nn.ReLU6,
                          models=("mobilenet_v1",)),
            "timm": Release("timm", "timm's mobilenetv1_*: ReLU6 (PyTorch padding, BN eps 1e-5)",
                            act=nn.ReLU6, models=("mobilenet_v1",))}
STEM = 32  # Conv / s2, 3×3×3×32
# Table 1: (depthwise stride, pointwise out channels)
BODY = [
    (1, 64),
    (2, 128), (1, 128),
    (2, 256), (1, 256),
    (2, 512), *[(1, 512)] * 5,  # "5× Conv dw / s1": removed by the shallow variant
    (2, 1024),
    (1, 1024),  # printed "Conv dw / s2" on a 7×7 input: stride 1 (569 M needs it)
]
SHALLOW = BODY[:6] + BODY[11:]


class MobileNetV1(ConvNet):
    def __init__(self, body=BODY, width_mult=1.0, num_classes=1000, in_chans=3, drop_rate=0.0,
                 separable=True):
        super().__init__()
        check_arg(isinstance(width_mult, (int, float)) and width_mult > 0,
                  f"width_mult must be a positive number, got {width_mult!r}")
        self.num_classes = num_classes

        def width(c):
            return max(int(c * width_mult), 8)

        c = width(STEM)
        layers = OrderedDict(stem=ConvNormAct(in_chans, c, 3, 2))
        self.feature_info = [dict(module="features.stem", reduction=2, channels=c)]
        reduction = 2
        for i, (s, out) in enumerate(body, 1):
            out = width(out)
            if separable:
                layers[f"block{i}"] = DepthwiseSeparable(c, out, s)
            else:  # "Conv MobileNet" of Table 4: one full 3×3 convolution per pair
                layers[f"block{i}"] = ConvNormAct(c, out, 3, s)
            reduction *= s
            c = out
            self.add_feature(f"features.block{i}", reduction, c)
        self.features = nn.Sequential(layers)
        self.head = ClassifierHead(c, num_classes, drop_rate=drop_rate)

    def forward_features(self, x):
        return self.features(x)


_NOTE_T2 = ("Table 2's parameter shares (74.59 / 24.33 %) leave out the classifier's bias, and "
            "its 'Conv 3x3 1.19 %' is 1.91 %")
_V1_REFS = [
    {"params": "4.2M", "macs": "569M", "table": "Table 6/7/8", "top1": 70.6},
    {"params": "2.6M", "macs": "325M", "table": "Table 6", "top1": 68.4,
     "kwargs": {"width_mult": 0.75}},
    {"params": "1.3M", "macs": "149M", "table": "Table 6", "top1": 63.7,
     "kwargs": {"width_mult": 0.5}},
    {"params": "0.5M", "macs": "41M", "table": "Table 6", "top1": 50.6,
     "kwargs": {"width_mult": 0.25}},
    {"params": "4.2M", "macs": "418M", "table": "Table 7", "top1": 69.1,
     "input_size": (3, 192, 192)},
    {"params": "4.2M", "macs": "290M", "exact_macs": "290.68M", "table": "Table 7",
     "top1": 67.2, "input_size": (3, 160, 160),
     "note": "Table 7 truncates: 290,675,200 mult-adds print as 290 (its other rows, "
             "e.g. 186.4 -> 186, are consistent with truncation too)"},
    {"params": "4.2M", "macs": "186M", "table": "Table 7", "top1": 64.4,
     "input_size": (3, 128, 128)},
    {"params": "1.32M", "macs": "76M", "exact_params": 1_331_592, "exact_macs": "76.52M",
     "table": "Table 9", "top1": 60.2, "input_size": (3, 160, 160),
     "kwargs": {"width_mult": 0.5},
     "note": "0.50 MobileNet-160 counts 1,331,592 params (Table 6's 0.5 row prints 1.3 M) "
             "and 76,524,800 mult-adds: Table 9's 76 M truncates, its 1.32 M is 0.9 % "
             "under the count (which no choice of classifier bias explains)"},
    *[{**row, "table": "Table 10 (Stanford Dogs, 120 classes)",
       "kwargs": {**row.get("kwargs", {}), "num_classes": 120}} for row in (
        {"params": "3.3M", "macs": "569M", "exact_macs": "567.8M", "top1": 83.3,
         "note": "Table 10 reprints the 1000-class 569 M; with 120 classes the classifier "
                 "costs 0.9 M fewer mult-adds"},
        {"params": "1.9M", "macs": "325M", "top1": 81.9, "kwargs": {"width_mult": 0.75}},
        {"params": "3.3M", "macs": "418M", "exact_macs": "417.2M", "top1": 81.9,
         "input_size": (3, 192, 192),
         "note": "Table 10 reprints the 1000-class 418 M; with 120 classes it is 417.2 M"},
        {"params": "1.9M", "macs": "239M", "top1": 80.5, "kwargs": {"width_mult": 0.75},
         "input_size": (3, 192, 192)})],
]


@register_model(paper=MOBILENET_V1, reference=_V1_REFS)
def mobilenet_v1(width_mult=1.0, num_classes=1000, in_chans=3, drop_rate=0.0):
    """MobileNet v1 (Table 1) at width multiplier α; Tables 6–7 for α and resolution."""
    return MobileNetV1(BODY, width_mult, num_classes, in_chans, drop_rate)


@register_model(paper=MOBILENET_V1, reference={
    "params": "29.3M", "macs": "4866M", "exact_macs": "4867.3M", "table": "Table 4",
    "note": "4866 M leaves out the classifier: the convolutions alone count 4,866.3 M, the "
            "1024x1000 FC layer adds 1.0 M", "top1": 71.7})
def mobilenet_v1_conv(width_mult=1.0, num_classes=1000, in_chans=3, drop_rate=0.0):
    """"Conv MobileNet" (Table 4): full 3×3 convolutions instead of depthwise separable."""
    return MobileNetV1(BODY, width_mult, num_classes, in_chans, drop_rate, separable=False)


@register_model(paper=MOBILENET_V1, reference={
    "params": "2.9M", "macs": "307M", "table": "Table 5", "top1": 65.3})
def mobilenet_v1_shallow(width_mult=1.0, num_classes=1000, in_chans=3, drop_rate=0.0):
    """"Shallow MobileNet" (Table 5): the five 14×14×512 separable layers removed."""
    return MobileNetV1(SHALLOW, width_mult, num_classes, in_chans, drop_rate)
