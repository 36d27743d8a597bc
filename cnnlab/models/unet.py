"""U-Net (Ronneberger, Fischer & Brox 2015), Fig. 1: a contracting and an expanding path.

Each level of the contracting path is two unpadded 3×3 convolutions with ReLU, then a 2×2 max
pool that halves the size while the next level doubles the channels (64 … 1024). Each level
of the expanding path is a 2×2 up-convolution that halves the channels, concatenation with
the centre crop of the contracting path's map at that level, and two unpadded 3×3
convolutions; a 1×1 convolution maps the 64 channels to the classes. A 572×572 tile gives a
388×388 map (Fig. 1); tiles must be chosen so that every pool sees an even size (Sec. 2).
Weights are drawn from N(0, 2/N), N = inputs of one neuron (Sec. 3); drop-out ends the
contracting path (Sec. 3.1).

``padding="same"`` pads the convolutions so the output has the input's size (any input of at
least 2^depth pixels; odd sizes are matched by padding the up-convolution's output), and
``backbone=`` uses any registered model's ``features_only`` maps as the contracting path,
with one expanding level per stride whose width is that stride's encoder width.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from cnnlab.models.base import ConvNet, FeatureExtractor, check_arg
from cnnlab.registry import Paper, register_model

UNET_PAPER = Paper("U-Net: Convolutional Networks for Biomedical Image Segmentation",
                   "Ronneberger, Fischer, Brox", 2015, "1505.04597")

# Fig. 1: channels of the contracting path's levels (the last is the bottom of the "U")
WIDTHS = (64, 128, 256, 512, 1024)
CONVS_PER_LEVEL = 2  # 3×3 convolutions, each followed by ReLU
PADDINGS = ("valid", "same")


def unet_output_size(size: int, depth: int = 4, padding: str = "valid") -> int | None:
    """Output size for an input of ``size`` pixels, or ``None`` if some 2×2 pool would see an
    odd size or a map would vanish (valid convolutions, Sec. 2)."""
    if padding == "same":
        return size if size >= 2 ** depth else None
    shrink = 2 * CONVS_PER_LEVEL
    for _ in range(depth):
        size -= shrink
        if size <= 0 or size % 2:
            return None
        size //= 2
    size -= shrink
    for _ in range(depth):
        size = 2 * size - shrink
        if size <= 0:
            return None
    return size if size > 0 else None


class DoubleConv(nn.Sequential):
    """Two 3×3 convolutions, each followed by (batch norm and) ReLU."""

    def __init__(self, in_chs: int, out_chs: int, padding: int = 0, norm: bool = False):
        layers = []
        for i in range(CONVS_PER_LEVEL):
            layers += [nn.Conv2d(in_chs if i == 0 else out_chs, out_chs, 3, padding=padding,
                                 bias=not norm)]
            layers += [nn.BatchNorm2d(out_chs)] if norm else []
            layers += [nn.ReLU(inplace=True)]
        super().__init__(*layers)


def _match(x: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """Centre-crop ``x`` to h×w, zero-padding at the bottom/right where it is smaller."""
    dh, dw = x.shape[-2] - h, x.shape[-1] - w
    if dh < 0 or dw < 0:
        x = F.pad(x, (0, max(-dw, 0), 0, max(-dh, 0)))
        dh, dw = max(dh, 0), max(dw, 0)
    return x[..., dh // 2:dh // 2 + h, dw // 2:dw // 2 + w]


class Up(nn.Module):
    """Expanding level: up-convolution (kernel = stride = ``factor``), concatenation with the
    skip map (if any), two 3×3 convolutions. With valid convolutions the skip map is
    centre-cropped to the upsampled one (Fig. 1); padded ones keep the skip's size."""

    def __init__(self, in_chs: int, up_chs: int, skip_chs: int, out_chs: int, factor: int = 2,
                 padding: int = 0, norm: bool = False):
        super().__init__()
        self.up = nn.ConvTranspose2d(in_chs, up_chs, factor, stride=factor)
        self.conv = DoubleConv(up_chs + skip_chs, out_chs, padding, norm)
        self.crop_skip = padding == 0

    def forward(self, x, skip=None):
        x = self.up(x)
        if skip is not None:
            if self.crop_skip:
                skip = _match(skip, *x.shape[-2:])
            else:
                x = _match(x, *skip.shape[-2:])
            x = torch.cat([skip, x], dim=1)
        return self.conv(x)


class _DenseHead(ConvNet):
    """A per-pixel classifier (1×1 convolution) on the decoder's last map."""

    dense_prediction = True

    def reset_classifier(self, num_classes: int) -> None:
        self.num_classes = num_classes
        device = next(self.parameters(), torch.empty(0)).device
        self.head = nn.Conv2d(self.num_features, num_classes, 1, device=device)

    def get_classifier(self) -> nn.Module:
        return self.head

    def forward_head(self, x, pre_logits: bool = False):
        return x if pre_logits else self.head(x)


