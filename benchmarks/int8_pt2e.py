"""Can PT2E int8 + inductor reach 2x over fp32 for ResNet-20 at batch 1 on one thread?

Measures, in turns in one run (``cnnlab.deploy.bench.alternate``), batch 1, one thread,
median of --runs, these contenders:

* ``fp32 eager``         the model as built;
* ``fp32 compiled``      ``torch.compile`` (inductor, ``freezing``: weights constant-folded
  and prepacked for oneDNN);
* ``fp32 compiled cpp``  the same with ``cpp_wrapper`` (the graph's calls from C++, not Python);
* ``int8 FX``            cnnlab's current path (``cnnlab.deploy.quant.quantize_ptq``:
  ``torch.ao`` FX graph mode, backend x86);
* ``int8 PT2E``          ``torch.export`` -> torchao's ``prepare_pt2e`` with
  ``X86InductorQuantizer`` -> calibrate -> ``convert_pt2e`` -> ``torch.compile`` (inductor,
  ``freezing``), which lowers conv/BN/ReLU and the residual add to oneDNN ``qconv`` with
  fused post-ops;
* ``int8 PT2E cpp``      the same with ``cpp_wrapper``.

ResNet-20 (``in_chans=1``, 1x28x28) is trained briefly on the MNIST split (8,000 train /
2,000 val; recipe of ``benchmarks/int8.py``), both int8 paths are calibrated on --calib real
training images, and top-1 on the 2,000 val images is reported for fp32, int8 FX and int8
PT2E. ResNet-18 at 3x224x224 (random weights, random calibration) is timed as a sanity check.

Needs ``torchao`` (not a cnnlab dependency; tried with torchao 0.18.0, ``--no-deps``, on
torch 2.13.0+cpu in a separate venv):

    pip install torchao  # (no requirements of its own: torch stays)
    PYTHONPATH=. python benchmarks/int8_pt2e.py [--epochs 2] [--runs 30] \
        [--clock cpu] [--weights r20.pt]
"""

from __future__ import annotations

import argparse
import copy
import os
import time
import warnings

import torch

import cnnlab
from benchmarks.int8 import trained_fp32  # run with PYTHONPATH=.
from cnnlab.data import fit_split, load_dataset
from cnnlab.deploy.bench import alternate, summarize
from cnnlab.deploy.quant import quantize_ptq
from cnnlab.train import evaluate


def pt2e_int8(model, example, calib_images):
    """The PT2E int8 graph of ``model`` (exported at ``example``'s shape, calibrated one image
    at a time since the exported graph is static at batch 1)."""
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e
    from torchao.quantization.pt2e.quantizer import x86_inductor_quantizer as xiq

    quantizer = xiq.X86InductorQuantizer()
    quantizer.set_global(xiq.get_default_x86_inductor_quantization_config())
    with torch.no_grad():
        gm = torch.export.export(model.eval(), (example,)).module()
        prepared = prepare_pt2e(gm, quantizer)
        for img in calib_images:
            prepared(img[None])
        return convert_pt2e(prepared)


def compiled(model, example, cpp_wrapper=False):
    """``torch.compile``d copy of ``model`` and the seconds its first call (the compilation)
    took. A copy: compiling the same module object twice would reuse dynamo's first graph
    (inductor settings are not part of its guards)."""
    import torch._inductor.config as inductor_config

    # config.patch, not torch.compile(options=...): with options={"freezing": True} the int8
    # graph fails (torch 2.13: UnsupportedOperatorException: onednn.qconv_prepack.default)
    fn = torch.compile(copy.deepcopy(model))
    t0 = time.perf_counter()
    with torch.no_grad(), inductor_config.patch(freezing=True, cpp_wrapper=cpp_wrapper):
        fn(example)
    return fn, time.perf_counter() - t0


def contenders(fp32, example, calib_images, fx_calib):
    """Name -> (callable model, seconds to quantize, seconds to compile)."""
    out = {"fp32 eager": (fp32, 0.0, 0.0)}
    for name, cpp in (("fp32 compiled", False), ("fp32 compiled cpp", True)):
        fn, t = compiled(fp32, example, cpp)
        out[name] = (fn, 0.0, t)
    t0 = time.perf_counter()
    fx = quantize_ptq(fp32, fx_calib).model
    out["int8 FX"] = (fx, time.perf_counter() - t0, 0.0)
    t0 = time.perf_counter()
    q = pt2e_int8(fp32, example, calib_images)
    t_quant = time.perf_counter() - t0
    for name, cpp in (("int8 PT2E", False), ("int8 PT2E cpp", True)):
        fn, t = compiled(q, example, cpp)
        out[name] = (fn, t_quant, t)
    return out


