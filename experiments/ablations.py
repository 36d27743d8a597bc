"""The decks' design claims at CPU scale: run ``cnnlab ablate`` studies (3 seeds each) and
print their tables as Markdown for experiments/README.md.

    python experiments/ablations.py gap_fc strided_pool ...   # run, then print
    python experiments/ablations.py --from experiments/figures/ablate   # summary + tables
    python experiments/ablations.py --retime experiments/figures/ablate [--runs 30]

``--retime`` measures the latency column again without retraining: each study's variants
(random weights, batch 1, one thread) timed in turns, as this process's CPU time, so that a
busy machine during the training runs no longer decides the column.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

OUT = Path(__file__).parent / "figures" / "ablate"


def markdown(r: dict) -> str:
    by_steps = r.get("target_error") is not None
    measure = f"steps to {100 * r['target_error']:.0f} % val error" if by_steps \
        else "val accuracy"
    lines = [f"**{r['title']}** ({r['source']}); {r['data']}, {r['train_images']} training "
             f"images, {r['iters']} steps, {r['seeds']} seeds",
             "", f"| variant | params | mult-adds | latency ms | {measure} | paper |",
             "|---|---:|---:|---:|---:|---|"]
    for v in r["variants"]:
        m = (f"{v['steps_mean']:.0f} ± {v['steps_std']:.0f} ({v['reached']}/{len(v['runs'])})"
             if by_steps else f"{100 * v['acc_mean']:.2f} ± {100 * v['acc_std']:.2f} %")
        lines.append(f"| {v['variant']} | {v['params']:,} | {v['macs']:,} | "
                     f"{v['latency_ms']:.2f} | {m} | {v['paper']} |")
    lines.append("")
    lines += [f"- {c['claim']}: **{c['verdict']}**" for c in r["verdicts"]]
    return "\n".join(lines) + "\n"


def summary(results: list[dict]) -> str:
    """One row per claim: study, claim, verdict, task."""
    lines = ["| study | claim | verdict | task |", "|---|---|---|---|"]
    for r in results:
        task = f"{r['data'].split(':')[0]} {r['train_images']}, {r['iters']} steps"
        for c in r["verdicts"]:
            verdict = c["verdict"].split(" (")[0]
            lines.append(f"| {r['ablation']} | {c['claim'].split(' (')[0]} | **{verdict}** | "
                         f"{task} |")
    return "\n".join(lines) + "\n"


def retime(path: Path, runs: int) -> None:
    """Re-measure one study's latencies in place (see the module docstring)."""
    import time

    import torch

    from cnnlab.ablate import get_ablation
    from cnnlab.deploy.bench import alternate, summarize
    from cnnlab.io import write_bytes_atomic

    r = json.loads(path.read_text())
    ablation = get_ablation(r["ablation"])
    variants = {v.name: v for v in ablation.variants}
    runners = {}
    for row in r["variants"]:
        size = tuple(row["input_size"])
        model = variants[row["variant"]].build(size[0], 10).eval()
        x = torch.randn(1, *size)

        def run(model=model, x=x):
            with torch.inference_mode():
                model(x)
        runners[row["variant"]] = run
    times = alternate(runners, warmup=3, runs=runs, clock=time.process_time)
    for row in r["variants"]:
        row["latency_ms"] = summarize(times[row["variant"]])[0]
    r["latency"] = f"batch 1, 1 thread, CPU time, median of {runs} in turns (--retime)"
    write_bytes_atomic(path, (json.dumps(r, indent=1) + "\n").encode())
    print(f"{r['ablation']}: " + ", ".join(f"{row['variant']} {row['latency_ms']:.2f} ms"
                                             for row in r["variants"]))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("names", nargs="*")
    ap.add_argument("--from", dest="src", type=Path)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--retime", type=Path, help="a folder of results: re-measure latencies")
    ap.add_argument("--runs", type=int, default=30)
    a = ap.parse_args()
    if a.retime:
        import torch

        torch.set_num_threads(1)
        for path in sorted(a.retime.glob("*.json")):
            retime(path, a.runs)
        return
    if a.src:
        results = [json.loads(p.read_text()) for p in sorted(a.src.glob("*.json"))]
        print(summary(results))
        for r in results:
            print(markdown(r))
        return
    import torch

    from cnnlab.ablate import get_ablation, run_ablation, write_results

    torch.set_num_threads(1)
    import sys
    import time

    for name in a.names:
        t0 = time.process_time()
        r = run_ablation(get_ablation(name), seeds=a.seeds)
        write_results(r, OUT)
        print(markdown(r))
        print(f"{name}: {time.process_time() - t0:.0f} CPU seconds", file=sys.stderr, flush=True)


if __name__ == "__main__":
    main()
