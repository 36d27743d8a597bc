"""Structured pruning to 50 % of the mult-adds, accuracy recovered by fine-tuning, on MNIST.

    python experiments/structured_pruning.py [--models resnet20,lenet5_caffe] [--seeds 0,1,2]
        [--epochs 3] [--finetune-epochs 2] [--score l1] [--out experiments/figures]

Per model and seed: train the dense network (``--epochs``), prune whole channels with the
``--score`` ranking (global, :mod:`cnnlab.compress.structured`) until 50 % of its mult-adds are
left, then fine-tune the smaller dense model with the trainer (``--finetune-epochs``, lr/10).
For a fair baseline the dense network is fine-tuned the same way. The data are the 10,000
MNIST images in ``data/mnist``, split 8,000 / 2,000; one CPU thread.

Papers, for scale (CIFAR-10, not MNIST): Li et al. 2017 (L1 filter pruning) Table 1,
ResNet-56 with 27.6 % fewer FLOPs at 6.94 % error against 6.96 %; ResNet-110 with 38.6 % fewer
at 6.70 % against 6.47 %. Liu et al. 2017 (Network Slimming) Table 1, VGGNet on CIFAR-10 with
51 % fewer FLOPs at 6.20 % error against 6.34 %.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch
from _common import pm

import cnnlab
from cnnlab.compress.structured import prune
from cnnlab.data import load_dataset
from cnnlab.train import TrainConfig, evaluate, train

RECIPE = dict(batch_size=64, optimizer="sgd", momentum=0.9, weight_decay=5e-4,
              schedule="cosine")
LR = {"resnet20": 0.1, "lenet5_caffe": 0.01}


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def taylor_batches(split, n=4, bs=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    idx = torch.randperm(len(split.train), generator=g)[: n * bs]
    for i in range(n):
        j = idx[i * bs:(i + 1) * bs]
        yield split.train.normalize(split.train.x[j]), split.train.y[j]


def one(name, split, seed, epochs, ft_epochs, score):
    torch.manual_seed(seed)
    model = cnnlab.create_model(name, in_chans=1, num_classes=10)
    lr = LR.get(name, 0.05)
    train(model, split, TrainConfig(**RECIPE, epochs=epochs, lr=lr, seed=seed), progress=False)
    dense = float(evaluate(model, split.val)["top1"])
    res = prune(model, macs=0.5, score=score, input_size=(1, 28, 28),
                batches=list(taylor_batches(split, seed=seed)) if score == "taylor" else None)
    cut = float(evaluate(res.model, split.val)["top1"])
    ft = TrainConfig(**RECIPE, epochs=ft_epochs, lr=lr / 10, seed=seed)
    train(res.model, split, ft, progress=False)
    pruned = float(evaluate(res.model, split.val)["top1"])
    train(model, split, ft, progress=False)  # the same extra epochs for the dense baseline
    dense_ft = float(evaluate(model, split.val)["top1"])
    params = (sum(p.numel() for p in model.parameters()),
              sum(p.numel() for p in res.model.parameters()))
    return dict(dense=dense, dense_ft=dense_ft, cut=cut, pruned=pruned,
                macs=res.macs_ratio, params=params[1] / params[0])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="resnet20,lenet5_caffe")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--epochs", type=float, default=3)
    ap.add_argument("--finetune-epochs", type=float, default=2)
    ap.add_argument("--score", default="l1", choices=["l1", "bn", "taylor"])
    ap.add_argument("--data", default="mnist:data/mnist")
    ap.add_argument("--out", default="experiments/figures")
    args = ap.parse_args()
    torch.set_num_threads(1)
    split = load_dataset(args.data, val_split=2000, seed=0, input_size=(1, 28, 28))
    seeds = [int(s) for s in args.seeds.split(",")]
    rows = {}
    for name in args.models.split(","):
        rows[name] = []
        for seed in seeds:
            t0 = time.time()
            r = one(name, split, seed, args.epochs, args.finetune_epochs, args.score)
            rows[name].append(r)
            log(f"{name} seed {seed}: {r} ({time.time() - t0:.0f} s)")
    print(f"MNIST split (8,000 train / 2,000 val), {args.epochs:g} epochs dense, "
          f"{args.finetune_epochs:g} fine-tuning (lr/10), score {args.score}, seeds {seeds}")
    print("| model | mult-adds kept | params kept | dense top-1 | dense + fine-tune | "
          "pruned, before fine-tune | pruned + fine-tune | gap (pt) |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for name, rs in rows.items():
        gap = [r["pruned"] - r["dense_ft"] for r in rs]
        print(f"| {name} | {statistics.mean(r['macs'] for r in rs):.1%} | "
              f"{statistics.mean(r['params'] for r in rs):.1%} | {pm([r['dense'] for r in rs])} | "
              f"{pm([r['dense_ft'] for r in rs])} | {pm([r['cut'] for r in rs])} | "
              f"{pm([r['pruned'] for r in rs])} | {pm(gap)} |")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for name, rs in rows.items():  # one file per model, so models can run in parallel
        (out / f"structured_pruning_{name}.json").write_text(json.dumps(rs))
    plot({p.stem.split("_", 2)[2]: json.loads(p.read_text())
          for p in sorted(out.glob("structured_pruning_*.json"))}, out)


def plot(rows, out: Path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 3.2))
    keys = [("dense_ft", "dense, same epochs"), ("cut", "pruned, no fine-tune"),
            ("pruned", "pruned + fine-tune")]
    for k, (key, label) in enumerate(keys):
        xs = [i + 0.27 * (k - 1) for i in range(len(rows))]
        vals = [[r[key] for r in rs] for rs in rows.values()]
        ax.bar(xs, [statistics.mean(v) for v in vals], 0.25, label=label,
               yerr=[statistics.stdev(v) if len(v) > 1 else 0 for v in vals])
    ax.set_xticks(range(len(rows)), [f"{n}\n50 % mult-adds" for n in rows])
    ax.set_ylabel("MNIST val top-1 (%)")
    lo = min(min(r["cut"] for r in rs) for rs in rows.values())
    ax.set_ylim(max(0, lo - 5), 100)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(out / "structured_pruning.png", dpi=100)


if __name__ == "__main__":
    main()
