"""ShuffleNet v1 (Zhang et al. 2018, Table 1) and ShuffleNet V2 (Ma et al. 2018, Table 5).

v1: 1×1 convolutions become pointwise *group* convolutions, and a channel shuffle after the
first one lets information cross the groups (Sec. 3.1); a unit is a bottleneck of
1×1 GConv → shuffle → 3×3 depthwise (no ReLU after it) → 1×1 GConv; a strided unit adds a
3×3/2 average-pooled shortcut by concatenation (Fig. 2).

V2 follows its guidelines (equal widths, no group convolution, less fragmentation, fewer
element-wise ops): a channel split sends half the channels through 1×1 → 3×3 dw → 1×1,
the other half straight on, then concat and shuffle (Fig. 3c–d).

"FLOPs" in both papers are mult-adds of convolutions and the classifier.

Releases (:mod:`cnnlab.layers.release`): ``"megvii"`` is the authors' released V2
(Megvii's ShuffleNet-Series): its classifier has no bias (1,000 parameters fewer). Deliberate
difference from torchvision's ``shufflenet_v2_*``, which stays: a stride-2 V2 unit here widens
as Megvii's code does (the main branch outputs out − in channels beside the in-channel
shortcut branch), where torchvision splits out/2 and out/2 and misses Table 5's
146/299/591 M. The two agree where a stage doubles its input (every stage of x0.5), so
torchvision's ``shufflenet_v2_x0_5`` weights load into the paper network; for x1.0–x2.0 use
``release="torchvision"``, which builds torchvision's units (x1.0/1.5/2.0: 144.9/295.8/583.3 M
mult-adds, not Table 5's 146/299/591 M).
"""

from __future__ import annotations

from collections import OrderedDict

import torch
import torch.nn as nn

from cnnlab.layers import ConvNormAct, channel_shuffle, channel_split, make_divisible
from cnnlab.layers.release import Release
from cnnlab.layers.se import SqueezeExcite
from cnnlab.models.base import ClassifierHead, ConvNet, check_arg
from cnnlab.registry import Paper, register_model

SHUFFLENET = Paper("ShuffleNet: An Extremely Efficient Convolutional Neural Network for "
                   "Mobile Devices", "Zhang, Zhou, Lin, Sun", 2018, "1707.01083")
SHUFFLENET_V2 = Paper("ShuffleNet V2: Practical Guidelines for Efficient CNN Architecture "
                      "Design", "Ma, Zhang, Zheng, Sun", 2018, "1807.11164")

# v1, Table 1: output channels of Stage 2, 3, 4 for g groups (ShuffleNet 1×)
V1_CHANNELS = {
    1: (144, 288, 576),
    2: (200, 400, 800),
    3: (240, 480, 960),
    4: (272, 544, 1088),
    8: (384, 768, 1536),
}
V1_REPEATS = (4, 8, 4)  # per stage: one stride-2 unit, then stride-1 units
# Sec. 4.3, Table 5: "a 26-layer architecture by removing half of the blocks in Stage 2-4"
V1_SHALLOW_REPEATS = (2, 4, 2)
RELEASES = {"megvii": Release("megvii", "Megvii's release: classifier without bias",
                              fc_bias=False, models=("shufflenet_v2_*",)),
            "torchvision": Release("torchvision", "torchvision's: stride-2 units split out/2 "
                                   "and out/2", builder_args=(("half_split", True),),
                                   models=("shufflenet_v2_*",))}
V1_CONV1 = 24  # Conv1 3×3/2, then MaxPool 3×3/2

# V2, Table 5: output channels of Stage 2, 3, 4 and Conv5 per width (Conv1 24, repeats 4/8/4)
V2_CHANNELS = {
    0.5: (48, 96, 192, 1024),
    1.0: (116, 232, 464, 1024),
    1.5: (176, 352, 704, 1024),
    2.0: (244, 488, 976, 2048),
}
V2_REPEATS = (4, 8, 4)
V2_CONV1 = 24


