"""Low-rank factorisation on the MNIST split, and Denton's AlexNet size row.

    python experiments/lowrank.py [--seeds 0 1 2] [--quick]
    python experiments/lowrank.py --alexnet        # sizes only, no training

- ``lenet_300_100``: every FC layer by truncated SVD at a target compression of its weights
  (1.5×…16×); ``lenet5_caffe``: fc1 by SVD and conv2 (5×5) by Jaderberg's spatial scheme at
  the same targets. For each: validation accuracy straight after the closed-form
  factorisation and after one epoch of fine-tuning, against the compression of the whole
  model's parameters (PNG); the per-layer report (rank, params, mult-adds) for 4×.
- ``--alexnet``: SqueezeNet Table 2's "AlexNet SVD (Denton et al. 2014): 240 MB → 48 MB, 5×"
  reproduced in kind: one compression factor for AlexNet's three FC layers that brings the
  whole model to a fifth (shapes only; no ImageNet, so no accuracy).
"""

from __future__ import annotations

import copy
import statistics
import sys

import torch
from _common import collect, cpu_minutes, ms, save_figure, seed_parser

from cnnlab.compress.lowrank import (
    compression_for_size,
    factorize,
    format_report,
    layer_report,
)
from cnnlab.models import create_model
from cnnlab.train import TrainConfig, evaluate, train

TARGETS = (1.5, 2, 4, 8, 16)
MODELS = {
    "lenet_300_100": dict(layers=["features.1", "features.3"], lr=0.05, epochs=8),
    "lenet5_caffe": dict(layers=["features.conv2", "fc1.1"], lr=0.02, epochs=4),
}
RECIPE = dict(batch_size=64, momentum=0.9, weight_decay=5e-4, schedule="cosine",
              device="cpu", channels_last=False)


def params(m):
    return sum(p.numel() for p in m.parameters())


def run(name, split, seed, quick):
    spec = MODELS[name]
    torch.manual_seed(seed)
    dense = create_model(name)
    epochs = 1 if quick else spec["epochs"]
    train(dense, split, TrainConfig(epochs=epochs, lr=spec["lr"], seed=seed, **RECIPE),
          progress=False)
    base = evaluate(dense, split.val)["top1"]
    points, report = [], None
    for c in TARGETS:
        m = copy.deepcopy(dense)
        ranks = factorize(m, spec["layers"], compression=c)
        if c == 4:
            report = layer_report(dense, m, ranks, (1, 28, 28))
        acc0 = evaluate(m, split.val)["top1"]
        train(m, split, TrainConfig(epochs=1, lr=spec["lr"] / 10, seed=seed, **RECIPE),
              progress=False)
        points.append({"target": c, "ratio": params(dense) / params(m), "ranks": ranks,
                       "svd": acc0, "tuned": evaluate(m, split.val)["top1"]})
    return {"model": name, "seed": seed, "dense": base, "points": points, "report": report}


def alexnet() -> None:
    from cnnlab.profile import build_on_meta

    m = build_on_meta("alexnet")
    before = copy.deepcopy(m)
    fcs = [n for n, q in m.named_modules() if isinstance(q, torch.nn.Linear)]
    total = params(m)
    c = compression_for_size(m, fcs, total // 5)
    ranks = factorize(m, fcs, compression=c)
    print(f"AlexNet FC layers by SVD, one factor {c:.2f}x on the FC weights:")
    print(format_report(layer_report(before, m, ranks, (3, 224, 224))))
    print(f"size {total * 4 / 1e6:.0f} MB → {params(m) * 4 / 1e6:.0f} MB fp32 "
          f"({total / params(m):.2f}x); paper (SqueezeNet Table 2, Denton et al.): "
          "240 MB → 48 MB (5x), top-1 57.2 % → 56.0 %")


def plot(rows, path):
    from cnnlab.plot import _pyplot

    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6), dpi=110)
    for ax, name in zip(axes, MODELS):
        rs = [r for r in rows if r["model"] == name]
        if not rs:
            continue
        xs = [statistics.mean(r["points"][i]["ratio"] for r in rs) for i in range(len(TARGETS))]
        for key, label in (("svd", "SVD (closed form)"), ("tuned", "+ 1 epoch fine-tuning")):
            m = [ms([r["points"][i][key] for r in rs]) for i in range(len(TARGETS))]
            ax.errorbar(xs, [a for a, _ in m], yerr=[s for _, s in m], marker="o", ms=3,
                        capsize=3, label=label)
        d = ms([r["dense"] for r in rs])[0]
        ax.axhline(d, ls=":", c="grey", label=f"dense ({d:.2f} %)")
        ax.set_xscale("log")
        ax.set_xticks(list(TARGETS), [f"{t:g}" for t in TARGETS])
        ax.minorticks_off()
        ax.set_xlabel("whole-model parameter compression (×)")
        ax.set_ylabel("validation top-1 (%)")
        ax.set_title(name)
        ax.legend(fontsize=7)
    save_figure(fig, path)


def main() -> int:
    ap = seed_parser(__doc__, "experiments/figures/lowrank.png")
    ap.add_argument("--models", nargs="+", default=list(MODELS))
    ap.add_argument("--alexnet", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(1)
    if args.alexnet:
        alexnet()
        return 0
    rows = collect(args, lambda split: (
        (f"{name} seed {seed}", lambda name=name, seed=seed: run(name, split, seed, args.quick))
        for name in args.models for seed in args.seeds))
    if rows is None:
        return 0
    print(f"{cpu_minutes(rows):.1f} CPU-min on 1 thread")
    for name in MODELS:
        rs = [r for r in rows if r["model"] == name]
        if not rs:
            continue
        d = ms([r["dense"] for r in rs])
        print(f"\n{name}: dense {d[0]:.2f} ± {d[1]:.2f} % ({len(rs)} seeds, MNIST 8k/2k)")
        print("| target (factorised layers) | ranks | model params ratio | top-1 after SVD "
              "| after 1 epoch fine-tuning |")
        print("|---|---|---|---|---|")
        for i, c in enumerate(TARGETS):
            p = rs[0]["points"][i]
            s, t = ms([r["points"][i]["svd"] for r in rs]), ms([r["points"][i]["tuned"]
                                                                for r in rs])
            ranks = "/".join(str(k) for k in p["ranks"].values())
            print(f"| {c}x | {ranks} | {p['ratio']:.2f}x | {s[0]:.2f} ± {s[1]:.2f} | "
                  f"{t[0]:.2f} ± {t[1]:.2f} |")
        print(f"\nper layer at 4x ({name}):")
        print(format_report(rs[0]["report"]))
    plot(rows, args.figure)
    return 0


if __name__ == "__main__":
    sys.exit(main())
