"""Magnitude pruning (Han et al. 2015, "Learning both Weights and Connections").

Connections whose weight magnitude falls below a per-layer threshold are removed. The
threshold is either ``quality × σ`` (σ: standard deviation of the layer's dense weights, the
paper's "quality parameter") or the magnitude that keeps a target fraction of the layer.
Pruning is iterative — prune, retrain, prune harder — and a :class:`Pruner` keeps removed
connections dead while retraining: their gradients are masked and the weights re-zeroed after
every optimiser step (pass the pruner as a training step hook). Dropout is weakened as the
layers it feeds shrink, D_r = D_o·√(C_ir / C_io) (Sec. 3.3).

Layers are named as in the paper's tables — ``conv1, conv2, …, fc1, fc2, …`` in module
order — next to their module names; specs may use either, a kind (``conv``, ``fc``) or a glob.
"""

from __future__ import annotations

import fnmatch
import math
from dataclasses import dataclass

import torch
import torch.nn as nn

PRUNABLE = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)


@dataclass(frozen=True)
class Layer:
    label: str  # conv1, fc2, … (the papers' names)
    name: str  # module's qualified name
    kind: str  # "conv" or "fc"
    module: nn.Module


def prunable_layers(model: nn.Module) -> list[Layer]:
    """Conv and linear layers in module order, labelled conv1…, fc1… like Han's tables."""
    out, counts = [], {"conv": 0, "fc": 0}
    for name, m in model.named_modules():
        if isinstance(m, PRUNABLE) and getattr(m, "weight", None) is not None:
            kind = "fc" if isinstance(m, nn.Linear) else "conv"
            counts[kind] += 1
            out.append(Layer(f"{kind}{counts[kind]}", name, kind, m))
    return out


def parse_layer_spec(text: str | dict | None, value) -> list[tuple[str, object]]:
    """'fc=5,conv*=8' → [('fc', v('5')), ('conv*', v('8'))], in order (later entries win)."""
    if text is None:
        return []
    if isinstance(text, dict):
        return [(str(k), value(str(v))) for k, v in text.items()]
    out = []
    for item in str(text).split(","):
        item = item.strip()
        if not item:
            continue
        key, sep, val = item.rpartition("=")
        if not sep:
            key, val = "*", item
        if not key.strip():
            raise ValueError(f"malformed layer setting {item!r}: expected LAYER=VALUE")
        out.append((key.strip(), value(val.strip())))
    return out


def resolve(spec: list[tuple[str, object]], layers: list[Layer]) -> dict[str, object]:
    """Value per layer label: a key matches a label, a module name, a kind or a glob of them."""
    out: dict[str, object] = {}
    for key, val in spec:
        hit = [ly for ly in layers if key in ("*", ly.kind, ly.label, ly.name)
               or fnmatch.fnmatchcase(ly.label, key) or fnmatch.fnmatchcase(ly.name, key)]
        if not hit and key not in ("*", "conv", "fc"):  # a kind may be absent
            names = ", ".join(ly.label for ly in layers)
            raise ValueError(f"layer setting {key!r} matches no layer (layers: {names})")
        for ly in hit:
            out[ly.label] = val
    return out


@dataclass(frozen=True)
class Target:
    """Keep a fraction of a layer (``keep``) or prune below ``quality × σ``."""

    keep: float | None = None
    quality: float | None = None

    @classmethod
    def parse(cls, text: str) -> Target:
        t = text.strip().lower()
        try:
            if t.endswith("%"):
                keep = float(t[:-1]) / 100
                if not 0 < keep <= 1:
                    raise ValueError
                return cls(keep=keep)
            if t.startswith("q"):
                q = float(t[1:])
                if not q >= 0 or math.isinf(q):
                    raise ValueError
                return cls(quality=q)
        except ValueError:
            pass
        raise ValueError(f"bad pruning target {text!r}: use a kept percentage ('8%') or a "
                         f"quality factor of the weights' std ('q1.5')")

    def at(self, fraction: float) -> Target:
        """The target of an intermediate round (``fraction`` of the way, 0 < f ≤ 1):
        densities shrink geometrically, the quality factor grows linearly."""
        if self.keep is not None:
            return Target(keep=self.keep ** fraction)
        return Target(quality=self.quality * fraction)


def parse_prune(text, layers: list[Layer]) -> dict[str, Target]:
    return resolve(parse_layer_spec(text, Target.parse), layers)


