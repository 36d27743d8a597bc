"""Where a network looks: plain input gradients (Simonyan et al. 2014), guided
backpropagation (Springenberg et al. 2015, "Striving for Simplicity", Sec. 3.4 and Fig. 1 —
the deck's "new way for visualization", 002:1077) and Grad-CAM (Selvaraju et al. 2017,
Eq. 1-2) on the last convolutional stage.

Guided backpropagation changes only the backward pass of the ReLUs: the gradient passes
where the ReLU's input was positive (as in plain backprop) *and* the gradient itself is
positive, R_l = (f_l > 0) · (R_{l+1} > 0) · R_{l+1}. ReLU modules get a backward hook that
clamps their input gradient at zero; ``F.relu`` calls outside a ReLU module (NASNet's
operations, GoogLeNet's auxiliary heads) are swapped for a guided ReLU by a
``TorchFunctionMode``. It is defined for ReLU networks only: a model with another
activation (LeNet-5's scaled tanh, EfficientNet's swish, a sigmoid gate) is refused with the
activation's name.
"""

from __future__ import annotations

import contextlib
import os

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode

from cnnlab.visualize.common import no_inplace, pyplot, save_png, suptitle
from cnnlab.visualize.features import _class_name, image_for_display

_RELU_FUNCS = (F.relu, torch.relu, torch.Tensor.relu)
_CLIPPED_RELU_FUNCS = (F.relu6, F.hardtanh)  # hardtanh is ReLU6's body; only with min 0
_RELU_MODULES = (nn.ReLU, nn.ReLU6)
_OTHER_ACTIVATIONS = {
    torch.tanh: "tanh", torch.Tensor.tanh: "tanh", F.tanh: "tanh",
    torch.sigmoid: "sigmoid", torch.Tensor.sigmoid: "sigmoid", F.sigmoid: "sigmoid",
    F.silu: "silu", F.gelu: "gelu", F.elu: "elu", F.selu: "selu", F.celu: "celu",
    F.leaky_relu: "leaky_relu", F.prelu: "prelu", F.rrelu: "rrelu", F.hardswish: "hardswish",
    F.hardsigmoid: "hardsigmoid", F.mish: "mish", F.softplus: "softplus",
    F.softsign: "softsign", F.logsigmoid: "logsigmoid", F.tanhshrink: "tanhshrink",
}


def _name(model: nn.Module) -> str:
    return getattr(model, "model_name", type(model).__name__)


def _logits(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    out = model(x)
    return out[0] if isinstance(out, (tuple, list)) else out


class _ModuleStack:
    """Forward hooks that keep the path of the module running now."""

    def __init__(self, model: nn.Module, only=None):
        self.stack: list[tuple[str, nn.Module]] = []
        self.handles = []
        for name, m in model.named_modules():
            if only is None or isinstance(m, only):
                self.handles.append(m.register_forward_pre_hook(self._enter(name)))
                self.handles.append(m.register_forward_hook(self._leave))

    def _enter(self, name):
        def hook(module, args):
            self.stack.append((name, module))
        return hook

    def _leave(self, module, args, out):
        self.stack.pop()

    def remove(self):
        for h in self.handles:
            h.remove()


class _RecordActivations(TorchFunctionMode):
    def __init__(self, modules: _ModuleStack):
        super().__init__()
        self.modules = modules
        self.found: list[tuple[str, str, str]] = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        fn = _OTHER_ACTIVATIONS.get(func)
        if func is F.hardtanh:
            lo = args[1] if len(args) > 1 else kwargs.get("min_val", -1.0)
            fn = None if lo == 0 else "hardtanh"
        if fn is not None:
            where, mod = self.modules.stack[-1] if self.modules.stack else ("", None)
            self.found.append((where or "(model)", type(mod).__name__ if mod else "", fn))
        return func(*args, **kwargs)


def non_relu_activations(model: nn.Module, x: torch.Tensor) -> list[tuple[str, str, str]]:
    """(module path, module class, function) of every non-ReLU activation one forward pass
    of ``x`` runs; empty for a ReLU network."""
    modules = _ModuleStack(model)
    mode = _RecordActivations(modules)
    try:
        with torch.no_grad(), mode:
            _logits(model, x)
    finally:
        modules.remove()
    return list(dict.fromkeys(mode.found))


def check_relu_family(model: nn.Module, x: torch.Tensor) -> None:
    """Raise ``ValueError`` naming the first activation that is not a ReLU (or ReLU6)."""
    found = non_relu_activations(model, x)
    if found:
        where, cls, fn = found[0]
        more = f" (and {len(found) - 1} more)" if len(found) > 1 else ""
        raise ValueError(f"guided backpropagation needs ReLU activations; {_name(model)} uses "
                         f"{cls + ' ' if cls else ''}({fn}) at {where}{more}")


class _GuidedClamp(torch.autograd.Function):
    """clamp(x, lo, hi) whose backward passes only positive gradients where lo < x < hi."""

    @staticmethod
    def forward(ctx, x, lo, hi):
        ctx.save_for_backward(x)
        ctx.bounds = (lo, hi)
        return x.clamp(lo, hi)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        lo, hi = ctx.bounds
        inside = (x > lo) & (x < hi) if hi is not None else x > lo
        return grad.clamp(min=0) * inside, None, None


class _GuideFunctional(TorchFunctionMode):
    """Swaps functional ReLUs called outside a hooked ReLU module for guided ones."""

    def __init__(self, modules: _ModuleStack):
        super().__init__()
        self.modules = modules

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if not self.modules.stack:
            if func in _RELU_FUNCS:
                return _GuidedClamp.apply(args[0], 0.0, None)
            if func is F.relu6:
                return _GuidedClamp.apply(args[0], 0.0, 6.0)
        return func(*args, **kwargs)


def _guide_grad(module, grad_input, grad_output):
    return tuple(None if g is None else g.clamp(min=0) for g in grad_input)


@contextlib.contextmanager
def guided_relus(model: nn.Module):
    """Within this context every ReLU of ``model`` backpropagates guided."""
    handles = [m.register_full_backward_hook(_guide_grad) for m in model.modules()
               if isinstance(m, _RELU_MODULES)]
    inside = _ModuleStack(model, only=_RELU_MODULES)
    try:
        with no_inplace(model), _GuideFunctional(inside):
            yield
    finally:
        inside.remove()
        for h in handles:
            h.remove()


@contextlib.contextmanager
def _eval(model: nn.Module):
    was = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was)


