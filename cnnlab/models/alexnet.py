"""AlexNet (Krizhevsky, Sutskever, Hinton 2012), Fig. 2 and Sec. 3.

Five convolutions and three fully connected layers. The original ran on two GPUs: conv2, conv4
and conv5 see only the maps on their own GPU (two groups) and conv1/conv2 are followed by
local response normalisation (k=2, n=5, α=1e-4, β=0.75). ``alexnet`` is the single-tower
variant everyone uses (64-192-384-256-256 maps, no LRN).
"""

from __future__ import annotations

from collections import OrderedDict

import torch.nn as nn

from cnnlab.models.base import ClassifierHead, ConvNet
from cnnlab.registry import Paper, register_model

ALEXNET = Paper("ImageNet Classification with Deep Convolutional Neural Networks",
                "Krizhevsky, Sutskever, Hinton", 2012)

# (out channels, kernel, stride, padding, groups, LRN after, max pool after)
TWO_TOWER = [
    (96, 11, 4, 0, 1, True, True),
    (256, 5, 1, 2, 2, True, True),
    (384, 3, 1, 1, 1, False, False),  # conv3 reads both towers
    (384, 3, 1, 1, 2, False, False),
    (256, 3, 1, 1, 2, False, True),
]
SINGLE_TOWER = [
    (64, 11, 4, 2, 1, False, True),
    (192, 5, 1, 2, 1, False, True),
    (384, 3, 1, 1, 1, False, False),
    (256, 3, 1, 1, 1, False, False),
    (256, 3, 1, 1, 1, False, True),
]


class AlexNet(ConvNet):
    def __init__(self, cfg, num_classes=1000, in_chans=3, drop_rate=0.5):
        super().__init__()
        self.min_input_size = 63 if cfg[0][3] else 67  # conv1 unpadded in the original
        self.num_classes = num_classes
        layers, c, self.feature_info = OrderedDict(), in_chans, []
        for i, (out, k, s, p, g, lrn, pool) in enumerate(cfg, 1):
            layers[f"conv{i}"] = nn.Conv2d(c, out, k, s, p, groups=g)
            layers[f"relu{i}"] = nn.ReLU(inplace=True)
            if lrn:
                layers[f"lrn{i}"] = nn.LocalResponseNorm(5, alpha=1e-4, beta=0.75, k=2.0)
            if pool:
                layers[f"pool{i}"] = nn.MaxPool2d(3, 2)  # overlapping pooling, Sec. 3.4
                self.feature_info.append(dict(module=f"features.pool{i}",
                                              reduction=4 * 2 ** len(self.feature_info) * 2,
                                              channels=out))
            c = out
        self.features = nn.Sequential(layers)
        self.pool = nn.AdaptiveAvgPool2d(6)  # identity at the paper's input size
        self.classifier = nn.Sequential(
            nn.Flatten(1), nn.Dropout(drop_rate), nn.Linear(c * 36, 4096), nn.ReLU(inplace=True),
            nn.Dropout(drop_rate), nn.Linear(4096, 4096), nn.ReLU(inplace=True))
        self.head = ClassifierHead(4096, num_classes, pool="")

    def init_weights(self):
        # Sec. 5 / Caffe's reference: N(0, 0.01) conv, N(0, 0.005) hidden FC, N(0, 0.01)
        # classifier; biases 1 in conv2, conv4, conv5 and the hidden FC layers, else 0
        for name, m in self.named_modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                hidden_fc = isinstance(m, nn.Linear) and name.startswith("classifier")
                nn.init.normal_(m.weight, 0, 0.005 if hidden_fc else 0.01)
                one = hidden_fc or name in ("features.conv2", "features.conv4", "features.conv5")
                nn.init.constant_(m.bias, 1.0 if one else 0.0)

    def forward_features(self, x):
        return self.features(x)

    def forward_head(self, x, pre_logits=False):
        return self.head(self.classifier(self.pool(x)), pre_logits=pre_logits)


@register_model(paper=ALEXNET, input_size=(3, 224, 224), reference={
    "params": "60M", "macs": "720M", "exact_params": 61_100_840, "exact_macs": "714.2M",
    "table": "Sec. 1 (60 million parameters); MobileNets Table 9 (720 M mult-adds)",
    "note": "the paper's figures are the two-tower network (alexnet_grouped); the common "
            "single-tower variant has 61,100,840 params and 714 M mult-adds at 224 px",
    "top1": 57.2, "top5": 80.3})
def alexnet(num_classes=1000, in_chans=3, drop_rate=0.5):
    """Single-tower AlexNet as commonly used (torchvision's layout)."""
    return AlexNet(SINGLE_TOWER, num_classes, in_chans, drop_rate)


@register_model(paper=ALEXNET, input_size=(3, 227, 227), reference={
    "params": "60M", "macs": "720M", "exact_params": 60_965_224, "exact_macs": "724.4M",
    "table": "Sec. 1 (60 million parameters); MobileNets Table 9 (720 M mult-adds)",
    "note": "'60 million' and '720 M' are rounded: the two-tower network has 60,965,224 "
            "params and 724 M mult-adds at 227 px (227, not the paper's 224, gives 55x55)"})
def alexnet_grouped(num_classes=1000, in_chans=3, drop_rate=0.5):
    """The original two-GPU AlexNet: grouped conv2/4/5, LRN after conv1 and conv2."""
    return AlexNet(TWO_TOWER, num_classes, in_chans, drop_rate)
