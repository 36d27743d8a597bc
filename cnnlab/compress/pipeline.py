"""Deep Compression end to end: prune → retrain → quantize → retrain → Huffman-encode.

``compress_model(model, name, config, split, settings)`` runs the three stages of Han et al.
2016 (Fig. 1) on a trained model and writes a ``.dcz`` file (see
:mod:`cnnlab.compress.fileformat`); ``load_compressed(path)`` gives the ready model back and
``decompress(path, out)`` writes its weights as safetensors. Retraining goes through
``cnnlab.train.train`` with the pruner as a step hook.

Sizes per layer and stage: *dense* 32-bit weights; *pruned* the relative-index layout with
32-bit values and ``span``-bit differences (CSR's 2a + n + 1 32-bit numbers beside it);
*quantized* the same entries with ``b``-bit cluster indices plus a 32-bit codebook (fixed
width); *Huffman* the layer's bytes in the written file. Other tensors (biases, BN) are stored
as they are. The dense total is the fp32 safetensors file, the Huffman total the ``.dcz`` file.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
import torch.nn as nn

from cnnlab.compress import fileformat as ff
from cnnlab.compress import quantize as qz
from cnnlab.compress.prune import (
    Pruner,
    parse_layer_spec,
    parse_prune,
    prunable_layers,
    regularizer,
    resolve,
)
from cnnlab.compress.report import pruning_table
from cnnlab.compress.sparse import csr_numbers, entry_count
from cnnlab.state import mismatch

DEFAULT_BITS = "conv=8,fc=5"
DEFAULT_SPAN = "conv=8,fc=5"


@dataclass
class CompressSettings:
    """Settings of one compression run (the CLI's options)."""

    prune: str | dict | None = None  # "fc1=8%,conv=q1.2" (kept % or quality × σ per layer)
    bits: str | dict = DEFAULT_BITS  # cluster-index bits per layer: 2**bits shared weights
    span: str | dict = DEFAULT_SPAN  # relative-index bits per layer
    rounds: int = 3  # iterative prune → retrain rounds
    prune_epochs: float = 2  # retraining epochs per pruning round
    quant_epochs: float = 2  # centroid fine-tuning epochs
    lr: float = 0.01  # retraining learning rate (the paper: a fraction of the original)
    quant_lr: float = 0.001
    batch_size: int = 128
    weight_decay: float = 5e-4
    regularization: str = "l2"  # "l1" adds an L1 penalty of strength weight_decay instead
    init: str = "linear"  # centroid initialisation: linear, density, random
    dropout_adjust: bool = True
    seed: int = 0
    act_samples: int = 2000  # validation images for the activation densities

    def __post_init__(self):
        if self.rounds < 1:
            raise ValueError(f"rounds must be at least 1, got {self.rounds}")
        if self.init not in qz.INITS:
            raise ValueError(f"unknown centroid initialisation {self.init!r}")
        if self.regularization not in ("l1", "l2"):
            raise ValueError("regularization must be 'l1' or 'l2'")
        if self.prune_epochs < 0 or self.quant_epochs < 0:
            raise ValueError("epochs must be >= 0")


def parse_bits(text, layers, what: str = "bits") -> dict[str, int]:
    def value(v):
        try:
            b = int(v)
        except ValueError:
            raise ValueError(f"{what} must be integers, got {v!r}") from None
        if not 1 <= b <= 12:
            raise ValueError(f"{what} must be in 1..12, got {b}")
        return b
    out = resolve(parse_layer_spec(text, value), layers)
    missing = [ly.label for ly in layers if ly.label not in out]
    if missing:
        raise ValueError(f"no {what} given for layer(s) {', '.join(missing)}")
    return out


def _evaluate(model, split, batch_size=256):
    if split is None:
        return None
    from cnnlab.train import evaluate

    return float(evaluate(model, split.val, batch_size=batch_size)["top1"])


def _retrain(model, split, s: CompressSettings, epochs, lr, hooks=(), loss_fn=None,
             progress=False):
    if split is None or not epochs:
        return
    from cnnlab.train import TrainConfig, train

    cfg = TrainConfig(epochs=epochs, batch_size=s.batch_size, lr=lr, optimizer="sgd",
                      momentum=0.9, weight_decay=s.weight_decay if s.regularization == "l2"
                      else 0.0, schedule="cosine", seed=s.seed, out_dir=None)
    train(model, split, cfg, loss_fn=loss_fn, step_hooks=tuple(hooks), progress=progress)


def _safetensors_size(model: nn.Module) -> int:
    from safetensors.torch import save

    return len(save({k: v.detach().float().contiguous() if v.is_floating_point()
                     else v.contiguous() for k, v in model.state_dict().items()}))


def build_file(model: nn.Module, name: str, config: dict, bits: dict[str, int],
               span: dict[str, int], codes: dict[str, tuple] | None = None,
               info: dict | None = None) -> ff.DczFile:
    """The ``.dcz`` of a model whose prunable layers are tied (or are given ``codes``:
    module name → (codebook, index)); a layer without codes is clustered now."""
    codes = dict(codes or {})
    layers = {ly.name: ly for ly in prunable_layers(model)}
    tensors = []
    for key, value in model.state_dict().items():
        mod, _, pname = key.rpartition(".")
        ly = layers.get(mod)
        if ly is not None and pname == "weight" and value.dtype == torch.float32:
            if mod not in codes:
                codes[mod] = qz.cluster_weights(value, bits[ly.label])
            c, idx = codes[mod]
            tensors.append(ff.compressed_record(key, c, idx.reshape(value.shape), len(c),
                                                bits[ly.label], span[ly.label]))
        else:
            tensors.append(ff.raw_record(key, value))
    return ff.DczFile(name, dict(config), dict(info or {}), tensors)


def size_table(model: nn.Module, f: ff.DczFile, bits, span, dense_file: int) -> dict:
    """Per-layer bytes of each stage (see the module docstring) and totals."""
    recs = {t.name: t for t in f.tensors}
    rows = []
    for ly in prunable_layers(model):
        w = ly.module.weight.detach()
        t = recs[f"{ly.name}.weight"]
        flat = w.reshape(-1).cpu().numpy()
        pos = np.flatnonzero(flat)
        a, sb, b = len(pos), span[ly.label], bits[ly.label]
        entries = entry_count(pos, 1 << sb)
        k = 1 << b
        rows.append({
            "layer": ly.label, "module": ly.name, "weights": w.numel(), "kept": a,
            "kept_pct": 100 * a / w.numel(), "bits": f"{b}/{sb}", "entries": entries,
            "dense_bytes": 4 * w.numel(),
            "csr_bytes": 4 * csr_numbers(w.reshape(w.shape[0], -1).cpu().numpy()),
            "pruned_bytes": math.ceil(entries * (32 + sb) / 8),
            "quantized_bytes": math.ceil(entries * (b + sb) / 8) + 4 * k,
            "huffman_bytes": t.size,
            "rate": qz.compression_rate(max(a, 1), k, 32),
        })
    other = sum(t.size for t in f.tensors if not t.compressed)
    overhead = f.size - sum(t.size for t in f.tensors)  # header, metadata, checksum
    tot = {k: sum(r[k] for r in rows) for k in ("weights", "kept", "dense_bytes", "csr_bytes",
                                                 "pruned_bytes", "quantized_bytes")}
    other_raw = sum(v.numel() * v.element_size() for key, v in model.state_dict().items()
                    if not recs[key].compressed)
    tot.update(other_bytes=other_raw, kept_pct=100 * tot["kept"] / max(tot["weights"], 1),
               file_overhead=overhead, dense_file=dense_file)
    for k in ("csr_bytes", "pruned_bytes", "quantized_bytes"):
        tot[k] += other_raw
    tot["dense_bytes"] = dense_file
    tot["huffman_bytes"] = f.size
    del other
    return {"layers": rows, "totals": tot}


@dataclass
class CompressResult:
    path: str | None
    model: str
    stages: list[dict]
    layers: list[dict]
    totals: dict
    pruning: list[dict]
    settings: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


def compress_model(model: nn.Module, name: str, config: dict | None = None, split=None,
                   settings: CompressSettings | None = None, out: str | None = None,
                   input_size=None, progress: bool = False, log=None,
                   on_pruned=None, info: dict | None = None) -> CompressResult:
    """Prune, retrain, quantize, retrain and encode ``model`` (a trained registered model
    ``name`` built with ``config``). Without ``split`` nothing is retrained or evaluated.
    Writes ``out`` (a ``.dcz``) when given. The model is modified in place;
    ``on_pruned(model)`` sees it pruned and retrained, before quantization. ``info`` is
    stored in the file (``cnnlab compress`` stores the training run there: normalisation,
    input size, data), so every command that reads the file rebuilds the same model."""
    s = settings or CompressSettings()
    log = log or (lambda msg: None)
    config = dict(config or {})
    layers = prunable_layers(model)
    if not layers:
        raise ValueError(f"{name} has no conv or linear layers to compress")
    targets = parse_prune(s.prune, layers)
    bits = parse_bits(s.bits, layers, "bits")
    span = parse_bits(s.span, layers, "index-difference bits")
    if input_size is None:
        from cnnlab.models import model_info

        input_size = model_info(name).input_size
    dense_file = _safetensors_size(model)
    stages = [{"stage": "dense fp32", "bytes": dense_file, "ratio": 1.0,
               "top1": _evaluate(model, split)}]
    log(f"dense: top1 {stages[0]['top1']}")

    pruner = Pruner(model)
    loss_fn = regularizer(model, "l1", s.weight_decay) if s.regularization == "l1" else None
    for r in range(1, s.rounds + 1 if targets else 1):
        pruner.prune({k: t.at(r / s.rounds) for k, t in targets.items()})
        if s.dropout_adjust:
            pruner.adjust_dropout()
        before = _evaluate(model, split)
        _retrain(model, split, s, s.prune_epochs, s.lr, hooks=[pruner], loss_fn=loss_fn,
                 progress=progress)
        kept = sum(pruner.kept().values())
        log(f"prune round {r}/{s.rounds}: {kept:,} weights kept, top1 {before} → "
            f"{_evaluate(model, split)} after retraining")
    pruner.remove_hooks()
    x = None
    if split is not None:
        n = min(s.act_samples, len(split.val))
        x = split.val.normalize(split.val.x[:n])
    pruning = pruning_table(model, input_size, x)
    pruned_top1 = _evaluate(model, split)
    if on_pruned is not None:
        on_pruned(model)

    for ly in layers:
        qz.quantize_layer(ly.module, bits[ly.label], init=s.init, seed=s.seed)
    quant_before = _evaluate(model, split)
    _retrain(model, split, s, s.quant_epochs, s.quant_lr, progress=progress)
    quant_top1 = _evaluate(model, split)
    log(f"quantized: top1 {quant_before} → {quant_top1} after centroid fine-tuning")
    codes = qz.bake(model)

    f = build_file(model, name, config, bits, span, codes,
                   info={**(info or {}), "top1": quant_top1, "producer": "cnnlab.compress"})
    data = ff.to_bytes(f)
    # the file must decode to exactly the model's weights
    decoded = ff.from_bytes(data).decode()
    for key, v in model.state_dict().items():
        if not torch.equal(decoded[key], v.detach().cpu()):
            raise RuntimeError(f"internal error: {key} does not survive encoding")
    if out is not None:
        from cnnlab.io import write_bytes_atomic

        write_bytes_atomic(out, data)
    sizes = size_table(model, f, bits, span, dense_file)
    t = sizes["totals"]
    huff_top1 = None
    if split is not None:
        back = _model_from(name, config, decoded)
        huff_top1 = _evaluate(back, split)
    stages += [
        {"stage": "pruned", "bytes": t["pruned_bytes"], "top1": pruned_top1,
         "note": f"{t['kept']:,} of {t['weights']:,} weights, relative indices + fp32 "
                 f"(CSR {t['csr_bytes']:,} B)"},
        {"stage": "quantized", "bytes": t["quantized_bytes"], "top1": quant_top1,
         "note": f"fixed-width indices (before fine-tuning {quant_before})"
         if quant_before is not None else "fixed-width indices"},
        {"stage": "Huffman (.dcz)", "bytes": t["huffman_bytes"], "top1": huff_top1,
         "note": "the written file, decoded and evaluated"},
    ]
    for st in stages:
        st["ratio"] = dense_file / max(st["bytes"], 1)
    return CompressResult(out, name, stages, sizes["layers"], t, pruning, asdict(s))


def _model_from(name: str, config: dict, state: dict) -> nn.Module:
    from cnnlab.models import create_model

    model = create_model(name, **config)
    wrong = mismatch(model.state_dict(), state, dtype=True)
    if wrong:
        raise ff.CompressedFileError(f"file does not match model {name!r}: {wrong}")
    model.load_state_dict(state)
    return model.eval()


def _check_against_model(f: ff.DczFile) -> None:
    """Names, shapes and dtypes must be the registered model's before anything is decoded
    (a damaged shape must not allocate memory)."""
    from cnnlab.profile import build_on_meta

    try:
        meta = build_on_meta(f.model, **f.config)
    except (ValueError, TypeError, RuntimeError) as e:
        raise ff.CompressedFileError(f"file names model {f.model!r} that cannot be built: "
                                     f"{e}") from None
    wrong = mismatch(meta.state_dict(), {t.name: t for t in f.tensors}, dtype=True)
    if wrong:
        raise ff.CompressedFileError(f"file does not match model {f.model!r}: {wrong}")


def read_weights(path) -> tuple[ff.DczFile, dict[str, torch.Tensor]]:
    f = ff.read(path)
    _check_against_model(f)
    return f, f.decode()


def load_compressed(path) -> nn.Module:
    """The model stored in a ``.dcz`` file, weights decoded, in eval mode. It carries the
    run it was trained in when the file records one (``cnnlab compress`` does):
    ``model.default_input_size`` (what ``cnnlab.profile`` and export use) and
    ``model.normalization`` (``{"mean": ..., "std": ...}`` of the training data)."""
    f, state = read_weights(path)
    model = _model_from(f.model, f.config, state)
    model.compression_info = dict(f.info, file_bytes=f.size)
    run = f.info.get("run") or {}
    if run.get("input_size"):
        model.default_input_size = tuple(run["input_size"])
    if (run.get("data") or {}).get("mean"):
        model.normalization = {"mean": tuple(run["data"]["mean"]),
                               "std": tuple(run["data"]["std"])}
    return model


def decompress(path, out) -> dict[str, torch.Tensor]:
    """Decode a ``.dcz`` into a safetensors file of its weights (written only when the whole
    file decoded cleanly); returns the state dict."""
    from safetensors.torch import save

    from cnnlab.io import write_bytes_atomic

    f, state = read_weights(path)
    meta = {"model": f.model, "source": "cnnlab .dcz",
            "cnnlab_run": json.dumps({**f.info.get("run", {}), "model": f.model,
                                      "model_args": f.config})}
    write_bytes_atomic(out, save({k: v.contiguous() for k, v in state.items()}, metadata=meta))
    return state
