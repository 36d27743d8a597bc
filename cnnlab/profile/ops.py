"""The op rules of the shape-only profiler: for each torch function, the output shape in
closed form and the op's row (mult-adds, element operations, memory access), as fvcore's
``jit_handles`` are to its ``flop_count``. :mod:`cnnlab.profile.counter` is the tracing mode
that calls them.

A rule is ``rule(counter, name, args, kwargs)``: it records the op through
``counter.record(...)`` and returns an empty meta tensor of the output's shape (both at once:
``_answer``), or raises
:class:`FallThrough` to let PyTorch's own meta kernel answer (or raise its own error).

Counting convention (the papers' "mult-adds"): ``macs`` are the multiply-accumulates of
convolutions (grouped, depthwise, strided, dilated, transposed), linear layers and matrix
products; biases add none. Norms, activations, pooling and element-wise arithmetic are counted
separately as element operations (``other_ops``), never folded into ``macs``.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn


class FallThrough(Exception):
    """The rule does not answer this call: PyTorch's meta kernel runs instead."""


def _tuple(v, n: int) -> tuple[int, ...]:
    if isinstance(v, (list, tuple)):
        return tuple(v) if len(v) == n else tuple(v) * n if len(v) == 1 else tuple(v)
    return (v,) * n


def _conv_out(size, k, s, p, d) -> int:
    return (size + 2 * p - d * (k - 1) - 1) // s + 1


