"""BN-Inception (Ioffe & Szegedy 2015) and Inception v3 (Szegedy et al. 2016).

BN-Inception, Fig. 5: GoogLeNet with batch norm after every convolution, each 5×5 replaced by
two 3×3 (the "double 3×3" branch), average pooling in most modules, and grid reduction inside
modules (3c), (4e): stride-2 convolutions beside a max pool that passes through.

Inception v3, Table 1 and Figs. 5–7, 10: factorised convolutions (5×5 → two 3×3, n×n → 1×n
then n×1 with n = 7 on the 17×17 grid, 3×3 → 1×3 and 3×1 side by side on the 8×8 grid to
widen the output), grid reduction by a stride-2 convolution beside a pool (Fig. 10), an
auxiliary classifier with batch norm on the 17×17 grid. Built as the authors released it
(TF-slim ``inception_v3``), which is what 23.8 M / 5.72 B count.

Releases (:mod:`cnnlab.layers.release`): ``"torchvision"`` is torchvision's
``inception_v3``, whose pool branches count the zero padding in the 3×3 average (PyTorch's
default). The paper network, like TF-slim's release, averages the real pixels only; the
torchvision variant exists so its weights compute its function. (torchvision's pretrained
model also rescales its input with ``transform_input=True``: normalise for it yourself.)
"""

from __future__ import annotations

from collections import OrderedDict

import torch
import torch.nn as nn
import torch.nn.functional as F

from cnnlab.layers.inception import BasicConv, Branches, conv, googlenet_module, make_branch, pool
from cnnlab.layers.release import Release
from cnnlab.models.base import AuxHeadNet, ClassifierHead, ConvNet, FCHead
from cnnlab.registry import Paper, register_model

RELEASES = {"torchvision": Release("torchvision", "pool branches average over the padding too",
                                   pool_include_pad=True, models=("inception_v3",))}
BN_INCEPTION = Paper("Batch Normalization: Accelerating Deep Network Training by Reducing "
                     "Internal Covariate Shift", "Ioffe, Szegedy", 2015, "1502.03167")
INCEPTION_V3 = Paper("Rethinking the Inception Architecture for Computer Vision",
                     "Szegedy, Vanhoucke, Ioffe, Shlens, Wojna", 2016, "1512.00567")

# BN-Inception, Fig. 5: #1×1, #3×3 reduce, #3×3, double #3×3 reduce, double #3×3, pool, proj.
# (3c) and (4e) have stride 2 and pass the max pool through (their outputs are 14×14×576 and
# 7×7×1024; the figure prints the input grid). (4c) and (4d) project their pool to 96 maps as
# in the released TF-slim network, which gives the figure's 576-map outputs and NASNet's
# 11.2 M / 1.94 B; the Caffe port projects to 128 (608 maps, 11.29 M).
BN_INCEPTION_MODULES = OrderedDict([
    ("3a", (64, 64, 64, 64, 96, "avg", 32)),
    ("3b", (64, 64, 96, 64, 96, "avg", 64)),
    ("3c", (0, 128, 160, 64, 96, "max", "pass")),
    ("4a", (224, 64, 96, 96, 128, "avg", 128)),
    ("4b", (192, 96, 128, 96, 128, "avg", 128)),
    ("4c", (160, 128, 160, 128, 160, "avg", 96)),
    ("4d", (96, 128, 192, 160, 192, "avg", 96)),
    ("4e", (0, 128, 192, 192, 256, "max", "pass")),
    ("5a", (352, 192, 320, 160, 224, "avg", 128)),
    ("5b", (352, 192, 320, 192, 224, "max", 128)),
])


# Inception v3 modules. Fig. 5 (35×35): the released network keeps a 5×5 branch beside the
# double 3×3 one.
def fig5(pool_proj):
    return {"branch1x1": [conv(64, 1)],
            "branch5x5": [conv(48, 1), conv(64, 5)],
            "branch3x3dbl": [conv(64, 1), conv(96, 3), conv(96, 3)],
            "branch_pool": [pool("avg"), conv(pool_proj, 1)]}


def fig6(c7):  # 17×17, n = 7
    return {"branch1x1": [conv(192, 1)],
            "branch7x7": [conv(c7, 1), conv(c7, (1, 7)), conv(192, (7, 1))],
            "branch7x7dbl": [conv(c7, 1), conv(c7, (7, 1)), conv(c7, (1, 7)),
                             conv(c7, (7, 1)), conv(192, (1, 7))],
            "branch_pool": [pool("avg"), conv(192, 1)]}


def _split(c):
    return {"1x3": [conv(c, (1, 3))], "3x1": [conv(c, (3, 1))]}


FIG7 = {"branch1x1": [conv(320, 1)],  # 8×8, the expanded filter bank outputs
        "branch3x3": [conv(384, 1), _split(384)],
        "branch3x3dbl": [conv(448, 1), conv(384, 3), _split(384)],
        "branch_pool": [pool("avg"), conv(192, 1)]}
