"""Wide Residual Networks (Zagoruyko & Komodakis 2016), Table 1.

Fewer, wider pre-activation blocks: WRN-d-k has N = (d − 4) / 6 basic blocks B(3,3) per
group, the groups being k times as wide as the CIFAR ResNet's (16k, 32k, 64k). A 1×1
projection takes the pre-activated input where the width changes (the authors' code).
``conv_drop_rate`` puts dropout between the two convolutions of every block (Sec. 2.4,
0.3 in the paper's dropout rows).
"""

from __future__ import annotations

from collections import OrderedDict

import torch.nn as nn

from cnnlab.layers.resnet_blocks import PreActBasicBlock
from cnnlab.models.base import ClassifierHead, ConvNet, check_arg
from cnnlab.registry import Paper, register_model

WRN = Paper("Wide Residual Networks", "Zagoruyko, Komodakis", 2016, "1605.07146")

STEM = 16  # conv1: 3×3, 16
# Table 1: (group, output size, base width ×k) for conv2, conv3, conv4; the first block of
# conv3 and conv4 has stride 2
GROUPS = [("conv2", 32, 16), ("conv3", 16, 32), ("conv4", 8, 64)]
# Table 4 (CIFAR-10): (depth, k) → parameters as printed
TABLE4 = {
    (40, 1): "0.6M", (40, 2): "2.2M", (40, 4): "8.9M", (40, 8): "35.7M",
    (28, 10): "36.5M", (28, 12): "52.5M",
    (22, 8): "17.2M", (22, 10): "26.8M",
    (16, 8): "11.0M", (16, 10): "17.1M",
}


class WideResNet(ConvNet):
    min_input_size = 1

    def __init__(self, depth=28, k=10, num_classes=10, in_chans=3, drop_rate=0.0,
                 conv_drop_rate=0.0):
        super().__init__()
        check_arg(isinstance(depth, int) and depth >= 10 and (depth - 4) % 6 == 0,
                  f"depth must be 6N + 4 (N >= 1), got {depth!r}")
        check_arg(isinstance(k, int) and k >= 1,
                  f"k must be a positive integer, got {k!r}")
        check_arg(isinstance(conv_drop_rate, (int, float)) and 0 <= conv_drop_rate < 1,
                  f"conv_drop_rate must be in [0, 1), got {conv_drop_rate!r}")
        n = (depth - 4) // 6
        self.num_classes = num_classes
        self.conv1 = nn.Conv2d(in_chans, STEM, 3, 1, 1, bias=False)
        self.feature_info = []
        c = STEM
        for i, (name, _, width) in enumerate(GROUPS):
            out = width * k
            blocks = [PreActBasicBlock(c if j == 0 else out, out, 2 if i and not j else 1,
                                       "B", drop_rate=conv_drop_rate) for j in range(n)]
            setattr(self, name, nn.Sequential(*blocks))
            self.feature_info.append(dict(module=name, reduction=2 ** i, channels=out))
            c = out
        self.final_act = nn.Sequential(OrderedDict(bn=nn.BatchNorm2d(c), act=nn.ReLU(True)))
        self.feature_info[-1]["module"] = "final_act"
        self.head = ClassifierHead(c, num_classes, drop_rate=drop_rate)

    def forward_features(self, x):
        return self.final_act(self.conv4(self.conv3(self.conv2(self.conv1(x)))))


@register_model(paper=WRN, input_size=(3, 32, 32), num_classes=10)
def wide_resnet(depth=28, k=10, num_classes=10, in_chans=3, drop_rate=0.0,
                conv_drop_rate=0.0):
    """WRN-depth-k for any depth = 6N + 4 and widening factor k (Table 1)."""
    return WideResNet(depth, k, num_classes, in_chans, drop_rate, conv_drop_rate)


for (_depth, _k), _params in TABLE4.items():
    register_model(wide_resnet, name=f"wrn_{_depth}_{_k}", fixed={"depth": _depth, "k": _k},
                   paper=WRN, input_size=(3, 32, 32), num_classes=10,
                   reference={"params": _params, "table": "Table 4"},
                   doc=f"WRN-{_depth}-{_k} (Zagoruyko & Komodakis 2016, Tables 1 and 4); "
                       "conv_drop_rate=0.3 for the paper's dropout variant.")
