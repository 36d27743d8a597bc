"""Small networks for the ablations, each built from the library's own layers with the one
switch a paper's comparison turns. They know nothing of training."""

from __future__ import annotations

from collections import OrderedDict
from functools import cache, partial

import torch
from torch import nn

from cnnlab.layers import ConvNormAct, DepthwiseSeparable, Fire, InvertedResidual
from cnnlab.layers.conv import _make_act

ACTS = {"none": None, "relu": nn.ReLU, "elu": nn.ELU, "tanh": nn.Tanh, "relu6": nn.ReLU6}


def _head(c: int, num_classes: int, kind: str = "gap", spatial: int = 1) -> nn.Sequential:
    """``gap``: global average pooling → linear (NIN Sec. 3.2); ``fc``: flatten → FC 128 →
    ReLU → dropout 0.5 → linear (the AlexNet/VGG head)."""
    if kind == "gap":
        return nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c, num_classes))
    if kind == "fc":
        return nn.Sequential(nn.Flatten(), nn.Linear(c * spatial * spatial, 128),
                             nn.ReLU(inplace=True), nn.Dropout(0.5), nn.Linear(128, num_classes))
    raise ValueError(f"head must be 'gap' or 'fc', got {kind!r}")


def _pair(c: int, w: int, stride: int, norm: bool, act: str, conv: str) -> list[nn.Module]:
    """One stage's convolutions: two 3×3 (``conv="3x3"``), one 5×5 (``"5x5"``), or the 5×5
    factorised into two 3×3 with a linear (``"3x3_linear"``) or ReLU (``"3x3_relu"``) middle
    (Szegedy et al. 2016, Sec. 3.1, Fig. 2); ``"3x1_1x3_linear"`` / ``"3x1_1x3_relu"``: two
    3×3 with the second (w → w) factorised into 3×1 then 1×3, the same receptive field at
    6w² instead of 9w² weights (Sec. 3.2, Fig. 3: 33 % cheaper)."""
    a = ACTS[act]
    if conv in ("3x1_1x3_linear", "3x1_1x3_relu"):
        return [ConvNormAct(c, w, 3, stride, norm=norm, act=a),
                ConvNormAct(w, w, (3, 1), norm=norm, act=a if conv == "3x1_1x3_relu" else None),
                ConvNormAct(w, w, (1, 3), norm=norm, act=a)]
    if conv == "3x3":
        return [ConvNormAct(c, w, 3, stride, norm=norm, act=a),
                ConvNormAct(w, w, 3, norm=norm, act=a)]
    if conv == "5x5":
        return [ConvNormAct(c, w, 5, stride, norm=norm, act=a)]
    if conv in ("3x3_linear", "3x3_relu"):
        return [ConvNormAct(c, w, 3, stride, norm=norm, act=a if conv == "3x3_relu" else None),
                ConvNormAct(w, w, 3, norm=norm, act=a)]
    raise ValueError(f"conv must be 3x3, 5x5, 3x3_linear, 3x3_relu, 3x1_1x3_linear or "
                     f"3x1_1x3_relu, got {conv!r}")