# Fig. 10: stride-2 convolutions beside a stride-2 max pool, 35 -> 17 and 17 -> 8
REDUCE_35 = {"branch3x3": [conv(384, 3, s=2)],
             "branch3x3dbl": [conv(64, 1), conv(96, 3), conv(96, 3, s=2)],
             "branch_pool": [pool("max", s=2)]}
REDUCE_17 = {"branch3x3": [conv(192, 1), conv(320, 3, s=2)],
             "branch7x7x3": [conv(192, 1), conv(192, (1, 7)), conv(192, (7, 1)),
                             conv(192, 3, s=2)],
             "branch_pool": [pool("max", s=2)]}

# Table 1 as released: the stem (its "conv padded" is conv2b; the released network puts a
# 1×1 conv 80 where the table has 3×3 convs 80 and 192/2), then 3 × Fig. 5, the 35 -> 17
# reduction, 4 × Fig. 6 (the table's "5 × Inception" counts the reduction), the 17 -> 8
# reduction and 2 × Fig. 7.
V3_STEM = [("conv1a", conv(32, 3, s=2)), ("conv2a", conv(32, 3, p=0)), ("conv2b", conv(64, 3)),
           ("pool1", pool("max", s=2)), ("conv3b", conv(80, 1)), ("conv4a", conv(192, 3, p=0)),
           ("pool2", pool("max", s=2))]
V3_BLOCKS = [("mixed5b", fig5(32)), ("mixed5c", fig5(64)), ("mixed5d", fig5(64)),
             ("mixed6a", REDUCE_35),
             ("mixed6b", fig6(128)), ("mixed6c", fig6(160)), ("mixed6d", fig6(160)),
             ("mixed6e", fig6(192)),
             ("mixed7a", REDUCE_17), ("mixed7b", FIG7), ("mixed7c", FIG7)]
V3_AUX_AFTER = "mixed6e"


class BNInception(ConvNet):
    min_input_size = 7

    def __init__(self, num_classes=1000, in_chans=3, drop_rate=0.0, separable_stem=False):
        super().__init__()
        self.num_classes = num_classes
        if separable_stem:  # depthwise 7×7 with depth multiplier 8, then 1×1 (TF-slim v2)
            conv1 = nn.Sequential(OrderedDict(
                dw=nn.Conv2d(in_chans, in_chans * 8, 7, 2, 3, groups=in_chans, bias=False),
                pw=BasicConv(in_chans * 8, 64, 1, eps=1e-5)))
        else:
            conv1 = BasicConv(in_chans, 64, 7, 2, 3, eps=1e-5)
        layers = OrderedDict(
            conv1=conv1, pool1=nn.MaxPool2d(3, 2, ceil_mode=True),
            conv2=nn.Sequential(OrderedDict(reduce=BasicConv(64, 64, 1, eps=1e-5),
                                            conv=BasicConv(64, 192, 3, eps=1e-5))),
            pool2=nn.MaxPool2d(3, 2, ceil_mode=True))
        self.feature_info = [dict(module="features.conv1", reduction=2, channels=64),
                             dict(module="features.conv2", reduction=4, channels=192)]
        c, last = 192, "features.pool2"
        for name, (c1, c3r, c3, d3r, d3, pool_kind, proj) in BN_INCEPTION_MODULES.items():
            stride = 2 if proj == "pass" else 1
            if stride == 2:
                self.feature_info.append(dict(module=last, channels=c,
                                              reduction=2 ** (len(self.feature_info) + 1)))
            spec = googlenet_module(c1, c3r, c3, d3r, d3, proj, double_3x3=True,
                                    pool_kind=pool_kind, stride=stride)
            layers[f"inception{name}"] = m = Branches(c, spec, _bn_conv)
            c, last = m.out_channels, f"features.inception{name}"
        self.feature_info.append(dict(module="features.inception5b", reduction=32, channels=c))
        self.features = nn.Sequential(layers)
        self.head = ClassifierHead(c, num_classes, drop_rate=drop_rate)

    def forward_features(self, x):
        return self.features(x)


def _bn_conv(in_chs, out_chs, kernel_size, stride=1, padding=None):
    return BasicConv(in_chs, out_chs, kernel_size, stride, padding, eps=1e-5)


