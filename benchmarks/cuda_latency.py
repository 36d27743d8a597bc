"""GPU latency under each way of running a model: eager, channels-last, bf16, a replayed CUDA
graph, and torch.compile (default and reduce-overhead modes).

At batch 1 and 8 a GPU forward pass of these models is bound by kernel launches and Python
dispatch rather than arithmetic (benchmarks/README.md, "On a lent GPU machine": ResNet-18
with 12x ShuffleNet V2's mult-adds runs 2.5x faster). This script asks how much of that
overhead each remedy removes. For each model and batch the configurations are timed in turns
in one run (``cnnlab.deploy.bench.alternate``), as medians and as speed-ups over eager fp32.

    python benchmarks/cuda_latency.py [MODEL ...] [--batches 1,32] [--compile]

Needs a CUDA device (exit 2 without one). ``--compile`` adds the two torch.compile modes,
which take tens of seconds per model and batch to build.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

MODELS = ["resnet18", "resnet50", "mobilenet_v2", "shufflenet_v2_x1_0", "efficientnet_b0"]
CONFIGS = {
    "eager": {},
    "channels_last": {"channels_last": True},
    "bf16+cl": {"dtype": "bf16", "channels_last": True},
    "graph": {"cuda_graph": True},
    "bf16+cl+graph": {"dtype": "bf16", "channels_last": True, "cuda_graph": True},
}
COMPILED = {
    "compile": {"compile_mode": "default"},
    "compile(ro)": {"compile_mode": "reduce-overhead"},
    "bf16+cl+compile(ro)": {"dtype": "bf16", "channels_last": True,
                            "compile_mode": "reduce-overhead"},
}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("models", nargs="*", default=MODELS)
    ap.add_argument("--batches", default="1,32")
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--compile", action="store_true", help="add the torch.compile modes")
    args = ap.parse_args(argv)
    import torch

    if not torch.cuda.is_available():
        print("cuda_latency.py: PyTorch sees no CUDA device here", file=sys.stderr)
        return 2
    from cnnlab.deploy.bench import alternate, make_runner
    from cnnlab.models import create_model, model_info

    configs = {**CONFIGS, **(COMPILED if args.compile else {})}
    print(f"{torch.cuda.get_device_name()}, torch {torch.__version__}, median ms of "
          f"{args.runs} runs in turns; speed-up over eager fp32 in brackets")
    print(f"{'model':20} {'batch':>5} " + " ".join(f"{c:>20}" for c in configs))
    for name in args.models:
        size = tuple(model_info(name).input_size)
        for b in (int(x) for x in args.batches.split(",")):
            runners, built = {}, {}
            for c, opts in configs.items():
                t0 = time.perf_counter()
                torch.manual_seed(0)
                runners[c], _ = make_runner(create_model(name), size, b, device="cuda",
                                            **opts)
                runners[c]()  # torch.compile builds on the first call
                torch.cuda.synchronize()
                built[c] = time.perf_counter() - t0
            times = alternate(runners, warmup=args.warmup, runs=args.runs,
                              sync=torch.cuda.synchronize)
            ms = {c: 1000 * statistics.median(t) for c, t in times.items()}
            cells = [f"{ms[c]:8.3f} ({ms['eager'] / ms[c]:4.1f}x)" for c in configs]
            print(f"{name:20} {b:5d} " + " ".join(f"{x:>20}" for x in cells), flush=True)
            slow = {c: s for c, s in built.items() if s > 5}
            if slow:
                print("    build s: " + ", ".join(f"{c} {s:.0f}" for c, s in slow.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
