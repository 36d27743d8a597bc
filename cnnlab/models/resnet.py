"""ResNet for ImageNet (He et al. 2015, Table 1), its plain counterparts, and the
pre-activation ResNet (He et al. 2016).

Stacked layers learn a residual F(x) = H(x) − x that a shortcut adds back to x (Sec. 3.1).
Stem: 7×7/2 convolution, 3×3/2 max pool (Table 1; deck 001's "2×2 max pooling" is not the
paper's). Stages conv2_x…conv5_x halve the resolution in their first block. Shortcut
options A/B/C (Sec. 3.3, Table 3) are in :mod:`cnnlab.layers.resnet_blocks`; the paper uses B.

ResNet-50/101/152 stride the first 1×1 of a bottleneck (the paper, Caffe models, "v1");
``stride_in_1x1=False`` strides the 3×3 ("v1.5", torchvision, and the ResNeXt paper's
ResNet-50 baseline): 3.86 G vs 4.09 G mult-adds for ResNet-50. ``release="torchvision"``
builds that one, the network of torchvision's and timm's ResNet-50/101/152 weights (their
names and shapes are the paper network's: only the output tells them apart).
"""

from __future__ import annotations

import torch.nn as nn

from cnnlab.layers import ConvNormAct
from cnnlab.layers.release import Release
from cnnlab.layers.resnet_blocks import (
    SHORTCUTS,
    BasicBlock,
    Bottleneck,
    PreActBasicBlock,
    PreActBottleneck,
    final_bn_relu,
)
from cnnlab.models.base import ClassifierHead, ConvNet, check_arg
from cnnlab.registry import Paper, register_model

RELEASES = [
    Release("torchvision", "torchvision's (and timm's) ResNet-50/101/152: the 3x3 strides "
            "('v1.5')", builder_args=(("stride_in_1x1", False),),
            models=("resnet50", "resnet101", "resnet152")),
    Release("torchvision", "torchvision's ResNet-18/34: the paper network",
            models=("resnet18", "resnet34")),
]
RESNET = Paper("Deep Residual Learning for Image Recognition", "He, Zhang, Ren, Sun", 2015,
               "1512.03385")
PREACT = Paper("Identity Mappings in Deep Residual Networks", "He, Zhang, Ren, Sun", 2016,
               "1603.05027")

STEM = 64  # conv1: 7×7, 64, stride 2; then 3×3 max pool, stride 2
WIDTHS = [64, 128, 256, 512]  # conv2_x … conv5_x; a bottleneck's last 1×1 has 4× as many
EXPANSION = {"basic": 1, "bottleneck": 4}
# Table 1: block type and number of blocks in conv2_x, conv3_x, conv4_x, conv5_x
LAYERS = {
    18: ("basic", [2, 2, 2, 2]),
    34: ("basic", [3, 4, 6, 3]),
    50: ("bottleneck", [3, 4, 6, 3]),
    101: ("bottleneck", [3, 4, 23, 3]),
    152: ("bottleneck", [3, 8, 36, 3]),
    200: ("bottleneck", [3, 24, 36, 3]),  # He et al. 2016, Sec. 5 (pre-activation only)
}


class ResNet(ConvNet):
    """ResNet of Table 1. ``cardinality``/``base_width`` make the bottlenecks ResNeXt's
    (Xie et al. 2017): the 3×3 is a grouped convolution ``cardinality`` × ``base_width``
    channels wide in conv2_x, doubling with each stage. ``preact=True`` uses the
    pre-activation blocks of He et al. 2016 and a final BN-ReLU."""

    min_input_size = 1

    def __init__(self, block="bottleneck", layers=(3, 4, 6, 3), num_classes=1000, in_chans=3,
                 drop_rate=0.0, shortcut="B", stride_in_1x1=True, cardinality=1, base_width=64,
                 preact=False):
        super().__init__()
        check_arg(block in EXPANSION, f"block must be 'basic' or 'bottleneck', got {block!r}")
        check_arg(shortcut in SHORTCUTS,
                  f"shortcut must be one of {', '.join(SHORTCUTS)}, got {shortcut!r}")
        check_arg(isinstance(cardinality, int) and cardinality >= 1,
                  f"cardinality must be a positive integer, got {cardinality!r}")
        check_arg(isinstance(base_width, int) and base_width >= 1,
                  f"base_width must be a positive integer, got {base_width!r}")
        check_arg(block == "bottleneck" or (cardinality, base_width) == (1, 64),
                  "cardinality and base_width apply to bottleneck blocks only")
        check_arg(not (preact and shortcut == "none"), "a plain network has no pre-activation")
        self.num_classes = num_classes
        self.conv1 = ConvNormAct(in_chans, STEM, 7, 2)
        self.pool = nn.MaxPool2d(3, 2, 1)
        self.feature_info = [dict(module="conv1", reduction=2, channels=STEM)]
        c, reduction = STEM, 4
        for i, (width, n) in enumerate(zip(WIDTHS, layers)):
            out = width * EXPANSION[block]
            mid = width * base_width // 64 * cardinality
            blocks = []
            for j in range(n):
                stride = 2 if i > 0 and j == 0 else 1
                if block == "basic":
                    b = (PreActBasicBlock if preact else BasicBlock)(c, out, stride, shortcut)
                elif preact:
                    b = PreActBottleneck(c, mid, out, stride, cardinality, shortcut)
                else:
                    b = Bottleneck(c, mid, out, stride, cardinality, shortcut,
                                   stride_in_1x1=stride_in_1x1)
                blocks.append(b)
                c = out
            if preact and i == 0:  # conv1's BN-ReLU already pre-activates the first block
                blocks[0].preact = nn.Identity()
            reduction *= 2 if i > 0 else 1
            setattr(self, f"conv{i + 2}_x", nn.Sequential(*blocks))
            self.feature_info.append(dict(module=f"conv{i + 2}_x", reduction=reduction,
                                          channels=c))
        self.final_act = final_bn_relu(c) if preact else nn.Identity()
        if preact:
            self.feature_info[-1]["module"] = "final_act"
        self.head = ClassifierHead(c, num_classes, drop_rate=drop_rate)

    def forward_features(self, x):
        x = self.pool(self.conv1(x))
        x = self.conv5_x(self.conv4_x(self.conv3_x(self.conv2_x(x))))
        return self.final_act(x)


