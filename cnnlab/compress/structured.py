"""Structured (channel) pruning: remove whole filters and the channels they write, and get a
smaller dense model that runs faster without sparse kernels.

Importance scores, one per prunable unit of the :mod:`dependency graph
<cnnlab.compress.depgraph>` (a unit is one channel together with every channel tied to it):

* ``"l1"`` — the L1 norm of the filter that writes the channel (Li et al. 2017, "Pruning
  Filters for Efficient ConvNets", Sec. 3.1), divided by the layer's mean filter norm so one
  global ranking can compare layers; tied filters add up.
* ``"bn"`` — |γ| of the BatchNorm that scales the channel (Liu et al. 2017, "Learning Efficient
  Convolutional Networks through Network Slimming", Sec. 3.2), trained with the L1 penalty
  λ·Σ|γ| (their Eq. 1): :func:`slimming_loss` (a loss term) or :func:`slimming_step` (a
  ``step_hooks`` hook). Thresholds are global across layers, as in the paper.
* ``"taylor"`` — |mean over positions of activation × gradient| of the layer's output,
  averaged over examples (Molchanov et al. 2017, "Pruning Convolutional Neural Networks for
  Resource Efficient Inference", Eq. 8), ℓ2-normalised per layer (their Eq. 9), from a few
  batches.

The target is a share of the model's mult-adds (``macs=0.5`` keeps half, counted as
:mod:`cnnlab.profile` counts them) or a share of the prunable units (``amount=0.3``). Units
are removed from the lowest score up — one global ranking, greedily, skipping a unit that
would leave a layer with no channel — until the target is met.

``prune(model, macs=0.5)`` returns the pruned model; :func:`save_pruned` /
:func:`load_pruned` store it as safetensors + a JSON of its new widths.
"""

from __future__ import annotations

import copy
import json
import os
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from cnnlab.compress.depgraph import DependencyGraph, trace
from cnnlab.io import atomic_path, write_bytes_atomic

SCORES = ("l1", "bn", "taylor")
FORMAT = "cnnlab-pruned"


@dataclass
class PruneResult:
    model: nn.Module
    graph: DependencyGraph
    removed: list[int]  # unit ids
    macs_before: int
    macs_after: int

    @property
    def macs_ratio(self) -> float:
        return self.macs_after / self.macs_before


# --- scores ----------------------------------------------------------------------------------
def _tensor(model: nn.Module, graph: DependencyGraph, name: str) -> torch.Tensor:
    mname, attr = graph.owners[name]
    return getattr(model.get_submodule(mname), attr)


def score_l1(model: nn.Module, graph: DependencyGraph) -> torch.Tensor:
    """Per unit: Σ over the filters that write it of |filter|₁ / mean |filter|₁ of its layer."""
    norms: dict[str, torch.Tensor] = {}
    scores = torch.zeros(len(graph))
    for u in graph.units:
        for w, row in u.producers:
            if w not in norms:
                t = _tensor(model, graph, w).detach().float()
                n = t.abs().reshape(t.shape[0], -1).sum(1)
                norms[w] = n / n.mean().clamp_min(1e-12)
            scores[u.id] += norms[w][row]
    return scores


def score_bn(model: nn.Module, graph: DependencyGraph) -> torch.Tensor:
    """Per unit: Σ |γ| of the BatchNorms that scale it; units without one are kept."""
    if not graph.bn_weights:
        raise ValueError("score 'bn' needs BatchNorm layers; this model has none "
                         "(use 'l1' or 'taylor')")
    gammas = {n: _tensor(model, graph, n).detach().abs().float() for n in graph.bn_weights}
    scores = torch.full((len(graph),), float("inf"))
    for u in graph.units:
        if u.gammas:
            scores[u.id] = sum(float(gammas[n][i]) for n, i in u.gammas)
    return scores