def plain_cnn(in_chans: int, num_classes: int, act: str = "relu", down: str = "max",
              head: str = "gap", widths=(16, 32, 64), norm: bool = True,
              side: int = 16, conv: str = "3x3", init: str = "default") -> nn.Module:
    """conv stages (see :func:`_pair`), widths doubling; between stages a 2×2 max pool
    (``down="max"``), an overlapping 3×3/2 one (``"overlap"``, AlexNet Sec. 3.4) or the next
    stage's first conv at stride 2 (``"stride"``, All-CNN / SimpNet Table VI); ``act`` any
    of relu/tanh/elu; ``head`` gap or fc. ``init``: PyTorch's default, or ``"act"``: the
    weights N(0, gain²/fan_in) with the activation's gain (√2 for ReLU, He et al. 2015; 5/3
    for tanh), biases zero, so that a net without batch norm keeps its signal's scale."""
    if down not in ("max", "overlap", "stride"):
        raise ValueError(f"down must be 'max', 'overlap' or 'stride', got {down!r}")
    if init not in ("default", "act") or (init == "act" and act not in ("relu", "tanh")):
        raise ValueError(f"init must be 'default', or 'act' with relu or tanh, got {init!r} "
                         f"with {act!r}")
    layers, c = [], in_chans
    for i, w in enumerate(widths):
        stride = 2 if i and down == "stride" else 1
        if i and down != "stride":
            layers.append(nn.MaxPool2d(2) if down == "max" else nn.MaxPool2d(3, 2, padding=1))
        layers += _pair(c, w, stride, norm, act, conv)
        c = w
    spatial = side // 2 ** (len(widths) - 1)
    model = nn.Sequential(*layers, _head(c, num_classes, head, spatial))
    if init == "act":
        for m in model.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.kaiming_normal_(m.weight, nonlinearity=act)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
    return model


class SegmentedSeparable(nn.Sequential):
    """Xception's spectrum (Chollet 2017, Sec. 2 and Fig. 4): a k×k convolution over
    ``segments`` channel groups, then a 1×1 pointwise convolution. ``segments=1`` is a
    regular convolution (+ 1×1), ``segments=C`` the depthwise separable convolution; the
    Inception module sits in between. ``mid_act`` is the activation between the two
    (none / relu / elu, Fig. 10: none is best)."""

    def __init__(self, in_chs: int, out_chs: int, segments: int, mid_act: str = "none",
                 kernel_size: int = 3):
        if segments < 1 or in_chs % segments:
            raise ValueError(f"segments must divide the {in_chs} channels, got {segments}")
        layers = OrderedDict(spatial=ConvNormAct(in_chs, in_chs, kernel_size, groups=segments,
                                                 act=None))
        if ACTS[mid_act] is not None:
            layers["mid_act"] = _make_act(ACTS[mid_act])
        layers["pw"] = ConvNormAct(in_chs, out_chs, 1)
        super().__init__(layers)
        self.segments = segments


def segment_net(in_chans: int, num_classes: int, segments: int | str = "C",
                mid_act: str = "none", width: int = 32) -> nn.Module:
    """stem conv → [SegmentedSeparable ×2 → max pool] ×2 at ``width`` and 2×``width``.
    ``segments="C"`` means one segment per channel (depthwise)."""
    layers, c = [ConvNormAct(in_chans, width, 3)], width
    for w in (width, 2 * width):
        for _ in range(2):
            s = c if segments == "C" else int(segments)
            layers.append(SegmentedSeparable(c, w, s, mid_act))
            c = w
        layers.append(nn.MaxPool2d(2))
    return nn.Sequential(*layers, _head(c, num_classes))


class ExpansionShortcut(nn.Module):
    """Fig. 6b's "shortcut between expansions" (Sandler et al. 2018): the residual joins two
    expanded tensors, around depthwise → linear projection → the next 1×1 expansion (the
    classical wide-narrow-wide residual), instead of joining the bottlenecks."""

    def __init__(self, dw: nn.Module, project: nn.Module, expand: nn.Module):
        super().__init__()
        self.dw, self.project, self.expand = dw, project, expand

    def forward(self, x):
        return x + self.expand(self.project(self.dw(x)))


SHORTCUTS = ("bottleneck", "expansion", "none")


