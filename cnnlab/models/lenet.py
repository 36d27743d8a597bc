"""The LeNets: the 1989 zip-code network, LeNet-1 (1990), LeNet-5 (LeCun et al. 1998) and
the two LeNets Han et al. prune (2015, 2016).

LeNet 1989 (LeCun et al. 1989, Sec. 5): 16×16 input, H1 = 12 maps 8×8 (5×5 kernels, stride
2), H2 = 12 maps 4×4, each reading 8 of the 12 H1 maps, H3 = 30 units, 10 outputs, scaled tanh
throughout. Kernels are shared within a map but every unit of H1 and H2 has its own bias:
1,256 units, 64,660 connections, 9,760 free parameters. LeNet-1 (LeCun et al. 1990, the
"LeNet 1" of the 1995/1998 comparisons): 28×28 input, 4 maps 24×24, averaging to 12×12,
12 maps 8×8, averaging to 4×4, 10 outputs: 4,635 units, 98,442 connections, 2,578 parameters.
LeNet-4 (LeCun et al. 1998, Sec. III.C.8): 32×32 input, 4 maps, 8 sub-sampling maps "connected
in pairs to each first-layer feature map", 16 maps, 16 sub-sampling maps, 120 fully connected
units, 10 outputs; "about 260,000 connections and about 17,000 free parameters".

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
ZIP_1989 = Paper("Backpropagation Applied to Handwritten Zip Code Recognition",
                 "LeCun, Boser, Denker, Henderson, Howard, Hubbard, Jackel", 1989)
LENET1_1990 = Paper("Handwritten Digit Recognition with a Back-Propagation Network",
                    "LeCun, Boser, Denker, Henderson, Howard, Hubbard, Jackel", 1990)
HAN_2015 = Paper("Learning both Weights and Connections for Efficient Neural Networks",
                 "Han, Pool, Tran, Dally", 2015, "1506.02626")

# Table I: the S2 maps (rows 0-5) each C3 map (0-15) reads
C3_TABLE = [
    (0, 1, 2), (1, 2, 3), (2, 3, 4), (3, 4, 5), (4, 5, 0), (5, 0, 1),
    (0, 1, 2, 3), (1, 2, 3, 4), (2, 3, 4, 5), (3, 4, 5, 0), (4, 5, 0, 1), (5, 0, 1, 2),
    (0, 1, 3, 4), (1, 2, 4, 5), (0, 2, 3, 5),
    (0, 1, 2, 3, 4, 5),
]


# LeNet 1989, H2: the 8 H1 maps each H2 map reads. The paper chooses them "according to a
# scheme that will not be described here"; any 8-of-12 choice gives its counts, so this is a
# cyclic one.
H2_TABLE_1989 = [tuple((j + i) % 12 for i in range(8)) for j in range(12)]
# LeNet-1, H3: the H2 maps each H3 map reads. The paper prints the totals only (2,578
# parameters leave 20 5×5 kernels between the 4 H2 and the 12 H3 maps); this table has 20.
H3_TABLE_LENET1 = [(0,), (1,), (2,), (3,), (0, 1), (1, 2), (2, 3), (3, 0), (0, 2), (1, 3),
                   (0, 1), (2, 3)]

# LeNet-4, C3: the S2 maps each C3 map reads. The paper prints no table; three inputs per map
# put the connections at its "about 260,000" (262,306): cyclic windows, then spread ones.
C3_TABLE_LENET4 = [tuple((j + k) % 8 for k in (0, 1, 2)) for j in range(8)] + \
    [tuple((j + k) % 8 for k in (0, 2, 4)) for j in range(8)]


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

    def __init__(self, table, kernel_size: int = 5, stride: int = 1, padding: int = 0,
                 bias: bool = True, in_maps: int | None = None):
        super().__init__()
        self.table = [tuple(r) for r in table]
        self.in_maps = in_maps or max(max(r) for r in table) + 1
        self.kernel_size, self.stride, self.padding, self.bias = kernel_size, stride, padding, bias
        self.sizes = sorted({len(r) for r in table})
        self.convs = nn.ModuleList()
        rows_out, rows_in, order = [], [], []
        for n in self.sizes:
            rows = [i for i, r in enumerate(table) if len(r) == n]
            order += rows
            self.register_buffer(f"index{n}", torch.tensor([c for i in rows for c in table[i]]),
                                 persistent=False)
            self.convs.append(nn.Conv2d(n * len(rows), len(rows), kernel_size, stride, padding,
                                        groups=len(rows), bias=bias))
            rows_out += [i for i in rows for _ in table[i]]
            rows_in += [c for i in rows for c in table[i]]
        # the inverse permutation, in Python: argsort on meta imports torch's meta registry
        inverse = sorted(range(len(order)), key=order.__getitem__)
        self.register_buffer("order", torch.tensor(inverse), persistent=False)
        self.register_buffer("rows_out", torch.tensor(rows_out), persistent=False)
        self.register_buffer("rows_in", torch.tensor(rows_in), persistent=False)
        self.register_buffer("bias_order", torch.tensor(order), persistent=False)

    def dense_weight(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The 16×6×k×k weight and 16 biases Table I's connections amount to."""
        k = self.kernel_size
        flat = torch.cat([c.weight.reshape(-1, k, k) for c in self.convs])
        weight = flat.new_zeros(len(self.table), self.in_maps, k, k)
        weight = weight.index_put((self.rows_out, self.rows_in), flat)
        if not self.bias:
            return weight, None
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
        return F.conv2d(x, weight, bias, self.stride, self.padding)


