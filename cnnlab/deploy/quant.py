"""int8 inference through PyTorch's own quantization stack (``torch.ao.quantization``).

Post-training static quantization (Jacob et al. 2018, "Quantization and Training of Neural
Networks for Efficient Integer-Arithmetic-Only Inference", Sec. 2: affine uint8 activations,
int8 weights, per-channel weight scales as in Krishnamoorthi 2018, Sec. 3.1) calibrated on real
images, and quantization-aware training (Jacob et al. Sec. 3: fake quantization in the forward
pass, straight-through gradients) run with cnnlab's own trainer.

FX graph mode is tried first (``prepare_fx``/``convert_fx``): it quantizes the whole graph,
folds BN into the convolutions and leaves ops without an int8 kernel in fp32 with dequantize /
quantize around them. Where the model cannot be traced, the eager fallback quantizes each
convolution and linear layer on its own (``QuantWrapper``: quantize, int8 op, dequantize) and
keeps everything else in fp32. Either way ``QuantResult.fp32_ops`` names what stayed in fp32.
"""

from __future__ import annotations

import copy
import io
from dataclasses import dataclass, field

import torch
import torch.nn as nn
from torch.ao import quantization as tq

BACKENDS = ("x86", "fbgemm", "qnnpack", "onednn")


@dataclass
class QuantResult:
    model: nn.Module
    mode: str  # "fx" or "eager"
    backend: str
    fp32_ops: list[str] = field(default_factory=list)
    fx_error: str = ""  # why FX graph mode was not used

    def summary(self) -> str:
        why = f" (FX failed: {self.fx_error})" if self.fx_error else ""
        kept = ", ".join(self.fp32_ops[:8]) + (" …" if len(self.fp32_ops) > 8 else "")
        return (f"int8 via {self.mode} mode, backend {self.backend}{why}; "
                f"{len(self.fp32_ops)} op(s) left in fp32" + (f": {kept}" if kept else ""))


def check_backend(backend: str) -> None:
    """A backend name and kernels for it in this build of PyTorch (else ``ValueError``)."""
    if backend not in BACKENDS:
        raise ValueError(f"unknown quantization backend {backend!r}; one of "
                         f"{', '.join(BACKENDS)}")
    if backend not in torch.backends.quantized.supported_engines:
        raise ValueError(f"this PyTorch build has no quantized kernels for {backend!r} "
                         f"(it has: {', '.join(torch.backends.quantized.supported_engines)})")


def slow_depthwise(model: nn.Module) -> list[str]:
    """The depthwise convolutions that fbgemm (the x86 and fbgemm backends) runs on a slow
    path: channels not a multiple of 8. Measured here (one thread, 28×28): 58, 60 or 116
    channels take 10–30× the fp32 time, 64, 72 or 120 channels about 1×; oneDNN has no such
    cliff. ShuffleNet V2's branches (58/116/232 channels at 1×) fall in it."""
    return [name for name, m in model.named_modules()
            if isinstance(m, nn.Conv2d) and m.groups > 1 and m.groups == m.in_channels
            and m.in_channels % 8]


def qconfig_mapping(backend: str = "x86", qat: bool = False):
    """The backend's default mapping: per-channel int8 weights, uint8 activations with
    histogram observers (PTQ) or fake quantization with moving averages (QAT)."""
    from torch.ao.quantization import get_default_qat_qconfig_mapping, get_default_qconfig_mapping

    return (get_default_qat_qconfig_mapping if qat else get_default_qconfig_mapping)(backend)


def check_calibration(model: nn.Module, batches, input_size) -> None:
    """Calibration images must be N×C×H×W of the model's input size."""
    for x in batches:
        if not isinstance(x, torch.Tensor) or x.dim() != 4 or \
                tuple(x.shape[1:]) != tuple(input_size):
            got = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            want = "×".join(map(str, input_size))
            raise ValueError(f"calibration batch of shape {got} does not fit the model's "
                             f"input (expected N×{want})")


def _prepare_fx(model, example, backend, qat):
    from torch.ao.quantization.quantize_fx import prepare_fx, prepare_qat_fx

    mapping = qconfig_mapping(backend, qat)
    if hasattr(model, "check_input"):  # a Python-level size check cannot be traced; the
        model.check_input = lambda x: None  # copy's graph runs at the calibrated size anyway
    if qat:
        return prepare_qat_fx(model.train(), mapping, (example,))
    return prepare_fx(model.eval(), mapping, (example,))


def _fp32_ops_fx(gm: nn.Module) -> list[str]:
    """Nodes that take a dequantized input (they run in fp32), excluding the model output."""
    out = []
    for node in gm.graph.nodes:
        if node.op in ("output", "placeholder") or node.target == "dequantize":
            continue
        if node.op == "call_method" and node.target in ("size", "dim", "dequantize"):
            continue
        if any(getattr(a, "op", None) == "call_method" and a.target == "dequantize"
               for a in node.all_input_nodes):
            out.append(f"{node.name} ({_what(gm, node)})")
    return out


