"""Our implementations against torchvision's and timm's, and our profiler against fvcore.

1. Latency: for each pair that ``tools/peer_parity.py`` proves to be the same network (the
   peer's weights load into ours and give the same outputs), batch-1 and batch-8 CPU latency,
   ours and theirs timed in turns in one run (random weights, eval mode, inference_mode), as
   the ratio theirs / ours (above 1: ours is faster) and the geometric mean of the ratios.
   Goal (issue 19): geometric mean >= 0.97 at batch 1 and at batch 8. ``--device cuda``
   times the same pairs on a GPU (synchronised after every call).
2. ``--profiler``: the time ``cnnlab.profile`` takes to count ten torchvision models against
   fvcore's ``FlopCountAnalysis`` on the same built model (fvcore traces with a real input:
   it cannot run on meta), and ours building the model on meta first. Goal (issue 19):
   >= 50x overall on built models, >= 25x including our build.

torchvision, timm and fvcore are never cnnlab dependencies: install them in a separate
environment (torchvision needs the torch build it was made for) with cnnlab's own
requirements, and run this script there:

    python -m venv /tmp/peers && /tmp/peers/bin/pip install torch torchvision timm fvcore \\
        numpy safetensors tqdm
    PYTHONPATH=. /tmp/peers/bin/python benchmarks/peers.py [MODEL ...] [--batches 1,8]
    PYTHONPATH=. /tmp/peers/bin/python benchmarks/peers.py --profiler

``--clock cpu`` times this process's CPU time instead of wall time (one thread): on a shared
machine it leaves out the time other processes held the cores. Without the peers it says so
and exits with code 2.
"""

from __future__ import annotations

import argparse
import importlib.util
import math
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.append(str(ROOT))  # for tools/; PYTHONPATH picks the cnnlab to test

from tools.peer_parity import PAIRS, peer_model  # noqa: E402  (the pairs proven equal)

# ten torchvision models for the profiler comparison (input 224, inception_v3 299)
PROFILED = ["alexnet", "vgg16", "googlenet", "inception_v3", "resnet18", "resnet50",
            "densenet121", "squeezenet1_1", "mobilenet_v2", "shufflenet_v2_x1_0"]
CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}


def compare(contenders: dict, args) -> dict[str, float]:
    """Median milliseconds per call of each contender, timed in turns."""
    import torch

    from cnnlab.deploy.bench import alternate

    sync = torch.cuda.synchronize if getattr(args, "device", "cpu") == "cuda" else (lambda: None)
    times = alternate(contenders, warmup=args.warmup, runs=args.runs, clock=CLOCKS[args.clock],
                      sync=sync)
    return {k: 1000 * statistics.median(v) for k, v in times.items()}


def geomean(xs) -> float:
    return math.exp(sum(math.log(x) for x in xs) / len(xs))


def forward(model, x, args=None):
    """One timed forward pass; ``--cuda-graph`` or ``--compile-mode`` applies to both
    contenders alike (through cnnlab's own bench runner)."""
    import torch

    if args is not None and (args.cuda_graph or args.compile_mode):
        from cnnlab.deploy.bench import compiled, cuda_graph_replay

        if args.compile_mode:
            model = compiled(model, args.compile_mode)
        if args.cuda_graph:
            return cuda_graph_replay(model, x)

    def run():
        with torch.inference_mode():
            model(x)

    return run


def latency(args) -> None:
    import torch

    import cnnlab

    batches = [int(b) for b in args.batches.split(",")]
    ratios = {b: [] for b in batches}
    how = ", CUDA graphs" if args.cuda_graph else ""
    how += f", torch.compile mode {args.compile_mode}" if args.compile_mode else ""
    print(f"device {args.device}{how}, {torch.get_num_threads()} CPU thread(s), median of "
          f"{args.runs} runs in turns")
    print(f"{'cnnlab':20} {'peer':30} {'px':>4} {'batch':>5} {'ours ms':>9} {'theirs ms':>9} "
          f"{'theirs/ours':>11}")
    for name, kwargs, release, lib, peer, peer_kwargs, size in PAIRS:
        if args.models and name not in args.models and peer not in args.models:
            continue
        if importlib.util.find_spec(lib) is None:
            print(f"{name:20} {lib + '.' + peer:30} (not installed)")
            continue
        torch.manual_seed(0)
        ours = cnnlab.create_model(name, release=release, **kwargs).eval().to(args.device)
        theirs = peer_model(lib, peer, peer_kwargs).eval().to(args.device)
        for b in batches:
            x = torch.randn(b, 3, size, size, device=args.device)
            ms = compare({"ours": forward(ours, x, args), "theirs": forward(theirs, x, args)},
                         args)
            r = ms["theirs"] / ms["ours"]
            ratios[b].append(r)
            print(f"{name:20} {lib + '.' + peer:30} {size:4d} {b:5d} {ms['ours']:9.2f} "
                  f"{ms['theirs']:9.2f} {r:10.2f}x", flush=True)
    for b, rs in ratios.items():
        if rs:
            print(f"batch {b}: geometric mean of theirs/ours over {len(rs)} pairs: "
                  f"{geomean(rs):.3f} (goal >= 0.97)")


