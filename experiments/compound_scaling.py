"""EfficientNet's compound-coefficient search (Tan & Le 2019, Sec. 4 step 1) and the
"compound beats one-dimensional scaling" claim (Fig. 3, Sec. 3.3), at MNIST scale, 3 seeds.

    nice -n 10 python experiments/compound_scaling.py [--seeds 0 1 2] [--train-images 1500]

The same run as ``cnnlab search compound --data mnist:data/mnist --val-split 2000
--train-images 1500 --resolution 12 --seed 0 --seeds 3 --out DIR``: baseline = B0's seven
MBConv stages at width 0.25, depth 0.5 (10 blocks), 12 px (MNIST resized); 2,000 validation
images, the first 1,500 of the other 8,000 to train (the budget of a shared 2-core CPU).
Step 1: α ∈ {1, 1.2, 2}, β ∈ {1, 1.1, √2}, γ solved from α·β²·γ² = 2 (6 candidates), each
trained 2 epochs on every seed, ranked by the mean accuracy under a budget of 2.2× the
baseline's mult-adds (the step-0 reward ACC·(MACs/T)^−0.07 printed beside). Step 2: the
winner and the paper's α, β, γ at φ = 1.5 against depth-, width- and resolution-only
networks of at most the winner's mult-adds, 2 epochs, every seed. Prints the tables and
writes ``experiments/figures/compound_scaling.png`` (and ``.json`` beside it).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from cnnlab.search.compound_run import CompoundConfig, plot, run, tables

FIG = Path("experiments/figures/compound_scaling.png")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--train-images", type=int, default=1500)
    ap.add_argument("--grid-epochs", type=float, default=2)
    ap.add_argument("--epochs", type=float, default=2)
    ap.add_argument("--phi", type=float, default=1.5)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    cfg = CompoundConfig(data="mnist:data/mnist", val_split=2000,
                         train_images=args.train_images, resolution=12,
                         grid_epochs=args.grid_epochs, epochs=args.epochs, phi=args.phi,
                         seeds=tuple(args.seeds))
    t0 = time.process_time()
    result = run(cfg, log=lambda line: print(line, flush=True),
                 progress=lambda done, total: print(f"  run {done}/{total} "
                                                    f"{time.process_time() - t0:.0f} CPU s",
                                                    flush=True))
    result["cpu_seconds"] = round(time.process_time() - t0, 1)
    print(tables(result))
    print(f"{result['seconds']:.0f} s wall, {result['cpu_seconds']:.0f} CPU s")
    FIG.parent.mkdir(parents=True, exist_ok=True)
    plot(result, FIG)
    FIG.with_suffix(".json").write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {FIG}")


if __name__ == "__main__":
    main()
