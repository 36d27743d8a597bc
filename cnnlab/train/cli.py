"""``cnnlab train``, ``cnnlab eval``, ``cnnlab recipes`` and ``cnnlab plot``."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from cnnlab.cli import CliError, parse_sets, parse_size


def _emit(obj) -> None:
    print(json.dumps(obj, default=str))


def _rank() -> int:
    return int(os.environ.get("RANK", "0"))


def add_commands(sub) -> None:
    p = sub.add_parser("train", help="train a model on real data (a paper's recipe)")
    p.add_argument("model")
    data_opts(p)
    p.add_argument("--recipe", help="training recipe (default: the model's paper's; see "
                   "`cnnlab recipes`)")
    p.add_argument("--epochs", type=float, help="epochs (overrides a recipe's iterations)")
    p.add_argument("--iters", type=int, help="optimizer steps in all")
    p.add_argument("--batch-size", type=int)
    p.add_argument("--lr", type=float)
    p.add_argument("--optimizer", choices=["sgd", "rmsprop", "adamw"])
    p.add_argument("--schedule")
    p.add_argument("--weight-decay", type=float)
    p.add_argument("--augment", help="e.g. crop:4,flip (see cnnlab.data.augment)")
    p.add_argument("--label-smoothing", type=float)
    p.add_argument("--ema", type=float, help="EMA decay per step, e.g. 0.9998")
    p.add_argument("--amp", choices=["auto", "bf16", "fp16", "off"])
    p.add_argument("--compile", action="store_true", help="torch.compile the model")
    p.add_argument("--channels-last", action="store_true")
    p.add_argument("--opt", action="append", metavar="KEY=VALUE",
                   help="any TrainConfig setting, e.g. warmup=5 (repeatable)")
    p.add_argument("--out", help="directory for checkpoints and metrics.jsonl")
    p.add_argument("--resume", nargs="?", const=True, default=False, metavar="CHECKPOINT",
                   help="continue from OUT/last.safetensors (or the file given)")
    p.add_argument("--save-every", type=int, help="also checkpoint every N steps")
    p.add_argument("--seed", type=int)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("eval", help="evaluate a checkpoint: top-1/top-5, confusion matrix")
    p.add_argument("model")
    p.add_argument("--checkpoint", required=True)
    data_opts(p, default=None)
    p.add_argument("--part", choices=["val", "test", "train"], default="val",
                   help="which part of the data to evaluate (default: val)")
    p.add_argument("--tta", choices=["flip", "10crop", "multiscale", "multicrop"],
                   help="flip; 10crop (AlexNet); multiscale (VGG's dense evaluation at 3 "
                   "scales); multicrop (VGG's 150 crops)")
    p.add_argument("--batch-size", type=int, default=256)
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("recipes", help="the papers' training recipes")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_recipes)

    p = sub.add_parser("plot", help="PNG curves (loss, accuracy, lr) of a training run")
    p.add_argument("dir")
    p.add_argument("--output", help="PNG file (default: DIR/curves.png)")
    p.set_defaults(func=cmd_plot)


def data_opts(p, default="digits") -> None:
    p.add_argument("--data", default=default,
                   help="digits (built in), mnist:DIR, fashion:DIR, cifar10:DIR, cifar100:DIR, "
                   "folder:DIR")
    p.add_argument("--val-split", type=int, help="carve a seeded validation set of N images")
    p.add_argument("--split-seed", type=int, default=None, help="seed of --val-split (0)")
    p.add_argument("--input-size", help="CxHxW (or HxW, or one side) the model sees")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="builder argument")
    p.add_argument("--device", default="auto")
    p.add_argument("--threads", type=int, help="CPU threads (torch.set_num_threads)")
    p.add_argument("--json", action="store_true", help="final metrics as JSON (last line)")


def _setup(args):
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)


def _model_and_data(name, spec, val_split, split_seed, size_text, sets, input_size=None):
    """Load the data, build the model for it and fit the images to the model's input: the
    data's own size, or the model's minimum if that is larger (LeNet-5: MNIST 28 → 32);
    image folders are decoded at the model's paper input size (or ``--input-size``)."""
    import cnnlab
    from cnnlab.data import fit_split, load_dataset, parse_spec
    from cnnlab.registry import model_info

    size = parse_size(size_text) if size_text else input_size
    opts = {}
    if parse_spec(spec)[0] == "folder":  # decode straight to the model's input size
        full = model_info(name).input_size
        side = size[-1] if size else full[-1]
        opts["input_size"] = (int(sets.get("in_chans", full[0])), side, side)
    split = load_dataset(spec, val_split=val_split, seed=split_seed or 0, **opts)
    kwargs = {"num_classes": split.num_classes, "in_chans": split.in_chans, **sets}
    model = cnnlab.create_model(name, **kwargs)
    c = kwargs["in_chans"]
    if size is None:
        ref = split.val if len(split.val) else split.train
        least = getattr(model, "min_input_size", 1)
        size = (c, max(ref.x.shape[-2], least), max(ref.x.shape[-1], least))
    elif len(size) == 1:
        size = (c, size[0], size[0])
    elif len(size) == 2:
        size = (c, *size)
    split = fit_split(split, tuple(size))
    return model, split, tuple(size), kwargs


