"""``cnnlab distill`` (Hinton et al. 2015) and the ensemble form of ``cnnlab eval``."""

from __future__ import annotations

import sys

from cnnlab.cli.common import CliError, data_opts, emit, optional_size, parse_sets


def parse_teacher(text: str) -> tuple[str | None, str]:
    """``MODEL:CKPT`` or ``CKPT`` (the checkpoint names its model)."""
    import os

    name, sep, path = text.partition(":")
    if sep and not os.path.exists(text):
        return name, path
    return None, text


def parse_transfer_set(text: str | None):
    """``only:7,8`` / ``exclude:3``: which classes of the training images form the transfer
    set (Hinton et al. Sec. 3's experiments)."""
    if not text:
        return None
    kind, _, rest = text.partition(":")
    try:
        classes = {int(c) for c in rest.split(",") if c.strip()}
    except ValueError:
        classes = set()
    if kind not in ("only", "exclude") or not classes:
        raise CliError(f"malformed --transfer-set {text!r}: expected only:C,C… or "
                       "exclude:C,C… (class indices)")
    return kind, classes


def load_teachers(items, combine):
    from cnnlab.compress.distill import Ensemble, load_model

    models = []
    for text in items:
        name, path = parse_teacher(text)
        models.append(load_model(path, name))
    return models[0] if len(models) == 1 else Ensemble(models, combine)


