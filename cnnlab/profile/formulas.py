"""Closed-form costs from the decks, to check the profiler against and to reason with.

Howard et al. 2017 (MobileNets), Sec. 3.1: a standard convolution costs
D_K·D_K·M·N·D_F·D_F mult-adds, a depthwise separable one D_K·D_K·M·D_F·D_F + M·N·D_F·D_F,
a ratio of 1/N + 1/D_K² (a deck prints "-1/N": the sign is a typo).
"""

from __future__ import annotations


def conv_macs(dk: int, m: int, n: int, df: int, groups: int = 1) -> int:
    """Mult-adds of a D_K×D_K convolution, M→N channels, D_F×D_F output map."""
    return dk * dk * (m // groups) * n * df * df


def conv_params(dk: int, m: int, n: int, groups: int = 1, bias: bool = False) -> int:
    return dk * dk * (m // groups) * n + (n if bias else 0)


def depthwise_separable_macs(dk: int, m: int, n: int, df: int) -> int:
    """Depthwise D_K×D_K filter per input channel, then a 1×1 pointwise M→N (Eq. 5)."""
    return dk * dk * m * df * df + m * n * df * df


def depthwise_separable_params(dk: int, m: int, n: int) -> int:
    return dk * dk * m + m * n


def separable_ratio(dk: int, n: int) -> float:
    """Depthwise separable over standard cost: 1/N + 1/D_K² (MobileNets, Eq. 5 / Eq. 4)."""
    return 1 / n + 1 / dk**2


def width_resolution_macs(dk: int, m: int, n: int, df: int, alpha: float = 1.0,
                          rho: float = 1.0) -> float:
    """MobileNets Eq. 7: D_K·D_K·αM·ρD_F·ρD_F + αM·αN·ρD_F·ρD_F."""
    am, an, f = alpha * m, alpha * n, rho * df
    return dk * dk * am * f * f + am * an * f * f


def fc_macs(n_in: int, n_out: int) -> int:
    return n_in * n_out
