"""CIFAR-10 ResNets (He et al. 2015, Sec. 4.2, Table 6), their plain counterparts, and the
pre-activation ResNets of He et al. 2016 (ResNet-164, ResNet-1001).

A 3×3 convolution with 16 filters, then three stages of n blocks on 32×32, 16×16 and 8×8
maps with 16, 32 and 64 filters (the first convolution of a stage has stride 2), global
average pooling and a 10-way classifier: 6n + 2 weighted layers with basic blocks. Every
shortcut is an identity; where the width doubles it is zero-padded (option A), so a ResNet has
exactly its plain network's parameters.

Pre-activation ResNets use BN-ReLU-conv blocks; bottlenecks (9n + 2 layers) are 16/32/64
wide inside and 4× as wide outside, with 1×1 projections where the width changes (the
authors' code).
"""

from __future__ import annotations

import torch.nn as nn

from cnnlab.layers import ConvNormAct
from cnnlab.layers.resnet_blocks import (
    BasicBlock,
    PreActBasicBlock,
    PreActBottleneck,
    final_bn_relu,
)
from cnnlab.models.base import ClassifierHead, ConvNet, check_arg
from cnnlab.models.resnet import PREACT, RESNET
from cnnlab.registry import register_model

STEM = 16  # 3×3 conv, 16 filters
WIDTHS = [16, 32, 64]  # output map sizes 32×32, 16×16, 8×8
# Table 6 (CIFAR-10): depth 6n + 2 and the printed parameter counts
TABLE6 = {20: "0.27M", 32: "0.46M", 44: "0.66M", 56: "0.85M", 110: "1.7M", 1202: "19.4M"}
PLAIN = [20, 32, 44, 56, 110]  # Fig. 6 (left): plain-20 … plain-56; 110 for completeness
# He et al. 2016, Table 4 (CIFAR-10): depth → printed params; 9n + 2 bottleneck layers
PREACT_TABLE4 = {
    164: {"params": "1.7M"},
    1001: {"params": "10.2M", "exact_params": 10_327_706,
           "note": "10.2 M counts convolution and classifier weights only (10,178,490); the "
                   "BN scales and shifts add 149,216"},
}


class CifarResNet(ConvNet):
    """Three-stage CIFAR ResNet. ``block``: "basic" (6n + 2 layers) or "bottleneck"
    (9n + 2, pre-activation only)."""

    min_input_size = 1

    def __init__(self, depth=20, block="basic", num_classes=10, in_chans=3, drop_rate=0.0,
                 shortcut="A", preact=False):
        super().__init__()
        per = 6 if block == "basic" else 9
        check_arg(block in ("basic", "bottleneck"),
                  f"block must be 'basic' or 'bottleneck', got {block!r}")
        check_arg(block == "basic" or preact, "bottleneck CIFAR ResNets are pre-activation")
        check_arg(isinstance(depth, int) and depth > 2 and (depth - 2) % per == 0,
                  f"depth must be {per}n + 2 for {block} blocks, got {depth!r}")
        n = (depth - 2) // per
        self.num_classes = num_classes
        # pre-activation: conv1's BN-ReLU pre-activates the first block (authors' code)
        self.conv1 = ConvNormAct(in_chans, STEM, 3)
        self.feature_info = []
        c = STEM
        for i, width in enumerate(WIDTHS):
            blocks = []
            for j in range(n):
                stride = 2 if i > 0 and j == 0 else 1
                if block == "bottleneck":
                    blocks.append(PreActBottleneck(c, width, 4 * width, stride, 1, shortcut))
                elif preact:
                    blocks.append(PreActBasicBlock(c, width, stride, shortcut))
                else:
                    blocks.append(BasicBlock(c, width, stride, shortcut))
                c = blocks[-1].out_channels
            if preact and i == 0:
                blocks[0].preact = nn.Identity()
            setattr(self, f"conv{i + 2}_x", nn.Sequential(*blocks))
            self.feature_info.append(dict(module=f"conv{i + 2}_x", reduction=2 ** i, channels=c))
        self.final_act = final_bn_relu(c) if preact else nn.Identity()
        if preact:
            self.feature_info[-1]["module"] = "final_act"
        self.head = ClassifierHead(c, num_classes, drop_rate=drop_rate)

    def forward_features(self, x):
        x = self.conv4_x(self.conv3_x(self.conv2_x(self.conv1(x))))
        return self.final_act(x)


def cifar_resnet(depth, num_classes=10, in_chans=3, drop_rate=0.0):
    """CIFAR ResNet of depth 6n + 2, option-A identity shortcuts (Sec. 4.2)."""
    return CifarResNet(depth, "basic", num_classes, in_chans, drop_rate, shortcut="A")


def cifar_plain(depth, num_classes=10, in_chans=3, drop_rate=0.0):
    return CifarResNet(depth, "basic", num_classes, in_chans, drop_rate, shortcut="none")


def cifar_preact_resnet(depth, block, num_classes=10, in_chans=3, drop_rate=0.0):
    return CifarResNet(depth, block, num_classes, in_chans, drop_rate, shortcut="B",
                       preact=True)


_CIFAR = {"input_size": (3, 32, 32), "num_classes": 10}
for _d, _params in TABLE6.items():
    register_model(cifar_resnet, name=f"resnet{_d}", fixed={"depth": _d}, paper=RESNET,
                   reference={"params": _params, "table": "Table 6"}, **_CIFAR,
                   doc=f"ResNet-{_d} for CIFAR-10 (He et al. 2015, Sec. 4.2, Table 6): "
                       "option-A identity shortcuts.")
for _d in PLAIN:
    register_model(cifar_plain, name=f"plain{_d}", fixed={"depth": _d}, paper=RESNET, **_CIFAR,
                   doc=f"Plain-{_d} for CIFAR-10 (He et al. 2015, Sec. 4.2, Fig. 6): "
                       f"ResNet-{_d} without shortcuts.")
register_model(cifar_preact_resnet, name="preact_resnet110",
               fixed={"depth": 110, "block": "basic"}, paper=PREACT, **_CIFAR,
               doc="Pre-activation ResNet-110 for CIFAR (He et al. 2016, Table 3): basic "
                   "blocks, 1x1 projections where the width grows.")
for _d, _ref in PREACT_TABLE4.items():
    register_model(cifar_preact_resnet, name=f"preact_resnet{_d}",
                   fixed={"depth": _d, "block": "bottleneck"},
                   paper=PREACT, reference={**_ref, "table": "Table 4"}, **_CIFAR,
                   doc=f"Pre-activation ResNet-{_d} for CIFAR (He et al. 2016, Fig. 4e, "
                       "Table 4): bottlenecks, 1x1 projections where the width grows.")
