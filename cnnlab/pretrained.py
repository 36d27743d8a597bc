"""Weights released for a peer's network (torchvision, timm, Keras) copied into a cnnlab model.

``load_weights(model, path, source="auto")`` reads a safetensors file, a
``torch.load(weights_only=True)`` checkpoint (never a plain pickle) or a Keras HDF5 file
(h5py, an optional extra) and pairs the peer's tensors with the model's by one of two rules:

- **names**, where the model's family has name rules for the peer's naming scheme
  (:mod:`cnnlab.pretrained_names`: torchvision's ``layer1.0.bn1`` is cnnlab's
  ``conv2_x.0.conv1.bn``); a scheme applies when most of its rewritten names are the model's,
  and then every one must be;
- **order** otherwise (torchvision's index-named ``features.N`` families, Keras files): the
  peer's layers and the model's pair up in the order their modules are registered, each
  pair of the same kind (convolution, batch norm, linear) with the same shapes. Safetensors
  files store names sorted; their order is restored by :func:`registration_key` from the
  indices in the names.

A tensor that does not fit stops the copy with one line naming the first one. The last
layer is the classifier: with other ``num_classes`` it is left as initialised, and the
report says so (as timm does).

That the copy computes the peer's function is what ``tools/peer_parity.py`` checks against
the live peers, and tests/test_peer_checkpoints.py against seeded peer checkpoints it wrote.
"""

from __future__ import annotations

import math
import os
import re
import warnings
from pathlib import Path

import torch
import torch.nn as nn

SOURCES = ("auto", "torchvision", "timm", "keras")
_SKIP = ("num_batches_tracked",)
# the order of sibling modules with the same index, as torchvision and timm register them
_RANK = {"features": 0, "stem": 0, "conv": 1, "squeeze": 1, "bn": 2, "norm": 2, "expand": 3,
         "downsample": 8, "classifier": 9, "fc": 9, "head": 9}
# pre-activation units (torchvision's densenet) register the norm before the convolution
_PRE_ACT = re.compile(r"^(denselayer|transition)")
_PART = re.compile(r"^([a-z_]*?)(\d*)$")


def registration_key(name: str) -> tuple:
    """Sort key giving a peer's tensors the order their modules were registered in, for
    files that do not keep it (safetensors stores names sorted): indices as numbers,
    ``conv1`` before ``bn1`` before ``layer1``, unnumbered parts (``fc``, ``downsample``)
    after numbered ones, kernel sizes (``expand1x1``) ignored."""
    key, parent = [], ""
    for part in name.split(".")[:-1]:
        if part.isdigit():
            key.append((int(part), 0, ""))
        else:
            m = _PART.match(re.sub(r"\d+x\d+$", "", part)) or _PART.match("")
            base, num = m.group(1), m.group(2)
            rank = _RANK.get(base.rstrip("_"), 5)
            if base == "norm" and _PRE_ACT.match(parent):
                rank = 0
            key.append((int(num) if num else math.inf, rank, part))
        parent = part
    return tuple(key)