def v1_widths(groups: int, width_mult: float) -> tuple[int, tuple[int, ...]]:
    """(Conv1, Stage 2–4) channels of ShuffleNet s× with g groups.

    Stages: s × Table 1, rounded to a multiple of 4g so the bottleneck (a quarter of the
    output, Sec. 3.3) splits into g groups; exact for every Table 1 width at s = 0.25 … 2
    with g = 1, 3, 8. Conv1 follows the authors' code: 12 filters below 1× (16 for g = 8,
    where 12 would leave the first unit's branch indivisible by g), 24 up to 2×, 48 from 2×.
    """
    check_arg(groups in V1_CHANNELS, f"groups must be one of {sorted(V1_CHANNELS)} (Table 1), "
              f"got {groups!r}")
    check_arg(isinstance(width_mult, (int, float)) and width_mult > 0,
              f"width_mult must be a positive number, got {width_mult!r}")
    conv1 = (16 if groups == 8 else 12) if width_mult < 1 else 48 if width_mult >= 2 \
        else V1_CONV1
    stages = tuple(make_divisible(c * width_mult, 4 * groups) for c in V1_CHANNELS[groups])
    return conv1, stages


class ShuffleV1Unit(nn.Module):
    """Fig. 2(b) (stride 1, add) and 2(c) (stride 2, avg-pool shortcut, concat)."""

    def __init__(self, in_chs, out_chs, groups, stride, first_grouped=True, shuffle=True,
                 se=False):
        super().__init__()
        mid = out_chs // 4
        branch = out_chs - in_chs if stride == 2 else out_chs
        self.stride, self.groups, self.shuffle = stride, groups, shuffle and groups > 1
        self.gconv1 = ConvNormAct(in_chs, mid, 1, groups=groups if first_grouped else 1)
        self.dwconv = ConvNormAct(mid, mid, 3, stride, groups=mid, act=None)
        self.gconv2 = ConvNormAct(mid, branch, 1, groups=groups, act=None)
        # Table 5's "with SE": gate the branch before the add/concat, as SE-ResNet does
        self.se = SqueezeExcite(branch) if se else nn.Identity()
        self.shortcut = nn.AvgPool2d(3, 2, padding=1) if stride == 2 else nn.Identity()
        self.act = nn.ReLU(inplace=True)

    def forward(self, x):
        y = self.gconv1(x)
        if self.shuffle:
            y = channel_shuffle(y, self.groups)
        y = self.se(self.gconv2(self.dwconv(y)))
        if self.stride == 2:
            return self.act(torch.cat([self.shortcut(x), y], 1))
        return self.act(x + y)


class ShuffleV2Unit(nn.Module):
    """Fig. 3(c) (split, stride 1) and 3(d) (no split, both branches strided), each ending in
    concat and a channel shuffle with 2 groups."""

    def __init__(self, in_chs, out_chs, stride, half_split=False):
        super().__init__()
        self.stride = stride
        mid = out_chs // 2
        if stride == 1:
            branch_in, branch_out = in_chs // 2, out_chs - in_chs // 2
            self.proj = None
        else:  # the authors' code: the main branch makes out − in channels, the other in;
            # torchvision's (half_split): out/2 each
            short = out_chs // 2 if half_split else in_chs
            branch_in, branch_out = in_chs, out_chs - short
            self.proj = nn.Sequential(OrderedDict(
                dw=ConvNormAct(in_chs, in_chs, 3, 2, groups=in_chs, act=None),
                pw=ConvNormAct(in_chs, short, 1)))
        self.branch = nn.Sequential(OrderedDict(
            pw1=ConvNormAct(branch_in, mid, 1),
            dw=ConvNormAct(mid, mid, 3, stride, groups=mid, act=None),
            pw2=ConvNormAct(mid, branch_out, 1)))

    def forward(self, x):
        if self.stride == 1:
            a, b = channel_split(x)
            out = torch.cat([a, self.branch(b)], 1)
        else:
            out = torch.cat([self.proj(x), self.branch(x)], 1)
        return channel_shuffle(out, 2)


class ShuffleNet(ConvNet):
    """Conv1 3×3/2 → MaxPool 3×3/2 → Stage 2–4 (first unit stride 2) → [Conv5] → pool → FC."""

    min_input_size = 1

    def __init__(self, conv1, stages, repeats, make_unit, conv5=None, num_classes=1000,
                 in_chans=3, drop_rate=0.0):
        super().__init__()
        self.num_classes = num_classes
        layers = OrderedDict(conv1=ConvNormAct(in_chans, conv1, 3, 2),
                             maxpool=nn.MaxPool2d(3, 2, padding=1))
        self.feature_info = [dict(module="features.conv1", reduction=2, channels=conv1)]
        c = conv1
        for i, (out, n) in enumerate(zip(stages, repeats)):
            layers[f"stage{i + 2}"] = nn.Sequential(*[
                make_unit(c if j == 0 else out, out, 2 if j == 0 else 1, i, j)
                for j in range(n)])
            c = out
            self.feature_info.append(dict(module=f"features.stage{i + 2}",
                                          reduction=2 ** (i + 3), channels=c))
        if conv5:
            layers["conv5"] = ConvNormAct(c, conv5, 1)
            c = conv5
            self.feature_info[-1] = dict(module="features.conv5", reduction=32, channels=c)
        self.features = nn.Sequential(layers)
        self.head = ClassifierHead(c, num_classes, drop_rate=drop_rate)

    def forward_features(self, x):
        return self.features(x)


