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

from cnnlab.profile.ops import _ACTIVATIONS, METADATA, FallThrough, rule_for, to_meta  # noqa: F401

# tracers built on ShapeCounter import the op-name sets from here, by these names
_METADATA = METADATA


@dataclass
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
        self._names = {id(m): n for n, m in model.named_modules()}
        self._params = {id(p) for p in model.parameters()}
        self._seen_params: set[int] = set()
        self._stack: list[str] = [""]
        self._hooks = []

    # --- module attribution -------------------------------------------------------------
    def __enter__(self):
        names = self._names

        def pre(module, args):
            name = names.get(id(module))
            if name is not None:
                self._stack.append(name)

        def post(module, args, out):
            name = names.get(id(module))
            if name is not None and self._stack[-1] == name:
                self._stack.pop()
                with torch._C.DisableTorchFunction():  # numel() here is ours, not the model's
                    self.module_io[name] = (type(module).__name__, _elems(args), _elems(out))

        self._hooks = [
            nn.modules.module.register_module_forward_pre_hook(pre),
            nn.modules.module.register_module_forward_hook(post),
        ]
        return super().__enter__()

    def __exit__(self, *exc):
        for h in self._hooks:
            h.remove()
        return super().__exit__(*exc)

    # --- ops -------------------------------------------------------------------------------
    def new_params(self, *tensors) -> int:
        """Elements of the parameters among ``tensors`` not counted before."""
        n = 0
        for t in tensors:
            if isinstance(t, torch.Tensor) and id(t) in self._params:
                if id(t) not in self._seen_params:
                    self._seen_params.add(id(t))
                    n += t.numel()
        return n

    def is_param(self, t) -> bool:
        return id(t) in self._params

    def record(self, op: str, *, kind: str, inputs, out_shape, params: int = 0, macs: int = 0,
               other: int = 0, weights: int = 0, elem_size: int = 4) -> None:
        """One :class:`OpRow` for the op running now: ``inputs`` are the activations read,
        ``weights`` the parameter elements read, ``params`` those used for the first time."""
        in_shapes = [tuple(t.shape) for t in inputs if isinstance(t, torch.Tensor)]
        in_elems = sum(math.prod(s) for s in in_shapes)
        out_elems = math.prod(out_shape)
        self.rows.append(OpRow(
            name=self._stack[-1], op=op, kind=kind,
            input_shape=in_shapes[0] if len(in_shapes) == 1 else tuple(in_shapes),
            output_shape=tuple(out_shape), params=params, macs=int(macs), other_ops=int(other),
            memory_access=in_elems + out_elems + weights,
            input_elems=in_elems, output_elems=out_elems, elem_size=elem_size,
        ))

    def too_small(self, op, in_shape, out_shape):
        where = self._stack[-1] or "the model"
        raise ValueError(
            f"input too small: {op} in '{where}' gets {tuple(in_shape)} and would output "
            f"{tuple(out_shape)}"
        )

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = getattr(func, "__name__", "")
        if name in METADATA:
            return func(*args, **kwargs)
        rule = rule_for(name)
        if rule is not None:
            try:
                out = rule(self, name, args, kwargs)
            except FallThrough:
                out = None
            if out is not None:
                return out
        return func(*to_meta(args), **to_meta(kwargs))


def _elems(x) -> int:
    if isinstance(x, torch.Tensor):
        return x.numel()
    if isinstance(x, (list, tuple)):
        return sum(_elems(v) for v in x)
    if isinstance(x, dict):
        return sum(_elems(v) for v in x.values())
    return 0
