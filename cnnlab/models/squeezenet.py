"""SqueezeNet (Iandola et al. 2016), Table 1; bypass variants of Table 3; the design space of
Sec. 5.

Three strategies (Sec. 3.1): replace 3×3 filters by 1×1, feed the remaining 3×3 filters few
channels (the squeeze layer of each Fire module), and downsample late so most layers see large
maps. Eight Fire modules sit between a 7×7 conv1 and a 1×1 conv10 classifier; there is no
fully connected layer. The module names follow Table 1, so ``cnnlab summary squeezenet1_0
--depth 1`` prints its per-layer parameter counts.

Table 1's map sizes (111×111 after a 7×7/2 conv1) need a 227-pixel input, the crop of the
released Caffe model; its "224×224×3" input row would give 109×109. Pooling rounds up, as
Caffe's does.
"""

from __future__ import annotations

import math
from collections import OrderedDict

import torch.nn as nn

from cnnlab.layers import Fire
from cnnlab.models.base import ConvNet, check_arg
from cnnlab.registry import Paper, register_model

SQUEEZENET = Paper("SqueezeNet: AlexNet-level accuracy with 50x fewer parameters and <0.5MB "
                   "model size", "Iandola, Han, Moskewicz, Ashraf, Dally, Keutzer", 2016,
                   "1602.07360")

# Table 1: conv1 (filters, kernel, stride); each Fire module (name, s1x1, e1x1, e3x3);
# "maxpoolN" = 3×3 max pool, stride 2
CONV1_1_0 = (96, 7, 2)
BODY_1_0 = [
    "maxpool1",
    ("fire2", 16, 64, 64),
    ("fire3", 16, 64, 64),
    ("fire4", 32, 128, 128),
    "maxpool4",
    ("fire5", 32, 128, 128),
    ("fire6", 48, 192, 192),
    ("fire7", 48, 192, 192),
    ("fire8", 64, 256, 256),
    "maxpool8",
    ("fire9", 64, 256, 256),
]  # then dropout 50 %, conv10 (1×1, one filter per class), global average pool

# SqueezeNet v1.1 (the authors' release, not in the paper): a 3×3 conv1 with 64 filters and
# the pools moved earlier, "2.4x less computation than v1.0, without sacrificing accuracy"
CONV1_1_1 = (64, 3, 2)
BODY_1_1 = [
    "maxpool1",
    ("fire2", 16, 64, 64),
    ("fire3", 16, 64, 64),
    "maxpool3",
    ("fire4", 32, 128, 128),
    ("fire5", 32, 128, 128),
    "maxpool5",
    ("fire6", 48, 192, 192),
    ("fire7", 48, 192, 192),
    ("fire8", 64, 256, 256),
    ("fire9", 64, 256, 256),
]

# Sec. 6, Fig. 2: a simple bypass goes around the Fire modules whose input and output widths
# match; the complex bypass adds 1×1-convolution bypasses around the others
SIMPLE_BYPASS = ("fire3", "fire5", "fire7", "fire9")
COMPLEX_BYPASS = ("fire2", "fire4", "fire6", "fire8")

# Sec. 5.1: the metaparameters of the design space; these values give Table 1
PAPER_METAPARAMETERS = dict(base_e=128, incr_e=128, pct_3x3=0.5, freq=2, sr=0.125)