def _targets(logits: torch.Tensor, target) -> torch.Tensor:
    if target is None:
        return logits.argmax(1)
    t = torch.as_tensor(target, device=logits.device).long().reshape(-1)
    return t.expand(len(logits)) if t.numel() == 1 else t


def _input_grad(model, x, target):
    x = x.detach().clone().requires_grad_(True)
    logits = _logits(model, x)
    t = _targets(logits, target)
    (g,) = torch.autograd.grad(logits.gather(1, t[:, None]).sum(), x)
    return g, t


def input_gradient(model: nn.Module, x: torch.Tensor, target=None
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """d score_target / d x (N×C×H×W) and the targets (default: the predicted class)."""
    with _eval(model), no_inplace(model):
        return _input_grad(model, x, target)


def guided_backprop(model: nn.Module, x: torch.Tensor, target=None
                    ) -> tuple[torch.Tensor, torch.Tensor]:
    """Guided backpropagation of the target score to the input (Springenberg et al. 2015,
    Fig. 1); raises ``ValueError`` for a model with a non-ReLU activation."""
    with _eval(model):
        check_relu_family(model, x[:1])
        with guided_relus(model):
            return _input_grad(model, x, target)


def cam_layer(model: nn.Module, x: torch.Tensor, layer: str | None = None
              ) -> tuple[str, nn.Module]:
    """The module Grad-CAM reads: ``layer`` by name, else the last stage of
    ``feature_info`` (else the last convolution) whose output is larger than 1×1 at this
    input size (LeNet-5's C5 is 1×1, so its S4 stage is used)."""
    named = dict(model.named_modules())
    if layer is not None:
        if layer not in named:
            raise ValueError(f"{_name(model)} has no module {layer!r}")
        return layer, named[layer]
    names = [f["module"] for f in getattr(model, "feature_info", []) if f.get("module") in named]
    names = names or [n for n, m in named.items() if isinstance(m, nn.Conv2d)]
    if not names:
        raise ValueError(f"{_name(model)} has no convolution: Grad-CAM needs a feature map")
    sizes: dict[str, int] = {}
    hooks = [named[n].register_forward_hook(
        lambda m, a, out, n=n: sizes.__setitem__(n, out.shape[-1] * out.shape[-2]
                                                 if out.dim() == 4 else 0)) for n in names]
    try:
        with torch.no_grad():
            _logits(model, x[:1])
    finally:
        for h in hooks:
            h.remove()
    spatial = [n for n in names if sizes.get(n, 0) > 1]
    name = spatial[-1] if spatial else names[-1]
    return name, named[name]


def grad_cam(model: nn.Module, x: torch.Tensor, target=None, layer: str | None = None
             ) -> dict:
    """Grad-CAM (Selvaraju et al. 2017): α_k = spatial mean of d y_c / d A_k (Eq. 1),
    map = ReLU(Σ_k α_k A_k) (Eq. 2), upsampled bilinearly to the input and scaled to [0, 1]
    per image. Returns ``cam`` (N×H×W), ``weights`` (N×K), ``activations``, ``gradients``,
    ``layer`` and ``target``."""
    with _eval(model), no_inplace(model):
        name, module = cam_layer(model, x, layer)
        seen = []
        h = module.register_forward_hook(lambda m, a, out: seen.append(out))
        try:
            logits = _logits(model, x)
        finally:
            h.remove()
        t = _targets(logits, target)
        act = seen[-1]
        (g,) = torch.autograd.grad(logits.gather(1, t[:, None]).sum(), act)
    weights = g.mean((2, 3))
    cam = F.relu((weights[:, :, None, None] * act).sum(1)).detach()
    cam = F.interpolate(cam[:, None], size=x.shape[-2:], mode="bilinear",
                        align_corners=False)[:, 0]
    cam = cam / cam.flatten(1).max(1).values.clamp_min(1e-12)[:, None, None]
    return {"cam": cam, "weights": weights.detach(), "activations": act.detach(),
            "gradients": g.detach(), "layer": name, "target": t}


def _top(m: torch.Tensor, q: float = 0.99) -> torch.Tensor:
    """Each map's 99th percentile (a few extreme pixels would make the rest black)."""
    return torch.quantile(m.flatten(1).float(), q, dim=1).clamp_min(1e-12).view(
        -1, *[1] * (m.dim() - 1))


def _scale(m: torch.Tensor) -> torch.Tensor:
    return (m / _top(m)).clamp(0, 1)


def saliency_map(model: nn.Module, x: torch.Tensor, method: str, target=None) -> dict:
    """``method`` = ``guided`` | ``grad`` | ``cam``: a per-pixel map in [0, 1] (``map``,
    N×H×W), what to show beside the image (``view``) and the targets."""
    if method == "cam":
        r = grad_cam(model, x, target)
        return {"map": r["cam"], "view": r["cam"], "target": r["target"],
                "what": f"Grad-CAM at {r['layer']}"}
    if method not in ("guided", "grad"):
        raise ValueError(f"unknown saliency {method!r}: guided, grad or cam")
    fn = guided_backprop if method == "guided" else input_gradient
    g, t = fn(model, x, target)
    g = g.detach()
    if method == "grad":  # Simonyan et al.: max over channels of |gradient|
        m = _scale(g.abs().amax(1))
        view = m
    else:  # Springenberg et al. show the reconstruction itself, zero at mid-grey
        m = _scale(g.clamp(min=0).amax(1))
        view = (0.5 + 0.5 * g / _top(g.abs())).clamp(0, 1)
    what = "guided backpropagation" if method == "guided" else "input gradient |dy/dx|"
    return {"map": m, "view": view, "target": t, "what": what}


def plot_saliency(model: nn.Module, images: torch.Tensor, x: torch.Tensor, method: str,
                  path: str | os.PathLike, checkpoint=None, labels=None, classes=None,
                  target=None) -> str:
    """One row per image: the image, the map, and the map over the image. ``images`` are
    the images as stored (for display), ``x`` the same images normalised for the model."""
    r = saliency_map(model, x, method, target)
    with torch.no_grad(), _eval(model):
        pred = _logits(model, x).argmax(1)
    plt = pyplot()
    n = len(x)
    fig, axes = plt.subplots(n, 3, figsize=(4.2, 1.45 * n + 0.8), dpi=100, squeeze=False)
    for i in range(n):
        img = image_for_display(images[i])
        grey = img.ndim == 2
        truth = f"true {_class_name(classes, labels[i])}, " if labels is not None else ""
        axes[i, 0].imshow(img, cmap="gray" if grey else None)
        axes[i, 0].set_title(f"{truth}pred {_class_name(classes, pred[i])}", fontsize=7)
        view = r["view"][i].cpu()
        if view.dim() == 3:
            view = view.permute(1, 2, 0).squeeze(-1)
        axes[i, 1].imshow(np.asarray(view), cmap="gray" if view.dim() == 2 and method == "guided"
                          else "inferno", vmin=0, vmax=1)
        axes[i, 1].set_title(f"for class {_class_name(classes, r['target'][i])}", fontsize=7)
        axes[i, 2].imshow(img.mean(-1) if not grey else img, cmap="gray")
        heat = r["map"][i].cpu().numpy()
        axes[i, 2].imshow(heat, cmap="jet", alpha=0.85 * heat, vmin=0, vmax=1)
        axes[i, 2].set_title("overlay", fontsize=7)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    suptitle(fig, model, checkpoint, r["what"])
    fig.tight_layout()
    return save_png(fig, path)
