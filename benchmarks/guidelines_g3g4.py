"""ShuffleNet V2's G3 and G4 micro-benchmarks on this CPU (Ma et al. 2018, Tables 3 and 4 in
kind; deck 004:627-635). Contenders alternate within each round; the best round is kept.

G3, fragmentation: a block of 1×1 convolutions, c → c channels, repeated 10 times, at (about)
the same mult-adds: one conv (1-fragment), 2 or 4 convs in series with narrower middles, or
2 or 4 parallel branches of c/2 or c/4 outputs, concatenated. The paper: "fragmentation
reduces the speed significantly on GPU, e.g. the 4-fragment structure is 3x slower than
1-fragment; on ARM the speed reduction is relatively small" (Table 3).

G4, element-wise operations: a ResNet bottleneck-style unit (1×1 → 3×3 → 1×1 convs with
bias, i.e. batch norm folded; all c channels), repeated 10 times, with ReLU and the shortcut
add each on or off. The paper: "around 20 % speedup is obtained on both GPU and ARM, after
ReLU and shortcut are removed" (Table 4). The MAC share column is the profiler's memory
access of the element-wise ops (ReLU, add) over the whole unit's.

    python benchmarks/guidelines_g3g4.py [--rounds 5] [--side 28] [--threads 1]
"""

from __future__ import annotations

import argparse
import math
import time

import torch
from torch import nn

from cnnlab.profile import profile

REPEATS = 10


class Fragments(nn.Module):
    """``n`` 1×1 convolutions c → c in series (``parallel=False``; the middle widths chosen
    so that the mult-adds stay c²·hw) or ``n`` parallel c → c/n branches concatenated."""

    def __init__(self, c: int, n: int, parallel: bool):
        super().__init__()
        self.parallel = parallel
        if parallel:
            self.convs = nn.ModuleList(nn.Conv2d(c, c // n, 1, bias=False) for _ in range(n))
        else:
            m = series_width(c, n)
            widths = [c] + [m] * (n - 1) + [c]
            self.convs = nn.ModuleList(nn.Conv2d(a, b, 1, bias=False)
                                       for a, b in zip(widths, widths[1:]))

    def forward(self, x):
        if self.parallel:
            return torch.cat([conv(x) for conv in self.convs], 1)
        for conv in self.convs:
            x = conv(x)
        return x


def series_width(c: int, n: int) -> int:
    """The middle width m of n 1×1 convs c → m → … → m → c with 2cm + (n − 2)m² = c²."""
    if n == 1:
        return c
    if n == 2:
        return round(c / 2)
    a, b = n - 2, 2 * c
    return round((-b + math.sqrt(b * b + 4 * a * c * c)) / (2 * a))


class Bottleneck(nn.Module):
    """1×1 → 3×3 → 1×1 (c channels each, biases = folded batch norm), ReLU after each conv
    (``relu``) and the identity added before the last ReLU (``shortcut``)."""

    def __init__(self, c: int, relu: bool, shortcut: bool):
        super().__init__()
        self.convs = nn.ModuleList([nn.Conv2d(c, c, 1), nn.Conv2d(c, c, 3, padding=1),
                                    nn.Conv2d(c, c, 1)])
        self.relu, self.shortcut = relu, shortcut

    def forward(self, x):
        y = x
        for i, conv in enumerate(self.convs):
            y = conv(y)
            if i == 2 and self.shortcut:
                y = y + x
            if self.relu:
                y = torch.relu(y)
        return y


def _time(m, x, reps) -> float:
    with torch.inference_mode():
        t0 = time.perf_counter()
        for _ in range(reps):
            m(x)
        return (time.perf_counter() - t0) / reps


def bench(models, x, rounds, reps) -> list[float]:
    with torch.inference_mode():
        for m in models:
            m(x)
    best = [float("inf")] * len(models)
    for _ in range(rounds):
        for i, m in enumerate(models):
            best[i] = min(best[i], _time(m, x, reps))
    return best


G3 = [("1-fragment", 1, False), ("2-fragment-series", 2, False),
      ("4-fragment-series", 4, False), ("2-fragment-parallel", 2, True),
      ("4-fragment-parallel", 4, True)]
G4 = [("ReLU + shortcut", True, True), ("no ReLU", False, True), ("no shortcut", True, False),
      ("neither", False, False)]


def elementwise_share(prof) -> float:
    ew = sum(r.memory_access for r in prof.rows if r.kind in ("activation", "elementwise"))
    return ew / max(prof.memory_access, 1)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--side", type=int, default=28)
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    print(f"G3: blocks of 1x1 convs x{REPEATS}, c -> c, {a.side}x{a.side}, batch 1, "
          f"{a.threads} thread(s); ratio = time / 1-fragment's")
    print(f"{'c':>4}  {'structure':20s} {'mult-adds':>12} {'MAC':>11} {'time ms':>8} "
          f"{'ratio':>6}")
    for c in (64, 128, 256):
        x = torch.randn(1, c, a.side, a.side)
        nets = [nn.Sequential(*[Fragments(c, n, par) for _ in range(REPEATS)]).eval()
                for _, n, par in G3]
        times = bench(nets, x, a.rounds, a.reps)
        for (name, *_), net, t in zip(G3, nets, times):
            p = profile(net, (c, a.side, a.side))
            print(f"{c:4d}  {name:20s} {p.macs:12,d} {p.memory_access:11,d} {1e3 * t:8.2f} "
                  f"{t / times[0]:5.2f}x")
    side = a.side
    print(f"\nG4: bottleneck units (1x1, 3x3, 1x1; c channels) x{REPEATS}, {side}x{side}, "
          f"batch 1; ratio = time / ReLU + shortcut's")
    print(f"{'c':>4}  {'unit':16s} {'mult-adds':>12} {'elementwise MAC share':>22} "
          f"{'time ms':>8} {'ratio':>6}")
    for c in (32, 64, 128):
        x = torch.randn(1, c, side, side)
        nets = [nn.Sequential(*[Bottleneck(c, r, s) for _ in range(REPEATS)]).eval()
                for _, r, s in G4]
        times = bench(nets, x, a.rounds, a.reps)
        for (name, *_), net, t in zip(G4, nets, times):
            p = profile(net, (c, side, side))
            print(f"{c:4d}  {name:16s} {p.macs:12,d} {100 * elementwise_share(p):21.1f}% "
                  f"{1e3 * t:8.2f} {t / times[0]:5.2f}x")


if __name__ == "__main__":
    main()
