"""LeNet-5 (LeCun et al. 1998) and the two LeNets Han et al. prune (2015, 2016).

LeCun's LeNet-5 is C1-S2-C3-S4-C5-F6 with an Euclidean RBF output (Sec. II.B): trainable
sub-sampling (a coefficient and a bias per map), C3's partial connection table (Table I), a
scaled tanh, and 84×10 fixed prototypes — exactly 60,000 trainable parameters.
Han et al.'s "LeNet-5" is a different network, Caffe's example LeNet (see PAPER-NOTES).
"""

from __future__ import annotations

from collections import OrderedDict

import torch
import torch.nn as nn
import torch.nn.functional as F

from cnnlab.layers.trace import is_symbolic
from cnnlab.models.base import ClassifierHead, ConvNet
from cnnlab.registry import Paper, register_model

LECUN_1998 = Paper("Gradient-Based Learning Applied to Document Recognition",
                   "LeCun, Bottou, Bengio, Haffner", 1998)
HAN_2015 = Paper("Learning both Weights and Connections for Efficient Neural Networks",
                 "Han, Pool, Tran, Dally", 2015, "1506.02626")

# Table I: the S2 maps (rows 0-5) each C3 map (0-15) reads
C3_TABLE = [
    (0, 1, 2), (1, 2, 3), (2, 3, 4), (3, 4, 5), (4, 5, 0), (5, 0, 1),
    (0, 1, 2, 3), (1, 2, 3, 4), (2, 3, 4, 5), (3, 4, 5, 0), (4, 5, 0, 1), (5, 0, 1, 2),
    (0, 1, 3, 4), (1, 2, 4, 5), (0, 2, 3, 5),
    (0, 1, 2, 3, 4, 5),
]


class ScaledTanh(nn.Module):
    """f(a) = A·tanh(S·a) with A = 1.7159, S = 2/3 (Appendix A)."""

    def forward(self, x):
        return 1.7159 * torch.tanh(x * (2 / 3))


class SubSampling(nn.Module):
    """S2/S4: the four inputs of each 2×2 window are summed, multiplied by a trainable
    coefficient and added to a trainable bias (one of each per map)."""

    def __init__(self, channels: int):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x):
        return F.avg_pool2d(x, 2) * (4 * self.weight[:, None, None]) + self.bias[:, None, None]


