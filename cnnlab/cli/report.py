"""``cnnlab report``: one static HTML page of the zoo and the ablation results."""

from __future__ import annotations

from pathlib import Path

from cnnlab.cli.common import CliError, emit, json_opt, output_dir


def cmd_report(args) -> int:
    from cnnlab.models import list_models
    from cnnlab.report import write_report

    names = list_models(args.models)
    if not names:
        raise CliError(f"no registered model matches {args.models!r}")
    layers = args.layers or ("mobilenet_v2" if "mobilenet_v2" in names else names[0])
    if layers not in list_models():
        raise CliError(f"unknown model {layers!r} for --layers (cnnlab list shows them)")
    if args.results is not None and not Path(args.results).is_dir():
        raise CliError(f"--results {args.results}: no such folder")
    out = output_dir(args.out)
    path = write_report(out, args.models, args.results, layers)
    if args.json:
        emit({"report": str(path), "models": len(names)})
    else:
        print(f"wrote {path} ({len(names)} models)")
    return 0


def add_commands(sub) -> None:
    p = sub.add_parser("report", help="one static HTML page: the zoo, a trade-off plot, "
                       "per-layer costs and ablation results")
    p.add_argument("--out", required=True, metavar="DIR", help="folder for index.html")
    p.add_argument("--models", metavar="PATTERN", help="glob of the models to list (all)")
    p.add_argument("--results", metavar="DIR", help="folder of cnnlab ablate results")
    p.add_argument("--layers", metavar="MODEL", help="model whose per-layer costs are drawn "
                   "(mobilenet_v2, or the first listed)")
    json_opt(p)
    p.set_defaults(func=cmd_report)
