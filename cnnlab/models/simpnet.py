"""SimpNet (Hasanpour, Rouhani, Fayyaz, Sabokrou, Adeli 2018), the successor of SimpleNet.

A plain 13-layer stack of 3×3 convolutions (conv → BN → ReLU), grouped into three
homogeneous groups; widths grow gradually ("gradual expansion with minimum allocation").
Down-sampling is late and by 2×2 max pooling followed by dropout, the paper's SAF-pooling
("simple adaptive feature composition pooling"); dropout follows every other layer too.
Global max pooling and one linear layer classify. Widths and dropout rates are the authors'
released CIFAR-10 models (Caffe): the 5.48 M network and the slimmed 300K / 600K ones of
Table S3 / XV.
"""

from __future__ import annotations

from collections import OrderedDict

import torch.nn as nn

from cnnlab.layers import ConvNormAct
from cnnlab.models.base import ClassifierHead, ConvNet, check_arg
from cnnlab.registry import Paper, register_model

SIMPNET = Paper("Towards Principled Design of Deep Convolutional Networks: Introducing SimpNet",
                "Hasanpour, Rouhani, Fayyaz, Sabokrou, Adeli", 2018, "1802.06205")

# Three groups of 3×3 convolution widths; a 2×2/2 max pool (then dropout) ends groups 1 and 2.
# Dropout: (rate in groups 1–2, rate in group 3 and before the classifier).
CONFIGS = {
    "5m": ([66, 128, 128, 128, 192], [192, 192, 192, 192, 288], [288, 355, 432], (0.2, 0.3)),
    "600k": ([40, 60, 60, 60, 72], [73, 73, 73, 75, 81], [82, 90, 120], (0.1, 0.2)),
    "300k": ([30, 40, 40, 40, 50], [50, 50, 50, 50, 58], [58, 70, 90], (0.0, 0.0)),
}


def _drop(rate):
    return nn.Dropout(rate) if rate > 0 else nn.Identity()


class SimpNet(ConvNet):
    min_input_size = 4

    def __init__(self, groups, num_classes=10, in_chans=3, drop_rate=0.3, drop_rate_early=0.2):
        super().__init__()
        check_arg(0 <= drop_rate < 1 and 0 <= drop_rate_early < 1,
                  "dropout rates must be in [0, 1)")
        self.num_classes = num_classes
        layers, c, n, self.feature_info = OrderedDict(), in_chans, 0, []

        def rate(group):
            return drop_rate_early if group < len(groups) else drop_rate

        for g, widths in enumerate(groups, 1):
            for i, w in enumerate(widths):
                n += 1
                # the conv keeps its bias in the released Caffe models (BN + Scale follow)
                layers[f"conv{n}"] = ConvNormAct(c, w, 3, bias=True)
                c = w
                if i < len(widths) - 1:
                    layers[f"drop{n}"] = _drop(rate(g))
                elif g < len(groups):  # SAF-pooling: max pool, then the next group's dropout
                    self.feature_info.append(dict(module=f"features.conv{n}",
                                                  reduction=2 ** (g - 1), channels=c))
                    layers[f"pool{g}"] = nn.MaxPool2d(2, 2)
                    layers[f"drop{n}"] = _drop(rate(g + 1))
        # the last layer's dropout follows the global pool, in the head
        self.feature_info.append(dict(module=f"features.conv{n}",
                                      reduction=2 ** (len(groups) - 1), channels=c))
        self.features = nn.Sequential(layers)
        self.head = ClassifierHead(c, num_classes, pool="max", drop_rate=drop_rate)

    def forward_features(self, x):
        return self.features(x)


def _simpnet(cfg, num_classes, in_chans, drop_rate, drop_rate_early):
    *groups, (early, late) = CONFIGS[cfg]
    return SimpNet(groups, num_classes, in_chans,
                   late if drop_rate is None else drop_rate,
                   early if drop_rate_early is None else drop_rate_early)


@register_model(paper=SIMPNET, input_size=(3, 32, 32), num_classes=10, reference={
    "params": "5.4M", "exact_params": 5_478_223,
    "note": "the authors' results table truncates the released 13-layer network's 5,478,223 "
            "parameters to 5.4 M", "table": "SimpNet results table (authors' release)",
    "top1": 95.69})
def simpnet(num_classes=10, in_chans=3, drop_rate=None, drop_rate_early=None):
    """The 13-layer SimpNet for CIFAR-10 (5.48 M parameters). Dropout defaults to the
    released rates (0.2 in groups 1–2, 0.3 after)."""
    return _simpnet("5m", num_classes, in_chans, drop_rate, drop_rate_early)


@register_model(paper=SIMPNET, input_size=(3, 32, 32), num_classes=10, reference={
    "params": "600K", "exact_params": 601_021,
    "note": "600K is a round figure: the released model has 601,021 parameters",
    "table": "Table S3 / XV (slimmed SimpNet)", "top1": 94.03})
def simpnet_slim_600k(num_classes=10, in_chans=3, drop_rate=None, drop_rate_early=None):
    """Slimmed SimpNet, ~600K parameters (same 13 layers, thinner; dropout 0.1 / 0.2)."""
    return _simpnet("600k", num_classes, in_chans, drop_rate, drop_rate_early)


@register_model(paper=SIMPNET, input_size=(3, 32, 32), num_classes=10, reference={
    "params": "300K", "exact_params": 300_964,
    "note": "300K is a round figure: the released model has 300,964 parameters (299,612 "
            "without BN's scale and shift)", "table": "Table S3 / XV (slimmed SimpNet)",
    "top1": 93.25})
def simpnet_slim_300k(num_classes=10, in_chans=3, drop_rate=None, drop_rate_early=None):
    """Slimmed SimpNet, ~300K parameters (same 13 layers, thinner; no dropout)."""
    return _simpnet("300k", num_classes, in_chans, drop_rate, drop_rate_early)
