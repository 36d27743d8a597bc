"""int8 (PyTorch's x86/fbgemm kernels) against fp32: accuracy, size and batch-1 latency.

lenet5_caffe and resnet20 are trained briefly on the MNIST split (8,000 train / 2,000 val,
1 thread), then quantized post-training (static, per-channel weights, calibrated on 512 real
training images) and by quantization-aware training (one more epoch with fake quantization,
through cnnlab's trainer). mobilenet_v2, shufflenet_v2_x1_0, resnet18 and resnet50: latency
only (random weights, 3x224x224). Latencies: fp32 and int8 timed in turns, one thread,
median of --runs.

    PYTHONPATH=. python benchmarks/int8.py [--epochs 2] [--runs 30] [--json out.json]
    PYTHONPATH=. python benchmarks/int8.py --sweep [--runs 40] [--clock cpu]

``--sweep`` asks why ResNet-20 gains less than ResNet-18: ResNet-20 (random weights, PTQ on
random inputs) at batch 1 under each quantized backend and input size, then one 3x3
convolution fp32 against int8 (x86) at ResNet-20's widths (16-64 channels, 2.4 M mult-adds)
and at ResNet-18's (64-512 channels, 116 M).
"""

from __future__ import annotations

import argparse
import copy
import json
import time
import warnings

import torch

import cnnlab
from cnnlab.data import fit_split, load_dataset
from cnnlab.deploy.bench import alternate, summarize
from cnnlab.deploy.quant import quantize_ptq, quantize_qat, state_bytes
from cnnlab.train import TrainConfig, evaluate, train


def latency(fp32, int8, size, runs, clock=time.perf_counter, x8=None):
    """Median ms of ``fp32`` and ``int8`` at batch 1, in turns (``x8``: the int8 model's own
    input, for a quantized layer without a quantize step)."""
    x = torch.randn(1, *size)

    def run(m, inp):
        def f():
            with torch.inference_mode():
                m(inp)
        return f

    t = alternate({"fp32": run(fp32, x), "int8": run(int8, x if x8 is None else x8)}, warmup=5,
                  runs=runs, clock=clock)
    return summarize(t["fp32"])[0], summarize(t["int8"])[0]


def backend_sweep(runs, clock):
    """ResNet-20 at batch 1: fp32 against int8 per quantized backend and input size."""
    print(f"{'model':10} {'input':9} {'backend':8} {'ms fp32':>8} {'ms int8':>8} {'speed-up':>8}")
    for chans, px, backend in [(1, 28, "x86"), (1, 28, "fbgemm"), (1, 28, "onednn"),
                               (1, 28, "qnnpack"), (3, 32, "x86"), (3, 32, "fbgemm"),
                               (3, 64, "x86"), (3, 128, "x86")]:
        if backend not in torch.backends.quantized.supported_engines:
            continue
        torch.manual_seed(0)
        fp32 = cnnlab.create_model("resnet20", num_classes=10, in_chans=chans).eval()
        size = (chans, px, px)
        q = quantize_ptq(fp32, [torch.randn(16, *size)], backend=backend)
        a, b = latency(fp32, q.model, size, runs, clock)
        print(f"{'resnet20':10} {'x'.join(map(str, size)):9} {backend:8} {a:8.2f} {b:8.2f} "
              f"{a / b:7.2f}x", flush=True)


def layer_sweep(runs, clock):
    """One 3x3 convolution (stride 1, pad 1, batch 1) in fp32 and in int8 (x86)."""
    import torch.ao.nn.quantized as nnq

    torch.backends.quantized.engine = "x86"
    print(f"{'channels':>8} {'map':>5} {'M mult-adds':>11} {'us fp32':>8} {'us int8':>8} "
          f"{'speed-up':>8}")
    for c, px in [(16, 32), (32, 16), (64, 8), (64, 56), (128, 28), (256, 14), (512, 7)]:
        conv = torch.nn.Conv2d(c, c, 3, padding=1).eval()
        q = nnq.Conv2d(c, c, 3, padding=1)
        w = torch.quantize_per_channel(conv.weight.detach(), torch.full((c,), 0.01),
                                       torch.zeros(c, dtype=torch.long), 0, torch.qint8)
        q.set_weight_bias(w, conv.bias.detach())
        q.scale, q.zero_point = 0.05, 64
        x8 = torch.quantize_per_tensor(torch.randn(1, c, px, px), 0.05, 64, torch.quint8)
        a, b = (1000 * ms for ms in latency(conv, q, (c, px, px), runs, clock, x8=x8))
        print(f"{c:8d} {px:5d} {c * c * 9 * px * px / 1e6:11.1f} {a:8.0f} {b:8.0f} "
              f"{a / b:7.2f}x", flush=True)


