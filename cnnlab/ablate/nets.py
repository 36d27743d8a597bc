"""Small networks for the ablations, each built from the library's own layers with the one
switch a paper's comparison turns. They know nothing of training."""

from __future__ import annotations

from collections import OrderedDict

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
    (Szegedy et al. 2016, Sec. 3.1, Fig. 2)."""
    a = ACTS[act]
    if conv == "3x3":
        return [ConvNormAct(c, w, 3, stride, norm=norm, act=a),
                ConvNormAct(w, w, 3, norm=norm, act=a)]
    if conv == "5x5":
        return [ConvNormAct(c, w, 5, stride, norm=norm, act=a)]
    if conv in ("3x3_linear", "3x3_relu"):
        return [ConvNormAct(c, w, 3, stride, norm=norm, act=a if conv == "3x3_relu" else None),
                ConvNormAct(w, w, 3, norm=norm, act=a)]
    raise ValueError(f"conv must be 3x3, 5x5, 3x3_linear or 3x3_relu, got {conv!r}")


def plain_cnn(in_chans: int, num_classes: int, act: str = "relu", down: str = "max",
              head: str = "gap", widths=(16, 32, 64), norm: bool = True,
              side: int = 16, conv: str = "3x3") -> nn.Module:
    """conv stages (see :func:`_pair`), widths doubling; between stages a 2×2 max pool
    (``down="max"``), an overlapping 3×3/2 one (``"overlap"``, AlexNet Sec. 3.4) or the next
    stage's first conv at stride 2 (``"stride"``, All-CNN / SimpNet Table VI); ``act`` any
    of relu/tanh/elu; ``head`` gap or fc."""
    if down not in ("max", "overlap", "stride"):
        raise ValueError(f"down must be 'max', 'overlap' or 'stride', got {down!r}")
    layers, c = [], in_chans
    for i, w in enumerate(widths):
        stride = 2 if i and down == "stride" else 1
        if i and down != "stride":
            layers.append(nn.MaxPool2d(2) if down == "max" else nn.MaxPool2d(3, 2, padding=1))
        layers += _pair(c, w, stride, norm, act, conv)
        c = w
    spatial = side // 2 ** (len(widths) - 1)
    return nn.Sequential(*layers, _head(c, num_classes, head, spatial))


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


def mbv2_net(in_chans: int, num_classes: int, linear: bool = True,
             shortcut: bool = True) -> nn.Module:
    """A small MobileNetV2 (Sandler et al. 2018, Table 2 in kind): stem, inverted residuals
    (t = 6), 1×1 to 128, pool, linear. ``linear=False`` puts ReLU6 after each projection
    (Fig. 6a's non-linear bottleneck); ``shortcut=False`` drops the residuals (Fig. 6b)."""
    cfg = [(16, 1, 1), (24, 2, 6), (24, 1, 6), (32, 2, 6), (32, 1, 6)]
    layers, c = [ConvNormAct(in_chans, 16, 3, act=nn.ReLU6)], 16
    for out, stride, t in cfg:
        block = InvertedResidual(c, out, stride, t, skip=shortcut)
        if not linear:
            block.project = ConvNormAct(block.hidden_chs, out, 1, act=nn.ReLU6)
        layers.append(block)
        c = out
    layers.append(ConvNormAct(c, 128, 1, act=nn.ReLU6))
    return nn.Sequential(*layers, _head(128, num_classes))


def shuffle_net(in_chans: int, num_classes: int, groups: int = 3,
                shuffle: bool = True) -> nn.Module:
    """A two-stage ShuffleNet v1 (Zhang et al. 2018, Table 1 in kind: conv1 24, stages of
    96 and 192 channels, two units each) with the channel shuffle on or off (Table 3)."""
    from cnnlab.models.shufflenet import ShuffleNet, ShuffleV1Unit

    def unit(cin, cout, stride, stage, j):
        return ShuffleV1Unit(cin, cout, groups, stride, first_grouped=(stage, j) != (0, 0),
                             shuffle=shuffle)

    return ShuffleNet(24, (96, 192), (2, 2), unit, None, num_classes, in_chans)


def squeeze_net(in_chans: int, num_classes: int, bypass: str = "none") -> nn.Module:
    """A small SqueezeNet (Iandola et al. 2016, Fig. 2 in kind): conv → pool → four Fire
    modules (squeeze ratio 0.25, half 3×3) → pool → conv 1×1 to the classes → global pool.
    ``bypass``: none, simple (identity around the Fire modules whose widths match) or
    complex (also 1×1 convolutions around the others), Table 3."""
    if bypass not in ("none", "simple", "complex"):
        raise ValueError(f"bypass must be none, simple or complex, got {bypass!r}")
    fires = [(32, 32), (32, 32), (32, 64), (64, 64)]
    layers = [nn.Conv2d(in_chans, 32, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(2)]
    for i, (cin, cout) in enumerate(fires):
        kind = None
        if bypass == "simple" and cin == cout and i % 2:
            kind = "simple"
        elif bypass == "complex":
            kind = "simple" if cin == cout and i % 2 else "complex"
        layers.append(Fire(cin, cout // 4, cout // 2, cout // 2, bypass=kind))
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
