"""``cnnlab search enas``: ENAS (or random search with weight sharing) over the macro or
micro space; the run directory holds the log, the reward plot, a resumable checkpoint and
``final.json``, which ``cnnlab train enas --set config=OUT/final.json`` retrains."""

from __future__ import annotations

import json
import sys

from cnnlab.cli.common import CliError, emit, parse_sets, rank, split_opts

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


def add_commands(sub) -> None:
    p = sub.add_parser("search", help="architecture search (ENAS, random search)")
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
