"""``cnnlab search enas``: ENAS (or random search with weight sharing) over the macro or
micro space; the run directory holds the log, the reward plot, a resumable checkpoint and
``final.json``, which ``cnnlab train enas --set config=OUT/final.json`` retrains.

``cnnlab search compound``: EfficientNet's α, β, γ grid on a small B0-shaped baseline and
the winner scaled by φ against one-dimensional scaling (``cnnlab.search.compound_run``)."""

from __future__ import annotations

import argparse
import json
import math
import re
import sys

from cnnlab.cli.common import (
    CliError,
    emit,
    new_output_dir,
    nonneg_int,
    parse_sets,
    positive_float,
    positive_int,
    rank,
    split_opts,
)

# search settings --set may change (the rest have their own options)
_SETTABLE = ("num_layers", "filters", "num_nodes", "batch_size", "lr", "weight_decay",
             "controller_steps", "controller_lr", "entropy_weight", "baseline_decay",
             "derive_samples", "search_val")


def cmd_enas(args) -> int:
    from pathlib import Path

    if args.budget is not None and not args.budget > 0:
        raise CliError(f"--budget must be a positive number of minutes, got {args.budget:g}")
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise CliError(f"--out {out} is a file, not a directory")
    if not args.resume and (out / "search.safetensors").exists():
        raise CliError(f"{out} already holds a search; add --resume to continue it or choose "
                       "another --out")
    sets = parse_sets(args.set)
    bad = sorted(set(sets) - set(_SETTABLE))
    if bad:
        raise CliError(f"unknown search setting(s) {', '.join(bad)}; settable: "
                       f"{', '.join(_SETTABLE)}")
    import torch

    from cnnlab.data import load_dataset
    from cnnlab.search.enas import SearchConfig, search

    torch.set_num_threads(args.threads or torch.get_num_threads())
    cfg = SearchConfig(space=args.space, epochs=args.epochs, seed=args.seed,
                       budget_s=args.budget * 60 if args.budget else None, random=args.random,
                       out_dir=str(out), resume=args.resume, **sets)
    split = load_dataset(args.data, args.val_split, args.split_seed or 0)
    log = sys.stderr if args.json else sys.stdout
    if rank() == 0:
        print(f"{'random' if args.random else 'ENAS'} {args.space} search on {split.name} "
              f"({len(split.train)} train images, {cfg.search_val} of them to score children)"
              f", {cfg.make_space().size():.3g} architectures", file=log)
    try:
        res = search(split, cfg, progress=not args.json,
                     log=lambda line: print(line, file=log, flush=True))
    finally:
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            dist.destroy_process_group()
    if rank() != 0:
        return 0
    if args.json:
        emit({"final": str(out / "final.json"), "score": res.score, "epochs": res.epochs,
              "seconds": round(res.seconds, 1), "config": res.config})
    else:
        print(json.dumps({k: v for k, v in res.config.items() if k != "derived"}))
        print(f"done: {res.epochs} epochs in {res.seconds:.0f} s; best child scored "
              f"{res.score:.3f} on a validation batch; config {out / 'final.json'} "
              f"(retrain: cnnlab train enas --set config={out / 'final.json'})")
    return 0


def macs_amount(text: str) -> float:
    """'515082', '0.5M', '2e6', '300K' → mult-adds (positive)."""
    m = re.fullmatch(r"\s*([0-9.eE+-]+)\s*([kKmMgG]?)\s*", text)
    try:
        v = float(m.group(1)) * {"": 1, "k": 1e3, "m": 1e6, "g": 1e9}[m.group(2).lower()]
    except (AttributeError, ValueError):
        v = math.nan
    if not (math.isfinite(v) and v > 0):
        raise argparse.ArgumentTypeError(f"expected a positive number of mult-adds (e.g. "
                                         f"500000 or 0.5M), got {text!r}")
    return v


def coefficients(text: str) -> tuple[float, ...]:
    """'1,1.2,2' → (1.0, 1.2, 2.0), each >= 1 (Eq. 3)."""
    try:
        vals = tuple(float(v) for v in text.split(","))
    except ValueError:
        vals = ()
    if not vals or not all(math.isfinite(v) and v >= 1 for v in vals):
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers >= 1, got {text!r}")
    return vals