def _he_init(module: nn.Module) -> None:
    """Sec. 3: weights from N(0, 2/N), N the incoming nodes of one neuron: k² · C_in for a
    convolution, C_in · (k / stride)² for an up-convolution."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            k, s = m.kernel_size[0] * m.kernel_size[1], m.stride[0] * m.stride[1]
            n = m.in_channels * (k // s if isinstance(m, nn.ConvTranspose2d) else k)
            nn.init.normal_(m.weight, 0, math.sqrt(2 / n))
            if m.bias is not None:
                nn.init.zeros_(m.bias)


class UNet(_DenseHead):
    """The paper's U-Net: ``depth`` pools, widths ``base_width · 2^level``."""

    def __init__(self, num_classes: int = 2, in_chans: int = 1, depth: int = 4,
                 base_width: int = 64, padding: str = "valid", norm: bool = False,
                 drop_rate: float = 0.5):
        super().__init__()
        check_arg(padding in PADDINGS, f"padding must be 'valid' or 'same', got {padding!r}")
        check_arg(isinstance(depth, int) and depth >= 1, f"depth must be >= 1, got {depth!r}")
        check_arg(isinstance(base_width, int) and base_width >= 1,
                  f"base_width must be a positive int, got {base_width!r}")
        self.depth, self.padding = depth, padding
        pad = 1 if padding == "same" else 0
        widths = [base_width * 2 ** i for i in range(depth + 1)]
        self.down = nn.ModuleList()
        c = in_chans
        for w in widths:
            self.down.append(DoubleConv(c, w, pad, norm))
            c = w
        self.pool = nn.MaxPool2d(2, 2)
        self.drop = nn.Dropout(drop_rate) if drop_rate > 0 else nn.Identity()
        self.up = nn.ModuleList(Up(w * 2, w, w, w, 2, pad, norm) for w in widths[-2::-1])
        self.num_features = widths[0]
        self.feature_info = [dict(module=f"down.{i}", reduction=2 ** i, channels=w)
                             for i, w in enumerate(widths)]
        sizes = [s for s in range(1, 2048) if unet_output_size(s, depth, padding)]
        self.min_input_size = sizes[0]
        self.reset_classifier(num_classes)
        self.init_weights()

    def init_weights(self) -> None:
        _he_init(self)

    def input_error(self, x):
        too_small = super().input_error(x)
        if too_small:
            return too_small
        bad = [s for s in x.shape[-2:] if unet_output_size(s, self.depth, self.padding) is None]
        if bad:
            ok = [s for s in range(bad[0] - 16 * 2 ** self.depth, bad[0] + 16 * 2 ** self.depth)
                  if unet_output_size(s, self.depth, self.padding)]
            lo = max([s for s in ok if s < bad[0]], default=None)
            hi = min(s for s in ok if s > bad[0])
            return (f"U-Net with valid convolutions needs tiles where every 2x2 pool sees an "
                    f"even size; {bad[0]} is not one (nearest: {lo}, {hi})")
        return None

    def forward_features(self, x):
        skips = []
        for i, level in enumerate(self.down):
            if i:
                x = self.pool(x)
            x = level(x)
            skips.append(x)
        x = self.drop(skips.pop())
        for up in self.up:
            x = up(x, skips.pop())
        return x


class BackboneUNet(_DenseHead):
    """U-Net whose contracting path is a registered model's feature maps (``same`` padding,
    batch norm in the expanding path since the encoders have it)."""

    def __init__(self, encoder: FeatureExtractor, num_classes: int, drop_rate: float = 0.0,
                 norm: bool = True):
        super().__init__()
        self.encoder = encoder
        red, chs = encoder.reductions, encoder.channels
        self.drop = nn.Dropout(drop_rate) if drop_rate > 0 else nn.Identity()
        self.up = nn.ModuleList()
        c = chs[-1]
        for i in range(len(red) - 1, 0, -1):
            self.up.append(Up(c, chs[i - 1], chs[i - 1], chs[i - 1], red[i] // red[i - 1], 1,
                              norm))
            c = chs[i - 1]
        self.final_factor = red[0]
        if red[0] > 1:  # no map at full resolution to skip from
            out = max(c // 2, 16)
            self.up.append(Up(c, out, 0, out, red[0], 1, norm))
            c = out
        self.num_features = c
        self.min_input_size = encoder.model.min_input_size
        self.feature_info = [dict(f, module=f"encoder.model.{f['module']}")
                             for f in encoder.feature_info]
        self.reset_classifier(num_classes)
        self.init_weights()

    def init_weights(self) -> None:
        """The encoder keeps its own (or trained) weights; the expanding path is new."""
        _he_init(self.up)
        _he_init(self.head)

    def forward_features(self, x):
        size = x.shape[-2:]
        feats = self.encoder(x)
        x = self.drop(feats[-1])
        skips = feats[:-1]
        for up in self.up:
            x = up(x, skips.pop() if skips else None)
        return _match(x, *size) if tuple(x.shape[-2:]) != tuple(size) else x


@register_model(paper=UNET_PAPER, input_size=(1, 572, 572), num_classes=2, reference={
    "params": "31M", "exact_params": 31_030_658, "table": "Fig. 1",
    "note": "the paper prints no parameter count; ~31 M is the usual citation. Fig. 1's "
            "network (1 input channel, 2 classes) has 31,030,658 (31,030,593 with 1 class)"})
def unet(num_classes=2, in_chans=1, drop_rate=0.5, depth=4, base_width=64, padding="valid",
         norm=None, backbone=None, **backbone_kwargs):
    """U-Net (Fig. 1): 572×572 → 388×388 with valid convolutions; ``padding="same"`` keeps
    the size; ``backbone="resnet50"`` uses a registered model as the contracting path."""
    if backbone is None:
        check_arg(not backbone_kwargs, f"unknown argument(s) {', '.join(backbone_kwargs)}")
        return UNet(num_classes, in_chans, depth, base_width, padding, bool(norm), drop_rate)
    from cnnlab.models.fcn import Encoder, _in_chans, _strip_unused, make_encoder

    model = make_encoder(backbone, in_chans, **backbone_kwargs)
    _strip_unused(FeatureExtractor(model), _in_chans(model), max(model.min_input_size, 64))
    encoder = Encoder(model)
    return BackboneUNet(encoder, num_classes, drop_rate, norm is not False)