def check_teacher(teacher, split, size) -> None:
    """The teacher must take the student's input and give the data's classes."""
    import torch

    from cnnlab.train.evaluate import main_output

    x = split.val.normalize(split.val.x[:2]) if len(split.val) else \
        split.train.normalize(split.train.x[:2])
    x = x[..., :size[-2], :size[-1]]
    try:
        with torch.no_grad():
            out = main_output(teacher(x))
    except (RuntimeError, ValueError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CliError(f"the teacher cannot take the student's input "
                       f"{'x'.join(map(str, size))}: {first}") from None
    if out.dim() != 2 or out.shape[1] != split.num_classes:
        raise CliError(f"the teacher gives {tuple(out.shape[1:])} outputs but {split.name} has "
                       f"{split.num_classes} classes")


def check_stored(args):
    """Which teacher a run uses, checked before any work: ``--teacher`` (repeatable) or
    ``--soft-targets FILE``; ``--save-soft-targets FILE`` needs a teacher and a writable
    path. Stored targets are per image, so they rule out augmentation."""
    from cnnlab.cli.common import output_file

    if args.teacher and args.soft_targets:
        raise CliError("--soft-targets replaces --teacher: give one of them")
    if not (args.teacher or args.soft_targets):
        raise CliError("give --teacher MODEL:CKPT (repeat for an ensemble) or "
                       "--soft-targets FILE")
    if args.save_soft_targets:
        if not args.teacher:
            raise CliError("--save-soft-targets needs --teacher (the targets to store)")
        output_file(args.save_soft_targets)
    stored = args.soft_targets or args.save_soft_targets
    if stored and args.augment:
        raise CliError("stored soft targets are for the un-augmented transfer set: "
                       "drop --augment")
    return stored


def load_stored(path, split, size):
    """``--soft-targets FILE`` for this run's transfer set, or a one-line error."""
    from cnnlab.cli.common import input_file
    from cnnlab.compress.distill import SoftTargets

    input_file(path, "soft-target file")
    try:
        st = SoftTargets.load(path)
        if st.num_classes != split.num_classes:
            raise ValueError(f"{path} holds {st.num_classes} classes but {split.name} has "
                             f"{split.num_classes}")
        missing = st.missing(split.train, size[-2:])
    except ValueError as e:
        raise CliError(str(e)) from None
    if missing:
        raise CliError(f"{path} has no soft targets for {missing} of the {len(split.train)} "
                       "transfer images (computed for other data, split or --transfer-set)")
    return st


def save_stored(teacher, split, size, path, args):
    """Run the teacher once over the transfer set and store its logits (atomic write)."""
    from cnnlab.compress.distill import SoftTargets

    info = {"teachers": " ".join(args.teacher), "data": args.data or "",
            "transfer_set": args.transfer_set or "", "images": len(split.train)}
    try:
        st = SoftTargets.compute(teacher, split.train, out_size=size[-2:], info=info)
    except ValueError as e:
        raise CliError(str(e)) from None
    st.save(path)
    return st


def cmd_distill(args) -> int:
    from dataclasses import replace

    import torch

    from cnnlab.cli.common import output_dir
    from cnnlab.cli.runs import report, setup, shutdown
    from cnnlab.compress.distill import DistillLoss
    from cnnlab.runspec import RunSpec, model_and_data
    from cnnlab.train import TrainingDiverged, get_recipe, recipe_for, train
    from cnnlab.train.checkpoint import KeepBest

    setup(args)
    if not 0 <= args.alpha <= 1:
        raise CliError(f"--alpha must be in [0, 1], got {args.alpha}")
    if not args.T > 0:
        raise CliError(f"--T must be positive, got {args.T}")
    stored = check_stored(args)
    transfer = parse_transfer_set(args.transfer_set)
    out = output_dir(args.out)
    resume = args.resume
    if resume is True and not (out / "last.safetensors").exists():
        resume = False  # nothing to resume yet: the same command line starts the run
    elif not resume and (out / "last.safetensors").exists():
        raise CliError(f"{out} already holds a run: --resume continues it")
    recipe = get_recipe(args.recipe or recipe_for(args.model))
    over = {k: getattr(args, k) for k in ("batch_size", "lr", "seed", "augment")
            if getattr(args, k) is not None}
    if stored:
        over["augment"] = ""  # the recipe's augmentation too: targets are per stored image
    if args.epochs is not None:
        over.update(epochs=args.epochs, iters=None)
    cfg = recipe.configure({**over, "device": args.device, "out_dir": str(out),
                            "resume": resume})
    teacher = load_teachers(args.teacher, args.combine) if args.teacher else None
    model, split, size, kwargs = model_and_data(args.model, args.data, args.val_split,
                                                args.split_seed, optional_size(args.input_size),
                                                parse_sets(args.set), seed=cfg.seed)
    if teacher is not None:
        check_teacher(teacher, split, size)
    if transfer:
        kind, classes = transfer
        inside = torch.isin(split.train.y, torch.tensor(sorted(classes)))
        keep = inside if kind == "only" else ~inside
        if not keep.any():
            raise CliError(f"--transfer-set {args.transfer_set} leaves no training images")
        split = replace(split, train=split.train.subset(torch.nonzero(keep).flatten()))
    if args.soft_targets:
        teacher = load_stored(args.soft_targets, split, size)
    elif args.save_soft_targets:
        teacher = save_stored(teacher, split, size, args.save_soft_targets, args)
    spec = RunSpec(args.model, kwargs, size, args.data, args.val_split, args.split_seed or 0)
    loss = DistillLoss(teacher, args.T, args.alpha)
    if not args.threads:
        from cnnlab.cli.runs import default_threads

        torch.set_num_threads(default_threads(model, size))
    log = sys.stderr if args.json else sys.stdout
    source = f"soft targets {args.soft_targets}" if args.soft_targets else \
        f"{len(args.teacher)} teacher(s)"
    print(f"distilling {source} into {args.model} on {split.name} "
          f"({len(split.train)} transfer images), T={args.T:g}, alpha={args.alpha:g}", file=log)
    if args.save_soft_targets:
        print(f"stored the teacher's logits for {len(teacher)} images in "
              f"{args.save_soft_targets}", file=log)
    meta = {**spec.to_meta(), "recipe": recipe.name,
            "distill": {"teachers": args.teacher or [], "soft_targets": stored or "",
                        "T": args.T, "alpha": args.alpha, "combine": args.combine,
                        "transfer_set": args.transfer_set}}
    try:
        res = train(model, split, cfg.replace(input_size=size), loss_fn=loss,
                    progress=not args.json, log=lambda line: print(line, file=log, flush=True),
                    meta=meta, epoch_hooks=[KeepBest(out)])
    except TrainingDiverged as e:
        print(f"cnnlab: error: {e}", file=sys.stderr)
        return 1
    finally:
        shutdown()
    report(args, split, recipe, res, out)
    return 0


def cmd_eval_ensemble(args) -> int:
    """``cnnlab eval MODEL --checkpoint A --checkpoint B …``: the members' averaged
    probabilities (each checkpoint may name its own model), on the first one's data."""
    from cnnlab.cli.common import input_file
    from cnnlab.cli.runs import test_scales
    from cnnlab.compress.distill import Ensemble, load_model
    from cnnlab.runspec import RunSpec, model_and_data
    from cnnlab.train import evaluate
    from cnnlab.train.trainer import resolve_device

    for p in args.checkpoint:
        input_file(p, "checkpoint")
    first = RunSpec.from_checkpoint(args.checkpoint[0])
    spec, val_split, split_seed = first.split_args(args.data, args.val_split, args.split_seed)
    if not spec:
        raise CliError("--data is needed: the checkpoint does not name its dataset")
    size = optional_size(args.input_size) or first.input_size
    _, split, size, _ = model_and_data(first.model or args.model, spec, val_split, split_seed,
                                       size, first.builder_args(parse_sets(args.set)))
    members = [load_model(p, RunSpec.from_checkpoint(p).model or args.model)
               for p in args.checkpoint]
    ens = Ensemble(members, "probs")
    data = getattr(split, args.part)
    if data is None or len(data) == 0:
        raise CliError(f"{split.name} has no {args.part} images")
    check_teacher(ens, replace_val(split, data), size)
    device = resolve_device(args.device)
    ens.to(device)
    data = first.normalise(data)
    m = evaluate(ens, data, args.batch_size, tta=args.tta, input_size=size, device=device,
                 tta_scales=test_scales(args, size))
    singles = [evaluate(mod, data, args.batch_size, input_size=size, device=device)["top1"]
               for mod in members]
    res = {"models": [getattr(x, "model_name", type(x).__name__) for x in members],
           "checkpoints": args.checkpoint, "data": split.name, "part": args.part,
           "combine": ens.combine, "members_top1": singles, **m}
    if args.json:
        emit(res)
        return 0
    print(f"ensemble of {len(members)} on {split.name} {args.part} ({m['n']} images): "
          f"top-1 {m['top1']:.2f}%  top-5 {m['top5']:.2f}%  loss {m['loss']:.4f}  "
          f"(members: {', '.join(f'{a:.2f}%' for a in singles)})")
    return 0


def replace_val(split, data):
    from dataclasses import replace

    return replace(split, val=data)


def add_commands(sub) -> None:
    p = sub.add_parser("distill", help="train a student on a teacher's (or an ensemble's) "
                       "soft targets (Hinton et al. 2015)")
    p.add_argument("model", help="the student")
    p.add_argument("--teacher", action="append", metavar="MODEL:CKPT",
                   help="a teacher checkpoint (repeat for an ensemble)")
    p.add_argument("--soft-targets", metavar="FILE",
                   help="a teacher's stored logits (from --save-soft-targets) instead of "
                   "--teacher: the teacher is not run again")
    p.add_argument("--save-soft-targets", metavar="FILE",
                   help="run the teacher(s) once over the transfer set, store the logits "
                   "in FILE (safetensors) and distil from them")
    p.add_argument("--T", type=float, default=20.0, help="temperature (MNIST: 20)")
    p.add_argument("--alpha", type=float, default=0.9, help="weight of the soft term")
    p.add_argument("--combine", choices=["probs", "logits"], default="logits",
                   help="ensemble teachers: mean probabilities, or mean logits (geometric)")
    p.add_argument("--transfer-set", help="only:C,C… or exclude:C,C… of the training images")
    data_opts(p)
    p.add_argument("--recipe")
    p.add_argument("--epochs", type=float)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--lr", type=float)
    p.add_argument("--augment")
    p.add_argument("--seed", type=int)
    p.add_argument("--out", required=True, help="directory for checkpoints and metrics")
    p.add_argument("--resume", nargs="?", const=True, default=False, metavar="CHECKPOINT")
    p.set_defaults(func=cmd_distill)
