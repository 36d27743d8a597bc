"""XNOR + popcount convolution (cnnlab's packed kernel) vs PyTorch's float convolution.

    python benchmarks/binary_conv.py [--rounds 7] [--threads 1,2]

3×3 convolutions, stride 1, zero padding 1, batch 1, C → C channels for C ∈ {64, 128, 256,
512} at 56, 28 and 14 px (ResNet's stages). Contenders alternate within each round; the
figure is the fastest of the rounds; with 1 thread it is the thread's CPU time, with more
the wall-clock time (the machine is shared: multi-thread figures carry other jobs' load).
``xnor kernel`` is the packed convolution alone (packing the input's signs + XNOR/popcount,
integer counts out); ``xnor layer`` is the whole inference layer
(:class:`cnnlab.compress.binary_kernel.PackedConv2d`: BN, K by the box filter, packing,
counts, ·α·K). Ratios are float time / xnor time. Weight
memory: fp32 vs 1 bit per weight + one fp32 α per filter. Goal: ≥ 5× over float for ≥ 256
channels.

The paper's 58× (Rastegari et al. 2016, Sec. 3.2) is an operation count: c·N_W·N_I
multiply-adds against c·N_W·N_I/64 binary operations + N_I scalings, assuming a 64-bit
XNOR+popcount costs what one multiply-add does. On a CPU a float multiply-add is 16-way SIMD
FMA (AVX2, 2 units), and without AVX-512 VPOPCNTDQ a 256-bit XNOR + popcount + accumulate is
about 8 vector instructions (nibble lookup), so the ideal is nearer
256·(vector instructions per cycle / 8)/(FMA lanes per cycle); packing the input, the border
taps and memory traffic come on top. ``--simd`` forces a popcount path of the kernel
(``scalar``, ``avx2``, ``avx512``; default: the best this CPU has).
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import torch
import torch.nn.functional as F

from cnnlab.compress.binary import BinaryConv2d
from cnnlab.compress.binary_kernel import HAVE_KERNEL, PackedConv2d, pack_weight, xnor_counts
from cnnlab.table import render

CHANNELS = (64, 128, 256, 512)
SIZES = (56, 28, 14)


def timed(fn, threads: int) -> float:
    """Seconds of the calling thread's CPU time with one thread (everything runs on it, so
    other jobs on the shared machine do not count), wall-clock time with more."""
    clock = time.thread_time if threads == 1 else time.perf_counter
    t = clock()
    fn()
    return clock() - t


def bench(c: int, px: int, threads: int, rounds: int) -> dict:
    torch.manual_seed(0)
    x = torch.randn(1, c, px, px)
    w = torch.randn(c, c, 3, 3)
    wbits = pack_weight(w)
    layer = BinaryConv2d(c, c, 3, padding=1, bias=False, mode="xnor")
    layer.weight.data.copy_(w)
    packed = PackedConv2d(layer.eval())
    packed.threads = threads
    runs = {
        "float": lambda: F.conv2d(x, w, padding=1),
        "kernel": lambda: xnor_counts(x, wbits, c, (3, 3), (1, 1), (1, 1), threads=threads),
        "layer": lambda: packed(x),
    }
    best = {k: float("inf") for k in runs}
    with torch.no_grad():
        for fn in runs.values():  # warm-up
            fn()
        for _ in range(rounds):
            for k, fn in runs.items():
                best[k] = min(best[k], timed(fn, threads))
    return best


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--simd", choices=["scalar", "avx2", "avx512"])
    args = ap.parse_args()
    if args.simd:
        os.environ["CNNLAB_BINCONV_SIMD"] = args.simd
    if not HAVE_KERNEL:
        print("the C kernel is not built (pip install -e .); nothing to measure")
        return 1
    rows = []
    for threads in (int(t) for t in args.threads.split(",")):
        torch.set_num_threads(threads)
        for c in CHANNELS:
            for px in SIZES:
                b = bench(c, px, threads, args.rounds)
                macs = c * c * 9 * px * px
                rows.append([threads, c, px, f"{macs / 1e6:.0f}", f"{b['float'] * 1e3:.2f}",
                             f"{b['kernel'] * 1e3:.2f}", f"{b['layer'] * 1e3:.2f}",
                             f"{b['float'] / b['kernel']:.1f}x",
                             f"{b['float'] / b['layer']:.1f}x"])
    from cnnlab.compress import _binconv

    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}, "
          f"kernel popcount {_binconv.simd()} (CPU has {', '.join(_binconv.simd_paths())}), "
          f"OpenMP {_binconv.openmp()}, load average {os.getloadavg()[0]:.1f}")
    print(render(rows, ["threads", "C", "px", "M MACs", "float ms", "xnor kernel ms",
                        "xnor layer ms", "kernel speed-up", "layer speed-up"],
                 right=set(range(9))))
    mem = [[c, f"{c * c * 9 * 4 / 1024:.1f}", f"{(c * c * 9 / 8 + c * 4) / 1024:.1f}",
            f"{c * c * 9 * 4 / (c * c * 9 / 8 + c * 4):.1f}x"] for c in CHANNELS]
    print("\nWeight memory of one 3x3 C -> C convolution")
    print(render(mem, ["C", "fp32 KiB", "1 bit + α KiB", "smaller"], right={0, 1, 2, 3}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