def resnet(depth, num_classes=1000, in_chans=3, drop_rate=0.0, shortcut="B",
           stride_in_1x1=True):
    """ResNet-depth (He et al. 2015, Table 1); shortcut option A/B/C, stride_in_1x1=False for
    'v1.5'."""
    block, layers = LAYERS[depth]
    return ResNet(block, layers, num_classes, in_chans, drop_rate, shortcut, stride_in_1x1)


def plain_resnet(depth, num_classes=1000, in_chans=3, drop_rate=0.0):
    block, layers = LAYERS[depth]
    return ResNet(block, layers, num_classes, in_chans, drop_rate, shortcut="none")


def preact_resnet(depth, num_classes=1000, in_chans=3, drop_rate=0.0, shortcut="B"):
    block, layers = LAYERS[depth]
    return ResNet(block, layers, num_classes, in_chans, drop_rate, shortcut, preact=True)


# Table 1's FLOPs row (mult-adds), counted with the paper's shortcut option B
_TABLE1 = {
    18: {"macs": "1.8G"},
    34: {"macs": "3.6G", "exact_macs": "3.66G",
         "note": "Table 1 truncates: with option-B projections ResNet-34 counts 3.664 G "
                 "(3.645 G with option A, as plain-34)"},
    50: {"macs": "3.8G", "exact_macs": "3.86G",
         "note": "Table 1 truncates: 3.86 G with the stride in the first 1x1 (4.09 G with "
                 "the stride in the 3x3, 'v1.5')"},
    101: {"macs": "7.6G"},
    152: {"macs": "11.3G"},
}
# The ResNeXt paper's ResNet-50 baseline strides the 3×3
_V15 = {"params": "25.5M", "macs": "4.1G", "exact_params": 25_557_032,
        "table": "Xie et al. 2017, Table 1", "kwargs": {"stride_in_1x1": False},
        "note": "Xie et al. truncate 25,557,032 params to 25.5 M"}
# Plain-34's FLOPs are printed in Sec. 3.3; plain-18 has ResNet-18's
_PLAIN = {18: {"macs": "1.8G", "table": "Table 1"},
          34: {"macs": "3.6G", "table": "Sec. 3.3 ('3.6 billion FLOPs')"}}

for _depth, _ref in _TABLE1.items():
    register_model(resnet, name=f"resnet{_depth}", fixed={"depth": _depth}, paper=RESNET,
                   reference=[{"table": "Table 1", **_ref}] + ([_V15] if _depth == 50 else []),
                   doc=f"ResNet-{_depth} (He et al. 2015, Table 1); shortcut option A/B/C, "
                       "stride_in_1x1=False for 'v1.5'.")
for _depth, _ref in _PLAIN.items():
    register_model(plain_resnet, name=f"plain{_depth}", fixed={"depth": _depth}, paper=RESNET,
                   reference=_ref,
                   doc=f"Plain-{_depth} (He et al. 2015, Sec. 3.3, Fig. 3 middle): "
                       f"ResNet-{_depth} without shortcuts, for the degradation experiment "
                       "(Table 2).")
# ResNet-200 (He et al. 2016): no paper prints its size, so the registry records the exact
# count (the ResNeXt paper's Tables 4 and 5 give only its errors, 224 px and 320 px crops)
_NO_COUNT = "no paper prints ResNet-200's size; this is the network's exact count"
_R200 = {"params": 64_673_832, "table": "count (Xie et al. 2017, Tables 4-5 print errors only)",
         "note": _NO_COUNT}
register_model(resnet, name="resnet200", fixed={"depth": 200}, paper=PREACT, reference=_R200,
               doc="ResNet-200 with the original (post-activation) blocks, the baseline of He "
                   "et al. 2016, Table 5; Table 1 layout of He et al. 2015 with [3, 24, 36, 3] "
                   "bottlenecks.")
_PREACT_REFS = {200: [
    {"params": 64_666_152, "macs": "15.01G", "table": "count; Xie et al. 2017, Table 4",
     "top1": 78.3, "top5": 94.2, "note": _NO_COUNT},
    {"table": "Xie et al. 2017, Table 5 (320 px crop)", "input_size": (3, 320, 320),
     "top1": 79.9, "top5": 95.2}]}
for _depth in (18, 34, 50, 101, 152, 200):
    register_model(preact_resnet, name=f"preact_resnet{_depth}", fixed={"depth": _depth},
                   paper=PREACT, reference=_PREACT_REFS.get(_depth),
                   doc=f"Pre-activation ResNet-{_depth} for ImageNet (He et al. 2016, Fig. 4e; "
                       "Table 1 layout of He et al. 2015, stride in the 3x3 as in the "
                       "authors' code).")
