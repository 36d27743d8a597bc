"""``cnnlab compress`` and ``decompress``: Deep Compression's .dcz files."""

from __future__ import annotations

import sys

from cnnlab.cli.common import (
    emit,
    input_file,
    json_opt,
    nonneg_float,
    nonneg_int,
    output_file,
    parse_sets,
    positive_float,
    positive_int,
    set_opt,
    split_opts,
)

# option → CompressSettings field; an option left out takes the model's paper default
_SETTINGS = {"prune": "prune", "bits": "bits", "span": "span", "rounds": "rounds",
             "epochs": "prune_epochs", "quant_epochs": "quant_epochs", "lr": "lr",
             "quant_lr": "quant_lr", "batch_size": "batch_size", "weight_decay": "weight_decay",
             "init": "init", "seed": "seed"}


def _settings(args):
    from cnnlab.compress.defaults import default_settings
    from cnnlab.compress.pipeline import CompressSettings

    paper = default_settings(args.model)
    source = paper.pop("source")
    given = {field: getattr(args, opt) for opt, field in _SETTINGS.items()
             if getattr(args, opt) is not None}
    settings = CompressSettings(**{**paper, **given},
                                regularization="l1" if args.l1 else "l2",
                                dropout_adjust=not args.no_dropout_adjust)
    return settings, (source if "prune" not in given else "--prune")


def _model_and_split(args, run, seed: int):
    """The checkpoint's model and its data (``--data`` or the run's own), normalised with
    the run's statistics, as ``cnnlab eval`` sees them."""
    from dataclasses import replace

    from cnnlab.models import model_info
    from cnnlab.runspec import build_model, load_weights, model_and_data

    config = run.builder_args(parse_sets(args.set))
    size = run.input_size or tuple(model_info(args.model).input_size)
    spec, val_split, split_seed = run.split_args(args.data, args.val_split, args.split_seed)
    split = None
    if spec:
        model, split, size, config = model_and_data(args.model, spec, val_split, split_seed,
                                                    size, config, seed=seed)
        split = replace(split, train=run.normalise(split.train), val=run.normalise(split.val))
    else:
        model = build_model(args.model, config)
    load_weights(args.checkpoint, model)
    return model, split, size, config, replace(run, data_spec=spec, val_split=val_split,
                                               split_seed=split_seed)


def cmd_compress(args) -> int:
    from cnnlab.compress.pipeline import compress_model
    from cnnlab.compress.report import format_pruning_table, format_stage_table
    from cnnlab.runspec import RunSpec

    output_file(args.output)
    run = RunSpec.from_checkpoint(input_file(args.checkpoint, "checkpoint"))
    run.check_model(args.model)
    settings, source = _settings(args)
    model, split, size, config, run = _model_and_split(args, run, settings.seed)
    _check_layer_settings(model, settings)
    log = None if args.json else (lambda m: print(m, file=sys.stderr))
    if log:
        log(f"{args.model}: pruning rates from {source}; "
            + (f"retraining on {split.name}" if split else "no data: nothing is retrained"))
    res = compress_model(model, args.model, config, split, settings, out=args.output,
                         input_size=size, log=log, progress=not args.json,
                         info={"run": run.to_run_info()})
    if args.json:
        emit(res.to_dict())
        return 0
    print(f"{args.model}: Han et al. 2015 pruning table (Act% = density of the layer's input "
          f"on {'the validation images' if split else 'nothing: no data'})")
    print(format_pruning_table(res.pruning))
    print()
    print(format_stage_table(res.to_dict()))
    print(f"\nwrote {args.output} ({res.totals['huffman_bytes']:,} bytes)")
    return 0


def _check_layer_settings(model, settings) -> None:
    """Per-layer rates and bit widths are parsed before any retraining starts."""
    from cnnlab.compress.pipeline import parse_bits
    from cnnlab.compress.prune import parse_prune, prunable_layers

    layers = prunable_layers(model)
    if not layers:
        raise ValueError("the model has no conv or linear layers to compress")
    parse_prune(settings.prune, layers)
    parse_bits(settings.bits, layers, "bits")
    parse_bits(settings.span, layers, "index-difference bits")


def cmd_decompress(args) -> int:
    from cnnlab.compress.pipeline import decompress

    input_file(args.file, ".dcz file")
    output_file(args.output)
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
    p.add_argument("--data", help="dataset for retraining and accuracy (default: the "
                   "checkpoint's own), e.g. mnist:data/mnist")
    split_opts(p, "carve N validation images (default: the checkpoint's, same --data)")
    p.add_argument("--prune", help="per layer: kept %% or quality × std, e.g. "
                   "'fc1=8%%,fc2=9%%,fc3=26%%' or 'conv=q0.7,fc=q1.4' (default: Han et al.'s "
                   "rates for their networks, the quality rule conv=q0.7,fc=q1.4 otherwise)")
    p.add_argument("--bits", help="cluster-index bits per layer (default conv=8,fc=5)")
    p.add_argument("--span", help="relative-index bits per layer (default conv=8,fc=5)")
    p.add_argument("--rounds", type=positive_int, help="iterative prune → retrain rounds")
    p.add_argument("--epochs", type=nonneg_float, help="retraining epochs per round")
    p.add_argument("--quant-epochs", type=nonneg_float, help="centroid fine-tuning epochs")
    p.add_argument("--lr", type=positive_float, help="retraining learning rate")
    p.add_argument("--quant-lr", type=positive_float)
    p.add_argument("--batch-size", type=positive_int)
    p.add_argument("--weight-decay", type=nonneg_float,
                   help="L2 strength (L1 strength with --l1)")
    p.add_argument("--l1", action="store_true", help="L1 instead of L2 regularisation")
    p.add_argument("--init", choices=["linear", "density", "random"])
    p.add_argument("--no-dropout-adjust", action="store_true")
    p.add_argument("--seed", type=nonneg_int)
    p.add_argument("-o", "--output", required=True, help="the .dcz file to write")
    json_opt(p)
    p.set_defaults(func=cmd_compress)

    p = sub.add_parser("decompress", help="decode a .dcz into a safetensors weights file")
    p.add_argument("file")
    p.add_argument("-o", "--output", required=True)
    json_opt(p)
    p.set_defaults(func=cmd_decompress)
