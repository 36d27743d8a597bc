"""Inception-v4 and Inception-ResNet-v2 (Szegedy, Ioffe, Vanhoucke, Alemi 2016).

Inception-v4, Figs. 3–9: a uniform, purely Inception network — the Fig. 3 stem (35×35×384,
its steps split into parallel branches), 4 × Inception-A, Reduction-A (Fig. 7 with k, l, m,
n = 192, 224, 256, 384; Table 1), 7 × Inception-B, Reduction-B (Fig. 8), 3 × Inception-C,
8×8 average pool, dropout (keep 0.8), softmax (Fig. 9). The paper prints no parameter count;
the network (as drawn, and as released in TF-slim ``inception_v4``) has 42,679,816 params
and 12.25 G mult-adds, where EfficientNet's Table 2 says 48 M / 13 B.

Inception-ResNet-v2, Figs. 15–19.

Inception modules whose concatenated branches go through a linear 1×1 convolution back to
the input width and are added to the input (Sec. 3.1); the residuals are scaled by 0.1–0.3
before the add, which keeps very wide networks from dying early in training (Sec. 3.3).
Built as the authors released it (TF-slim ``inception_resnet_v2``), which is what 55.8 M /
13.2 B count. The paper's figures differ from that network: Fig. 15 repeats the three block
types 5×, 10×, 5× (the release: 10×, 20×, 10×), the stem is the one of Inception v3
(35×35×192, then a 320-map Inception module) rather than Fig. 3's, so the blocks' widths are
320 / 1088 / 2080 instead of Figs. 16, 17, 19's 384 / 1154 / 2048.
"""

from __future__ import annotations

from collections import OrderedDict

import torch.nn as nn

from cnnlab.layers.inception import (
    BasicConv,
    Branches,
    InceptionResidual,
    conv,
    make_branch,
    pool,
)
from cnnlab.models.base import ClassifierHead, ConvNet
from cnnlab.models.inception import V3_STEM, _split
from cnnlab.registry import Paper, register_model

INCEPTION_V4 = Paper("Inception-v4, Inception-ResNet and the Impact of Residual Connections on "
                     "Learning", "Szegedy, Ioffe, Vanhoucke, Alemi", 2016, "1602.07261")

# Fig. 3, the stem shared by Inception-v4 and the paper's Inception-ResNet-v2 ("V": valid
# padding); each parallel pair of the figure is one Branches module
V4_STEM = [("conv1a", conv(32, 3, s=2)), ("conv2a", conv(32, 3, p=0)), ("conv2b", conv(64, 3)),
           ("mixed3a", {"branch_pool": [pool("max", s=2)], "branch3x3": [conv(96, 3, s=2)]}),
           ("mixed4a", {"branch3x3": [conv(64, 1), conv(96, 3, p=0)],
                        "branch7x7": [conv(64, 1), conv(64, (1, 7)), conv(64, (7, 1)),
                                      conv(96, 3, p=0)]}),
           ("mixed5a", {"branch3x3": [conv(192, 3, s=2)], "branch_pool": [pool("max", s=2)]})]
INCEPTION_A = {"branch1x1": [conv(96, 1)],  # Fig. 4, 35×35
               "branch3x3": [conv(64, 1), conv(96, 3)],
               "branch3x3dbl": [conv(64, 1), conv(96, 3), conv(96, 3)],
               "branch_pool": [pool("avg"), conv(96, 1)]}


def reduction_a(k: int, l: int, m: int, n: int) -> dict:  # noqa: E741 (the paper's names)
    """Fig. 7, 35×35 → 17×17, with the filter counts of Table 1 (k, l, m, n)."""
    return {"branch3x3": [conv(n, 3, s=2)],
            "branch3x3dbl": [conv(k, 1), conv(l, 3), conv(m, 3, s=2)],
            "branch_pool": [pool("max", s=2)]}


INCEPTION_B = {"branch1x1": [conv(384, 1)],  # Fig. 5, 17×17
               "branch7x7": [conv(192, 1), conv(224, (1, 7)), conv(256, (7, 1))],
               "branch7x7dbl": [conv(192, 1), conv(192, (7, 1)), conv(224, (1, 7)),
                                conv(224, (7, 1)), conv(256, (1, 7))],
               "branch_pool": [pool("avg"), conv(128, 1)]}
REDUCTION_B_V4 = {"branch3x3": [conv(192, 1), conv(192, 3, s=2)],  # Fig. 8, 17×17 → 8×8
                  "branch7x7x3": [conv(256, 1), conv(256, (1, 7)), conv(320, (7, 1)),
                                  conv(320, 3, s=2)],
                  "branch_pool": [pool("max", s=2)]}


INCEPTION_C = {"branch1x1": [conv(256, 1)],  # Fig. 6, 8×8
               "branch3x3": [conv(384, 1), _split(256)],
               "branch3x3dbl": [conv(384, 1), conv(448, (3, 1)), conv(512, (1, 3)), _split(256)],
               "branch_pool": [pool("avg"), conv(256, 1)]}
# Fig. 9: (name, module, repeats)
V4_STAGES = [("inception_a", INCEPTION_A, 4), ("reduction_a", reduction_a(192, 224, 256, 384), 1),
             ("inception_b", INCEPTION_B, 7), ("reduction_b", REDUCTION_B_V4, 1),
             ("inception_c", INCEPTION_C, 3)]

MIXED_5B = {"branch1x1": [conv(96, 1)],  # 35×35×192 -> 320
            "branch5x5": [conv(48, 1), conv(64, 5)],
            "branch3x3dbl": [conv(64, 1), conv(96, 3), conv(96, 3)],
            "branch_pool": [pool("avg"), conv(64, 1)]}
