"""Binary networks: Binary-Weight-Networks and XNOR-Net (Rastegari et al. 2016, ECCV).

*BWN* (Sec. 3.1): every filter W ∈ R^n of a layer is replaced by α·B with B = sign(W) ∈ {±1}^n
(sign(0) = +1) and α = mean|W| = ‖W‖₁/n — the closed-form minimiser of ‖W − αB‖² (Eq. 2–5).
*XNOR-Net* (Sec. 3.2): the inputs are binarised too, I ≈ K ⊙ sign(I), where K is the mean of
|I| over the input channels averaged over each receptive field by a k×k box filter (Fig. 2:
A = Σ|I_{:,:,i}|/c, K = A ∗ k, k_ij = 1/(w·h)), so I ∗ W ≈ (sign(I) ⊛ sign(W)) ⊙ K·α (Eq. 11),
where ⊛ is XNOR + bit count. A binary layer is the paper's block BN → BinActiv → BinConv
(→ pool, which the model's own pooling provides, Fig. 3): :func:`binarize` gives every binary
layer in ``"xnor"`` mode its own BatchNorm over the input channels, so that the sign sees
centred inputs even when the model puts a ReLU in front of the layer.

Batch norm in comparisons: the paper compares the variants on one architecture with batch norm
in every block (the released Torch models: BWN's AlexNet is conv → BN → ReLU, XNOR-Net's is
BN → BinActiv → BinConv). A model without batch norm (Caffe's LeNet) gains one per binary layer
in ``"xnor"`` mode only, so BWN vs XNOR would then also compare "no BN" against "BN".
``input_bn=True`` gives BWN layers the same BatchNorm in front, and :func:`add_input_bn` gives
a full-precision model the same one at the same places, so all three differ only in what is
binarised.

Training (Sec. 3.2, "Binary Gradient"): the real-valued weights are kept and updated; the
forward pass binarises them, and sign's gradient is the straight-through estimator
∂sign(r)/∂r = 1_{|r| ≤ 1} (Hubara et al. 2016). Everything lives in ``forward``, so the
ordinary trainer trains a binarised model unchanged. The first and last layers stay
real-valued, as in the paper (Sec. 4).

For inference, :func:`save_binary` writes 1 bit per binary weight (packed uint8) plus the
α per filter into a safetensors file; :func:`load_binary` rebuilds the model (the weights
become α·B, which binarise to the same B and, to float rounding, the same α) and
:func:`pack_model` (:mod:`cnnlab.compress.binary_kernel`) swaps each XNOR layer for a
:class:`PackedConv2d`/:class:`PackedLinear` running the bit-packed XNOR + popcount kernel.
"""

from __future__ import annotations

import json
import math
import os

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from cnnlab.io import atomic_path

MODES = ("bwn", "xnor")


def sign(x: torch.Tensor) -> torch.Tensor:
    """sign with sign(0) = +1 (torch.sign(0) is 0; the paper's B_i = +1 if W_i ≥ 0)."""
    return torch.where(x >= 0, 1.0, -1.0).to(x.dtype)


class SignSTE(torch.autograd.Function):
    """sign(x) forward; straight-through gradient g·1_{|x| ≤ 1} backward (Sec. 3.2)."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return sign(x)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad * (x.abs() <= 1).to(grad.dtype)


def weight_scale(w: torch.Tensor) -> torch.Tensor:
    """α = mean|W| per output filter (Eq. 5), shaped to broadcast against ``w``."""
    return w.abs().mean(dim=tuple(range(1, w.dim())), keepdim=True)


def binary_weight(w: torch.Tensor) -> torch.Tensor:
    """W̃ = α·sign(W), differentiable: α by autograd, sign by the straight-through estimator."""
    return weight_scale(w) * SignSTE.apply(w)


def input_scale(x: torch.Tensor, kernel_size, stride=1, padding=0, dilation=1) -> torch.Tensor:
    """K (Fig. 2): A = mean over channels of |I|, averaged over each k×k receptive field by a
    box filter with the convolution's stride, zero padding and dilation → (N, 1, H_out, W_out)."""
    a = x.abs().mean(dim=1, keepdim=True)
    kh, kw = kernel_size
    box = torch.full((1, 1, kh, kw), 1.0 / (kh * kw), dtype=x.dtype, device=x.device)
    return F.conv2d(a, box, stride=stride, padding=padding, dilation=dilation)


