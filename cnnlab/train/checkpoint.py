"""Checkpoints that survive crashes and never run code from a file.

One safetensors file holds the model weights (``model.*``), the optimizer's tensors flattened
(``optim.<param index>.<key>``) and any extra tensors (EMA weights, RNG states); its header
metadata holds the JSON meta (epoch, step, config, the optimizer's param groups and scalars).
The file is written to a temporary name beside the target, fsynced and renamed, so ``kill -9``
at any moment leaves either the previous checkpoint or the new one, never a torn one. A
``.json`` twin of the meta is written afterwards for people and tools; loading reads only the
safetensors file. Loading parses the header itself first, so a foreign, truncated or
mismatched file gives a one-line ``ValueError``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
import torch.nn as nn

from cnnlab.io import write_bytes_atomic
from cnnlab.state import mismatch

FORMAT = "cnnlab-checkpoint"
VERSION = 1


def _plain(v):
    if isinstance(v, torch.Tensor):
        return v.item() if v.numel() == 1 else v.tolist()
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    if isinstance(v, dict):
        return {str(k): _plain(x) for k, x in v.items()}
    return v


def _unwrap(model: nn.Module) -> nn.Module:
    return getattr(model, "module", getattr(model, "_orig_mod", model))


def save_checkpoint(path: str | os.PathLike, model: nn.Module,
                    optimizer: torch.optim.Optimizer | None = None, meta: dict | None = None,
                    tensors: dict[str, torch.Tensor] | None = None) -> Path:
    """Save atomically; ``tensors`` are extra named tensors (returned by ``load_checkpoint``
    in ``meta["tensors"]``)."""
    from safetensors.torch import save

    path = Path(path)
    if not path.parent.is_dir():
        raise ValueError(f"checkpoint directory {path.parent} does not exist")
    out: dict[str, torch.Tensor] = {}
    for k, v in _unwrap(model).state_dict().items():
        out[f"model.{k}"] = v.detach().cpu().clone().contiguous()
    info = {"format": FORMAT, "version": VERSION, **_plain(meta or {})}
    if optimizer is not None:
        sd = optimizer.state_dict()
        scalars = {}
        for pid, st in sd["state"].items():
            for k, v in st.items():
                if isinstance(v, torch.Tensor):
                    out[f"optim.{pid}.{k}"] = v.detach().cpu().clone().contiguous()
                else:
                    scalars.setdefault(str(pid), {})[k] = v
        info["optimizer"] = {"type": type(optimizer).__name__,
                             "param_groups": _plain(sd["param_groups"]), "scalars": scalars}
    for k, v in (tensors or {}).items():
        out[f"extra.{k}"] = v.detach().cpu().clone().contiguous()
    text = json.dumps(info)
    write_bytes_atomic(path, save(out, metadata={"cnnlab": text}))
    write_bytes_atomic(path.with_suffix(".json"), json.dumps(info, indent=1).encode())
    return path


def read_header(path: str | os.PathLike) -> tuple[dict, bytes]:
    """The safetensors header and the whole file, checked for truncation."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"checkpoint {path} not found")
    data = path.read_bytes()
    if len(data) < 8:
        raise ValueError(f"{path}: not a cnnlab checkpoint (file of {len(data)} bytes)")
    n = int.from_bytes(data[:8], "little")
    if n > len(data) - 8 or n > 100_000_000:
        raise ValueError(f"{path}: not a cnnlab checkpoint or truncated (header of {n} bytes, "
                         f"file of {len(data)})")
    try:
        header = json.loads(data[8:8 + n])
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise ValueError(f"{path}: not a cnnlab checkpoint (unreadable header)") from None
    if not isinstance(header, dict):
        raise ValueError(f"{path}: not a cnnlab checkpoint")
    ends = [t["data_offsets"][1] for k, t in header.items() if k != "__metadata__"
            and isinstance(t, dict) and "data_offsets" in t]
    if max(ends, default=0) != len(data) - 8 - n:
        raise ValueError(f"{path}: truncated or corrupt checkpoint (data ends at "
                         f"{max(ends, default=0)}, file has {len(data) - 8 - n} bytes)")
    return header, data