def mbv2_net(in_chans: int, num_classes: int, linear: bool = True,
             shortcut: str = "bottleneck") -> nn.Module:
    """A small MobileNetV2 (Sandler et al. 2018, Table 2 in kind): stem, inverted residuals
    (t = 6), 1×1 to 6 × 32 = 192 (the last expansion), pool, linear. ``linear=False`` puts
    ReLU6 after each projection (Fig. 6a's non-linear bottleneck); ``shortcut`` (Fig. 6b):
    ``"bottleneck"`` (MobileNetV2's), ``"expansion"`` (the same layers, each residual moved
    to join the expanded tensors: :class:`ExpansionShortcut`; the t = 1 block, which has no
    expansion, keeps its own) or ``"none"``."""
    if shortcut not in SHORTCUTS:
        raise ValueError(f"shortcut must be one of {', '.join(SHORTCUTS)}, got {shortcut!r}")
    cfg = [(16, 1, 1), (24, 2, 6), (24, 1, 6), (32, 2, 6), (32, 1, 6)]
    stem, blocks, c = ConvNormAct(in_chans, 16, 3, act=nn.ReLU6), [], 16
    for out, stride, t in cfg:
        block = InvertedResidual(c, out, stride, t, skip=shortcut != "none")
        if not linear:
            block.project = ConvNormAct(block.hidden_chs, out, 1, act=nn.ReLU6)
        blocks.append(block)
        c = out
    last = ConvNormAct(c, 6 * c, 1, act=nn.ReLU6)
    body = _expansion_shortcuts(blocks, last) if shortcut == "expansion" else [*blocks, last]
    return nn.Sequential(stem, *body, _head(6 * c, num_classes))


def _expansion_shortcuts(blocks: list[InvertedResidual], last: nn.Module) -> list[nn.Module]:
    """The blocks' layers regrouped between expansions: [expand₁] [dw₁ project₁ expand₂]
    [dw₂ project₂ expand₃] ... [dwₙ projectₙ last], each group with a residual where its
    block had one."""
    layers = [] if isinstance(blocks[0].expand, nn.Identity) else [blocks[0].expand]
    nexts = [b.expand for b in blocks[1:]] + [last]
    for b, nxt in zip(blocks, nexts):
        if isinstance(b.expand, nn.Identity):  # t = 1: the wide tensor is the bottleneck
            layers += [b, nxt]
        elif b.has_skip:
            if nxt.out_channels != b.hidden_chs:
                raise ValueError("a shortcut between expansions needs the next expansion "
                                 f"at {b.hidden_chs} channels, got {nxt.out_channels}")
            layers.append(ExpansionShortcut(b.dw, b.project, nxt))
        else:
            layers += [b.dw, b.project, nxt]
    return layers


def shuffle_net(in_chans: int, num_classes: int, groups: int = 3, shuffle: bool = True,
                width: int = 96) -> nn.Module:
    """A two-stage ShuffleNet v1 (Zhang et al. 2018, Table 1 in kind: conv1 24, stages of
    ``width`` and 2×``width`` channels, two units each) with the channel shuffle on or off
    (Table 3)."""
    from cnnlab.models.shufflenet import ShuffleNet, ShuffleV1Unit

    def unit(cin, cout, stride, stage, j):
        return ShuffleV1Unit(cin, cout, groups, stride, first_grouped=(stage, j) != (0, 0),
                             shuffle=shuffle)

    return ShuffleNet(24, (width, 2 * width), (2, 2), unit, None, num_classes, in_chans)