class Pruner:
    """Per-layer masks, enforced during retraining.

    ``pruner.prune(targets)`` shrinks the masks (never regrows a connection); calling the
    pruner as ``hook(model, step)`` after each optimiser step re-zeroes the pruned weights, and
    gradient hooks zero their gradients, so pruned weights and their gradients stay zero.
    """

    def __init__(self, model: nn.Module):
        self.model = model
        self.layers = prunable_layers(model)
        self.masks: dict[str, torch.Tensor] = {}
        self.sigma: dict[str, float] = {}
        self.dense_count: dict[str, int] = {}
        self._handles = []
        for ly in self.layers:
            w = ly.module.weight.detach()
            self.masks[ly.label] = w != 0
            self.sigma[ly.label] = float(w.float().std()) if w.numel() > 1 else 0.0
            self.dense_count[ly.label] = w.numel()
            self._handles.append(ly.module.weight.register_hook(self._grad_hook(ly.label)))

    def mask(self, label: str, like: torch.Tensor) -> torch.Tensor:
        """``label``'s mask on ``like``'s device (kept there: the trainer may have moved the
        model to a GPU since) and in its dtype."""
        m = self.masks[label]
        if m.device != like.device:
            m = self.masks[label] = m.to(like.device)
        return m if like.dtype == torch.bool else m.to(like.dtype)

    def _grad_hook(self, label):
        def hook(grad):
            return grad * self.mask(label, grad)
        return hook

    def remove_hooks(self) -> None:
        for h in self._handles:
            h.remove()
        self._handles = []

    def threshold(self, label: str, target: Target) -> float:
        w = next(ly for ly in self.layers if ly.label == label).module.weight.detach().abs()
        w = w * self.mask(label, w)  # pruned connections count as zero whatever they hold
        if target.quality is not None:
            return target.quality * self.sigma[label]
        keep = round(target.keep * w.numel())
        if keep >= w.numel():
            return -1.0
        if keep <= 0:
            return math.inf
        # the magnitude of the (n - keep)-th smallest: strictly larger ones survive
        return float(w.reshape(-1).kthvalue(w.numel() - keep).values)

    @torch.no_grad()
    def prune(self, targets: dict[str, Target]) -> dict[str, float]:
        """Apply ``targets`` (label → Target); returns each pruned layer's threshold."""
        out = {}
        for ly in self.layers:
            if ly.label not in targets:
                continue
            thr = self.threshold(ly.label, targets[ly.label])
            w = ly.module.weight
            keep = w.abs() > thr
            self.masks[ly.label] = self.mask(ly.label, keep) & keep
            out[ly.label] = thr
        self.apply()
        return out

    @torch.no_grad()
    def apply(self) -> None:
        for ly in self.layers:
            ly.module.weight.mul_(self.mask(ly.label, ly.module.weight))

    def __call__(self, model=None, step=None) -> None:  # a training step hook
        self.apply()

    def density(self) -> dict[str, float]:
        return {k: float(m.float().mean()) for k, m in self.masks.items()}

    def kept(self) -> dict[str, int]:
        return {k: int(m.sum()) for k, m in self.masks.items()}

    def adjust_dropout(self) -> dict[str, float]:
        """D_r = D_o·√(C_ir / C_io) for every dropout, C_i the connections of the layer the
        dropout feeds (the next prunable layer after it in module order)."""
        return adjust_dropout(self.model, self.kept(), self.dense_count)


def adjust_dropout(model: nn.Module, kept: dict[str, int], dense: dict[str, int]
                   ) -> dict[str, float]:
    layers = {ly.name: ly.label for ly in prunable_layers(model)}
    out, pending = {}, []
    for name, m in model.named_modules():
        if isinstance(m, nn.modules.dropout._DropoutNd):
            pending.append((name, m))
        elif name in layers and pending:
            label = layers[name]
            ratio = kept[label] / max(dense[label], 1)
            for dname, d in pending:
                if not hasattr(d, "_cnnlab_p0"):
                    d._cnnlab_p0 = d.p
                d.p = d._cnnlab_p0 * math.sqrt(ratio)
                out[dname] = d.p
            pending = []
    return out


def regularizer(model: nn.Module, kind: str = "l2", strength: float = 0.0, base=None):
    """A loss function adding ``strength × Σ|w|`` (L1) or ``strength/2 × Σw²`` (L2) over the
    prunable layers' weights to ``base`` (default cross-entropy). Han et al. 2015 compare both:
    L1 before retraining, L2 after retraining keeps more accuracy (Fig. 5)."""
    if kind not in ("l1", "l2"):
        raise ValueError(f"regularisation must be 'l1' or 'l2', got {kind!r}")
    base = base or nn.functional.cross_entropy
    weights = [ly.module.weight for ly in prunable_layers(model)]

    def loss_fn(outputs, targets):
        loss = base(outputs, targets)
        if strength:
            if kind == "l1":
                reg = sum(w.abs().sum() for w in weights)
            else:
                reg = sum((w * w).sum() for w in weights) / 2
            loss = loss + strength * reg
        return loss

    return loss_fn
