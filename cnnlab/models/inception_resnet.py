"""Inception-ResNet-v2 (Szegedy, Ioffe, Vanhoucke, Alemi 2016), Figs. 15–19.

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
from cnnlab.models.inception import V3_STEM
from cnnlab.registry import Paper, register_model

INCEPTION_V4 = Paper("Inception-v4, Inception-ResNet and the Impact of Residual Connections on "
                     "Learning", "Szegedy, Ioffe, Vanhoucke, Alemi", 2016, "1602.07261")

MIXED_5B = {"branch1x1": [conv(96, 1)],  # 35×35×192 -> 320
            "branch5x5": [conv(48, 1), conv(64, 5)],
            "branch3x3dbl": [conv(64, 1), conv(96, 3), conv(96, 3)],
            "branch_pool": [pool("avg"), conv(64, 1)]}
BLOCK35 = {"branch1x1": [conv(32, 1)],  # Fig. 16, Inception-ResNet-A
           "branch3x3": [conv(32, 1), conv(32, 3)],
           "branch3x3dbl": [conv(32, 1), conv(48, 3), conv(64, 3)]}
REDUCTION_A = {"branch3x3": [conv(384, 3, s=2)],  # Fig. 7 with k, l, m, n = 256, 256, 384, 384
               "branch3x3dbl": [conv(256, 1), conv(256, 3), conv(384, 3, s=2)],
               "branch_pool": [pool("max", s=2)]}
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


@register_model(paper=INCEPTION_V4, input_size=(3, 299, 299), reference={
    "params": "55.8M", "macs": "13.2B", "table": "NASNet (Zoph et al. 2018) Table 2",
    "top1": 80.4, "top5": 95.3})
def inception_resnet_v2(num_classes=1000, in_chans=3, drop_rate=0.2):
    """Inception-ResNet-v2 as released (Fig. 15 with 10/20/10 blocks; dropout keeps 0.8)."""
    return InceptionResNetV2(num_classes, in_chans, drop_rate)