def fire_layout(base_e: int = 128, incr_e: int = 128, pct_3x3: float = 0.5, freq: int = 2,
                sr: float = 0.125, n_fire: int = 8) -> list[tuple[int, int, int]]:
    """``(s1x1, e1x1, e3x3)`` of Fire modules i = 0 … n_fire − 1 (Sec. 5.1):

    e_i = base_e + incr_e · ⌊i / freq⌋,  e3x3 = pct_3x3 · e_i,  e1x1 = e_i − e3x3,
    s1x1 = SR · e_i.

    Fractional counts are rounded to the nearest integer; every count must stay ≥ 1.
    """
    check_arg(isinstance(base_e, int) and base_e > 0, f"base_e must be a positive int, "
              f"got {base_e!r}")
    check_arg(isinstance(incr_e, int) and incr_e >= 0, f"incr_e must be an int >= 0, "
              f"got {incr_e!r}")
    check_arg(isinstance(freq, int) and freq > 0, f"freq must be a positive int, got {freq!r}")
    check_arg(0 < pct_3x3 < 1, f"pct_3x3 must lie strictly between 0 and 1, got {pct_3x3!r}")
    check_arg(0 < sr <= 1, f"sr (squeeze ratio) must lie in (0, 1], got {sr!r}")
    check_arg(isinstance(n_fire, int) and n_fire > 0, f"n_fire must be a positive int, "
              f"got {n_fire!r}")
    layout = []
    for i in range(n_fire):
        e = base_e + incr_e * math.floor(i / freq)
        e3 = round(pct_3x3 * e)
        e1, s = e - e3, round(sr * e)
        check_arg(min(s, e1, e3) >= 1, f"Fire module {i + 2} would get s1x1={s}, e1x1={e1}, "
                  f"e3x3={e3}: every count must be at least 1")
        layout.append((s, e1, e3))
    return layout


def body_from_layout(layout, template=BODY_1_0):
    """Put a :func:`fire_layout` into the v1.0 macroarchitecture (pools after fire4, fire8)."""
    fires = iter(layout)
    check_arg(len(layout) == sum(isinstance(v, tuple) for v in template),
              f"the SqueezeNet macroarchitecture has "
              f"{sum(isinstance(v, tuple) for v in template)} Fire modules, got {len(layout)}")
    return [v if isinstance(v, str) else (v[0], *next(fires)) for v in template]


class SqueezeNet(ConvNet):
    def __init__(self, conv1=CONV1_1_0, body=BODY_1_0, bypass=None, num_classes=1000,
                 in_chans=3, drop_rate=0.5):
        super().__init__()
        check_arg(bypass in (None, "simple", "complex"),
                  f"bypass must be None, 'simple' or 'complex', got {bypass!r}")
        self.num_classes = num_classes
        filters, k, stride = conv1
        self.conv1 = nn.Sequential(OrderedDict(conv=nn.Conv2d(in_chans, filters, k, stride),
                                               act=nn.ReLU(inplace=True)))
        self._features = ["conv1"]
        self.add_feature("conv1", stride, filters)
        c, reduction = filters, stride
        for v in body:
            if isinstance(v, str):  # maxpoolN
                setattr(self, v, nn.MaxPool2d(3, 2, ceil_mode=True))
                reduction *= 2
            else:
                name, s1, e1, e3 = v
                kind = None
                if bypass and name in SIMPLE_BYPASS:
                    kind = "simple"
                elif bypass == "complex" and name in COMPLEX_BYPASS:
                    kind = "complex"
                setattr(self, name, Fire(c, s1, e1, e3, bypass=kind))
                c = e1 + e3
            self._features.append(v if isinstance(v, str) else v[0])
            self.add_feature(self._features[-1], reduction, c)
        self.num_features = c
        self.drop9 = nn.Dropout(drop_rate) if drop_rate > 0 else nn.Identity()
        self.conv10 = nn.Sequential(OrderedDict(conv=nn.Conv2d(c, num_classes, 1),
                                                act=nn.ReLU(inplace=True)))
        self.avgpool10 = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten(1)
        self.min_input_size = 21 if conv1 == CONV1_1_0 else 17

    def init_weights(self):
        super().init_weights()
        if isinstance(self.conv10.conv, nn.Conv2d):
            nn.init.normal_(self.conv10.conv.weight, 0.0, 0.01)  # the released model's init
            nn.init.zeros_(self.conv10.conv.bias)

    def forward_features(self, x):
        for name in self._features:
            x = getattr(self, name)(x)
        return x

    def forward_head(self, x, pre_logits=False):
        x = self.drop9(x)
        if pre_logits:
            return self.flatten(self.avgpool10(x))
        return self.flatten(self.avgpool10(self.conv10(x)))

    def get_classifier(self):
        return self.conv10.conv

    def reset_classifier(self, num_classes):
        # headless: the ReLU passes fire9's non-negative maps as they are
        device = next(self.parameters()).device
        self.conv10.conv = nn.Conv2d(self.num_features, num_classes, 1, device=device) \
            if num_classes else nn.Identity()
        self.num_classes = num_classes


