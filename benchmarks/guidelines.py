"""ShuffleNet V2's G1 and G2 micro-benchmarks on this CPU (Ma et al. 2018, Tables 1 and 2 in
kind): 1×1 convolutions at fixed mult-adds, varying the c1:c2 ratio (G1) and the number of
groups (G2). Contenders alternate within each round; the best of the rounds is kept.

    python benchmarks/guidelines.py [--rounds 5] [--side 56] [--threads 1]
"""

from __future__ import annotations

import argparse
import time

import torch
from torch import nn

from cnnlab.profile import profile
from cnnlab.profile.guidelines import g1_bound, g2_mac

G1 = [(128, 128), (90, 180), (52, 312), (36, 432)]          # Table 1: 1:1, 1:2, 1:6, 1:12
G2 = [(1, 128), (2, 180), (4, 256), (8, 360)]               # Table 2: groups, c1 = c2


def _time(conv, x, reps=10) -> float:
    with torch.inference_mode():
        conv(x)
        t0 = time.perf_counter()
        for _ in range(reps):
            conv(x)
        return (time.perf_counter() - t0) / reps


def bench(cases, side, rounds):
    best = [float("inf")] * len(cases)
    mods = [(nn.Conv2d(c1, c2, 1, groups=g, bias=False).eval(), torch.randn(1, c1, side, side))
            for c1, c2, g in cases]
    for _ in range(rounds):
        for i, (m, x) in enumerate(mods):
            best[i] = min(best[i], _time(m, x))
    return best


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--side", type=int, default=56)
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    print(f"G1: 1x1 conv at fixed mult-adds, {a.side}x{a.side}, batch 1, {a.threads} thread(s)")
    cases = [(c1, c2, 1) for c1, c2 in G1]
    times = bench(cases, a.side, a.rounds)
    print("c1:c2      c1   c2  mult-adds   MAC/bound  time ms  time ratio")
    for (c1, c2, _), t in zip(cases, times):
        p = profile(nn.Conv2d(c1, c2, 1, bias=False), (c1, a.side, a.side))
        ratio = p.memory_access / g1_bound(a.side, a.side, p.macs)
        print(f"1:{c2 / c1:<5.1f} {c1:4d} {c2:4d}  {p.macs:10,d}  {ratio:9.3f}  {1e3 * t:7.2f}"
              f"  {t / times[0]:.2f}x")
    print(f"\nG2: 1x1 group conv at fixed mult-adds (c1 = c2 = c), {a.side}x{a.side}")
    cases = [(c, c, g) for g, c in G2]
    times = bench(cases, a.side, a.rounds)
    print(" g    c  mult-adds        MAC  formula  time ms  time ratio")
    for (c, _, g), t in zip(cases, times):
        p = profile(nn.Conv2d(c, c, 1, groups=g, bias=False), (c, a.side, a.side))
        print(f"{g:2d} {c:4d}  {p.macs:10,d}  {p.memory_access:9,d}  "
              f"{'ok' if p.memory_access == g2_mac(a.side, a.side, c, g, p.macs) else 'off':>7}"
              f"  {1e3 * t:7.2f}  {t / times[0]:.2f}x")


if __name__ == "__main__":
    main()