class BinaryConv2d(nn.Conv2d):
    """A Conv2d whose forward binarises its weights (``bwn``) or weights and inputs (``xnor``,
    with the paper's BN → BinActiv → BinConv block). The real weights stay the parameters."""

    def __init__(self, *args, mode: str = "bwn", input_bn: bool | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        if self.padding_mode != "zeros":
            raise ValueError("binary convolutions pad with zeros, as the paper does")
        self.mode = mode
        self.bn = nn.BatchNorm2d(self.in_channels) if _with_bn(mode, input_bn) else None

    @classmethod
    def from_conv(cls, conv: nn.Conv2d, mode: str, input_bn: bool | None = None
                  ) -> BinaryConv2d:
        m = cls(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride,
                conv.padding, conv.dilation, conv.groups, conv.bias is not None,
                conv.padding_mode, mode=mode, input_bn=input_bn, device=conv.weight.device,
                dtype=conv.weight.dtype)
        m.weight = conv.weight
        m.bias = conv.bias
        return m

    def binary_input(self, x):
        """(sign(BN(x)), K) for ``xnor``; the zero padding is applied by the convolution."""
        x = self.bn(x)
        k = input_scale(x, self.kernel_size, self.stride, self.padding, self.dilation)
        return SignSTE.apply(x), k

    def forward(self, x):
        if self.mode == "bwn":
            x = x if self.bn is None else self.bn(x)
            return self._conv_forward(x, binary_weight(self.weight), self.bias)
        xb, k = self.binary_input(x)
        # integer counts first, then ·α·K, in the order of the packed kernel (Eq. 11)
        out = self._conv_forward(xb, SignSTE.apply(self.weight), None)
        out = out * weight_scale(self.weight).view(1, -1, 1, 1) * k
        return out if self.bias is None else out + self.bias.view(1, -1, 1, 1)

    def extra_repr(self):
        return super().extra_repr() + f", mode={self.mode}"


class BinaryLinear(nn.Linear):
    """A Linear layer binarised like :class:`BinaryConv2d`; in ``xnor`` mode K = mean|I| over
    the input features (the receptive field is the whole input vector)."""

    def __init__(self, in_features, out_features, bias=True, mode="bwn", device=None,
                 dtype=None, input_bn: bool | None = None):
        super().__init__(in_features, out_features, bias, device, dtype)
        self.mode = mode
        self.bn = nn.BatchNorm1d(in_features) if _with_bn(mode, input_bn) else None

    @classmethod
    def from_linear(cls, lin: nn.Linear, mode: str, input_bn: bool | None = None
                    ) -> BinaryLinear:
        m = cls(lin.in_features, lin.out_features, lin.bias is not None, mode=mode,
                device=lin.weight.device, dtype=lin.weight.dtype, input_bn=input_bn)
        m.weight = lin.weight
        m.bias = lin.bias
        return m

    def binary_input(self, x):
        x = _features_bn(self.bn, x)
        return SignSTE.apply(x), x.abs().mean(dim=-1, keepdim=True)

    def forward(self, x):
        if self.mode == "bwn":
            x = x if self.bn is None else _features_bn(self.bn, x)
            return F.linear(x, binary_weight(self.weight), self.bias)
        xb, k = self.binary_input(x)
        out = F.linear(xb, SignSTE.apply(self.weight)) * weight_scale(self.weight).view(-1) * k
        return out if self.bias is None else out + self.bias

    def extra_repr(self):
        return super().extra_repr() + f", mode={self.mode}"


BINARY = (BinaryConv2d, BinaryLinear)


def _with_bn(mode: str, input_bn: bool | None) -> bool:
    """Whether a binary layer normalises its input: XNOR-Net's block always does; BWN when
    asked (``input_bn=True``), to compare the two at the same batch-norm placement."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    if mode == "xnor" and input_bn is False:
        raise ValueError("XNOR-Net's block normalises before the sign (BN → BinActiv → "
                         "BinConv); input_bn=False is only for bwn")
    return mode == "xnor" or bool(input_bn)


def _features_bn(bn: nn.BatchNorm1d, x: torch.Tensor) -> torch.Tensor:
    """BatchNorm1d over the last dimension of (..., features)."""
    shape = x.shape
    return bn(x.reshape(-1, shape[-1])).reshape(shape)


class InputBN(nn.Module):
    """BatchNorm over a real Conv2d/Linear layer's input, then the layer: the binary layers'
    ``input_bn`` placement for a full-precision baseline (:func:`add_input_bn`)."""

    def __init__(self, layer: nn.Conv2d | nn.Linear):
        super().__init__()
        conv = isinstance(layer, nn.Conv2d)
        self.bn = nn.BatchNorm2d(layer.in_channels) if conv else nn.BatchNorm1d(
            layer.in_features)
        self.bn.to(device=layer.weight.device, dtype=layer.weight.dtype)
        self.layer = layer

    def forward(self, x):
        x = self.bn(x) if isinstance(self.bn, nn.BatchNorm2d) else _features_bn(self.bn, x)
        return self.layer(x)


def _layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    return [(n, m) for n, m in model.named_modules()
            if isinstance(m, (nn.Conv2d, nn.Linear)) and not isinstance(m, BINARY)]


def _set(model: nn.Module, name: str, module: nn.Module) -> None:
    parent, _, leaf = name.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, leaf, module)


def _chosen(model: nn.Module, keep_first_last: bool) -> list[tuple[str, nn.Module]]:
    """The Conv2d/Linear layers to binarise, in module order (all but the first and last with
    ``keep_first_last``)."""
    layers = _layers(model)
    if not layers:
        raise ValueError(f"{type(model).__name__} has no Conv2d or Linear layer to binarise")
    chosen = layers[1:-1] if keep_first_last else layers
    if not chosen:
        raise ValueError(f"{type(model).__name__} has only {len(layers)} Conv2d/Linear "
                         "layer(s), all kept real-valued as the first and last; nothing to "
                         "binarise (pass keep_first_last=False)")
    return chosen


def binarize(model: nn.Module, mode: str = "bwn", keep_first_last: bool = True,
             input_bn: bool | None = None) -> nn.Module:
    """Replace the model's Conv2d and Linear layers (in module order) by binary ones, in place;
    with ``keep_first_last`` the first and the last stay real-valued (Sec. 4). The layers keep
    their parameters, so an optimiser built afterwards trains the real weights. ``input_bn``:
    None = the paper's blocks (BatchNorm in front for ``xnor`` only); True = in front of every
    binary layer, BWN too (see the module docstring)."""
    _with_bn(mode, input_bn)
    for name, m in _chosen(model, keep_first_last):
        new = (BinaryConv2d.from_conv(m, mode, input_bn) if isinstance(m, nn.Conv2d)
               else BinaryLinear.from_linear(m, mode, input_bn))
        new.train(m.training)
        _set(model, name, new)
    return model


def add_input_bn(model: nn.Module, keep_first_last: bool = True) -> nn.Module:
    """Put a BatchNorm in front of the layers :func:`binarize` would binarise, in place, and
    keep them real: the full-precision network with the binary ones' BN placement."""
    for name, m in _chosen(model, keep_first_last):
        new = InputBN(m)
        new.train(m.training)
        _set(model, name, new)
    return model


def binary_layers(model: nn.Module) -> dict[str, nn.Module]:
    return {n: m for n, m in model.named_modules() if isinstance(m, BINARY)}


# ---------------------------------------------------------------- the file: 1 bit per weight

def pack_signs(w: torch.Tensor) -> torch.Tensor:
    """Bits of sign(W) ≥ 0 per output filter, 8 to a byte (big-endian bit order):
    (out, ceil(n/8)) uint8."""
    bits = (w.detach().reshape(w.shape[0], -1) >= 0).cpu().numpy()
    return torch.from_numpy(np.packbits(bits, axis=1))


def unpack_signs(packed: torch.Tensor, shape) -> torch.Tensor:
    n = math.prod(shape[1:])
    bits = np.unpackbits(packed.numpy(), axis=1, count=n).astype(np.float32)
    return torch.from_numpy(bits * 2 - 1).reshape(shape)


def save_binary(model: nn.Module, path: str | os.PathLike, meta: dict | None = None) -> int:
    """Write ``model`` (binarised) for inference: each binary layer's weight as
    ``NAME.weight.bits`` (1 bit per weight, uint8) + ``NAME.weight.alpha`` (float32 per
    filter); everything else as is. ``meta`` (e.g. ``{"model": name, "config": {...}}``) lets
    :func:`load_binary` rebuild the model. Returns the file's size in bytes."""
    from safetensors.torch import save_file

    bl = binary_layers(model)
    if not bl:
        raise ValueError("the model has no binary layer (call binarize first)")
    skip = {f"{n}.weight" for n in bl}
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()
               if k not in skip}
    shapes = {}
    for n, m in bl.items():
        tensors[f"{n}.weight.bits"] = pack_signs(m.weight)
        tensors[f"{n}.weight.alpha"] = weight_scale(m.weight.detach()).flatten().cpu()
        shapes[n] = list(m.weight.shape)
    header = {"format": "cnnlab-binary-1", "meta": json.dumps(meta or {}),
              "layers": json.dumps({n: {"mode": m.mode, "shape": shapes[n],
                                        "input_bn": m.bn is not None}
                                    for n, m in bl.items()})}
    with atomic_path(path) as tmp:
        mode = tmp.stat().st_mode
        save_file(tensors, str(tmp), metadata=header)
        os.chmod(tmp, mode)  # safetensors recreates the file with mode 0600
    return os.path.getsize(path)