def _what(gm, node) -> str:
    if node.op == "call_module":
        return type(gm.get_submodule(node.target)).__name__
    return getattr(node.target, "__name__", str(node.target))


_EAGER_TYPES = (nn.Conv2d, nn.Linear)


def _prepare_eager(model, example, backend, qat):
    if qat:
        model = copy.deepcopy(model)
    else:  # BN folds into the convolution before it, as FX mode does
        from cnnlab.layers.fuse import fuse_bn

        model = fuse_bn(model, tuple(example.shape[1:]))
    qconfig = (tq.get_default_qat_qconfig if qat else tq.get_default_qconfig)(backend)
    for m in list(model.modules()):
        for cname, child in list(m.named_children()):
            if type(child) in _EAGER_TYPES:
                wrapped = tq.QuantWrapper(child)
                wrapped.qconfig = qconfig
                setattr(m, cname, wrapped)
    if qat:
        return tq.prepare_qat(model.train(), inplace=True)
    return tq.prepare(model.eval(), inplace=True)


def _fp32_ops_eager(model) -> list[str]:
    from torch.ao.nn.quantized import DeQuantize

    leaves = [n for n, m in model.named_modules() if not list(m.children())
              and not isinstance(m, (tq.QuantStub, tq.DeQuantStub, DeQuantize))
              and not type(m).__module__.startswith("torch.ao.nn.quantized")
              and not isinstance(m, (nn.Identity, nn.Dropout))]
    return [f"{n} ({type(model.get_submodule(n)).__name__})" for n in leaves]


def prepare(model: nn.Module, example: torch.Tensor, *, backend: str = "x86",
            qat: bool = False, allow_eager: bool = True):
    """``(prepared model, mode, fx_error)``: observers (PTQ) or fake quantizers (QAT)
    inserted into a copy of ``model``. FX first; eager per-module where FX cannot trace."""
    check_backend(backend)
    torch.backends.quantized.engine = backend
    try:
        return _prepare_fx(copy.deepcopy(model), example, backend, qat), "fx", ""
    except Exception as e:  # torch.fx raises many types on untraceable Python
        if not allow_eager:
            raise
        msg = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
        return _prepare_eager(model, example, backend, qat), "eager", f"{type(e).__name__}: {msg}"


def convert(prepared: nn.Module, mode: str, backend: str, fx_error: str = "") -> QuantResult:
    """The int8 model of a prepared (calibrated or QAT-trained) one; int8 kernels run on the
    CPU, so a model trained on a GPU is converted from a CPU copy (the caller's stays)."""
    torch.backends.quantized.engine = backend
    from cnnlab.deploy.export import on_cpu

    prepared = on_cpu(prepared).eval()
    if mode == "fx":
        from torch.ao.quantization.quantize_fx import convert_fx

        q = convert_fx(prepared)
        return QuantResult(q, mode, backend, _fp32_ops_fx(q), fx_error)
    q = tq.convert(prepared, inplace=False)
    return QuantResult(q, mode, backend, _fp32_ops_eager(q), fx_error)


@torch.no_grad()
def quantize_ptq(model: nn.Module, calibration, *, backend: str = "x86",
                 input_size=None, allow_eager: bool = True) -> QuantResult:
    """Post-training static int8 quantization of ``model`` calibrated on ``calibration``
    (an iterable of N×C×H×W batches of real, normalised images). ``model`` is untouched."""
    batches = [calibration] if isinstance(calibration, torch.Tensor) else list(calibration)
    if not batches:
        raise ValueError("calibration needs at least one batch of images")
    check_calibration(model, batches, input_size or batches[0].shape[1:])
    prepared, mode, err = prepare(model, batches[0][:1], backend=backend,
                                  allow_eager=allow_eager)
    for x in batches:
        prepared(x)
    return convert(prepared, mode, backend, err)


def quantize_qat(model: nn.Module, split, cfg, *, backend: str = "x86",
                 allow_eager: bool = True, **train_kwargs) -> tuple[QuantResult, object]:
    """Quantization-aware training: fake-quantized copy of ``model`` fine-tuned with
    :func:`cnnlab.train.train` on ``split`` under ``cfg``, then converted to int8.
    Returns ``(QuantResult, TrainResult)``."""
    from cnnlab.train import train

    example = split.train.normalize(split.train.x[:1])
    prepared, mode, err = prepare(model, example, backend=backend, qat=True,
                                  allow_eager=allow_eager)
    result = train(prepared, split, cfg, **train_kwargs)
    return convert(prepared.cpu(), mode, backend, err), result


def state_bytes(model: nn.Module) -> int:
    """Bytes of ``torch.save(model.state_dict())``: the size a user ships (int8 weights are
    packed one byte each plus their scales)."""
    buf = io.BytesIO()
    torch.save(model.state_dict(), buf)
    return buf.tell()
