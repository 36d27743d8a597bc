"""Small input sizes at which a registered model runs (for tests and quick checks)."""

from __future__ import annotations

from functools import cache
from typing import NamedTuple

import torch.nn as nn

from cnnlab.models import model_info
from cnnlab.profile import build_on_meta

_FIXED = {"lenet_300_100", "lenet5_caffe"}  # fully connected on the raw image: one size only


def small_input_size(name: str, side: int = 8) -> tuple[int, ...]:
    """(C, H, W) with H = W = max(the model's declared minimum, ``side``); a model that takes
    only one size (``lenet_300_100``, ``lenet5_caffe``) gets its registered size."""
    info = model_info(name)
    if name in _FIXED:
        return tuple(info.input_size)
    lo = max(meta_summary(name).min_side, side)
    return (info.input_size[0], lo, lo)


class MetaSummary(NamedTuple):
    types: frozenset  # names of the module classes it is made of
    params: int
    min_side: int  # the smallest input side it takes
    has_bn: bool  # any batch norm layer


@cache
def meta_summary(name: str) -> MetaSummary:
    """What the registry-wide checks read of a registered model, from one build on meta per
    process: the deepest take a second to build."""
    m = build_on_meta(name)
    return MetaSummary(frozenset(type(x).__name__ for x in m.modules()),
                       sum(p.numel() for p in m.parameters()),
                       int(getattr(m, "min_input_size", 1)),
                       any(isinstance(x, nn.modules.batchnorm._BatchNorm) for x in m.modules()))


def random_model(name: str, num_classes: int = 10, **kwargs):
    """A registered model with cheap random weights for checks that only compare two
    computations on the same weights: each tensor is filled from one random pool of 2^20
    numbers (scaled by 1/√fan-in), which is a copy, several times faster than ``normal_``
    on the 100 M-parameter models."""
    import math

    import torch

    from cnnlab.models import create_model
    from cnnlab.profile import skip_init

    with skip_init():
        model = create_model(name, num_classes=num_classes, **kwargs)
    pool = torch.rand(1 << 20, generator=torch.Generator().manual_seed(0)) * 2 - 1
    with torch.no_grad():
        for t in [*model.parameters(), *model.buffers()]:
            if not t.is_floating_point():
                continue
            flat = t.view(-1)
            for i in range(0, flat.numel(), pool.numel()):
                chunk = flat[i:i + pool.numel()]
                chunk.copy_(pool[:chunk.numel()])
            fan_in = t[0].numel() if t.dim() > 1 else 1
            t.mul_(math.sqrt(3.0 / fan_in))
        for n, b in model.named_buffers():  # BN statistics: a valid variance
            if n.endswith("running_var"):
                b.abs_().add_(0.5)
    return model


def representatives(names=None) -> list[str]:
    """One model per distinct build: the smallest (by parameters) of each group of registered
    models that share a family and the same set of module types (ResNet-18 and ResNet-50 differ:
    basic vs bottleneck blocks; VGG-11 and VGG-19 do not). Registry-wide checks whose cost is
    the weights (folding, ONNX export) run on these by default; every code path that builds a
    layer is among them."""
    from cnnlab.models import list_models

    groups: dict[tuple, tuple[int, str]] = {}
    for name in names or list_models():
        summary = meta_summary(name)
        key, size = (model_info(name).family, summary.types), summary.params
        if key not in groups or size < groups[key][0]:
            groups[key] = (size, name)
    return sorted(n for _, n in groups.values())
