"""What every ``cnnlab`` command shares: the error that becomes one line and exit code 2,
parsing of sizes and ``--set`` values, the common options, JSON output.

Nothing here imports torch: ``cnnlab --help`` and argument errors answer at once."""

from __future__ import annotations

import argparse
import ast
import json
import os


class CliError(Exception):
    """A user error: printed as one line, exit code 2."""


class Parser(argparse.ArgumentParser):
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


def optional_size(text: str | None) -> tuple[int, ...] | None:
    return parse_size(text) if text else None


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


def emit(obj) -> None:
    print(json.dumps(obj, default=str))


def rank() -> int:
    """This process's rank under ``torchrun`` (0 otherwise): only rank 0 prints."""
    return int(os.environ.get("RANK", "0"))


# --- options shared by several commands ----------------------------------------------------
def json_opt(p) -> None:
    p.add_argument("--json", action="store_true")


def set_opt(p, help="builder argument, e.g. width_mult=0.5 (repeatable)") -> None:
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help=help)


def input_size_opt(p, help="CxHxW (or HxW, or one side), e.g. 3x224x224") -> None:
    p.add_argument("--input-size", help=help)


def split_opts(p, val_help="carve a seeded validation set of N images") -> None:
    p.add_argument("--val-split", type=int, default=None, help=val_help)
    p.add_argument("--split-seed", type=int, default=None, help="seed of --val-split (0)")


def data_opts(p, default="digits") -> None:
    """Dataset, split, input size, builder arguments and device of train/eval."""
    p.add_argument("--data", default=default,
                   help="digits (built in), mnist:DIR, fashion:DIR, cifar10:DIR, cifar100:DIR, "
                   "folder:DIR")
    split_opts(p)
    input_size_opt(p, "CxHxW (or HxW, or one side) the model sees")
    set_opt(p, "builder argument")
    p.add_argument("--device", default="auto")
    p.add_argument("--threads", type=int, help="CPU threads (torch.set_num_threads)")
    p.add_argument("--json", action="store_true", help="final metrics as JSON (last line)")
