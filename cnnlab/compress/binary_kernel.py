"""The bit-packed XNOR-Net kernel (Rastegari et al. 2016, Sec. 3.2, Eq. 11) and the packed
inference layers.

Signs are packed 64 channels to a 64-bit word (``int64`` tensors holding the bits); a
convolution is XNOR + popcount: for ±1 vectors of length n, a·b = n − 2·popcount(a XOR b),
and the scales come after — ``out = counts · α_filter · K_position (+ bias)``.

Zero padding: the paper pads with zeros, which are not ±1. The kernel leaves a tap that falls
outside the image out of the count (n counts only the channels of the taps inside the image),
which is exactly what zero padding does in the float convolution of ``sign(I)`` with
``sign(W)``, so the counts equal that convolution bit for bit, at any stride, padding,
dilation and channel count (the bits past C in the last word are 0 in inputs and weights and
never differ).

The compiled path is the C extension ``cnnlab.compress._binconv`` (built by ``pip install``,
OpenMP threads when the compiler has them). Without it — no compiler at install time — the
same counts come from a vectorised torch fallback (a float convolution of the signs), slower
but equal; :data:`HAVE_KERNEL` says which one runs. The kernel picks its popcount at run time
(AVX-512 VPOPCNTDQ, AVX2 or scalar, ``_binconv.simd()``); its layout and blocking are described
in ``_binconv.c``.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from cnnlab.compress.binary import BinaryConv2d, BinaryLinear, binary_layers, input_scale, sign

try:
    from cnnlab.compress import _binconv
except ImportError:  # built without a C compiler: the torch fallback below
    _binconv = None

HAVE_KERNEL = _binconv is not None


def _threads(threads: int | None) -> int:
    return max(1, threads or torch.get_num_threads())


def _need_kernel() -> None:
    if _binconv is None:
        raise RuntimeError("cnnlab's C kernel (cnnlab.compress._binconv) is not built; "
                           "reinstall with a C compiler: pip install -e .")


def words_for(channels: int) -> int:
    return (channels + 63) // 64


def pack_bits(x: torch.Tensor, threads: int | None = None) -> torch.Tensor:
    """Signs (x ≥ 0 → 1) of the last dimension, 64 to a word: (..., C) float → (..., words)
    int64. Needs the compiled kernel."""
    _need_kernel()
    x = x.detach().to(torch.float32).contiguous()
    c = x.shape[-1]
    out = torch.empty(*x.shape[:-1], words_for(c), dtype=torch.int64)
    _binconv.pack(x.data_ptr(), out.data_ptr(), x.numel() // max(c, 1), c, words_for(c),
                  _threads(threads))
    return out


def pack_weight(w: torch.Tensor) -> torch.Tensor:
    """(Cout, C, KH, KW) → sign bits (Cout, KH, KW, words)."""
    return pack_bits(w.permute(0, 2, 3, 1), threads=1)


def _out_size(size, k, s, p, d):
    return (size + 2 * p - d * (k - 1) - 1) // s + 1


def xnor_counts(x: torch.Tensor, wbits: torch.Tensor, channels: int, kernel_size,
                stride=(1, 1), padding=(0, 0), dilation=(1, 1),
                threads: int | None = None) -> torch.Tensor:
    """sign(x) ⊛ sign(W) as int32 (N, Cout, Ho, Wo): XNOR + popcount over the packed bits,
    zero padding by leaving outside taps out of the count."""
    return _conv(x, wbits, channels, kernel_size, stride, padding, dilation, threads)


def xnor_conv(x: torch.Tensor, wbits: torch.Tensor, channels: int, kernel_size, stride,
              padding, dilation, alpha: torch.Tensor, k: torch.Tensor,
              bias: torch.Tensor | None = None, threads: int | None = None) -> torch.Tensor:
    """Eq. 11 in one pass: (sign(x) ⊛ sign(W))·α·K (+ bias) as float32 (N, Cout, Ho, Wo), the
    scales applied by the kernel as it stores each count (α per filter, K (N, 1, Ho, Wo))."""
    return _conv(x, wbits, channels, kernel_size, stride, padding, dilation, threads,
                 (alpha, k, bias))


def _conv(x, wbits, channels, kernel_size, stride, padding, dilation, threads, scales=None):
    n, c, h, w = x.shape
    if c != channels:
        raise ValueError(f"expected {channels} input channels, got {c}")
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = kernel_size, stride, padding, dilation
    ho, wo = _out_size(h, kh, sh, ph, dh), _out_size(w, kw, sw, pw, dw)
    if ho < 1 or wo < 1:
        raise ValueError(f"input {h}x{w} is too small for this convolution")
    _need_kernel()
    x = x.detach().to(torch.float32).contiguous()  # packed in C from NCHW, no transposed copy
    wbits = wbits.contiguous()
    cout = wbits.shape[0]
    if wbits.shape[1:] != (kh, kw, words_for(c)):
        raise ValueError(f"packed weights {tuple(wbits.shape)} do not fit {c} channels "
                         f"and a {kh}x{kw} kernel")
    ptrs, keep = [], []
    if scales is not None:
        alpha, k, bias = scales
        keep = [t.detach().to(torch.float32).contiguous() if t is not None else None
                for t in (alpha, k, bias)]
        if keep[0].numel() != cout or keep[1].shape != (n, 1, ho, wo) or (
                keep[2] is not None and keep[2].numel() != cout):
            raise ValueError("α needs one value per filter, K the shape (N, 1, Ho, Wo) and the "
                             "bias one value per filter")
        ptrs = [t.data_ptr() if t is not None else 0 for t in keep]
    out = torch.empty(n, ho, wo, cout, dtype=torch.int32 if scales is None else torch.float32)
    _binconv.conv(x.data_ptr(), wbits.data_ptr(), out.data_ptr(), n, c, h, w, words_for(c),
                  cout, kh, kw, sh, sw, ph, pw, dh, dw, ho, wo, _threads(threads), *ptrs)
    return out.permute(0, 3, 1, 2)


def float_counts(x: torch.Tensor, signs: torch.Tensor, stride=1, padding=0,
                 dilation=1) -> torch.Tensor:
    """The same counts by a float convolution of the ±1 signs (the fallback and the reference;
    exact while the counts stay below 2^24)."""
    return F.conv2d(sign(x), signs, stride=stride, padding=padding, dilation=dilation)


def _hold_weights(module: nn.Module, w4: torch.Tensor, bias) -> None:
    """A packed layer's buffers from its (O, C, kh, kw) float weights: α per output (the
    mean |w|), the bias, the packed sign bits (or the signs, without the compiled kernel)."""
    module.register_buffer("alpha", w4.abs().mean(dim=(1, 2, 3)))
    module.register_buffer("bias", None if bias is None else bias.detach().clone())
    if HAVE_KERNEL:
        module.register_buffer("wbits", pack_weight(w4))
    else:
        module.register_buffer("signs", sign(w4))
    module.threads = None


class PackedConv2d(nn.Module):
    """Inference form of an XNOR :class:`BinaryConv2d`: BN → sign bits → XNOR + popcount →
    ·α·K (+ bias). Holds the weights as bits (``wbits``) and α per filter."""

    def __init__(self, layer: BinaryConv2d):
        super().__init__()
        if layer.mode != "xnor" or layer.groups != 1:
            raise ValueError("PackedConv2d packs XNOR convolutions with groups=1")
        w = layer.weight.detach().float()
        self.in_channels, self.out_channels = layer.in_channels, layer.out_channels
        self.kernel_size, self.stride = layer.kernel_size, layer.stride
        self.padding, self.dilation = layer.padding, layer.dilation
        self.bn = layer.bn
        _hold_weights(self, w, layer.bias)

    @torch.no_grad()
    def forward(self, x):
        x = self.bn(x)
        k = input_scale(x, self.kernel_size, self.stride, self.padding, self.dilation)
        if HAVE_KERNEL:  # the kernel applies α·K (+ bias) as it stores each count
            return xnor_conv(x, self.wbits, self.in_channels, self.kernel_size, self.stride,
                             self.padding, self.dilation, self.alpha, k, self.bias,
                             self.threads)
        out = float_counts(x, self.signs, self.stride, self.padding, self.dilation)
        out = out * self.alpha.view(1, -1, 1, 1) * k
        return out if self.bias is None else out + self.bias.view(1, -1, 1, 1)


class PackedLinear(nn.Module):
    """Inference form of an XNOR :class:`BinaryLinear` (a 1×1 convolution of a 1×1 image)."""

    def __init__(self, layer: BinaryLinear):
        super().__init__()
        if layer.mode != "xnor":
            raise ValueError("PackedLinear packs XNOR layers")
        w = layer.weight.detach().float()
        self.in_features, self.out_features = layer.in_features, layer.out_features
        self.bn = layer.bn
        _hold_weights(self, w[:, :, None, None], layer.bias)

    @torch.no_grad()
    def forward(self, x):
        shape = x.shape
        x = self.bn(x.reshape(-1, shape[-1]))
        k = x.abs().mean(dim=1, keepdim=True)
        x4 = x[:, :, None, None]
        if HAVE_KERNEL:
            c = xnor_counts(x4, self.wbits, self.in_features, (1, 1), threads=self.threads)
        else:
            c = float_counts(x4, self.signs)
        out = c.flatten(1).float() * self.alpha * k
        out = out if self.bias is None else out + self.bias
        return out.reshape(*shape[:-1], self.out_features)


def pack_model(model: nn.Module, threads: int | None = None) -> nn.Module:
    """Swap every XNOR layer (groups=1) of a binarised model, in eval mode, for its packed
    inference form, in place; BWN layers (real inputs) stay as they are."""
    from cnnlab.compress.binary import _set

    model.eval()
    for name, m in binary_layers(model).items():
        if m.mode != "xnor" or (isinstance(m, BinaryConv2d) and m.groups != 1):
            continue
        p = PackedConv2d(m) if isinstance(m, BinaryConv2d) else PackedLinear(m)
        p.threads = threads
        _set(model, name, p)
    return model