def score_taylor(model: nn.Module, graph: DependencyGraph, batches,
                 loss_fn=None) -> torch.Tensor:
    """Per unit: Σ over the layers that write it of the normalised Taylor criterion
    Θ = |1/M Σ_m a_m ∂L/∂a_m|, averaged over the examples of ``batches`` ((x, y) pairs)."""
    loss_fn = loss_fn or (lambda out, y: F.cross_entropy(out, y))
    writers = {w for u in graph.units for w, _ in u.producers}
    sums: dict[str, torch.Tensor] = {}
    count = [0]
    hooks = []

    def watch(name):
        def hook(module, args, out):
            def grad_hook(g):
                prod = (out.detach() * g).flatten(2).mean(2) if out.dim() > 2 else \
                    out.detach() * g
                theta = prod.abs().sum(0)
                sums[name] = sums.get(name, 0) + theta
            if out.requires_grad:
                out.register_hook(grad_hook)
        return hook

    for w in writers:
        mname, _ = graph.owners[w]
        hooks.append(model.get_submodule(mname).register_forward_hook(watch(w)))
    was_training = model.training
    model.eval()  # the score of the network as it runs, BN in inference mode
    try:
        for x, y in batches:
            model.zero_grad(set_to_none=True)
            out = model(x)
            loss_fn(out[0] if isinstance(out, tuple) else out, y).backward()
            count[0] += x.shape[0]
    finally:
        for h in hooks:
            h.remove()
        model.zero_grad(set_to_none=True)
        model.train(was_training)
    if not count[0]:
        raise ValueError("score 'taylor' needs at least one batch of data")
    norm = {}
    for w, s in sums.items():
        s = s / count[0]
        norm[w] = s / s.norm().clamp_min(1e-12)
    scores = torch.zeros(len(graph))
    for u in graph.units:
        scores[u.id] = sum(float(norm[w][row]) for w, row in u.producers if w in norm)
    return scores


def bn_l1(model: nn.Module) -> torch.Tensor:
    """Σ |γ| over every BatchNorm of ``model`` (Network Slimming's sparsity term)."""
    terms = [m.weight.abs().sum() for m in model.modules()
             if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.weight is not None]
    if not terms:
        raise ValueError("network slimming needs BatchNorm layers; this model has none")
    return torch.stack(terms).sum()


def slimming_loss(model: nn.Module, lam: float = 1e-4, base=None):
    """``loss_fn`` for the trainer: ``base(out, y) + lam·Σ|γ|`` (Liu et al. 2017, Eq. 1;
    λ = 1e-4 for VGG, 1e-5 for ResNet and DenseNet in their Sec. 4.3)."""
    from cnnlab.train.evaluate import cross_entropy

    base = base or cross_entropy()
    bn_l1(model)  # fail now, not at the first step

    def loss_fn(out, y):
        return base(out, y) + lam * bn_l1(model)
    return loss_fn


def slimming_step(lam: float = 1e-4, lr: float = 0.1):
    """``step_hooks`` hook: the subgradient step of λ·Σ|γ| after each optimizer step,
    γ ← γ − lr·λ·sign(γ) (the same penalty applied outside the loss)."""
    def hook(model, step):
        with torch.no_grad():
            for m in model.modules():
                if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.weight is not None:
                    m.weight.sub_(lr * lam * torch.sign(m.weight))
    return hook


# --- selection -------------------------------------------------------------------------------
def _unit_dims(graph: DependencyGraph) -> list[dict[tuple[str, int], int]]:
    out = []
    for u in graph.units:
        d: dict[tuple[str, int], int] = {}
        for name, dim, _ in u.slices:
            d[(name, dim)] = d.get((name, dim), 0) + 1
        out.append(d)
    return out


def select(graph: DependencyGraph, scores: torch.Tensor, *, macs: float | None = None,
           amount: float | None = None) -> list[int]:
    """Units to remove, lowest score first, until ``macs`` (share of the model's mult-adds
    kept) or ``amount`` (share of the prunable units removed) is met. Raises ``ValueError``
    when the target is below what pruning every removable unit reaches."""
    if (macs is None) == (amount is None):
        raise ValueError("give exactly one target: macs= (share kept) or amount= (share removed)")
    if not len(graph):
        raise ValueError("the model has no prunable channel")
    target = None
    if macs is not None:
        if not 0 < macs <= 1:
            raise ValueError(f"macs must be in (0, 1], got {macs}")
        target = macs * graph.macs
    else:
        if not 0 <= amount < 1:
            raise ValueError(f"amount must be in [0, 1), got {amount}")
    want = round(amount * len(graph)) if amount is not None else None
    left = {k: s[k[1]] for k in {(n, d) for u in graph.units for n, d, _ in u.slices}
            for s in [graph.sizes[k[0]]]}
    ops_of: dict[str, list] = {}
    for op in graph.ops:
        ops_of.setdefault(op.weight, []).append(op)
    current = graph.macs

    def op_macs(op):
        shape = graph.sizes[op.weight]
        return op.positions * left.get((op.weight, 0), shape[0]) * \
            left.get((op.weight, 1), shape[1]) * op.kernel

    dims = _unit_dims(graph)
    ops_dims = [[op for k in d if k[1] in (0, 1) for op in ops_of.get(k[0], ())]
                for d in dims]
    values = [float(v) for v in scores.tolist()]
    removed: list[int] = []
    for i in sorted(range(len(graph)), key=lambda i: (values[i], i)):
        if (target is not None and current <= target) or (want is not None and
                                                          len(removed) >= want):
            break
        if values[i] == float("inf") or any(left[k] - n < 1 for k, n in dims[i].items()):
            continue
        touched = {id(op): op for op in ops_dims[i]}.values()
        before = sum(op_macs(op) for op in touched)
        for k, n in dims[i].items():
            left[k] -= n
        current += sum(op_macs(op) for op in touched) - before
        removed.append(i)
    if target is not None and current > target:
        raise ValueError(
            f"cannot keep only {macs:.0%} of the mult-adds: removing every prunable channel "
            f"leaves {current / graph.macs:.1%} ({current:,} of {graph.macs:,})")
    return removed


