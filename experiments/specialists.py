"""Specialists with dustbin classes (Hinton et al. 2015, Sec. 5; deck 002:1612-1686,
004:65-92) at MNIST scale.

    python experiments/specialists.py [--seeds 0 1 2] [--quick]

A generalist ``lenet_300_100`` is trained briefly on the 8,000 MNIST training images; the
confusable subsets come from k-means (4 clusters) on the covariance of its predicted
probabilities over the training set (singletons dropped); each subset gets a specialist
(dustbin class, initialised from the generalist, half of its data from its classes, early
stopping on validation loss, enrichment corrected); inference keeps the generalist's top-1
class, activates the specialists whose subset contains it, and finds q by 100 Adam steps on
KL(p^g, q) + Σ KL(p^m, q). Reported: validation accuracy of the generalist and of the
combination, on the images of the confusable classes and on all. Paper (JFT, 61
specialists): conditional test accuracy 43.1 % → 45.9 %, test accuracy 25.0 % → 26.1 %.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from cnnlab.compress.distill import logits_of
from cnnlab.compress.specialists import SpecialistEnsemble, confusable_subsets, train_specialist
from cnnlab.data import load_dataset
from cnnlab.models import create_model
from cnnlab.train import TrainConfig, train

RECIPE = dict(batch_size=100, lr=0.05, momentum=0.9, weight_decay=5e-4, schedule="cosine",
              device="cpu", channels_last=False)


def accuracy(z, y, mask):
    return 100.0 * float((z.argmax(1) == y)[mask].float().mean())


def run_seed(split, seed, ep, fixed=None, clusters=4):
    torch.manual_seed(seed)
    gen = create_model("lenet_300_100")
    train(gen, split, TrainConfig(epochs=ep["generalist"], seed=seed, **RECIPE), progress=False)
    z_train, _ = logits_of(gen, split.train)
    subsets = fixed or confusable_subsets(F.softmax(z_train, 1), clusters, seed=seed)
    specs = [train_specialist(gen, split, s, TrainConfig(epochs=ep["specialist"], seed=seed,
                                                         **{**RECIPE, "lr": 0.01}),
                              patience=2) for s in subsets]
    z_g, y = logits_of(gen, split.val)
    z_c, _ = logits_of(SpecialistEnsemble(gen, specs), split.val)
    conf = torch.isin(y, torch.tensor(sorted({c for s in subsets for c in s})))
    every = torch.ones_like(conf)
    return {"subsets": subsets, "gen_conf": accuracy(z_g, y, conf),
            "comb_conf": accuracy(z_c, y, conf), "gen_all": accuracy(z_g, y, every),
            "comb_all": accuracy(z_c, y, every)}


def ms(v):
    return statistics.mean(v), (statistics.stdev(v) if len(v) > 1 else 0.0)


def plot(rows, path):
    from cnnlab.plot import _pyplot

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 3.5), dpi=110)
    for i, (g, c) in enumerate((("gen_conf", "comb_conf"), ("gen_all", "comb_all"))):
        a, b = ms([r[g] for r in rows]), ms([r[c] for r in rows])
        ax.bar(i - 0.2, a[0], 0.4, yerr=a[1], capsize=3, color="C0",
               label="generalist" if i == 0 else None)
        ax.bar(i + 0.2, b[0], 0.4, yerr=b[1], capsize=3, color="C1",
               label="generalist + specialists" if i == 0 else None)
    ax.set_xticks([0, 1], ["confusable classes", "all classes"])
    lo = min(min(r["gen_conf"], r["comb_conf"]) for r in rows)
    ax.set_ylim(max(0, lo - 5), 100)
    ax.set_ylabel("validation top-1 (%)")
    ax.legend(fontsize=8)
    ax.set_title(f"specialists on MNIST 8k/2k ({len(rows)} seeds)")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--data", default="mnist:data/mnist")
    ap.add_argument("--figure", default="experiments/figures/specialists.png")
    ap.add_argument("--subsets", nargs="+", metavar="C,C,…",
                    help="fixed subsets instead of k-means (e.g. 3,5,8 4,9)")
    ap.add_argument("--clusters", type=int, default=4, help="k of the k-means")
    ap.add_argument("--save")
    ap.add_argument("--load", nargs="+")
    args = ap.parse_args()
    torch.set_num_threads(1)
    ep = dict(generalist=1, specialist=1) if args.quick else dict(generalist=4, specialist=6)
    rows = []
    if args.load:
        for f in args.load:
            rows += json.loads(Path(f).read_text())
    else:
        split = load_dataset(args.data, val_split=2000, seed=0)
        t_cpu = time.process_time()
        for seed in args.seeds:
            fixed = [[int(c) for c in t.split(",")] for t in args.subsets] \
                if args.subsets else None
            rows.append(run_seed(split, seed, ep, fixed, args.clusters))
            rows[-1]["cpu_s"] = time.process_time() - t_cpu
            t_cpu = time.process_time()
            print(f"seed {seed}: {rows[-1]}", file=sys.stderr, flush=True)
    if args.save:
        Path(args.save).write_text(json.dumps(rows))
        return 0
    print(f"MNIST 8,000/2,000, {len(rows)} seeds, mean ± std, "
          f"{sum(r.get('cpu_s', 0) for r in rows) / 60:.1f} CPU-min")
    for r in rows:
        print("subsets found:", " ".join("/".join(map(str, s)) for s in r["subsets"]))
    print("| validation images | generalist | generalist + specialists |")
    print("|---|---|---|")
    for key, label in (("conf", "of the confusable classes"), ("all", "all")):
        g, c = ms([r[f"gen_{key}"] for r in rows]), ms([r[f"comb_{key}"] for r in rows])
        print(f"| {label} | {g[0]:.2f} ± {g[1]:.2f} % | {c[0]:.2f} ± {c[1]:.2f} % |")
    Path(args.figure).parent.mkdir(parents=True, exist_ok=True)
    plot(rows, args.figure)
    return 0


if __name__ == "__main__":
    sys.exit(main())