def shufflenet_v1_net(groups=3, width_mult=1.0, shuffle=True, num_classes=1000, in_chans=3,
                      drop_rate=0.0, se=False, shallow=False):
    conv1, stages = v1_widths(groups, width_mult)

    def unit(cin, cout, stride, stage, j):
        # Table 1, note 1: no group convolution on the first pointwise layer of Stage 2,
        # whose input has too few channels
        return ShuffleV1Unit(cin, cout, groups, stride, first_grouped=(stage, j) != (0, 0),
                             shuffle=shuffle, se=se)

    repeats = V1_SHALLOW_REPEATS if shallow else V1_REPEATS
    return ShuffleNet(conv1, stages, repeats, unit, None, num_classes, in_chans, drop_rate)


def shufflenet_v2_net(width_mult=1.0, num_classes=1000, in_chans=3, drop_rate=0.0,
                      half_split=False):
    """``half_split=True``: torchvision's stride-2 units (``release="torchvision"``)."""
    check_arg(width_mult in V2_CHANNELS, f"width_mult must be one of {sorted(V2_CHANNELS)} "
              f"(Table 5), got {width_mult!r}")
    *stages, conv5 = V2_CHANNELS[width_mult]

    def unit(cin, cout, stride, stage, j):
        return ShuffleV2Unit(cin, cout, stride, half_split)

    return ShuffleNet(V2_CONV1, stages, V2_REPEATS, unit, conv5, num_classes, in_chans,
                      drop_rate)


# --- ShuffleNet v1 ----------------------------------------------------------------------------
_T1_NOTE = ("Table 1's complexity leaves out the 1000-way FC layer: the convolutions alone "
            "count {conv}, which rounds to the printed figure")
_T2_NOTE = "Table 2 prints one nominal complexity per width for every g"
_T2_G8_NOTE = (_T2_NOTE + "; below 1x the authors' g = 8 network has a 16-filter Conv1 "
               "(12 would not split into 8 groups)")
# g: (Table 1 complexity, exact count if Table 1 differs, conv-only count), Table 2 errors
# at 1x, 0.5x, 0.25x; exact counts at 0.5x / 0.25x where the nominal 38 / 13 M is off
_V1_ROWS = {
    1: ("143M", None, None, (33.6, 45.1, 57.1), (38_517_408, None)),
    2: ("140M", 140_836_512, "140.04 M", (32.7, 44.4, 56.8), (38_914_784, None)),
    3: ("137M", None, None, (32.6, 43.2, 55.0), (None, None)),
    4: ("133M", 134_339_776, "133.25 M", (32.8, 41.6, 54.2), (None, None)),
    8: ("137M", 138_365_952, "136.83 M", (32.4, 42.3, 52.7), (40_469_760, 15_719_040)),
}


def _v1_refs(g):
    t1, exact, conv, err, (e50, e25) = _V1_ROWS[g]
    refs = [{"macs": t1, "table": "Table 1 / Table 2", "top1": round(100 - err[0], 1)}]
    if exact:
        refs[0].update(exact_macs=exact, note=_T1_NOTE.format(conv=conv))
    for s, fig, exact_s, e in ((0.5, "38M", e50, err[1]), (0.25, "13M", e25, err[2])):
        ref = {"macs": fig, "table": "Table 2", "top1": round(100 - e, 1),
               "kwargs": {"width_mult": s}}
        if exact_s:
            ref.update(exact_macs=exact_s, note=_T2_G8_NOTE if g == 8 else _T2_NOTE)
        refs.append(ref)
    return refs