class UnitBias(nn.Module):
    """A bias of its own for every unit of a map (LeNet 1989: kernels shared, biases not)."""

    def __init__(self, channels: int, height: int, width: int):
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(channels, height, width))

    def forward(self, x):
        return x + self.bias


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


class _FixedInput(ConvNet):
    image_size = 28

    def input_error(self, x):
        n = self.image_size
        if min(x.shape[-2:]) < n:
            return super().input_error(x)
        if tuple(x.shape[-2:]) != (n, n):  # the first fully connected layer fixes the size
            return f"{self.display_name} needs {n}x{n} inputs, got {tuple(x.shape[-2:])}"
        return None

    def forward_features(self, x):
        return self.features(x)


class LeNet1989(_FixedInput):
    """LeCun et al. 1989 (Sec. 5, Fig. 3). The paper's output units are tanh units trained
    on ±1 targets; here they are linear logits for a cross-entropy loss (same parameters)."""

    image_size = min_input_size = 16

    def __init__(self, num_classes=10, in_chans=1, drop_rate=0.0):
        super().__init__()
        self.num_classes = num_classes
        # stride 2 with 2 pixels of padding: 16×16 -> 8×8 -> 4×4, as the paper's maps
        self.features = nn.Sequential(OrderedDict(
            h1=nn.Conv2d(in_chans, 12, 5, 2, 2, bias=False), h1_bias=UnitBias(12, 8, 8),
            act1=ScaledTanh(),
            h2=PartialConv(H2_TABLE_1989, 5, stride=2, padding=2, bias=False, in_maps=12),
            h2_bias=UnitBias(12, 4, 4), act2=ScaledTanh()))
        self.h3 = nn.Sequential(nn.Flatten(1), nn.Linear(192, 30), ScaledTanh())
        self.head = ClassifierHead(30, num_classes, pool="", drop_rate=drop_rate)
        self.feature_info = [dict(module="features.act1", reduction=2, channels=12),
                             dict(module="features.act2", reduction=4, channels=12)]

    def forward_head(self, x, pre_logits=False):
        return self.head(self.h3(x), pre_logits=pre_logits)