def cmd_train(args) -> int:
    from cnnlab.train import TrainConfig, TrainingDiverged, get_recipe, recipe_for, train

    _setup(args)
    recipe = get_recipe(args.recipe or recipe_for(args.model))
    over = {}
    for key, attr in (("batch_size", "batch_size"), ("lr", "lr"), ("optimizer", "optimizer"),
                      ("schedule", "schedule"), ("weight_decay", "weight_decay"),
                      ("augment", "augment"), ("label_smoothing", "label_smoothing"),
                      ("ema", "ema"), ("amp", "amp"), ("seed", "seed"),
                      ("save_every", "save_every"), ("iters", "iters")):
        v = getattr(args, attr)
        if v is not None:
            over[key] = v
    if args.epochs is not None:
        over["epochs"] = args.epochs
        over.setdefault("iters", None)
    if args.compile:
        over["compile"] = True
    if args.channels_last:
        over["channels_last"] = True
    over.update(device=args.device, out_dir=args.out, resume=args.resume)
    over.update(parse_sets(args.opt))
    settings = {**recipe.settings, **over}
    if settings.get("schedule_unit") == "step" and "iters" in over and over["iters"] is None:
        settings["schedule_unit"] = "epoch"  # --epochs replaces iteration milestones
        settings["milestones"] = ()
    cfg = TrainConfig.from_dict(settings)
    sets = parse_sets(args.set)
    model, split, size, kwargs = _model_and_data(args.model, args.data, args.val_split,
                                                 args.split_seed, args.input_size, sets)
    cfg = cfg.replace(input_size=size)
    meta = {"model": args.model, "model_args": kwargs, "input_size": list(size),
            "data_spec": args.data, "val_split": args.val_split,
            "split_seed": args.split_seed or 0, "recipe": recipe.name}
    out = sys.stderr if args.json else sys.stdout
    if _rank() == 0:
        print(f"{args.model} on {split.name} ({len(split.train)} train / {len(split.val)} val, "
              f"{'x'.join(map(str, size))}), recipe {recipe.name}", file=out)
    try:
        res = train(model, split, cfg, progress=not args.json,
                    log=lambda line: print(line, file=out, flush=True), meta=meta)
    except TrainingDiverged as e:
        print(f"cnnlab: error: {e}", file=sys.stderr)
        return 1
    finally:
        _shutdown()
    if _rank() != 0:
        return 0
    final = {"model": args.model, "data": split.name, "recipe": recipe.name,
             "epochs": len(res.history), "steps": res.steps, **res.metrics,
             "images_per_s": round(res.images_per_s, 1), "train_seconds": round(res.seconds, 2),
             "checkpoint": res.checkpoint}
    if args.json:
        _emit(final)
    else:
        top = f"top-1 {res.metrics['top1']:.2f}%, " if "top1" in res.metrics else ""
        print(f"done: {top}{res.steps} steps in {res.seconds:.1f}s "
              f"({res.images_per_s:.0f} img/s)" + (f"; checkpoint {res.checkpoint}"
                                                   if res.checkpoint else ""))
    return 0


