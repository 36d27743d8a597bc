"""``cnnlab prune``: structured channel pruning to a mult-add target, with fine-tuning."""

from __future__ import annotations

import sys

from cnnlab.cli.common import CliError, emit, json_opt, parse_sets, set_opt, split_opts


def _layer_times(model, size, runs=10):
    """Median milliseconds per convolution / linear layer (forward hooks around each)."""
    import statistics
    import time

    import torch
    import torch.nn as nn

    times: dict[str, list[float]] = {}
    start: dict[str, float] = {}
    hooks = []
    for name, m in model.named_modules():
        if isinstance(m, (nn.modules.conv._ConvNd, nn.Linear)):
            hooks.append(m.register_forward_pre_hook(
                lambda mod, a, n=name: start.__setitem__(n, time.perf_counter())))
            hooks.append(m.register_forward_hook(
                lambda mod, a, o, n=name: times.setdefault(n, []).append(
                    time.perf_counter() - start[n])))
    model.eval()
    x = torch.randn(1, *size)
    with torch.inference_mode():
        for _ in range(runs):
            model(x)
    for h in hooks:
        h.remove()
    return {n: 1000 * statistics.median(v[1:] or v) for n, v in times.items()}


def _alternating(a, b, size, runs, rounds=5):
    """Median ms of ``a`` and ``b`` timed in turns, so a load change on a shared machine
    hits both."""
    import statistics
    import time

    import torch

    x = torch.randn(1, *size)
    times = ([], [])
    with torch.inference_mode():
        a(x), b(x)
        for _ in range(rounds):
            for model, out in ((a, times[0]), (b, times[1])):
                for _ in range(max(1, runs // rounds)):
                    t0 = time.perf_counter()
                    model(x)
                    out.append(time.perf_counter() - t0)
    return tuple(1000 * statistics.median(t) for t in times)


def _by_module(prof):
    out: dict[str, list[int]] = {}
    for r in prof.rows:
        acc = out.setdefault(r.name, [0, 0])
        acc[0] += r.params
        acc[1] += r.macs
    return out


def cmd_prune(args) -> int:
    import torch

    from cnnlab.compress.depgraph import trace
    from cnnlab.compress.structured import apply_pruning, compute_scores, save_pruned, select
    from cnnlab.models import create_model, model_info
    from cnnlab.profile import profile
    from cnnlab.runspec import RunSpec
    from cnnlab.table import human, render
    from cnnlab.train.checkpoint import load_checkpoint

    if not 0 < args.macs <= 1:
        raise CliError(f"--macs must be in (0, 1], got {args.macs}")
    if args.finetune_epochs < 0:
        raise CliError("--finetune-epochs must be >= 0")
    from cnnlab.cli.common import new_output_dir
    from cnnlab.io import atomic_dir

    out = new_output_dir(args.out)
    if args.threads:
        torch.set_num_threads(args.threads)
    run = RunSpec.from_checkpoint(args.checkpoint)
    run.check_model(args.model)
    config = run.builder_args(parse_sets(args.set))
    size = run.input_size or tuple(model_info(args.model).input_size)
    split = None
    spec, val_split, seed = run.split_args(args.data, args.val_split, args.split_seed)
    if spec:
        from cnnlab.data import load_dataset

        split = load_dataset(spec, val_split=val_split, seed=seed, input_size=size)
        config.setdefault("num_classes", split.num_classes)
        config.setdefault("in_chans", split.in_chans)
    if args.score == "taylor" and split is None:
        raise CliError("--score taylor needs --data")
    model = create_model(args.model, **config)
    load_checkpoint(args.checkpoint, model)
    model.eval()

    # everything that can fail on the user's input fails here, before any long work
    graph = trace(model, size)
    if not len(graph):
        raise CliError(f"{args.model} has no prunable channel")
    batches = None
    if args.score == "taylor":
        g = torch.Generator().manual_seed(0)
        idx = torch.randperm(len(split.train), generator=g)[:4 * args.batch_size]
        batches = [(split.train.normalize(split.train.x[j]), split.train.y[j])
                   for j in idx.split(args.batch_size)]
    scores = compute_scores(model, graph, args.score, batches)
    removed = select(graph, scores, macs=args.macs)
    pruned = apply_pruning(model, graph, removed)

    log = (lambda m: None) if args.json else (lambda m: print(m, file=sys.stderr, flush=True))
    from cnnlab.train import TrainConfig, evaluate, train

    acc = {}
    if split is not None:
        acc["original"] = float(evaluate(model, split.val)["top1"])
        acc["pruned"] = float(evaluate(pruned, split.val)["top1"])
        if args.finetune_epochs > 0:
            log(f"fine-tuning {args.finetune_epochs:g} epochs ...")
            train(pruned, split, TrainConfig(epochs=args.finetune_epochs, lr=args.lr,
                                             batch_size=args.batch_size, seed=0),
                  progress=False, log=log)
            acc["finetuned"] = float(evaluate(pruned, split.val)["top1"])
    pruned.eval()
    p0, p1 = profile(model, size), profile(pruned, size)
    ms0, ms1 = _alternating(model, pruned, size, args.runs)
    t0, t1 = _layer_times(model, size), _layer_times(pruned, size)
    m0, m1 = _by_module(p0), _by_module(p1)
    layers = []
    for name, mod in model.named_modules():
        if name not in t0:
            continue
        new = pruned.get_submodule(name)
        width = getattr(mod, "out_channels", getattr(mod, "out_features", 0))
        new_width = getattr(new, "out_channels", getattr(new, "out_features", 0))
        layers.append(dict(layer=name, channels=width, channels_after=new_width,
                           params=m0.get(name, [0, 0])[0], params_after=m1.get(name, [0, 0])[0],
                           macs=m0.get(name, [0, 0])[1], macs_after=m1.get(name, [0, 0])[1],
                           ms=t0[name], ms_after=t1.get(name, 0.0)))
    total = dict(units=len(graph), removed=len(removed), params=p0.params,
                 params_after=p1.params, macs=p0.macs, macs_after=p1.macs, ms=ms0,
                 ms_after=ms1, accuracy=acc)

    with atomic_dir(out) as tmp:
        save_pruned(pruned, tmp, model_name=args.model, model_kwargs=config,
                    extra={"input_size": list(size), "score": args.score,
                           "macs_target": args.macs, "totals": total})
    if args.json:
        emit({"layers": layers, "total": total, "out": str(out)})
        return 0
    rows = [[r["layer"], f"{r['channels']}→{r['channels_after']}",
             f"{human(r['params'])}→{human(r['params_after'])}",
             f"{human(r['macs'])}→{human(r['macs_after'])}",
             f"{r['ms']:.3f}→{r['ms_after']:.3f}"] for r in layers]
    rows.append(["total", f"{len(removed)}/{len(graph)} units cut",
                 f"{human(p0.params)}→{human(p1.params)}", f"{human(p0.macs)}→{human(p1.macs)}",
                 f"{ms0:.2f}→{ms1:.2f}"])
    print(render(rows, ["layer", "channels", "params", "mult-adds", "CPU ms (batch 1)"],
                 right={1, 2, 3, 4}))
    print(f"\nmult-adds {p1.macs / p0.macs:.1%} of the original, latency {ms1 / ms0:.1%}")
    if acc:
        print("top-1: " + ", ".join(f"{k} {v:.2f}%" for k, v in acc.items()))
    print(f"wrote {out}/model.safetensors and {out}/structure.json")
    return 0


def add_commands(sub) -> None:
    p = sub.add_parser("prune", help="structured pruning: remove whole channels to a "
                                     "mult-add target, fine-tune, save the smaller model")
    p.add_argument("model")
    p.add_argument("--checkpoint", required=True, help="trained weights (cnnlab checkpoint)")
    p.add_argument("--macs", type=float, default=0.5, help="share of mult-adds kept (0.5)")
    p.add_argument("--score", default="l1", choices=["l1", "bn", "taylor"])
    set_opt(p, "builder argument of the checkpoint's model (repeatable)")
    p.add_argument("--data", help="dataset for Taylor scores, fine-tuning and accuracy "
                                  "(default: the checkpoint's)")
    split_opts(p, "carve N validation images (default: the checkpoint's, same --data)")
    p.add_argument("--finetune-epochs", type=float, default=0)
    p.add_argument("--lr", type=float, default=0.01, help="fine-tuning learning rate")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--runs", type=int, default=20, help="timed passes for the latency")
    p.add_argument("--threads", type=int, help="CPU threads (torch.set_num_threads)")
    p.add_argument("--out", required=True, help="directory to create for the pruned model")
    json_opt(p)
    p.set_defaults(func=cmd_prune)
