"""Deep Compression (Han et al. 2015, 2016) reproduced on real MNIST, and SqueezeNet's sizes.

    python experiments/deep_compression.py lenet_300_100 [--out DIR]   # ~2-4 min on 2 cores
    python experiments/deep_compression.py lenet5_caffe [--out DIR]    # ~5 min
    python experiments/deep_compression.py squeezenet                  # ~1 min, sizes only

For each LeNet: train the dense network, then prune → retrain (iteratively) → quantize →
fine-tune the centroids → Huffman-encode into a real ``.dcz``; print Han 2015's per-layer
pruning table and the per-stage size table, and check the goals against the dense model
trained the same way: pruning alone ≥ 12× fewer parameters and the ``.dcz`` ≥ 39× smaller
than the fp32 safetensors weights, each at most 0.3 points below the dense validation accuracy.

The data are the 10,000 MNIST images shipped in ``data/mnist``, split 8,000 / 2,000 (seeded);
the papers trained on MNIST's 60,000. Densities per layer are Han's (Han 2015, Tables 1–2)
except fc1, pruned a little further here (7 % and 6 % instead of 8 %) because a real file
carries what the paper's count leaves out (biases, codebooks, Huffman tables, fillers).

``squeezenet`` applies SqueezeNet Table 1's per-layer densities to ``squeezenet1_0`` at 8 and
at 6 bits (no ImageNet here: its own initial weights, no retraining — file sizes only) and
prints them next to the paper's 4.8 MB → 0.66 MB (8 bit) and → 0.47 MB (6 bit), MB = MiB.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch

import cnnlab
from cnnlab.compress import CompressSettings, compress_model
from cnnlab.compress.report import format_pruning_table, format_stage_table

# Dense training (the same for the baseline and before compression) and compression settings
LENETS = {
    "lenet_300_100": dict(
        dense=dict(epochs=20, lr=0.05),
        prune="fc1=7%,fc2=9%,fc3=26%",  # Han 2015 Table 1: 8 %, 9 %, 26 %
        compress=dict(rounds=4, prune_epochs=4, quant_epochs=2, lr=0.1, quant_lr=0.001),
        paper="267K → 22K params pruned (12×), 40× Deep Compression; error 1.64 % → 1.59 % "
              "pruned, 1.58 % compressed (Han 2015 Table 1, Han 2016 Table 2)"),
    "lenet5_caffe": dict(
        dense=dict(epochs=15, lr=0.01),
        prune="conv1=66%,conv2=12%,fc1=6%,fc2=19%",  # Han 2015 Table 2: 66, 12, 8, 19 %
        compress=dict(rounds=4, prune_epochs=3, quant_epochs=2, lr=0.02, quant_lr=0.001),
        paper="431K → 36K params pruned (12×), 39× Deep Compression; error 0.80 % → 0.77 % "
              "pruned, 0.74 % compressed (Han 2015 Table 2, Han 2016 Table 3)"),
}
DENSE_RECIPE = dict(batch_size=64, optimizer="sgd", momentum=0.9, weight_decay=5e-4,
                    schedule="cosine", seed=0)

# SqueezeNet Table 1: kept fraction per layer ("sparsity" column; 100 % = not pruned) and the
# paper's parameter count after pruning per module
SQUEEZENET_KEEP = [
    ("fire*.expand3x3", "33%"),
    ("fire9.expand3x3", "30%"),
    ("fire6.expand1x1", "50%"), ("fire8.expand1x1", "50%"),
    ("fire7.squeeze1x1", "50%"), ("fire9.squeeze1x1", "50%"),
    ("conv10.conv", "20%"),
]
SQUEEZENET_AFTER = {"conv1": 14_208, "fire2": 5_746, "fire3": 6_258, "fire4": 20_646,
                    "fire5": 24_742, "fire6": 44_700, "fire7": 46_236, "fire8": 77_581,
                    "fire9": 77_581, "conv10": 103_400}
SQUEEZENET_PAPER = {8: 0.66, 6: 0.47}  # MB (MiB) of the compressed model; dense 4.8 MB
MIB = 2 ** 20


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def dense_model(name: str, split, out: Path, recipe: dict):
    from cnnlab.train import TrainConfig, evaluate, load_checkpoint, save_checkpoint, train

    model = cnnlab.create_model(name)
    ckpt = out / f"{name}_dense.safetensors"
    if ckpt.is_file():
        load_checkpoint(ckpt, model)
        log(f"{name}: dense weights from {ckpt}")
    else:
        torch.manual_seed(0)
        cfg = TrainConfig(**DENSE_RECIPE, **recipe)
        t0 = time.time()
        train(model, split, cfg, progress=False)
        save_checkpoint(ckpt, model, meta={"model": name, "config": {}})
        log(f"{name}: dense training {time.time() - t0:.0f} s → {ckpt}")
    return model, float(evaluate(model, split.val)["top1"])


def run_lenet(name: str, data: str, val_split: int, out: Path) -> bool:
    from cnnlab.data import load_dataset
    from cnnlab.train import evaluate

    spec = LENETS[name]
    split = load_dataset(data, val_split=val_split, seed=0, input_size=(1, 28, 28))
    model, dense_top1 = dense_model(name, split, out, spec["dense"])
    t0 = time.time()
    path = out / f"{name}.dcz"
    pruned_state = {}
    res = compress_model(model, name, {}, split, CompressSettings(prune=spec["prune"],
                                                                  **spec["compress"]),
                         out=str(path), log=log,
                         on_pruned=lambda m: pruned_state.update(
                             {k: v.clone() for k, v in m.state_dict().items()}))
    log(f"{name}: compression {time.time() - t0:.0f} s")
    params = sum(v.numel() for v in cnnlab.create_model(name).state_dict().values())
    t = res.totals
    kept_params = params - (t["weights"] - t["kept"])
    pruned_top1 = res.stages[1]["top1"]
    final_top1 = float(evaluate(cnnlab.load_compressed(path), split.val)["top1"])
    ratio = t["dense_file"] / path.stat().st_size

    print(f"\n=== {name} on {split.name} ({len(split.train):,} train / {len(split.val):,} val "
          f"images) ===")
    print(f"paper: {spec['paper']}")
    print(f"\nPruning (Han 2015 Table {'1' if 'fc3' in spec['prune'] else '2'} layout; Act% = "
          f"input density on the validation images)")
    print(format_pruning_table(res.pruning))
    print("\nStages (dense fp32 → pruned → quantized → Huffman)")
    print(format_stage_table(res.to_dict()))
    goals = [
        ("pruning alone: fewer parameters", params / kept_params, 12.0,
         f"{params:,} → {kept_params:,} params", pruned_top1),
        (".dcz vs fp32 safetensors", ratio, 39.0,
         f"{t['dense_file']:,} B → {path.stat().st_size:,} B", final_top1),
    ]
    ok = True
    print(f"\ndense top-1 {dense_top1:.2f}% (error {100 - dense_top1:.2f}%)")
    for what, got, want, detail, top1 in goals:
        good = got >= want and top1 >= dense_top1 - 0.3
        ok &= good
        print(f"{'PASS' if good else 'FAIL'}  {what}: {got:.1f}× (goal ≥ {want:.0f}×; {detail}), "
              f"top-1 {top1:.2f}% ({top1 - dense_top1:+.2f} points; goal ≥ -0.30)")
    print("\nCentroid initialisation (Han 2016 Sec. 3.2, Fig. 7): top-1 of the pruned model "
          "quantized at b bits per layer, before fine-tuning")
    print(init_comparison(name, pruned_state, split))
    return ok


def init_comparison(name: str, state: dict, split, bits=(2, 3, 4)) -> str:
    from cnnlab.compress.prune import prunable_layers
    from cnnlab.compress.quantize import quantize_layer
    from cnnlab.table import render
    from cnnlab.train import evaluate

    rows = []
    for b in bits:
        row = [f"{b} bits"]
        for init in ("linear", "density", "random"):
            model = cnnlab.create_model(name)
            model.load_state_dict(state)
            for ly in prunable_layers(model):
                quantize_layer(ly.module, b, init=init)
            row.append(f"{float(evaluate(model, split.val)['top1']):.2f}%")
        rows.append(row)
    return render(rows, ["", "linear", "density", "random"], right={1, 2, 3})


def run_squeezenet(out: Path) -> bool:
    from cnnlab.table import render

    name = "squeezenet1_0"
    rows = []
    for bits in (8, 6):
        torch.manual_seed(0)
        model = cnnlab.create_model(name)
        prune = ",".join(f"{k}={v}" for k, v in SQUEEZENET_KEEP)
        settings = CompressSettings(prune=prune, bits=f"conv={bits}", span="conv=8", rounds=1,
                                    prune_epochs=0, quant_epochs=0)
        path = out / f"{name}_{bits}bit.dcz"
        res = compress_model(model, name, {}, None, settings, out=str(path))
        size = path.stat().st_size
        t = res.totals
        if bits == 8:
            after: dict[str, int] = {}
            for key, v in model.state_dict().items():
                mod = key.split(".")[0]
                n = int(torch.count_nonzero(v)) if key.endswith("weight") else v.numel()
                after[mod] = after.get(mod, 0) + n
            print(f"\n=== {name}: SqueezeNet Table 1 densities (own initial weights) ===")
            print(render([[m, SQUEEZENET_AFTER[m], after[m], after[m] - SQUEEZENET_AFTER[m]]
                          for m in SQUEEZENET_AFTER] +
                         [["total", 421_098, sum(after.values()),
                           sum(after.values()) - 421_098]],
                         ["module", "paper after pruning", "here", "diff"]))
        rows.append([f"{bits} bit", f"{t['dense_file'] / MIB:.2f}",
                     f"{SQUEEZENET_PAPER[bits]:.2f}", f"{size / MIB:.3f}",
                     f"{t['dense_file'] / size:.1f}x", f"{4.8 / SQUEEZENET_PAPER[bits]:.1f}x",
                     f"{t['kept']:,}"])
    print("\nSqueezeNet + Deep Compression (SqueezeNet Table 2; MB = MiB)")
    print(render(rows, ["bits", "dense MB", "paper MB", "here MB", "here ratio",
                        "paper ratio", "weights kept"], right={1, 2, 3, 4, 5, 6}))
    return True


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("which", nargs="*", default=["lenet_300_100", "lenet5_caffe"],
                    choices=[*LENETS, "squeezenet"])
    ap.add_argument("--data", default="mnist:data/mnist")
    ap.add_argument("--val-split", type=int, default=2000)
    ap.add_argument("--out", help="directory for checkpoints and .dcz files (default: temp)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (shared CPU)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(args.out or tmp)
        out.mkdir(parents=True, exist_ok=True)
        ok = True
        for which in args.which:
            ok &= run_squeezenet(out) if which == "squeezenet" else \
                run_lenet(which, args.data, args.val_split, out)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
