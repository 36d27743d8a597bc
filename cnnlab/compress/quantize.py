"""Trained quantization and weight sharing (Han et al. 2016, Deep Compression, Sec. 3).

Each layer's surviving weights are clustered by 1-D k-means into ``k = 2**b`` shared values
(one codebook per layer); every weight then stores only its cluster index. Centroids are
initialised linearly between the weights' min and max (the paper's choice), by density
(quantiles of the weights' CDF) or at random weights (Forgy), to reproduce Sec. 3.2.

Fine-tuning updates the centroids with the gradients grouped by cluster index and summed,
∂L/∂C_k = Σ_ij ∂L/∂W_ij · 1(I_ij = k) (Eq. 3): the layer's ``weight`` becomes a
parametrization ``W = C[I]`` of the codebook ``C``, so autograd's backward of the gather is
exactly that sum and every optimiser trains the centroids — the weights stay tied and pruned
weights stay zero. :func:`bake` turns the weights back into plain parameters.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.utils import parametrize

INITS = ("linear", "density", "random")


def compression_rate(n: int, k: int, b: int = 32) -> float:
    """Eq. 1: r = n·b / (n·log2 k + k·b) for n weights shared among k clusters of b bits.

    ``compression_rate(16, 4, 32)`` is 3.2, the paper's worked example (Fig. 3).
    """
    if n <= 0 or k <= 0 or b <= 0:
        raise ValueError("n, k and b must be positive")
    return n * b / (n * math.log2(k) + k * b)


def init_centroids(x: torch.Tensor, k: int, init: str = "linear", seed: int = 0) -> torch.Tensor:
    """``k`` starting centroids for the 1-D sample ``x`` (float64, sorted)."""
    if init not in INITS:
        raise ValueError(f"unknown centroid initialisation {init!r}; choose from {INITS}")
    x = x.double()
    if init == "linear":
        c = torch.linspace(float(x.min()), float(x.max()), k, dtype=torch.float64)
    elif init == "density":
        c = torch.quantile(x if x.numel() <= 1 << 24 else x[:: x.numel() // (1 << 24) + 1],
                           torch.linspace(0, 1, k, dtype=torch.float64))
    else:
        g = torch.Generator().manual_seed(seed)
        pick = torch.randperm(x.numel(), generator=g)[:k] if x.numel() >= k else \
            torch.randint(x.numel(), (k,), generator=g)
        c = x[pick]
    return c.sort().values


def kmeans_1d(x: torch.Tensor, k: int, init: str = "linear", iters: int = 1000, seed: int = 0):
    """Lloyd's k-means on a 1-D sample: returns ``(centroids float32 (k,), labels long)``.

    In one dimension every cluster is a contiguous run of the sorted sample, cut at the
    midpoints between neighbouring centroids: one sort, then each iteration costs only k
    bisections and prefix-sum lookups. The returned centroids are the means of their
    clusters' members (a cluster left empty keeps its last position), i.e. the WCSS
    minimiser for the returned labels.
    """
    if k < 1:
        raise ValueError("k must be at least 1")
    x = x.detach().reshape(-1).double().cpu()
    n = x.numel()
    if n == 0:
        return torch.zeros(k), torch.zeros(0, dtype=torch.long)
    xs = x.sort().values
    cs = torch.cat([torch.zeros(1, dtype=torch.float64), xs.cumsum(0)])
    c = init_centroids(xs, k, init, seed)
    cut = None
    for _ in range(iters):
        bounds = (c[1:] + c[:-1]) / 2
        new = torch.searchsorted(xs, bounds, right=True)  # members of cluster j: x <= bound j
        if cut is not None and torch.equal(new, cut):
            break
        cut, used = new, bounds
        lo = torch.cat([torch.zeros(1, dtype=torch.long), cut])
        hi = torch.cat([cut, torch.full((1,), n, dtype=torch.long)])
        count = hi - lo
        c = torch.where(count > 0, (cs[hi] - cs[lo]) / count.clamp(min=1), c)
        c = c.sort().values  # an empty cluster's old centroid may fall out of order
    labels = torch.bucketize(x, used)  # the segmentation the centroids are the means of
    c = _means(x, labels, c)
    c, perm = c.sort()
    return c.float(), torch.argsort(perm)[labels]


def _means(x, labels, fallback):
    k = len(fallback)
    sums = torch.bincount(labels, weights=x, minlength=k)
    counts = torch.bincount(labels, minlength=k)
    return torch.where(counts > 0, sums / counts.clamp(min=1), fallback)


class SharedWeight(nn.Module):
    """Parametrization ``W = C[I]`` of a weight by its layer's codebook ``C``.

    ``index`` holds each weight's cluster; pruned weights point at ``k``, a constant zero
    that receives no gradient. Assigning a weight projects it on the tied weights: each
    centroid becomes the mean of its cluster's entries.
    """

    def __init__(self, index: torch.Tensor, k: int, fallback: torch.Tensor):
        super().__init__()
        self.k = k
        self.register_buffer("index", index)
        self.register_buffer("fallback", fallback.detach().clone().float())

    def forward(self, codebook: torch.Tensor) -> torch.Tensor:
        return F.pad(codebook, (0, 1))[self.index]

    def right_inverse(self, weight: torch.Tensor) -> torch.Tensor:
        idx = self.index.reshape(-1)
        keep = idx < self.k
        w = weight.detach().reshape(-1)[keep].double()
        c = _means(w, idx[keep], self.fallback.double().to(w.device))
        return c.to(weight.dtype)


def cluster_weights(w: torch.Tensor, bits: int, init: str = "linear", seed: int = 0,
                    iters: int = 1000) -> tuple[torch.Tensor, torch.Tensor]:
    """``(codebook (k,), index shaped like w)`` of ``w``'s non-zero entries clustered by
    :func:`kmeans_1d` into ``k = 2**bits`` values; zero (pruned) weights get index ``k``."""
    if not 1 <= bits <= 12:
        raise ValueError(f"bits must be in 1..12, got {bits}")
    flat = w.detach().reshape(-1)
    nz = flat != 0
    k = 1 << bits
    c, labels = kmeans_1d(flat[nz], k, init=init, seed=seed, iters=iters)
    index = torch.full(flat.shape, k, dtype=torch.long, device=w.device)
    index[nz] = labels.to(w.device)
    return c, index.reshape(w.shape)


def quantize_layer(module: nn.Module, bits: int, init: str = "linear", seed: int = 0,
                   iters: int = 1000) -> torch.Tensor:
    """Cluster a layer's non-zero weights into ``2**bits`` shared values and tie them.

    Returns the codebook. Zero weights (pruned) stay zero and are not clustered.
    """
    w = module.weight.detach()
    c, index = cluster_weights(w, bits, init=init, seed=seed, iters=iters)
    param = SharedWeight(index, 1 << bits, c.to(w.device))
    parametrize.register_parametrization(module, "weight", param)
    return module.parametrizations.weight.original


def shared_layers(model: nn.Module) -> dict[str, nn.Module]:
    """Modules whose ``weight`` is currently tied to a codebook."""
    return {n: m for n, m in model.named_modules()
            if parametrize.is_parametrized(m, "weight")
            and any(isinstance(p, SharedWeight) for p in m.parametrizations.weight)}


def codebook_and_index(module: nn.Module) -> tuple[torch.Tensor, torch.Tensor, int]:
    """``(codebook, index, k)`` of a tied layer (index ``k`` = pruned)."""
    p = next(p for p in module.parametrizations.weight if isinstance(p, SharedWeight))
    return module.parametrizations.weight.original.detach(), p.index, p.k


def bake(model: nn.Module) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Replace every tied weight by the plain parameter ``C[I]``; return each layer's
    ``(codebook, index)`` so the encoder can use the exact clustering."""
    out = {}
    for name, m in shared_layers(model).items():
        c, idx, _ = codebook_and_index(m)
        out[name] = (c.clone(), idx.clone())
        parametrize.remove_parametrizations(m, "weight", leave_parametrized=True)
        # keep the state-dict order of a plain layer (weight before bias)
        m._parameters = {"weight": m._parameters.pop("weight"), **m._parameters}
    return out
