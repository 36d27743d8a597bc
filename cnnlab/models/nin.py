"""Network in Network (Lin, Chen, Yan 2013), Sec. 3 and Fig. 2.

Each "mlpconv" layer slides a small multilayer perceptron over the input: a k×k convolution
followed by 1×1 convolutions ("cascaded cross channel parametric pooling", the released
models' ``cccp`` layers), all with ReLU. There is no fully connected classifier: the last
mlpconv layer produces one map per class and global average pooling turns each map into a
confidence (Sec. 3.2). Dropout follows every mlpconv layer but the last. The widths are the
authors' released Caffe models (the paper gives none): the 3-layer CIFAR-10 model and the
4-layer ImageNet model. Weights start from a Gaussian of standard deviation 0.05, biases at 0
(deck 002:202; the released CIFAR-10 model's fillers), not the He initialisation of the
other families.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
import torch.nn as nn

from cnnlab.models.base import ConvNet
from cnnlab.registry import Paper, register_model

NIN = Paper("Network In Network", "Lin, Chen, Yan", 2013, "1312.4400")
INIT_STD = 0.05

# One row per mlpconv layer: (k×k conv: out, kernel, stride, padding), [1×1 widths], the
# pooling after it ("max"/"avg", 3×3 stride 2, Caffe's ceil rounding) and dropout after it.
# The last 1×1 width is the classifier (num_classes).
CIFAR10 = [
    ((192, 5, 1, 2), [160, 96], "max", True),
    ((192, 5, 1, 2), [192, 192], "avg", True),
    ((192, 3, 1, 1), [192, "classes"], None, False),
]
IMAGENET = [
    ((96, 11, 4, 0), [96, 96], "max", False),
    ((256, 5, 1, 2), [256, 256], "max", False),
    ((384, 3, 1, 1), [384, 384], "max", True),
    ((1024, 3, 1, 1), [1024, "classes"], None, False),
]


class ConvClassifier(nn.Module):
    """The NIN head: a 1×1 convolution to one map per class, ReLU, global average pooling.
    (Named ``fc`` so tools that look for the classifier find it.)"""

    def __init__(self, in_chs: int, num_classes: int, act: bool = True):
        super().__init__()
        self.in_features = in_chs
        self.fc = nn.Conv2d(in_chs, num_classes, 1)
        self.act = nn.ReLU(inplace=True) if act else nn.Identity()
        self.pool = nn.AdaptiveAvgPool2d(1)

    def reset(self, num_classes: int) -> None:
        device = next(self.parameters(), torch.empty(0)).device
        self.fc = nn.Conv2d(self.in_features, num_classes, 1, device=device) if num_classes \
            else nn.Identity()

    def forward(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        if pre_logits or isinstance(self.fc, nn.Identity):  # headless: the pooled features
            return torch.flatten(self.pool(x), 1)
        return torch.flatten(self.pool(self.act(self.fc(x))), 1)


class NetworkInNetwork(ConvNet):
    def __init__(self, cfg, num_classes=10, in_chans=3, drop_rate=0.5, min_input_size=1):
        super().__init__()
        self.min_input_size = min_input_size
        self.num_classes = num_classes
        layers, c, self.feature_info = OrderedDict(), in_chans, []
        reduction = 1
        for i, ((out, k, s, p), cccp, pool, drop) in enumerate(cfg, 1):
            mlp = OrderedDict(conv=nn.Conv2d(c, out, k, s, p), relu=nn.ReLU(inplace=True))
            c, reduction = out, reduction * s
            widths = cccp if pool is not None else cccp[:-1]  # the classifier goes to the head
            for j, w in enumerate(widths, 1):
                mlp[f"cccp{j}"] = nn.Conv2d(c, w, 1)
                mlp[f"relu{j}"] = nn.ReLU(inplace=True)
                c = w
            layers[f"mlpconv{i}"] = nn.Sequential(mlp)
            if pool is not None:
                self.feature_info.append(dict(module=f"features.mlpconv{i}",
                                              reduction=reduction, channels=c))
                layers[f"pool{i}"] = (nn.MaxPool2d if pool == "max" else nn.AvgPool2d)(
                    3, 2, ceil_mode=True)
                reduction *= 2
            if drop:
                layers[f"drop{i}"] = nn.Dropout(drop_rate)
        self.feature_info.append(dict(module=f"features.mlpconv{len(cfg)}",
                                      reduction=reduction, channels=c))
        self.features = nn.Sequential(layers)
        self.head = ConvClassifier(c, num_classes)

    def init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.normal_(m.weight, 0.0, INIT_STD)
                nn.init.zeros_(m.bias)

    def forward_features(self, x):
        return self.features(x)


@register_model(paper=NIN, input_size=(3, 32, 32), num_classes=10, reference={
    "params": "1M", "table": "SimpNet (Hasanpour et al. 2018) Table XV",
    "top1": 91.19})
def nin_cifar10(num_classes=10, in_chans=3, drop_rate=0.5):
    """The 3-layer CIFAR-10 NIN (Sec. 4.2; 91.19 % with augmentation, Table 1)."""
    return NetworkInNetwork(CIFAR10, num_classes, in_chans, drop_rate, min_input_size=4)


@register_model(paper=NIN, input_size=(3, 224, 224), reference={
    "params": "7.6M", "macs": "1100M", "table": "SimpleNet (Hasanpour et al. 2016) Table 1"})
def nin_imagenet(num_classes=1000, in_chans=3, drop_rate=0.5):
    """The 4-layer ImageNet NIN of the authors' Caffe model zoo entry."""
    return NetworkInNetwork(IMAGENET, num_classes, in_chans, drop_rate, min_input_size=39)
