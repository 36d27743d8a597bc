"""``cnnlab.profile``: parameters, multiply-adds, memory access cost, activation memory, latency.

See :mod:`cnnlab.profile.counter` for the counting convention. Models are profiled on the
meta device by default: no weight memory and no arithmetic, so a 140 M-parameter VGG takes a
few milliseconds.
"""

from __future__ import annotations

import contextlib
import gc
import statistics
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from functools import partial

import torch
import torch.nn as nn

from cnnlab.profile.counter import OpRow, ShapeCounter

_INIT_FUNCS = [
    "uniform_", "normal_", "trunc_normal_", "constant_", "ones_", "zeros_", "eye_", "dirac_",
    "xavier_uniform_", "xavier_normal_", "kaiming_uniform_", "kaiming_normal_", "orthogonal_",
    "sparse_",
]


@contextlib.contextmanager
def skip_init():
    """Make ``torch.nn.init`` a no-op while building: weights on meta need no values."""
    saved = {n: getattr(nn.init, n) for n in _INIT_FUNCS if hasattr(nn.init, n)}
    try:
        for n in saved:
            setattr(nn.init, n, lambda tensor, *a, **k: tensor)
        yield
    finally:
        for n, f in saved.items():
            setattr(nn.init, n, f)


@contextlib.contextmanager
def gc_paused():
    """The cyclic garbage collector off for one build-and-count pass. The pass allocates
    tens of thousands of objects (modules, parameters, rows), and every automatic full
    collection it triggers walks all live objects, the model's included: 15-20 % of a
    profile's time. What the pass leaves cyclic is collected once the collector is back."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def build_on_meta(model: str | Callable[..., nn.Module], *args, **kwargs) -> nn.Module:
    """Build a model on the meta device without running its weight init: a registered
    name (``kwargs`` go to its builder) or any constructor, e.g.
    ``build_on_meta(torchvision.models.resnet50)``. Shapes only: nothing is allocated."""
    from cnnlab.models import create_model

    build = partial(create_model, model) if isinstance(model, str) else model
    with gc_paused(), torch.device("meta"), skip_init():
        return build(*args, **kwargs)


@dataclass
class Profile:
    """Totals and per-op rows of one forward pass (batch 1 unless stated)."""

    model: str
    input_size: tuple[int, ...]
    params: int
    trainable_params: int
    macs: int
    other_ops: dict[str, int]
    memory_access: int
    activation_bytes: int
    peak_activation_bytes: int
    rows: list[OpRow] = field(repr=False)
    module_io: dict[str, tuple[str, int, int]] = field(repr=False)
    latency_ms: float | None = None
    device: str = "meta"
    batch_size: int = 1

    # -- derived views ---------------------------------------------------------------
    def model_size(self, bits: int = 32) -> int:
        """Bytes needed to store every parameter at ``bits`` bits each."""
        return (self.params * bits + 7) // 8

    def by_type(self) -> list[dict]:
        """Share of multiply-adds and parameters per layer type (MobileNet, Table 2)."""
        acc: dict[str, list[int]] = defaultdict(lambda: [0, 0])
        for r in self.rows:
            if r.macs or r.params:
                acc[r.kind][0] += r.macs
                acc[r.kind][1] += r.params
        tm, tp = max(self.macs, 1), max(sum(v[1] for v in acc.values()), 1)
        out = [{"type": k, "macs": m, "params": p, "macs_pct": 100 * m / tm,
                "params_pct": 100 * p / tp} for k, (m, p) in acc.items()]
        return sorted(out, key=lambda d: -d["macs"])

    def peak_activation(self, as_op: tuple[type, ...] | tuple[str, ...] = ()) -> int:
        """Peak activation memory in bytes: max over ops of |inputs| + |outputs|.

        MobileNetV2 (Sandler et al. 2018, Sec. 5.1) treats a whole inverted-residual block
        as one op whose expanded tensor never exists in full: pass its class (or class name)
        in ``as_op`` and only the block's input and output count for it. The paper's M(G)
        also counts the op's own storage: see :meth:`peak_memory`.
        """
        return self._peak(as_op, with_op=False)

    def peak_memory(self, as_op: tuple[type, ...] | tuple[str, ...] = ()) -> int:
        """MobileNetV2's memory model in bytes (Sec. 5.1, deck 001:815): M(G) = max over ops
        of Σ|inputs| + Σ|outputs| + |op|, where |op| is the op's internal storage, here its
        weights (read by it every time). A block in ``as_op`` is one op (deck 001:817): its
        input, its output and all its weights; the tensors inside it are disposable."""
        return self._peak(as_op, with_op=True)

    def _peak(self, as_op, with_op: bool) -> int:
        names = {t if isinstance(t, str) else t.__name__ for t in as_op}
        blocks = [n for n, (cls, _, _) in self.module_io.items() if cls in names]

        def inside(row, b):
            return row.name == b or row.name.startswith(b + ".")

        def own(row):  # the weights the op reads (MAC minus its activations)
            return row.memory_access - row.input_elems - row.output_elems if with_op else 0

        if not blocks and not with_op:  # the common case: made with the totals, in _count
            return self.peak_activation_bytes
        peak = 0
        for n in blocks:
            _, i, o = self.module_io[n]
            peak = max(peak, i + o + sum(own(r) for r in self.rows if inside(r, n)))
        for r in self.rows:
            if any(inside(r, b) for b in blocks):
                continue
            peak = max(peak, r.input_elems + r.output_elems + own(r))
        esize = self.rows[0].elem_size if self.rows else 4
        return peak * esize

    def grouped(self, depth: int) -> list[dict]:
        """Rows merged by module name truncated to ``depth`` components (a paper's table)."""
        groups: dict[str, dict] = {}
        for r in self.rows:
            key = ".".join(r.name.split(".")[:depth]) if r.name else ""
            g = groups.get(key)
            if g is None:
                g = groups[key] = {"name": key, "op": r.op, "input_shape": r.input_shape,
                                   "output_shape": r.output_shape, "params": 0, "macs": 0,
                                   "other_ops": 0, "memory_access": 0, "activation_bytes": 0}
                if key in self.module_io:
                    g["op"] = self.module_io[key][0]
            g["output_shape"] = r.output_shape
            g["params"] += r.params
            g["macs"] += r.macs
            g["other_ops"] += r.other_ops
            g["memory_access"] += r.memory_access
            g["activation_bytes"] += r.output_elems * r.elem_size
        return list(groups.values())

    def to_dict(self, rows: bool = True) -> dict:
        d = {
            "model": self.model, "input_size": list(self.input_size), "params": self.params,
            "trainable_params": self.trainable_params, "macs": self.macs,
            "flops": 2 * self.macs, "other_ops": self.other_ops,
            "memory_access": self.memory_access, "activation_bytes": self.activation_bytes,
            "peak_activation_bytes": self.peak_activation_bytes,
            "peak_memory_bytes": self.peak_memory(),
            "model_size_bytes_fp32": self.model_size(32), "latency_ms": self.latency_ms,
            "device": self.device, "batch_size": self.batch_size, "by_type": self.by_type(),
        }
        if rows:
            d["layers"] = [asdict(r) for r in self.rows]
        return d


def _count_params(params) -> tuple[int, int]:
    """Elements of ``params`` (distinct tensors), all and trainable."""
    total = trainable = 0
    for p in params:
        n = p.numel()
        total += n
        if p.requires_grad:
            trainable += n
    return total, trainable


def profile(
    model: nn.Module | str,
    input_size: tuple[int, ...] | None = None,
    *,
    batch_size: int = 1,
    measure: bool = False,
    device: str | torch.device = "cpu",
    runs: int = 20,
    warmup: int = 3,
    **model_kwargs,
) -> Profile:
    """Profile a model (an ``nn.Module`` or a registered name) at ``input_size`` (C, H, W).

    Counting always runs shape-only on meta tensors, whatever device the model is on.
    ``measure=True`` adds the median latency of ``runs`` timed forward passes after ``warmup``
    on ``device`` (weights are materialised there if the model lives on meta).
    """
    with gc_paused():
        prof, model = _count(model, input_size, batch_size, model_kwargs)
    if measure:
        prof.latency_ms = measure_latency(model, prof.input_size, batch_size=batch_size,
                                          device=device, runs=runs, warmup=warmup)
        prof.device = str(device)
    return prof


def _count(model, input_size, batch_size, model_kwargs) -> tuple[Profile, nn.Module]:
    """The shape-only pass (the model built on meta first when given by name)."""
    name = model if isinstance(model, str) else getattr(model, "model_name",
                                                          type(model).__name__)
    if isinstance(model, str):
        from cnnlab.models import model_info

        info = model_info(model)
        input_size = input_size or info.input_size
        model = build_on_meta(model, **model_kwargs)
    elif model_kwargs:
        raise ValueError(f"model arguments {sorted(model_kwargs)} need a model name, not a module")
    if input_size is None:
        input_size = getattr(model, "default_input_size", None) or \
            (getattr(model, "pretrained_cfg", None) or {}).get("input_size")
        if input_size is None:
            raise ValueError("input_size is required for a module without a default")
    input_size = tuple(int(s) for s in input_size)
    if any(s <= 0 for s in input_size):
        raise ValueError(f"input size must be positive, got {input_size}")

    was_training = model.training
    x = torch.empty((batch_size, *input_size), device="meta")
    counter = ShapeCounter(model)
    # train() visits every module: skip it (and its undoing) for a model already in eval mode
    switch = was_training or any(m.training for _, m in counter.modules_by_name)
    if switch:
        model.eval()
    try:
        with torch.no_grad(), counter:
            model(x)
    except RuntimeError as e:
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ValueError(f"{name} cannot run on input {input_size}: {msg}") from e
    finally:
        if switch:
            model.train(was_training)

    rows = counter.rows
    other: dict[str, int] = defaultdict(int)
    macs = access = act_bytes = peak = 0
    for r in rows:  # every total in one pass (a profile's rows number in the hundreds)
        if r.other_ops:
            other[r.kind] += r.other_ops
        macs += r.macs
        access += r.memory_access
        act_bytes += r.output_elems * r.elem_size
        peak = max(peak, r.input_elems + r.output_elems)
    total, trainable = _count_params(counter.parameters)
    prof = Profile(
        model=name, input_size=input_size, params=total, trainable_params=trainable,
        macs=macs, other_ops=dict(other), memory_access=access, activation_bytes=act_bytes,
        # Profile.peak_activation() with no block treated as one op
        peak_activation_bytes=peak * (rows[0].elem_size if rows else 4), rows=rows,
        module_io=counter.module_io, batch_size=batch_size,
    )
    return prof, model


def measure_latency(model: nn.Module, input_size, *, batch_size=1, device="cpu", runs=20,
                    warmup=3) -> float:
    """Median wall-clock milliseconds of one forward pass (eval mode, no grad)."""
    device = torch.device(device)
    if any(p.is_meta for p in model.parameters()) or any(b.is_meta for b in model.buffers()):
        model = model.to_empty(device=device)
        with torch.no_grad():
            for p in model.parameters():
                p.normal_(0, 0.01)
            for n, b in model.named_buffers():
                if b.is_floating_point():
                    b.fill_(1.0 if n.endswith("running_var") else 0.0)
    else:
        model = model.to(device)
    model.eval()
    x = torch.randn((batch_size, *input_size), device=device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    times = []
    with torch.inference_mode():
        for _ in range(warmup):
            model(x)
        sync()
        for _ in range(runs):
            t0 = time.perf_counter()
            model(x)
            sync()
            times.append(time.perf_counter() - t0)
    return 1000 * statistics.median(times)


def find_min_input_size(model: nn.Module, in_chans: int = 3, limit: int = 1024) -> int:
    """Smallest square input the model's layers accept (ignores its declared minimum).

    For model authors: the value to declare as ``min_input_size``.
    """
    declared = getattr(model, "min_input_size", None)
    try:
        model.min_input_size = 1
        for s in range(1, limit + 1):
            try:
                profile(model, (in_chans, s, s))
                return s
            except ValueError:
                continue
        raise ValueError(f"no input up to {limit}x{limit} runs")
    finally:
        if declared is not None:
            model.min_input_size = declared