def trained_fp32(name, split, epochs):
    """``name`` (one input channel) trained on the MNIST split by this benchmark's recipe."""
    torch.manual_seed(0)
    kw = {"in_chans": 1} if name != "lenet5_caffe" else {}
    model = cnnlab.create_model(name, num_classes=10, **kw)
    train(model, split, TrainConfig(epochs=epochs, batch_size=128, lr=0.05, weight_decay=5e-4,
                                    seed=0), progress=False)
    return model.eval()


def trained_row(name, split, size, epochs, runs):
    t0 = time.time()
    fp32 = trained_fp32(name, split, epochs)
    acc32 = evaluate(fp32, split)["top1"]
    calib = [split.train.normalize(split.train.x[i:i + 64]) for i in range(0, 512, 64)]
    ptq = quantize_ptq(fp32, calib)
    acc_ptq = evaluate(ptq.model, split)["top1"]
    qat, _ = quantize_qat(copy.deepcopy(fp32), split,
                          TrainConfig(epochs=1, batch_size=128, lr=0.002, schedule="cosine",
                                      seed=1, channels_last=False), progress=False)
    acc_qat = evaluate(qat.model, split)["top1"]
    ms32, ms8 = latency(fp32, ptq.model, size, runs)
    return {"model": name, "input": "x".join(map(str, size)), "top1_fp32": acc32,
            "top1_ptq": acc_ptq, "top1_qat": acc_qat, "bytes_fp32": state_bytes(fp32),
            "bytes_int8": state_bytes(ptq.model), "ms_fp32": ms32, "ms_int8": ms8,
            "speedup": ms32 / ms8, "mode": ptq.mode, "fp32_ops": ptq.fp32_ops,
            "fx_error": ptq.fx_error, "seconds": time.time() - t0}


def latency_row(name, runs):
    torch.manual_seed(0)
    fp32 = cnnlab.create_model(name).eval()
    size = (3, 224, 224)
    q = quantize_ptq(fp32, [torch.randn(4, *size)])
    ms32, ms8 = latency(fp32, q.model, size, runs)
    return {"model": name, "input": "3x224x224", "bytes_fp32": state_bytes(fp32),
            "bytes_int8": state_bytes(q.model), "ms_fp32": ms32, "ms_int8": ms8,
            "speedup": ms32 / ms8, "mode": q.mode, "fp32_ops": q.fp32_ops,
            "fx_error": q.fx_error}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=float, default=2)
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--json")
    ap.add_argument("--sweep", action="store_true", help="backends, input sizes, layer widths")
    ap.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                    help="cpu: this process's CPU time (leaves out a crowded machine's waits)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    warnings.filterwarnings("ignore")
    if args.sweep:
        clock = time.process_time if args.clock == "cpu" else time.perf_counter
        with torch.inference_mode():
            backend_sweep(args.runs, clock)
            print()
            layer_sweep(args.runs, clock)
        return
    raw = load_dataset("mnist:data/mnist", val_split=2000, seed=0)
    rows = []
    for name in ("lenet5_caffe", "resnet20"):
        split = fit_split(raw, (1, 28, 28))
        rows.append(trained_row(name, split, (1, 28, 28), args.epochs, args.runs))
        print(json.dumps(rows[-1]), flush=True)
    for name in ("mobilenet_v2", "shufflenet_v2_x1_0", "resnet18", "resnet50"):
        rows.append(latency_row(name, args.runs))
        print(json.dumps(rows[-1]), flush=True)
    print(f"\n{'model':20} {'input':10} {'top1 fp32':>9} {'PTQ':>6} {'QAT':>6} "
          f"{'KB fp32':>8} {'KB int8':>8} {'ms fp32':>8} {'ms int8':>8} {'speed-up':>8} mode")
    for r in rows:
        acc = (f"{r['top1_fp32']:9.2f} {r['top1_ptq']:6.2f} {r['top1_qat']:6.2f}"
               if "top1_fp32" in r else f"{'-':>9} {'-':>6} {'-':>6}")
        print(f"{r['model']:20} {r['input']:10} {acc} {r['bytes_fp32'] / 1024:8.0f} "
              f"{r['bytes_int8'] / 1024:8.0f} {r['ms_fp32']:8.2f} {r['ms_int8']:8.2f} "
              f"{r['speedup']:7.2f}x {r['mode']} ({len(r['fp32_ops'])} fp32 ops)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