_PARAMS_NOTE = ("Table 1 total; Table 2/3's 4.8 MB is these weights at 32 bit in MiB "
                "(1,248,424 x 4 B = 4.76 MiB)")
_REFS_1_0 = [
    {"params": 1_248_424, "table": "Table 1", "top1": 57.5, "top5": 80.3},
    {"size_mib": "4.8", "table": "Table 2/3 (MB = MiB: 1,248,424 x 4 B = 4.76 MiB)"},
    {"macs": "833M", "table": "ShuffleNet (Zhang et al. 2018) Table 6"},
    {"macs": "1700M", "exact_macs": "833M", "table": "MobileNets (Howard et al. 2017) Table 9",
     "note": "MobileNets prints 1,700 M mult-adds, about twice the network's 833 M (the count "
             "ShuffleNet's Table 6 prints)"},
]


@register_model(paper=SQUEEZENET, input_size=(3, 227, 227), reference=_REFS_1_0)
def squeezenet1_0(num_classes=1000, in_chans=3, drop_rate=0.5):
    """SqueezeNet v1.0 (Table 1): 1,248,424 parameters, 4.8 MB at 32 bit."""
    return SqueezeNet(CONV1_1_0, BODY_1_0, None, num_classes, in_chans, drop_rate)


@register_model(paper=SQUEEZENET, input_size=(3, 227, 227), reference={
    "params": 1_248_424, "size_mib": "4.8",
    "table": "Table 3 (4.8 MB: a simple bypass adds no parameter)", "top1": 60.4, "top5": 82.5})
def squeezenet1_0_simple_bypass(num_classes=1000, in_chans=3, drop_rate=0.5):
    """SqueezeNet with simple bypass (Sec. 6, Fig. 2 middle): identity shortcuts around
    fire3, fire5, fire7 and fire9."""
    return SqueezeNet(CONV1_1_0, BODY_1_0, "simple", num_classes, in_chans, drop_rate)


@register_model(paper=SQUEEZENET, input_size=(3, 227, 227), reference={
    "size_mib": "7.7", "exact_size_mib": "6.06", "exact_params": 1_588_392,
    "table": "Table 3 (model size at 32 bit)", "top1": 58.8, "top5": 82.0,
    "note": "Table 3 prints 7.7 MB; the 1x1 bypass convolutions described in Sec. 6 (around "
            "fire2/4/6/8, no bias) add 339,968 weights: 1,588,392 params = 6.06 MiB"})
def squeezenet1_0_complex_bypass(num_classes=1000, in_chans=3, drop_rate=0.5):
    """SqueezeNet with complex bypass (Sec. 6, Fig. 2 right): the simple bypasses plus 1×1
    convolution bypasses around fire2, fire4, fire6 and fire8."""
    return SqueezeNet(CONV1_1_0, BODY_1_0, "complex", num_classes, in_chans, drop_rate)


@register_model(paper=SQUEEZENET, input_size=(3, 227, 227))
def squeezenet1_1(num_classes=1000, in_chans=3, drop_rate=0.5):
    """SqueezeNet v1.1 (the authors' release after the paper): 3×3 conv1 with 64 filters,
    pools after conv1, fire3 and fire5; same Fire modules. The release says "2.4x less
    computation": 819 → 349 M mult-adds at 224 px (2.3×), 833 → 388 M at 227 px."""
    return SqueezeNet(CONV1_1_1, BODY_1_1, None, num_classes, in_chans, drop_rate)


@register_model(paper=SQUEEZENET, input_size=(3, 227, 227))
def squeezenet_design(base_e=128, incr_e=128, pct_3x3=0.5, freq=2, sr=0.125, bypass=None,
                      num_classes=1000, in_chans=3, drop_rate=0.5):
    """A point of SqueezeNet's design space (Sec. 5, Fig. 3): the v1.0 macroarchitecture with
    Fire modules from the metaparameters (see :func:`fire_layout`); the defaults are
    Table 1's network."""
    layout = fire_layout(base_e, incr_e, pct_3x3, freq, sr)
    return SqueezeNet(CONV1_1_0, body_from_layout(layout), bypass, num_classes, in_chans,
                      drop_rate)
