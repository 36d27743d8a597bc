"""Our implementations against torchvision's (and timm's) on the same architectures.

Batch-1 and batch-8 CPU latency, alternating ours and theirs in one run (random weights, eval
mode, inference_mode), as the ratio theirs / ours (above 1: ours is faster) and the geometric
mean of the ratios. Goal (issue 19): geometric mean >= 0.97 at batch 1 and 8.

torchvision and timm are never cnnlab dependencies: install them in a separate environment
(``python -m venv /tmp/peers && /tmp/peers/bin/pip install torch torchvision timm`` plus
cnnlab's own requirements) and run this script there:

    PYTHONPATH=. /tmp/peers/bin/python benchmarks/peers.py [--threads 1] [--runs 20]

Without them it says so and exits with code 2.
"""

from __future__ import annotations

import argparse
import math
import sys

# cnnlab name -> (library, constructor name, input size)
PAIRS = {
    "alexnet": ("torchvision", "alexnet", 224),
    "vgg16": ("torchvision", "vgg16", 224),
    "vgg16_bn": ("torchvision", "vgg16_bn", 224),
    "googlenet": ("torchvision", "googlenet", 224),
    "inception_v3": ("torchvision", "inception_v3", 299),
    "resnet18": ("torchvision", "resnet18", 224),
    "resnet50": ("torchvision", "resnet50", 224),
    "resnext50_32x4d": ("torchvision", "resnext50_32x4d", 224),
    "wrn_28_10": ("timm", "wide_resnet50_2", 224),  # different depth: listed for scale only
    "densenet121": ("torchvision", "densenet121", 224),
    "squeezenet1_0": ("torchvision", "squeezenet1_0", 224),
    "squeezenet1_1": ("torchvision", "squeezenet1_1", 224),
    "mobilenet_v2": ("torchvision", "mobilenet_v2", 224),
    "shufflenet_v2_x1_0": ("torchvision", "shufflenet_v2_x1_0", 224),
    "efficientnet_b0": ("torchvision", "efficientnet_b0", 224),
    "xception": ("timm", "legacy_xception", 299),
    "inception_resnet_v2": ("timm", "inception_resnet_v2", 299),
    "nasnet_a_large": ("timm", "nasnetalarge", 331),
}


def peer_libraries() -> dict:
    libs = {}
    try:
        import torchvision.models as tvm

        libs["torchvision"] = lambda n: getattr(tvm, n)(weights=None, **(
            {"aux_logits": False, "init_weights": False} if n in ("googlenet", "inception_v3")
            else {}))
    except ImportError:
        pass
    try:
        import timm

        libs["timm"] = lambda n: timm.create_model(n, pretrained=False)
    except ImportError:
        pass
    return libs


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--batches", default="1,8")
    ap.add_argument("models", nargs="*", help="subset of the pairs (default: all)")
    args = ap.parse_args(argv)
    libs = peer_libraries()
    if not libs:
        print("peers.py: neither torchvision nor timm is installed here; they are not cnnlab "
              "dependencies: run this script in a separate venv (see its docstring)",
              file=sys.stderr)
        return 2
    import torch

    import cnnlab
    from cnnlab.deploy.bench import alternate, summarize

    torch.set_num_threads(args.threads)
    batches = [int(b) for b in args.batches.split(",")]
    ratios = {b: [] for b in batches}
    print(f"{'model':22} {'peer':28} {'batch':>5} {'ours ms':>9} {'theirs ms':>9} "
          f"{'theirs/ours':>11}")
    for name in args.models or PAIRS:
        lib, peer, side = PAIRS[name]
        if lib not in libs:
            print(f"{name:22} {lib + ':' + peer:28} (not installed)")
            continue
        ours, theirs = cnnlab.create_model(name).eval(), libs[lib](peer).eval()
        for b in batches:
            x = torch.randn(b, 3, side, side)

            def run(m, x=x):
                def f():
                    with torch.inference_mode():
                        m(x)
                return f

            t = alternate({"ours": run(ours), "theirs": run(theirs)}, warmup=3,
                          runs=args.runs)
            o, th = summarize(t["ours"])[0], summarize(t["theirs"])[0]
            ratios[b].append(th / o)
            print(f"{name:22} {lib + ':' + peer:28} {b:5d} {o:9.2f} {th:9.2f} "
                  f"{th / o:10.2f}x", flush=True)
    for b, rs in ratios.items():
        if rs:
            g = math.exp(sum(math.log(r) for r in rs) / len(rs))
            print(f"batch {b}: geometric mean of theirs/ours over {len(rs)} models: {g:.3f} "
                  f"(goal >= 0.97)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
