"""ShuffleNet V2 Table 8's layout on this CPU: mult-adds, memory access cost (MAC), params
and measured batch-1 latency of the efficient families at 224x224 and a larger input, one
thread, models timed in turns; Kendall's tau between mult-adds and latency per input size
(Ma et al. 2018, Sec. 2: FLOPs are an indirect metric of speed).

    PYTHONPATH=. python benchmarks/table8.py [--runs 10] [--sizes 224,320] [--fuse-bn]
        [--device cuda --batch 8]      # the paper's GPU column: batch 8 (a 1080Ti there)
"""

from __future__ import annotations

import argparse

import torch

from cnnlab.deploy.bench import table8

MODELS = ["shufflenet_v2_x1_0", "shufflenet_v1_g3", "mobilenet_v2", "mobilenet_v1",
          "squeezenet1_1", "efficientnet_b0", "nasnet_a_mobile", "resnet18"]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--sizes", default="224,320")
    ap.add_argument("--fuse-bn", action="store_true")
    ap.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    ap.add_argument("--batch", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(1)
    sizes = [(3, int(s), int(s)) for s in args.sizes.split(",")]
    t = table8(MODELS, sizes, threads=1, runs=args.runs, fuse_bn=args.fuse_bn,
               device=args.device, batch=args.batch)
    print(f"config {t['config']} on {t['device']}, 1 CPU thread, batch {t['batch']}, median "
          f"of {args.runs} (p10-p90)")
    print(f"{'model':20} {'input':>5} {'MFLOPs':>8} {'MAC (M)':>8} {'params M':>8} "
          f"{'ms':>8} {'p10-p90':>15}")
    for r in t["rows"]:
        print(f"{r['model']:20} {r['input_size'][-1]:5d} {r['macs'] / 1e6:8.0f} "
              f"{r['memory_access'] / 1e6:8.1f} {r['params'] / 1e6:8.2f} "
              f"{r['latency_ms']:8.1f} {r['p10_ms']:7.1f}-{r['p90_ms']:<7.1f}")
    for size, tau in t["kendall_tau"].items():
        print(f"Kendall tau(mult-adds, latency) at {size}: {tau:+.2f}")


if __name__ == "__main__":
    main()
