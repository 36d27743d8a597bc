"""``cnnlab train``, ``eval``, ``recipes`` and ``plot``."""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

from cnnlab.cli.common import (
    CliError,
    data_opts,
    emit,
    json_opt,
    nonneg_float,
    nonneg_int,
    optional_size,
    parse_sets,
    positive_float,
    positive_int,
    rank,
)
from cnnlab.cli.runs import default_threads, report, setup, shutdown, test_scales

# options of `cnnlab train` that override the recipe's setting of the same name when given
_OVERRIDES = ("batch_size", "lr", "optimizer", "schedule", "weight_decay", "augment",
              "label_smoothing", "ema", "amp", "seed", "save_every", "iters")


def _overrides(args) -> dict:
    over = {k: getattr(args, k) for k in _OVERRIDES if getattr(args, k) is not None}
    if args.epochs is not None:
        over["epochs"] = args.epochs
        over.setdefault("iters", None)
    if args.compile:
        over["compile"] = True
    if args.channels_last:
        over["channels_last"] = True
    if args.deterministic:
        over["deterministic"] = True
    over["device"] = args.device
    return {**over, **parse_sets(args.opt)}


RUN_FILES = ("last.safetensors", "metrics.jsonl")


def run_dir(args) -> tuple[Path, bool | str]:
    """Where the run goes and what it resumes: ``--out`` or ``runs/<model>-<time>/``; a
    folder that already holds a run is refused unless ``--resume`` or ``--overwrite``;
    ``--resume`` with nothing to resume starts afresh (the same command line serves the
    first start and every restart of a pre-empted job)."""
    from cnnlab.cli.common import input_file, output_dir

    out = Path(args.out) if args.out else \
        Path("runs") / f"{args.model}-{time.strftime('%Y%m%d-%H%M%S')}"
    output_dir(out)
    resume = args.resume
    if isinstance(resume, str):
        from cnnlab.runspec import RunSpec

        RunSpec.from_checkpoint(input_file(resume, "checkpoint")).check_model(args.model)
    elif resume:
        last = out / "last.safetensors"
        if last.exists():
            from cnnlab.runspec import RunSpec

            RunSpec.from_checkpoint(last).check_model(args.model)
        else:
            resume = False
            if rank() == 0:
                print(f"cnnlab: nothing to resume in {out}: starting a fresh run",
                      file=sys.stderr)
    elif not args.overwrite and any((out / f).exists() for f in RUN_FILES):
        raise CliError(f"{out} already holds a run: --resume continues it, --overwrite "
                       "starts it again")
    return out, resume


def cmd_train(args) -> int:
    import shutil

    from cnnlab.runspec import RunSpec, model_and_data
    from cnnlab.train import TrainingDiverged, get_recipe, recipe_for, train
    from cnnlab.train.checkpoint import KeepBest

    setup(args)
    recipe = get_recipe(args.recipe or recipe_for(args.model))
    out, resume = run_dir(args)
    cfg = recipe.configure({**_overrides(args), "out_dir": str(out), "resume": resume})
    model, split, size, kwargs = model_and_data(args.model, args.data, args.val_split,
                                                args.split_seed, optional_size(args.input_size),
                                                parse_sets(args.set), seed=cfg.seed)
    cfg = cfg.replace(input_size=size)
    if args.preprocess:
        from cnnlab.data.augment import center_crop
        from cnnlab.data.whiten import attach_preprocess, empty_preprocess, fit_preprocess

        empty_preprocess(args.preprocess, size)  # refuses a ZCA too large before any work
        seen = center_crop(split.train.normalize(split.train.x), tuple(size[-2:]))
        attach_preprocess(model, fit_preprocess(args.preprocess, seen))
    if not args.threads:
        import torch

        torch.set_num_threads(default_threads(model, size))
    spec = RunSpec(args.model, kwargs, size, args.data, args.val_split, args.split_seed or 0,
                   preprocess=args.preprocess)
    stream = sys.stderr if args.json else sys.stdout
    if rank() == 0:
        print(f"{args.model} on {split.name} ({len(split.train)} train / {len(split.val)} val, "
              f"{'x'.join(map(str, size))}), recipe {recipe.name}", file=stream)
    created = None  # the topmost folder this run creates: removed if the run fails at once
    if not out.exists():
        created = out
        while not created.parent.exists():
            created = created.parent
    if args.overwrite and not resume:
        for f in (*RUN_FILES, "last.json", "best.safetensors", "best.json"):
            (out / f).unlink(missing_ok=True)
    try:
        res = train(model, split, cfg, progress=not args.json,
                    log=lambda line: print(line, file=stream, flush=True),
                    meta={**spec.to_meta(), "recipe": recipe.name},
                    epoch_hooks=[KeepBest(out)] if rank() == 0 else ())
    except TrainingDiverged as e:
        print(f"cnnlab: error: {e}", file=sys.stderr)
        return 1
    except BaseException:
        # a run that failed before its first checkpoint leaves no folder behind
        if created is not None and not (out / "last.safetensors").exists():
            shutil.rmtree(created, ignore_errors=True)
        raise
    finally:
        shutdown()
    if rank() == 0:
        report(args, split, recipe, res, out)
    return 0


