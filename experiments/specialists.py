"""Specialists with dustbin classes (Hinton et al. 2015, Sec. 5; deck 002:1612-1686,
004:65-92) at MNIST scale.

    python experiments/specialists.py [--seeds 0 1 2] [--quick]

A generalist ``lenet_300_100`` is trained briefly on the 8,000 MNIST training images; the
confusable subsets come from k-means (4 clusters) on the covariance of its predicted
probabilities over the training set (singletons dropped); each subset gets a specialist
(dustbin class, initialised from the generalist, half of its data from its classes, early
stopping on validation loss, enrichment corrected); inference keeps the generalist's top-1
class, activates the specialists whose subset contains it, and finds q by 100 Adam steps on
KL(p^g, q) + Σ KL(p^m, q). ``--full`` adds full-softmax specialists (Sec. 6.1, deck
002:1676-1686: all classes, hard targets on the subset's images, the generalist's soft
targets at T = 20 on the others, same enrichment and early stopping). Reported: validation
accuracy of the generalist and of the combination, on the confusable classes' images and all.
Paper (JFT, 61 specialists): conditional test accuracy 43.1 % → 45.9 %, test accuracy
25.0 % → 26.1 %.
"""

from __future__ import annotations

import sys

import torch
import torch.nn.functional as F
from _common import collect, cpu_minutes, ms, save_figure, seed_parser

from cnnlab.compress.distill import logits_of
from cnnlab.compress.specialists import (
    SpecialistEnsemble,
    confusable_subsets,
    train_full_specialist,
    train_specialist,
)
from cnnlab.models import create_model
from cnnlab.train import TrainConfig, train

RECIPE = dict(batch_size=100, lr=0.05, momentum=0.9, weight_decay=5e-4, schedule="cosine",
              device="cpu", channels_last=False)


FIGURE = "experiments/figures/specialists.png"


def accuracy(z, y, mask):
    return 100.0 * float((z.argmax(1) == y)[mask].float().mean())


def run_seed(split, seed, ep, fixed=None, clusters=4, full=False):
    torch.manual_seed(seed)
    gen = create_model("lenet_300_100")
    train(gen, split, TrainConfig(epochs=ep["generalist"], seed=seed, **RECIPE), progress=False)
    z_train, _ = logits_of(gen, split.train)
    subsets = fixed or confusable_subsets(F.softmax(z_train, 1), clusters, seed=seed)
    cfg = TrainConfig(epochs=ep["specialist"], seed=seed, **{**RECIPE, "lr": 0.01})
    z_g, y = logits_of(gen, split.val)
    conf = torch.isin(y, torch.tensor(sorted({c for s in subsets for c in s})))
    every = torch.ones_like(conf)
    row = {"subsets": subsets, "gen_conf": accuracy(z_g, y, conf),
           "gen_all": accuracy(z_g, y, every)}
    kinds = {"comb": train_specialist}
    if full:  # Sec. 6.1: full softmax, hard targets on the subset, soft (T = 20) elsewhere
        kinds["full"] = lambda g, sp, s, c, patience: train_full_specialist(
            g, sp, s, c, T=20.0, patience=patience)
    for key, make in kinds.items():
        specs = [make(gen, split, s, cfg, patience=2) for s in subsets]
        z_c, _ = logits_of(SpecialistEnsemble(gen, specs), split.val)
        row[f"{key}_conf"], row[f"{key}_all"] = accuracy(z_c, y, conf), accuracy(z_c, y, every)
    return row


def plot(rows, path):
    from cnnlab.plot import _pyplot

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 3.5), dpi=110)
    cols = [("gen", "generalist"), ("comb", "+ dustbin specialists")]
    if "full_all" in rows[0]:
        cols.append(("full", "+ full-softmax specialists"))
    w = 0.8 / len(cols)
    for i, key in enumerate(("conf", "all")):
        for j, (c, label) in enumerate(cols):
            m, s = ms([r[f"{c}_{key}"] for r in rows])
            ax.bar(i + (j - (len(cols) - 1) / 2) * w, m, w, yerr=s, capsize=3, color=f"C{j}",
                   label=label if i == 0 else None)
    ax.set_xticks([0, 1], ["confusable classes", "all classes"])
    lo = min(r[f"{c}_conf"] for r in rows for c, _ in cols)
    ax.set_ylim(max(0, lo - 5), 100)
    ax.set_ylabel("validation top-1 (%)")
    ax.legend(fontsize=8)
    ax.set_title(f"specialists on MNIST 8k/2k ({len(rows)} seeds)")
    save_figure(fig, path)


def main() -> int:
    ap = seed_parser(__doc__, FIGURE)
    ap.add_argument("--subsets", nargs="+", metavar="C,C,…",
                    help="fixed subsets instead of k-means (e.g. 3,5,8 4,9)")
    ap.add_argument("--clusters", type=int, default=4, help="k of the k-means")
    ap.add_argument("--full", action="store_true",
                    help="also full-softmax specialists (Sec. 6.1), beside the dustbin ones")
    args = ap.parse_args()
    torch.set_num_threads(1)
    ep = dict(generalist=1, specialist=1) if args.quick else dict(generalist=4, specialist=6)
    fixed = [[int(c) for c in t.split(",")] for t in args.subsets] if args.subsets else None
    rows = collect(args, lambda split: (
        (f"seed {seed}", lambda seed=seed: run_seed(split, seed, ep, fixed, args.clusters,
                                                     args.full))
        for seed in args.seeds))
    if rows is None:
        return 0
    print(f"MNIST 8,000/2,000, {len(rows)} seeds, mean ± std, "
          f"{cpu_minutes(rows):.1f} CPU-min")
    for r in rows:
        print("subsets found:", " ".join("/".join(map(str, s)) for s in r["subsets"]))
    full = "full_all" in rows[0]
    print("| validation images | generalist | + dustbin specialists |"
          + (" + full-softmax specialists |" if full else ""))
    print("|---|---|---|" + ("---|" if full else ""))
    for key, label in (("conf", "of the confusable classes"), ("all", "all")):
        cols = ["gen", "comb"] + (["full"] if full else [])
        cells = [ms([r[f"{c}_{key}"] for r in rows]) for c in cols]
        print(f"| {label} | " + " | ".join(f"{m:.2f} ± {s:.2f} %" for m, s in cells) + " |")
    plot(rows, args.figure)
    return 0


if __name__ == "__main__":
    sys.exit(main())
