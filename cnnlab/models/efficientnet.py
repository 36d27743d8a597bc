"""EfficientNet (Tan & Le 2019): one baseline (B0, Table 1) scaled up in depth, width and
resolution together.

Compound scaling (Sec. 3.3, Eq. 3): depth d = α^φ, width w = β^φ, resolution r = γ^φ with
α = 1.2, β = 1.1, γ = 1.15 found by grid search at φ = 1 under α·β²·γ² ≈ 2, so mult-adds grow
by about 2^φ. Widths are rounded to a multiple of 8 (:func:`cnnlab.layers.make_divisible`)
and repeats rounded up.

Which coefficients the builders use: ``efficientnet_b1`` … ``b7`` are the networks the
authors released and Table 2 reports, built from the authors' coefficient table
:data:`COEFFICIENTS` (width, depth, resolution, dropout). That table is *not* α^φ, β^φ, γ^φ at
integer φ (B1 has width 1.0 and depth 1.1; φ = 1 would give 1.1 and 1.2 at 258 px), so
Table 2's figures belong to it. :func:`compound_scaling` gives the pure Eq. 3 network for
any φ, and :func:`cnnlab.search.compound.phi_for_budget` finds the largest φ that fits a
mult-add budget.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import torch.nn as nn

from cnnlab.layers.conv import ConvNormAct, make_divisible
from cnnlab.layers.inverted_residual import MBConv
from cnnlab.models.base import ClassifierHead, ConvNet, check_arg
from cnnlab.registry import Paper, register_model

EFFICIENTNET = Paper("EfficientNet: Rethinking Model Scaling for Convolutional Neural Networks",
                     "Tan, Le", 2019, "1905.11946")


@dataclass(frozen=True)
class MBConvStage:
    """One row of Table 1: ``n`` MBConv``e`` blocks with k×k depthwise kernels and ``c``
    output channels; the first has stride ``s``."""

    k: int
    s: int
    e: int
    c: int
    n: int


STEM = 32  # stage 1: Conv3x3 / s2
HEAD = 1280  # stage 9: Conv1x1 & Pooling & FC
SE_RATIO = 0.25  # of each block's input channels
# EfficientNet-B0, Table 1, stages 2-8. The strides follow the resolution column of the
# paper (and the released network): the 80-channel stage halves 28 -> 14, the 112-channel
# stage keeps 14x14. The lecture deck prints stage 6 at 28x28, which would move that stride.
STAGES = [  #   kernel stride expand out repeats
    MBConvStage(k=3, s=1, e=1, c=16, n=1),
    MBConvStage(k=3, s=2, e=6, c=24, n=2),
    MBConvStage(k=5, s=2, e=6, c=40, n=2),
    MBConvStage(k=3, s=2, e=6, c=80, n=3),
    MBConvStage(k=5, s=1, e=6, c=112, n=3),
    MBConvStage(k=5, s=2, e=6, c=192, n=4),
    MBConvStage(k=3, s=1, e=6, c=320, n=1),
]
ALPHA, BETA, GAMMA = 1.2, 1.1, 1.15  # Sec. 4, step 1
BASE_RESOLUTION = 224
# The authors' released B0-B7: (width, depth, resolution, dropout). Sec. 5.2: dropout rises
# linearly from 0.2 (B0) to 0.5 (B7).
COEFFICIENTS = {
    "b0": (1.0, 1.0, 224, 0.2),
    "b1": (1.0, 1.1, 240, 0.2),
    "b2": (1.1, 1.2, 260, 0.3),
    "b3": (1.2, 1.4, 300, 0.3),
    "b4": (1.4, 1.8, 380, 0.4),
    "b5": (1.6, 2.2, 456, 0.4),
    "b6": (1.8, 2.6, 528, 0.5),
    "b7": (2.0, 3.1, 600, 0.5),
}


@dataclass(frozen=True)
class EfficientNetConfig:
    """A scaled network: coefficients and the channels/repeats they give."""

    width: float
    depth: float
    resolution: int
    dropout: float
    stem: int
    stages: tuple[MBConvStage, ...]
    head: int

    @property
    def widths(self) -> list[int]:
        return [self.stem, *(st.c for st in self.stages), self.head]

    @property
    def repeats(self) -> list[int]:
        return [st.n for st in self.stages]


def scale(width: float = 1.0, depth: float = 1.0, resolution: int = BASE_RESOLUTION,
          dropout: float = 0.2, stages=STAGES) -> EfficientNetConfig:
    """Scale B0 by width and depth multipliers: channels ``make_divisible(c·w, 8)``, repeats
    ``ceil(n·d)`` (the stem and the head are widened too)."""
    check_arg(width > 0 and depth > 0, f"width and depth must be positive, got {width}, {depth}")
    check_arg(int(resolution) >= 1, f"resolution must be positive, got {resolution!r}")
    return EfficientNetConfig(
        width=width, depth=depth, resolution=int(resolution), dropout=dropout,
        stem=make_divisible(STEM * width),
        stages=tuple(replace(st, c=make_divisible(st.c * width), n=math.ceil(st.n * depth))
                     for st in stages),
        head=make_divisible(HEAD * width),
    )


def compound_coefficients(phi: float, alpha: float = ALPHA, beta: float = BETA,
                          gamma: float = GAMMA) -> tuple[float, float, float]:
    """Eq. 3: (width β^φ, depth α^φ, resolution multiplier γ^φ)."""
    check_arg(all(v >= 1 for v in (alpha, beta, gamma)),
              f"alpha, beta, gamma must be >= 1 (Eq. 3), got {alpha}, {beta}, {gamma}")
    return beta ** phi, alpha ** phi, gamma ** phi


def compound_scaling(phi: float, alpha: float = ALPHA, beta: float = BETA, gamma: float = GAMMA,
                     base_resolution: int = BASE_RESOLUTION,
                     dropout: float = 0.2) -> EfficientNetConfig:
    """The B0 baseline scaled by compound coefficient ``phi`` (Eq. 3); the resolution is
    ``base_resolution · γ^φ`` rounded to the nearest pixel."""
    check_arg(isinstance(phi, (int, float)) and math.isfinite(phi),
              f"phi must be a finite number, got {phi!r}")
    w, d, r = compound_coefficients(phi, alpha, beta, gamma)
    return scale(w, d, max(1, round(base_resolution * r)), dropout)


class EfficientNet(ConvNet):
    """Stem, the MBConv stages of ``config``, a 1×1 head convolution, pooling and FC.

    ``drop_path_rate`` is stochastic depth (Sec. 5.2, survival 0.8 at the last block), rising
    linearly with the block index as in the authors' code.
    """

    min_input_size = 1  # every strided convolution is padded: 1×1 stays 1×1

    def __init__(self, config: EfficientNetConfig, num_classes=1000, in_chans=3,
                 drop_rate=None, drop_path_rate=0.2):
        super().__init__()
        drop_rate = config.dropout if drop_rate is None else drop_rate
        check_arg(0 <= drop_rate < 1, f"drop_rate must be in [0, 1), got {drop_rate!r}")
        check_arg(0 <= drop_path_rate < 1,
                  f"drop_path_rate must be in [0, 1), got {drop_path_rate!r}")
        self.config = config
        self.num_classes = num_classes
        self.default_input_size = (in_chans, config.resolution, config.resolution)
        c = config.stem
        self.stem = ConvNormAct(in_chans, c, 3, 2, act=nn.SiLU)
        self.add_feature("stem", 2, c)
        total, idx, reduction = sum(config.repeats), 0, 2
        stages = []
        for i, st in enumerate(config.stages):
            blocks = []
            for j in range(st.n):
                stride = st.s if j == 0 else 1
                blocks.append(MBConv(c, st.c, stride, st.e, st.k, se_ratio=SE_RATIO,
                                     drop_path=drop_path_rate * idx / total))
                c, idx, reduction = st.c, idx + 1, reduction * stride
            stages.append(nn.Sequential(*blocks))
            self.add_feature(f"stages.{i}", reduction, c)
        self.stages = nn.Sequential(*stages)
        self.conv_head = ConvNormAct(c, config.head, 1, act=nn.SiLU)
        self.num_features = config.head
        self.head = ClassifierHead(config.head, num_classes, drop_rate=drop_rate)

    def init_weights(self) -> None:
        """The authors' released initialisation (the paper states none): conv kernels
        N(0, 2 / fan_out) with fan_out = k²·out/groups, so a depthwise filter's fan-out is k²;
        the classifier U(±1/√classes); biases zero, batch norm at identity."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                fan_out = m.kernel_size[0] * m.kernel_size[1] * m.out_channels // m.groups
                nn.init.normal_(m.weight, 0.0, math.sqrt(2.0 / fan_out))
            elif isinstance(m, nn.Linear):
                bound = 1.0 / math.sqrt(m.out_features)
                nn.init.uniform_(m.weight, -bound, bound)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
            if isinstance(m, (nn.Conv2d, nn.Linear, nn.BatchNorm2d)) and m.bias is not None:
                nn.init.zeros_(m.bias)

    def forward_features(self, x):
        return self.conv_head(self.stages(self.stem(x)))


