"""``cnnlab ablate``: re-run a deck's design claim at CPU scale, the paper's figure beside
ours, and say whether it reproduces."""

from __future__ import annotations

from cnnlab.cli.common import CliError, emit, output_dir, positive_float, positive_int


def cmd_ablate(args) -> int:
    import torch

    from cnnlab.ablate import get_ablation, list_ablations, run_ablation, table, write_results

    if args.list:
        if args.name:
            raise CliError("--list takes no ablation name")
        items = [get_ablation(n) for n in list_ablations()]
        if args.json:
            emit([{"name": a.name, "title": a.title, "source": a.source,
                   "variants": [v.name for v in a.variants]} for a in items])
        else:
            for a in items:
                print(f"{a.name:20s} {a.title} ({a.source})")
        return 0
    if not args.name:
        raise CliError("name an ablation (cnnlab ablate --list shows them)")
    if not args.out:
        raise CliError("--out DIR is required")
    ablation = get_ablation(args.name)
    out = output_dir(args.out)
    if args.data:
        from cnnlab.data import parse_spec

        parse_spec(args.data)
    torch.set_num_threads(args.threads)
    log = None if args.json else (lambda line: print(line, flush=True))
    result = run_ablation(ablation, seeds=args.seeds, budget_min=args.budget, data=args.data,
                          iters=args.iters, log=log)
    jpath, ppath = write_results(result, out)
    if args.json:
        emit({**result, "json": str(jpath), "png": str(ppath)})
    else:
        print(table(result))
        print(f"wrote {jpath} and {ppath}")
    return 0


def add_commands(sub) -> None:
    p = sub.add_parser("ablate", help="re-run a design claim of the decks (--list names them)")
    p.add_argument("name", nargs="?", help="the ablation, e.g. degradation")
    p.add_argument("--list", action="store_true", help="name the ablations with deck and table")
    p.add_argument("--seeds", type=positive_int, default=3, help="runs per variant (3)")
    p.add_argument("--budget", type=positive_float, metavar="MINUTES",
                   help="cut the training steps so that everything fits in this many minutes")
    p.add_argument("--iters", type=positive_int, help="training steps per run (overrides "
                   "the task's and --budget)")
    p.add_argument("--data", help="the study's own task by default (300 training images of "
                   "the shipped MNIST); digits, mnist:DIR, ... (then 500 held out)")
    p.add_argument("--threads", type=positive_int, default=1, help="CPU threads (1)")
    p.add_argument("--out", metavar="DIR", help="folder for NAME.json and NAME.png")
    p.add_argument("--json", action="store_true", help="the results as JSON")
    p.set_defaults(func=cmd_ablate)