@cache
def group_width(groups: int, in_chans: int, num_classes: int, size: tuple, target: int) -> int:
    """The stage-2 width (a multiple of 4g above 24, so that the quarter-width bottleneck
    splits into g groups) whose :func:`shuffle_net` comes closest to ``target`` mult-adds
    at ``size``."""
    from cnnlab.profile import profile

    step, best = 4 * groups, None
    # the first unit concatenates conv1's 24 channels to its branch: it must widen past them
    for w in range(step * (24 // step + 1), 1025, step):
        macs = profile(shuffle_net(in_chans, num_classes, groups, width=w),
                       (in_chans, *size[1:])).macs
        if best is None or abs(macs - target) < best[1]:
            best = (w, abs(macs - target))
        if macs > target:
            break
    return best[0]


def group_net(in_chans: int, num_classes: int, groups: int = 3, ref_groups: int = 8,
              ref_width: int = 96, size: tuple = (1, 32, 32)) -> nn.Module:
    """:func:`shuffle_net` with g ``groups``, widened or narrowed to the mult-adds of the
    ``ref_groups`` net at ``ref_width`` (by default the g = 8 net that Table 4's units are
    matched to): Table 1's rule (more groups, wider stages at the same complexity) applied to
    this skeleton, as Table 2 compares them."""
    from cnnlab.profile import profile

    size = (in_chans, *tuple(size)[1:])
    target = profile(shuffle_net(in_chans, num_classes, ref_groups, width=ref_width), size).macs
    width = group_width(groups, in_chans, num_classes, size, target)
    return shuffle_net(in_chans, num_classes, groups, width=width)


def squeeze_net(in_chans: int, num_classes: int, bypass: str = "none", sr: float = 0.25,
                pct3x3: float = 0.5, norm: bool = False) -> nn.Module:
    """A small SqueezeNet (Iandola et al. 2016, Fig. 2 in kind): conv → pool → four Fire
    modules → pool → conv 1×1 to the classes → global pool. ``sr`` is the squeeze ratio
    (squeeze filters / expand filters, Sec. 5.1, Fig. 3a), ``pct3x3`` the share of 3×3
    expand filters (Fig. 3b). ``bypass``: none, simple (identity around the Fire modules
    whose widths match) or complex (also 1×1 convolutions around the others), Table 3.
    ``norm`` puts batch norm after conv1 and after each Fire (not in the paper: without it
    this 16 K-parameter net stays near chance for hundreds of steps on 300 images)."""
    if bypass not in ("none", "simple", "complex"):
        raise ValueError(f"bypass must be none, simple or complex, got {bypass!r}")
    if not (0 < sr <= 1 and 0 < pct3x3 < 1):
        raise ValueError(f"need 0 < sr <= 1 and 0 < pct3x3 < 1, got {sr}, {pct3x3}")
    fires = [(32, 32), (32, 32), (32, 64), (64, 64)]
    layers = [nn.Conv2d(in_chans, 32, 3, padding=1)]
    layers += [nn.BatchNorm2d(32)] if norm else []
    layers += [nn.ReLU(inplace=True), nn.MaxPool2d(2)]
    for i, (cin, cout) in enumerate(fires):
        kind = None
        if bypass == "simple" and cin == cout and i % 2:
            kind = "simple"
        elif bypass == "complex":
            kind = "simple" if cin == cout and i % 2 else "complex"
        e3 = min(cout - 1, max(1, round(pct3x3 * cout)))
        layers.append(Fire(cin, max(1, round(sr * cout)), cout - e3, e3, bypass=kind))
        layers += [nn.BatchNorm2d(cout)] if norm else []
        if i == 1:
            layers.append(nn.MaxPool2d(2))
    layers += [nn.Dropout(0.5), nn.Conv2d(64, num_classes, 1), nn.ReLU(inplace=True),
               nn.AdaptiveAvgPool2d(1), nn.Flatten()]
    return nn.Sequential(*layers)


def mobilenet_small(in_chans: int, num_classes: int, alpha: float = 1.0,
                    full_conv: bool = False) -> nn.Module:
    """A small MobileNet (Howard et al. 2017, Table 1 in kind) at width multiplier α:
    conv 3×3 → depthwise separable blocks 64/2, 128, 128/2, 256 (×α) → pool → linear;
    ``full_conv`` puts full 3×3 convolutions in their place (Table 4's "Conv MobileNet")."""
    def w(c):
        return max(1, int(round(c * alpha)))

    layers, c = [ConvNormAct(in_chans, w(32), 3)], w(32)
    for out, stride in ((64, 2), (128, 1), (128, 2), (256, 1)):
        layers.append(ConvNormAct(c, w(out), 3, stride) if full_conv
                      else DepthwiseSeparable(c, w(out), stride))
        c = w(out)
    return nn.Sequential(*layers, _head(c, num_classes))


# --- fitting a variant to a budget ------------------------------------------------------------
def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def scale_at_params(make, target: int, lo: float = 1.0, hi: float = 1024.0,
                    integer: bool = False) -> float:
    """The scale whose ``make(scale)`` has the parameter count closest to ``target``
    (bisection on a monotone count; whole scales only when ``integer``), counted on the meta
    device (no memory, no initialisation)."""
    def count(scale):
        with torch.device("meta"):
            return n_params(make(scale))

    for _ in range(20):
        if integer and hi - lo <= 1:
            break
        mid = (lo + hi) // 2 if integer else (lo * hi) ** 0.5
        lo, hi = (mid, hi) if count(mid) < target else (lo, mid)
    return min((lo, hi), key=lambda s: abs(count(s) - target))


def at_params(make, target: int, lo: float = 1.0, hi: float = 1024.0,
              integer: bool = False) -> nn.Module:
    """``make(scale)`` at :func:`scale_at_params`, so that variants of different shape
    compare at equal parameters."""
    return make(scale_at_params(make, target, lo, hi, integer))


# --- SimpNet's principles (Hasanpour et al. 2018, deck 002:1115-1412) ----------------------------
def ramp(n: int, first: float, growth: float) -> list[int]:
    """``n`` widths growing linearly from ``first`` to ``first × growth`` (gradual
    expansion, SimpNet Sec. 3.1)."""
    return [max(1, round(first * (1 + (growth - 1) * i / max(n - 1, 1)))) for i in range(n)]


def simp_net(in_chans: int, num_classes: int, widths, pools, kernels=3,
             saf: float = 0.0) -> nn.Module:
    """A SimpNet-style plain stack: per width a k×k conv → BN → ReLU (``kernels``: one size
    or one per layer); a 2×2 max pool after each layer numbered (from 1) in ``pools``, then
    dropout ``saf`` (SAF-pooling, Sec. 3.5; 0: a plain pool); global max pooling → linear
    (SimpNet's head)."""
    ks = [kernels] * len(widths) if isinstance(kernels, int) else list(kernels)
    if len(ks) != len(widths) or not set(pools) <= set(range(1, len(widths) + 1)):
        raise ValueError("need one kernel size per layer and pools within the layers")
    layers, c = [], in_chans
    for i, (w, k) in enumerate(zip(widths, ks), 1):
        layers.append(ConvNormAct(c, w, k))
        c = w
        if i in pools:
            layers.append(nn.MaxPool2d(2))
            if saf:
                layers.append(nn.Dropout(saf))
    return nn.Sequential(*layers, nn.AdaptiveMaxPool2d(1), nn.Flatten(),
                         nn.Linear(c, num_classes))


def default_pools(n: int) -> tuple[int, int]:
    """SimpNet pools after layers 5 and 10 of 13: at about 40 % and 75 % of the depth."""
    return max(1, round(0.4 * n)), max(2, round(0.75 * n))


def simp_at(in_chans: int, num_classes: int, params: int, layers: int, growth: float = 3.0,
            pools=None, kernels=3, saf: float = 0.0, geometric: bool = False) -> nn.Module:
    """:func:`simp_net` with ``layers`` widths that grow ``growth``-fold (linearly, or
    ``geometric``-ally: most units at the end), scaled to ``params`` parameters."""
    pools = pools or default_pools(layers)

    def widths(first):
        if geometric:
            return [max(1, round(first * growth ** (i / (layers - 1)))) for i in range(layers)]
        return ramp(layers, first, growth)

    return at_params(lambda s: simp_net(in_chans, num_classes, widths(s), pools, kernels, saf),
                     params)


# --- Inception v3's grid-size reduction (Szegedy et al. 2016, Sec. 7, Figs. 9-10) ----------------
class GridReduction(nn.Module):
    """d×d×k → (d/2)×(d/2)×2k three ways (deck 002:677-685): ``pool_first`` (2×2 max pool,
    then a 3×3 conv k → 2k: cheap but a representational bottleneck), ``conv_first`` (3×3
    conv k → 2k at d×d, then the pool: 4× the mult-adds), ``efficient`` (a stride-2 3×3
    conv k → k beside a 3×3/2 max pool, concatenated: Fig. 10)."""

    KINDS = ("pool_first", "conv_first", "efficient")

    def __init__(self, k: int, kind: str):
        super().__init__()
        if kind not in self.KINDS:
            raise ValueError(f"reduction must be one of {', '.join(self.KINDS)}, got {kind!r}")
        self.kind = kind
        if kind == "pool_first":
            self.body = nn.Sequential(nn.MaxPool2d(2), ConvNormAct(k, 2 * k, 3))
        elif kind == "conv_first":
            self.body = nn.Sequential(ConvNormAct(k, 2 * k, 3), nn.MaxPool2d(2))
        else:
            self.conv = ConvNormAct(k, k, 3, 2)
            self.pool = nn.MaxPool2d(3, 2, padding=1)

    def forward(self, x):
        if self.kind == "efficient":
            return torch.cat([self.conv(x), self.pool(x)], 1)
        return self.body(x)


def grid_net(in_chans: int, num_classes: int, reduction: str = "efficient",
             width: int = 16) -> nn.Module:
    """conv ×2 at ``width`` → reduction → conv at 2×``width`` → reduction → conv at
    4×``width`` → global pool → linear; only the two reductions differ between variants."""
    w = width
    return nn.Sequential(ConvNormAct(in_chans, w, 3), ConvNormAct(w, w, 3),
                         GridReduction(w, reduction), ConvNormAct(2 * w, 2 * w, 3),
                         GridReduction(2 * w, reduction), ConvNormAct(4 * w, 4 * w, 3),
                         _head(4 * w, num_classes))


# --- ShuffleNet Table 4: other units in ShuffleNet's skeleton (Zhang et al. 2018, Sec. 4.1.3) ---
class VGGUnit(nn.Sequential):
    """"VGG-like": two 3×3 convolutions, each with batch norm (the first may stride)."""

    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__(ConvNormAct(cin, cout, 3, stride), ConvNormAct(cout, cout, 3))


class BottleneckUnit(nn.Module):
    """ResNet's bottleneck (``ratio`` 4, ``groups`` 1) or ResNeXt's (ratio 2, cardinality
    ``groups`` 16 in the 3×3): 1×1 → 3×3 → 1×1, added to the input (a 1×1 projection when
    the shape changes), ReLU."""

    def __init__(self, cin: int, cout: int, stride: int, ratio: int = 4, groups: int = 1):
        super().__init__()
        mid = max(groups, cout // ratio // groups * groups)
        self.body = nn.Sequential(ConvNormAct(cin, mid, 1),
                                  ConvNormAct(mid, mid, 3, stride, groups=groups),
                                  ConvNormAct(mid, cout, 1, act=None))
        self.shortcut = nn.Identity() if stride == 1 and cin == cout else \
            ConvNormAct(cin, cout, 1, stride, act=None)
        self.act = nn.ReLU(inplace=True)

    def forward(self, x):
        return self.act(self.body(x) + self.shortcut(x))


UNITS = ("shufflenet", "vgg_like", "resnet", "xception_like", "resnext")


def _unit_net(in_chans: int, num_classes: int, unit: str, width: int) -> nn.Module:
    from cnnlab.models.shufflenet import ShuffleNet, ShuffleV1Unit

    def make(cin, cout, stride, stage, j):
        if unit == "vgg_like":
            return VGGUnit(cin, cout, stride)
        if unit in ("resnet", "resnext"):
            return BottleneckUnit(cin, cout, stride, *((4, 1) if unit == "resnet" else (2, 16)))
        # Xception-like: ShuffleNet's unit without group convolutions and shuffle (g = 1)
        return ShuffleV1Unit(cin, cout, 1, stride, first_grouped=False)

    return ShuffleNet(24, (width, 2 * width), (2, 2), make, None, num_classes, in_chans)


@cache
def _unit_width(unit: str, in_chans: int, num_classes: int, size: tuple, target: int) -> int:
    from cnnlab.profile import profile

    step = 4
    # a strided ShuffleNet-style unit concatenates its input: it must widen past conv1's 24
    start = 28 if unit == "xception_like" else step
    best = None
    for w in range(start, 1025, step):
        macs = profile(_unit_net(in_chans, num_classes, unit, w), (in_chans, *size[1:])).macs
        if best is None or abs(macs - target) < best[1]:
            best = (w, abs(macs - target))
        if macs > target:
            break
    return best[0]


def unit_net(in_chans: int, num_classes: int, unit: str = "shufflenet", groups: int = 8,
             size: tuple = (1, 32, 32)) -> nn.Module:
    """A two-stage ShuffleNet (see :func:`shuffle_net`, ``groups`` g) or the same skeleton
    with another unit (Table 4: VGG-like, ResNet, Xception-like, ResNeXt), its stage widths
    chosen so that its mult-adds at ``size`` match ShuffleNet's."""
    if unit not in UNITS:
        raise ValueError(f"unit must be one of {', '.join(UNITS)}, got {unit!r}")
    if unit == "shufflenet":
        return shuffle_net(in_chans, num_classes, groups)
    from cnnlab.profile import profile

    target = profile(shuffle_net(in_chans, num_classes, groups), (in_chans, *size[1:])).macs
    return _unit_net(in_chans, num_classes, unit,
                     _unit_width(unit, in_chans, num_classes, tuple(size), target))


# --- DenseNet's variants at equal parameters (Huang et al. 2017, Fig. 4) -------------------------
def _dense(in_chans, num_classes, bottleneck, compression, layers, k) -> nn.Module:
    from cnnlab.models.densenet import DenseNet

    return DenseNet([layers] * 3, k, 2 * k if bottleneck and compression < 1 else 16,
                    bottleneck, compression, "cifar", num_classes, in_chans)


@cache
def _growth_rate(in_chans, num_classes, bottleneck, compression, params, layers) -> int:
    return scale_at_params(partial(_dense, in_chans, num_classes, bottleneck, compression,
                                   layers), params, 1, 64, integer=True)


def dense_net(in_chans: int, num_classes: int, bottleneck: bool = True,
              compression: float = 0.5, params: int = 60_000, layers: int = 4) -> nn.Module:
    """A three-block CIFAR-style DenseNet with ``layers`` layers per block: plain (no
    bottleneck, no compression), -B, -C or -BC; the growth rate k is chosen so that the
    parameters come closest to ``params``."""
    k = _growth_rate(in_chans, num_classes, bottleneck, compression, params, layers)
    return _dense(in_chans, num_classes, bottleneck, compression, layers, k)


# --- VGG: a deep net initialised from the shallow net A (Simonyan & Zisserman 2015, Sec. 3.1) ----
VGG_A = ((16,), (32,), (64, 64))               # net A in kind: one conv per stage, two last
VGG_D = ((16, 16), (32, 32), (64, 64, 64))     # the deeper net D in kind
# VGG's N(0, 10^-2) in kind. VGG's stage widths and FC fan-ins (Table 1: conv 64-512, FC-4096
# after 7x7x512 at 224 px); its input is mean-subtracted 0-255 RGB (Sec. 2.1), std about 58
# (ImageNet's per-channel std 0.229/0.224/0.225 x 255), ours standardised to std 1
VGG_WIDTHS = (64, 128, 256, 512, 512)
VGG_FC_FAN_IN = (7 * 7 * 512, 4096, 4096)
VGG_INPUT_STD = 57.6
VGG_STD = 0.01


def vgg_std(fan_in: int, vgg_fan_in: int, first: bool = False) -> float:
    """The std that gives a layer the per-layer gain std·sqrt(fan_in) of the matching VGG
    layer at N(0, 10⁻²), 0.01·sqrt(vgg_fan_in); the first layer's also carries VGG's input
    scale (its gain against a standardised input is VGG's against 0-255 pixels).

    Why: with zero biases and ReLU a net is homogeneous, so its output at initialisation is
    the input scaled by the product of its layers' gains, and how long SGD stalls before the
    signal grows is set by that product. At our 16-64 channels 0.01 itself gives a gain of
    0.12 (3×3×16 inputs) against VGG's 0.24-0.68 (3×3×64-512): net A's output starts at
    std 1e-7 against VGG-A's 2e-3 (measured), and net A does not train. With the matched
    stds net A starts at 3e-2, the deeper net at 2e-4 (VGG-A and VGG-D: 2e-3 and 4e-6; our
    nets have 7 and 10 weight layers against 11 and 16)."""
    return VGG_STD * (vgg_fan_in / fan_in) ** 0.5 * (VGG_INPUT_STD if first else 1.0)


def mini_vgg(in_chans: int, num_classes: int, stages=VGG_D, init: str = "glorot",
             side: int = 16) -> nn.Module:
    """VGG in kind: 3×3 conv + ReLU (no batch norm), a 2×2 max pool after each stage, then
    FC 128 → FC 128 → FC classes with dropout 0.5. Layers are named ``s{stage}c{j}`` and
    ``fc{1,2,3}`` so that net A's layers find their places in a deeper net. ``init``:
    ``"glorot"`` (Xavier uniform, VGG's final choice), ``"normal"`` (VGG's random
    initialisation N(0, 10⁻²) in kind: each layer's std set by :func:`vgg_std` so that its
    gain equals the matching VGG layer's; layer j of stage i matches VGG-D's conv{i}_{j},
    fc1-3 VGG's three FC layers) or ``"normal_0.01"`` (the paper's number itself, which at
    these widths stalls even net A)."""
    if init not in ("glorot", "normal", "normal_0.01"):
        raise ValueError(f"init must be 'glorot', 'normal' or 'normal_0.01', got {init!r}")
    if len(stages) > len(VGG_WIDTHS):
        raise ValueError(f"at most {len(VGG_WIDTHS)} stages, as VGG, got {len(stages)}")
    layers, c, vgg_c, vgg_fan = OrderedDict(), in_chans, 3, {}
    for i, widths in enumerate(stages, 1):
        for j, w in enumerate(widths, 1):
            layers[f"s{i}c{j}"] = nn.Conv2d(c, w, 3, padding=1)
            layers[f"s{i}r{j}"] = nn.ReLU(inplace=True)
            vgg_fan[f"s{i}c{j}"] = 9 * vgg_c
            c, vgg_c = w, VGG_WIDTHS[i - 1]
        layers[f"pool{i}"] = nn.MaxPool2d(2)
    spatial = side // 2 ** len(stages)
    layers["flatten"] = nn.Flatten()
    for n, (a, b) in enumerate(((c * spatial * spatial, 128), (128, 128), (128, num_classes)), 1):
        layers[f"fc{n}"] = nn.Linear(a, b)
        vgg_fan[f"fc{n}"] = VGG_FC_FAN_IN[n - 1]
        if n < 3:
            layers[f"fc{n}r"] = nn.ReLU(inplace=True)
            layers[f"fc{n}d"] = nn.Dropout(0.5)
    model = nn.Sequential(layers)
    for name, m in model.named_children():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            if init == "glorot":
                nn.init.xavier_uniform_(m.weight)
            else:
                std = VGG_STD if init == "normal_0.01" else \
                    vgg_std(m.weight[0].numel(), vgg_fan[name], first=name == "s1c1")
                nn.init.normal_(m.weight, 0.0, std)
            nn.init.zeros_(m.bias)
    return model


def init_from(deep: nn.Module, shallow: nn.Module) -> list[str]:
    """Copy the shallow net's layers into the deep net's layers of the same name and shape
    (VGG: "the first four convolutional layers and the last three fully-connected layers");
    returns the names of the parameters copied."""
    own = deep.state_dict()
    copied = [k for k, v in shallow.state_dict().items() if k in own and own[k].shape == v.shape]
    with torch.no_grad():
        for k in copied:
            own[k].copy_(shallow.state_dict()[k])
    return copied
