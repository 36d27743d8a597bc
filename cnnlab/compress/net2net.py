"""Net2Net (Chen, Goodfellow, Shlens 2016, "Net2Net: Accelerating Learning via Knowledge
Transfer", arXiv 1511.05641; deck 002:1697-1716): grow a trained network into a wider or
deeper one that computes the same function, then train on.

- :func:`net2wider` (Sec. 2.3, Eq. 6-7): the layer gets ``width`` units, the new ones random
  replicas of the old (mapping g); the producers of the widened tensor copy the replicated
  units' incoming weights, biases and BN parameters *and statistics*; its consumers divide
  each replicated unit's outgoing weights by its replica count. Several producers may write
  one tensor (a residual stream: the stem and every block's last conv-BN) and several
  consumers may read it (each block's first conv, the classifier): one mapping serves them all,
  so the sum of a residual add stays the replicated sum.
- :func:`net2deeper` (Sec. 2.4): insert an identity-initialised linear, k×k conv (identity
  kernel), or conv-BN (BN at pass-through) layer plus a copy of the activation after an
  activation f with f(f(x)) = f(x) (ReLU); anything else (tanh, sigmoid) is an error.

Both modify the model in place (modules are replaced by their grown versions) and work on
any ``nn.Module`` addressed by the names of ``model.named_modules()``.
"""

from __future__ import annotations

import copy

import torch
import torch.nn as nn

_BN = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)
_CONV = (nn.Conv1d, nn.Conv2d, nn.Conv3d)


def _get(model: nn.Module, name: str) -> nn.Module:
    try:
        return model.get_submodule(name)
    except AttributeError:
        raise ValueError(f"no module named {name!r} in the model") from None


def _set(model: nn.Module, name: str, module: nn.Module) -> None:
    parent, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, child, module)


def _width_of(m: nn.Module) -> int:
    if isinstance(m, nn.Linear):
        return m.out_features
    if isinstance(m, _CONV):
        return m.out_channels
    if isinstance(m, _BN):
        return m.num_features
    raise ValueError(f"cannot widen a {type(m).__name__} (supported: Linear, Conv, BatchNorm)")


def _check_groups(m: nn.Module, name: str) -> None:
    if isinstance(m, _CONV) and m.groups != 1:
        raise ValueError(f"{name}: grouped convolutions are not supported by net2wider")


def _grow_producer(m: nn.Module, g: torch.Tensor) -> nn.Module:
    """A copy of ``m`` whose output units are ``m``'s units ``g``."""
    new = copy.deepcopy(m)
    with torch.no_grad():
        if isinstance(m, nn.Linear):
            new.out_features = len(g)
        elif isinstance(m, _CONV):
            new.out_channels = len(g)
        else:
            new.num_features = len(g)
        for pname in ("weight", "bias"):
            p = getattr(m, pname, None)
            if p is not None:
                setattr(new, pname, nn.Parameter(p.detach()[g].clone(),
                                                 requires_grad=p.requires_grad))
        for bname in ("running_mean", "running_var"):
            b = getattr(m, bname, None)
            if b is not None:
                setattr(new, bname, b[g].clone())
    return new


def _grow_consumer(m: nn.Module, g: torch.Tensor, counts: torch.Tensor, old: int,
                   noise: float, gen: torch.Generator) -> nn.Module:
    """A copy of ``m`` reading the widened tensor: input unit j is old unit g[j], its weight
    divided by the number of replicas of g[j]. A linear layer after a flatten reads ``k``
    values per channel (channel-major, as ``flatten`` of N×C×H×W lays them out)."""
    new = copy.deepcopy(m)
    w = m.weight.detach()
    if isinstance(m, nn.Linear):
        if m.in_features % old:
            raise ValueError(f"a linear consumer with {m.in_features} inputs cannot read "
                             f"{old} channels")
        k = m.in_features // old
        w = w.view(w.shape[0], old, k)
    scale = (1.0 / counts[g].to(w.dtype)).view(1, -1, *[1] * (w.dim() - 2))
    nw = w[:, g] * scale
    if noise:
        nw = nw + noise * w.std() * torch.randn(nw.shape, generator=gen).to(nw)
    with torch.no_grad():
        if isinstance(m, nn.Linear):
            new.in_features = len(g) * k
            nw = nw.reshape(w.shape[0], -1)
        else:
            new.in_channels = len(g)
        new.weight = nn.Parameter(nw.clone(), requires_grad=m.weight.requires_grad)
    return new


def wider_mapping(old: int, width: int, generator: torch.Generator | None = None
                  ) -> torch.Tensor:
    """Chen et al. Eq. 6: g(j) = j for j < old, a random old unit for the new ones."""
    if width < old:
        raise ValueError(f"net2wider cannot shrink {old} units to {width}")
    extra = torch.randint(0, old, (width - old,), generator=generator)
    return torch.cat([torch.arange(old), extra])


