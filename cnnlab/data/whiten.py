"""Preprocessing fitted on the training split: mean-image subtraction and ZCA whitening.

Mean-image subtraction (AlexNet Sec. 2, GoogLeNet) removes the training set's mean image,
pixel by pixel. ZCA whitening (NIN, Lin et al. 2014, Sec. 4; after Goodfellow et al.'s maxout
networks) decorrelates the pixels: x ↦ W (x − μ), W = U diag(1/√(λ + ε)) Uᵀ from the
eigendecomposition of the training images' covariance, so whitened images still look like
images (the zero-phase choice among whitening matrices).

Both are ``nn.Module`` s whose statistics are persistent buffers: put one in front of a model
and ``state_dict`` — hence a safetensors checkpoint — carries the transform, so evaluation
applies exactly what training fitted. Fit on the training split only.
"""

from __future__ import annotations

import torch
import torch.nn as nn


def _as_float(x: torch.Tensor) -> torch.Tensor:
    """Images in the 0-1 scale (uint8 images are /255), float64 for the statistics."""
    return x.double() / 255 if x.dtype == torch.uint8 else x.double()


def _check_images(x: torch.Tensor) -> None:
    if x.dim() != 4 or len(x) < 2:
        raise ValueError(f"fit on N×C×H×W training images with N >= 2, got {tuple(x.shape)}")


class MeanImage(nn.Module):
    """x − μ, μ the training set's mean image (C×H×W)."""

    def __init__(self, shape: tuple[int, int, int]):
        super().__init__()
        self.register_buffer("mean", torch.zeros(shape))

    @classmethod
    def fit(cls, x: torch.Tensor) -> MeanImage:
        _check_images(x)
        m = cls(tuple(x.shape[1:]))
        m.mean.copy_(_as_float(x).mean(0).float())
        return m

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _as_float(x).to(self.mean.dtype) - self.mean


class ZCAWhitening(nn.Module):
    """x ↦ W (x − μ) over the flattened C·H·W pixels; ``eps`` is added to the covariance's
    eigenvalues (it keeps the near-zero directions from being amplified into noise)."""

    def __init__(self, shape: tuple[int, int, int], eps: float = 0.1):
        super().__init__()
        d = shape[0] * shape[1] * shape[2]
        self.shape, self.eps = tuple(shape), eps
        self.register_buffer("mean", torch.zeros(d))
        self.register_buffer("matrix", torch.eye(d))

    @classmethod
    def fit(cls, x: torch.Tensor, eps: float = 0.1) -> ZCAWhitening:
        _check_images(x)
        if not eps > 0:
            raise ValueError(f"eps must be positive, got {eps!r}")
        m = cls(tuple(x.shape[1:]), eps)
        flat = _as_float(x).flatten(1)
        mean = flat.mean(0)
        centred = flat - mean
        cov = centred.T @ centred / len(flat)
        vals, vecs = torch.linalg.eigh(cov)
        w = vecs @ torch.diag((vals.clamp_min(0) + eps).rsqrt()) @ vecs.T
        m.mean.copy_(mean.float())
        m.matrix.copy_(w.float())
        return m

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        flat = _as_float(x).to(self.matrix.dtype).flatten(1) - self.mean
        return (flat @ self.matrix.T).view(len(x), *self.shape)


# --- as a data option: ``cnnlab train --preprocess mean-image|zca[:EPS]`` -------------------
PREPROCESS = ("mean-image", "zca")
ZCA_MAX_VALUES = 4096  # a C·H·W × C·H·W matrix: NIN whitened 3×32×32 CIFAR (3,072)


def parse_preprocess(spec: str) -> tuple[str, float]:
    """``"mean-image"``, ``"zca"`` or ``"zca:EPS"`` → (kind, eps)."""
    kind, _, arg = (spec or "").partition(":")
    if kind not in PREPROCESS or (arg and kind != "zca"):
        raise ValueError(f"unknown preprocessing {spec!r}; known: mean-image, zca, zca:EPS")
    try:
        eps = float(arg) if arg else 0.1
    except ValueError:
        eps = -1.0
    if not eps > 0 or eps == float("inf"):
        raise ValueError(f"zca:EPS needs a positive number, got {spec!r}")
    return kind, eps


def empty_preprocess(spec: str, shape: tuple[int, int, int]) -> nn.Module:
    """An unfitted module of the kind ``spec`` names, for images of ``shape`` (its buffers are
    then loaded from a checkpoint)."""
    kind, eps = parse_preprocess(spec)
    if kind == "mean-image":
        return MeanImage(shape)
    values = shape[0] * shape[1] * shape[2]
    if values > ZCA_MAX_VALUES:
        raise ValueError(f"ZCA whitening of {'x'.join(map(str, shape))} inputs needs a "
                         f"{values:,}x{values:,} matrix; it is for inputs of at most "
                         f"{ZCA_MAX_VALUES:,} values (NIN whitened 3x32x32 CIFAR)")
    return ZCAWhitening(shape, eps)


def fit_preprocess(spec: str, images: torch.Tensor) -> nn.Module:
    """The module ``spec`` names, fitted on ``images`` (the training split, as the network
    sees them)."""
    kind, eps = parse_preprocess(spec)
    empty_preprocess(spec, tuple(images.shape[1:]))  # refuses a too-large ZCA before fitting
    return MeanImage.fit(images) if kind == "mean-image" else ZCAWhitening.fit(images, eps)


def _preprocess_input(model: nn.Module, args):
    return (model.preprocess(args[0]), *args[1:])


def attach_preprocess(model: nn.Module, prep: nn.Module) -> nn.Module:
    """Put ``prep`` in front of ``model``'s forward: a submodule ``preprocess`` (so its
    buffers travel in ``state_dict`` and the checkpoint) and a forward pre-hook that applies
    it. The model's own weights keep their names."""
    model.add_module("preprocess", prep)
    model.register_forward_pre_hook(_preprocess_input)
    return model