# --- applying --------------------------------------------------------------------------------
def _set(module: nn.Module, attr: str, value: torch.Tensor) -> None:
    old = getattr(module, attr)
    if isinstance(old, nn.Parameter):
        module._parameters[attr] = nn.Parameter(value, requires_grad=old.requires_grad)
    else:
        module._buffers[attr] = value


def apply_pruning(model: nn.Module, graph: DependencyGraph, removed) -> nn.Module:
    """A copy of ``model`` with the ``removed`` units cut out: smaller dense tensors and the
    layers' widths (``in_channels``, ``groups``, ``num_features``, ...) to match."""
    new = copy.deepcopy(model)
    for (name, dim), idx in sorted(graph.kept(removed).items()):
        mname, attr = graph.owners[name]
        module = new.get_submodule(mname)
        t = getattr(module, attr).detach()
        index = torch.tensor(idx, dtype=torch.long, device=t.device)
        _set(module, attr, t.index_select(dim, index).clone())
    depthwise = {op.weight: op.out_per_group for op in graph.ops
                 if op.kind == "conv" and op.groups > 1 and op.in_per_group == 1}
    for mname, module in new.named_modules():
        _update_widths(module, depthwise.get(f"{mname}.weight" if mname else "weight"))
    return new


def _update_widths(module: nn.Module, per_group: int | None) -> None:
    if isinstance(module, nn.modules.conv._ConvNd):
        w = module.weight
        if module.transposed:
            return
        if per_group is not None:  # depthwise: one group per remaining input channel
            module.groups = w.shape[0] // per_group
        module.out_channels = w.shape[0]
        module.in_channels = w.shape[1] * module.groups
    elif isinstance(module, nn.Linear):
        module.out_features, module.in_features = module.weight.shape
    elif isinstance(module, nn.modules.batchnorm._BatchNorm):
        t = module.weight if module.weight is not None else module.running_mean
        if t is not None:
            module.num_features = t.shape[0]


def zero_units(model: nn.Module, graph: DependencyGraph, removed) -> nn.Module:
    """A copy of ``model`` with every slice of the ``removed`` units set to zero (running
    variances to one): what the pruned model computes, at the original widths."""
    new = copy.deepcopy(model)
    with torch.no_grad():
        for u in removed:
            for name, dim, idx in graph.units[u].slices:
                t = _tensor(new, graph, name)
                t.select(dim, idx).fill_(1.0 if name.endswith("running_var") else 0.0)
    return new


def _input_size(model: nn.Module, input_size):
    if input_size is not None:
        return tuple(input_size)
    size = getattr(model, "default_input_size", None)
    name = getattr(model, "model_name", None)
    if size is None and name is not None:
        from cnnlab.models import model_info

        size = model_info(name).input_size
    if size is None:
        raise ValueError("input_size is required for a model without a default")
    return tuple(size)


def compute_scores(model, graph, score: str, batches=None) -> torch.Tensor:
    if score == "l1":
        return score_l1(model, graph)
    if score == "bn":
        return score_bn(model, graph)
    if score == "taylor":
        if batches is None:
            raise ValueError("score 'taylor' needs data batches")
        return score_taylor(model, graph, batches)
    raise ValueError(f"unknown score {score!r}; choose from {', '.join(SCORES)}")


