"""GoogLeNet (Szegedy et al. 2014, "Going Deeper with Convolutions"), Table 1 and Fig. 3.

Nine Inception modules: parallel 1×1, 3×3 and 5×5 convolutions and a 3×3 max pool, with 1×1
"reduce" convolutions in front of the expensive ones (Fig. 2b), concatenated. Convolutions
carry biases and ReLU (no batch norm: it came a year later); local response normalisation
follows the first pool and the second convolution (Fig. 3). The head is a 7×7 average pool,
40 % dropout and one linear layer. Two auxiliary classifiers on (4a) and (4d) (Sec. 5: 5×5/3
average pool, 1×1 conv 128, FC 1024, 70 % dropout, linear) add 0.3 × their loss in training.
"""

from __future__ import annotations

from collections import OrderedDict
from functools import partial

import torch
import torch.nn as nn
import torch.nn.functional as F

from cnnlab.layers.inception import BasicConv, Branches, googlenet_module
from cnnlab.models.base import AuxHeadNet, ClassifierHead
from cnnlab.registry import Paper, register_model

GOOGLENET = Paper("Going Deeper with Convolutions", "Szegedy, Liu, Jia, Sermanet, Reed, "
                  "Anguelov, Erhan, Vanhoucke, Rabinovich", 2014, "1409.4842")

# Table 1, the Inception rows: #1×1, #3×3 reduce, #3×3, #5×5 reduce, #5×5, pool proj, and the
# printed params / ops columns. The ops column is the modules' mult-adds (biases left out) to
# the printed unit, except (5a): 51.1 M, printed 54M. The params column is not a count of the
# layers: conv1's "2.7K" is 7·7·3·8 + 24·64 = 2,712, a depthwise-separable stem (depth
# multiplier 8), not the 7×7 convolution's 9,408 weights; (3a) prints 159K for 163,696.
INCEPTION = OrderedDict([
    ("3a", (64, 96, 128, 16, 32, 32, "159K", "128M")),
    ("3b", (128, 128, 192, 32, 96, 64, "380K", "304M")),
    ("4a", (192, 96, 208, 16, 48, 64, "364K", "73M")),
    ("4b", (160, 112, 224, 24, 64, 64, "437K", "88M")),
    ("4c", (128, 128, 256, 24, 64, 64, "463K", "100M")),
    ("4d", (112, 144, 288, 32, 64, 64, "580K", "119M")),
    ("4e", (256, 160, 320, 32, 128, 128, "840K", "170M")),
    ("5a", (256, 160, 320, 32, 128, 128, "1072K", "54M")),
    ("5b", (384, 192, 384, 48, 128, 128, "1388K", "71M")),
])
MAX_POOL_AFTER = {"3b", "4e"}  # "max pool 3×3/2" rows of Table 1
AUX_AFTER = ("4a", "4d")
AUX_LOSS_WEIGHT = 0.3

_conv = partial(BasicConv, norm=False)  # convolution with bias, then ReLU


def _max_pool():
    return nn.MaxPool2d(3, 2, ceil_mode=True)  # Caffe rounds up: 112 -> 56 -> 28 -> 14 -> 7


def _lrn():
    return nn.LocalResponseNorm(5, alpha=1e-4, beta=0.75)


class AuxClassifier(nn.Module):
    """Sec. 5: 5×5/3 average pool (14×14 -> 4×4), 1×1 conv 128 + ReLU, FC 1024 + ReLU,
    70 % dropout, linear classifier."""

    def __init__(self, in_chs: int, num_classes: int, drop_rate: float = 0.7):
        super().__init__()
        self.conv = _conv(in_chs, 128, 1)
        self.fc1 = nn.Linear(128 * 4 * 4, 1024)
        self.drop = nn.Dropout(drop_rate)
        self.fc2 = nn.Linear(1024, num_classes)

    def forward(self, x):
        if min(x.shape[-2:]) >= 5:
            x = F.avg_pool2d(x, 5, 3)
        x = F.adaptive_avg_pool2d(x, 4)  # identity at the paper's 224 px; lets smaller run
        x = torch.flatten(self.conv(x), 1)
        return self.fc2(self.drop(F.relu(self.fc1(x), inplace=True)))


class GoogLeNet(AuxHeadNet):
    """Table 1's network; with ``aux_logits=True`` training mode returns ``(main, aux1,
    aux2)`` (the heads after 4a and 4d)."""

    min_input_size = 31

    def __init__(self, num_classes=1000, in_chans=3, drop_rate=0.4, aux_logits=False):
        super().__init__()
        self.num_classes = num_classes
        self.aux_loss_weight = AUX_LOSS_WEIGHT
        layers = OrderedDict(
            conv1=_conv(in_chans, 64, 7, 2, 3), pool1=_max_pool(), norm1=_lrn(),
            conv2=nn.Sequential(OrderedDict(reduce=_conv(64, 64, 1), conv=_conv(64, 192, 3))),
            norm2=_lrn(), pool2=_max_pool())
        self.feature_info = [dict(module="features.conv1", reduction=2, channels=64),
                             dict(module="features.conv2", reduction=4, channels=192)]
        c = 192
        for name, row in INCEPTION.items():
            layers[f"inception{name}"] = m = Branches(c, googlenet_module(*row[:6]), _conv)
            c = m.out_channels
            if name in MAX_POOL_AFTER or name == "5b":
                self.feature_info.append(dict(module=f"features.inception{name}",
                                              reduction=2 ** (len(self.feature_info) + 1),
                                              channels=c))
            if name in MAX_POOL_AFTER:
                layers[f"pool{len(self.feature_info)}"] = _max_pool()
        self.features = nn.Sequential(layers)
        self.aux = nn.ModuleDict({
            n: AuxClassifier(getattr(self.features, f"inception{n}").out_channels, num_classes)
            for n in AUX_AFTER}) if aux_logits else None
        self.head = ClassifierHead(c, num_classes, drop_rate=drop_rate)

    def reset_classifier(self, num_classes: int) -> None:
        super().reset_classifier(num_classes)
        if self.aux is not None:
            for aux in self.aux.values():
                aux.fc2 = nn.Linear(aux.fc2.in_features, num_classes,
                                    device=aux.fc2.weight.device)

    def forward_features(self, x, aux_out: list | None = None):
        for name, layer in self.features.named_children():
            x = layer(x)
            row = name.removeprefix("inception")
            if aux_out is not None and row in AUX_AFTER:
                aux_out.append(self.aux[row](x))
        return x


_NOTE = ("Table 1's params column is approximate (conv1's 2.7K is a separable 7x7, the real "
         "convolution has 9,408 weights; (3a) prints 159K for 163,696); summed it gives 6.8M. "
         "The paper's network (real 5x5 convolutions, biases, no BN) has 6,998,552 params and "
         "1.58 G mult-adds; MobileNets Table 8 prints 6.8 M / 1550 M")


@register_model(paper=GOOGLENET, reference={
    "params": "6.8M", "macs": "1550M", "exact_params": 6_998_552, "exact_macs": "1.58G",
    "table": "Table 1; MobileNets Table 8", "note": _NOTE, "top1": 69.8})
def googlenet(num_classes=1000, in_chans=3, drop_rate=0.4, aux_logits=False):
    """GoogLeNet (Table 1). ``aux_logits=True`` adds the two auxiliary classifiers (Sec. 5),
    returned in training mode only as ``(main, aux1, aux2)``; weight their losses by
    ``model.aux_loss_weight`` (0.3)."""
    return GoogLeNet(num_classes, in_chans, drop_rate, aux_logits)