_V1_G3_REFS = [
    {"macs": "524M", "table": "Table 5 / Table 8", "top1": 73.7, "kwargs": {"width_mult": 2.0}},
    {"macs": "292M", "table": "Table 5", "top1": 71.5, "kwargs": {"width_mult": 1.5}},
    {"macs": "140M", "exact_macs": "137M", "table": "Table 8", "top1": 67.4,
     "note": "Table 8 prints Table 2's nominal 140 M for 1x (g = 3); Table 1 gives 137 M"},
    {"macs": "38M", "table": "Table 8", "top1": 56.8, "kwargs": {"width_mult": 0.5}},
]


@register_model(paper=SHUFFLENET, reference=_V1_G3_REFS)
def shufflenet_v1(groups=3, width_mult=1.0, shuffle=True, num_classes=1000, in_chans=3,
                  drop_rate=0.0, se=False, shallow=False):
    """ShuffleNet s× with g groups (Table 1); ``shuffle=False`` is Table 3's ablation,
    ``se=True`` Table 5's squeeze-and-excitation units (reduction 16), ``shallow=True``
    Table 5's 26-layer network (half the units of Stages 2-4)."""
    return shufflenet_v1_net(groups, width_mult, shuffle, num_classes, in_chans, drop_rate, se,
                             shallow)


for _g in V1_CHANNELS:
    register_model(shufflenet_v1, name=f"shufflenet_v1_g{_g}", fixed={"groups": _g},
                   paper=SHUFFLENET, reference=_v1_refs(_g),
                   doc=f"ShuffleNet s× with g = {_g} (Table 1 column, Table 2 rows).")

# Table 5's two variants, Sec. 4.3. The paper says only "SE modules [13]": SENet's place in a
# residual unit is the branch, before the add (here also before the strided unit's concat),
# with reduction 16. Gating the unit's whole output instead would count 526.93 M.
register_model(
    shufflenet_v1, name="shufflenet_v1_se", fixed={"se": True},
    defaults={"width_mult": 2.0}, paper=SHUFFLENET,
    reference={"macs": "527M", "exact_macs": "526.5M", "table": "Table 5 (2x with SE, g = 3)",
               "top1": 75.3, "kwargs": {"width_mult": 2.0},
               "note": "SE (reduction 16) on each unit's branch, as SENet places it in "
                       "residual units, counts 526.49 M, which the paper rounds to 527 M"},
    doc="ShuffleNet 2× (g = 3) with an SE module in every unit (Table 5: 527 M, 24.7 % err).")
register_model(
    shufflenet_v1, name="shufflenet_v1_shallow", fixed={"shallow": True},
    defaults={"width_mult": 0.5}, paper=SHUFFLENET,
    reference={"macs": "40M", "exact_macs": 21_584_496, "top1": 57.2,
               "table": "Table 5 (0.5x shallow, g = 3)", "kwargs": {"width_mult": 0.5},
               "note": "Sec. 4.3 builds it by removing half of the blocks in Stage 2-4 (26 "
                       "layers), which counts 21.58 M at 0.5x; the paper does not say how its "
                       "40 M were reached (about 0.73x width would give them)"},
    doc="ShuffleNet 0.5× (g = 3), 26 layers: half the units of Stages 2-4 (Table 5, Sec. 4.3: "
        "40 M printed, 21.58 M counted).")


# --- ShuffleNet V2 ----------------------------------------------------------------------------
_V2_NOTE = ("Table 5 rounds up: the network counts 40.48 M (its 146 / 299 / 591 M are "
            "145.81 / 298.97 / 590.78 M)")
_V2_ROWS = {  # name: (width, FLOPs, weights, top-1 of Table 8), all Table 5
    "x0_5": (0.5, "41M", "1.4M", 60.3),
    "x1_0": (1.0, "146M", "2.3M", 69.4),
    "x1_5": (1.5, "299M", "3.5M", 72.6),
    "x2_0": (2.0, "591M", "7.4M", 74.9),
}


def _v2_ref(width, flops, weights, top1):
    ref = {"macs": flops, "params": weights, "table": "Table 5 (top-1: Table 8)", "top1": top1}
    if width == 0.5:
        ref.update(exact_macs="40.48M", note=_V2_NOTE)
    return ref


for _s, (_width, *_figures) in _V2_ROWS.items():
    # the authors' code puts dropout 0.2 before the classifier of 2× only
    register_model(shufflenet_v2_net, name=f"shufflenet_v2_{_s}", fixed={"width_mult": _width},
                   defaults={"drop_rate": 0.2 if _width == 2.0 else 0.0}, paper=SHUFFLENET_V2,
                   reference=_v2_ref(_width, *_figures), doc=f"ShuffleNet V2 {_width}× (Table 5).")