class LeNet1(_FixedInput):
    """LeCun et al. 1990 (Fig. 3): convolutions and trainable 2×2 averaging (a coefficient
    and a bias per map, as LeNet-5's), scaled tanh, a linear output layer."""

    image_size = min_input_size = 28

    def __init__(self, num_classes=10, in_chans=1, drop_rate=0.0):
        super().__init__()
        self.num_classes = num_classes
        self.features = nn.Sequential(OrderedDict(
            h1=nn.Conv2d(in_chans, 4, 5), act1=ScaledTanh(), h2=SubSampling(4),
            act2=ScaledTanh(), h3=PartialConv(H3_TABLE_LENET1, 5, in_maps=4),
            act3=ScaledTanh(), h4=SubSampling(12), act4=ScaledTanh()))
        self.head = ClassifierHead(192, num_classes, pool="flatten", drop_rate=drop_rate)
        self.feature_info = [dict(module="features.act2", reduction=2, channels=4),
                             dict(module="features.act4", reduction=4, channels=12)]


class Pairs(nn.Module):
    """Each map twice, side by side: LeNet-4's S2 has two sub-sampling maps per C1 map."""

    def forward(self, x):
        return x.repeat_interleave(2, 1)


class LeNet4(_FixedInput):
    """LeCun et al. 1998, Sec. III.C.8 (Fig. 9-12's LeNet-4): scaled tanh throughout, trainable
    sub-sampling as LeNet-5's, a linear output layer."""

    image_size = min_input_size = 32

    def __init__(self, num_classes=10, in_chans=1, drop_rate=0.0):
        super().__init__()
        self.num_classes = num_classes
        self.features = nn.Sequential(OrderedDict(
            c1=nn.Conv2d(in_chans, 4, 5), act1=ScaledTanh(), pairs=Pairs(), s2=SubSampling(8),
            act2=ScaledTanh(), c3=PartialConv(C3_TABLE_LENET4, 5, in_maps=8),
            act3=ScaledTanh(), s4=SubSampling(16), act4=ScaledTanh()))
        self.f5 = nn.Sequential(nn.Flatten(1), nn.Linear(400, 120), ScaledTanh())
        self.head = ClassifierHead(120, num_classes, pool="", drop_rate=drop_rate)
        self.feature_info = [dict(module="features.act2", reduction=2, channels=8),
                             dict(module="features.act4", reduction=4, channels=16)]

    def forward_head(self, x, pre_logits=False):
        return self.head(self.f5(x), pre_logits=pre_logits)


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


@register_model(paper=ZIP_1989, input_size=(1, 16, 16), num_classes=10, reference={
    "params": 9_760, "table": "Sec. 5 (1,256 units, 64,660 connections, 9,760 free "
                              "parameters)", "top1": 95.0})
def lenet1989(num_classes=10, in_chans=1, drop_rate=0.0):
    """LeNet 1989, the zip-code network: 16×16 input, tanh, 7,291 training and 2,007 test
    digits, 5.0 % test error; 9,760 free parameters."""
    return LeNet1989(num_classes, in_chans, drop_rate)


@register_model(paper=LENET1_1990, input_size=(1, 28, 28), num_classes=10, reference={
    "params": 2_578, "table": "Sec. 4 (4,635 units, 98,442 connections, 2,578 independent "
                              "parameters)", "top1": 98.3})
def lenet1(num_classes=10, in_chans=1, drop_rate=0.0):
    """LeNet-1 (LeCun et al. 1990; 1.7 % MNIST test error in LeCun et al. 1998, Fig. 9)."""
    return LeNet1(num_classes, in_chans, drop_rate)


@register_model(paper=LECUN_1998, input_size=(1, 32, 32), num_classes=10, reference={
    "params": "17K", "exact_params": 50_698, "macs": "260K", "exact_macs": 247_600,
    "table": "Sec. III.C.8 and Figs. 11-12 (260 K multiply-accumulates, 17 K variables)",
    "top1": 98.9,
    "note": "the paper's 'about 17,000 free parameters' cannot hold with its own 120 units "
            "fully connected to 16 5x5 maps (48,120 weights alone); the text gives no C3 "
            "table, and three S2 maps per C3 map give its 'about 260,000' connections "
            "(262,306, biases and sub-sampling included; 247,600 conv and fc multiply-adds)"})
def lenet4(num_classes=10, in_chans=1, drop_rate=0.0):
    """LeNet-4 (1.1 % MNIST test error, LeCun et al. 1998, Fig. 9)."""
    return LeNet4(num_classes, in_chans, drop_rate)


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
