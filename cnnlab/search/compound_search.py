"""EfficientNet's scaling search (Tan & Le 2019, Sec. 3.3 and 4): step 1, a small grid over
α, β, γ with α·β²·γ² ≈ 2 (α, β, γ ≥ 1) around a B0-shaped baseline at φ = 1, each candidate
trained briefly and scored; step 2, the winner scaled by φ against one-dimensional scaling
(depth, width or resolution alone) at equal mult-adds (Fig. 3: compound beats 1-D).

Scores: ``"budget"`` — accuracy when the candidate's mult-adds fit the budget, else 0;
``"reward"`` — the multi-objective reward of step 0 (MnasNet, Tan et al. 2019, which built
B0): ACC(m) · (FLOPS(m)/T)^w with w = −0.07. Mult-adds come from :func:`cnnlab.profile`.
Training is the caller's (a function of the config), so any trainer and data fit.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass, replace

import torch

from cnnlab.models.base import check_arg
from cnnlab.models.efficientnet import EfficientNet, EfficientNetConfig, scale

REWARD_W = -0.07  # Sec. 4 (MnasNet's soft constraint)


@dataclass(frozen=True)
class Baseline:
    """A B0-shaped network small enough for 8×8-28×28 digits: B0's stages with widths ×
    ``width`` and repeats ×``depth`` (rounded up) at ``resolution`` pixels."""

    width: float = 0.25
    depth: float = 0.5
    resolution: int = 16
    num_classes: int = 10
    in_chans: int = 1

    def config(self, w: float = 1.0, d: float = 1.0, r: float = 1.0) -> EfficientNetConfig:
        """The baseline scaled by width ``w``, depth ``d`` and resolution ``r``."""
        return scale(self.width * w, self.depth * d, max(1, round(self.resolution * r)),
                     dropout=0.0)

    def build(self, config: EfficientNetConfig) -> EfficientNet:
        return EfficientNet(config, num_classes=self.num_classes, in_chans=self.in_chans,
                            drop_path_rate=0.0)

    def macs(self, config: EfficientNetConfig) -> int:
        # the bisections of match_macs meet the same layers many times
        return _macs(self, layers(config))


def layers(config: EfficientNetConfig) -> EfficientNetConfig:
    """``config`` without its multipliers: equal for configs that build the same layers
    (repeats and channels are rounded from the multipliers)."""
    return replace(config, width=1.0, depth=1.0)


@functools.lru_cache(maxsize=4096)
def _macs(base: Baseline, config: EfficientNetConfig) -> int:
    from cnnlab.profile import profile, skip_init

    with torch.device("meta"), skip_init():
        model = base.build(config)
    return profile(model, (base.in_chans, config.resolution, config.resolution)).macs


def reward(accuracy: float, macs: float, target: float, w: float = REWARD_W) -> float:
    """ACC(m) · (FLOPS(m)/T)^w (the deck's step 0)."""
    check_arg(target > 0 and macs > 0, "mult-adds and the target must be positive")
    return accuracy * (macs / target) ** w


def coefficient_grid(alphas=(1.0, 1.1, 1.2, 1.3, 1.4, 2.0), betas=(1.0, 1.05, 1.1, 1.15, 1.2,
                     2 ** 0.5), target: float = 2.0) -> list[tuple[float, float, float]]:
    """(α, β, γ) with α·β²·γ² = ``target`` exactly: γ solved from each (α, β), kept when
    γ ≥ 1 (Eq. 3's constraint)."""
    check_arg(target >= 1, f"the cost target must be >= 1, got {target}")
    out = []
    for a in alphas:
        for b in betas:
            check_arg(a >= 1 and b >= 1, f"alpha and beta must be >= 1, got {a}, {b}")
            g2 = target / (a * b * b)
            if g2 >= 1 - 1e-9:
                out.append((a, b, round(math.sqrt(max(g2, 1.0)), 4)))
    return out


OBJECTIVES = ("budget", "reward")


@dataclass
class Candidate:
    alpha: float
    beta: float
    gamma: float
    macs: int
    accuracy: float          # mean over seeds
    score: float
    accuracies: tuple[float, ...] = ()


def check_objective(objective: str) -> None:
    check_arg(objective in OBJECTIVES, f"unknown objective {objective!r}; choose "
                                       f"{' or '.join(OBJECTIVES)}")


def default_budget(base: Baseline) -> float:
    """2.2× the baseline's mult-adds: a little over the 2^φ (φ = 1) the constraint aims at,
    as rounding channels to 8 and repeats up adds some."""
    return 2.2 * base.macs(base.config())


def grid_search(base: Baseline, train_fn: Callable[..., float], grid=None,
                budget: float | None = None, objective: str = "budget",
                w: float = REWARD_W, seeds=None) -> list[Candidate]:
    """Step 1 at φ = 1: train each (α, β, γ) candidate with ``train_fn(config) -> accuracy``
    (or ``train_fn(config, seed)`` once per seed of ``seeds``, scored on the mean) and score
    it; best first. ``budget`` (mult-adds; default :func:`default_budget`) is the hard limit
    for ``"budget"`` and T for ``"reward"``."""
    check_objective(objective)
    grid = grid or coefficient_grid()
    budget = budget or default_budget(base)
    check_arg(budget > 0, f"the mult-add budget must be positive, got {budget}")
    out = []
    for a, b, g in grid:
        cfg = base.config(w=b, d=a, r=g)
        macs = base.macs(cfg)
        accs = tuple(float(train_fn(cfg)) for _ in (0,)) if seeds is None else \
            tuple(float(train_fn(cfg, s)) for s in seeds)
        acc = sum(accs) / len(accs)
        s = reward(acc, macs, budget, w) if objective == "reward" else \
            (acc if macs <= budget else 0.0)
        out.append(Candidate(a, b, g, macs, acc, s, accs))
    return sorted(out, key=lambda c: -c.score)


def match_macs(base: Baseline, target: float, dim: str, lo: float = 1.0, hi: float = 8.0,
               steps: int = 16) -> tuple[float, EfficientNetConfig, int]:
    """Scale one dimension (``"depth"``, ``"width"`` or ``"resolution"``) alone to the largest
    multiplier whose network has at most ``target`` mult-adds (bisection; counts never fall
    as a multiplier grows)."""
    check_arg(dim in ("depth", "width", "resolution"), f"unknown dimension {dim!r}")

    def cfg(m):
        return base.config(**{{"depth": "d", "width": "w", "resolution": "r"}[dim]: m})

    check_arg(base.macs(cfg(lo)) <= target, f"target {target:,.0f} is below the baseline")
    for _ in range(steps):
        mid = (lo + hi) / 2
        if base.macs(cfg(mid)) <= target:
            lo = mid
        else:
            hi = mid
    c = cfg(lo)
    return lo, c, base.macs(c)


def compound(base: Baseline, phi: float, alpha: float, beta: float, gamma: float
             ) -> EfficientNetConfig:
    """Eq. 3: depth α^φ, width β^φ, resolution γ^φ."""
    return base.config(w=beta ** phi, d=alpha ** phi, r=gamma ** phi)