def _pool_out(size, k, s, p, d, ceil) -> int:
    eff = size + 2 * p - d * (k - 1) - 1
    out = (-(-eff // s) if ceil else eff // s) + 1
    if ceil and (out - 1) * s >= size + p:
        out -= 1  # PyTorch: the last window must start inside the input or left padding
    return out


def _shape(t) -> tuple[int, ...]:
    return tuple(t.shape)


def _numel(shape) -> int:
    return math.prod(shape)


def _broadcast(*shapes) -> tuple[int, ...]:
    """NumPy broadcasting, in Python (torch.broadcast_shapes imports sympy on first use)."""
    first = shapes[0]
    if all(s == first for s in shapes):  # a residual sum: nothing to broadcast
        return tuple(first)
    n = max(len(s) for s in shapes)
    out = []
    for dims in zip(*[(1,) * (n - len(s)) + tuple(s) for s in shapes]):
        sizes = {d for d in dims if d != 1}
        if len(sizes) > 1:
            raise RuntimeError(f"shapes {shapes} cannot be broadcast")
        out.append(sizes.pop() if sizes else 1)
    return tuple(out)


_ACTIVATIONS = {
    "relu", "relu_", "relu6", "hardtanh", "hardtanh_", "elu", "elu_", "selu", "celu",
    "leaky_relu", "leaky_relu_", "gelu", "silu", "sigmoid", "sigmoid_", "tanh", "tanh_",
    "hardswish", "hardsigmoid", "mish", "softplus", "softmax", "log_softmax", "prelu",
    "dropout", "dropout1d", "dropout2d", "dropout3d", "alpha_dropout", "feature_alpha_dropout",
    "abs", "neg", "exp", "sign", "sqrt", "rsqrt", "square", "clamp", "clamp_", "clip",
    "__neg__", "__abs__", "pow", "__pow__",
}
_INPLACE = {"relu_", "hardtanh_", "elu_", "leaky_relu_", "sigmoid_", "tanh_", "clamp_",
            "add_", "mul_", "sub_", "div_", "__iadd__", "__imul__", "__isub__", "__itruediv__"}
_BINARY = {
    "add", "add_", "__add__", "__radd__", "__iadd__", "sub", "sub_", "__sub__", "__rsub__",
    "__isub__", "mul", "mul_", "__mul__", "__rmul__", "__imul__", "div", "div_", "__truediv__",
    "__rtruediv__", "__itruediv__", "maximum", "minimum", "where", "eq", "__eq__",
}
# queries that read a tensor's metadata: answered by the tensor itself, whatever its device
METADATA = {"dim", "numel", "size", "__get__", "stride", "__len__", "element_size",
             "is_contiguous", "ndimension", "nelement", "is_floating_point", "data_ptr"}
_NORMS = {"batch_norm", "layer_norm", "group_norm", "instance_norm", "local_response_norm"}


def _conv_kind(cin_g: int, kernel: tuple[int, ...], groups: int, cin: int) -> str:
    """The breakdown category of a convolution with ``cin_g`` input channels per group."""
    key = (cin_g, kernel, groups, cin)
    kind = _CONV_KINDS.get(key)
    if kind is None:
        k = "x".join(str(s) for s in kernel)
        if groups > 1 and groups == cin and cin_g == 1:
            kind = f"conv dw {k}"
        elif groups > 1:
            kind = f"conv {k} grouped"
        else:
            kind = f"conv {k}"
        _CONV_KINDS[key] = kind
    return kind


_CONV_KINDS: dict = {}  # (in channels per group, kernel, groups, in channels) -> kind


def to_meta(x):
    if isinstance(x, torch.Tensor):
        return x if x.is_meta else torch.empty_like(x, device="meta")
    if isinstance(x, (list, tuple)):
        return type(x)(to_meta(v) for v in x)
    if isinstance(x, dict):
        return {k: to_meta(v) for k, v in x.items()}
    return x


_META = torch.device("meta")


def _empty(shape, like: torch.Tensor) -> torch.Tensor:
    # the sizes as separate ints: PyTorch parses them faster than one tuple (1.3 vs 2.1 µs)
    if not shape:
        return torch.empty((), dtype=like.dtype, device=_META)
    return torch.empty(*shape, dtype=like.dtype, device=_META)


def _arg(args, kwargs, i, key, default=None):
    if len(args) > i:
        return args[i]
    return kwargs.get(key, default)


def _answer(counter, name, x, out_shape, kind, inputs=None, **counts) -> torch.Tensor:
    """Record the op (the activations it reads: ``inputs``, by default ``[x]``) and answer
    with an empty meta tensor of the output's shape and ``x``'s dtype."""
    counter.record(name, kind=kind, inputs=[x] if inputs is None else inputs,
                   out_shape=out_shape, elem_size=x.element_size(), **counts)
    return _empty(out_shape, x)


def _weights(counter, w, bias) -> dict:
    """The ``params`` (first use) and ``weights`` (read every time) of a layer's weight and
    bias, as ``record`` takes them."""
    return {"params": counter.new_params(w, bias),
            "weights": w.numel() + (bias.numel() if bias is not None else 0)}


def _conv(counter, name, args, kwargs):
    x, w = args[0], _arg(args, kwargs, 1, "weight")
    bias = _arg(args, kwargs, 2, "bias")
    nd = w.dim() - 2
    stride = _tuple(_arg(args, kwargs, 3, "stride", 1), nd)
    padding = _arg(args, kwargs, 4, "padding", 0)
    dilation = _tuple(_arg(args, kwargs, 5, "dilation", 1), nd)
    groups = _arg(args, kwargs, 6, "groups", 1)
    ks = tuple(w.shape[2:])
    spatial = tuple(x.shape[-nd:])
    if isinstance(padding, str):
        if padding == "valid":
            padding = (0,) * nd
        else:  # "same" (stride 1 only in PyTorch)
            out = spatial
            padding = None
    if padding is not None:
        padding = _tuple(padding, nd)
        out = tuple(_conv_out(s, k, st, p, d)
                    for s, k, st, p, d in zip(spatial, ks, stride, padding, dilation))
    cout = w.shape[0]
    if x.shape[-nd - 1] != w.shape[1] * groups:
        raise FallThrough  # let PyTorch raise its own channel-mismatch error
    out_shape = (*x.shape[:-nd - 1], cout, *out)
    if min(out) <= 0:
        counter.too_small(name, x.shape, out_shape)
    macs = _numel(out_shape) * w.shape[1] * _numel(ks)
    kind = _conv_kind(w.shape[1], ks, groups, x.shape[-nd - 1])
    return _answer(counter, name, x, out_shape, kind, macs=macs, **_weights(counter, w, bias))


def _conv_transpose(counter, name, args, kwargs):
    x, w = args[0], _arg(args, kwargs, 1, "weight")
    bias = _arg(args, kwargs, 2, "bias")
    nd = w.dim() - 2
    stride = _tuple(_arg(args, kwargs, 3, "stride", 1), nd)
    padding = _tuple(_arg(args, kwargs, 4, "padding", 0), nd)
    outpad = _tuple(_arg(args, kwargs, 5, "output_padding", 0), nd)
    groups = _arg(args, kwargs, 6, "groups", 1)
    dilation = _tuple(_arg(args, kwargs, 7, "dilation", 1), nd)
    ks = tuple(w.shape[2:])
    out = tuple((s - 1) * st - 2 * p + d * (k - 1) + op + 1
                for s, st, p, d, k, op in zip(x.shape[-nd:], stride, padding, dilation, ks, outpad))
    cout = w.shape[1] * groups
    out_shape = (*x.shape[:-nd - 1], cout, *out)
    if min(out) <= 0:
        counter.too_small(name, x.shape, out_shape)
    # every input element is multiplied into a k^d x (cout/groups) patch
    macs = x.numel() * w.shape[1] * _numel(ks)
    return _answer(counter, name, x, out_shape, "conv transposed " + "x".join(map(str, ks)),
                   macs=macs, **_weights(counter, w, bias))


def _linear(counter, name, args, kwargs):
    x, w = args[0], _arg(args, kwargs, 1, "weight")
    bias = _arg(args, kwargs, 2, "bias")
    if x.shape[-1] != w.shape[1]:
        raise FallThrough
    out_shape = (*x.shape[:-1], w.shape[0])
    return _answer(counter, name, x, out_shape, "fully connected",
                   macs=_numel(out_shape) * w.shape[1], **_weights(counter, w, bias))


def _matmul(counter, name, args, kwargs):
    if name == "addmm":
        args = args[1:]
    a, b = args[0], args[1]
    if a.dim() < 1 or b.dim() < 1:
        raise FallThrough
    out = torch.matmul(to_meta(a), to_meta(b))
    k = a.shape[-1]
    counter.record(name, kind="matmul", inputs=[a, b], out_shape=_shape(out),
                   params=counter.new_params(a, b), macs=out.numel() * k,
                   elem_size=a.element_size())
    return out


def _norm(counter, name, args, kwargs):
    x = args[0]
    tensors = [v for v in list(args[1:]) + list(kwargs.values()) if isinstance(v, torch.Tensor)]
    return _answer(counter, name, x, _shape(x), "norm", params=counter.new_params(*tensors),
                   other=x.numel(), weights=sum(t.numel() for t in tensors))


def _elementwise(counter, name, args, kwargs):
    x = args[0]
    if not isinstance(x, torch.Tensor):
        raise FallThrough
    inplace = name in _INPLACE or kwargs.get("inplace") is True or (
        name in {"relu", "relu6", "hardtanh", "elu", "leaky_relu", "silu", "hardswish"}
        and len(args) > 1 and args[-1] is True and name != "leaky_relu")
    params = [v for v in args[1:] if isinstance(v, torch.Tensor)]
    kind = "dropout" if name.startswith(("dropout", "alpha_dropout", "feature_alpha")) \
        else "activation"
    counter.record(name, kind=kind, inputs=[x], out_shape=_shape(x),
                   params=counter.new_params(*params), other=0 if kind == "dropout" else x.numel(),
                   weights=sum(p.numel() for p in params), elem_size=x.element_size())
    return x if inplace else _empty(x.shape, x)


def _relu(counter, name, args, kwargs):
    """ReLU's row as :func:`_elementwise` makes it, directly: a third of most CNNs' ops."""
    x = args[0]
    if not isinstance(x, torch.Tensor) or len(args) > 2 or (kwargs and set(kwargs) - {"inplace"}):
        return _elementwise(counter, name, args, kwargs)
    inplace = name == "relu_" or kwargs.get("inplace") is True or args[-1] is True
    shape = tuple(x.shape)
    counter.layer_row(name, "activation", x, shape, shape, other=math.prod(shape))
    return x if inplace else _empty(shape, x)


def _binary(counter, name, args, kwargs):
    tensors = [v for v in args if isinstance(v, torch.Tensor)]
    if not tensors:
        raise FallThrough
    try:
        out_shape = _broadcast(*[t.shape for t in tensors])
    except RuntimeError:
        raise FallThrough from None
    dtype_src = tensors[0]
    params = counter.new_params(*tensors)
    acts = [t for t in tensors if not counter.is_param(t)]
    counter.record(name.strip("_").rstrip("_") or name, kind="elementwise", inputs=acts,
                   out_shape=out_shape, params=params, other=_numel(out_shape),
                   weights=sum(t.numel() for t in tensors if counter.is_param(t)),
                   elem_size=dtype_src.element_size())
    if name in _INPLACE and tuple(args[0].shape) == out_shape:
        return args[0]
    if any(t.dtype != dtype_src.dtype for t in tensors) or name in {"eq", "__eq__", "where"}:
        raise FallThrough  # type promotion: let PyTorch decide the dtype
    return _empty(out_shape, dtype_src)


def _pool(counter, name, args, kwargs):
    x = args[0]
    nd = int(name.split("pool")[1][0])
    ks = _tuple(_arg(args, kwargs, 1, "kernel_size"), nd)
    stride = _arg(args, kwargs, 2, "stride", None)
    stride = ks if stride in (None, [], ()) else _tuple(stride, nd)
    padding = _tuple(_arg(args, kwargs, 3, "padding", 0), nd)
    if name.startswith("max"):
        dilation = _tuple(_arg(args, kwargs, 4, "dilation", 1), nd)
        ceil = _arg(args, kwargs, 5, "ceil_mode", False)
        if _arg(args, kwargs, 6, "return_indices", False):
            raise FallThrough
    else:
        dilation = (1,) * nd
        ceil = _arg(args, kwargs, 4, "ceil_mode", False)
    out = tuple(_pool_out(s, k, st, p, d, ceil)
                for s, k, st, p, d in zip(x.shape[-nd:], ks, stride, padding, dilation))
    out_shape = (*x.shape[:-nd], *out)
    if min(out) <= 0:
        counter.too_small(name, x.shape, out_shape)
    return _answer(counter, name, x, out_shape, "pool", other=_numel(out_shape) * _numel(ks))


def _adaptive_pool(counter, name, args, kwargs):
    x = args[0]
    nd = int(name.split("pool")[1][0])
    size = _arg(args, kwargs, 1, "output_size")
    if _arg(args, kwargs, 2, "return_indices", False):
        raise FallThrough
    size = _tuple(size, nd)
    out = tuple(s if o is None else o for s, o in zip(x.shape[-nd:], size))
    out_shape = (*x.shape[:-nd], *out)
    return _answer(counter, name, x, out_shape, "pool", other=x.numel())


def _cat(counter, name, args, kwargs):
    tensors = list(_arg(args, kwargs, 0, "tensors"))
    dim = _arg(args, kwargs, 1, "dim", 0)
    first = tensors[0]
    if not isinstance(first, torch.Tensor) or first.dim() == 0:
        raise FallThrough
    d = dim % first.dim()
    shape = tuple(first.shape)
    head, tail, total, elems, shapes = shape[:d], shape[d + 1:], 0, 0, []
    for t in tensors:  # DenseNet concatenates dozens: compare whole tuple slices (not Sizes)
        if not isinstance(t, torch.Tensor):
            raise FallThrough
        s = tuple(t.shape)
        if len(s) != len(shape) or s[:d] != head or s[d + 1:] != tail:
            raise FallThrough
        total += s[d]
        shapes.append(s)
        elems += math.prod(s)
    out_shape = (*head, total, *tail)
    # record()'s row for these inputs, from the shapes in hand
    counter.layer_row(name, "concat", first, shapes[0] if len(shapes) == 1 else tuple(shapes),
                      out_shape, in_elems=elems)
    return _empty(out_shape, first)


def _reduce(counter, name, args, kwargs):
    x = args[0]
    dim = _arg(args, kwargs, 1, "dim", None)
    keepdim = _arg(args, kwargs, 2, "keepdim", False)
    if not isinstance(x, torch.Tensor) or not isinstance(keepdim, bool) or (
            dim is not None and not isinstance(dim, (int, tuple, list))):
        raise FallThrough
    dims = range(x.dim()) if dim is None or dim == [] else (
        [dim] if isinstance(dim, int) else list(dim))
    dims = {d % x.dim() for d in dims}
    out_shape = tuple(1 if i in dims else s for i, s in enumerate(x.shape) if keepdim or i not in
                      dims)
    return _answer(counter, name, x, out_shape, "reduce", other=x.numel())


def _interpolate(counter, name, args, kwargs):
    x = args[0]
    size = _arg(args, kwargs, 1, "size", None)
    scale = _arg(args, kwargs, 2, "scale_factor", None)
    nd = x.dim() - 2
    if size is not None:
        out = _tuple(size, nd)
    elif scale is not None:
        out = tuple(int(math.floor(s * f)) for s, f in zip(x.shape[2:], _tuple(scale, nd)))
    else:
        raise FallThrough
    out_shape = (*x.shape[:2], *out)
    if min(out) <= 0:
        counter.too_small(name, x.shape, out_shape)
    return _answer(counter, name, x, out_shape, "resize", other=_numel(out_shape))


def _split(counter, name, args, kwargs):
    x = args[0]
    if name == "chunk":
        n = _arg(args, kwargs, 1, "chunks")
        dim = _arg(args, kwargs, 2, "dim", 0) % x.dim()
        step = -(-x.shape[dim] // n)
        sizes = [step] * (x.shape[dim] // step) + ([x.shape[dim] % step] if x.shape[dim] % step
                                                     else [])
    else:
        spec = _arg(args, kwargs, 1, "split_size_or_sections",
                    kwargs.get("split_size", kwargs.get("sections")))
        dim = _arg(args, kwargs, 2, "dim", 0) % x.dim()
        if isinstance(spec, int):
            full, rest = divmod(x.shape[dim], spec)
            sizes = [spec] * full + ([rest] if rest else [])
        else:
            sizes = list(spec)
            if sum(sizes) != x.shape[dim]:
                raise FallThrough  # let PyTorch raise its own error
    shape = list(x.shape)
    outs = []
    for n in sizes:
        shape[dim] = n
        outs.append(_empty(tuple(shape), x))
    return tuple(outs)  # views: no arithmetic, no row


def _copy(counter, name, args, kwargs):
    """A memory-layout change (channel shuffle's transpose + contiguous) does no arithmetic
    but reads and writes every element: ShuffleNet V2's MAC counts it."""
    x = args[0]
    if name == "contiguous" and x.is_contiguous():
        return x
    return _answer(counter, name, x, _shape(x), "copy")


def _reshape(counter, name, args, kwargs):
    """A view when the strides allow one; otherwise PyTorch copies, and the copy is counted."""
    x = args[0]
    shape = args[1:] if len(args) > 2 or (len(args) == 2 and isinstance(args[1], int)) \
        else _arg(args, kwargs, 1, "shape")
    try:
        return x.view(*shape) if isinstance(shape, (tuple, list)) else x.view(shape)
    except RuntimeError:
        pass
    shape = list(shape)
    if shape.count(-1) == 1:
        known = math.prod(s for s in shape if s != -1)
        shape[shape.index(-1)] = x.numel() // known if known else 0
    if math.prod(shape) != x.numel():
        raise FallThrough  # let PyTorch raise its own error
    return _answer(counter, name, x, tuple(shape), "copy")


RULES = {
    "split": _split, "chunk": _split, "contiguous": _copy, "clone": _copy, "reshape": _reshape,
    **{n: _reduce for n in ("mean", "sum", "amax", "amin")},
    "interpolate": _interpolate,
    **{f"conv{n}d": _conv for n in (1, 2, 3)},
    **{f"conv_transpose{n}d": _conv_transpose for n in (1, 2, 3)},
    "linear": _linear,
    **{n: _matmul for n in ("matmul", "mm", "bmm", "addmm", "__matmul__")},
    **{n: _norm for n in _NORMS},
    **{f"{p}_pool{n}d": _pool for p in ("max", "avg") for n in (1, 2, 3)},
    **{f"adaptive_{p}_pool{n}d": _adaptive_pool for p in ("max", "avg") for n in (1, 2, 3)},
    "cat": _cat, "concat": _cat, "concatenate": _cat, "relu": _relu, "relu_": _relu,
}


def rule_for(name: str):
    """The rule of the torch function called ``name``, or None (PyTorch's meta kernel)."""
    rule = RULES.get(name)
    if rule is None and name in _ACTIVATIONS:
        return _elementwise
    if rule is None and name in _BINARY:
        return _binary
    return rule


# --- plain torch modules, answered without running their forward ----------------------------
# A module rule is ``rule(counter, module, x)``: the op the module's own forward would make,
# with the arguments its ``F.*`` call passes (so the row is the same), or None to run the
# forward as usual. It saves the module's Python and the functional's dispatch, per layer.

def _tensor(m, key: str):
    """``m.<key>`` for a parameter or buffer, without ``nn.Module.__getattr__`` (about
    0.8 µs a call, four per BN layer). A pruned or weight-normed layer keeps its weight as a
    plain attribute instead: ``getattr`` finds that."""
    store = m._parameters
    if key in store:
        return store[key]
    store = m._buffers
    return store[key] if key in store else getattr(m, key)


def _conv_module(counter, m, x):
    if m.padding_mode != "zeros":
        return None
    return _conv(counter, f"conv{len(m.kernel_size)}d",
                 (x, _tensor(m, "weight"), _tensor(m, "bias"), m.stride, m.padding, m.dilation,
                  m.groups), {})


def _conv2d_module(counter, m, x):
    """Conv2d's row as :func:`_conv` makes it, without the general argument handling: the
    most frequent op of most CNNs."""
    if m.padding_mode != "zeros" or isinstance(m.padding, str) or x.dim() != 4:
        return _conv_module(counter, m, x)
    w, b = _tensor(m, "weight"), _tensor(m, "bias")
    cout, cin_g, kh, kw = w.shape
    n, c, h, wd = x.shape
    if c != cin_g * m.groups:
        raise FallThrough  # PyTorch's own error, from the module's forward
    (sh, sw), (ph, pw), (dh, dw) = m.stride, m.padding, m.dilation
    out_shape = (n, cout, (h + 2 * ph - dh * (kh - 1) - 1) // sh + 1,
                 (wd + 2 * pw - dw * (kw - 1) - 1) // sw + 1)
    if out_shape[2] <= 0 or out_shape[3] <= 0:
        counter.too_small("conv2d", x.shape, out_shape)
    counter.layer_row("conv2d", _conv_kind(cin_g, (kh, kw), m.groups, c), x, (n, c, h, wd),
                      out_shape,
                      params=counter.new_params(w, b),
                      macs=n * cout * out_shape[2] * out_shape[3] * cin_g * kh * kw,
                      weights=w.numel() + (b.numel() if b is not None else 0))
    return torch.empty(*out_shape, dtype=x.dtype, device=_META)


def _bn2d_module(counter, m, x):
    """BatchNorm2d's row as :func:`_norm` makes it (eval mode, 4-D input), directly."""
    if m.training or x.dim() != 4:
        return _bn_module(counter, m, x)
    ts, weights = (_tensor(m, "running_mean"), _tensor(m, "running_var"),
                   _tensor(m, "weight"), _tensor(m, "bias")), 0
    for t in ts:
        if t is not None:
            weights += t.numel()
    shape = tuple(x.shape)
    counter.layer_row("batch_norm", "norm", x, shape, shape, params=counter.new_params(*ts),
                      other=math.prod(shape), weights=weights)
    return _empty(shape, x)


_BN_DIMS = {nn.BatchNorm1d: (2, 3), nn.BatchNorm2d: (4,), nn.BatchNorm3d: (5,)}


def _bn_module(counter, m, x):
    if m.training or x.dim() not in _BN_DIMS[type(m)]:
        return None  # training updates buffers; a wrong rank raises in the module's forward
    return _norm(counter, "batch_norm",
                 (x, _tensor(m, "running_mean"), _tensor(m, "running_var"),
                  _tensor(m, "weight"), _tensor(m, "bias"), False, 0.0, m.eps), {})


def _hardtanh_module(counter, m, x):
    """Hardtanh's (and ReLU6's) row as :func:`_elementwise` makes it, directly: MobileNet's
    activation."""
    if not isinstance(x, torch.Tensor):
        raise FallThrough
    shape = tuple(x.shape)
    counter.layer_row("hardtanh", "activation", x, shape, shape, other=math.prod(shape))
    return x if m.inplace else _empty(shape, x)


def _max_pool2d_module(counter, m, x):
    return _pool(counter, "max_pool2d", (x, m.kernel_size),
                 {"stride": m.stride, "padding": m.padding, "dilation": m.dilation,
                  "ceil_mode": m.ceil_mode, "return_indices": m.return_indices})


MODULE_RULES = {
    **dict.fromkeys((nn.Conv1d, nn.Conv3d), _conv_module),
    nn.Conv2d: _conv2d_module,
    **dict.fromkeys((nn.BatchNorm1d, nn.BatchNorm3d), _bn_module),
    nn.BatchNorm2d: _bn2d_module,
    nn.ReLU: lambda counter, m, x: _relu(counter, "relu", (x,), {"inplace": m.inplace}),
    **dict.fromkeys((nn.Hardtanh, nn.ReLU6), _hardtanh_module),
    nn.MaxPool2d: _max_pool2d_module,
    nn.Linear: lambda counter, m, x: _linear(
        counter, "linear", (x, _tensor(m, "weight"), _tensor(m, "bias")), {}),
}