def time_all(models, example, runs, clock=time.perf_counter):
    def run(m):
        def f():
            with torch.no_grad():
                m(example)
        return f

    t = alternate({k: run(m) for k, (m, *_) in models.items()}, warmup=5, runs=runs,
                  clock=clock)
    return {k: summarize(v)[0] for k, v in t.items()}


def top1_batch1(model, data):
    """Top-1 (%) of ``model`` on ``data``, one image per call (the exported graph is static)."""
    hits = 0
    with torch.no_grad():
        for i in range(len(data)):
            hits += int(model(data.normalize(data.x[i:i + 1])).argmax(1).item() == data.y[i])
    return 100.0 * hits / len(data)


def table(title, ms, secs, acc=None):
    base, comp, cpp = ms["fp32 eager"], ms["fp32 compiled"], ms["fp32 compiled cpp"]
    print(f"\n{title}")
    print(f"{'contender':18} {'ms':>7} {'vs fp32 eager':>13} {'vs fp32 compiled':>16} "
          f"{'vs fp32 cpp':>11} "
          f"{'quant s':>8} {'compile s':>9}" + (f" {'top1':>6}" if acc else ""))
    for k, v in ms.items():
        a = f" {acc[k]:6.2f}" if acc and k in acc else (f" {'':>6}" if acc else "")
        quant_s, compile_s = secs[k]
        print(f"{k:18} {v:7.2f} {base / v:12.2f}x {comp / v:15.2f}x {cpp / v:10.2f}x "
              f"{quant_s:8.1f} {compile_s:9.1f}{a}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=float, default=2)
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--calib", type=int, default=512, help="real calibration images")
    ap.add_argument("--no-resnet18", action="store_true")
    ap.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                    help="cpu: this process's CPU time (leaves out a crowded machine's waits)")
    ap.add_argument("--weights", help="trained ResNet-20 state: loaded if present, else saved")
    args = ap.parse_args()
    torch.set_num_threads(1)
    warnings.filterwarnings("ignore")

    split = fit_split(load_dataset("mnist:data/mnist", val_split=2000, seed=0), (1, 28, 28))
    if args.weights and os.path.exists(args.weights):
        fp32 = cnnlab.create_model("resnet20", num_classes=10, in_chans=1)
        fp32.load_state_dict(torch.load(args.weights))
    else:
        t0 = time.time()
        fp32 = trained_fp32("resnet20", split, args.epochs)  # int8.py's recipe
        print(f"trained resnet20 {args.epochs} epochs in {time.time() - t0:.0f} s", flush=True)
        if args.weights:
            torch.save(fp32.state_dict(), args.weights)
    fp32.eval()
    calib = split.train.normalize(split.train.x[:args.calib])
    fx_calib = [calib[i:i + 64] for i in range(0, len(calib), 64)]
    example = split.val.normalize(split.val.x[:1])
    models = contenders(fp32, example, calib, fx_calib)
    acc = {"fp32 eager": evaluate(fp32, split)["top1"],
           "int8 FX": evaluate(models["int8 FX"][0], split)["top1"],
           "int8 PT2E": top1_batch1(models["int8 PT2E"][0], split.val)}
    clock = time.process_time if args.clock == "cpu" else time.perf_counter
    ms = time_all(models, example, args.runs, clock)
    table(f"resnet20 1x28x28, trained {args.epochs} epochs, batch 1, 1 thread, median of "
          f"{args.runs}, {args.clock} clock", ms, {k: s for k, (_, *s) in models.items()}, acc)

    if not args.no_resnet18:
        torch.manual_seed(0)
        r18 = cnnlab.create_model("resnet18").eval()
        x = torch.randn(1, 3, 224, 224)
        imgs = torch.randn(4, 3, 224, 224)
        models = contenders(r18, x, imgs, [imgs])
        ms = time_all(models, x, max(10, args.runs // 3), clock)
        table(f"resnet18 3x224x224, random weights, batch 1, 1 thread, median of "
              f"{max(10, args.runs // 3)}, {args.clock} clock", ms,
              {k: s for k, (_, *s) in models.items()})


if __name__ == "__main__":
    main()
