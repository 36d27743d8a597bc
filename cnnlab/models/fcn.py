"""Fully convolutional networks (Long, Shelhamer & Darrell 2015): FCN-32s, FCN-16s, FCN-8s.

A classifier becomes a dense predictor by casting its fully connected layers as convolutions
(Sec. 3.1, Fig. 2): VGG-16's fc6 is a 7×7 convolution over pool5, fc7 a 1×1 one. A 1×1
``score_fr`` gives coarse class scores at stride 32; transposed convolutions upsample them
(Sec. 3.3) and, in the skip architecture (Sec. 4.2, Fig. 3), are fused with scores predicted
from pool4 (FCN-16s) and pool3 (FCN-8s). Sec. 4.3: intermediate upsampling layers start as
bilinear interpolation and are learned; the final one is fixed bilinear interpolation (a
buffer here, so it is no parameter); new score layers start at zero. Table 1: 134 M parameters.

Geometry. On VGG the reference (Caffe) networks pad conv1_1 by 100 pixels and pool with
ceiling rounding, so any input of at least 1 pixel reaches fc6 (a 7×7 convolution without
padding); the output is then cropped back to the input. We keep that geometry and derive the
crop offsets (19, 5/27, 9/31 for 32s, 16s, 8s) from the layers' coordinate maps instead of
hard-coding them. Any other registered backbone (``backbone="resnet50"``) is used as it is,
"same"-padded: its classifier (global pool + linear) cast as a convolution is a 1×1 layer,
i.e. ``score_fr`` itself, so no fc6/fc7 are added; upsampling kernels are padded by half the
stride and the maps are aligned at the top-left corner.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
import torch.nn as nn
import torch.nn.functional as F

from cnnlab.models._factory import create_model
from cnnlab.models.base import ConvNet, FeatureExtractor, check_arg
from cnnlab.models.vgg import VGGNet
from cnnlab.registry import Paper, register_model

FCN_PAPER = Paper("Fully Convolutional Networks for Semantic Segmentation",
                  "Long, Shelhamer, Darrell", 2015, "1411.4038")

CONV1_PAD = 100  # the reference networks' padding of conv1_1
# Fig. 3: pooling layers whose scores are fused, coarse to fine, per output stride
SKIPS = {32: (), 16: ("pool4",), 8: ("pool4", "pool3")}


def bilinear_kernel(size: int) -> torch.Tensor:
    """The size×size bilinear interpolation filter of the reference networks
    (Caffe's bilinear filler): upsampling by ``factor = ceil(size / 2)``."""
    factor = (size + 1) // 2
    center = factor - 1 if size % 2 == 1 else factor - 0.5
    og = torch.arange(size, dtype=torch.float64)
    filt = 1 - (og - center).abs() / factor
    return (filt[:, None] * filt[None, :]).float()


class BilinearUpsample(nn.Module):
    """Transposed convolution (kernel 2f, stride f) initialised to per-class bilinear
    interpolation: each class map is upsampled on its own (off-diagonal weights zero).
    ``learnable=False`` keeps the kernel as a buffer, fixed, and no parameter."""

    def __init__(self, channels: int, factor: int, padding: int = 0, learnable: bool = True):
        super().__init__()
        self.factor, self.padding, self.channels = factor, padding, channels
        weight = torch.zeros(channels, channels, 2 * factor, 2 * factor)
        if learnable:
            self.weight = nn.Parameter(weight)
        else:
            self.register_buffer("weight", weight)
        self.init_weights()

    @torch.no_grad()
    def init_weights(self) -> None:
        if self.weight.is_meta:
            return
        self.weight.zero_()
        idx = torch.arange(self.channels)
        self.weight[idx, idx] = bilinear_kernel(2 * self.factor).to(self.weight)

    def forward(self, x):
        return F.conv_transpose2d(x, self.weight, stride=self.factor, padding=self.padding)

    def extra_repr(self):
        kind = "learnable" if isinstance(self.weight, nn.Parameter) else "fixed"
        return f"{self.channels}, factor={self.factor}, padding={self.padding}, {kind}"


def coordinate_map(layers) -> tuple[float, float]:
    """(scale, offset) with which input pixel x lands at position scale·x + offset after
    ``layers`` (Conv2d / MaxPool2d / (kernel, stride, padding) tuples), as Caffe's
    coord_map computes it for its Crop layer."""
    scale, offset = 1.0, 0.0
    for layer in layers:
        if isinstance(layer, tuple):
            k, s, p = layer
        elif isinstance(layer, (nn.Conv2d, nn.MaxPool2d)):
            k, s, p = (layer.kernel_size, layer.stride, layer.padding)
            k, s, p = (v if isinstance(v, int) else v[0] for v in (k, s, p))
        else:
            continue
        scale, offset = scale / s, (offset + p - (k - 1) / 2) / s
    return scale, offset


def _crop(t: torch.Tensor, offset: int, h: int, w: int, what: str) -> torch.Tensor:
    if offset < 0 or t.shape[-2] < offset + h or t.shape[-1] < offset + w:
        raise ValueError(f"cannot crop {what} of size {tuple(t.shape[-2:])} to {h}x{w} at "
                         f"offset {offset}")
    return t[..., offset:offset + h, offset:offset + w]


class Encoder(FeatureExtractor):
    """A backbone's feature maps for a dense head. It runs the whole ``forward_features``
    (the unused tail is stripped when the dense model is built), so ``features_only`` on the
    dense model can stop inside it."""

    stop_early = False


def _strip_unused(extractor: FeatureExtractor, in_chans: int, size: int) -> None:
    """Replace the backbone's modules that its feature maps never use (its last 1×1
    convolution, pooling, classifier) with ``nn.Identity``, so parameter counts are the
    dense network's."""
    ran: set[str] = set()
    hooks = [m.register_forward_pre_hook(lambda module, args, name=name: ran.add(name))
             for name, m in extractor.named_modules()]
    was_training = extractor.training
    device = next(extractor.parameters()).device
    try:
        with torch.no_grad():
            extractor.eval()(torch.zeros(1, in_chans, size, size, device=device))
    finally:
        extractor.train(was_training)
        for h in hooks:
            h.remove()
    gone: list[str] = []
    for name, module in list(extractor.named_modules()):
        if not name or any(name.startswith(g + ".") for g in gone):
            continue
        if any(n == name or n.startswith(name + ".") for n in ran):
            continue
        if any(True for _ in module.parameters()):
            parent, _, leaf = name.rpartition(".")
            setattr(extractor.get_submodule(parent), leaf, nn.Identity())
            gone.append(name)


def vgg_encoder(model: ConvNet) -> tuple[FeatureExtractor, nn.Sequential]:
    """VGG with the reference geometry (conv1_1 padded by 100, ceiling pools) and its
    classifier cast as fc6/fc7 convolutions (:meth:`ConvNet.fc_layers_as_conv`, the
    classifier's own weights); fc8 gives way to ``score_fr``."""
    feats = model.features
    feats.conv1.padding = (CONV1_PAD, CONV1_PAD)
    for m in feats.modules():
        if isinstance(m, nn.MaxPool2d):
            m.ceil_mode = True
    model.min_input_size = 1
    convs = model.fc_layers_as_conv().named_children()
    fc = nn.Sequential(OrderedDict((name, m) for name, m in convs if name != "fc8"))
    model.classifier = model.pool = model.head = nn.Identity()
    return FeatureExtractor(model), fc


class FCN(ConvNet):
    """FCN-``stride``s on a feature extractor: ``forward_features`` returns the maps the
    skips read (pool3, pool4; coarse last) with fc7's output in last place."""

    dense_prediction = True

    def __init__(self, encoder: FeatureExtractor, fc: nn.Module | None, stride: int = 8,
                 num_classes: int = 21, caffe_geometry: bool = False):
        super().__init__()
        check_arg(stride in SKIPS, f"FCN output stride must be 32, 16 or 8, got {stride}")
        red = encoder.reductions
        top = red[-1]
        need = [top // 2 ** (i + 1) for i in range(len(SKIPS[stride]))]
        missing = [r for r in need if r not in red]
        check_arg(not missing, f"{encoder.model_name} has no feature map at stride "
                               f"{missing} for FCN-{stride}s (strides: {red})")
        picks = [red.index(r) for r in need][::-1] + [len(red) - 1]
        self.encoder = Encoder(encoder.model, tuple(picks))
        self.fc = fc if fc is not None else nn.Identity()
        self.caffe_geometry = caffe_geometry
        self.stride, self.top = stride, top
        self.skip_channels = [encoder.channels[i] for i in picks[:-1]][::-1]
        self.num_features = fc[-3].out_channels if fc is not None else encoder.channels[-1]
        self.min_input_size = encoder.model.min_input_size
        self.feature_info = [dict(f, module=f"encoder.model.{f['module']}")
                             for f in encoder.feature_info]
        self._offsets = self._crop_offsets() if caffe_geometry else None
        self.reset_classifier(num_classes)

    def _crop_offsets(self) -> list[int]:
        """Caffe's Crop offsets: of each skip's scores against the upsampled ones, then of
        the output against the input (a position j = scale·x + offset in every map)."""
        features = self.encoder.model.features
        names = [n for n, _ in features.named_children()]

        def upto(pool):
            return list(features)[:names.index(pool) + 1]

        fc = [m for m in self.fc if isinstance(m, nn.Conv2d)]
        _, b = coordinate_map(upto("pool5") + fc)
        factor, offsets = self.top, []
        for pool in SKIPS[self.stride]:
            b = 2 * b + (4 - 1) / 2  # 2x upsampling: kernel 4, stride 2, no padding
            factor //= 2
            offsets.append(coordinate_map(upto(pool))[1] - b)
        offsets.append(factor * b + (2 * factor - 1) / 2)
        if not all(o == int(o) for o in offsets):
            raise ValueError(f"crop offsets {offsets} are not whole pixels")
        return [int(o) for o in offsets]

    def reset_classifier(self, num_classes: int) -> None:
        self.num_classes = num_classes
        device = next(self.parameters(), torch.empty(0)).device
        pad = (lambda f: 0) if self.caffe_geometry else (lambda f: f // 2)
        with torch.device(device):
            self.score_fr = nn.Conv2d(self.num_features, num_classes, 1)
            self.score_pool = nn.ModuleList(nn.Conv2d(c, num_classes, 1)
                                            for c in self.skip_channels)
            self.upscore_skip = nn.ModuleList(BilinearUpsample(num_classes, 2, pad(2))
                                              for _ in self.skip_channels)
            self.upscore = BilinearUpsample(num_classes, self.stride, pad(self.stride),
                                            learnable=False)
        self.init_weights()

    def init_weights(self) -> None:
        """The encoder keeps its weights (its own initialisation, or trained ones: Sec. 4.1
        fine-tunes ImageNet classifiers); new score layers start at zero (Sec. 4.2),
        upsampling at bilinear interpolation (Sec. 4.3)."""
        for conv in [self.score_fr, *self.score_pool]:
            nn.init.zeros_(conv.weight)
            nn.init.zeros_(conv.bias)
        for up in [*self.upscore_skip, self.upscore]:
            up.init_weights()

    def get_classifier(self) -> nn.Module:
        return self.score_fr

    def forward_features(self, x):
        feats = self.encoder(x)
        return [*feats[:-1], self.fc(feats[-1])]

    def forward_head(self, feats, pre_logits: bool = False, size=None):
        if pre_logits:
            return feats[-1]
        score = self.score_fr(feats[-1])
        offsets = self._offsets or [0] * (len(self.score_pool) + 1)
        for up, conv, feat, off in zip(self.upscore_skip, self.score_pool,
                                       reversed(feats[:-1]), offsets):
            score = up(score)
            skip = conv(feat)
            h = min(score.shape[-2], skip.shape[-2] - off)
            w = min(score.shape[-1], skip.shape[-1] - off)
            score = _crop(score, 0, h, w, "upsampled scores") + _crop(skip, off, h, w, "skip")
        score = self.upscore(score)
        if size is not None:
            score = _crop(score, offsets[-1], size[0], size[1], "output")
        return score

    def forward(self, x):
        self.check_input(x)
        return self.forward_head(self.forward_features(x), size=x.shape[-2:])


def make_encoder(backbone, in_chans: int, **kwargs) -> nn.Module:
    """A backbone for a dense model: a registered name (built with ``kwargs``) or a model
    instance, e.g. a trained classifier to fine-tune (used, and trimmed, in place)."""
    if isinstance(backbone, nn.Module):
        check_arg(not kwargs, f"backbone arguments {sorted(kwargs)} need a backbone name")
        check_arg(bool(getattr(backbone, "feature_info", None)),
                  f"{type(backbone).__name__} declares no feature_info")
        return backbone
    check_arg(isinstance(backbone, str), f"backbone must be a model name or a model, got "
                                         f"{backbone!r}")
    return create_model(backbone, in_chans=in_chans, **kwargs)


def _in_chans(model: nn.Module) -> int:
    return next(m.in_channels for m in model.modules() if isinstance(m, nn.Conv2d))


def build_fcn(stride: int, backbone="vgg16", num_classes: int = 21, in_chans: int = 3,
              drop_rate: float = 0.5, **backbone_kwargs) -> FCN:
    """FCN-``stride``s on any backbone (VGG: the reference geometry)."""
    model = make_encoder(backbone, in_chans, **backbone_kwargs)
    is_vgg = isinstance(model, VGGNet)
    if is_vgg:
        encoder, fc = vgg_encoder(model)
        for m in fc:
            if isinstance(m, nn.Dropout):
                m.p = drop_rate
    else:
        encoder, fc = FeatureExtractor(model), None
        _strip_unused(encoder, _in_chans(model), max(model.min_input_size, 64))
    return FCN(encoder, fc, stride, num_classes, caffe_geometry=is_vgg)


_REF = {"params": "134M", "table": "Table 1", "input_size": (3, 500, 500)}


@register_model(paper=FCN_PAPER, input_size=(3, 500, 500), num_classes=21, reference=_REF)
def fcn32s(backbone="vgg16", num_classes=21, in_chans=3, drop_rate=0.5, **backbone_kwargs):
    """FCN-32s (Fig. 3 top): stride-32 scores upsampled 32× (Table 1: FCN-VGG16, 134 M)."""
    return build_fcn(32, backbone, num_classes, in_chans, drop_rate, **backbone_kwargs)


@register_model(paper=FCN_PAPER, input_size=(3, 500, 500), num_classes=21)
def fcn16s(backbone="vgg16", num_classes=21, in_chans=3, drop_rate=0.5, **backbone_kwargs):
    """FCN-16s (Fig. 3 middle): 2× upsampled scores fused with pool4's, upsampled 16×."""
    return build_fcn(16, backbone, num_classes, in_chans, drop_rate, **backbone_kwargs)


@register_model(paper=FCN_PAPER, input_size=(3, 500, 500), num_classes=21)
def fcn8s(backbone="vgg16", num_classes=21, in_chans=3, drop_rate=0.5, **backbone_kwargs):
    """FCN-8s (Fig. 3 bottom): pool4 and pool3 fused, upsampled 8× (Table 2's best net)."""
    return build_fcn(8, backbone, num_classes, in_chans, drop_rate, **backbone_kwargs)
