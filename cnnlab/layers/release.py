"""How a released network differs from its paper's: BN eps/momentum, TF "SAME" padding, the
activation, pooling's padding count, the classifier's bias — applied once to a built model.

``create_model(name, release="tf")`` looks up the family's :class:`Release` in the model
module's ``RELEASES`` and calls :meth:`Release.apply`; parameter names and shapes stay the
paper network's, so a released checkpoint loads into the model as it is.

TF's "SAME" padding (``tf.nn.conv2d(padding="SAME")``) pads ``max((ceil(n/s) - 1)·s +
(k - 1)·d + 1 - n, 0)`` pixels per side pair, the odd one at the bottom/right: on an even input
to a stride-2 3×3 convolution that is 0 before and 1 after, where PyTorch's symmetric
``padding=1`` pads 1 and 1 and so samples a grid shifted by one pixel. :class:`Conv2dSame` and
the pools below compute the pads from the input's size at run time (a traced ONNX export
records them for the exported size).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F


def same_pads(size: int, kernel: int, stride: int, dilation: int = 1) -> tuple[int, int]:
    """TF "SAME" pads (before, after) along one axis of ``size`` pixels."""
    total = max((math.ceil(size / stride) - 1) * stride + (kernel - 1) * dilation + 1 - size, 0)
    return total // 2, total - total // 2


def _pad_same(x, kernel, stride, dilation=(1, 1), value=0.0):
    top, bottom = same_pads(x.shape[-2], kernel[0], stride[0], dilation[0])
    left, right = same_pads(x.shape[-1], kernel[1], stride[1], dilation[1])
    if top or bottom or left or right:
        x = F.pad(x, (left, right, top, bottom), value=value)
    return x


def _pair(v):
    return tuple(v) if isinstance(v, (tuple, list)) else (v, v)


class Conv2dSame(nn.Conv2d):
    """``nn.Conv2d`` with TF "SAME" padding computed from the input (same parameters)."""

    def forward(self, x):
        x = _pad_same(x, self.kernel_size, self.stride, self.dilation)
        return F.conv2d(x, self.weight, self.bias, self.stride, 0, self.dilation, self.groups)


class MaxPool2dSame(nn.MaxPool2d):
    """Max pooling with TF "SAME" padding (padded pixels never win: -inf)."""

    def forward(self, x):
        k, s = _pair(self.kernel_size), _pair(self.stride)
        return F.max_pool2d(_pad_same(x, k, s, value=float("-inf")), k, s)


class AvgPool2dSame(nn.AvgPool2d):
    """Average pooling with TF "SAME" padding; as in TF the padding is not counted."""

    def forward(self, x):
        k, s = _pair(self.kernel_size), _pair(self.stride)
        total = F.avg_pool2d(_pad_same(x, k, s), k, s)
        if self.count_include_pad:
            return total
        ones = torch.ones_like(x[:1, :1])
        return total / F.avg_pool2d(_pad_same(ones, k, s), k, s)


def _symmetric_same(m) -> bool:
    """Padded as PyTorch's "same" for odd kernels, and strided: where TF's SAME differs."""
    k, s, p = _pair(m.kernel_size), _pair(m.stride), _pair(m.padding)
    d = _pair(getattr(m, "dilation", 1))
    return max(s) > 1 and any(p) and p == tuple((ki - 1) // 2 * di for ki, di in zip(k, d)) \
        and not getattr(m, "ceil_mode", False)


_SAME = {nn.Conv2d: Conv2dSame, nn.MaxPool2d: MaxPool2dSame, nn.AvgPool2d: AvgPool2dSame}


@dataclass(frozen=True)
class Release:
    """One released variant of a family: what differs from the paper's network.

    ``same``: which layers get TF "SAME" padding — ``"all"`` (strided convolutions and pools
    padded as PyTorch's symmetric same), ``"pool"`` (pools only), or ``""``. ``act``: the
    activation that replaces every ``nn.ReLU``. ``pool_include_pad``: average pools count
    the padding (torchvision's Inception v3). ``fc_bias=False`` drops the classifier's bias.
    """

    name: str
    doc: str
    bn_eps: float | None = None
    bn_momentum: float | None = None  # PyTorch's sense: TF's decay 0.99 is 0.01 here
    same: str = ""
    act: type[nn.Module] | None = None
    pool_include_pad: bool | None = None
    fc_bias: bool = True
    models: tuple[str, ...] = ()  # glob patterns of the module's models it exists for
    # builder keywords where the release is another shape of the network (torchvision's
    # ResNet-50 strides the 3x3: ``(("stride_in_1x1", False),)``); a user's keyword wins
    builder_args: tuple[tuple[str, object], ...] = ()
    # timm's "SAME" average pools pad with zeros and then average them (TF's do not count
    # the padding): timm's port of NASNet-A computes that
    same_avg_counts_pad: bool = False

    def apply(self, model: nn.Module) -> nn.Module:
        for name, m in list(model.named_modules()):
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                if self.bn_eps is not None:
                    m.eps = self.bn_eps
                if self.bn_momentum is not None:
                    m.momentum = self.bn_momentum
            kind = type(m)
            if self.same and kind in _SAME and (self.same == "all" or kind is not nn.Conv2d) \
                    and _symmetric_same(m):
                m.__class__ = _SAME[kind]  # same parameters and names: a checkpoint still loads
                m.padding = (0, 0) if kind is nn.Conv2d else 0
                if kind is nn.AvgPool2d and self.same_avg_counts_pad:
                    m.count_include_pad = True
            if self.pool_include_pad is not None and isinstance(m, nn.AvgPool2d):
                m.count_include_pad = self.pool_include_pad
            if self.act is not None and kind is nn.ReLU:
                _set(model, name, self.act(inplace=m.inplace))
        if not self.fc_bias:
            for m in _classifiers(model):
                m.register_parameter("bias", None)
        model.release = self.name
        return model


def _set(model: nn.Module, name: str, new: nn.Module) -> None:
    parent, _, leaf = name.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, leaf, new)


def _classifiers(model: nn.Module):
    head = getattr(model, "head", None)
    fc = getattr(head, "fc", None)
    return [fc] if isinstance(fc, nn.Linear) else []


PAPER = Release("paper", "the network as the paper describes it")


def releases_of(model: str, releases) -> dict[str, Release]:
    """The releases of ``model`` among its module's ``RELEASES`` (a dict by name, or a list
    where one name has a variant per group of models), "paper" first."""
    from fnmatch import fnmatchcase

    items = releases.values() if isinstance(releases, dict) else releases
    return {"paper": PAPER, **{r.name: r for r in items
                               if not r.models or any(fnmatchcase(model, p) for p in r.models)}}


def resolve(model: str, releases, name: str) -> Release:
    """The release of ``model`` called ``name``; one line listing its releases if none."""
    known = releases_of(model, releases)
    if name not in known:
        raise ValueError(f"{model}: unknown release {name!r}; {model} has: {', '.join(known)}")
    return known[name]