def _confusion_table(cm, classes) -> str:
    from cnnlab.table import render

    names = (classes or [str(i) for i in range(len(cm))])[:len(cm)]
    names = [str(n)[:8] for n in names] + [str(i) for i in range(len(names), len(cm))]
    return render([[n, *row] for n, row in zip(names, cm)], ["", *names],
                  right=set(range(1, len(cm) + 1)))


def preprocess_spec(text: str) -> str:
    from cnnlab.data.whiten import parse_preprocess

    try:
        parse_preprocess(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None
    return text


def train_scale(text: str) -> tuple[float, float]:
    """``S`` or ``SMIN-SMAX``, pixels."""
    lo, _, hi = text.partition("-")
    try:
        a, b = float(lo), float(hi or lo)
    except ValueError:
        a = b = -1.0
    if not (math.isfinite(a) and math.isfinite(b) and 0 < a <= b):
        raise argparse.ArgumentTypeError(f"expected S or SMIN-SMAX (pixels, 0 < SMIN <= SMAX), "
                                         f"got {text!r}")
    return a, b


def cmd_eval(args) -> int:
    from cnnlab.cli.common import input_file
    from cnnlab.runspec import RunSpec, load_weights, model_and_data
    from cnnlab.train import evaluate
    from cnnlab.train.trainer import resolve_device

    setup(args)
    if len(args.checkpoint) > 1:  # an ensemble: averaged probabilities
        from cnnlab.cli.distill import cmd_eval_ensemble

        return cmd_eval_ensemble(args)
    args.checkpoint = args.checkpoint[0]
    run = RunSpec.from_checkpoint(input_file(args.checkpoint, "checkpoint"))
    run.check_model(args.model)
    spec, val_split, split_seed = run.split_args(args.data, args.val_split, args.split_seed)
    if not spec:
        raise CliError("--data is needed: the checkpoint does not name its dataset")
    size = optional_size(args.input_size) or run.input_size
    model, split, size, _ = model_and_data(args.model, spec, val_split, split_seed, size,
                                           run.builder_args(parse_sets(args.set)))
    load_weights(args.checkpoint, model)
    data = getattr(split, args.part)
    if data is None or len(data) == 0:
        raise CliError(f"{split.name} has no {args.part} images")
    device = resolve_device(args.device)
    model.to(device)
    data = run.normalise(data)
    m = evaluate(model, data, args.batch_size, tta=args.tta, confusion=True, input_size=size,
                 device=device, tta_scales=test_scales(args, size))
    plain = None
    if args.tta:  # a view can hurt (flips on digits): show what it did
        plain = evaluate(model, data, args.batch_size, input_size=size, device=device)
    if args.json:
        emit({"model": args.model, "checkpoint": args.checkpoint, "data": split.name,
              "part": args.part, "tta": args.tta, **m,
              **({"top1_plain": plain.get("top1")} if plain else {})})
        return 0
    print(f"{args.model} on {split.name} {args.part} ({m['n']} images"
          f"{', TTA ' + args.tta if args.tta else ''}): top-1 {m.get('top1', 0):.2f}%  "
          f"top-5 {m.get('top5', 0):.2f}%  loss {m['loss']:.4f}")
    if plain:
        delta = m.get("top1", 0) - plain.get("top1", 0)
        print(f"without TTA: top-1 {plain.get('top1', 0):.2f}% (TTA {args.tta} "
              f"{delta:+.2f} points{'; the views hurt on this data' if delta < 0 else ''})")
    cm = m.get("confusion")
    if cm and len(cm) <= 20:
        print("\nconfusion matrix (rows: true class, columns: predicted)")
        print(_confusion_table(cm, split.classes))
    return 0


def cmd_recipes(args) -> int:
    from cnnlab.train.config import RECIPES

    if args.json:
        emit([{"name": r.name, "source": r.source, "models": list(r.models),
               "settings": r.config().to_dict(), "notes": r.notes} for r in RECIPES.values()])
        return 0
    from cnnlab.table import render

    rows = []
    for r in RECIPES.values():
        c = r.config()
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
    from pathlib import Path

    from cnnlab.plot import plot_curves, read_metrics

    out = Path(args.output) if args.output else Path(args.dir) / "curves.png"
    print(plot_curves(read_metrics(args.dir), out))
    return 0


def add_commands(sub) -> None:
    p = sub.add_parser("train", help="train a model on real data (a paper's recipe)")
    p.add_argument("model")
    data_opts(p)
    p.add_argument("--recipe", help="training recipe (default: the model's paper's; see "
                   "`cnnlab recipes`)")
    p.add_argument("--epochs", type=positive_float, help="epochs (overrides a recipe's iterations)")
    p.add_argument("--iters", type=positive_int, help="optimizer steps in all")
    p.add_argument("--batch-size", type=positive_int)
    p.add_argument("--lr", type=positive_float)
    p.add_argument("--optimizer", choices=["sgd", "rmsprop", "adamw"])
    p.add_argument("--schedule")
    p.add_argument("--weight-decay", type=nonneg_float)
    p.add_argument("--augment", help="e.g. crop:4,flip (see cnnlab.data.augment)")
    p.add_argument("--preprocess", type=preprocess_spec, metavar="mean-image|zca[:EPS]",
                   help="fitted on the training split and kept in the checkpoint: mean-image "
                   "subtraction (AlexNet, GoogLeNet) or ZCA whitening (NIN; EPS default 0.1)")
    p.add_argument("--label-smoothing", type=float)
    p.add_argument("--ema", type=float, help="EMA decay per step, e.g. 0.9998")
    p.add_argument("--amp", choices=["auto", "bf16", "fp16", "off"])
    p.add_argument("--compile", action="store_true", help="torch.compile the model")
    p.add_argument("--channels-last", action="store_true")
    p.add_argument("--opt", action="append", metavar="KEY=VALUE",
                   help="any TrainConfig setting, e.g. warmup=5 (repeatable)")
    p.add_argument("--out", help="folder for checkpoints and metrics.jsonl (default: "
                   "runs/MODEL-TIME/); a folder that holds a run needs --resume or --overwrite")
    p.add_argument("--resume", nargs="?", const=True, default=False, metavar="CHECKPOINT",
                   help="continue from OUT/last.safetensors (or the file given); with "
                   "nothing to resume, start afresh")
    p.add_argument("--overwrite", action="store_true",
                   help="start again in an --out folder that holds a run")
    p.add_argument("--save-every", type=nonneg_int, help="also checkpoint every N steps")
    p.add_argument("--seed", type=nonneg_int,
                   help="one seed, one run bit for bit on the CPU (on CUDA with --deterministic)")
    p.add_argument("--deterministic", action="store_true",
                   help="deterministic kernels only (torch.use_deterministic_algorithms): "
                   "bit-identical CUDA runs for one --seed, at some speed")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("eval", help="evaluate a checkpoint: top-1/top-5, confusion matrix")
    p.add_argument("model")
    p.add_argument("--checkpoint", required=True, action="append",
                   help="a training checkpoint, a .dcz (cnnlab compress) or the weights file "
                   "cnnlab decompress writes; repeat for an ensemble (averaged probabilities)")
    data_opts(p, default=None)
    p.add_argument("--part", choices=["val", "test", "train"], default="val",
                   help="which part of the data to evaluate (default: val)")
    p.add_argument("--tta", choices=["flip", "10crop", "multiscale", "multicrop",
                                     "multicrop+dense", "144crop"],
                   help="flip; 10crop (AlexNet); multiscale (VGG's dense evaluation at 3 "
                   "scales); multicrop (VGG's 150 crops); multicrop+dense (both); 144crop "
                   "(GoogLeNet)")
    p.add_argument("--train-scale", type=train_scale, metavar="S|SMIN-SMAX",
                   help="VGG's training scale in pixels (short side), for the test scales Q: "
                   "S-32, S, S+32, or SMIN, (SMIN+SMAX)/2, SMAX when jittered (default: the "
                   "checkpoint's scale augmentation, else S = 8/7 of the input)")
    p.add_argument("--batch-size", type=positive_int, default=256)
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("recipes", help="the papers' training recipes")
    json_opt(p)
    p.set_defaults(func=cmd_recipes)

    p = sub.add_parser("plot", help="PNG curves (loss, accuracy, lr) of a training run")
    p.add_argument("dir")
    p.add_argument("--output", help="PNG file (default: DIR/curves.png)")
    p.set_defaults(func=cmd_plot)