def _shutdown():
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def cmd_eval(args) -> int:
    from dataclasses import replace

    from cnnlab.train import evaluate, load_checkpoint
    from cnnlab.train.checkpoint import read_meta
    from cnnlab.train.trainer import resolve_device

    _setup(args)
    meta = read_meta(args.checkpoint)
    if meta.get("model") and meta["model"] != args.model:
        raise CliError(f"{args.checkpoint} holds {meta['model']}, not {args.model}")
    spec = args.data or meta.get("data_spec")
    if not spec:
        raise CliError("--data is needed: the checkpoint does not name its dataset")
    same = spec == meta.get("data_spec")
    val_split = args.val_split if args.val_split is not None else \
        (meta.get("val_split") if same else None)
    split_seed = args.split_seed if args.split_seed is not None else meta.get("split_seed", 0)
    sets = {**{k: v for k, v in meta.get("model_args", {}).items()
               if k not in ("num_classes", "in_chans")}, **parse_sets(args.set)}
    model_args = meta.get("model_args", {})
    for k in ("num_classes", "in_chans"):
        if k in model_args:
            sets.setdefault(k, model_args[k])
    model, split, size, _ = _model_and_data(args.model, spec, val_split, split_seed,
                                            args.input_size, sets, meta.get("input_size"))
    load_checkpoint(args.checkpoint, model)
    data = getattr(split, args.part)
    if data is None or len(data) == 0:
        raise CliError(f"{split.name} has no {args.part} images")
    stats = meta.get("data", {})
    if stats.get("mean") and len(stats["mean"]) == size[0]:  # normalise as in training
        data = replace(data, mean=tuple(stats["mean"]), std=tuple(stats["std"]))
    device = resolve_device(args.device)
    model.to(device)
    m = evaluate(model, data, args.batch_size, tta=args.tta, confusion=True, input_size=size,
                 device=device)
    res = {"model": args.model, "checkpoint": args.checkpoint, "data": split.name,
           "part": args.part, "tta": args.tta, **m}
    if args.json:
        _emit(res)
        return 0
    print(f"{args.model} on {split.name} {args.part} ({m['n']} images"
          f"{', TTA ' + args.tta if args.tta else ''}): top-1 {m.get('top1', 0):.2f}%  "
          f"top-5 {m.get('top5', 0):.2f}%  loss {m['loss']:.4f}")
    cm = m.get("confusion")
    if cm and len(cm) <= 20:
        from cnnlab.table import render

        names = (split.classes or [str(i) for i in range(len(cm))])[:len(cm)]
        names = [str(n)[:8] for n in names] + [str(i) for i in range(len(names), len(cm))]
        print("\nconfusion matrix (rows: true class, columns: predicted)")
        print(render([[n, *row] for n, row in zip(names, cm)], ["", *names],
                     right=set(range(1, len(cm) + 1))))
    return 0


def cmd_recipes(args) -> int:
    from cnnlab.train.config import RECIPES, TrainConfig

    if args.json:
        _emit([{"name": r.name, "source": r.source, "models": list(r.models),
                "settings": r.config().to_dict(), "notes": r.notes} for r in RECIPES.values()])
        return 0
    from cnnlab.table import render

    rows = []
    for r in RECIPES.values():
        c: TrainConfig = r.config()
        length = f"{c.iters:,} it" if c.iters else f"{c.epochs:g} ep"
        rows.append([r.name, c.optimizer, f"{c.lr:g}", f"{c.weight_decay:g}", c.batch_size,
                     c.schedule, length, c.augment or "-", ", ".join(r.models)])
    print(render(rows, ["recipe", "optim", "lr", "wd", "batch", "schedule", "length",
                        "augment", "models"], right={2, 3, 4}))
    print()
    for r in RECIPES.values():
        print(f"{r.name}: {r.source}. {r.notes}")
    return 0


def cmd_plot(args) -> int:
    import io

    from cnnlab.io import write_bytes_atomic

    d = Path(args.dir)
    f = d / "metrics.jsonl"
    if not f.is_file():
        raise CliError(f"no metrics.jsonl in {d} (written by `cnnlab train --out {d}`)")
    rows = []
    for i, line in enumerate(f.read_text().splitlines(), 1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                raise CliError(f"{f}:{i}: not a JSON line") from None
    if not rows:
        raise CliError(f"{f} is empty")
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise CliError("cnnlab plot needs matplotlib: pip install -e '.[plot]'") from None
    ep = [r["epoch"] for r in rows]
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    panels = [("loss", ["train_loss", "val_loss", "val_ema_loss"]),
              ("accuracy (%)", ["train_top1", "val_top1", "val_top5", "val_ema_top1"]),
              ("learning rate", ["lr"])]
    for ax, (title, keys) in zip(axes, panels):
        for k in keys:
            pts = [(e, r[k]) for e, r in zip(ep, rows) if r.get(k) is not None]
            if pts:
                ax.plot(*zip(*pts), marker="o", ms=3, label=k)
        ax.set_title(title)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        if title == "learning rate":
            ax.set_yscale("log")
        else:
            ax.legend(fontsize=8)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    out = Path(args.output) if args.output else d / "curves.png"
    write_bytes_atomic(out, buf.getvalue())
    print(out)
    return 0
