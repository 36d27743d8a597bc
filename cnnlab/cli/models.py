"""``cnnlab list``, ``summary``, ``compare``, ``verify`` and ``export``: the model zoo and
what each model costs."""

from __future__ import annotations

import sys

from cnnlab.cli.common import (
    CliError,
    emit,
    input_size,
    input_size_opt,
    json_opt,
    nonneg_int,
    optional_size,
    parse_sets,
    positive_int,
    set_opt,
)


def cmd_list(args) -> int:
    from cnnlab.models import list_models, model_info

    names = list_models(args.pattern)
    if args.pattern and not names:
        raise CliError(f"no model matches {args.pattern!r}")
    if args.pretrained:
        return _list_pretrained(names, args)
    infos = [model_info(n) for n in names]
    if args.json:
        emit([{"name": i.name, "family": i.family, "input_size": list(i.input_size),
               "paper": i.paper.cite() if i.paper else None,
               "references": len(i.references)} for i in infos])
        return 0
    from cnnlab.table import render

    rows = [[i.name, i.family, "x".join(map(str, i.input_size)),
             f"{i.paper.authors.split(',')[0]} {i.paper.year}" if i.paper else "",
             "yes" if i.references else ""] for i in infos]
    print(render(rows, ["model", "family", "input", "paper", "figures"], right=set()))
    return 0


def _list_pretrained(names, args) -> int:
    """The models with weights in the package, and the accuracy measured for them."""
    from cnnlab.bundled import index

    entries = {n: e for n, e in index().items() if n.partition(".")[0] in names}
    if args.json:
        emit([{"name": n, **e} for n, e in entries.items()])
        return 0
    from cnnlab.table import render

    def dcz(e):
        return (f"{e['dcz']} ({e['dcz_ratio']:.0f}x, {e['dcz_accuracy']:.2f} %)"
                if e.get("dcz") else "")

    rows = [[n.partition(".")[0], repr(n.partition(".")[2]) if "." in n else "True",
             e["data"], f"{e['accuracy']:.2f}", e["val"], dcz(e)] for n, e in entries.items()]
    print(render(rows, ["model", "pretrained=", "trained on", "top-1 %", "measured on",
                        "Deep Compression (.dcz)"], right={3}))
    return 0


def _profile(name, args, batch_size=1, spec=None):
    from cnnlab.profile import profile

    kwargs = spec.builder_args(parse_sets(args.set)) if spec else parse_sets(args.set)
    size = input_size(name, optional_size(args.input_size), kwargs,
                      spec.input_size if spec else None)
    try:
        return profile(name, size, batch_size=batch_size, measure=args.measure, **kwargs)
    except (TypeError, RuntimeError, OverflowError) as e:  # the builder refused the arguments
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CliError(f"cannot build {name} with --set {' '.join(args.set or [])}: "
                       f"{first}") from None


def _weights_line(name, spec, path, params) -> str:
    """Size on disk and density of a checkpoint, .dcz or weights file."""
    import os

    from cnnlab.runspec import build_model, load_weights
    from cnnlab.table import human

    model = build_model(name, spec.builder_args())
    load_weights(path, model)
    nonzero = sum(int(t.count_nonzero()) for t in model.parameters())
    size = os.path.getsize(path)
    return (f"weights {path}: {human(size, 'B')} on disk ({params * 4 / size:.1f}x smaller "
            f"than fp32), {nonzero:,} of {params:,} parameters nonzero "
            f"({100 * nonzero / max(params, 1):.1f}%)")


def _layer_table(p, args) -> str:
    from cnnlab.table import fmt_shape, render

    if args.by_type:
        rows = [[d["type"], d["macs"], f"{d['macs_pct']:.2f}%", d["params"],
                 f"{d['params_pct']:.2f}%"] for d in p.by_type()]
        return render(rows, ["type", "mult-adds", "share", "params", "share"],
                      right={1, 2, 3, 4})
    if args.depth:
        rows = [[g["name"] or "(model)", g["op"], fmt_shape(g["output_shape"]), g["params"],
                 g["macs"], g["memory_access"]] for g in p.grouped(args.depth)]
        header = ["layer", "op", "output", "params", "mult-adds", "mem access"]
    else:
        rows = [[r.name or "(model)", r.op, fmt_shape(r.input_shape),
                 fmt_shape(r.output_shape), r.params, r.macs, r.memory_access]
                for r in p.rows if args.all or r.macs or r.params]
        header = ["layer", "op", "input", "output", "params", "mult-adds", "mem access"]
    return render(rows, header, right=set(range(len(header) - 3, len(header))))