def read_binary(path: str | os.PathLike) -> tuple[dict, dict, dict]:
    """(tensors, layers, meta) of a file written by :func:`save_binary`."""
    from safetensors import safe_open

    with safe_open(str(path), "pt") as f:
        header = f.metadata() or {}
        if header.get("format") != "cnnlab-binary-1":
            raise ValueError(f"{path} is not a cnnlab binary model file")
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    return tensors, json.loads(header["layers"]), json.loads(header["meta"])


def load_binary(path: str | os.PathLike, model: nn.Module | None = None) -> nn.Module:
    """Rebuild a model saved by :func:`save_binary`. Without ``model`` it is created from the
    file's ``meta`` (``model`` name and ``config``); the binary layers get W = α·B, which
    binarise to the saved B and (to float rounding of the mean) the saved α."""
    tensors, layers, meta = read_binary(path)
    if model is None:
        import cnnlab

        if "model" not in meta:
            raise ValueError(f"{path} does not name its model; pass one")
        model = cnnlab.create_model(meta["model"], **meta.get("config", {}))
    for n, info in layers.items():
        m = model.get_submodule(n)
        if not isinstance(m, BINARY):
            if not isinstance(m, (nn.Conv2d, nn.Linear)):
                raise ValueError(f"{path}: layer {n} is not a Conv2d/Linear in this model")
            bn = info.get("input_bn") or None  # files without the key: the paper's blocks
            _set(model, n, BinaryConv2d.from_conv(m, info["mode"], bn)
                 if isinstance(m, nn.Conv2d) else BinaryLinear.from_linear(m, info["mode"], bn))
        bits = tensors.pop(f"{n}.weight.bits")
        alpha = tensors.pop(f"{n}.weight.alpha")
        b = unpack_signs(bits, info["shape"])
        tensors[f"{n}.weight"] = alpha.view(-1, *[1] * (b.dim() - 1)) * b
    model.load_state_dict(tensors)
    return model


def weight_bytes(model: nn.Module) -> dict:
    """Bytes of the weights at inference: fp32 for real tensors, 1 bit per binary weight
    (rounded up to bytes per filter, as :func:`save_binary` stores them) + 4 B per α."""
    bl = binary_layers(model)
    binary = real = 0
    for m in bl.values():
        w = m.weight
        binary += w.shape[0] * (math.ceil(w[0].numel() / 8) + 4)
    skip = {f"{n}.weight" for n in bl}
    for k, v in model.state_dict().items():
        if k not in skip and v.dtype.is_floating_point:
            real += v.numel() * v.element_size()
    fp32 = sum(v.numel() * 4 for k, v in model.state_dict().items()
               if v.dtype.is_floating_point)
    return {"binary": binary, "real": real, "total": binary + real, "fp32": fp32}
