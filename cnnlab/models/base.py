"""The interface every cnnlab model shares (timm's, so tools work on any of them).

``forward_features(x)`` → last feature map, ``forward_head(x)`` → logits,
``reset_classifier(n)``, ``feature_info`` (the module ending each stride, for
``features_only=True``), and ``min_input_size``: smaller inputs raise a ``ValueError`` that
names the minimum instead of failing deep inside a layer.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn


def check_arg(ok: bool, message: str) -> None:
    """Raise the ``ValueError`` a user sees for an invalid builder argument."""
    if not ok:
        raise ValueError(message)


class ClassifierHead(nn.Module):
    """Global pooling (or flatten), dropout, then a linear classifier (``fc``)."""

    def __init__(self, in_features: int, num_classes: int, pool: str = "avg",
                 drop_rate: float = 0.0):
        super().__init__()
        check_arg(pool in ("avg", "max", "flatten", ""), f"unknown pool {pool!r}")
        self.in_features = in_features
        self.pool = {"avg": nn.AdaptiveAvgPool2d(1), "max": nn.AdaptiveMaxPool2d(1)}.get(
            pool, nn.Identity())
        self.flatten = nn.Flatten(1) if pool else nn.Identity()
        self.drop = nn.Dropout(drop_rate) if drop_rate > 0 else nn.Identity()
        self.fc = nn.Linear(in_features, num_classes) if num_classes else nn.Identity()

    def reset(self, num_classes: int) -> None:
        device = next(self.parameters(), torch.empty(0)).device
        self.fc = nn.Linear(self.in_features, num_classes, device=device) if num_classes \
            else nn.Identity()

    def forward(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.drop(self.flatten(self.pool(x)))
        return x if pre_logits else self.fc(x)


def default_init(model: nn.Module) -> None:
    """He et al. 2015 ("Delving deep") normal init over each filter's fan-out, for
    convolutions; BN/GN at identity; linear layers N(0, 0.01).

    The fan-out counts only the outputs a weight feeds, (out / groups) · k², so depthwise
    filters are not started √C too small (``nn.init.kaiming_normal_`` ignores groups).
    PyTorch's own default (uniform, a=√5) shrinks the signal by about √3 per layer.
    A submodule that defines its own ``init_weights`` (a bilinear upsampler, a block with a
    paper-specific scheme) is initialised by that method instead.
    """
    for m in _default_init_modules(model):
        if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Conv3d)):
            fan_out = m.out_channels // m.groups * math.prod(m.kernel_size)
            nn.init.normal_(m.weight, 0, math.sqrt(2.0 / fan_out))
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.ConvTranspose2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm2d, nn.BatchNorm1d, nn.GroupNorm, nn.LayerNorm)):
            if m.weight is not None:
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0, 0.01)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


def _default_init_modules(model: nn.Module):
    stack = [model]
    while stack:
        m = stack.pop()
        if m is not model and callable(getattr(m, "init_weights", None)):
            m.init_weights()
            continue
        yield m
        stack.extend(reversed(list(m.children())))


class ConvNet(nn.Module):
    """Base class: a feature extractor followed by ``self.head`` (a :class:`ClassifierHead`
    unless the subclass overrides ``forward_head``/``reset_classifier``).

    ``create_model`` calls ``init_weights()`` once the model is built; a family whose paper
    prescribes an initialisation overrides it.
    """

    min_input_size: int = 1
    feature_info: list[dict] = []

    def init_weights(self) -> None:
        default_init(self)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        return self.head(x, pre_logits=pre_logits)

    def get_classifier(self) -> nn.Module:
        return self.head.fc

    def reset_classifier(self, num_classes: int) -> None:
        self.head.reset(num_classes)
        self.num_classes = num_classes

    def check_input(self, x: torch.Tensor) -> None:
        if torch.jit.is_tracing() or torch.compiler.is_compiling():
            return  # a Python-level check would be frozen into the graph
        size = min(x.shape[-2:]) if x.dim() >= 3 else None
        if size is not None and size < self.min_input_size:
            name = getattr(self, "model_name", type(self).__name__)
            raise ValueError(
                f"{name} needs inputs of at least {self.min_input_size}x{self.min_input_size}"
                f" pixels, got {tuple(x.shape[-2:])}"
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input(x)
        return self.forward_head(self.forward_features(x))


class AuxHeadNet(ConvNet):
    """A network with auxiliary classifiers (GoogLeNet, Inception v3): ``self.aux`` is None
    when they are off; ``forward_features(x, aux_out)`` appends their logits to ``aux_out``.
    They are returned only in training mode, after the main logits. (``aux`` must be set
    in ``__init__``: a class attribute would shadow the registered submodule.)"""

    def forward_features(self, x: torch.Tensor, aux_out: list | None = None) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, x: torch.Tensor):
        self.check_input(x)
        aux = [] if self.aux is not None and self.training else None
        logits = self.forward_head(self.forward_features(x, aux))
        return (logits, *aux) if aux else logits


class _Stop(Exception):
    pass


class FeatureExtractor(nn.Module):
    """Runs a model's ``forward_features`` and returns the map at the end of each stride.

    The model's ``feature_info`` names the modules (``{"module", "reduction", "channels"}``);
    the head is never run and the pass stops after the last requested map.
    """

    def __init__(self, model: nn.Module, out_indices: tuple[int, ...] | None = None):
        super().__init__()
        info = list(getattr(model, "feature_info", []))
        if not info:
            raise ValueError(f"{type(model).__name__} does not declare feature_info")
        if out_indices is not None:
            info = [info[i] for i in out_indices]
        self.model = model
        self.feature_info = info
        self.model_name = getattr(model, "model_name", type(model).__name__)

    @property
    def channels(self) -> list[int]:
        return [f["channels"] for f in self.feature_info]

    @property
    def reductions(self) -> list[int]:
        return [f["reduction"] for f in self.feature_info]

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        modules = dict(self.model.named_modules())
        outs: dict[str, torch.Tensor] = {}
        last = self.feature_info[-1]["module"]

        def hook_for(name):
            def hook(module, args, out):
                outs[name] = out
                if name == last:
                    raise _Stop
            return hook

        hooks = [modules[f["module"]].register_forward_hook(hook_for(f["module"]))
                 for f in self.feature_info]
        try:
            if hasattr(self.model, "check_input"):
                self.model.check_input(x)
            self.model.forward_features(x)
        except _Stop:
            pass
        finally:
            for h in hooks:
                h.remove()
        return [outs[f["module"]] for f in self.feature_info]