def read_state(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """A state dict from a safetensors file or a ``torch.load(weights_only=True)`` file
    (a ``{"state_dict": ...}`` / ``{"model": ...}`` wrapper and DDP's ``module.`` are
    removed)."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"weights file {path} not found")
    with open(p, "rb") as fh:
        head = fh.read(9)
    if len(head) == 9 and head[8:9] == b"{":  # safetensors: 8-byte header length, then JSON
        from safetensors.torch import load_file

        state = load_file(str(p))  # names sorted: the order is restored below
        state = dict(sorted(state.items(), key=lambda kv: registration_key(kv[0])))
    else:
        try:
            state = torch.load(str(p), map_location="cpu", weights_only=True)
        except Exception as e:  # noqa: BLE001  (any unreadable file: one line)
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise ValueError(f"{path}: not a safetensors or torch weights file "
                             f"(weights_only=True): {first}") from None
        for key in ("state_dict", "model", "model_state_dict"):
            if isinstance(state, dict) and isinstance(state.get(key), dict):
                state = state[key]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor)
                                              for v in state.values()):
        raise ValueError(f"{path}: holds no state dict of tensors")
    return {k.removeprefix("module."): v for k, v in state.items()}


_KERAS_LEAF = {"gamma": "weight", "beta": "bias", "moving_mean": "running_mean",
               "moving_variance": "running_var", "bias": "bias"}


def read_keras_h5(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """A Keras HDF5 weights file (``model.save("x.h5")`` / ``save_weights``, the format of
    ``keras.applications``' files) as a PyTorch-layout state dict in the file's layer order:
    kernels HWIO → OIHW, depthwise (H, W, C, m) → (C·m, 1, H, W), dense (in, out) → (out, in),
    BN gamma/beta/moving_mean/moving_variance → weight/bias/running_mean/running_var; a
    separable convolution becomes its depthwise and pointwise layers."""
    try:
        import h5py
    except ImportError:
        raise ValueError("Keras HDF5 files need h5py: pip install 'cnnlab[keras]'") from None
    out: dict[str, torch.Tensor] = {}
    with h5py.File(path, "r") as f:
        root = f["model_weights"] if "model_weights" in f else f
        for layer in (n.decode() if isinstance(n, bytes) else n
                      for n in root.attrs.get("layer_names", [])):
            group = root[layer]
            for wname in group.attrs.get("weight_names", []):
                wname = wname.decode() if isinstance(wname, bytes) else wname
                t = torch.from_numpy(group[wname][()])
                leaf = wname.rsplit("/", 1)[-1].split(":")[0]
                if leaf == "depthwise_kernel":
                    h, w, c, m = t.shape
                    out[f"{layer}.depthwise.weight"] = t.permute(2, 3, 0, 1).reshape(c * m, 1, h, w)
                elif leaf == "pointwise_kernel":
                    out[f"{layer}.pointwise.weight"] = t.permute(3, 2, 0, 1)
                elif leaf == "kernel":
                    out[f"{layer}.weight"] = t.permute(3, 2, 0, 1) if t.dim() == 4 else t.T
                elif leaf == "bias" and f"{layer}.pointwise.weight" in out:
                    out[f"{layer}.pointwise.bias"] = t
                elif leaf in _KERAS_LEAF:
                    out[f"{layer}.{_KERAS_LEAF[leaf]}"] = t
                else:
                    raise ValueError(f"{path}: {layer}/{wname}: unknown Keras weight {leaf!r}")
    if not out:
        raise ValueError(f"{path}: no Keras layer weights in this HDF5 file")
    return {k: v.contiguous() for k, v in out.items()}


def layers(state: dict[str, torch.Tensor]) -> list[tuple[str, dict[str, torch.Tensor]]]:
    """The state's layers in order: (module prefix, {parameter name: tensor})."""
    out: dict[str, dict[str, torch.Tensor]] = {}
    for key, t in state.items():
        prefix, _, leaf = key.rpartition(".")
        if leaf not in _SKIP:
            out.setdefault(prefix, {})[leaf] = t
    return list(out.items())


def _kind(params: dict[str, torch.Tensor]) -> str:
    if "running_mean" in params:
        return "batchnorm"
    w = params.get("weight")
    if w is None:
        return "other"
    return {4: "conv", 2: "linear", 1: "affine"}.get(w.dim(), "other")


def _name(prefix: str, leaf: str) -> str:
    return f"{prefix}.{leaf}" if prefix else leaf


def match(peer: dict[str, torch.Tensor], ours: dict[str, torch.Tensor], source: str = "peer"):
    """Pair the peer's tensors with ours (see the module docstring). Returns (mapping
    ``{our name: peer tensor}``, skipped classifier names, a note or "")."""
    theirs, mine = layers(peer), layers(ours)
    mapping: dict[str, torch.Tensor] = {}
    skipped: list[str] = []
    note = ""
    for i, (ours_prefix, ours_params) in enumerate(mine):
        if i >= len(theirs):
            raise ValueError(f"the {source} file has no tensor for "
                             f"{_name(ours_prefix, next(iter(ours_params)))} "
                             f"(it has {len(theirs)} layers, the model {len(mine)})")
        peer_prefix, peer_params = _as_linear(theirs[i][0], theirs[i][1], ours_params)
        last = i == len(mine) - 1
        first_bad = _misfit(peer_params, ours_params)
        if first_bad and last and _kind(peer_params) == _kind(ours_params) \
                and set(peer_params) == set(ours_params):
            skipped = [_name(ours_prefix, k) for k in ours_params]
            w = peer_params["weight"]
            note = (f"loaded all but the classifier {ours_prefix} (the file's has "
                    f"{w.shape[0]} classes, the model's {ours_params['weight'].shape[0]})")
            continue
        if first_bad:
            leaf = first_bad
            have = tuple(peer_params[leaf].shape) if leaf in peer_params else "nothing"
            want = tuple(ours_params[leaf].shape) if leaf in ours_params else "nothing"
            raise ValueError(f"{_name(peer_prefix, leaf)} in the {source} file does not fit "
                             f"{_name(ours_prefix, leaf)}: {have} vs {want}")
        for leaf, t in peer_params.items():
            mapping[_name(ours_prefix, leaf)] = t
    if len(theirs) > len(mine):
        prefix, params = theirs[len(mine)]
        raise ValueError(f"{_name(prefix, next(iter(params)))} in the {source} file has no "
                         f"place in the model ({len(theirs)} layers vs {len(mine)})")
    return mapping, skipped, note


def _as_linear(prefix, params, ours):
    """A 1×1 convolution classifier (Keras' MobileNet ``conv_preds``) where ours is linear."""
    w, mine = params.get("weight"), ours.get("weight")
    if w is not None and mine is not None and w.dim() == 4 and mine.dim() == 2 \
            and tuple(w.shape[2:]) == (1, 1):
        params = {**params, "weight": w.flatten(1)}
    return prefix, params


def _misfit(peer_params, ours_params) -> str:
    """The first parameter name that does not fit, or ""."""
    if _kind(peer_params) != _kind(ours_params):
        return next(iter(peer_params))
    for leaf in [*ours_params, *peer_params]:
        a, b = peer_params.get(leaf), ours_params.get(leaf)
        if a is None or b is None or a.shape != b.shape:
            return leaf
    return ""


def match_names(peer: dict[str, torch.Tensor], ours: dict[str, torch.Tensor], rules,
                source: str = "peer"):
    """Pair the peer's tensors with ours by name, through a family's name rules
    (:mod:`cnnlab.pretrained_names`); the same result as :func:`match`."""
    from cnnlab.pretrained_names import rename

    keys = [k for k in peer if k.rpartition(".")[2] not in _SKIP]
    names = rename(keys, rules)
    wanted = {k: v for k, v in ours.items() if k.rpartition(".")[2] not in _SKIP}
    head = layers(wanted)[-1][0] if wanted else ""
    mapping: dict[str, torch.Tensor] = {}
    skipped: list[str] = []
    for key in keys:
        name = names[key]
        if name is None:
            continue
        if name not in wanted:
            raise ValueError(f"{key} in the {source} file has no place in the model "
                             f"(read as {name})")
        t = peer[key]
        if t.dim() == 4 and wanted[name].dim() == 2 and tuple(t.shape[2:]) == (1, 1):
            t = t.flatten(1)  # a 1x1-convolution classifier (timm's resnetv2 head)
        if t.shape != wanted[name].shape:
            if name.rpartition(".")[0] == head:
                skipped.append(name)
                continue
            raise ValueError(f"{key} in the {source} file does not fit {name}: "
                             f"{tuple(t.shape)} vs {tuple(wanted[name].shape)}")
        mapping[name] = t
    missing = [k for k in wanted if k not in mapping and k not in skipped]
    if missing:
        raise ValueError(f"the {source} file has no tensor for {missing[0]} "
                         f"({len(missing)} of the model's tensors have none)")
    note = ""
    if skipped:
        w = next(peer[k] for k in keys if names[k] == f"{head}.weight")
        note = (f"loaded all but the classifier {head} (the file's has {w.shape[0]} classes, "
                f"the model's {wanted[f'{head}.weight'].shape[0]})")
    return mapping, skipped, note


def family(model: nn.Module) -> str:
    """The cnnlab.models module a model comes from ("" for others)."""
    from cnnlab.registry import registered

    info = registered(getattr(model, "model_name", None))
    module = info.builder.__module__ if info else type(model).__module__
    return module.rsplit(".", 1)[-1] if module.startswith("cnnlab.models.") else ""


def pair(peer, ours, model: nn.Module, source: str = "auto"):
    """(mapping, skipped, note, how): by the family's name rules where a scheme's names are
    the model's (most of them: then all must be), else by the order rule."""
    from cnnlab.pretrained_names import rename, schemes

    label = "peer" if source == "auto" else source
    keys = [k for k in peer if k.rpartition(".")[2] not in _SKIP]
    best, best_hits = None, 0
    for scheme, rules in schemes(family(model), source).items():
        hits = sum(v in ours for v in rename(keys, rules).values())
        if hits > best_hits:
            best, best_hits = (scheme, rules), hits
    if best and best_hits * 2 > len(keys):
        return (*match_names(peer, ours, best[1], label), f"names ({best[0]} rules)")
    return (*match(peer, ours, label), "order")


def _is_hdf5(path) -> bool:
    try:
        with open(path, "rb") as fh:
            return fh.read(8) == b"\x89HDF\r\n\x1a\n"
    except OSError:
        return False


def load_weights(model: nn.Module, path: str | os.PathLike, source: str = "auto") -> dict:
    """Copy a peer's released weights into ``model`` (see the module docstring).

    ``source``: ``"torchvision"``, ``"timm"``, ``"keras"`` (HDF5, :func:`read_keras_h5`) or
    ``"auto"`` (HDF5 files are read as Keras'; name rules of any peer may apply). Returns a
    report: ``{"loaded": n, "skipped": [names], "note": str, "by": "names (timm rules)" or
    "order"}``; a skipped classifier is also warned.
    """
    if source not in SOURCES:
        raise ValueError(f"unknown source {source!r}; choose from {', '.join(SOURCES)}")
    if source == "keras" or (source == "auto" and _is_hdf5(path)):
        source = "keras"
        peer = read_keras_h5(path)
    else:
        peer = read_state(path)
    ours = model.state_dict()
    try:
        mapping, skipped, note, how = pair(peer, ours, model, source)
    except ValueError as e:
        raise ValueError(f"{path}: {e}") from None
    with torch.no_grad():
        for name, t in mapping.items():
            ours[name].copy_(t)
    if note:
        warnings.warn(note, stacklevel=2)
    cfg = getattr(model, "pretrained_cfg", None)
    if isinstance(cfg, dict):
        cfg["source"] = f"{source}:{Path(path).name}"
    return {"loaded": len(mapping), "skipped": skipped, "note": note, "by": how}