class PartialConv(nn.Module):
    """C3: each output map reads only the input maps of its row of Table I.

    The parameters are those of the partial connections exactly: maps with the same number
    of inputs form one grouped convolution over gathered input channels (1,516 parameters).
    The profiler (meta tensors) runs those grouped convolutions, so it counts the 150,000
    multiply-adds the table needs. On real devices the same parameters are scattered into one
    dense 16×6×5×5 weight (zeros where Table I has no connection) and run as a single
    convolution: the same function, 15× faster than grouped convolutions in PyTorch's CPU
    kernels.
    """

    def __init__(self, table, kernel_size: int = 5):
        super().__init__()
        self.table = [tuple(r) for r in table]
        self.in_maps = max(max(r) for r in table) + 1
        self.kernel_size = kernel_size
        self.sizes = sorted({len(r) for r in table})
        self.convs = nn.ModuleList()
        rows_out, rows_in, order = [], [], []
        for n in self.sizes:
            rows = [i for i, r in enumerate(table) if len(r) == n]
            order += rows
            self.register_buffer(f"index{n}", torch.tensor([c for i in rows for c in table[i]]),
                                 persistent=False)
            self.convs.append(nn.Conv2d(n * len(rows), len(rows), kernel_size, groups=len(rows)))
            rows_out += [i for i in rows for _ in table[i]]
            rows_in += [c for i in rows for c in table[i]]
        # the inverse permutation, in Python: argsort on meta imports torch's meta registry
        inverse = sorted(range(len(order)), key=order.__getitem__)
        self.register_buffer("order", torch.tensor(inverse), persistent=False)
        self.register_buffer("rows_out", torch.tensor(rows_out), persistent=False)
        self.register_buffer("rows_in", torch.tensor(rows_in), persistent=False)
        self.register_buffer("bias_order", torch.tensor(order), persistent=False)

    def dense_weight(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The 16×6×k×k weight and 16 biases Table I's connections amount to."""
        k = self.kernel_size
        flat = torch.cat([c.weight.reshape(-1, k, k) for c in self.convs])
        weight = flat.new_zeros(len(self.table), self.in_maps, k, k)
        weight = weight.index_put((self.rows_out, self.rows_in), flat)
        bias = torch.cat([c.bias for c in self.convs]).new_zeros(len(self.table)).index_put(
            (self.bias_order,), torch.cat([c.bias for c in self.convs]))
        return weight, bias

    def forward_grouped(self, x):
        outs = [conv(x.index_select(1, getattr(self, f"index{n}")))
                for n, conv in zip(self.sizes, self.convs)]
        return torch.cat(outs, 1).index_select(1, self.order)

    def forward(self, x):
        if not is_symbolic(x) and x.is_meta:
            return self.forward_grouped(x)
        weight, bias = self.dense_weight()
        return F.conv2d(x, weight, bias)


class RBFOutput(nn.Module):
    """Euclidean RBF units: y_i = Σ_j (x_j − w_ij)²; logits are −y. The prototypes are fixed
    (not trained) ±1 codes; LeCun's were stylised 7×12 bitmaps of the characters, which the
    paper does not print, so a fixed seeded code stands in for them."""

    def __init__(self, in_features: int, num_classes: int):
        super().__init__()
        g = torch.Generator().manual_seed(1998)
        code = torch.randint(0, 2, (num_classes, in_features), generator=g, device="cpu")
        self.register_buffer("prototypes", (code * 2 - 1).float().to(torch.get_default_device()))

    def forward(self, x):
        d = x.unsqueeze(1) - self.prototypes
        return -(d * d).sum(-1)


class LeNet5(ConvNet):
    min_input_size = 32

    def __init__(self, num_classes: int = 10, in_chans: int = 1, modern: bool = False,
                 drop_rate: float = 0.0):
        super().__init__()
        self.num_classes, self.modern, self.num_features = num_classes, modern, 84
        act = nn.ReLU if modern else ScaledTanh
        c3 = nn.Conv2d(6, 16, 5) if modern else PartialConv(C3_TABLE)
        pool = (lambda c: nn.MaxPool2d(2)) if modern else SubSampling
        self.features = nn.Sequential(OrderedDict(
            c1=nn.Conv2d(in_chans, 6, 5), act1=act(),
            s2=pool(6), act2=act() if not modern else nn.Identity(),
            c3=c3, act3=act(),
            s4=pool(16), act4=act() if not modern else nn.Identity(),
            c5=nn.Conv2d(16, 120, 5), act5=act(),
        ))
        self.f6 = nn.Sequential(nn.Flatten(1), nn.Linear(120, 84), act())
        self.drop = nn.Dropout(drop_rate) if drop_rate else nn.Identity()
        self.output = nn.Linear(84, num_classes) if modern else RBFOutput(84, num_classes)
        self.feature_info = [dict(module="features.act2", reduction=2, channels=6),
                             dict(module="features.act4", reduction=4, channels=16),
                             dict(module="features.act5", reduction=32, channels=120)]

    def init_weights(self):
        if isinstance(self.output, nn.Linear):
            return super().init_weights()
        # Appendix C: weights uniform in ±2.4/F_i, F_i the unit's fan-in
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                fan_in = m.weight[0].numel()
                nn.init.uniform_(m.weight, -2.4 / fan_in, 2.4 / fan_in)
                nn.init.uniform_(m.bias, -2.4 / fan_in, 2.4 / fan_in)

    def forward_features(self, x):
        return self.features(x)

    def forward_head(self, x, pre_logits=False):
        x = self.drop(self.f6(x))
        return x if pre_logits else self.output(x)

    def get_classifier(self):
        return self.output

    def reset_classifier(self, num_classes):
        self.output = nn.Identity() if not num_classes else nn.Linear(84, num_classes) \
            if self.modern else RBFOutput(84, num_classes)
        self.num_classes = num_classes


class MLP(ConvNet):
    """LeNet-300-100: 784-300-100-10, ReLU (Han et al. 2015, Table 1)."""

    def __init__(self, num_classes=10, in_chans=1, hidden=(300, 100), image_size=28,
                 drop_rate=0.0):
        super().__init__()
        self.num_classes = num_classes
        self.image_size = image_size
        dims = [in_chans * image_size * image_size, *hidden]
        layers = [nn.Flatten(1)]
        for a, b in zip(dims, dims[1:]):
            layers += [nn.Linear(a, b), nn.ReLU(inplace=True)]
            if drop_rate:
                layers.append(nn.Dropout(drop_rate))
        self.features = nn.Sequential(*layers)
        self.head = ClassifierHead(dims[-1], num_classes, pool="")
        self.min_input_size = image_size

    def input_error(self, x):
        if tuple(x.shape[-2:]) != (self.image_size, self.image_size):
            return (f"{getattr(self, 'model_name', 'MLP')} needs {self.image_size}x"
                    f"{self.image_size} inputs, got {tuple(x.shape[-2:])}")
        return None

    def forward_features(self, x):
        return self.features(x)


class CaffeLeNet(ConvNet):
    """Caffe's LeNet: conv 20 5×5, max pool 2, conv 50 5×5, max pool 2, fc 500, ReLU, fc 10
    (no non-linearity after the convolutions, as in Caffe's example)."""

    min_input_size = 28

    def __init__(self, num_classes=10, in_chans=1, drop_rate=0.0):
        super().__init__()
        self.num_classes = num_classes
        self.features = nn.Sequential(OrderedDict(
            conv1=nn.Conv2d(in_chans, 20, 5), pool1=nn.MaxPool2d(2),
            conv2=nn.Conv2d(20, 50, 5), pool2=nn.MaxPool2d(2),
        ))
        self.fc1 = nn.Sequential(nn.Flatten(1), nn.Linear(800, 500), nn.ReLU(inplace=True))
        self.head = ClassifierHead(500, num_classes, pool="", drop_rate=drop_rate)
        self.feature_info = [dict(module="features.conv1", reduction=1, channels=20),
                             dict(module="features.pool2", reduction=4, channels=50)]

    def input_error(self, x):
        if tuple(x.shape[-2:]) != (28, 28):
            return (f"lenet5_caffe needs 28x28 inputs (its fc1 reads 50x4x4), got "
                    f"{tuple(x.shape[-2:])}")
        return None

    def forward_features(self, x):
        return self.features(x)

    def forward_head(self, x, pre_logits=False):
        return self.head(self.fc1(x), pre_logits=pre_logits)


@register_model(paper=LECUN_1998, input_size=(1, 32, 32), num_classes=10, reference={
    "params": 60_000, "table": "Sec. II.B (156 + 12 + 1,516 + 32 + 48,120 + 10,164)"})
def lenet5(num_classes=10, in_chans=1, drop_rate=0.0):
    """LeNet-5 exactly as LeCun et al. 1998, Sec. II.B: 60,000 trainable parameters."""
    return LeNet5(num_classes, in_chans, modern=False, drop_rate=drop_rate)


@register_model(paper=LECUN_1998, input_size=(1, 32, 32), num_classes=10)
def lenet5_modern(num_classes=10, in_chans=1, drop_rate=0.0):
    """LeNet-5 as commonly rebuilt: full C3, max pooling, ReLU, linear classifier."""
    return LeNet5(num_classes, in_chans, modern=True, drop_rate=drop_rate)


@register_model(paper=HAN_2015, input_size=(1, 28, 28), num_classes=10, reference={
    "params": 266_610, "table": "Table 1 (267K; Deep Compression Table 2: 266K)"})
def lenet_300_100(num_classes=10, in_chans=1, drop_rate=0.0):
    """LeNet-300-100, the fully connected MNIST network Han et al. 2015/2016 prune."""
    return MLP(num_classes, in_chans, drop_rate=drop_rate)


@register_model(paper=HAN_2015, input_size=(1, 28, 28), num_classes=10, reference={
    "params": 431_080, "table": "Table 2 (conv1 0.5K, conv2 25K, fc1 400K, fc2 5K)"})
def lenet5_caffe(num_classes=10, in_chans=1, drop_rate=0.0):
    """The "LeNet-5" of Han et al. 2015 Table 2 and Deep Compression: Caffe's LeNet."""
    return CaffeLeNet(num_classes, in_chans, drop_rate)