def _fvcore_count(model, x) -> float:
    import fvcore.nn

    a = fvcore.nn.FlopCountAnalysis(model, x)
    a.unsupported_ops_warnings(False)
    a.uncalled_modules_warnings(False)
    return a.total()


def profiler_speed(args) -> None:
    import torch
    import torchvision.models as tvm

    import cnnlab
    from cnnlab.profile import build_on_meta

    def build(name):
        extra = {"aux_logits": False, "init_weights": False} \
            if name in ("googlenet", "inception_v3") else {}
        return getattr(tvm, name)(weights=None, **extra).eval()

    totals = dict.fromkeys(("ours", "ours_build", "fvcore", "fvcore_build"), 0.0)
    print(f"{'torchvision model':20} {'ops':>5} {'mult-adds':>10} {'fvcore':>10} {'ours ms':>8} "
          f"{'+build':>8} {'fvcore ms':>9} {'+build':>8} {'built':>7} {'w/ ours':>8} "
          f"{'w/ both':>8}")
    for name in args.models or PROFILED:
        size = (3, 299, 299) if name == "inception_v3" else (3, 224, 224)
        model = build(name)
        x = torch.zeros(1, *size)
        prof = cnnlab.profile(model, size)
        flops = _fvcore_count(model, x)
        ms = compare({"ours": lambda m=model, s=size: cnnlab.profile(m, s),
                      "ours_build": lambda n=name, s=size: cnnlab.profile(
                          build_on_meta(build, n), s),
                      "fvcore": lambda m=model, x=x: _fvcore_count(m, x),
                      "fvcore_build": lambda n=name, x=x: _fvcore_count(build(n), x)}, args)
        for k in totals:
            totals[k] += ms[k]
        print(f"{name:20} {len(prof.rows):5d} {prof.macs / 1e9:9.2f}G {flops / 1e9:9.2f}G "
              f"{ms['ours']:8.2f} {ms['ours_build']:8.2f} {ms['fvcore']:9.1f} "
              f"{ms['fvcore_build']:8.1f} {ms['fvcore'] / ms['ours']:6.1f}x "
              f"{ms['fvcore'] / ms['ours_build']:7.1f}x "
              f"{ms['fvcore_build'] / ms['ours_build']:7.1f}x", flush=True)
    t = totals
    print(f"overall fvcore / ours: {t['fvcore'] / t['ours']:.1f}x counting built models (goal "
          f">= 50x); with the build (goal >= 25x): {t['fvcore'] / t['ours_build']:.1f}x when "
          f"only ours builds (on meta), {t['fvcore_build'] / t['ours_build']:.1f}x when fvcore "
          f"builds its CPU model too")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("models", nargs="*", help="subset (cnnlab or peer names; default: all)")
    ap.add_argument("--profiler", action="store_true", help="cnnlab.profile against fvcore")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--batches", default="1,8")
    ap.add_argument("--clock", choices=sorted(CLOCKS), default="wall")
    ap.add_argument("--device", choices=["cpu", "cuda"], default="cpu",
                    help="where the latency pairs run (cuda: synchronised after each call)")
    ap.add_argument("--cuda-graph", action="store_true",
                    help="time both contenders as replayed CUDA graphs (--device cuda)")
    ap.add_argument("--compile-mode", help="torch.compile both contenders in this mode "
                    "(default, reduce-overhead, max-autotune, ...)")
    args = ap.parse_args(argv)
    need = ["torchvision", "fvcore"] if args.profiler else ["torchvision", "timm"]
    missing = [m for m in need if importlib.util.find_spec(m) is None]
    if len(missing) == len(need) or (args.profiler and missing):
        print(f"peers.py: {' and '.join(missing)} not installed here; they are not cnnlab "
              "dependencies: run this script in a separate venv (see its docstring)",
              file=sys.stderr)
        return 2
    import torch

    if args.device == "cuda" and not torch.cuda.is_available():
        print("peers.py: --device cuda, but PyTorch sees no CUDA device here", file=sys.stderr)
        return 2
    if args.cuda_graph and (args.device != "cuda" or args.compile_mode):
        print("peers.py: --cuda-graph needs --device cuda and no --compile-mode",
              file=sys.stderr)
        return 2
    torch.set_num_threads(args.threads)
    (profiler_speed if args.profiler else latency)(args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
