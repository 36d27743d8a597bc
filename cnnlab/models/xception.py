"""Xception (Chollet 2017), Fig. 5: entry flow, middle flow repeated eight times, exit flow.

The "extreme Inception" hypothesis: cross-channel and spatial correlations can be mapped
entirely separately, so every Inception module becomes a depthwise separable convolution
(depthwise k×k, then pointwise 1×1, no nonlinearity in between). 36 convolutional layers in
14 modules, all with linear residual connections except the first and last; every
convolution is followed by batch normalisation.

Releases (:mod:`cnnlab.layers.release`): ``"tf"`` is Chollet's Keras ``Xception``:
BatchNorm eps 1e-3 (Keras momentum 0.99) and TF-style "SAME" max pools, which pad only after
on even inputs (74 → 37 at 299 px) where the paper network pads both sides; same parameters.
timm's ``legacy_xception`` (a PyTorch port of the Keras weights) keeps PyTorch's BN eps 1e-5
and symmetric pool padding: its weights compute its function in the paper network
(``release="paper"``), which the live parity check confirms; with ``"tf"`` they differ by
~4e-4 relative.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

import torch.nn as nn

from cnnlab.layers import ConvNormAct, SeparableConv2d
from cnnlab.layers.release import Release
from cnnlab.models.base import ClassifierHead, ConvNet, FCHead
from cnnlab.registry import Paper, register_model

XCEPTION = Paper("Xception: Deep Learning with Depthwise Separable Convolutions", "Chollet",
                 2017, "1610.02357")


RELEASES = {"tf": Release("tf", "Keras: BN eps 1e-3, TF SAME max pools", bn_eps=1e-3,
                          bn_momentum=0.01, same="pool")}


@dataclass(frozen=True)
class Block:
    widths: tuple[int, ...]  # output channels of each SeparableConv in the block
    stride: int  # 2: ends with a 3×3/2 max pool, the shortcut is a 1×1/2 convolution
    relu_first: bool = True  # the entry flow's first block starts right after a ReLU


# Fig. 5
STEM = [(32, 2), (64, 1)]  # Conv 3×3 (filters, stride), no padding: 299 → 149 → 147
ENTRY = [
    Block((128, 128), 2, relu_first=False),
    Block((256, 256), 2),
    Block((728, 728), 2),
]
MIDDLE = [Block((728, 728, 728), 1)] * 8  # "repeated 8 times"
EXIT = [Block((728, 1024), 2)]
EXIT_CONVS = (1536, 2048)  # SeparableConv + ReLU each, then global average pooling


class XceptionBlock(nn.Module):
    """[ReLU → SeparableConv 3×3 → BN] per width, then max pool 3×3/2 if strided; plus a
    shortcut: identity, or 1×1 conv (stride 2) + BN where the shape changes."""

    def __init__(self, in_chs: int, block: Block):
        super().__init__()
        layers, c = OrderedDict(), in_chs
        for i, w in enumerate(block.widths, 1):
            if i > 1 or block.relu_first:
                # the input's own ReLU must not run in place: the shortcut reads the input
                layers[f"act{i}"] = nn.ReLU(inplace=i > 1)
            layers[f"sep{i}"] = SeparableConv2d(c, w)
            layers[f"bn{i}"] = nn.BatchNorm2d(w)
            c = w
        if block.stride == 2:
            layers["pool"] = nn.MaxPool2d(3, 2, padding=1)
        self.body = nn.Sequential(layers)
        self.shortcut = nn.Identity() if block.stride == 1 and c == in_chs else \
            ConvNormAct(in_chs, c, 1, block.stride, act=None)
        self.out_channels = c

    def forward(self, x):
        return self.body(x) + self.shortcut(x)


class Xception(ConvNet):
    min_input_size = 7

    def __init__(self, num_classes=1000, in_chans=3, drop_rate=0.5, fc_layers=False):
        super().__init__()
        self.num_classes = num_classes
        layers, c = OrderedDict(), in_chans
        for i, (w, s) in enumerate(STEM, 1):
            layers[f"conv{i}"] = ConvNormAct(c, w, 3, s, padding=0)
            c = w
        self.add_feature("features.conv2", 2, c)
        reduction = 2
        flows = [("entry", ENTRY), ("middle", MIDDLE), ("exit", EXIT)]
        for flow, blocks in flows:
            for i, block in enumerate(blocks, 1):
                name = f"{flow}{i}"
                layers[name] = XceptionBlock(c, block)
                c = layers[name].out_channels
                reduction *= block.stride
                self.add_feature(f"features.{name}", reduction, c)
        for i, w in enumerate(EXIT_CONVS, 1):
            layers[f"exit_sep{i}"] = nn.Sequential(OrderedDict(
                sep=SeparableConv2d(c, w), bn=nn.BatchNorm2d(w), act=nn.ReLU(inplace=True)))
            c = w
        self.add_feature(f"features.exit_sep{len(EXIT_CONVS)}", reduction, c)
        self.features = nn.Sequential(layers)
        # "optionally fully-connected layers" (Fig. 5): the ImageNet model has none, only
        # dropout 0.5 before the logistic regression layer (Sec. 4, regularization)
        self.head = FCHead(c, num_classes, drop_rate=drop_rate) if fc_layers else \
            ClassifierHead(c, num_classes, drop_rate=drop_rate)

    def forward_features(self, x):
        return self.features(x)


@register_model(paper=XCEPTION, input_size=(3, 299, 299), reference=[
    {"params": 22_855_952, "table": "Table 3", "top1": 79.0, "top5": 94.5},
    {"macs": "8.4B", "table": "not printed in the paper (the commonly cited 8.4 B)"},
])
def xception(num_classes=1000, in_chans=3, drop_rate=0.5):
    """Xception (Fig. 5) at 299×299: 22,855,952 parameters (Table 3) and 8.36 B mult-adds
    (8.38 B where a counter folds batch norm in as one mult-add per element)."""
    return Xception(num_classes, in_chans, drop_rate)


@register_model(paper=XCEPTION, input_size=(3, 299, 299))
def xception_fc(num_classes=1000, in_chans=3, drop_rate=0.0):
    """Xception "with FC layers" (Table 2, JFT): two fully connected layers of 4096 units
    before the logistic regression layer (Sec. 4.5; no dropout on JFT, Sec. 4.3). JFT has
    17,000 classes: ``num_classes=17000``."""
    return Xception(num_classes, in_chans, drop_rate, fc_layers=True)
