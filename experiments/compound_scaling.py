"""EfficientNet's compound-coefficient search (Tan & Le 2019, Sec. 4 step 1) and the
"compound beats one-dimensional scaling" claim (Fig. 3, Sec. 3.3), at MNIST scale.

    python experiments/compound_scaling.py [--seeds 0 1 2] [--grid-epochs 2] [--epochs 2]

Baseline: B0's seven MBConv stages at width 0.25, depth 0.5 (10 blocks), 12 px MNIST
(data/mnist's 10,000 images: 2,000 validation, 1,500 of the other 8,000 to train —
the budget of a shared 2-core CPU — resized). Step 1: the (α, β, γ) grid of
:func:`cnnlab.search.compound_search.coefficient_grid` restricted to α ∈ {1, 1.2, 2},
β ∈ {1, 1.1, √2}, γ solved from α·β²·γ² = 2 (6 candidates), each trained
``--grid-epochs`` on seed 0 and ranked by accuracy under a mult-add budget of 2.2× the
baseline (and by the step-0 reward ACC·(MACs/T)^−0.07, printed beside). Step 2: the winner
at φ = 1.5 against depth-, width- and resolution-only networks of at most its mult-adds,
each trained ``--epochs`` on every seed. Prints markdown tables and writes
``experiments/figures/compound_scaling.png``.
"""

from __future__ import annotations

import argparse
import statistics
import time
from dataclasses import replace
from pathlib import Path

import torch

from cnnlab.data import load_dataset
from cnnlab.profile import profile
from cnnlab.search.compound_search import (
    Baseline,
    coefficient_grid,
    compound,
    grid_search,
    match_macs,
)
from cnnlab.train import TrainConfig, train

DATA = "mnist:data/mnist"
_splits = {}


def split_at(res, n_train=1500):
    if res not in _splits:
        s = load_dataset(DATA, val_split=2000, input_size=(1, res, res))
        _splits[res] = replace(s, train=s.train.subset(range(n_train)))
    return _splits[res]


def trainer(base, epochs, seed):
    def run(cfg):
        torch.manual_seed(seed)
        model = base.build(cfg)
        res = train(model, split_at(cfg.resolution),
                    TrainConfig(epochs=epochs, batch_size=32, lr=0.05, weight_decay=1e-4,
                                seed=seed, device="cpu"), progress=False)
        print(f"  w={cfg.width:.3f} d={cfg.depth:.3f} {cfg.resolution} px seed {seed}: "
              f"{res.metrics['top1']:.2f} %", flush=True)
        return res.metrics["top1"]
    return run


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--grid-epochs", type=float, default=2)
    ap.add_argument("--epochs", type=float, default=2)
    ap.add_argument("--phi", type=float, default=1.5)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    base = Baseline(resolution=12)
    b_macs = base.macs(base.config())
    t0 = time.perf_counter()
    grid = coefficient_grid(alphas=(1.0, 1.2, 2.0), betas=(1.0, 1.1, 2 ** 0.5))
    ranked = grid_search(base, trainer(base, args.grid_epochs, args.seeds[0]), grid)
    budget = 2.2 * b_macs
    print(f"\nStep 1: {len(grid)} candidates, {args.grid_epochs} epochs each, seed "
          f"{args.seeds[0]}, baseline {b_macs / 1e6:.3f} M mult-adds, budget "
          f"{budget / 1e6:.3f} M ({time.perf_counter() - t0:.0f} s)\n")
    print("| α | β | γ | mult-adds (× base) | val top-1 % | score (budget) | reward "
          "ACC·(MACs/T)^−0.07 |")
    print("|---|---|---|---|---|---|---|")
    for c in ranked:
        r = c.accuracy * (c.macs / budget) ** -0.07
        print(f"| {c.alpha} | {c.beta:.3g} | {c.gamma:.3g} | {c.macs / b_macs:.2f} | "
              f"{c.accuracy:.2f} | {c.score:.2f} | {r:.2f} |")
    win = ranked[0]
    print(f"\nwinner α={win.alpha}, β={win.beta:.3g}, γ={win.gamma:.3g} "
          "(paper, ImageNet: α=1.2, β=1.1, γ=1.15)")

    target_cfg = compound(base, args.phi, win.alpha, win.beta, win.gamma)
    target = base.macs(target_cfg)
    nets = {"baseline": ("—", base.config()),
            f"compound φ={args.phi:g}": (f"d={win.alpha ** args.phi:.2f} "
                                         f"w={win.beta ** args.phi:.2f} "
                                         f"r={win.gamma ** args.phi:.2f}", target_cfg)}
    paper = compound(base, args.phi, 1.2, 1.1, 1.15)
    nets[f"compound φ={args.phi:g}, paper's α, β, γ"] = (
        f"d={1.2 ** args.phi:.2f} w={1.1 ** args.phi:.2f} r={1.15 ** args.phi:.2f}", paper)
    for dim in ("depth", "width", "resolution"):
        m, cfg, _ = match_macs(base, target, dim)
        nets[f"{dim} only"] = (f"{dim[0]}={m:.2f}", cfg)
    rows = {}
    for name, (mult, cfg) in nets.items():
        accs = [trainer(base, args.epochs, s)(cfg) for s in args.seeds]
        prof = profile(base.build(cfg), (1, cfg.resolution, cfg.resolution))
        rows[name] = (mult, cfg.resolution, prof.macs, prof.params, accs)
        print(name, rows[name], f"{time.perf_counter() - t0:.0f} s")
    print(f"\nStep 2: {len(args.seeds)} seeds, {args.epochs} epochs, mean ± std\n")
    print("| scaling | multipliers | px | mult-adds | params | val top-1 % |")
    print("|---|---|---|---|---|---|")
    for name, (mult, px, macs, params, accs) in rows.items():
        sd = statistics.stdev(accs) if len(accs) > 1 else 0.0
        print(f"| {name} | {mult} | {px} | {macs / 1e6:.3f} M | {params / 1e3:.0f} K | "
              f"{statistics.mean(accs):.2f} ± {sd:.2f} |")
    print(f"\ntotal {time.perf_counter() - t0:.0f} s")
    plot(rows, Path("experiments/figures/compound_scaling.png"))


def plot(rows, path):
    from cnnlab.plot import _pyplot

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=100)
    for name, (_m, _px, macs, _p, accs) in rows.items():
        sd = statistics.stdev(accs) if len(accs) > 1 else 0.0
        ax.errorbar(macs / 1e6, statistics.mean(accs), yerr=sd, fmt="o", capsize=3,
                    label=name)
    ax.set_xlabel("mult-adds (M)")
    ax.set_ylabel("MNIST val top-1 (%)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
