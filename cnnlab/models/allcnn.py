"""All-CNN-C (Springenberg, Dosovitskiy, Brox, Riedmiller 2015), Tables 1 and 2.

Every max pool of base model C is replaced by a 3×3 convolution with stride 2 (Sec. 3.1):
the network is convolutions only, ending NIN-style in a 1×1 convolution to one map per class
and global averaging over its 6×6 maps. Dropout: 20 % on the input, 50 % after each layer
that replaced a pool (Sec. 3.2.1).
"""

from __future__ import annotations

from collections import OrderedDict

import torch.nn as nn

from cnnlab.models.base import ConvNet, check_arg
from cnnlab.models.nin import ConvClassifier
from cnnlab.registry import Paper, register_model

ALL_CNN = Paper("Striving for Simplicity: The All Convolutional Net",
                "Springenberg, Dosovitskiy, Brox, Riedmiller", 2015, "1412.6806")

# Table 2, All-CNN-C: (out, kernel, stride, padding). The stride-2 rows replace model C's
# 3×3 max pools; the last 3×3 is unpadded (8×8 -> 6×6, "global averaging over 6×6").
ALL_CNN_C = [
    (96, 3, 1, 1), (96, 3, 1, 1), (96, 3, 2, 1),
    (192, 3, 1, 1), (192, 3, 1, 1), (192, 3, 2, 1),
    (192, 3, 1, 0), (192, 1, 1, 0),
]  # then "1×1 conv. 10 ReLU" (the classifier) and global averaging


class AllCNN(ConvNet):
    min_input_size = 9

    def __init__(self, cfg, num_classes=10, in_chans=3, drop_rate=0.5, input_drop_rate=0.2):
        super().__init__()
        check_arg(0 <= drop_rate < 1 and 0 <= input_drop_rate < 1,
                  "dropout rates must be in [0, 1)")
        self.num_classes = num_classes
        layers, c, reduction = OrderedDict(), in_chans, 1
        layers["drop0"] = nn.Dropout(input_drop_rate)
        self.feature_info = []
        for i, (out, k, s, p) in enumerate(cfg, 1):
            if s == 2:
                self.feature_info.append(dict(module=f"features.relu{i - 1}",
                                              reduction=reduction, channels=c))
                reduction *= s
            layers[f"conv{i}"] = nn.Conv2d(c, out, k, s, p)
            layers[f"relu{i}"] = nn.ReLU(inplace=True)
            if s == 2:
                layers[f"drop{i}"] = nn.Dropout(drop_rate)
            c = out
        self.feature_info.append(dict(module=f"features.relu{len(cfg)}", reduction=reduction,
                                      channels=c))
        self.features = nn.Sequential(layers)
        self.head = ConvClassifier(c, num_classes)

    def forward_features(self, x):
        return self.features(x)


@register_model(paper=ALL_CNN, input_size=(3, 32, 32), num_classes=10, reference={
    "params": "1.3M", "exact_params": 1_369_738,
    "note": "SimpNet Table XV (the decks) prints 1.3 M; All-CNN-C as Table 2 describes it "
            "has 1,369,738 parameters (1.4 M)",
    "table": "SimpNet (Hasanpour et al. 2018) Table XV; Springenberg et al. Table 2",
    "top1": 92.75})
def allcnn_c(num_classes=10, in_chans=3, drop_rate=0.5, input_drop_rate=0.2):
    """All-CNN-C for CIFAR (Table 2; 7.25 % error with augmentation, Table 3)."""
    return AllCNN(ALL_CNN_C, num_classes, in_chans, drop_rate, input_drop_rate)
