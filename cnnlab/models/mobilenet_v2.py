"""MobileNetV2 (Sandler et al. 2018), Table 2: a stack of inverted residuals with linear
bottlenecks.

Each row of Table 2 is a sequence of ``n`` identical bottleneck blocks with expansion factor
``t`` and ``c`` output channels; the first block of a row has stride ``s``, the rest stride 1
and a shortcut. The width multiplier scales every layer and rounds it to a multiple of 8 —
except the last 1×1 convolution, which is never thinned below 1280 (Sec. 6.1: "for
multipliers less than one, we apply width multiplier to all layers except the very last
convolutional layer"); at 1.4 it widens to 1792.
"""

from __future__ import annotations

from collections import OrderedDict

import torch.nn as nn

from cnnlab.layers.conv import ConvNormAct, make_divisible
from cnnlab.layers.inverted_residual import InvertedResidual
from cnnlab.models.base import ClassifierHead, ConvNet, check_arg
from cnnlab.registry import Paper, register_model

MOBILENET_V2 = Paper("MobileNetV2: Inverted Residuals and Linear Bottlenecks",
                     "Sandler, Howard, Zhu, Zhmoginov, Chen", 2018, "1801.04381")

STEM = 32  # conv2d 3×3 / s2
LAST = 1280  # conv2d 1×1
# Table 2: (t expansion, c output channels, n repeats, s stride of the first)
BOTTLENECKS = [
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
]


class MobileNetV2(ConvNet):
    """Table 2 at width multiplier ``width_mult``.

    ``output_stride`` (8, 16 or 32) replaces the last strides by dilation, as the paper's
    DeepLabv3 experiments do (Sec. 6.3, output stride 16). ``feature_info`` ends at the last
    bottleneck (320·α channels), the "second to last feature map" of Table 7's MNet V2*; the
    1×1 convolution to 1280 belongs to the classifier's features only.
    """

    min_input_size = 1  # every strided convolution is padded: 1×1 stays 1×1

    def __init__(self, width_mult=1.0, num_classes=1000, in_chans=3, drop_rate=0.2,
                 output_stride=32, table=BOTTLENECKS):
        super().__init__()
        check_arg(isinstance(width_mult, (int, float)) and width_mult > 0,
                  f"width_mult must be a positive number, got {width_mult!r}")
        check_arg(output_stride in (8, 16, 32),
                  f"output_stride must be 8, 16 or 32, got {output_stride!r}")
        check_arg(0 <= drop_rate < 1, f"drop_rate must be in [0, 1), got {drop_rate!r}")
        self.num_classes = num_classes
        self.default_input_size = (in_chans, 224, 224)
        c = make_divisible(STEM * width_mult)
        layers = OrderedDict(stem=ConvNormAct(in_chans, c, 3, 2, act=nn.ReLU6))
        self.add_feature("features.stem", 2, c)
        reduction, dilation = 2, 1
        for i, (t, ch, n, s) in enumerate(table, 1):
            out = make_divisible(ch * width_mult)
            for j in range(n):
                stride = s if j == 0 else 1
                block_dilation = dilation
                if stride == 2 and reduction * 2 > output_stride:
                    stride, dilation = 1, dilation * 2  # atrous from the next block on
                layers[f"block{i}_{j + 1}"] = InvertedResidual(
                    c, out, stride, expand_ratio=t, dilation=block_dilation, act=nn.ReLU6)
                reduction *= stride
                c = out
            self.add_feature(f"features.block{i}_{n}", reduction, c)
        self.num_features = make_divisible(LAST * max(1.0, width_mult))
        layers["conv_last"] = ConvNormAct(c, self.num_features, 1, act=nn.ReLU6)
        self.features = nn.Sequential(layers)
        self.head = ClassifierHead(self.num_features, num_classes, drop_rate=drop_rate)

    def forward_features(self, x):
        return self.features(x)


_NOTE_10 = ("Table 4's 3.4 M and 300 M read as truncations: the network has 3,504,872 "
            "parameters (3,470,760 without batch norm's scales and shifts, the 3.47 M the "
            "released checkpoint is listed with) and 300,774,272 mult-adds")
_NOTE_14 = ("Table 4's 6.9 M / 585 M are not the 1.4 network's counts: Table 2 at 1.4 with "
            "every layer rounded to a multiple of 8 (last conv 1792), as released, has "
            "6,108,776 parameters and 582.2 M mult-adds (counters that fold batch norm into "
            "the count report 603 M)")
_V2_REFS = [
    {"params": "3.4M", "exact_params": 3_504_872, "macs": "300M", "exact_macs": 300_774_272,
     "table": "Table 4", "top1": 72.0, "note": _NOTE_10},
    {"params": "6.9M", "exact_params": 6_108_776, "macs": "585M", "exact_macs": 582_195_824,
     "table": "Table 4", "top1": 74.7, "kwargs": {"width_mult": 1.4}, "note": _NOTE_14},
]


@register_model(paper=MOBILENET_V2, reference=_V2_REFS)
def mobilenet_v2(width_mult=1.0, num_classes=1000, in_chans=3, drop_rate=0.2, output_stride=32):
    """MobileNetV2 (Table 2) at width multiplier α; Table 4 for α = 1.0 and 1.4.

    ``drop_rate`` 0.2 is the released networks' dropout (the paper states none).
    """
    return MobileNetV2(width_mult, num_classes, in_chans, drop_rate, output_stride)
