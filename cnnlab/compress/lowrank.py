"""Low-rank factorisation of trained layers.

- Fully connected layers by truncated SVD (Denton et al. 2014, "Exploiting Linear Structure
  Within Convolutional Networks for Efficient Evaluation", Sec. 3.2; the "SVD" row of
  SqueezeNet Table 2, deck 000:75: AlexNet 240 MB → 48 MB, 5×): W = U S Vᵀ ≈ (U_k S_k)(V_kᵀ),
  one m×n layer becoming an n→k and a k→m layer, k(m + n) weights instead of mn. By the
  Eckart-Young theorem the Frobenius error is the norm of the discarded singular values.
- Convolutions by Jaderberg, Vedaldi, Zisserman 2014 ("Speeding up Convolutional Neural
  Networks with Low Rank Expansions", scheme 2): a k×k conv C→N becomes a k×1 conv C→r and a
  1×k conv r→N. Unfolding the kernel as the (C·k)×(N·k) matrix M[(c,y),(n,x)] = W[n,c,y,x]
  makes the scheme a rank-r factorisation of M, so its truncated SVD is the closed-form
  filter-reconstruction optimum (Tai et al. 2016, Theorem 1); fine-tuning follows.

The rank of a layer comes from an explicit ``rank``, a target ``compression`` of its weights,
or an ``energy`` threshold (the smallest k keeping that fraction of Σ s²).
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn


class LowRankLinear(nn.Sequential):
    """x → u(v(x)): ``v`` is n→k without bias (V_kᵀ), ``u`` is k→m with the original bias."""

    def __init__(self, in_features: int, out_features: int, rank: int, bias: bool = True,
                 device=None):
        super().__init__()
        self.rank = rank
        self.v = nn.Linear(in_features, rank, bias=False, device=device)
        self.u = nn.Linear(rank, out_features, bias=bias, device=device)


class SpatialLowRankConv(nn.Sequential):
    """Jaderberg scheme 2: ``vertical`` k×1 conv C→r, then ``horizontal`` 1×k conv r→N."""

    def __init__(self, conv: nn.Conv2d, rank: int, device=None):
        super().__init__()
        if conv.groups != 1 or conv.dilation != (1, 1) or conv.padding_mode != "zeros":
            raise ValueError("spatial factorisation needs an ungrouped, undilated, "
                             "zero-padded convolution")
        if isinstance(conv.padding, str):
            raise ValueError("spatial factorisation needs numeric padding")
        (kh, kw), (sh, sw), (ph, pw) = conv.kernel_size, conv.stride, conv.padding
        self.rank = rank
        self.vertical = nn.Conv2d(conv.in_channels, rank, (kh, 1), (sh, 1), (ph, 0),
                                  bias=False, device=device)
        self.horizontal = nn.Conv2d(rank, conv.out_channels, (1, kw), (1, sw), (0, pw),
                                    bias=conv.bias is not None, device=device)


def rank_for(shape: tuple[int, int], singular_values: torch.Tensor | None = None, *,
             rank: int | None = None, compression: float | None = None,
             energy: float | None = None) -> int:
    """A layer's rank for an m×n matrix: explicit, or weights ÷ ``compression``
    (k(m + n) ≤ mn / c), or the fewest singular values keeping ``energy`` of Σ s²."""
    m, n = shape
    full = min(m, n)
    if sum(v is not None for v in (rank, compression, energy)) != 1:
        raise ValueError("give exactly one of rank, compression, energy")
    if rank is not None:
        k = rank
    elif compression is not None:
        if compression <= 0:
            raise ValueError(f"compression must be positive, got {compression}")
        k = math.floor(m * n / (compression * (m + n)))
    else:
        if not 0 < energy <= 1:
            raise ValueError(f"energy must be in (0, 1], got {energy}")
        if singular_values is None:
            raise ValueError("an energy threshold needs the weights")
        e = (singular_values.double() ** 2).cumsum(0)
        k = int((e < energy * e[-1] * (1 - 1e-12)).sum()) + 1
    if not 1 <= k:
        raise ValueError(f"rank {k} for a {m}x{n} layer: it must be at least 1")
    return min(k, full)


def _svd(w: torch.Tensor):
    u, s, vh = torch.linalg.svd(w.detach().double(), full_matrices=False)
    return u, s, vh


def factorize_linear(fc: nn.Linear, **how) -> LowRankLinear:
    """``fc`` as two linear layers of the rank ``how`` selects (see :func:`rank_for`); a
    layer on the meta device gives the shapes only (for sizes)."""
    w = fc.weight
    meta = w.is_meta
    u = s = vh = None
    if not meta:
        u, s, vh = _svd(w)
    k = rank_for(tuple(w.shape), s, **how)
    low = LowRankLinear(fc.in_features, fc.out_features, k, fc.bias is not None,
                        device=w.device)
    if not meta:
        with torch.no_grad():
            low.v.weight.copy_(vh[:k].to(w.dtype))
            low.u.weight.copy_((u[:, :k] * s[:k]).to(w.dtype))
            if fc.bias is not None:
                low.u.bias.copy_(fc.bias)
    return low


def unfold_kernel(w: torch.Tensor) -> torch.Tensor:
    """N×C×kh×kw → the (C·kh)×(N·kw) matrix M[(c,y),(n,x)] = W[n,c,y,x]."""
    n, c, kh, kw = w.shape
    return w.permute(1, 2, 0, 3).reshape(c * kh, n * kw)


def factorize_conv(conv: nn.Conv2d, **how) -> SpatialLowRankConv:
    """Jaderberg scheme 2 by the SVD of the unfolded kernel (closed form)."""
    w = conv.weight
    n, c, kh, kw = w.shape
    meta = w.is_meta
    u = s = vh = None
    if not meta:
        u, s, vh = _svd(unfold_kernel(w))
    k = rank_for((c * kh, n * kw), s, **how)
    low = SpatialLowRankConv(conv, k, device=w.device)
    if not meta:
        root = s[:k].sqrt()
        vert = (u[:, :k] * root).reshape(c, kh, k).permute(2, 0, 1)      # r, C, kh
        horiz = (root[:, None] * vh[:k]).reshape(k, n, kw).permute(1, 0, 2)  # N, r, kw
        with torch.no_grad():
            low.vertical.weight.copy_(vert.unsqueeze(-1).to(w.dtype))
            low.horizontal.weight.copy_(horiz.unsqueeze(2).to(w.dtype))
            if conv.bias is not None:
                low.horizontal.bias.copy_(conv.bias)
    return low


def discarded_norm(w: torch.Tensor, rank: int) -> float:
    """‖W − W_k‖_F predicted by Eckart-Young: the norm of the singular values past ``rank``
    (of the unfolded kernel for a 4-D conv weight)."""
    m = unfold_kernel(w) if w.dim() == 4 else w
    s = torch.linalg.svdvals(m.detach().double())
    return float(s[rank:].norm())


def _set(model: nn.Module, name: str, module: nn.Module) -> None:
    parent, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, child, module)


def factorize(model: nn.Module, layers: dict[str, dict] | list[str] | None = None,
              **how) -> dict[str, int]:
    """Replace ``layers`` of ``model`` in place (names; a dict gives each its own ``how``,
    else ``how`` applies to all; default: every Linear) by their factorisations: Linear by
    truncated SVD, k×k Conv2d (k > 1) by Jaderberg's scheme 2. Returns {name: rank}."""
    mods = dict(model.named_modules())
    if layers is None:
        layers = [n for n, m in mods.items() if isinstance(m, nn.Linear)]
    spec = layers if isinstance(layers, dict) else {n: how for n in layers}
    ranks = {}
    for name, h in spec.items():
        m = mods.get(name)
        if isinstance(m, nn.Linear):
            low = factorize_linear(m, **h)
        elif isinstance(m, nn.Conv2d) and max(m.kernel_size) > 1:
            low = factorize_conv(m, **h)
        else:
            raise ValueError(f"{name!r} is not a Linear or k×k Conv2d layer of the model")
        _set(model, name, low)
        ranks[name] = low.rank
    return ranks