def cmd_summary(args) -> int:
    from cnnlab.table import human

    if args.energy:
        from cnnlab.cli.deploy import energy_report, print_energy

        kwargs = parse_sets(args.set)
        size = None if args.model.endswith(".dcz") else \
            input_size(args.model, optional_size(args.input_size), kwargs)
        e = energy_report(args.model, size, kwargs, args.sram, args.precision)
        if args.json:
            emit(e.to_dict())
        else:
            print_energy(e)
        return 0
    spec = None
    if args.checkpoint:
        from cnnlab.cli.common import input_file
        from cnnlab.runspec import RunSpec

        spec = RunSpec.from_checkpoint(input_file(args.checkpoint, "checkpoint"))
        spec.check_model(args.model)
    p = _profile(args.model, args, args.batch_size, spec)
    weights = _weights_line(args.model, spec, args.checkpoint, p.params) if spec else None
    if args.json:
        extra = {"guidelines": _flags(p)} if args.guidelines else {}
        emit({**p.to_dict(), **({"weights": weights} if weights else {}), **extra})
        return 0
    print(_layer_table(p, args))
    print()
    print(f"{p.model} @ {'x'.join(map(str, p.input_size))}: params {p.params:,} "
          f"({human(p.params)}), mult-adds {p.macs:,} ({human(p.macs)}), "
          f"memory access {human(p.memory_access)} elements, "
          f"peak activations {human(p.peak_activation_bytes, 'B')}, "
          f"fp32 size {human(p.model_size(32), 'B')}")
    if weights:
        print(weights)
    if p.latency_ms is not None:
        print(f"latency (median, batch {p.batch_size}, {p.device}): {p.latency_ms:.2f} ms")
    if args.guidelines:
        _print_guidelines(p)
    return 0


def _flags(p) -> list[dict]:
    from cnnlab.profile.guidelines import check

    return check(p)


def _print_guidelines(p) -> None:
    """ShuffleNet V2's G1-G4 against this model's layers (cnnlab.profile.guidelines)."""
    flags = _flags(p)
    print(f"\nShuffleNet V2 guidelines: {len(flags) or 'no'} flag(s)")
    for f in flags:
        print(f"  {f['guideline']}  {f['layer'] or '(model)'}: {f['message']}")


def _paper_top1(name, prof):
    """The paper's top-1 of ``name`` at the profiled input size (default builder only)."""
    from cnnlab.models import model_info

    for ref in model_info(name).references:
        if tuple(ref.input_size) == prof.input_size and not ref.kwargs:
            return ref.top1
    return None


def cmd_compare(args) -> int:
    from cnnlab.table import render

    if args.plot:
        from cnnlab.cli.common import output_file

        output_file(args.plot)
    results = [_profile(name, args) for name in args.models]
    if args.plot:
        from cnnlab.plot import plot_tradeoff

        left_out = plot_tradeoff([{"model": r.model, "macs": r.macs, "params": r.params,
                                   "top1": _paper_top1(n, r)}
                                  for n, r in zip(args.models, results)], args.plot)
        print(f"wrote {args.plot}: paper top-1 vs mult-adds"
              + (f"; left out (no paper top-1 at this input size): {', '.join(left_out)}"
                 if left_out else ""), file=sys.stderr)
    if args.json:
        emit([r.to_dict(rows=False) for r in results])
        return 0
    rows = [[r.model, "x".join(map(str, r.input_size)), r.params, r.macs, r.memory_access,
             r.peak_activation_bytes, r.model_size(32)]
            + ([round(r.latency_ms, 2)] if args.measure else []) for r in results]
    header = ["model", "input", "params", "mult-adds", "mem access", "peak act B", "fp32 B"]
    print(render(rows, header + (["ms"] if args.measure else [])))
    return 0


def cmd_verify(args) -> int:
    from cnnlab.profile.verify import verify
    from cnnlab.table import human, render

    checks = verify(args.pattern)
    if args.pattern and not checks:
        raise CliError(f"no model with paper figures matches {args.pattern!r}")
    bad = [c for c in checks if not c.ok]
    if args.json:
        emit({"ok": not bad, "checks": [c.to_dict() for c in checks]})
        return 1 if bad else 0
    rows = [[c.model, c.config, c.metric, c.paper.text,
             f"{c.measured:.2f}" if c.metric == "size_mib" else human(c.measured),
             f"{c.delta_pct:+.2f}%", "ok" if c.ok else "FAIL",
             (c.note[:70] + "…" if len(c.note) > 70 else c.note)] for c in checks]
    print(render(rows, ["model", "config", "figure", "paper", "measured", "delta", "", "note"],
                 right={3, 4, 5}))
    n_models = len({c.model for c in checks})
    print(f"\n{len(checks) - len(bad)}/{len(checks)} figures of {n_models} models match "
          f"their papers" + (f"; {len(bad)} FAIL" if bad else ""))
    return 1 if bad else 0


