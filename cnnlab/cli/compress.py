"""``cnnlab compress`` and ``decompress``: Deep Compression's .dcz files."""

from __future__ import annotations

import sys

from cnnlab.cli.common import emit, json_opt, parse_sets, set_opt, split_opts


def _settings(args):
    from cnnlab.compress.pipeline import CompressSettings

    return CompressSettings(
        prune=args.prune, bits=args.bits, span=args.span, rounds=args.rounds,
        prune_epochs=args.epochs, quant_epochs=args.quant_epochs, lr=args.lr,
        quant_lr=args.quant_lr, batch_size=args.batch_size, weight_decay=args.weight_decay,
        regularization="l1" if args.l1 else "l2", init=args.init,
        dropout_adjust=not args.no_dropout_adjust, seed=args.seed)


def cmd_compress(args) -> int:
    import torch

    from cnnlab.compress.pipeline import compress_model
    from cnnlab.compress.report import format_pruning_table, format_stage_table
    from cnnlab.registry import create_model, model_info
    from cnnlab.train.checkpoint import load_checkpoint
    from cnnlab.train.spec import RunSpec

    run = RunSpec.from_checkpoint(args.checkpoint)
    run.check_model(args.model)
    # the builder arguments the checkpoint was trained with (cnnlab train records them)
    config = run.builder_args(parse_sets(args.set))
    settings = _settings(args)
    size = run.input_size or tuple(model_info(args.model).input_size)
    split = None
    if args.data:
        from cnnlab.data import load_dataset

        spec, val_split, seed = run.split_args(args.data, args.val_split, args.split_seed)
        split = load_dataset(spec, val_split=val_split, seed=seed, input_size=size)
        config.setdefault("num_classes", split.num_classes)
        config.setdefault("in_chans", split.in_chans)
    torch.manual_seed(args.seed)
    model = create_model(args.model, **config)
    load_checkpoint(args.checkpoint, model)
    log = None if args.json else (lambda m: print(m, file=sys.stderr))
    res = compress_model(model, args.model, config, split, settings, out=args.output,
                         input_size=size, log=log)
    if args.json:
        emit(res.to_dict())
        return 0
    print(f"{args.model}: Han et al. 2015 pruning table (Act% = density of the layer's input "
          f"on {'the validation images' if split else 'nothing: no --data'})")
    print(format_pruning_table(res.pruning))
    print()
    print(format_stage_table(res.to_dict()))
    print(f"\nwrote {args.output} ({res.totals['huffman_bytes']:,} bytes)")
    return 0


def cmd_decompress(args) -> int:
    from cnnlab.compress.pipeline import decompress

    state = decompress(args.file, args.output)
    n = sum(v.numel() for v in state.values())
    if args.json:
        emit({"file": args.file, "output": args.output, "tensors": len(state), "params": n})
    else:
        print(f"wrote {args.output}: {len(state)} tensors, {n:,} values")
    return 0


def add_commands(sub) -> None:
    p = sub.add_parser("compress", help="Deep Compression: prune, quantize, Huffman → .dcz")
    p.add_argument("model")
    p.add_argument("--checkpoint", required=True, help="trained weights (cnnlab checkpoint)")
    set_opt(p, "builder argument of the checkpoint's model (repeatable)")
    p.add_argument("--data", help="dataset for retraining and accuracy, e.g. mnist:data/mnist")
    split_opts(p, "carve N validation images (default: the checkpoint's, same --data)")
    p.add_argument("--prune", help="per layer: kept %% or quality × std, e.g. "
                                   "'fc1=8%%,fc2=9%%,fc3=26%%' or 'conv=q0.7,fc=q1.4'")
    p.add_argument("--bits", default="conv=8,fc=5", help="cluster-index bits per layer")
    p.add_argument("--span", default="conv=8,fc=5", help="relative-index bits per layer")
    p.add_argument("--rounds", type=int, default=3, help="iterative prune → retrain rounds")
    p.add_argument("--epochs", type=float, default=2, help="retraining epochs per round")
    p.add_argument("--quant-epochs", type=float, default=2, help="centroid fine-tuning epochs")
    p.add_argument("--lr", type=float, default=0.01)
    p.add_argument("--quant-lr", type=float, default=0.001)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--weight-decay", type=float, default=5e-4,
                   help="L2 strength (L1 strength with --l1)")
    p.add_argument("--l1", action="store_true", help="L1 instead of L2 regularisation")
    p.add_argument("--init", default="linear", choices=["linear", "density", "random"])
    p.add_argument("--no-dropout-adjust", action="store_true")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("-o", "--output", required=True, help="the .dcz file to write")
    json_opt(p)
    p.set_defaults(func=cmd_compress)

    p = sub.add_parser("decompress", help="decode a .dcz into a safetensors weights file")
    p.add_argument("file")
    p.add_argument("-o", "--output", required=True)
    json_opt(p)
    p.set_defaults(func=cmd_decompress)
