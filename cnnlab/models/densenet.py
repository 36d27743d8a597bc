"""DenseNet (Huang et al. 2017): ImageNet (Table 1) and CIFAR (Sec. 3, Table 2).

Every layer of a dense block gets all earlier feature maps of the block, concatenated, and
adds k (the growth rate) of its own; transitions between blocks halve the resolution.
DenseNet-B adds 1×1 bottlenecks (4k maps), DenseNet-C compresses by θ = 0.5 in transitions,
DenseNet-BC has both; the ImageNet models are BC with k = 32 (DenseNet-161: k = 48).

CIFAR: three blocks of (L − 4)/3 layers ((L − 4)/6 for BC) on 32×32, 16×16 and 8×8 maps; the
first convolution has 16 maps (2k for BC). ``memory_efficient=True`` recomputes the
concatenations and first BN-ReLU-conv of each layer while training (see
:mod:`cnnlab.layers.dense`).
"""

from __future__ import annotations

from collections import OrderedDict

import torch.nn as nn

from cnnlab.layers import ConvNormAct
from cnnlab.layers.dense import DenseBlock, Transition
from cnnlab.models.base import ClassifierHead, ConvNet, check_arg
from cnnlab.registry import Paper, register_model

DENSENET = Paper("Densely Connected Convolutional Networks",
                 "Huang, Liu, van der Maaten, Weinberger", 2017, "1608.06993")

# Table 1 (ImageNet, DenseNet-BC): growth rate k, first conv's maps, layers per dense block
IMAGENET = {
    121: (32, 64, [6, 12, 24, 16]),
    169: (32, 64, [6, 12, 32, 32]),
    201: (32, 64, [6, 12, 48, 32]),
    161: (48, 96, [6, 12, 36, 24]),
}
# params as in the authors' released models (Table 1 gives the layout only); top-1 = 100 −
# Table 3's single-crop top-1 error
IMAGENET_REFS = {121: ("7.98M", 74.98), 169: ("14.15M", 76.20), 201: ("20.01M", 77.42),
                 161: ("28.68M", 77.67)}
# Table 2 (CIFAR): (BC, L, k) → params as printed. "L = 190, k = 40" is printed in deck 003
# as "(L = 100, k = 40) depth 190": the network is L = 190.
CIFAR = {
    (False, 40, 12): "1.0M", (False, 100, 12): "7.0M", (False, 100, 24): "27.2M",
    (True, 100, 12): "0.8M", (True, 250, 24): "15.3M", (True, 190, 40): "25.6M",
}


class DenseNet(ConvNet):
    """``stem="imagenet"``: 7×7/2 conv-BN-ReLU and 3×3/2 max pool; ``"cifar"``: a 3×3 conv."""

    def __init__(self, block_layers=(6, 12, 24, 16), growth_rate=32, stem_chs=64,
                 bottleneck=True, compression=0.5, stem="imagenet", num_classes=1000,
                 in_chans=3, drop_rate=0.0, conv_drop_rate=0.0, memory_efficient=False):
        super().__init__()
        check_arg(isinstance(growth_rate, int) and growth_rate >= 1,
                  f"growth_rate must be a positive integer, got {growth_rate!r}")
        check_arg(isinstance(compression, (int, float)) and 0 < compression <= 1,
                  f"compression must be in (0, 1], got {compression!r}")
        check_arg(isinstance(conv_drop_rate, (int, float)) and 0 <= conv_drop_rate < 1,
                  f"conv_drop_rate must be in [0, 1), got {conv_drop_rate!r}")
        self.num_classes = num_classes
        if stem == "imagenet":
            self.conv = ConvNormAct(in_chans, stem_chs, 7, 2)
            self.pool = nn.MaxPool2d(3, 2, 1)
            self.feature_info = [dict(module="conv", reduction=2, channels=stem_chs)]
            reduction = 4
        else:
            self.conv = nn.Conv2d(in_chans, stem_chs, 3, 1, 1, bias=False)
            self.pool = nn.Identity()
            self.feature_info, reduction = [], 1
        # Table 1's rows: Dense Block (1), Transition Layer (1), ..., Dense Block (4)
        self.stages, c = ["conv", "pool"], stem_chs
        for i, n in enumerate(block_layers, 1):
            block = DenseBlock(n, c, growth_rate, bottleneck, 4, conv_drop_rate,
                               memory_efficient)
            self.add_module(f"block{i}", block)
            self.stages.append(f"block{i}")
            c = block.out_channels
            if i < len(block_layers):
                self.feature_info.append(dict(module=f"block{i}", reduction=reduction,
                                              channels=c))
                self.add_module(f"transition{i}", Transition(c, int(c * compression),
                                                             conv_drop_rate))
                self.stages.append(f"transition{i}")
                c, reduction = int(c * compression), reduction * 2
        self.final_act = nn.Sequential(OrderedDict(bn=nn.BatchNorm2d(c), act=nn.ReLU(True)))
        self.feature_info.append(dict(module="final_act", reduction=reduction, channels=c))
        self.head = ClassifierHead(c, num_classes, drop_rate=drop_rate)
        # each transition's 2x2 pool needs two pixels; the stem divides by 4
        self.min_input_size = (2 ** (len(block_layers) - 1) - 1) * 4 + 1 \
            if stem == "imagenet" else 2 ** (len(block_layers) - 1)

    def forward_features(self, x):
        for name in self.stages:
            x = getattr(self, name)(x)
        return self.final_act(x)


def densenet_imagenet(depth, num_classes=1000, in_chans=3, drop_rate=0.0, conv_drop_rate=0.0,
                      memory_efficient=False):
    k, stem, layers = IMAGENET[depth]
    return DenseNet(layers, k, stem, True, 0.5, "imagenet", num_classes, in_chans, drop_rate,
                    conv_drop_rate, memory_efficient)


def densenet_cifar(bc, depth, k, num_classes=10, in_chans=3, drop_rate=0.0, conv_drop_rate=0.0,
                   memory_efficient=False):
    n = (depth - 4) // (6 if bc else 3)
    return DenseNet([n] * 3, k, 2 * k if bc else 16, bc, 0.5 if bc else 1.0, "cifar",
                    num_classes, in_chans, drop_rate, conv_drop_rate, memory_efficient)


for _depth, (_k, _, _layers) in IMAGENET.items():
    _params, _top1 = IMAGENET_REFS[_depth]
    register_model(densenet_imagenet, name=f"densenet{_depth}", fixed={"depth": _depth},
                   paper=DENSENET, reference={"params": _params, "top1": _top1,
                                              "table": "Table 1 (layout), Table 3 (top-1)"},
                   doc=f"DenseNet-{_depth} (k = {_k}) for ImageNet (Huang et al. 2017, "
                       f"Table 1): dense blocks of {_layers} layers.")
for (_bc, _depth, _k), _params in CIFAR.items():
    register_model(densenet_cifar, name=f"densenet_{'bc_' if _bc else ''}{_depth}_{_k}",
                   fixed={"bc": _bc, "depth": _depth, "k": _k}, paper=DENSENET,
                   input_size=(3, 32, 32), num_classes=10,
                   reference={"params": _params, "table": "Table 2"},
                   doc=f"{'DenseNet-BC' if _bc else 'DenseNet'} (L = {_depth}, k = {_k}) for "
                       f"CIFAR (Huang et al. 2017, Table 2): three dense blocks of "
                       f"{(_depth - 4) // (6 if _bc else 3)} layers; conv_drop_rate=0.2 as "
                       "trained without augmentation.")
