"""Shape-only execution of a model: every op's shapes, multiply-adds and element operations.

The model runs under :class:`ShapeCounter`, a :class:`~torch.overrides.TorchFunctionMode`
that attributes each op to the innermost module running it and asks
:mod:`cnnlab.profile.ops` for the op's rule. Ops whose output shape is known in closed form
(convolutions, linear layers, norms, activations, pooling, element-wise arithmetic,
concatenation) are answered there with an empty meta tensor of the right shape, at a few
microseconds each; every other op falls through to PyTorch's meta kernels. No arithmetic is
done and no activation memory is allocated, whatever device the weights live on. The
counting convention is in :mod:`cnnlab.profile.ops`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn
from torch.overrides import TorchFunctionMode

from cnnlab.profile.ops import (  # noqa: F401
    _ACTIVATIONS,
    METADATA,
    MODULE_RULES,
    FallThrough,
    rule_for,
    to_meta,
)

# tracers built on ShapeCounter import the op-name sets from here, by these names
_METADATA = METADATA


@dataclass(slots=True)
class OpRow:
    name: str  # qualified name of the innermost module running the op ("" = the model)
    op: str  # the function's name: conv2d, linear, batch_norm, relu, add, ...
    kind: str  # breakdown category: "conv 1x1", "conv dw 3x3", "fully connected", ...
    input_shape: tuple[int, ...]
    output_shape: tuple[int, ...]
    params: int  # parameters used by this op for the first time
    macs: int
    other_ops: int
    memory_access: int  # ShuffleNet V2's MAC: input + output activations + weights, elements
    input_elems: int
    output_elems: int
    elem_size: int


class ShapeCounter(TorchFunctionMode):
    """Collects one :class:`OpRow` per op while a model runs on meta tensors."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.rows: list[OpRow] = []
        self.module_io: dict[str, tuple[str, int, int]] = {}
        self.modules_by_name = _named_modules(model)
        # model.parameters() in one pass over the modules already listed (no second walk)
        params: list[torch.Tensor] = []
        unseen: dict[int, int] = {}  # id -> elements, of the parameters no op has used yet
        for _, m in self.modules_by_name:
            if m._parameters:
                for p in m._parameters.values():
                    if p is not None and id(p) not in unseen:
                        unseen[id(p)] = p.numel()
                        params.append(p)
        self.parameters, self._unseen, self._params = params, unseen, set(unseen)
        self._stack: list[str] = [""]

    # --- module attribution -------------------------------------------------------------
    # Each module's forward is wrapped for the pass (an instance attribute, removed on exit):
    # global module hooks would send every module call down nn.Module's slow path.
    def __enter__(self):
        self._saved = []
        # a plain torch layer (its exact class: not a subclass, nor a parametrized one) is
        # answered directly, unless a tracer built on this one watches every op
        rules = MODULE_RULES if type(self).__torch_function__ is \
            ShapeCounter.__torch_function__ else {}
        saved, scoped = self._saved, self._scoped
        for name, m in self.modules_by_name:
            d = m.__dict__
            own = d.get("forward")
            saved.append((d, own))
            d["forward"] = scoped(name, m, own or m.forward, rules.get(type(m)))
        return super().__enter__()

    def __exit__(self, *exc):
        for d, own in self._saved:
            if own is None:
                d.pop("forward", None)
            else:
                d["forward"] = own
        return super().__exit__(*exc)

    def _scoped(self, name: str, module: nn.Module, forward, rule):
        stack, io, kind, rows = self._stack, self.module_io, type(module).__name__, self.rows

        def forward_in_scope(*args, **kwargs):
            if rule is not None and len(args) == 1 and not kwargs:
                x = args[0]
                before = len(rows)
                with torch._C.DisableTorchFunction():  # as inside __torch_function__
                    stack.append(name)
                    try:
                        out = rule(self, module, x)
                    except FallThrough:
                        out = None
                    finally:
                        stack.pop()
                    if out is not None:  # the plain layer answered: no forward, one block
                        if len(rows) == before + 1:  # its one row has the elements already
                            row = rows[-1]
                            io[name] = (kind, row.input_elems, row.output_elems)
                        else:
                            io[name] = (kind, _elems(x), _elems(out))
                        return out
            stack.append(name)
            try:
                out = forward(*args, **kwargs)
            finally:
                stack.pop()
            with torch._C.DisableTorchFunction():  # numel() here is ours, not the model's
                io[name] = (kind, _elems(args[0] if len(args) == 1 else args), _elems(out))
            return out

        return forward_in_scope

    # --- ops -------------------------------------------------------------------------------
    def new_params(self, *tensors) -> int:
        """Elements of the parameters among ``tensors`` not counted before."""
        unseen, n = self._unseen, 0
        for t in tensors:  # a live object's id is no other live object's: ints, None miss
            n += unseen.pop(id(t), 0)
        return n

    def all_params_used(self) -> bool:
        """Whether every parameter has been read by some op so far."""
        return not self._unseen

    def is_param(self, t) -> bool:
        return id(t) in self._params

    def record(self, op: str, *, kind: str, inputs, out_shape, params: int = 0, macs: int = 0,
               other: int = 0, weights: int = 0, elem_size: int = 4) -> None:
        """One :class:`OpRow` for the op running now: ``inputs`` are the activations read,
        ``weights`` the parameter elements read, ``params`` those used for the first time."""
        in_shapes, in_elems = [], 0
        for t in inputs:
            if isinstance(t, torch.Tensor):
                in_shapes.append(tuple(t.shape))
                in_elems += t.numel()
        out_elems = math.prod(out_shape)
        self.rows.append(OpRow(
            name=self._stack[-1], op=op, kind=kind,
            input_shape=in_shapes[0] if len(in_shapes) == 1 else tuple(in_shapes),
            output_shape=tuple(out_shape), params=params, macs=int(macs), other_ops=int(other),
            memory_access=in_elems + out_elems + weights,
            input_elems=in_elems, output_elems=out_elems, elem_size=elem_size,
        ))

    def layer_row(self, op: str, kind: str, x: torch.Tensor, in_shape: tuple,
                  out_shape: tuple, *, params: int = 0, macs: int = 0, other: int = 0,
                  weights: int = 0, in_elems: int | None = None) -> None:
        """:meth:`record` for a layer that reads one activation ``x`` of ``in_shape`` (the
        hot path: the caller has the shapes as tuples already). An op reading several
        activations gives their shapes as ``in_shape`` and their total ``in_elems``."""
        if in_elems is None:
            in_elems = math.prod(in_shape)
        out_elems = math.prod(out_shape)
        self.rows.append(OpRow(self._stack[-1], op, kind, in_shape, out_shape, params, macs,
                               other, in_elems + out_elems + weights, in_elems, out_elems,
                               x.element_size()))

    def too_small(self, op, in_shape, out_shape):
        where = self._stack[-1] or "the model"
        raise ValueError(
            f"input too small: {op} in '{where}' gets {tuple(in_shape)} and would output "
            f"{tuple(out_shape)}"
        )

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        try:
            rule, name = _RULES[func]
        except (KeyError, TypeError):
            rule, name = _rule_of(func)
        if rule is _METADATA_QUERY:
            return func(*args, **kwargs)
        if rule is not None:
            try:
                out = rule(self, name, args, kwargs)
            except FallThrough:
                out = None
            if out is not None:
                return out
        return func(*_on_meta(args), **(to_meta(kwargs) if kwargs else kwargs))


