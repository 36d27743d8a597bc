"""Compound-scaling search (Tan & Le 2019, Sec. 3.3): the largest compound coefficient φ whose
EfficientNet fits a mult-add budget. The network and Eq. 3 live in
:mod:`cnnlab.models.efficientnet`; counting is the profiler's.
"""

from __future__ import annotations

import torch

from cnnlab.models.base import check_arg
from cnnlab.models.efficientnet import (
    ALPHA,
    BETA,
    GAMMA,
    EfficientNet,
    EfficientNetConfig,
    compound_scaling,
)
from cnnlab.profile import profile, skip_init


def config_macs(config: EfficientNetConfig, num_classes: int = 1000) -> int:
    """Mult-adds of the network ``config`` describes at its resolution (profiled on meta)."""
    with torch.device("meta"), skip_init():
        model = EfficientNet(config, num_classes=num_classes)
    return profile(model).macs


def phi_for_budget(max_macs: float, alpha: float = ALPHA, beta: float = BETA,
                   gamma: float = GAMMA, lo: float = -4.0, hi: float = 10.0,
                   tol: float = 1e-3) -> tuple[float, EfficientNetConfig, int]:
    """Largest φ in [lo, hi] (to ``tol``) whose compound-scaled network has at most
    ``max_macs`` mult-adds: ``(phi, config, macs)``.

    Mult-adds never decrease with φ (rounding to 8 and rounding up are monotone), so this
    bisects on profiled counts.
    """
    check_arg(isinstance(max_macs, (int, float)) and max_macs > 0,
              f"the mult-add budget must be a positive number, got {max_macs!r}")
    check_arg(lo < hi and tol > 0, f"need lo < hi and tol > 0, got {lo}, {hi}, {tol}")

    def macs(phi):
        return config_macs(compound_scaling(phi, alpha, beta, gamma))

    lo_macs = macs(lo)
    check_arg(lo_macs <= max_macs, f"budget {max_macs:,.0f} is below the smallest network "
                                   f"searched (phi={lo}: {lo_macs:,} mult-adds)")
    if macs(hi) <= max_macs:
        raise ValueError(f"budget {max_macs:,.0f} fits phi={hi}, the top of the search range")
    while hi - lo > tol:
        mid = (lo + hi) / 2
        m = macs(mid)
        lo, lo_macs, hi = (mid, m, hi) if m <= max_macs else (lo, lo_macs, mid)
    return lo, compound_scaling(lo, alpha, beta, gamma), lo_macs