def compression_for_size(model: nn.Module, layers: list[str], target_params: int) -> float:
    """The one compression factor for ``layers`` that brings the whole model's parameter
    count to ``target_params`` (bisection on the factor; shapes only)."""
    mods = dict(model.named_modules())
    total = sum(p.numel() for p in model.parameters())
    fixed = total - sum(sum(p.numel() for p in mods[n].parameters()) for n in layers)

    def size(c):
        out = fixed
        for n in layers:
            w = mods[n].weight
            m, k = (w.shape[0], w[0].numel())
            r = max(1, min(m, k, math.floor(m * k / (c * (m + k)))))
            out += r * (m + k) + (0 if mods[n].bias is None else m)
        return out

    lo, hi = 1.0, 1e4
    if size(hi) > target_params:
        raise ValueError(f"the other layers alone have {fixed:,} parameters: "
                         f"{target_params:,} is out of reach")
    for _ in range(100):
        mid = math.sqrt(lo * hi)
        lo, hi = (mid, hi) if size(mid) > target_params else (lo, mid)
    return hi


def layer_report(before: nn.Module, after: nn.Module, ranks: dict[str, int], input_size
                 ) -> list[dict]:
    """Per factorised layer: rank, parameters and mult-adds before → after (profiler)."""
    from cnnlab.profile import profile

    def per_module(model):
        p = profile(model, tuple(input_size))
        macs: dict[str, int] = {}
        for r in p.rows:
            macs[r.name] = macs.get(r.name, 0) + r.macs
        return macs, p

    mb, pb = per_module(before)
    ma, pa = per_module(after)
    mods_b, mods_a = dict(before.named_modules()), dict(after.named_modules())
    rows = []
    for name, k in ranks.items():
        sub = [v for n, v in ma.items() if n == name or n.startswith(name + ".")]
        rows.append({"layer": name, "shape": tuple(mods_b[name].weight.shape), "rank": k,
                     "params": sum(p.numel() for p in mods_b[name].parameters()),
                     "params_after": sum(p.numel() for p in mods_a[name].parameters()),
                     "macs": mb.get(name, 0), "macs_after": sum(sub)})
    rows.append({"layer": "Total", "shape": "", "rank": "", "params": pb.params,
                 "params_after": pa.params, "macs": pb.macs, "macs_after": pa.macs})
    return rows


def format_report(rows: list[dict]) -> str:
    from cnnlab.table import render

    body = [[r["layer"], "x".join(map(str, r["shape"])) if r["shape"] else "", r["rank"],
             f"{r['params']:,}", f"{r['params_after']:,}",
             f"{r['params'] / max(r['params_after'], 1):.1f}x", f"{r['macs']:,}",
             f"{r['macs_after']:,}"] for r in rows]
    return render(body, ["layer", "weight", "rank", "params", "→ params", "ratio",
                         "mult-adds", "→ mult-adds"], right={2, 3, 4, 5, 6, 7})


__all__ = ["LowRankLinear", "SpatialLowRankConv", "compression_for_size", "discarded_norm",
           "factorize", "factorize_conv", "factorize_linear", "format_report", "layer_report",
           "rank_for", "unfold_kernel"]
