"""Conv–BN folding for inference (Ioffe & Szegedy 2015, Sec. 3.1: at inference BN is a fixed
per-channel affine map, so it folds into the convolution before it).

For a convolution ``y = W * x + b`` followed by ``BN(y) = γ (y − μ) / √(σ² + ε) + β``:
``W' = W · s`` and ``b' = (b − μ) · s + β`` with ``s = γ / √(σ² + ε)`` per output channel.

Pairs are found by running the model once on a small input and watching which
tensors flow where: a BatchNorm folds into a convolution when its input is exactly that
convolution's output and nothing else reads that output. So it works on any ``nn.Module``
whatever its ``forward`` does, and the model files stay as they are.
"""

from __future__ import annotations

import copy

import torch
import torch.nn as nn
from torch.func import functional_call
from torch.overrides import TorchFunctionMode

_CONVS = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
_BNS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)


def _plain(m: nn.Module, bases) -> bool:
    """An instance of a torch class whose forward was not overridden (its weight means
    what the torch class means by it)."""
    base = next((b for b in bases if isinstance(m, b)), None)
    return base is not None and type(m).forward is base.forward and \
        getattr(type(m), "_conv_forward", None) is getattr(base, "_conv_forward", None)


class _Uses(TorchFunctionMode):
    """Counts, per tensor id, the torch calls outside BN layers that read it and return a
    tensor (shape queries such as ``x.size()`` do not read values)."""

    def __init__(self):
        super().__init__()
        self.uses: dict[int, int] = {}
        self.watch: set[int] = set()  # ids of live conv outputs: ids are reused once freed
        self.in_bn = 0

    def __torch_function__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        if not self.in_bn and _has_tensor(out):
            for t in _tensors((args, kwargs)):
                if id(t) in self.watch:
                    self.uses[id(t)] = self.uses.get(id(t), 0) + 1
        return out


def _tensors(obj):
    if isinstance(obj, torch.Tensor):
        yield obj
    elif isinstance(obj, (list, tuple)):
        for o in obj:
            yield from _tensors(o)
    elif isinstance(obj, dict):
        for o in obj.values():
            yield from _tensors(o)


def _has_tensor(obj) -> bool:
    return next(_tensors(obj), None) is not None


def _example_input(model: nn.Module, input_size, device) -> torch.Tensor:
    if input_size is None:
        input_size = getattr(model, "default_input_size", None)
        name = getattr(model, "model_name", None)
        if input_size is None and name:
            from cnnlab.models import model_info

            input_size = model_info(name).input_size
        if input_size is None:
            raise ValueError("fuse_bn needs input_size for a module without a default")
    return torch.zeros((1, *input_size), device=device)


def find_conv_bn(model: nn.Module, input_size=None) -> list[tuple[str, str]]:
    """``(conv name, bn name)`` for every BatchNorm that directly follows a convolution,
    found from one forward pass at ``input_size`` (small is enough)."""
    names = {m: n for n, m in model.named_modules(remove_duplicate=False)}
    made: dict[int, str] = {}  # conv output id -> conv name
    calls: dict[str, int] = {}
    fed: dict[str, tuple[int, str]] = {}  # bn name -> (input id, conv name)
    keep = []  # hold tensors so that their ids are not reused
    mode = _Uses()

    def conv_hook(m, inp, out):
        calls[names[m]] = calls.get(names[m], 0) + 1
        made[id(out)] = names[m]
        mode.watch.add(id(out))
        keep.append(out)

    def bn_pre(m, inp):
        calls[names[m]] = calls.get(names[m], 0) + 1
        src = made.get(id(inp[0]))
        if src is not None:
            fed[names[m]] = (id(inp[0]), src)
        mode.in_bn += 1

    def bn_post(m, inp, out):
        mode.in_bn -= 1

    handles = []
    for m in model.modules():
        if _plain(m, _CONVS):
            handles.append(m.register_forward_hook(conv_hook))
        elif _plain(m, _BNS) and m.track_running_stats:
            handles += [m.register_forward_pre_hook(bn_pre), m.register_forward_hook(bn_post)]
    # a model on meta runs on uninitialised CPU tensors swapped in for its weights (only the
    # tensors' identities matter here); meta kernels cost ~1 ms per op, CPU ones at a tiny
    # input a few µs
    tensors = {**dict(model.named_parameters(remove_duplicate=False)),
               **dict(model.named_buffers(remove_duplicate=False))}
    state = {k: torch.empty_like(v, device="cpu") if v.is_meta else v
             for k, v in tensors.items()}
    device = next((v.device for v in state.values()), torch.device("cpu"))
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), mode:
            functional_call(model, state, (_example_input(model, input_size, device),),
                            tie_weights=False)
    finally:
        model.train(was_training)
        for h in handles:
            h.remove()
    pairs = []
    for bn, (tid, conv) in fed.items():
        if calls[bn] == 1 and calls[conv] == 1 and mode.uses.get(tid, 0) == 0:
            pairs.append((conv, bn))
    return pairs


@torch.no_grad()
def fold(conv: nn.Module, bn: nn.Module) -> nn.Module:
    """A new convolution equal to ``bn(conv(x))`` for BN in eval mode."""
    scale = bn.weight if bn.affine else torch.ones_like(bn.running_var)
    shift = bn.bias if bn.affine else torch.zeros_like(bn.running_mean)
    s = scale.double() / torch.sqrt(bn.running_var.double() + bn.eps)
    b = conv.bias.double() if conv.bias is not None else torch.zeros_like(s)
    new = copy.deepcopy(conv)
    w = conv.weight.double() * s.view(-1, *[1] * (conv.weight.dim() - 1))
    new.weight = nn.Parameter(w.to(conv.weight.dtype))
    new.bias = nn.Parameter(((b - bn.running_mean.double()) * s + shift.double())
                            .to(conv.weight.dtype))
    return new


def _set(model: nn.Module, name: str, module: nn.Module) -> None:
    parent, _, leaf = name.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, leaf, module)


def fuse_bn(model: nn.Module, input_size=None, *, inplace: bool = False) -> nn.Module:
    """A copy of ``model`` in eval mode with every BatchNorm that directly follows a
    convolution folded into it (the BN becomes ``nn.Identity``). ``model`` is untouched
    unless ``inplace=True``.

    ``input_size`` (C, H, W) is only used for the pass that finds the pairs; by
    default the model's own or its registry entry's. The copy records the folded pairs in
    ``fused_pairs``.
    """
    pairs = find_conv_bn(model, input_size)
    fused = (model if inplace else copy.deepcopy(model)).eval()
    for conv, bn in pairs:
        _set(fused, conv, fold(fused.get_submodule(conv), fused.get_submodule(bn)))
        _set(fused, bn, nn.Identity())
    fused.fused_pairs = pairs
    return fused
