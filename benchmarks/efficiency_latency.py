"""Equal FLOPs are not equal speed (ShuffleNet V2, Ma et al. 2018, Sec. 2): mult-adds, memory
access cost, parameters and measured CPU latency of the efficient networks side by side.

    python benchmarks/efficiency_latency.py [--quick] [--threads 1] [--size 224] [--native]
                                            [--models a,b,...] [--margin 0.1] [--json]

Every model registered at run time among SqueezeNet, MobileNet v1/v2, ShuffleNet v1/V2,
EfficientNet-B0, Xception and NASNet-A mobile, with ResNet-50 and VGG-16 as references, is
profiled shape-only (mult-adds, ShuffleNet V2's MAC, element-wise ops) and timed on the CPU
(median forward pass, eval mode, no grad) at batch 1 and batch 32. All models run at one input
size (224 px) unless ``--native`` gives each its paper's. The closing lines name every pair
where the model with fewer mult-adds is slower by more than ``--margin``.

Latency is single-threaded by default, as ShuffleNet's Table 8 (one ARM core), and because
the machines this runs on are shared: thread contention would swamp the differences.
"""

from __future__ import annotations

import argparse
import json
import time

import torch

import cnnlab
from cnnlab.profile.profiler import measure_latency
from cnnlab.table import human, render

CANDIDATES = [
    "squeezenet1_0", "squeezenet1_1", "mobilenet_v1", "mobilenet_v2",
    "shufflenet_v1_g3", "shufflenet_v1_g8", "shufflenet_v2_x0_5", "shufflenet_v2_x1_0",
    "shufflenet_v2_x1_5", "shufflenet_v2_x2_0", "efficientnet_b0", "xception",
    "nasnet_a_mobile", "resnet50", "vgg16",
]


def _ranks(values: list[float]) -> list[int]:
    order = sorted(range(len(values)), key=lambda i: values[i])
    ranks = [0] * len(values)
    for r, i in enumerate(order, 1):
        ranks[i] = r
    return ranks


def _inversions(results: list[dict], key: str, margin: float) -> list[tuple[dict, dict]]:
    """Pairs (a, b): a has fewer mult-adds than b but is slower by more than ``margin``."""
    out = []
    for a in results:
        for b in results:
            if a["macs"] < b["macs"] and a[key] > b[key] * (1 + margin):
                out.append((a, b))
    return sorted(out, key=lambda p: -(p[0][key] / p[1][key]))


def run(names, size, native, quick, margin):
    # (runs, warmup) at batch 1 and 32; batch 1 has warmed the kernels before batch 32
    (r1, w1), (r32, w32) = ((5, 2), (1, 0)) if quick else ((20, 3), (5, 1))
    results = []
    for name in names:
        info = cnnlab.model_info(name)
        input_size = info.input_size if native else (info.input_size[0], size, size)
        t0 = time.perf_counter()
        try:
            model = cnnlab.create_model(name).eval()
            p = cnnlab.profile(model, input_size)
            ms1 = measure_latency(model, input_size, batch_size=1, runs=r1, warmup=w1)
            ms32 = measure_latency(model, input_size, batch_size=32, runs=r32, warmup=w32)
        except Exception as e:  # a family still being written must not stop the others
            print(f"{name}: skipped, {type(e).__name__}: {str(e)[:120]}")
            continue
        results.append(dict(
            model=name, input=input_size[-1], params=p.params, macs=p.macs,
            memory_access=p.memory_access, other_ops=sum(p.other_ops.values()),
            ms_b1=ms1, ms_b32=ms32, img_s_b32=32_000 / ms32,
            seconds=time.perf_counter() - t0))
    return results


def report(results, margin):
    r_flops = _ranks([r["macs"] for r in results])
    r_b1 = _ranks([r["ms_b1"] for r in results])
    r_b32 = _ranks([r["ms_b32"] for r in results])
    rows = []
    for r, rf, s1, s32 in zip(results, r_flops, r_b1, r_b32):
        mark = "" if rf == s1 == s32 else "<>"
        rows.append([r["model"], r["input"], human(r["params"]), human(r["macs"]),
                     human(r["memory_access"]), round(r["memory_access"] / r["macs"], 3),
                     human(r["other_ops"]), round(r["ms_b1"], 2), round(r["ms_b32"], 1),
                     round(r["img_s_b32"], 1), rf, s1, s32, mark])
    header = ["model", "px", "params", "mult-adds", "MAC", "MAC/madd", "elem ops", "ms b1",
              "ms b32", "img/s b32", "FLOPs rk", "b1 rk", "b32 rk", ""]
    lines = [render(rows, header, right=set(range(1, 13)))]
    lines.append("\nMAC = ShuffleNet V2's memory access cost (elements read + written, batch 1); "
                 "ranks: 1 = fewest mult-adds / fastest; <> = speed rank differs from FLOPs "
                 "rank.")
    for key, label in (("ms_b1", "batch 1"), ("ms_b32", "batch 32")):
        inv = _inversions(results, key, margin)
        lines.append(f"\n{label}: {len(inv)} pairs where fewer mult-adds run slower "
                     f"(by > {margin:.0%}):")
        for a, b in inv:
            lines.append(f"  {a['model']} ({human(a['macs'])}, {a[key]:.2f} ms) is "
                         f"{a[key] / b[key]:.2f}x slower than {b['model']} "
                         f"({human(b['macs'])}, {b[key]:.2f} ms)")
        slower = sorted({a["model"] for a, _ in inv})
        if slower:
            lines.append(f"  speed ranking disagrees with FLOPs ranking for: {', '.join(slower)}")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer timed runs (5 at batch 1, "
                    "1 at batch 32)")
    ap.add_argument("--threads", type=int, default=1, help="CPU threads (default 1)")
    ap.add_argument("--size", type=int, default=224, help="input side for every model")
    ap.add_argument("--native", action="store_true", help="each model at its paper's input")
    ap.add_argument("--models", help="comma-separated names instead of the default set")
    ap.add_argument("--margin", type=float, default=0.10,
                    help="latency difference below which two models count as equally fast")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    if args.threads < 1 or args.size < 1 or args.margin < 0:
        ap.error("--threads and --size must be positive, --margin non-negative")

    registered = set(cnnlab.list_models())
    wanted = args.models.split(",") if args.models else CANDIDATES
    unknown = [n for n in wanted if n not in registered]
    if args.models and unknown:
        ap.error(f"unknown model(s): {', '.join(unknown)}")
    names = [n for n in wanted if n in registered]
    if not args.json and unknown:
        print(f"not registered yet, skipped: {', '.join(unknown)}")
    torch.set_num_threads(args.threads)
    torch.set_flush_denormal(True)  # tiny activations must not hit the slow denormal path
    torch.manual_seed(0)
    t0 = time.perf_counter()
    results = run(names, args.size, args.native, args.quick, args.margin)
    if args.json:
        print(json.dumps(results))
        return
    print(report(results, args.margin))
    print(f"\n{len(results)} models, {args.threads} thread(s), torch {torch.__version__}, "
          f"{time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
