"""Full precision vs Binary-Weight-Network vs XNOR-Net (Rastegari et al. 2016) on real MNIST.

    python experiments/binary_nets.py [--epochs lenet5_caffe=4,resnet20=1] [--seeds 3]
                                      [--bn all|xnor] [--out DIR] [--report-only]

For ``lenet5_caffe`` and ``resnet20`` (1 input channel), each trained from scratch with the
same recipe (Adam 1e-3 — AdamW without decay; the paper trains XNOR-Net with Adam —,
cosine, batch 64, no augmentation) as full precision, BWN and XNOR-Net (first and last layers real,
:func:`cnnlab.compress.binarize`), over 3 seeds; reports validation top-1 mean ± std and the
size of the saved weights (fp32 safetensors vs :func:`cnnlab.compress.binary.save_binary`,
1 bit per binary weight). Paper (AlexNet, ImageNet top-1, Fig. 1 and deck 004:316): full
precision 56.7 % (Table 1: 56.6 %), BWN 56.8 %, XNOR-Net 44.2 %; the ordering
full ≥ BWN > XNOR is the claim checked here.

Batch norm (``--bn``): the paper compares the three on one AlexNet with batch norm in every
block (its released models: conv → BN → ReLU for BWN, BN → BinActiv → BinConv for XNOR-Net).
``all`` (the default) holds that fixed here: every variant gets a BatchNorm in front of each
layer that XNOR-Net binarises (:func:`cnnlab.compress.binary.add_input_bn` for full
precision, ``binarize(..., input_bn=True)`` for BWN), so they differ only in what is binary.
``xnor`` is the paper's blocks on a model as it is: only XNOR-Net's layers gain a BatchNorm,
which for a model without any (Caffe's LeNet) also compares "no BN" against "BN".

The data are the 10,000 MNIST images shipped in ``data/mnist``, split 8,000 / 2,000. Runs are
short, one thread each, on a shared 2-core CPU: ``lenet5_caffe`` 4 epochs × 3 seeds;
``resnet20`` 1 epoch (125 steps) × the seeds the time allowed (``--first-seed``/``--seeds``/
``--modes`` split the work over processes), so both are below what longer training reaches.
Each finished run is appended to ``DIR/runs.jsonl``, so an interrupted experiment resumes;
the table goes to stdout and the PNG to ``experiments/figures/binary_nets.png``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

import cnnlab
from cnnlab.compress.binary import add_input_bn, binarize, save_binary

MODELS = ("lenet5_caffe", "resnet20")
MODES = ("fp32", "bwn", "xnor")
BN = ("xnor", "all")  # BatchNorm in front of binary layers: XNOR-Net's only / every variant's
RECIPE = dict(batch_size=64, optimizer="adamw", lr=1e-3, weight_decay=0.0, schedule="cosine",
              augment="", eval_batch_size=500)
PAPER = {"fp32": 56.7, "bwn": 56.8, "xnor": 44.2}  # AlexNet top-1, Fig. 1 (deck 004:316)
FIGURE = Path(__file__).parent / "figures" / "binary_nets.png"


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def run_one(name: str, mode: str, seed: int, epochs: float, split, out: Path,
            bn: str = "all") -> dict:
    from safetensors.torch import save_file

    from cnnlab.train import TrainConfig, evaluate, train

    torch.manual_seed(seed)
    model = cnnlab.create_model(name, in_chans=1)
    if bn == "all" and mode == "fp32":
        add_input_bn(model)
    if mode != "fp32":
        binarize(model, mode, input_bn=True if bn == "all" else None)
    t0 = time.time()
    train(model, split, TrainConfig(**RECIPE, epochs=epochs, seed=seed), progress=False)
    top1 = float(evaluate(model, split.val)["top1"])
    if mode == "fp32":  # one file per run: parallel runs must not share it
        fp32_path = out / f"{name}_fp32_{bn}_{seed}.safetensors"
        save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(fp32_path))
        size = fp32_path.stat().st_size
    else:
        size = save_binary(model, out / f"{name}_{mode}_{bn}_{seed}.safetensors",
                           meta={"model": name, "config": {"in_chans": 1}})
    return dict(model=name, mode=mode, bn=bn, seed=seed, epochs=epochs, top1=top1, bytes=size,
                seconds=round(time.time() - t0, 1))


def summarize(runs: list[dict]) -> list[dict]:
    runs = [{"bn": "xnor", **r} for r in runs]  # runs from before --bn had the paper's blocks
    runs = list({(r["model"], r["mode"], r["bn"], r["seed"]): r for r in runs}.values())
    rows = []
    for name, bn, mode in ((n, b, m) for n in MODELS for b in BN for m in MODES):
        rs = [r for r in runs if r["model"] == name and r["mode"] == mode and r["bn"] == bn]
        if rs:
            acc = [r["top1"] for r in rs]
            rows.append(dict(model=name, mode=mode, bn=bn, n=len(rs), mean=statistics.mean(acc),
                             std=statistics.stdev(acc) if len(acc) > 1 else 0.0,
                             bytes=rs[0]["bytes"], epochs=rs[0]["epochs"],
                             seconds=statistics.mean(r["seconds"] for r in rs)))
    return rows


def report(rows: list[dict]) -> str:
    from cnnlab.table import render

    fp32 = {(r["model"], r["bn"]): r["bytes"] for r in rows if r["mode"] == "fp32"}
    table = [[r["model"], r["mode"], r["bn"], f"{r['epochs']:g}", r["n"],
              f"{r['mean']:.2f} ± {r['std']:.2f}", f"{r['bytes'] / 1024:.1f}",
              f"{fp32.get((r['model'], r['bn']), r['bytes']) / r['bytes']:.1f}x",
              f"{PAPER[r['mode']]:.1f}", f"{r['seconds']:.0f}"] for r in rows]
    return render(table, ["model", "weights", "BN in front", "epochs", "seeds", "val top-1 %",
                          "file KiB", "smaller", "paper: AlexNet top-1 %", "wall s/run"],
                  right={3, 4, 5, 6, 7, 8, 9})


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4))
    colors = {"fp32": "tab:blue", "bwn": "tab:orange", "xnor": "tab:red"}
    for ax, name in zip(axes, MODELS):
        for r in (r for r in rows if r["model"] == name):
            ax.errorbar(r["bytes"] / 1024, r["mean"], yerr=r["std"],
                        fmt="o" if r["bn"] == "all" else "s", capsize=4,
                        mfc=colors[r["mode"]] if r["bn"] == "all" else "none",
                        color=colors[r["mode"]],
                        label=f"{r['mode']}, BN " + ("in all" if r["bn"] == "all" else
                                                     "in xnor only"))
        ax.set_xscale("log")
        ax.set_xlabel("weights file (KiB, log)")
        ax.set_ylabel("MNIST val top-1 (%)")
        ax.set_title(name)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle("Full precision vs BWN vs XNOR-Net (paper, AlexNet/ImageNet: "
                 "56.7 / 56.8 / 44.2 %)", fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", default="lenet5_caffe=4,resnet20=1")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--first-seed", type=int, default=0)
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--modes", default=",".join(MODES))
    ap.add_argument("--bn", default="all", choices=BN,
                    help="BatchNorm in front of the binarised layers: in every variant (all) "
                         "or in XNOR-Net's only (xnor, the paper's blocks on the model as is)")
    ap.add_argument("--out", default="/tmp/cnnlab_binary_nets")
    ap.add_argument("--report-only", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(1)
    epochs = {k: float(v) for k, v in (kv.split("=") for kv in args.epochs.split(","))}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    done_path = out / "runs.jsonl"
    runs = [json.loads(line) for line in done_path.read_text().splitlines()] \
        if done_path.exists() else []
    if not args.report_only:
        from cnnlab.data import load_dataset

        split = load_dataset("mnist:data/mnist", val_split=2000, seed=0, input_size=(1, 28, 28))
        for seed in range(args.first_seed, args.first_seed + args.seeds):
            for name in args.models.split(","):
                for mode in args.modes.split(","):
                    if any(r["model"] == name and r["mode"] == mode and r["seed"] == seed
                           and r.get("bn", "xnor") == args.bn for r in runs):
                        continue
                    r = run_one(name, mode, seed, epochs[name], split, out, args.bn)
                    log(json.dumps(r))
                    runs.append(r)
                    with open(done_path, "a") as f:
                        f.write(json.dumps(r) + "\n")
    rows = summarize(runs)
    print(report(rows))
    plot(rows, FIGURE)
    return 0


if __name__ == "__main__":
    sys.exit(main())