def efficientnet(variant, num_classes=1000, in_chans=3, drop_rate=None, drop_path_rate=0.2):
    """EfficientNet-``variant`` from :data:`COEFFICIENTS`; ``drop_rate`` defaults to the
    variant's dropout."""
    check_arg(variant in COEFFICIENTS, f"variant must be one of {', '.join(COEFFICIENTS)}, "
                                       f"got {variant!r}")
    return EfficientNet(scale(*COEFFICIENTS[variant]), num_classes, in_chans, drop_rate,
                        drop_path_rate)


def _note(variant, what, count):
    w, d, r, _ = COEFFICIENTS[variant]
    return (f"Table 2's {what} is not the released {variant.upper()}'s count: width {w}, "
            f"depth {d} at {r} px gives {count}. No one counting convention explains "
            "Table 2's gaps (B1's figure is above the network's count, B4's below)")


# Table 2: params and FLOPs (mult-adds) as printed; where a figure is not the released
# network's, the exact count and the note that says so
TABLE2 = {
    "b0": ("5.3M", "0.39B", {}),
    "b1": ("7.8M", "0.70B", {"exact_macs": 686_802_832,
                             "note": _note("b1", "0.70 B", "686.8 M mult-adds (-1.9 %)")}),
    "b2": ("9.2M", "1.0B", {"exact_params": 9_109_994,
                            "note": _note("b2", "9.2 M", "9,109,994 parameters (-1.0 %)")}),
    "b3": ("12M", "1.8B", {}),
    "b4": ("19M", "4.2B", {"exact_macs": 4_393_771_024,
                           "note": _note("b4", "4.2 B", "4.39 B mult-adds (+4.6 %)")}),
    "b5": ("30M", "9.9B", {"exact_macs": 10_266_384_752,
                           "note": _note("b5", "9.9 B", "10.27 B mult-adds (+3.7 %)")}),
    "b6": ("43M", "19B", {}),
    "b7": ("66M", "37B", {"exact_macs": 37_745_884_192,
                          "note": _note("b7", "37 B", "37.75 B mult-adds (+2.0 %)")}),
}

for _v, (_w, _d, _r, _dropout) in COEFFICIENTS.items():
    _params, _macs, _exact = TABLE2[_v]
    register_model(efficientnet, name=f"efficientnet_{_v}", fixed={"variant": _v},
                   defaults={"drop_rate": _dropout}, paper=EFFICIENTNET, input_size=(3, _r, _r),
                   reference={"params": _params, "macs": _macs, "table": "Table 2", **_exact},
                   doc="EfficientNet-B0 (Table 1): the baseline, 224 px." if _v == "b0" else
                       f"EfficientNet-{_v.upper()} (Table 2): width {_w}, depth {_d}, {_r} px.")