def negative_float(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        v = math.nan
    if not (math.isfinite(v) and v < 0):
        raise argparse.ArgumentTypeError(f"expected a negative number, got {text!r}")
    return v


def cmd_compound(args) -> int:
    from cnnlab.data import parse_spec

    out = new_output_dir(args.out)
    parse_spec(args.data)
    import torch

    from cnnlab.io import atomic_dir
    from cnnlab.search.compound_run import CompoundConfig, run, tables, write_results

    torch.set_num_threads(args.threads)
    cfg = CompoundConfig(
        data=args.data, val_split=args.val_split, split_seed=args.split_seed or 0,
        train_images=args.train_images, width=args.width, depth=args.depth,
        resolution=args.resolution, alphas=args.alphas, betas=args.betas,
        budget=args.budget, objective=args.objective, w=args.w, phi=args.phi,
        grid_epochs=args.grid_epochs, epochs=args.epochs, batch_size=args.batch_size,
        lr=args.lr, seeds=tuple(range(args.seed, args.seed + args.seeds)))
    cfg.grid()  # an empty grid is refused before any data is read
    log = sys.stderr if args.json else sys.stdout
    bar = None
    if not args.json and sys.stderr.isatty():
        from tqdm import tqdm

        bar = tqdm(unit="run", desc="compound search", leave=False, dynamic_ncols=True)

    def progress(done, total):
        bar.total = total
        bar.update(done - bar.n)

    try:
        result = run(cfg, log=lambda line: print(line, file=log, flush=True),
                     progress=progress if bar is not None else None)
    finally:
        if bar is not None:
            bar.close()
    with atomic_dir(out) as tmp:
        write_results(result, tmp)
    if args.json:
        emit({**result, "out": str(out)})
    else:
        print(tables(result), end="")
        print(f"wrote {out}/compound.json, compound.md, compound.png "
              f"({result['seconds']:.0f} s)")
    return 0


def _compound_parser(s) -> None:
    c = s.add_parser("compound", help="EfficientNet's compound-coefficient search "
                                      "(Tan & Le 2019)")
    c.add_argument("--data", default="digits", help="digits, mnist:DIR, cifar10:DIR, ...")
    split_opts(c)
    c.add_argument("--train-images", type=positive_int, help="train on the first N images")
    c.add_argument("--width", type=positive_float, default=0.25,
                   help="baseline width multiplier of B0 (0.25)")
    c.add_argument("--depth", type=positive_float, default=0.5,
                   help="baseline depth multiplier of B0 (0.5)")
    c.add_argument("--resolution", type=positive_int, default=12, help="baseline pixels (12)")
    c.add_argument("--alphas", type=coefficients, default=(1.0, 1.2, 2.0),
                   help="depth coefficients of the grid (1,1.2,2)")
    c.add_argument("--betas", type=coefficients, default=(1.0, 1.1, 2 ** 0.5),
                   help="width coefficients (1,1.1,1.414); gamma solves a*b^2*g^2 = 2")
    c.add_argument("--budget", type=macs_amount, metavar="MACS",
                   help="mult-add budget, e.g. 0.5M (default 2.2x the baseline's)")
    c.add_argument("--objective", choices=["budget", "reward"], default="budget",
                   help="budget: accuracy if under the budget, else 0; reward: "
                   "ACC*(MACs/budget)^w (MnasNet's soft constraint)")
    c.add_argument("--w", type=negative_float, default=-0.07, help="reward exponent (-0.07)")
    c.add_argument("--phi", type=positive_float, default=1.5, help="step 2's phi (1.5)")
    c.add_argument("--grid-epochs", type=positive_float, default=2,
                   help="epochs per grid candidate (2)")
    c.add_argument("--epochs", type=positive_float, default=2,
                   help="epochs per step-2 network (2)")
    c.add_argument("--batch-size", type=positive_int, default=32)
    c.add_argument("--lr", type=positive_float, default=0.05)
    c.add_argument("--seed", type=nonneg_int, default=0, help="first seed (0)")
    c.add_argument("--seeds", type=positive_int, default=1,
                   help="number of seeds: every network trains on seed, seed+1, ... (1)")
    c.add_argument("--threads", type=positive_int, default=1, help="CPU threads (1)")
    c.add_argument("--out", required=True, help="new folder for compound.json/.md/.png")
    c.add_argument("--json", action="store_true", help="the result as JSON")
    c.set_defaults(func=cmd_compound)


def add_commands(sub) -> None:
    p = sub.add_parser("search", help="architecture search (ENAS, random search, compound "
                       "scaling)")
    s = p.add_subparsers(dest="search_command", required=True, parser_class=type(p))
    e = s.add_parser("enas", help="ENAS over the macro or micro space (Pham et al. 2018)")
    e.add_argument("--space", choices=["macro", "micro"], default="micro")
    e.add_argument("--data", default="digits", help="digits, mnist:DIR, cifar10:DIR, ...")
    split_opts(e)
    e.add_argument("--budget", type=float, help="minutes of search (stops at an epoch's end)")
    e.add_argument("--epochs", type=int, default=10,
                   help="ω epochs, the length of the cosine schedule (default 10)")
    e.add_argument("--seed", type=int, default=0)
    e.add_argument("--out", required=True, help="run directory")
    e.add_argument("--random", action="store_true",
                   help="random search with the same weight sharing (the baseline)")
    e.add_argument("--resume", action="store_true", help="continue the search in --out")
    e.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help=f"search setting: {', '.join(_SETTABLE)}")
    e.add_argument("--threads", type=int)
    e.add_argument("--json", action="store_true")
    e.set_defaults(func=cmd_enas)
    _compound_parser(s)
