"""ENAS (Pham et al. 2018) against random search with the same weight sharing, and against
hand-designed networks of similar cost, on scikit-learn's 8×8 digits.

    python experiments/enas.py [--seeds 0 1 2] [--epochs 10] [--retrain-epochs 30]

For each seed and each space (macro, micro): an ENAS search and a random search of the same
number of ω epochs on 1,137 of the 1,437 training images (300 held out to score children),
the derived networks retrained from scratch on all 1,437 and measured on the 360 validation
images, beside ``resnet20`` and ``mobilenet_v1`` (width 0.25) trained the same way. Spaces
are scaled down for a shared 2-core CPU: macro 6 layers, F = 16; micro B = 5 (3 blocks),
2 + 3 layers, F = 8. Prints a markdown table (mean ± std over seeds) and writes
``experiments/figures/enas_rewards.png``. Results are cached in ``--work`` (a rerun reuses
finished searches).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch
from _common import pm

import cnnlab
from cnnlab.data import load_dataset
from cnnlab.profile import profile
from cnnlab.search.enas import SearchConfig, read_log, search
from cnnlab.train import TrainConfig, train

SPACES = {"macro": dict(num_layers=6, filters=16),
          "micro": dict(num_layers=3, filters=8, num_nodes=5)}
PAPER = ("Paper (CIFAR-10, Table 2): ENAS macro 4.23 % error (21.3 M), micro 3.54 % (4.6 M); "
         "NAS-era random search was not reported by ENAS.")


def retrain(model, split, epochs, seed):
    cfg = TrainConfig(epochs=epochs, batch_size=64, lr=0.05, weight_decay=5e-4,
                      schedule="cosine", seed=seed, device="cpu")
    torch.manual_seed(seed)
    t = time.perf_counter()
    res = train(model, split, cfg, progress=False)
    prof = profile(model, (1, 8, 8))
    return {"top1": res.metrics["top1"], "params": prof.params, "macs": prof.macs,
            "train_s": time.perf_counter() - t}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--epochs", type=int, default=10, help="search epochs (ω passes)")
    ap.add_argument("--retrain-epochs", type=int, default=30)
    ap.add_argument("--work", default="/tmp/cnnlab_enas_runs")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    split = load_dataset("digits")
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    rows: dict[str, list[dict]] = {}
    curves = {}
    for seed in args.seeds:
        for space, kw in SPACES.items():
            for method in ("enas", "random"):
                run = work / f"{space}_{method}_{seed}"
                res_file = run / "result.json"
                if res_file.is_file():
                    res = json.loads(res_file.read_text())
                else:
                    cfg = SearchConfig(space=space, epochs=args.epochs, seed=seed,
                                       random=method == "random", out_dir=str(run),
                                       resume=(run / "search.safetensors").is_file(), **kw)
                    r = search(split, cfg, progress=False, log=print)
                    net = cnnlab.create_model("enas", config=str(run / "final.json"),
                                              in_chans=1)
                    res = {"search_s": r.seconds, "score": r.score,
                           **retrain(net, split, args.retrain_epochs, seed)}
                    res_file.write_text(json.dumps(res))
                print(space, method, seed, res)
                rows.setdefault(f"{space} {method}", []).append(res)
                if method == "enas":
                    acc = [x["accuracy"] for x in read_log(run / "search.jsonl")
                           if x["phase"] == "theta"]
                    curves.setdefault(space, []).append(acc)
        for name, kw in (("resnet20", {}), ("mobilenet_v1 0.25", {"width_mult": 0.25})):
            f = work / f"{name.replace(' ', '_')}_{seed}.json"
            if f.is_file():
                res = json.loads(f.read_text())
            else:
                torch.manual_seed(seed)
                net = cnnlab.create_model(name.split()[0], num_classes=10, in_chans=1, **kw)
                res = retrain(net, split, args.retrain_epochs, seed)
                f.write_text(json.dumps(res))
            rows.setdefault(name, []).append(res)
    print_table(rows, args)
    plot(curves, Path("experiments/figures/enas_rewards.png"))


def print_table(rows, args):
    print(f"\ndigits, {len(args.seeds)} seeds, search {args.epochs} epochs, retrain "
          f"{args.retrain_epochs} epochs; mean ± std\n")
    print("| network | val top-1 % | params | mult-adds | search s | retrain s |")
    print("|---|---|---|---|---|---|")
    for name, rs in rows.items():
        search_s = pm([r["search_s"] for r in rs]) if "search_s" in rs[0] else "–"
        print(f"| {name} | {pm([r['top1'] for r in rs])} | "
              f"{statistics.mean(r['params'] for r in rs) / 1e3:.0f} K | "
              f"{statistics.mean(r['macs'] for r in rs) / 1e6:.2f} M | {search_s} | "
              f"{pm([r['train_s'] for r in rs])} |")
    print("\n" + PAPER)


def plot(curves, path):
    from cnnlab.plot import _pyplot

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=100)
    for space, runs in curves.items():
        n = min(len(r) for r in runs)
        mean = [statistics.mean(r[i] for r in runs) for i in range(n)]
        k = 20
        smooth = [statistics.mean(mean[max(0, i - k + 1):i + 1]) for i in range(n)]
        ax.plot(smooth, label=f"{space} (mean of {len(runs)} seeds, moving avg {k})")
    ax.set_xlabel("controller step")
    ax.set_ylabel("child accuracy on a validation batch")
    ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