ONNX_OPSETS = range(7, 21)  # what torch.onnx.export (TorchScript exporter) accepts


def cmd_export(args) -> int:
    from cnnlab.cli.common import output_file

    output_file(args.output)
    if args.opset not in ONNX_OPSETS:
        raise CliError(f"--opset {args.opset}: the exporter supports opsets "
                       f"{ONNX_OPSETS.start}-{ONNX_OPSETS.stop - 1}")
    from cnnlab.deploy.export import export_onnx
    from cnnlab.runspec import build_model

    spec = None
    if args.checkpoint:
        from cnnlab.cli.common import input_file
        from cnnlab.runspec import RunSpec

        spec = RunSpec.from_checkpoint(input_file(args.checkpoint, "checkpoint"))
        spec.check_model(args.model)
    kwargs = spec.builder_args(parse_sets(args.set)) if spec else parse_sets(args.set)
    size = input_size(args.model, optional_size(args.input_size), kwargs,
                      spec.input_size if spec else None)
    model = build_model(args.model, kwargs)
    if args.checkpoint:
        from cnnlab.runspec import load_weights

        load_weights(args.checkpoint, model)
    try:
        report = export_onnx(model, args.output, size, opset=args.opset, fuse_bn=args.fuse_bn)
    except RuntimeError as e:  # the exporter's own refusal (an op this opset lacks)
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CliError(f"the ONNX exporter cannot export {args.model} at opset "
                       f"{args.opset}: {first[:200]}") from None
    if args.json:
        emit(report)
    else:
        print(f"wrote {report['path']} ({report['bytes']:,} bytes, opset {report['opset']}); "
              f"onnxruntime matches PyTorch (max difference {report['max_rel_diff']:.2g} "
              "relative to the output's scale)")
    return 0


def add_commands(sub) -> None:
    p = sub.add_parser("list", help="registered models")
    p.add_argument("pattern", nargs="?", help="glob pattern, e.g. 'mobilenet*'")
    p.add_argument("--pretrained", action="store_true",
                   help="only models with bundled weights (create_model(..., pretrained=True))")
    json_opt(p)
    p.set_defaults(func=cmd_list)

    def model_opts(p):
        input_size_opt(p)
        set_opt(p)
        p.add_argument("--measure", action="store_true", help="also time it on the CPU")
        json_opt(p)

    p = sub.add_parser("summary", help="per-layer table of one model")
    p.add_argument("model")
    model_opts(p)
    p.add_argument("--by-type", action="store_true", help="share per layer type (MobileNet T2)")
    p.add_argument("--depth", type=nonneg_int, default=0, help="merge rows to module depth N")
    p.add_argument("--all", action="store_true", help="also rows without params or mult-adds")
    p.add_argument("--batch-size", type=positive_int, default=1)
    p.add_argument("--checkpoint", help="a checkpoint, .dcz or decompressed weights: its "
                   "builder arguments and input size, and its size on disk")
    p.add_argument("--energy", action="store_true", help="pJ per inference, Horowitz 45 nm "
                   "(MODEL may be a .dcz file)")
    p.add_argument("--sram", default="512KiB", help="on-chip memory for --energy")
    p.add_argument("--precision", default="fp32", help="fp32 | fp16 | int8 for --energy")
    p.add_argument("--guidelines", action="store_true",
                   help="flag layers against ShuffleNet V2's guidelines G1-G4")
    p.set_defaults(func=cmd_summary)

    p = sub.add_parser("compare", help="totals of several models side by side")
    p.add_argument("models", nargs="+")
    model_opts(p)
    p.add_argument("--plot", metavar="PNG", help="also plot the papers' top-1 vs mult-adds "
                   "(models without a paper top-1 are left out and named)")
    p.set_defaults(func=cmd_compare)

    p = sub.add_parser("verify", help="check every model's counts against its paper")
    p.add_argument("pattern", nargs="?")
    json_opt(p)
    p.set_defaults(func=cmd_verify)

    p = sub.add_parser("export", help="export to ONNX, checked in onnxruntime")
    p.add_argument("model")
    p.add_argument("-o", "--output", required=True, help="file.onnx")
    p.add_argument("--checkpoint", help="weights to load (a checkpoint, a .dcz or decompressed "
                   "weights; its builder "
                   "arguments and input size are the defaults)")
    input_size_opt(p, "CxHxW, e.g. 3x224x224")
    set_opt(p, None)
    p.add_argument("--opset", type=int, default=17)
    p.add_argument("--fuse-bn", action="store_true", help="fold BN into the convolutions")
    json_opt(p)
    p.set_defaults(func=cmd_export)