def prune(model: nn.Module, *, macs: float | None = None, amount: float | None = None,
          score: str = "l1", input_size=None, batches=None,
          graph: DependencyGraph | None = None) -> PruneResult:
    """Prune ``model`` to ``macs`` (share of mult-adds kept) or by ``amount`` (share of
    prunable units removed) with the ``score`` ranking; ``batches`` of (x, y) for Taylor."""
    if score not in SCORES:
        raise ValueError(f"unknown score {score!r}; choose from {', '.join(SCORES)}")
    graph = graph or trace(model, _input_size(model, input_size))
    if not len(graph):
        raise ValueError(f"{getattr(model, 'model_name', type(model).__name__)} has no "
                         "prunable channel")
    scores = compute_scores(model, graph, score, batches)
    removed = select(graph, scores, macs=macs, amount=amount)
    pruned = apply_pruning(model, graph, removed)
    for attr in ("model_name", "default_input_size", "min_input_size"):
        if hasattr(model, attr):
            setattr(pruned, attr, getattr(model, attr))
    kept = {k: len(v) for k, v in graph.kept(removed).items()}
    after = graph.macs - graph.weight_macs() + graph.weight_macs(kept)
    return PruneResult(pruned, graph, removed, graph.macs, after)


# --- saving ----------------------------------------------------------------------------------
_WIDTHS = ("in_channels", "out_channels", "groups", "in_features", "out_features",
           "num_features")


def structure(model: nn.Module) -> dict:
    """Every tensor's shape and every layer's widths: enough to rebuild the pruned model from
    its unpruned builder."""
    shapes = {k: list(v.shape) for k, v in model.state_dict().items()}
    widths = {}
    for name, m in model.named_modules():
        w = {a: getattr(m, a) for a in _WIDTHS if isinstance(getattr(m, a, None), int)}
        if w and isinstance(m, (nn.modules.conv._ConvNd, nn.Linear,
                                nn.modules.batchnorm._BatchNorm)):
            widths[name] = w
    return {"shapes": shapes, "widths": widths}


def save_pruned(model: nn.Module, out_dir: str | os.PathLike, *, model_name: str | None = None,
                model_kwargs: dict | None = None, extra: dict | None = None) -> Path:
    """Write ``out_dir/model.safetensors`` and ``out_dir/structure.json`` (model name, builder
    arguments, tensor shapes, layer widths), each atomically."""
    from safetensors.torch import save_file

    out = Path(out_dir)
    name = model_name or getattr(model, "model_name", None)
    if name is None:
        raise ValueError("save_pruned needs the registered model name")
    out.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    with atomic_path(out / "model.safetensors") as tmp:
        save_file(state, str(tmp), metadata={"format": FORMAT, "model": name})
    meta = {"format": FORMAT, "version": 1, "model": name, "kwargs": model_kwargs or {},
            **structure(model), **(extra or {})}
    write_bytes_atomic(out / "structure.json", json.dumps(meta, indent=1).encode())
    return out


def rebuild(model: nn.Module, struct: dict) -> nn.Module:
    """Reshape an unpruned ``model`` in place to the shapes and widths of ``struct``."""
    owners = {}
    for mname, m in model.named_modules():
        for pname, _ in list(m.named_parameters(recurse=False)) + list(
                m.named_buffers(recurse=False)):
            owners[f"{mname}.{pname}" if mname else pname] = (m, pname)
    for key, shape in struct["shapes"].items():
        if key not in owners:
            raise ValueError(f"the pruned structure names {key!r}, which the model lacks")
        m, attr = owners[key]
        old = getattr(m, attr)
        if list(old.shape) != shape:
            _set(m, attr, torch.zeros(shape, dtype=old.dtype, device=old.device))
    for mname, w in struct["widths"].items():
        m = model.get_submodule(mname)
        for a, v in w.items():
            setattr(m, a, v)
    return model


def load_pruned(path: str | os.PathLike) -> nn.Module:
    """Rebuild a model written by :func:`save_pruned` (a directory) and load its weights."""
    from safetensors.torch import load_file

    from cnnlab.models import create_model

    path = Path(path)
    try:
        meta = json.loads((path / "structure.json").read_text())
    except (OSError, ValueError) as e:
        raise ValueError(f"{path} is not a pruned model directory: {e}") from None
    if meta.get("format") != FORMAT:
        raise ValueError(f"{path / 'structure.json'} is not a {FORMAT} file")
    model = create_model(meta["model"], **meta.get("kwargs", {}))
    rebuild(model, meta)
    state = load_file(str(path / "model.safetensors"))
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise ValueError(f"{path}: weights do not match {meta['model']} "
                         f"(missing {len(missing)}, unexpected {len(unexpected)})")
    return model