class AuxHeadV3(nn.Module):
    """Sec. 7's BN-auxiliary classifier on the 17×17 grid: 5×5/3 average pool, 1×1 conv 128,
    5×5 conv 768 over the remaining 5×5 map (both with BN), linear classifier."""

    def __init__(self, in_chs: int, num_classes: int):
        super().__init__()
        self.conv0 = BasicConv(in_chs, 128, 1)
        self.conv1 = BasicConv(128, 768, 5, padding=0)
        self.fc = nn.Linear(768, num_classes)

    def forward(self, x):
        if min(x.shape[-2:]) >= 5:
            x = F.avg_pool2d(x, 5, 3)
        x = F.adaptive_avg_pool2d(x, 5)  # identity at 299 px; lets smaller inputs run
        return self.fc(torch.flatten(self.conv1(self.conv0(x)), 1))


class InceptionV3(AuxHeadNet):
    """With ``aux_logits=True`` training mode returns ``(main, aux)``."""

    min_input_size = 75

    def __init__(self, num_classes=1000, in_chans=3, drop_rate=0.2, aux_logits=False,
                 fc_layers=False):
        super().__init__()
        self.num_classes = num_classes
        self.aux_loss_weight = 0.4  # TF-slim's weight for the auxiliary loss
        layers, c = OrderedDict(), in_chans
        for name, step in V3_STEM:
            layers[name], c = make_branch(c, [step])
        for name, spec in V3_BLOCKS:
            layers[name] = m = Branches(c, spec)
            c = m.out_channels
            if name == V3_AUX_AFTER:
                aux_chs = c
        self.features = nn.Sequential(layers)
        self.feature_info = [dict(module="features.conv2b", reduction=2, channels=64),
                             dict(module="features.conv4a", reduction=4, channels=192),
                             dict(module="features.mixed5d", reduction=8, channels=288),
                             dict(module="features.mixed6e", reduction=16, channels=768),
                             dict(module="features.mixed7c", reduction=32, channels=c)]
        self.aux = AuxHeadV3(aux_chs, num_classes) if aux_logits else None
        self.head = FCHead(c, num_classes, drop_rate=drop_rate) if fc_layers else \
            ClassifierHead(c, num_classes, drop_rate=drop_rate)

    def reset_classifier(self, num_classes: int) -> None:
        super().reset_classifier(num_classes)
        if self.aux is not None:
            self.aux.fc = nn.Linear(768, num_classes, device=self.aux.fc.weight.device)

    def forward_features(self, x, aux_out: list | None = None):
        for name, layer in self.features.named_children():
            x = layer(x)
            if aux_out is not None and name == V3_AUX_AFTER:
                aux_out.append(self.aux(x))
        return x


@register_model(paper=BN_INCEPTION, reference={
    "params": "11.2M", "macs": "1.94B", "exact_macs": "1.935G",
    "note": "NASNet prints 1.94 B; the network (TF-slim's, 1000 classes) counts 1,934.9 M "
            "mult-adds. With a plain 7x7 conv1 (the default) it is 2.02 G",
    "table": "NASNet (Zoph et al. 2018) Table 2", "top1": 74.8, "top5": 92.2,
    "kwargs": {"separable_stem": True}})
def bn_inception(num_classes=1000, in_chans=3, drop_rate=0.0, separable_stem=False):
    """BN-Inception ("Inception v2", Fig. 5). ``separable_stem=True`` makes conv1 the
    depth-multiplier-8 separable convolution of the released TF-slim network."""
    return BNInception(num_classes, in_chans, drop_rate, separable_stem)


_V3_REFS = [
    {"params": "23.8M", "macs": "5.72B", "exact_macs": "5.71G",
     "note": "NASNet Table 2 prints 5.72 B; the released network counts 5,713 M at 299 px",
     "table": "NASNet (Zoph et al. 2018) Table 2", "top1": 78.0, "top5": 93.9},
    {"params": 23_626_728, "exact_params": 23_834_568, "table": "Xception (Chollet 2017) Table 3",
     "note": "Xception's 23,626,728 is not the released network's count: without its auxiliary "
             "head it has 23,834,568 (27,161,264 with it)"},
]


@register_model(paper=INCEPTION_V3, input_size=(3, 299, 299), reference=_V3_REFS)
def inception_v3(num_classes=1000, in_chans=3, drop_rate=0.2, aux_logits=False):
    """Inception v3 as released (Table 1, Figs. 5–7, 10). ``aux_logits=True`` adds the
    BN-auxiliary classifier (Sec. 7), returned in training mode only as ``(main, aux)``."""
    return InceptionV3(num_classes, in_chans, drop_rate, aux_logits)


@register_model(paper=INCEPTION_V3, input_size=(3, 299, 299))
def inception_v3_fc(num_classes=1000, in_chans=3, drop_rate=0.0, aux_logits=False):
    """Inception v3 "with FC layers", the baseline of Xception's JFT comparison (Chollet 2017,
    Table 2, Sec. 4.5): two fully connected layers of 4096 units before the classifier, no
    auxiliary tower by default. JFT has 17,000 classes: ``num_classes=17000``."""
    return InceptionV3(num_classes, in_chans, drop_rate, aux_logits, fc_layers=True)
