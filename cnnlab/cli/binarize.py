"""``cnnlab binarize``: BWN / XNOR-Net (Rastegari et al. 2016) from a trained checkpoint."""

from __future__ import annotations

import sys

from cnnlab.cli.common import CliError, emit, json_opt, parse_sets, set_opt, split_opts


def cmd_binarize(args) -> int:
    import torch

    from cnnlab.cli.common import new_output_dir
    from cnnlab.compress.binary import binarize, save_binary, weight_bytes
    from cnnlab.io import atomic_dir
    from cnnlab.runspec import RunSpec, load_weights, model_and_data
    from cnnlab.train import TrainConfig, evaluate, train

    out = new_output_dir(args.out)
    if args.epochs < 0 or args.lr <= 0 or args.batch_size < 1:
        raise CliError("--epochs must be ≥ 0, --lr > 0 and --batch-size ≥ 1")
    if args.threads:
        torch.set_num_threads(args.threads)
    run = RunSpec.from_checkpoint(args.checkpoint)
    run.check_model(args.model)
    spec, val_split, split_seed = run.split_args(args.data, args.val_split, args.split_seed)
    if not spec:
        raise CliError("--data is needed: the checkpoint does not name its dataset")
    model, split, size, kwargs = model_and_data(args.model, spec, val_split, split_seed,
                                                run.input_size,
                                                run.builder_args(parse_sets(args.set)))
    load_weights(args.checkpoint, model)
    full_top1 = float(evaluate(model, run.normalise(split.val))["top1"])
    full_bytes = weight_bytes(model)["fp32"]
    binarize(model, args.mode, keep_first_last=not args.all_layers)  # ValueError → exit 2

    cfg = TrainConfig(epochs=args.epochs, batch_size=args.batch_size, optimizer="adamw",
                      lr=args.lr, weight_decay=0.0, schedule="cosine", seed=args.seed,
                      input_size=size)
    log = (lambda m: print(m, file=sys.stderr)) if args.json else print
    with atomic_dir(out) as tmp:
        meta = {**RunSpec(args.model, kwargs, size, spec, val_split, split_seed).to_meta(),
                "binarize": args.mode}
        cfg = cfg.replace(out_dir=str(tmp))
        res = (train(model, split, cfg, progress=False, log=log, meta=meta)
               if args.epochs > 0 else None)
        top1 = float(evaluate(model, split.val)["top1"]) if res is None else \
            float(res.metrics["top1"])
        nbytes = save_binary(model, tmp / "binary.safetensors",
                             meta={"model": args.model, "config": kwargs, "mode": args.mode})
    result = {"model": args.model, "mode": args.mode, "full_top1": full_top1, "top1": top1,
              "full_bytes": full_bytes, "binary_bytes": nbytes,
              "smaller": round(full_bytes / nbytes, 2), "out": str(out)}
    if args.json:
        emit(result)
        return 0
    print(f"{args.model} {args.mode}: top-1 {full_top1:.2f}% (full precision) → {top1:.2f}%; "
          f"weights {full_bytes:,} B fp32 → {nbytes:,} B ({full_bytes / nbytes:.1f}x smaller)"
          f"; wrote {out}/binary.safetensors and the trainer's checkpoint")
    return 0


def add_commands(sub) -> None:
    p = sub.add_parser("binarize", help="BWN / XNOR-Net: binarise a trained model, retrain, "
                                        "save 1 bit per weight")
    p.add_argument("model")
    p.add_argument("--checkpoint", required=True, help="trained weights (cnnlab checkpoint)")
    p.add_argument("--mode", required=True, choices=["bwn", "xnor"])
    p.add_argument("--data", help="dataset (default: the checkpoint's)")
    split_opts(p, "carve N validation images (default: the checkpoint's, same --data)")
    set_opt(p, "builder argument of the checkpoint's model (repeatable)")
    p.add_argument("--all-layers", action="store_true",
                   help="binarise the first and last layers too (the paper keeps them real)")
    p.add_argument("--epochs", type=float, default=4, help="retraining epochs (0: none)")
    p.add_argument("--lr", type=float, default=1e-3, help="Adam's rate (the paper uses Adam)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, help="CPU threads (torch.set_num_threads)")
    p.add_argument("--out", required=True, help="new directory for the results")
    json_opt(p)
    p.set_defaults(func=cmd_binarize)