def _on_meta(args: tuple) -> tuple:
    """``to_meta(args)``, but ``args`` themselves when nothing in them needs it: the view ops
    that fall through (view, transpose, flatten, ...) take meta activations and ints, and
    rebuilding their arguments cost more than the meta kernel itself."""
    for a in args:
        if isinstance(a, torch.Tensor):
            if not a.is_meta:
                return to_meta(args)
        elif isinstance(a, (list, tuple, dict)):
            return to_meta(args)
    return args


def _METADATA_QUERY():  # marks a metadata query in _RULES
    pass


# torch function -> (its rule, _METADATA_QUERY or None for the meta kernel; its name)
_RULES: dict = {}


def _rule_of(func) -> tuple:
    name = getattr(func, "__name__", "")
    entry = (_METADATA_QUERY if name in METADATA else rule_for(name), name)
    try:
        _RULES[func] = entry
    except TypeError:  # an unhashable callable: looked up by name every time
        pass
    return entry


def _named_modules(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """``list(model.named_modules())`` in the same order, without a generator per module:
    the recursive generators cost a tenth of a small model's profile."""
    out, seen = [], set()
    todo = [("", model)]
    while todo:
        name, m = todo.pop()
        if id(m) in seen:
            continue
        seen.add(id(m))
        out.append((name, m))
        children = m._modules
        if children:  # most modules are leaves: no prefix, no list for them
            prefix = name + "." if name else ""
            todo.extend(reversed([(prefix + k, c) for k, c in children.items() if c is not None]))
    return out


def _elems(x) -> int:
    if isinstance(x, torch.Tensor):
        return x.numel()
    if isinstance(x, (list, tuple)):  # DenseNet's layers take a list of up to 32 tensors
        n = 0
        for v in x:
            n += v.numel() if isinstance(v, torch.Tensor) else _elems(v)
        return n
    if isinstance(x, dict):
        return sum(_elems(v) for v in x.values())
    return 0
