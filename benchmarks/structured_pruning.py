"""Fewer mult-adds are not the same speed-up: structured pruning to 50 % of the mult-adds and
the CPU latency it buys (the ShuffleNet V2 lesson, Ma et al. 2018, Sec. 2).

    python benchmarks/structured_pruning.py [--macs 0.5] [--threads 1] [--rounds 5]
                                            [--models resnet50,mobilenet_v2,...] [--size 224]

Each model is pruned with the L1 filter score (global ranking, :mod:`cnnlab.compress.structured`)
to keep ``--macs`` of its mult-adds, then the original and the pruned model are timed in turns
(batch 1, eval mode, no grad, median of the runs of ``--rounds`` alternating rounds), so a
load change on the shared machine hits both. The weights are the builders' initialisation:
latency does not depend on their values, and which channels go changes the shapes little.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

import cnnlab
from cnnlab.compress.structured import prune
from cnnlab.table import human, render

MODELS = ["resnet50", "mobilenet_v2", "shufflenet_v2_x1_0"]


def timed(model, x, runs):
    out = []
    with torch.inference_mode():
        model(x)
        for _ in range(runs):
            t0 = time.perf_counter()
            model(x)
            out.append(time.perf_counter() - t0)
    return out


def run(name, macs, size, rounds, runs):
    torch.manual_seed(0)
    model = cnnlab.create_model(name).eval()
    input_size = (cnnlab.model_info(name).input_size[0], size, size)
    t0 = time.perf_counter()
    res = prune(model, macs=macs, input_size=input_size)
    seconds = time.perf_counter() - t0
    pruned = res.model.eval()
    p0, p1 = cnnlab.profile(model, input_size), cnnlab.profile(pruned, input_size)
    x = torch.randn(1, *input_size)
    times = {0: [], 1: []}
    for _ in range(rounds):  # alternate the contenders
        times[0] += timed(model, x, runs)
        times[1] += timed(pruned, x, runs)
    ms0, ms1 = (1000 * statistics.median(times[k]) for k in (0, 1))
    return dict(model=name, units=len(res.graph), removed=len(res.removed), seconds=seconds,
                params0=p0.params, params1=p1.params, macs0=p0.macs, macs1=p1.macs,
                mac0=p0.memory_access, mac1=p1.memory_access, ms0=ms0, ms1=ms1)


def report(results):
    rows = []
    for r in results:
        macs_r, ms_r = r["macs1"] / r["macs0"], r["ms1"] / r["ms0"]
        rows.append([r["model"], f"{r['removed']}/{r['units']}", human(r["params0"]),
                     human(r["params1"]), human(r["macs0"]), human(r["macs1"]),
                     f"{macs_r:.2f}", f"{r['mac1'] / r['mac0']:.2f}", f"{r['ms0']:.1f}",
                     f"{r['ms1']:.1f}", f"{ms_r:.2f}", f"{(1 - ms_r) / (1 - macs_r):.2f}",
                     f"{r['seconds']:.1f}"])
    header = ["model", "units cut", "params", "pruned", "mult-adds", "pruned", "madd ratio",
              "MAC ratio", "ms", "pruned ms", "latency ratio", "speed-up share", "prune s"]
    text = render(rows, header, right=set(range(1, 13)))
    return text + ("\n\nratios = pruned / original; MAC = ShuffleNet V2's memory access cost; "
                   "speed-up share = latency saved / mult-adds saved (1 = latency falls as "
                   "much as mult-adds).")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--macs", type=float, default=0.5, help="share of mult-adds kept")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=5, help="alternating rounds")
    ap.add_argument("--runs", type=int, default=5, help="timed passes per round")
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--models", default=",".join(MODELS))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    results = [run(n, args.macs, args.size, args.rounds, args.runs)
               for n in args.models.split(",")]
    print(f"batch 1, {args.size} px, {args.threads} thread(s), keep {args.macs:.0%} of "
          "mult-adds (L1 score)")
    print(report(results))


if __name__ == "__main__":
    main()
