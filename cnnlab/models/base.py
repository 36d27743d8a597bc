"""The interface every cnnlab model shares (timm's, so tools work on any of them).

``forward_features(x)`` → last feature map, ``forward_head(x)`` → logits,
``reset_classifier(n)`` (``n = 0``: headless, ``forward`` returns the pooled features,
``num_features`` wide), ``feature_info`` (the module ending each stride, for
``features_only=True``), and ``min_input_size``: smaller inputs raise a ``ValueError`` that
names the minimum instead of failing deep inside a layer.

Every classifier traces with ``torch.fx.symbolic_trace`` (input checks step aside while
tracing). ``torch.jit.script`` is not supported: TorchScript is deprecated upstream
(PyTorch recommends ``torch.export``/``torch.compile``), and the models use Python that it
cannot compile.
"""

from __future__ import annotations

import math
from collections import OrderedDict

import torch
import torch.nn as nn

from cnnlab.layers.trace import is_symbolic


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


class FCHead(ClassifierHead):
    """Global pooling, fully connected hidden layers with ReLU, dropout, then the classifier:
    the "with FC layers" heads of Xception's JFT comparison, two layers of 4096 units before
    the logistic regression layer (Chollet 2017, Sec. 4.5). ``pre_logits`` gives the last
    hidden layer's output."""

    def __init__(self, in_features: int, num_classes: int, hidden=(4096, 4096),
                 pool: str = "avg", drop_rate: float = 0.0):
        super().__init__(hidden[-1] if hidden else in_features, num_classes, pool, drop_rate)
        dims = [in_features, *hidden]
        self.hidden = nn.Sequential(*[m for a, b in zip(dims, dims[1:])
                                      for m in (nn.Linear(a, b), nn.ReLU(inplace=True))])

    def forward(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.drop(self.hidden(self.flatten(self.pool(x))))
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
    dense_prediction = False  # FCN, U-Net, hourglass: scores per pixel, not per image

    @property
    def num_features(self) -> int:
        """Width of the pooled features ``forward_head(x, pre_logits=True)`` returns (the
        classifier's input; timm's name)."""
        return self.__dict__.get("_num_features") or self.head.in_features

    @num_features.setter
    def num_features(self, n: int) -> None:
        self.__dict__["_num_features"] = n

    def init_weights(self) -> None:
        default_init(self)

    def add_feature(self, module: str, reduction: int, channels: int) -> None:
        """Declare ``module``'s output the feature map at ``reduction``; a later module at the
        same reduction takes its place (``feature_info`` keeps the last map of each stride)."""
        if "feature_info" not in self.__dict__:
            self.feature_info = []
        info = dict(module=module, reduction=reduction, channels=channels)
        if self.feature_info and self.feature_info[-1]["reduction"] == reduction:
            self.feature_info[-1] = info
        else:
            self.feature_info.append(info)

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
        """Raise a ``ValueError`` that says what input the model needs (not while traced)."""
        if not is_symbolic(x):
            message = self.input_error(x)
            if message:
                raise ValueError(message)

    def input_error(self, x: torch.Tensor) -> str | None:
        size = min(x.shape[-2:]) if x.dim() >= 3 else None
        if size is not None and size < self.min_input_size:
            return (f"{self.display_name} needs inputs of at least {self.min_input_size}x"
                    f"{self.min_input_size} pixels, got {tuple(x.shape[-2:])}")
        return None

    @property
    def display_name(self) -> str:
        return getattr(self, "model_name", type(self).__name__)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.check_input(x)
        return self.forward_head(self.forward_features(x))

    def fuse(self, input_size=None) -> ConvNet:
        """Fold every BatchNorm that directly follows a convolution into it, in place, and
        switch to eval mode (:func:`cnnlab.layers.fuse.fuse_bn`, which works on any module).
        Returns ``self``; the folded pairs are in ``self.fused_pairs``."""
        from cnnlab.layers.fuse import fuse_bn

        return fuse_bn(self, input_size, inplace=True)

    def fc_layers_as_conv(self) -> nn.Sequential | None:
        """The fully connected head cast as convolutions (VGG Sec. 3.2, FCN Sec. 3.1): "the
        first FC layer [becomes] a 7×7 conv. layer, the last two FC layers 1×1 conv. layers".
        Named as in the reference Caffe networks (``fc6``, ``relu6``, ``drop6``, ``fc7``, …);
        the convolutions' weights are the linear layers' own (views, no copies). None unless
        the head is FC layers over an adaptive k×k pool (VGG, AlexNet)."""
        pool, classifier = getattr(self, "pool", None), getattr(self, "classifier", None)
        if not (isinstance(pool, (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d))
                and isinstance(classifier, nn.Sequential)
                and isinstance(getattr(self, "head", None), ClassifierHead)
                and pool.output_size not in (1, (1, 1))):
            return None
        k = pool.output_size if isinstance(pool.output_size, int) else pool.output_size[0]
        layers, n = OrderedDict(), 5
        for m in [*classifier, self.head.drop, self.head.fc]:
            at = n if n > 5 else "_in"  # after fc{n}; before the first: "_in"
            if isinstance(m, nn.Linear):
                size, n = k if n == 5 else 1, n + 1
                layers[f"fc{n}"] = _linear_as_conv(m, size)
            elif isinstance(m, nn.ReLU):
                layers[f"relu{at}"] = m
            elif isinstance(m, nn.Dropout):
                layers[f"drop{at}"] = m
            elif not isinstance(m, (nn.Flatten, nn.Identity)):
                return None
        return nn.Sequential(layers)

    def as_fully_convolutional(self) -> nn.Module | None:
        """The network applied to a whole image of any size, its class scores averaged over
        the positions (VGG Sec. 3.2): itself when its head pools globally, a
        :class:`DenseForm` when the head is FC layers over a k×k pool, else None."""
        if self.fc_layers_as_conv() is not None:
            return DenseForm(self)
        head = getattr(self, "head", None)
        if isinstance(head, ClassifierHead) and isinstance(
                head.pool, (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)):
            return self
        return None


def _linear_as_conv(linear: nn.Linear, size: int) -> nn.Conv2d:
    """A size×size convolution whose weight is ``linear``'s, viewed (no copy)."""
    conv = nn.Conv2d(linear.in_features // (size * size), linear.out_features, size,
                     bias=linear.bias is not None, device="meta")
    conv.weight = nn.Parameter(linear.weight.detach().view(conv.weight.shape),
                               linear.weight.requires_grad)
    if linear.bias is not None:
        conv.bias = nn.Parameter(linear.bias.detach(), linear.bias.requires_grad)
    return conv


class DenseForm(nn.Module):
    """A network with an FC head as a fully-convolutional one (VGG Sec. 3.2): the head's
    convolutions (:meth:`ConvNet.fc_layers_as_conv`) applied to the whole feature map, the
    class score map spatially averaged. At the training input size (a k×k map) it gives exactly the
    network's output; a map smaller than one window goes through the network's own head."""

    def __init__(self, model: ConvNet):
        super().__init__()
        self.model = model
        size = model.pool.output_size
        self.k = size if isinstance(size, int) else size[0]

    def forward(self, x):
        x = self.model.forward_features(x)
        if min(x.shape[-2:]) < self.k:
            return self.model.forward_head(x)
        # built per call from views: it follows the weights as they are trained
        return self.model.fc_layers_as_conv()(x).mean((2, 3))


class AuxHeadNet(ConvNet):
    """A network with auxiliary classifiers (GoogLeNet, Inception v3): ``self.aux`` is None
    when they are off; ``forward_features(x, aux_out)`` appends their logits to ``aux_out``.
    They are returned only in training mode, after the main logits. (``aux`` must be set
    in ``__init__``: a class attribute would shadow the registered submodule.)"""

    def forward_features(self, x: torch.Tensor, aux_out: list | None = None) -> torch.Tensor:
        raise NotImplementedError

    def reset_classifier(self, num_classes: int) -> None:
        """Headless (``num_classes=0``): the auxiliary classifiers go too."""
        super().reset_classifier(num_classes)
        if num_classes == 0:
            self.aux = None

    def forward(self, x: torch.Tensor):
        self.check_input(x)
        aux = [] if self.aux is not None and self.training else None
        logits = self.forward_head(self.forward_features(x, aux))
        return (logits, *aux) if aux else logits


class _Stop(Exception):
    def __init__(self, extractor: nn.Module):
        super().__init__()
        self.extractor = extractor


class FeatureExtractor(nn.Module):
    """Runs a model's ``forward_features`` and returns the map at the end of each stride.

    The model's ``feature_info`` names the modules (``{"module", "reduction", "channels"}``);
    ``out_indices`` picks some of them (timm's argument). The head is never run and, with
    ``stop_early``, the pass stops after the deepest requested map (a dense model's
    :class:`~cnnlab.models.fcn.Encoder` runs it whole, so an extractor of the dense model
    can stop inside it).
    """

    stop_early = True

    def __init__(self, model: nn.Module, out_indices: tuple[int, ...] | None = None):
        super().__init__()
        info = list(getattr(model, "feature_info", []))
        if not info:
            raise ValueError(f"{type(model).__name__} does not declare feature_info")
        n = len(info)
        if out_indices is None:
            out_indices = range(n)
        bad = [i for i in out_indices if isinstance(i, bool) or not isinstance(i, int)
               or not -n <= i < n]
        if bad or not out_indices:
            raise ValueError(f"out_indices {tuple(out_indices)}: {type(model).__name__} has {n} "
                             f"feature maps (indices 0-{n - 1}, strides "
                             f"{[f['reduction'] for f in info]})")
        self.model = model
        self.feature_info = [info[i] for i in out_indices]
        self.last_module = info[max(i % n for i in out_indices)]["module"]
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

        def hook_for(name):
            def hook(module, args, out):
                outs[name] = out
                if self.stop_early and name == self.last_module:
                    raise _Stop(self)
            return hook

        names = {f["module"] for f in self.feature_info}
        hooks = [modules[name].register_forward_hook(hook_for(name)) for name in names]
        try:
            if hasattr(self.model, "check_input"):
                self.model.check_input(x)
            self.model.forward_features(x)
        except _Stop as stop:
            if stop.extractor is not self:  # an outer extractor stops inside this one
                raise
        finally:
            for h in hooks:
                h.remove()
        return [outs[f["module"]] for f in self.feature_info]
