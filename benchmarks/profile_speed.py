"""Seconds to profile every registered model (goal: all of them in < 5 s on 2 CPU cores).

    python benchmarks/profile_speed.py [PATTERN] [--fvcore]

Each model is built on the meta device with weight init skipped and run shape-only. With
``--fvcore`` (and fvcore installed) the same models are counted by fvcore's FlopCountAnalysis
on a real CPU model for comparison (it traces by running the model).
"""

from __future__ import annotations

import argparse
import time

import cnnlab
from cnnlab.table import human, render


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("pattern", nargs="?")
    ap.add_argument("--fvcore", action="store_true", help="time fvcore beside cnnlab")
    args = ap.parse_args()

    t_import = time.perf_counter()
    names = cnnlab.list_models(args.pattern)
    t_import = time.perf_counter() - t_import
    rows, total = [], 0.0
    fv = None
    if args.fvcore:
        try:
            import fvcore.nn as fv  # noqa: F401
        except ImportError:
            print("fvcore is not installed: pip install fvcore")
    for name in names:
        info = cnnlab.model_info(name)
        t0 = time.perf_counter()
        p = cnnlab.profile(name)
        dt = time.perf_counter() - t0
        total += dt
        row = [name, human(p.params), human(p.macs), round(1000 * dt, 1)]
        if fv is not None:
            import torch

            # fvcore traces with real tensors (it cannot run on meta): a CPU model, as its
            # users run it; building the model is not timed
            m = cnnlab.create_model(name).eval()
            t0 = time.perf_counter()
            try:
                flops = fv.FlopCountAnalysis(m, torch.zeros(1, *info.input_size))
                flops.unsupported_ops_warnings(False)
                flops.uncalled_modules_warnings(False)
                row += [human(flops.total()), round(1000 * (time.perf_counter() - t0), 1)]
            except Exception as e:  # fvcore cannot trace some models: say so, go on
                row += [f"error: {type(e).__name__}", ""]
        rows.append(row)
    header = ["model", "params", "mult-adds", "ms"] + (["fvcore", "fvcore ms"] if fv else [])
    print(render(rows, header, right={1, 2, 3, 4, 5}))
    print(f"\n{len(names)} models profiled in {total:.2f} s "
          f"(+ {t_import:.2f} s to import and register them); goal < 5 s")


if __name__ == "__main__":
    main()
