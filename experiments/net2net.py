"""Net2Net (Chen, Goodfellow, Shlens 2016; deck 002:1697-1716) on the MNIST split.

    python experiments/net2net.py [--seeds 0 1 2] [--quick]

A narrow, shallow teacher 784-200-10 is trained, then grown by Net2WiderNet (200 → 400
units, small noise to break the replicas' symmetry) and Net2DeeperNet (an identity 400×400
layer after the ReLU) into a 784-400-400-10 net and trained on; the same 784-400-400-10 from
random init is trained alike. Validation accuracy per epoch (epoch 0 = before training) for
both goes into one PNG; the grown net must start at the teacher's accuracy, not at chance.
Paper (ImageNet, Inception): the grown nets converge faster to the same accuracy.
"""

from __future__ import annotations

import sys

import torch
from _common import collect, cpu_minutes, ms, save_figure, seed_parser

from cnnlab.compress.net2net import net2deeper, net2wider
from cnnlab.models.lenet import MLP
from cnnlab.train import TrainConfig, evaluate, train

RECIPE = dict(batch_size=100, lr=0.02, momentum=0.9, weight_decay=0.0, schedule="cosine",
              device="cpu", channels_last=False)


FIGURE = "experiments/figures/net2net.png"


def curve(model, split, epochs, seed):
    accs = [evaluate(model, split.val)["top1"]]
    res = train(model, split, TrainConfig(epochs=epochs, seed=seed, **RECIPE), progress=False)
    return accs + [r["val_top1"] for r in res.history]


def run_seed(split, seed, ep):
    torch.manual_seed(seed)
    teacher = MLP(hidden=(200,))
    train(teacher, split, TrainConfig(epochs=ep["teacher"], seed=seed, **RECIPE), progress=False)
    teacher_acc = evaluate(teacher, split.val)["top1"]
    net2wider(teacher, ["features.1"], ["head.fc"], 400, noise=0.01, seed=seed)
    net2deeper(teacher, "features.2", "linear")
    grown = curve(teacher, split, ep["student"], seed)
    torch.manual_seed(seed)
    scratch = curve(MLP(hidden=(400, 400)), split, ep["student"], seed)
    return {"teacher": teacher_acc, "grown": grown, "scratch": scratch}


def plot(rows, path):
    from cnnlab.plot import _pyplot

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.8), dpi=110)
    for key, label in (("grown", "Net2Net: 784-200-10 grown wider + deeper"),
                       ("scratch", "784-400-400-10 from random init")):
        n = len(rows[0][key])
        m = [ms([r[key][i] for r in rows]) for i in range(n)]
        ax.errorbar(range(n), [a for a, _ in m], yerr=[s for _, s in m], label=label,
                    capsize=3, marker="o", ms=3)
    t = ms([r["teacher"] for r in rows])[0]
    ax.axhline(t, ls=":", c="grey", label=f"teacher 784-200-10 ({t:.2f} %)")
    ax.set_xlabel("epoch (0 = at initialisation)")
    ax.set_ylabel("validation top-1 (%)")
    ax.set_ylim(max(0, min(t - 10, 85)), 100)
    ax.legend(fontsize=8, loc="lower right")
    ax.set_title(f"Net2Net on MNIST 8k/2k ({len(rows)} seeds)")
    save_figure(fig, path)


def main() -> int:
    ap = seed_parser(__doc__, FIGURE)
    args = ap.parse_args()
    torch.set_num_threads(1)
    ep = dict(teacher=1, student=1) if args.quick else dict(teacher=8, student=6)
    rows = collect(args, lambda split: (
        (f"seed {seed}", lambda seed=seed: run_seed(split, seed, ep)) for seed in args.seeds))
    if rows is None:
        return 0
    print(f"MNIST 8,000/2,000, {len(rows)} seeds, mean ± std, {cpu_minutes(rows):.1f} CPU-min")
    n = len(rows[0]["grown"])
    print("| epoch | grown (Net2Net) | from random init |")
    print("|---|---|---|")
    for i in range(n):
        g, s = ms([r["grown"][i] for r in rows]), ms([r["scratch"][i] for r in rows])
        print(f"| {i} | {g[0]:.2f} ± {g[1]:.2f} | {s[0]:.2f} ± {s[1]:.2f} |")
    t = ms([r["teacher"] for r in rows])
    print(f"\nteacher 784-200-10: {t[0]:.2f} ± {t[1]:.2f} %")
    plot(rows, args.figure)
    return 0


if __name__ == "__main__":
    sys.exit(main())
