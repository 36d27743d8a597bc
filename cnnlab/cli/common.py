"""What every ``cnnlab`` command shares: the error that becomes one line and exit code 2,
parsing of sizes and ``--set`` values, the common options, JSON output.

Nothing here imports torch: ``cnnlab --help`` and argument errors answer at once."""

from __future__ import annotations

import argparse
import ast
import json
import math
import os
import re
import tempfile
from pathlib import Path


class CliError(Exception):
    """A user error: printed as one line, exit code 2."""


class Parser(argparse.ArgumentParser):
    def error(self, message):
        raise CliError(message)

    def parse_args(self, args=None, namespace=None):
        return super().parse_args(_glue_negative_values(args), namespace)


def _glue_negative_values(argv):
    """``--input-size -3x32x32`` → ``--input-size=-3x32x32``: argparse takes a value that
    starts with '-' for an option and says "expected one argument"; glued, the value reaches
    its own check and the user hears what is wrong with it."""
    if argv is None:
        return None
    out = []
    for a in argv:
        if (out and out[-1].startswith("--") and "=" not in out[-1]
                and re.match(r"-[\d.]", a)):
            out[-1] = f"{out[-1]}={a}"
        else:
            out.append(a)
    return out


def parse_size(text: str) -> tuple[int, ...]:
    """'3x224x224' → (3, 224, 224); '224' → (224, 224) spatial only."""
    try:
        size = tuple(int(p) for p in text.lower().replace(",", "x").split("x"))
    except ValueError:
        raise CliError(f"malformed input size {text!r}: expected CxHxW, e.g. 3x224x224") from None
    if not 1 <= len(size) <= 4 or any(s <= 0 for s in size):
        raise CliError(f"malformed input size {text!r}: expected CxHxW, e.g. 3x224x224")
    return size


# --- typed option values: argparse turns their ValueError into one line ------------------
def _number(kind, text: str, least: float | None, strict: bool, what: str):
    try:
        v = kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
    if isinstance(v, float) and not math.isfinite(v):
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
    if least is not None and (v < least or (strict and v == least)):
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
    return v


def positive_int(text: str) -> int:
    return _number(int, text, 0, True, "a positive whole number")


def nonneg_int(text: str) -> int:
    return _number(int, text, 0, False, "a whole number >= 0")


def positive_float(text: str) -> float:
    return _number(float, text, 0, True, "a positive finite number")


def nonneg_float(text: str) -> float:
    return _number(float, text, 0, False, "a finite number >= 0")


def device_name(text: str) -> str:
    """auto, cpu, cuda or cuda:N — checked against what this machine has."""
    if not re.fullmatch(r"auto|cpu|cuda(:\d+)?", text):
        raise argparse.ArgumentTypeError(f"unknown device {text!r}: expected auto, cpu, cuda "
                                         "or cuda:N")
    if text.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise argparse.ArgumentTypeError(f"{text}: no CUDA device is available")
        index = int(text.partition(":")[2] or 0)
        if index >= torch.cuda.device_count():
            raise argparse.ArgumentTypeError(f"{text}: only {torch.cuda.device_count()} "
                                             "CUDA device(s)")
    return text


# --- outputs, checked before any long work ----------------------------------------------
def _probe_dir(folder: Path, user_path) -> None:
    """Raise a CliError unless a file can be created in ``folder`` (tried for real)."""
    try:
        fd, tmp = tempfile.mkstemp(prefix=".cnnlab-probe.", dir=folder)
    except OSError as e:
        raise CliError(f"cannot write {user_path}: {e.strerror or e}") from None
    os.close(fd)
    os.unlink(tmp)


def output_file(path: str | os.PathLike) -> Path:
    """A file the command may write: not a folder, in a folder that exists and is writable."""
    p = Path(path)
    if p.is_dir():
        raise CliError(f"{path} is a directory, not a file")
    if not p.parent.is_dir():
        raise CliError(f"cannot write {path}: folder {p.parent} does not exist")
    _probe_dir(p.parent, path)
    return p


def output_dir(path: str | os.PathLike) -> Path:
    """A folder the command may create or fill: not a file, under a writable folder."""
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise CliError(f"{path} is a file, not a folder")
    base = p
    while not base.exists():
        base = base.parent
    if not base.is_dir():
        raise CliError(f"cannot create {path}: {base} is a file")
    _probe_dir(base, path)
    return p


def new_output_dir(path: str | os.PathLike) -> Path:
    """A folder of results that does not exist yet (or is empty), in a writable folder that
    exists: written whole by :func:`cnnlab.io.atomic_dir`."""
    p = Path(path)
    if p.exists() and (not p.is_dir() or any(p.iterdir())):
        raise CliError(f"--out {path} exists and is not an empty directory")
    if not p.parent.is_dir():
        raise CliError(f"--out: directory {p.parent} does not exist")
    _probe_dir(p.parent, path)
    return p


def input_file(path: str | os.PathLike, what: str = "file") -> Path:
    p = Path(path)
    if p.is_dir():
        raise CliError(f"{path} is a directory, not a {what}")
    if not p.exists():
        raise CliError(f"{what} {path} not found")
    return p


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
    p.add_argument("--val-split", type=positive_int, default=None, help=val_help)
    p.add_argument("--split-seed", type=nonneg_int, default=None, help="seed of --val-split (0)")


def data_opts(p, default="digits") -> None:
    """Dataset, split, input size, builder arguments and device of train/eval."""
    p.add_argument("--data", default=default,
                   help="digits (built in), mnist:DIR, fashion:DIR, cifar10:DIR, cifar100:DIR, "
                   "folder:DIR")
    split_opts(p)
    input_size_opt(p, "CxHxW (or HxW, or one side) the model sees")
    set_opt(p, "builder argument")
    p.add_argument("--device", default="auto", type=device_name, help="auto, cpu, cuda[:N]")
    p.add_argument("--threads", type=positive_int,
                   help="CPU threads (default: 1 for models under 5 M mult-adds per image, "
                   "whose steps do not gain from more and collapse when cores are shared; "
                   "all cores otherwise)")
    p.add_argument("--json", action="store_true", help="final metrics as JSON (last line)")


def input_size(name: str, size: tuple[int, ...] | None, kwargs: dict,
               default: tuple[int, ...] | None = None) -> tuple[int, ...]:
    """The full input size of model ``name`` built with ``kwargs``: ``size`` completed with
    its channels, else ``default``, else the model's paper input size."""
    from cnnlab.data.core import complete_size
    from cnnlab.models import model_info

    default = default or model_info(name).input_size
    channels = kwargs.get("in_chans", default[0])
    if size is not None and len(size) == 3 and size[0] != channels:
        raise CliError(f"input size {'x'.join(map(str, size))} has {size[0]} channel(s), but "
                       f"{name} is built with in_chans={channels} (--set in_chans=N)")
    return complete_size(size, channels, (channels, *default[1:]))