BLOCK35 = {"branch1x1": [conv(32, 1)],  # Fig. 16, Inception-ResNet-A
           "branch3x3": [conv(32, 1), conv(32, 3)],
           "branch3x3dbl": [conv(32, 1), conv(48, 3), conv(64, 3)]}
REDUCTION_A = reduction_a(256, 256, 384, 384)  # Table 1's Inception-ResNet-v2 row
BLOCK17 = {"branch1x1": [conv(192, 1)],  # Fig. 17, Inception-ResNet-B
           "branch7x7": [conv(128, 1), conv(160, (1, 7)), conv(192, (7, 1))]}
REDUCTION_B = {"branch3x3a": [conv(256, 1), conv(384, 3, s=2)],  # Fig. 18
               "branch3x3b": [conv(256, 1), conv(288, 3, s=2)],
               "branch3x3dbl": [conv(256, 1), conv(288, 3), conv(320, 3, s=2)],
               "branch_pool": [pool("max", s=2)]}
BLOCK8 = {"branch1x1": [conv(192, 1)],  # Fig. 19, Inception-ResNet-C
          "branch3x3": [conv(192, 1), conv(224, (1, 3)), conv(256, (3, 1))]}

# Fig. 15 as released: (name, block spec, repeats, residual scale)
STAGES = [("block35", BLOCK35, 10, 0.17), ("mixed6a", REDUCTION_A, 1, None),
          ("block17", BLOCK17, 20, 0.10), ("mixed7a", REDUCTION_B, 1, None),
          ("block8", BLOCK8, 10, 0.20)]
FINAL_CONV = 1536  # Conv2d_7b 1×1 before the 8×8 average pool


class InceptionV4(ConvNet):
    min_input_size = 75

    def __init__(self, num_classes=1000, in_chans=3, drop_rate=0.2):
        super().__init__()
        self.num_classes = num_classes
        layers, c = OrderedDict(), in_chans
        for name, step in V4_STEM:
            layers[name], c = make_branch(c, [step])
        for name, spec, repeats in V4_STAGES:
            blocks = []
            for _ in range(repeats):
                blocks.append(Branches(c, spec))
                c = blocks[-1].out_channels
            layers[name] = blocks[0] if repeats == 1 else nn.Sequential(*blocks)
        self.features = nn.Sequential(layers)
        self.feature_info = [dict(module="features.conv2b", reduction=2, channels=64),
                             dict(module="features.mixed4a", reduction=4, channels=192),
                             dict(module="features.inception_a", reduction=8, channels=384),
                             dict(module="features.inception_b", reduction=16, channels=1024),
                             dict(module="features.inception_c", reduction=32, channels=c)]
        self.head = ClassifierHead(c, num_classes, drop_rate=drop_rate)

    def forward_features(self, x):
        return self.features(x)


class InceptionResNetV2(ConvNet):
    min_input_size = 75

    def __init__(self, num_classes=1000, in_chans=3, drop_rate=0.2):
        super().__init__()
        self.num_classes = num_classes
        layers, c = OrderedDict(), in_chans
        for name, step in V3_STEM:
            layers[name], c = make_branch(c, [step])
        layers["mixed5b"] = m = Branches(c, MIXED_5B)
        c = m.out_channels
        for name, spec, repeats, scale in STAGES:
            if scale is None:
                layers[name] = m = Branches(c, spec)
                c = m.out_channels
                continue
            # the release ends on a block with scale 1 and no ReLU ("block8(net, act=None)")
            last = name == "block8"
            layers[name] = nn.Sequential(*[
                InceptionResidual(c, spec, 1.0 if last and i == repeats - 1 else scale,
                                  activate=not (last and i == repeats - 1))
                for i in range(repeats)])
        layers["conv7b"] = BasicConv(c, FINAL_CONV, 1)
        self.features = nn.Sequential(layers)
        self.feature_info = [dict(module="features.conv2b", reduction=2, channels=64),
                             dict(module="features.conv4a", reduction=4, channels=192),
                             dict(module="features.block35", reduction=8, channels=320),
                             dict(module="features.block17", reduction=16, channels=1088),
                             dict(module="features.conv7b", reduction=32, channels=FINAL_CONV)]
        self.head = ClassifierHead(FINAL_CONV, num_classes, drop_rate=drop_rate)

    def forward_features(self, x):
        return self.features(x)


@register_model(paper=INCEPTION_V4, input_size=(3, 299, 299), reference=[
    {"params": "48M", "macs": "13B", "exact_params": 42_679_816, "exact_macs": "12.25G",
     "table": "EfficientNet (Tan & Le 2019) Table 2", "top1": 80.0, "top5": 95.0,
     "note": "the Inception-v4 paper prints no count; EfficientNet's 48 M / 13 B are not the "
             "network's: Figs. 3-9 (and the TF-slim release) give 42,679,816 params and "
             "12.25 G mult-adds at 299 px"}])
def inception_v4(num_classes=1000, in_chans=3, drop_rate=0.2):
    """Inception-v4 (Figs. 3-9; Table 2: 20.0 % top-1, 5.0 % top-5 error, single crop)."""
    return InceptionV4(num_classes, in_chans, drop_rate)


@register_model(paper=INCEPTION_V4, input_size=(3, 299, 299), reference={
    "params": "55.8M", "macs": "13.2B", "table": "NASNet (Zoph et al. 2018) Table 2",
    "top1": 80.4, "top5": 95.3})
def inception_resnet_v2(num_classes=1000, in_chans=3, drop_rate=0.2):
    """Inception-ResNet-v2 as released (Fig. 15 with 10/20/10 blocks; dropout keeps 0.8)."""
    return InceptionResNetV2(num_classes, in_chans, drop_rate)
