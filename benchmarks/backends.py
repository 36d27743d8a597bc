"""Which runtime runs a model fastest on this CPU: PyTorch eager, BN folded, int8 (torch.ao,
x86 and oneDNN kernels), onnxruntime fp32 and onnxruntime on the int8 model's graph; batch 1,
one thread.

ShuffleNet V2's lesson (Ma et al. 2018, Sec. 2; deck 004:590-633) is that only a measurement
on the device says how fast a network runs: the same weights can cost several times more
under one runtime than under another, most of all for small networks, where each op's
dispatch weighs more than its arithmetic. The configurations are ``cnnlab bench``'s
(``cnnlab.deploy.bench.make_runner``), timed in turns in one run (``alternate``), median of
--runs, as ratios to PyTorch eager fp32. Weights are random (latency does not depend on
them); int8 is calibrated on random inputs.

    PYTHONPATH=. python benchmarks/backends.py [--runs 30] [--clock cpu] [MODEL ...]
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings

import cnnlab
from cnnlab.deploy.bench import alternate, make_runner, num_threads
from cnnlab.models import model_info
from cnnlab.table import render

# (model, builder arguments, input size): MNIST-sized nets and ImageNet-sized ones
MODELS = {
    "lenet5_caffe": ({}, (1, 28, 28)),
    "resnet20": ({"in_chans": 1}, (1, 28, 28)),
    "mobilenet_v2": ({}, (3, 224, 224)),
    "shufflenet_v2_x1_0": ({}, (3, 224, 224)),
    "resnet18": ({}, (3, 224, 224)),
}
CONFIGS = {
    "torch fp32": {},
    "torch BN folded": {"fuse_bn": True},
    "torch int8": {"int8": True},
    "torch int8 oneDNN": {"int8": True, "int8_backend": "onednn"},
    "onnxruntime fp32": {"backend": "onnxruntime"},
    "onnxruntime int8": {"backend": "onnxruntime", "int8": True},
}
CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}


def row(name: str, args) -> list:
    kwargs, size = MODELS.get(name, ({}, None))
    size = size or tuple(model_info(name).input_size)
    model = cnnlab.create_model(name, **kwargs).eval()
    runners = {}
    for label, opts in CONFIGS.items():
        try:
            runners[label], _ = make_runner(model, size, 1, threads=1, **opts)
        except Exception as e:  # an int8 graph onnxruntime cannot take: say so, go on
            print(f"{name}: {label} skipped ({type(e).__name__}: {str(e).splitlines()[0]})")
    times = alternate(runners, warmup=3, runs=args.runs, clock=CLOCKS[args.clock])
    ms = {k: 1000 * statistics.median(v) for k, v in times.items()}
    base = ms["torch fp32"]
    cells = [f"{ms[k]:.2f} ({base / ms[k]:.2f}x)" if k in ms else "-" for k in CONFIGS]
    best = min(ms, key=ms.get)
    return [name, "x".join(map(str, size)), *cells, best]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("models", nargs="*", help=f"default: {', '.join(MODELS)}")
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--clock", choices=sorted(CLOCKS), default="wall",
                    help="cpu: this process's CPU time (one thread; robust to other load)")
    args = ap.parse_args(argv)
    warnings.filterwarnings("ignore")  # torch.ao's and the exporter's own notices
    rows = []
    with num_threads(1):
        for name in args.models or MODELS:
            rows.append(row(name, args))
            print(f"{name} done", flush=True)
    print(f"\nbatch 1, 1 thread, median ms of {args.runs} in turns ({args.clock} clock); "
          "in brackets: speed-up over torch fp32")
    print(render(rows, ["model", "input", *CONFIGS, "fastest"]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
