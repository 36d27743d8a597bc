"""The ``cnnlab`` command line: a thin layer over the library.

Every command prints an aligned table for people or, with ``--json``, JSON for programs.
Bad input (unknown model, malformed size, an input too small for the model, a missing file)
prints one line on stderr and exits with code 2.
"""

from __future__ import annotations

import argparse
import ast
import importlib
import json
import sys

# Tool modules that add their own sub-commands through ``add_commands(subparsers)``.
EXTENSIONS: list[str] = ["cnnlab.compress.cli", "cnnlab.train.cli"]


class CliError(Exception):
    """A user error: printed as one line, exit code 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        raise CliError(message)


def parse_size(text: str) -> tuple[int, ...]:
    """'3x224x224' → (3, 224, 224); '224' → (224, 224) spatial only."""
    try:
        size = tuple(int(p) for p in text.lower().replace(",", "x").split("x"))
    except ValueError:
        raise CliError(f"malformed input size {text!r}: expected CxHxW, e.g. 3x224x224") from None
    if not 1 <= len(size) <= 4 or any(s <= 0 for s in size):
        raise CliError(f"malformed input size {text!r}: expected CxHxW, e.g. 3x224x224")
    return size


def parse_sets(items: list[str] | None) -> dict:
    """['width_mult=0.5', 'num_classes=10'] → {'width_mult': 0.5, 'num_classes': 10}."""
    out = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.isidentifier():
            raise CliError(f"--set takes key=value, got {item!r}")
        try:
            out[key] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            out[key] = value
    return out


def resolve_input(name: str, size: tuple[int, ...] | None, kwargs: dict) -> tuple[int, ...]:
    from cnnlab.registry import model_info

    default = model_info(name).input_size
    if size is None:
        size = default
        if "in_chans" in kwargs:
            size = (kwargs["in_chans"], *default[1:])
    elif len(size) == 1:
        size = (kwargs.get("in_chans", default[0]), size[0], size[0])
    elif len(size) == 2:
        size = (kwargs.get("in_chans", default[0]), *size)
    return size


def _emit(obj) -> None:
    print(json.dumps(obj, indent=None, default=str))


# --- commands ------------------------------------------------------------------------------
def cmd_list(args) -> int:
    from cnnlab.registry import list_models, model_info

    names = list_models(args.pattern)
    if args.pattern and not names:
        raise CliError(f"no model matches {args.pattern!r}")
    infos = [model_info(n) for n in names]
    if args.json:
        _emit([{"name": i.name, "family": i.family, "input_size": list(i.input_size),
                "paper": i.paper.cite() if i.paper else None,
                "references": len(i.references)} for i in infos])
        return 0
    from cnnlab.table import render

    rows = [[i.name, i.family, "x".join(map(str, i.input_size)),
             f"{i.paper.authors.split(',')[0]} {i.paper.year}" if i.paper else "",
             "yes" if i.references else ""] for i in infos]
    print(render(rows, ["model", "family", "input", "paper", "figures"], right=set()))
    return 0


def _profile(args):
    from cnnlab.profile import profile

    kwargs = parse_sets(args.set)
    size = resolve_input(args.model, parse_size(args.input_size) if args.input_size else None,
                         kwargs)
    return profile(args.model, size, batch_size=getattr(args, "batch_size", 1),
                   measure=getattr(args, "measure", False), **kwargs)


def cmd_summary(args) -> int:
    from cnnlab.table import fmt_shape, human, render

    p = _profile(args)
    if args.json:
        _emit(p.to_dict())
        return 0
    if args.by_type:
        rows = [[d["type"], d["macs"], f"{d['macs_pct']:.2f}%", d["params"],
                 f"{d['params_pct']:.2f}%"] for d in p.by_type()]
        print(render(rows, ["type", "mult-adds", "share", "params", "share"],
                     right={1, 2, 3, 4}))
    else:
        if args.depth:
            groups = p.grouped(args.depth)
            rows = [[g["name"] or "(model)", g["op"], fmt_shape(g["output_shape"]), g["params"],
                     g["macs"], g["memory_access"]] for g in groups]
        else:
            rows = [[r.name or "(model)", r.op, fmt_shape(r.input_shape),
                     fmt_shape(r.output_shape), r.params, r.macs, r.memory_access]
                    for r in p.rows if args.all or r.macs or r.params]
        header = ["layer", "op", "output", "params", "mult-adds", "mem access"] if args.depth \
            else ["layer", "op", "input", "output", "params", "mult-adds", "mem access"]
        print(render(rows, header, right=set(range(len(header) - 3, len(header)))))
    print()
    print(f"{p.model} @ {'x'.join(map(str, p.input_size))}: params {p.params:,} "
          f"({human(p.params)}), mult-adds {p.macs:,} ({human(p.macs)}), "
          f"memory access {human(p.memory_access)} elements, "
          f"peak activations {human(p.peak_activation_bytes, 'B')}, "
          f"fp32 size {human(p.model_size(32), 'B')}")
    if p.latency_ms is not None:
        print(f"latency (median, batch {p.batch_size}, {p.device}): {p.latency_ms:.2f} ms")
    return 0


def cmd_compare(args) -> int:
    from cnnlab.profile import profile
    from cnnlab.table import render

    kwargs = parse_sets(args.set)
    results = []
    for name in args.models:
        size = resolve_input(name, parse_size(args.input_size) if args.input_size else None,
                             kwargs)
        results.append(profile(name, size, measure=args.measure, **kwargs))
    if args.plot:
        from cnnlab.plot import plot_tradeoff
        from cnnlab.registry import model_info

        def top1(name, prof):
            for ref in model_info(name).references:
                if tuple(ref.input_size) == prof.input_size and not ref.kwargs:
                    return ref.top1
            return None

        plot_tradeoff([{"model": r.model, "macs": r.macs, "params": r.params,
                        "top1": top1(n, r)} for n, r in zip(args.models, results)], args.plot)
    if args.json:
        _emit([r.to_dict(rows=False) for r in results])
        return 0
    rows = [[r.model, "x".join(map(str, r.input_size)), r.params, r.macs, r.memory_access,
             r.peak_activation_bytes, r.model_size(32)]
            + ([round(r.latency_ms, 2)] if args.measure else []) for r in results]
    header = ["model", "input", "params", "mult-adds", "mem access", "peak act B", "fp32 B"]
    print(render(rows, header + (["ms"] if args.measure else [])))
    return 0


def cmd_verify(args) -> int:
    from cnnlab.table import human, render
    from cnnlab.verify import verify

    checks = verify(args.pattern)
    if args.pattern and not checks:
        raise CliError(f"no model with paper figures matches {args.pattern!r}")
    bad = [c for c in checks if not c.ok]
    if args.json:
        _emit({"ok": not bad, "checks": [c.to_dict() for c in checks]})
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


def cmd_export(args) -> int:
    from cnnlab.deploy.export import export_onnx
    from cnnlab.registry import create_model

    kwargs = parse_sets(args.set)
    size = resolve_input(args.model, parse_size(args.input_size) if args.input_size else None,
                         kwargs)
    model = create_model(args.model, **kwargs)
    if args.checkpoint:
        from cnnlab.train.checkpoint import load_checkpoint

        load_checkpoint(args.checkpoint, model)
    report = export_onnx(model, args.output, size, opset=args.opset)
    if args.json:
        _emit(report)
    else:
        print(f"wrote {report['path']} ({report['bytes']:,} bytes, opset {report['opset']}); "
              f"onnxruntime matches PyTorch (max abs diff {report['max_abs_diff']:.2g})")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="cnnlab", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    p = sub.add_parser("list", help="registered models")
    p.add_argument("pattern", nargs="?", help="glob pattern, e.g. 'mobilenet*'")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_list)

    def model_opts(p):
        p.add_argument("--input-size", help="CxHxW (or HxW, or one side), e.g. 3x224x224")
        p.add_argument("--set", action="append", metavar="KEY=VALUE",
                       help="builder argument, e.g. width_mult=0.5 (repeatable)")
        p.add_argument("--measure", action="store_true", help="also time it on the CPU")
        p.add_argument("--json", action="store_true")

    p = sub.add_parser("summary", help="per-layer table of one model")
    p.add_argument("model")
    model_opts(p)
    p.add_argument("--by-type", action="store_true", help="share per layer type (MobileNet T2)")
    p.add_argument("--depth", type=int, default=0, help="merge rows to module depth N")
    p.add_argument("--all", action="store_true", help="also rows without params or mult-adds")
    p.add_argument("--batch-size", type=int, default=1)
    p.set_defaults(func=cmd_summary)

    p = sub.add_parser("compare", help="totals of several models side by side")
    p.add_argument("models", nargs="+")
    model_opts(p)
    p.add_argument("--plot", metavar="PNG", help="also plot top-1 (or params) vs mult-adds")
    p.set_defaults(func=cmd_compare)

    p = sub.add_parser("verify", help="check every model's counts against its paper")
    p.add_argument("pattern", nargs="?")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_verify)

    p = sub.add_parser("export", help="export to ONNX, checked in onnxruntime")
    p.add_argument("model")
    p.add_argument("-o", "--output", required=True, help="file.onnx")
    p.add_argument("--checkpoint", help="weights to load (a cnnlab checkpoint)")
    p.add_argument("--input-size", help="CxHxW, e.g. 3x224x224")
    p.add_argument("--set", action="append", metavar="KEY=VALUE")
    p.add_argument("--opset", type=int, default=17)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_export)

    for mod in EXTENSIONS:
        importlib.import_module(mod).add_commands(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        return args.func(args)
    except (CliError, ValueError, FileNotFoundError, NotADirectoryError,
            IsADirectoryError, PermissionError) as e:
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        print(f"cnnlab: error: {msg}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("cnnlab: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    raise SystemExit(main())
