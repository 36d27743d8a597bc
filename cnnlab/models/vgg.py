"""VGG (Simonyan & Zisserman 2015), Table 1: configurations A–E.

Stacks of 3×3 convolutions (stride 1, padding 1) and 2×2 max pools, then FC-4096, FC-4096,
FC-1000 with dropout 0.5. A-LRN adds local response normalisation after the first layer;
C has 1×1 convolutions (``conv1-N``, written ``(1, N)`` below).
"""

from __future__ import annotations

from collections import OrderedDict

import torch.nn as nn

from cnnlab.models.base import ClassifierHead, ConvNet
from cnnlab.registry import Paper, register_model

VGG = Paper("Very Deep Convolutional Networks for Large-Scale Image Recognition",
            "Simonyan, Zisserman", 2015, "1409.1556")

# Table 1: N = conv3-N, (1, N) = conv1-N, "M" = maxpool, "LRN" = local response norm
CFGS = {
    "A": [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "A-LRN": [64, "LRN", "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "B": [64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "C": [64, 64, "M", 128, 128, "M", 256, 256, (1, 256), "M", 512, 512, (1, 512), "M",
          512, 512, (1, 512), "M"],
    "D": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M",
          512, 512, 512, "M"],
    "E": [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M",
          512, 512, 512, 512, "M"],
}


class VGGNet(ConvNet):
    min_input_size = 32

    def __init__(self, cfg, num_classes=1000, in_chans=3, batch_norm=False, drop_rate=0.5):
        super().__init__()
        self.num_classes = num_classes
        layers, c, n, self.feature_info = OrderedDict(), in_chans, 0, []
        for v in cfg:
            if v == "M":
                layers[f"pool{len(self.feature_info) + 1}"] = nn.MaxPool2d(2, 2)
                self.feature_info.append(dict(
                    module=f"features.pool{len(self.feature_info) + 1}",
                    reduction=2 ** (len(self.feature_info) + 1), channels=c))
            elif v == "LRN":
                layers["lrn"] = nn.LocalResponseNorm(5, alpha=1e-4, beta=0.75, k=2.0)
            else:
                k, out = v if isinstance(v, tuple) else (3, v)
                n += 1
                layers[f"conv{n}"] = nn.Conv2d(c, out, k, padding=k // 2)
                if batch_norm:
                    layers[f"bn{n}"] = nn.BatchNorm2d(out)
                layers[f"relu{n}"] = nn.ReLU(inplace=True)
                c = out
        self.features = nn.Sequential(layers)
        self.pool = nn.AdaptiveAvgPool2d(7)  # identity at 224 px, lets other sizes run
        self.classifier = nn.Sequential(
            nn.Flatten(1), nn.Linear(c * 49, 4096), nn.ReLU(inplace=True), nn.Dropout(drop_rate),
            nn.Linear(4096, 4096), nn.ReLU(inplace=True), nn.Dropout(drop_rate))
        self.head = ClassifierHead(4096, num_classes, pool="")

    def init_weights(self):
        # Sec. 3.1: "initialise the weights without pre-training by using the random
        # initialisation procedure of Glorot & Bengio (2010)", biases zero
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward_features(self, x):
        return self.features(x)

    def forward_head(self, x, pre_logits=False):
        return self.head(self.classifier(self.pool(x)), pre_logits=pre_logits)


def vgg(cfg, num_classes=1000, in_chans=3, drop_rate=0.5, batch_norm=False):
    return VGGNet(CFGS[cfg], num_classes, in_chans, batch_norm, drop_rate)


def _ref(params, **extra):
    return {"params": params, "table": "Table 2", **extra}


# Table 2 gives parameters; the mult-adds of D come from MobileNets Table 8 (15,300 M)
_VGG16_MACS = {"macs": "15300M", "exact_macs": "15.47G",
               "note": "MobileNets Table 8 prints 15,300 M; the exact count is 15.47 G",
               "top1": 71.5}
_ENTRIES = [("a", "A", "133M", {}), ("a_lrn", "A-LRN", "133M", {}), ("b", "B", "133M", {}),
            ("c", "C", "134M", {}), ("d", "D", "138M", _VGG16_MACS), ("e", "E", "144M", {})]
_ALIASES = {"a": "vgg11", "b": "vgg13", "d": "vgg16", "e": "vgg19"}


for _suffix, _cfg, _params, _extra in _ENTRIES:
    _doc = f"VGG configuration {_cfg} (Simonyan & Zisserman 2015, Table 1)."
    for _name in [f"vgg_{_suffix}", *([_ALIASES[_suffix]] if _suffix in _ALIASES else [])]:
        register_model(vgg, name=_name, fixed={"cfg": _cfg}, paper=VGG, doc=_doc,
                       reference=_ref(_params, **_extra))
    if _suffix in _ALIASES:
        register_model(vgg, name=f"{_ALIASES[_suffix]}_bn", fixed={"cfg": _cfg}, paper=VGG,
                       defaults={"batch_norm": True}, doc=_doc)
