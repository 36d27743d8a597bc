"""The ``cnnlab`` command line: a thin layer over the library.

Every command prints an aligned table for people or, with ``--json``, JSON for programs.
Bad input (unknown model, malformed size, an input too small for the model, a missing file)
prints one line on stderr and exits with code 2.

One module per command group, each with ``add_commands(subparsers)``; modules import torch
and the library only inside their command functions, so ``--help`` and argument errors are
fast.
"""

from __future__ import annotations

import importlib
import sys
import warnings

from cnnlab.cli.common import CliError, Parser, parse_sets, parse_size

__all__ = ["COMMANDS", "CliError", "build_parser", "main", "parse_sets", "parse_size"]

# command-group modules, in the order their commands are listed by --help
COMMANDS: list[str] = ["cnnlab.cli.models", "cnnlab.cli.train", "cnnlab.cli.compress",
                       "cnnlab.cli.prune", "cnnlab.cli.binarize", "cnnlab.cli.distill",
                       "cnnlab.cli.search", "cnnlab.cli.visualize", "cnnlab.cli.deploy",
                       "cnnlab.cli.ablate", "cnnlab.cli.report", "cnnlab.cli.checklist"]


def build_parser() -> Parser:
    parser = Parser(prog="cnnlab", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    for mod in COMMANDS:
        importlib.import_module(mod).add_commands(sub)
    return parser


# PyTorch's notices about its own torch.ao quantization API, raised on every int8 model:
# nothing a user of the command can act on, and they bury the table (the library leaves them)
TORCH_NOTICES = [r"Please use quant_min and quant_max to specify the range",
                 r"torch\.quantize_per_tensor, torch\.quantize_per_channel and other"]


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(sys.argv[1:] if argv is None else argv)
        with warnings.catch_warnings():
            for notice in TORCH_NOTICES:
                warnings.filterwarnings("ignore", message=notice, category=UserWarning)
            return args.func(args)
    except (CliError, ValueError, OSError) as e:
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