def read_meta(path: str | os.PathLike) -> dict:
    header, _ = read_header(path)
    meta = (header.get("__metadata__") or {}).get("cnnlab")
    try:
        info = json.loads(meta) if meta else None
    except json.JSONDecodeError:
        info = None
    if not isinstance(info, dict) or info.get("format") != FORMAT:
        raise ValueError(f"{path}: a safetensors file but not a cnnlab checkpoint")
    if info.get("version", 0) > VERSION:
        raise ValueError(f"{path}: checkpoint version {info['version']} is newer than this "
                         f"cnnlab ({VERSION})")
    return info


def load_checkpoint(path: str | os.PathLike, model: nn.Module | None = None,
                    optimizer: torch.optim.Optimizer | None = None) -> dict:
    """Load weights into ``model`` (and state into ``optimizer``); return the meta, with the
    extra tensors under ``meta["tensors"]``. Shapes and names must match exactly."""
    from safetensors import SafetensorError
    from safetensors.torch import load

    info = read_meta(path)
    _, data = read_header(path)
    try:
        tensors = load(data)
    except SafetensorError as e:
        raise ValueError(f"{path}: corrupt checkpoint ({e})") from None
    if model is not None:
        target = _unwrap(model)
        got = {k[6:]: v for k, v in tensors.items() if k.startswith("model.")}
        wrong = mismatch(target.state_dict(), got)
        if wrong:
            name = info.get("model") or "another model"
            raise ValueError(f"{path}: checkpoint (of {name}) does not match this model; "
                             f"{wrong}")
        target.load_state_dict(got)
    if optimizer is not None:
        opt = info.get("optimizer")
        if not opt:
            raise ValueError(f"{path}: checkpoint has no optimizer state to resume from")
        if opt["type"] != type(optimizer).__name__:
            raise ValueError(f"{path}: optimizer state is {opt['type']}, not "
                             f"{type(optimizer).__name__}")
        groups = opt["param_groups"]
        mine = optimizer.state_dict()["param_groups"]
        if [len(g["params"]) for g in groups] != [len(g["params"]) for g in mine]:
            raise ValueError(f"{path}: optimizer parameter groups do not match this model")
        state: dict[int, dict] = {}
        for k, v in tensors.items():
            if k.startswith("optim."):
                _, pid, key = k.split(".", 2)
                state.setdefault(int(pid), {})[key] = v
        for pid, d in opt.get("scalars", {}).items():
            state.setdefault(int(pid), {}).update(d)
        for g in groups:
            if "betas" in g:
                g["betas"] = tuple(g["betas"])
        optimizer.load_state_dict({"state": state, "param_groups": groups})
    info["tensors"] = {k[6:]: v for k, v in tensors.items() if k.startswith("extra.")}
    return info


class KeepBest:
    """Epoch hook (``train(..., epoch_hooks=[KeepBest(out)])``): after each epoch's
    checkpoint, copy ``OUT/last.safetensors`` (and its ``.json`` twin) to ``best.*`` when the
    validation metric improved. A resumed run starts from the best it had."""

    def __init__(self, out_dir: str | os.PathLike, metric: str = "val_top1"):
        self.dir = Path(out_dir)
        self.metric = metric
        self.best = self._previous()

    def _previous(self) -> float | None:
        twin = self.dir / "best.json"
        try:
            rows = json.loads(twin.read_text()).get("history") or []
        except (OSError, ValueError, AttributeError):
            return None
        return rows[-1].get(self.metric) if rows else None

    def __call__(self, row: dict) -> None:
        value = row.get(self.metric)
        if value is None or (self.best is not None and value <= self.best):
            return
        for suffix in (".safetensors", ".json"):
            src = self.dir / f"last{suffix}"
            if src.exists():
                write_bytes_atomic(self.dir / f"best{suffix}", src.read_bytes())
        self.best = value
