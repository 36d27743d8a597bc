"""Channel dependency graph of a model, traced from one shape-only forward pass.

Structured pruning removes whole channels, and a channel is rarely one layer's business: a
residual addition ties the channels of both operands, a concatenation hands channels to every
consumer, a depthwise convolution keeps its input's channels, a channel shuffle and a channel
split tie channel ``p`` of every group, an SE block scales each channel by one of its own
outputs. This module finds those ties without reading the model's source.

Why this tracer and not ``torch.fx``: fx needs a model whose ``forward`` is traceable with
proxies (no shape-dependent Python control flow, no ``x.shape[1] // 2``); several cnnlab
models compute sizes from shapes at run time. The profiler's ``__torch_function__`` mode
(:class:`cnnlab.profile.counter.ShapeCounter`) runs the real ``forward`` on meta tensors, so
whatever Python the model does, it sees every tensor op with concrete shapes. This tracer is a
subclass of it: beside each meta activation it carries a *label tensor*, an integer tensor of
the same rank whose entries name the channel each element belongs to (a dimension where all
labels are equal is kept at size 1, so labels stay small). Ops act on labels as they act on
data — a view reshapes them, a concatenation concatenates them, a slice slices them — and every
op that couples channels unions their labels (union-find):

* convolution / linear: fresh labels for its output channels; its weight's input slices are
  claimed by the input labels. A depthwise convolution (``groups == C_in``) ties input channel
  ``j`` to its outputs; a grouped one (``C_in / groups > 1``) ties position ``p`` of every group,
  so all groups stay equal.
* element-wise ops between activations (residual additions, SE's ``x * s``) union the labels
  met at the same element.
* a reshape that splits the channel dimension (channel shuffle) ties every entry along the
  fixed (smaller) factor; ``chunk`` and an even two-way slice (ShuffleNet V2's channel split,
  ``x[:, :c//2]``) tie position ``p`` of every part.
* anything not understood, the model's input and its outputs are tied to ``FIXED``: kept.

Each label owns *slices* — (tensor name, dim, index) of the parameters and buffers to cut when
it is removed; two labels that claim the same slice are one channel. A class of the
union-find that is not tied to ``FIXED`` is one prunable unit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn as nn

from cnnlab.profile.counter import _ACTIVATIONS, _METADATA, ShapeCounter

FIXED, NONE = 0, -1  # must be kept; no channel (a constant)

_PASS = (_ACTIVATIONS - {"softmax", "log_softmax", "prelu"}) | {
    "contiguous", "clone", "detach", "to", "float", "type_as", "requires_grad_"}
_SPATIAL = {f"{p}_pool{n}d" for p in ("max", "avg") for n in (1, 2, 3)} | {
    f"adaptive_{p}_pool{n}d" for p in ("max", "avg") for n in (1, 2, 3)} | {
    "interpolate", "upsample", "upsample_nearest", "upsample_bilinear", "max_pool2d_with_indices"}
_BINARY = {"add", "add_", "__add__", "__radd__", "__iadd__", "sub", "sub_", "__sub__", "__rsub__",
           "__isub__", "mul", "mul_", "__mul__", "__rmul__", "__imul__", "div", "div_",
           "__truediv__", "__rtruediv__", "__itruediv__", "maximum", "minimum"}
_VIEWS = {"view", "reshape", "flatten", "unflatten", "squeeze", "unsqueeze"}
_PERMUTES = {"transpose", "permute", "t", "movedim", "swapaxes", "swapdims"}
_REDUCE = {"mean", "sum", "amax", "amin"}


@dataclass
class WeightOp:
    """One convolution or linear layer met in the trace."""

    weight: str  # qualified name of its weight
    bias: str | None
    kind: str  # "conv" or "linear"
    groups: int
    in_per_group: int  # a = C_in / groups
    out_per_group: int  # b = C_out / groups
    positions: int  # output positions per output channel (H_out·W_out, or the batch rows)
    kernel: int  # kernel elements (1 for linear)


@dataclass
class Unit:
    """One prunable channel: every slice that goes when it goes."""

    id: int
    slices: list[tuple[str, int, int]]
    producers: list[tuple[str, int]] = field(default_factory=list)  # (weight, row) it writes
    gammas: list[tuple[str, int]] = field(default_factory=list)  # (BN weight, index)


class DependencyGraph:
    """The traced graph: prunable :class:`Unit` s, weight ops and fixed slices."""

    def __init__(self, units: list[Unit], ops: list[WeightOp], sizes: dict[str, tuple],
                 owners: dict[str, tuple[str, str]], bn_weights: set[str], macs: int):
        self.units = units
        self.ops = ops
        self.sizes = sizes  # tensor name -> shape
        self.owners = owners  # tensor name -> (module name, attribute)
        self.bn_weights = bn_weights
        self.macs = macs  # the model's mult-adds (profiler convention) at the traced input

    def __len__(self) -> int:
        return len(self.units)

    def kept(self, removed) -> dict[tuple[str, int], list[int]]:
        """Kept indices of every (tensor, dim) that loses some when ``removed`` units go."""
        drop: dict[tuple[str, int], set[int]] = {}
        for u in removed:
            for name, dim, idx in self.units[u].slices:
                drop.setdefault((name, dim), set()).add(idx)
        return {k: [i for i in range(self.sizes[k[0]][k[1]]) if i not in v]
                for k, v in drop.items()}

    def weight_macs(self, kept_sizes: dict[tuple[str, int], int] | None = None) -> int:
        """Mult-adds of the traced convolutions and linear layers with ``kept_sizes``."""
        kept_sizes = kept_sizes or {}
        total = 0
        for op in self.ops:
            shape = self.sizes[op.weight]
            rows = kept_sizes.get((op.weight, 0), shape[0])
            cols = kept_sizes.get((op.weight, 1), shape[1])
            total += op.positions * rows * cols * op.kernel
        return total


class _UnionFind:
    def __init__(self):
        self.parent = [FIXED]

    def new(self) -> int:
        self.parent.append(len(self.parent))
        return len(self.parent) - 1

    def find(self, a: int) -> int:
        root = a
        while self.parent[root] != root:
            root = self.parent[root]
        while self.parent[a] != root:
            self.parent[a], a = root, self.parent[a]
        return root

    def union(self, a: int, b: int) -> None:
        if a == NONE or b == NONE:
            return
        ra, rb = self.find(a), self.find(b)
        if ra != rb:  # FIXED (0) stays the root of whatever joins it
            lo, hi = min(ra, rb), max(ra, rb)
            self.parent[hi] = lo


def _const(ndim: int, value: int = FIXED) -> torch.Tensor:
    return torch.full((1,) * ndim, value, dtype=torch.long)


def _compress(lab: torch.Tensor, check_values: bool = False) -> torch.Tensor:
    """Shrink every dim along which all labels are equal to size 1."""
    for d in range(lab.dim()):
        if lab.shape[d] > 1 and (lab.stride(d) == 0 or (
                check_values and bool((lab == lab.narrow(d, 0, 1)).all()))):
            lab = lab.narrow(d, 0, 1)
    return lab


def _dim_groups(src: tuple, dst: tuple):
    """Pair runs of dims of ``src`` and ``dst`` with equal products (a view's regrouping)."""
    i = j = 0
    out = []
    while i < len(src) or j < len(dst):
        gi, gj = [i] if i < len(src) else [], [j] if j < len(dst) else []
        pi = src[i] if i < len(src) else 1
        pj = dst[j] if j < len(dst) else 1
        i, j = i + bool(gi), j + bool(gj)
        while pi != pj:
            if pi < pj and i < len(src):
                gi.append(i)
                pi *= src[i]
                i += 1
            elif j < len(dst):
                gj.append(j)
                pj *= dst[j]
                j += 1
            else:
                return None
        out.append((gi, gj))
    return out


class GraphTracer(ShapeCounter):
    """Runs the model on meta tensors and builds the channel unions (see the module doc)."""

    def __init__(self, model: nn.Module):
        super().__init__(model)
        self.uf = _UnionFind()
        self.labels: dict[int, torch.Tensor] = {}
        self.keep: list = []  # keeps traced tensors alive so their ids stay unique
        self.names = {id(t): n for n, t in model.named_parameters(remove_duplicate=False)}
        self.names.update({id(t): n for n, t in model.named_buffers(remove_duplicate=False)})
        self.tensor_sizes = {n: tuple(t.shape) for n, t in model.named_parameters()}
        self.tensor_sizes.update({n: tuple(t.shape) for n, t in model.named_buffers()})
        self.slices: dict[int, list] = {}
        self.owner: dict[tuple, int] = {}
        self.producers: dict[int, list] = {}
        self.gammas: dict[int, list] = {}
        self.ops: list[WeightOp] = []
        self.out_ids: dict[str, list[int]] = {}
        self.param_labels: dict[str, torch.Tensor] = {}
        self.bn_weights: set[str] = set()

    # --- labels ----------------------------------------------------------------------------
    def set_label(self, t, lab):
        self.labels[id(t)] = lab
        self.keep.append(t)

    def label(self, t: torch.Tensor) -> torch.Tensor:
        lab = self.labels.get(id(t))
        if lab is not None:
            return lab
        name = self.names.get(id(t))
        if name is not None:
            return self._param_label(name, t)
        # a constant made inside forward: harmless unless it spans the channels
        big = t.dim() > 1 and t.shape[1] > 1
        return _const(t.dim(), FIXED if big else NONE)

    def _param_label(self, name, t):
        """A parameter used as data (LeNet's per-map coefficient, a layer scale): one label per
        index along its only non-trivial dim; anything else is kept whole."""
        if name not in self.param_labels:
            dims = [d for d, s in enumerate(t.shape) if s > 1]
            if len(dims) == 1:
                d = dims[0]
                ids = [self.uf.new() for _ in range(t.shape[d])]
                for i, u in enumerate(ids):
                    self.claim(u, (name, d, i))
                shape = [1] * t.dim()
                shape[d] = t.shape[d]
                self.param_labels[name] = torch.tensor(ids).view(shape)
            else:
                self.param_labels[name] = _const(t.dim())
        return self.param_labels[name]

    def claim(self, lab: int, key: tuple) -> None:
        if lab == NONE:
            lab = FIXED
        prev = self.owner.get(key)
        if prev is None:
            self.owner[key] = lab
            self.slices.setdefault(lab, []).append(key)
        else:
            self.uf.union(prev, lab)

    def fix(self, lab: torch.Tensor) -> None:
        for v in torch.unique(lab).tolist():
            self.uf.union(FIXED, v)

    def tie(self, a: torch.Tensor, b: torch.Tensor) -> None:
        a, b = torch.broadcast_tensors(a, b)
        keys = torch.unique((a.reshape(-1) + 1) * (1 << 32) + (b.reshape(-1) + 1))
        for k in keys.tolist():
            self.uf.union((k >> 32) - 1, (k & 0xFFFFFFFF) - 1)

    def channels(self, x: torch.Tensor, dim: int = 1) -> list[int] | None:
        """Per-channel labels along ``dim``, or None when they vary along another dim."""
        lab = self.label(x)
        if lab.dim() <= dim:
            return None
        other = [d for d in range(lab.dim()) if d != dim and lab.shape[d] > 1]
        if other:
            first = lab
            for d in other:
                first = first.narrow(d, 0, 1)
            if not bool((lab == first).all()):
                return None
            lab = first
        ids = lab.reshape(-1).tolist()
        return ids * x.shape[dim] if len(ids) == 1 else ids

    def channel_label(self, ids: list[int], ndim: int, dim: int = 1) -> torch.Tensor:
        shape = [1] * ndim
        shape[dim] = len(ids)
        return torch.tensor(ids, dtype=torch.long).view(shape)

    # --- the op hook -----------------------------------------------------------------------
    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = super().__torch_function__(func, types, args, kwargs)
        name = getattr(func, "__name__", "")
        if name in _METADATA or name in ("size", "dim"):
            return out
        try:
            self._label_op(name, args, kwargs, out)
        except _Unknown:
            self._unknown(args, kwargs, out)
        return out

    def _unknown(self, args, kwargs, out):
        for t in _tensors(args) + _tensors(kwargs):
            if id(t) in self.labels:
                self.fix(self.labels[id(t)])
        for t in _tensors(out):
            self.set_label(t, _const(t.dim()))

    def _label_op(self, name, args, kwargs, out):
        outs = _tensors(out)
        if not outs:
            return
        if name in ("conv1d", "conv2d", "conv3d"):
            return self._conv(args, kwargs, out)
        if name == "linear":
            return self._linear(args, kwargs, out)
        if name == "batch_norm":
            return self._batch_norm(args, kwargs, out)
        if name in ("cat", "concat", "concatenate"):
            return self._cat(args, kwargs, out)
        x = args[0] if args and isinstance(args[0], torch.Tensor) else None
        if x is None:
            raise _Unknown
        if name in _PASS and isinstance(out, torch.Tensor) and out.shape == x.shape and not any(
                isinstance(a, torch.Tensor) for a in list(args[1:]) + list(kwargs.values())):
            return self.set_label(out, self.label(x))
        if name in _BINARY:
            return self._binary(args, out)
        if name in _SPATIAL and isinstance(out, torch.Tensor):
            ids = self.channels(x)
            if ids is None or out.dim() != x.dim() or out.shape[:2] != x.shape[:2]:
                raise _Unknown
            return self.set_label(out, self.channel_label(ids, out.dim()))
        if name in _VIEWS:
            return self._view(x, out)
        if name in _PERMUTES:
            lab = self.label(x).expand(x.shape)
            moved = getattr(torch.Tensor, name)(lab, *args[1:], **kwargs)
            return self.set_label(out, _compress(moved))
        if name == "__getitem__":
            return self._getitem(x, args[1], out)
        if name == "narrow":  # torch.narrow(x, dim, start, length): the slice it is
            keys = ("dim", "start", "length")
            dim, start, length = [*args[1:4], *(kwargs.get(k) for k in keys[len(args) - 1:])]
            if not all(isinstance(v, int) for v in (dim, start, length)):
                raise _Unknown
            index = (slice(None),) * (dim % x.dim()) + (slice(start, start + length),)
            return self._getitem(x, index, out)
        if name in ("chunk", "split", "unbind", "tensor_split"):
            return self._split(name, args, kwargs, out)
        if name == "pad":
            return self._pad(args, kwargs, out)
        if name in _REDUCE:
            return self._reduce(args, kwargs, out)
        raise _Unknown

    # --- layer ops -------------------------------------------------------------------------
    def _conv(self, args, kwargs, out):
        x, w = args[0], args[1] if len(args) > 1 else kwargs["weight"]
        bias = args[2] if len(args) > 2 else kwargs.get("bias")
        groups = args[6] if len(args) > 6 else kwargs.get("groups", 1)
        wname = self.names.get(id(w))
        bname = self.names.get(id(bias)) if bias is not None else None
        ids = self.channels(x)
        if wname is None or ids is None or (bias is not None and bname is None):
            raise _Unknown
        cin, cout = x.shape[1], w.shape[0]
        a, b = cin // groups, cout // groups
        outs = self._outputs(wname, bname, cout)
        for j, lab in enumerate(ids):
            if groups == 1:
                self.claim(lab, (wname, 1, j))
            elif a == 1:  # depthwise: input channel j is group j
                for r in range(b):
                    self.uf.union(lab if lab != NONE else FIXED, outs[j * b + r])
            else:  # grouped: position j % a of every group goes together
                self.claim(lab, (wname, 1, j % a))
        if groups > 1 and a > 1:
            for q in range(1, groups):
                for r in range(b):
                    self.uf.union(outs[r], outs[q * b + r])
        self.ops.append(WeightOp(wname, bname, "conv", groups, a, b,
                                 math.prod(out.shape[2:]), math.prod(w.shape[2:])))
        self.set_label(out, self.channel_label(outs, out.dim()))

    def _outputs(self, wname, bname, n):
        if wname not in self.out_ids:  # a layer run twice writes the same channels
            ids = [self.uf.new() for _ in range(n)]
            for i, u in enumerate(ids):
                self.claim(u, (wname, 0, i))
                if bname is not None:
                    self.claim(u, (bname, 0, i))
                self.producers.setdefault(u, []).append((wname, i))
            self.out_ids[wname] = ids
        return self.out_ids[wname]

    def _linear(self, args, kwargs, out):
        x, w = args[0], args[1] if len(args) > 1 else kwargs["weight"]
        bias = args[2] if len(args) > 2 else kwargs.get("bias")
        wname = self.names.get(id(w))
        bname = self.names.get(id(bias)) if bias is not None else None
        ids = self.channels(x, x.dim() - 1)
        if wname is None or ids is None or (bias is not None and bname is None):
            raise _Unknown
        for j, lab in enumerate(ids):
            self.claim(lab, (wname, 1, j))
        outs = self._outputs(wname, bname, w.shape[0])
        self.ops.append(WeightOp(wname, bname, "linear", 1, w.shape[1], w.shape[0],
                                 math.prod(out.shape[1:-1]), 1))
        self.set_label(out, self.channel_label(outs, out.dim(), out.dim() - 1))

    def _batch_norm(self, args, kwargs, out):
        x = args[0]
        keys = ("running_mean", "running_var", "weight", "bias")
        tensors = [args[i + 1] if len(args) > i + 1 else kwargs.get(k) for i, k in enumerate(keys)]
        names = [self.names.get(id(t)) if t is not None else None for t in tensors]
        ids = self.channels(x)
        if ids is None or any(t is not None and n is None for t, n in zip(tensors, names)):
            raise _Unknown
        for j, lab in enumerate(ids):
            for n in names:
                if n is not None:
                    self.claim(lab, (n, 0, j))
            if names[2] is not None and lab not in (FIXED, NONE):
                self.gammas.setdefault(lab, []).append((names[2], j))
        if names[2] is not None:
            self.bn_weights.add(names[2])
        self.set_label(out, self.label(x))

    # --- data-movement ops -----------------------------------------------------------------
    def _binary(self, args, out):
        tensors = [a for a in args if isinstance(a, torch.Tensor)]
        if not isinstance(out, torch.Tensor):
            raise _Unknown
        nd = out.dim()
        labs = [self.label(t) for t in tensors]
        labs = [lab.view((1,) * (nd - lab.dim()) + tuple(lab.shape)) for lab in labs]
        for other in labs[1:]:
            self.tie(labs[0], other)
        merged = labs[0]
        for other in labs[1:]:
            a, b = torch.broadcast_tensors(merged, other)
            merged = torch.where(a != NONE, a, b)
        self.set_label(out, _compress(merged))

    def _view(self, x, out):
        if not isinstance(out, torch.Tensor):
            raise _Unknown
        lab = self.label(x).expand(x.shape)
        groups = _dim_groups(tuple(x.shape), tuple(out.shape))
        if groups is None:
            raise _Unknown
        new = _compress(lab.reshape(out.shape), check_values=True)
        for gi, gj in groups:
            varies = any(self.label(x).shape[i] > 1 for i in gi)
            if not varies or len(gj) < 2:
                continue
            if len(gi) > 1:
                raise _Unknown  # a regrouping (6, 4) -> (4, 6): not a split
            sizes = [out.shape[j] for j in gj]
            keep = gj[sizes.index(max(sizes))]  # the channel count; the others are groups
            for j in gj:
                if j != keep and new.shape[j] > 1:
                    self.tie(new, new.narrow(j, 0, 1))
        self.set_label(out, new)

    def _getitem(self, x, index, out):
        if not isinstance(out, torch.Tensor):
            raise _Unknown
        lab = self.label(x)
        new = _compress(lab.expand(x.shape)[index])
        if _half(index, x) and lab.shape[1] > 1:
            # ShuffleNet V2's channel split: both halves lose the same positions
            h = x.shape[1] // 2
            self.tie(lab.narrow(1, 0, h), lab.narrow(1, h, h))
        else:
            lost = set(torch.unique(lab).tolist()) - set(torch.unique(new).tolist())
            if lost - {NONE}:
                self.fix(lab)
        self.set_label(out, new)

    def _cat(self, args, kwargs, out):
        tensors = list(args[0] if args else kwargs["tensors"])
        dim = (args[1] if len(args) > 1 else kwargs.get("dim", 0)) % out.dim()
        labs = [self.label(t) for t in tensors]
        shape = [1] * out.dim()
        for d in range(out.dim()):
            if d != dim and any(lab.shape[d] > 1 for lab in labs):
                shape[d] = out.shape[d]
        parts = []
        for t, lab in zip(tensors, labs):
            s = list(shape)
            s[dim] = t.shape[dim]
            parts.append(lab.expand(s))
        self.set_label(out, _compress(torch.cat(parts, dim)))

    def _split(self, name, args, kwargs, out):
        x = args[0]
        outs = list(out)
        dim = args[2] if len(args) > 2 else kwargs.get("dim", 0)
        if name == "unbind":
            dim = args[1] if len(args) > 1 else kwargs.get("dim", 0)
        dim %= x.dim()
        lab = self.label(x)
        if lab.shape[dim] == 1:
            for t in outs:
                s = list(lab.shape)
                if name == "unbind":
                    s.pop(dim)
                self.set_label(t, lab.reshape(s))
            return
        if name != "chunk" or len({t.shape[dim] for t in outs}) != 1:
            raise _Unknown  # split sizes written in the model would not follow the pruning
        n = outs[0].shape[dim]
        for i, t in enumerate(outs):
            part = lab.narrow(dim, i * n, n)
            if i:
                self.tie(lab.narrow(dim, 0, n), part)
            self.set_label(t, _compress(part))

    def _pad(self, args, kwargs, out):
        x = args[0]
        pads = list(args[1] if len(args) > 1 else kwargs["pad"])
        lab = self.label(x)
        for k in range(len(pads) // 2):
            d = x.dim() - 1 - k
            lo, hi = pads[2 * k], pads[2 * k + 1]
            if lab.shape[d] == 1 or (lo == 0 and hi == 0):
                continue
            if lo < 0 or hi < 0:
                raise _Unknown
            s = list(lab.shape)
            parts = [lab]
            if lo:
                s[d] = lo
                parts.insert(0, torch.full(s, FIXED, dtype=torch.long))
            if hi:
                s[d] = hi
                parts.append(torch.full(s, FIXED, dtype=torch.long))
            lab = torch.cat(parts, d)  # padded channels are written in the model: kept
        self.set_label(out, lab)

    def _reduce(self, args, kwargs, out):
        x = args[0]
        dim = args[1] if len(args) > 1 else kwargs.get("dim")
        keepdim = args[2] if len(args) > 2 else kwargs.get("keepdim", False)
        if not isinstance(out, torch.Tensor) or dim is None:
            raise _Unknown
        dims = [dim] if isinstance(dim, int) else list(dim)
        lab = self.label(x)
        dims = [d % x.dim() for d in dims]
        if any(lab.shape[d] > 1 for d in dims):
            raise _Unknown  # mixes channels
        self.set_label(out, lab.amax(dim=dims, keepdim=bool(keepdim)))


class _Unknown(Exception):
    pass


def _tensors(x) -> list[torch.Tensor]:
    if isinstance(x, torch.Tensor):
        return [x]
    if isinstance(x, (list, tuple)):
        return [t for v in x for t in _tensors(v)]
    if isinstance(x, dict):
        return [t for v in x.values() for t in _tensors(v)]
    return []


def _half(index, x) -> bool | None:
    """``x[:, :c//2]`` or ``x[:, c//2:]`` (a split point the model computes from ``c``)."""
    if not isinstance(index, tuple) or len(index) != 2 or index[0] != slice(None):
        return None
    s, c = index[1], x.shape[1]
    if not isinstance(s, slice) or s.step not in (None, 1) or c % 2:
        return None
    h = c // 2
    if (s.start in (None, 0) and s.stop == h) or (s.start == h and s.stop in (None, c)):
        return True
    return None


def trace(model: nn.Module, input_size: tuple[int, ...]) -> DependencyGraph:
    """Trace ``model`` at ``input_size`` (C, H, W) on meta tensors into a
    :class:`DependencyGraph`. The model's weights are not touched and need no values.

    The eval-mode pass gives the graph and the mult-adds; when some parameters did not run
    in it (GoogLeNet's and Inception's auxiliary heads), a training-mode pass adds their ties,
    so the pruned model still trains."""
    was_training = model.training
    tracer = GraphTracer(model)
    try:
        for mode in (False, True):
            model.train(mode)
            x = torch.empty((2, *input_size), device="meta")  # 2: training-mode BN needs it
            tracer.set_label(x, _const(x.dim()))
            with torch.no_grad(), tracer:
                out = model(x)
            for t in _tensors(out):
                tracer.fix(tracer.label(t))
            if not mode:
                n_ops, n_rows = len(tracer.ops), len(tracer.rows)
            if tracer.all_params_used():
                break
    finally:
        model.train(was_training)
    tracer.ops, tracer.rows = tracer.ops[:n_ops], tracer.rows[:n_rows]
    return _build(model, tracer)


def _build(model, tr: GraphTracer) -> DependencyGraph:
    uf = tr.uf
    classes: dict[int, Unit] = {}
    for lab in range(1, len(uf.parent)):
        root = uf.find(lab)
        if root == FIXED:
            continue
        unit = classes.setdefault(root, Unit(id=0, slices=[]))
        unit.slices += tr.slices.get(lab, [])
        unit.producers += tr.producers.get(lab, [])
        unit.gammas += tr.gammas.get(lab, [])
    units = [u for u in classes.values() if u.slices]
    for i, u in enumerate(units):
        u.id = i
    owners = {}
    for mname, m in model.named_modules():
        for pname, _ in list(m.named_parameters(recurse=False)) + list(
                m.named_buffers(recurse=False)):
            owners[f"{mname}.{pname}" if mname else pname] = (mname, pname)
    macs = sum(r.macs for r in tr.rows) // 2  # traced at batch 2
    return DependencyGraph(units, tr.ops, tr.tensor_sizes, owners, tr.bn_weights, macs)