def net2wider(model: nn.Module, producers, consumers, width: int, *, noise: float = 0.0,
              seed: int = 0) -> torch.Tensor:
    """Widen the tensor that ``producers`` write (Linear/Conv outputs and the BatchNorms on
    it, in any order) and ``consumers`` read (Linear/Conv inputs) to ``width`` units. A
    conv-BN(-act) pair is ``producers=[conv, bn]``. ``noise`` (a fraction of each consumer's
    weight std) breaks the replicas' symmetry at the price of exactness (Chen et al. Sec.
    2.3). Returns the mapping g."""
    producers, consumers = list(producers), list(consumers)
    if not producers or not consumers:
        raise ValueError("net2wider needs at least one producer and one consumer")
    mods = {n: _get(model, n) for n in producers + consumers}
    for n, m in mods.items():
        _check_groups(m, n)
    widths = {n: _width_of(mods[n]) for n in producers}
    if len(set(widths.values())) != 1:
        raise ValueError("the producers disagree on the width: "
                         + ", ".join(f"{n}={w}" for n, w in widths.items()))
    old = next(iter(widths.values()))
    for n in consumers:
        if not isinstance(mods[n], (nn.Linear, *_CONV)):
            raise ValueError(f"{n}: a consumer must be a Linear or Conv layer")
    gen = torch.Generator().manual_seed(seed)
    g = wider_mapping(old, width, gen)
    counts = torch.bincount(g, minlength=old)
    for n in producers:
        _set(model, n, _grow_producer(mods[n], g))
    for n in consumers:
        _set(model, n, _grow_consumer(mods[n], g, counts, old, noise, gen))
    return g


def is_idempotent(act: nn.Module) -> bool:
    """Whether f(f(x)) = f(x) on a range of inputs (ReLU yes; tanh, sigmoid, GELU no)."""
    x = torch.linspace(-8, 8, 257)
    with torch.no_grad():
        y = act(x.clone())
        return bool(torch.allclose(act(y.clone()), y, atol=1e-6))


def _preceding_width(model: nn.Module, name: str) -> int:
    names = [n for n, _ in model.named_modules()]
    mods = dict(model.named_modules())
    for n in reversed(names[:names.index(name)]):
        if isinstance(mods[n], (nn.Linear, *_CONV, *_BN)) and not name.startswith(n + "."):
            return _width_of(mods[n])
    raise ValueError(f"no Linear/Conv/BatchNorm before {name!r}: pass width=")


def net2deeper(model: nn.Module, after: str, kind: str = "linear", *, kernel_size: int = 3,
               width: int | None = None) -> nn.Module:
    """Insert an identity layer after the activation module ``after`` (Chen et al. Sec. 2.4):
    ``kind="linear"``, ``"conv"`` (k×k identity kernel, 'same' padding) or ``"conv_bn"``
    (the BN at pass-through: γ = 1, β = 0, running mean 0, running variance 1 − ε, so in eval
    mode it is exactly the identity; in train mode it normalises with batch statistics).
    The new layer is followed by a copy of the activation: f(I·f(h)) = f(h) needs
    f(f(x)) = f(x). Returns the inserted block."""
    act = _get(model, after)
    if not is_idempotent(act):
        raise ValueError(f"net2deeper: {after} is {type(act).__name__}, for which f(f(x)) != "
                         "f(x), so an identity layer cannot preserve the function (Chen et "
                         "al. Sec. 2.4; ReLU works, tanh and sigmoid do not)")
    if kind not in ("linear", "conv", "conv_bn"):
        raise ValueError(f"unknown net2deeper kind {kind!r}; known: linear, conv, conv_bn")
    n = width or _preceding_width(model, after)
    dev = next(model.parameters()).device
    if kind == "linear":
        layer = nn.Linear(n, n, device=dev)
        with torch.no_grad():
            layer.weight.copy_(torch.eye(n))
            layer.bias.zero_()
        layers = [layer]
    else:
        if kernel_size % 2 != 1:
            raise ValueError("an identity kernel needs an odd kernel size")
        conv = nn.Conv2d(n, n, kernel_size, padding=kernel_size // 2, bias=kind == "conv",
                         device=dev)
        with torch.no_grad():
            conv.weight.zero_()
            c = kernel_size // 2
            conv.weight[torch.arange(n), torch.arange(n), c, c] = 1.0
            if conv.bias is not None:
                conv.bias.zero_()
        layers = [conv]
        if kind == "conv_bn":
            bn = nn.BatchNorm2d(n, device=dev)
            with torch.no_grad():
                bn.running_var.fill_(1.0 - bn.eps)
            layers.append(bn)
    block = nn.Sequential(*layers, copy.deepcopy(act))
    _set(model, after, nn.Sequential(act, block))
    return block


__all__ = ["is_idempotent", "net2deeper", "net2wider", "wider_mapping"]
