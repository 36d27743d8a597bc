"""An ablation: named variants of one network, one task, the paper's figures, and a runner
that trains every variant per seed and says whether the paper's claim holds at this scale.

The runner is generic: a variant is any ``nn.Module`` factory ``build(in_chans,
num_classes)``; training is :func:`cnnlab.train.train`, counting is :mod:`cnnlab.profile`.
"""

from __future__ import annotations

import functools
import json
import math
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import torch
from torch import nn


@dataclass(frozen=True)
class Variant:
    """One arm of the comparison. ``build(in_chans, num_classes)`` makes a fresh module;
    ``input_size`` (C, H, W) overrides the task's (resolution ablations); ``paper`` is the
    paper's figure for this arm, as text; ``prepare`` runs on the fresh module with the
    run's data and training settings (VGG's initialisation from net A); arms that share a
    ``curve`` name are one line of an error-vs-parameters plot (DenseNet's forms across
    sizes, Huang et al. 2017 Fig. 4)."""

    name: str
    build: Callable[[int, int], nn.Module]
    paper: str = ""
    input_size: tuple[int, ...] | None = None
    # ``prepare(model, split, cfg)`` before training, e.g. initialise from a trained net
    prepare: Callable | None = None
    curve: str = ""


@dataclass(frozen=True)
class Task:
    """The data and training of an ablation. By default the shipped MNIST images
    (``data/mnist``): 2,000 held out for validation and 300 training images, a seeded subset
    per seed (``train_images``), so the task stays hard enough for the variants to differ.
    ``target_error`` switches the measure from final accuracy to training steps needed to
    reach that validation error (AlexNet's ReLU-vs-tanh claim)."""

    data: str = "mnist:data/mnist"
    val_split: int = 2000
    train_images: int | None = 300
    input_size: tuple[int, ...] = (1, 16, 16)
    iters: int = 200
    batch_size: int = 32
    lr: float = 0.05
    optimizer: str = "sgd"
    weight_decay: float = 5e-4
    schedule: str = "cosine"
    target_error: float | None = None
    eval_every_iters: int = 0  # steps-to-target only; 0: once per pass over the images


@dataclass(frozen=True)
class Claim:
    """``better`` should beat ``worse`` (higher accuracy, or fewer steps to the target).
    ``worse_may_stall``: the claim is that ``worse`` fails to train (VGG's random
    initialisation), so its staying near chance does not make the comparison invalid."""

    better: str
    worse: str
    worse_may_stall: bool = False


@dataclass(frozen=True)
class Ablation:
    name: str
    title: str
    source: str  # deck lines and the paper's table or figure
    variants: tuple[Variant, ...]
    task: Task
    claims: tuple[Claim, ...] = ()
    notes: str = ""

    def variant(self, name: str) -> Variant:
        for v in self.variants:
            if v.name == name:
                return v
        raise KeyError(name)


_ABLATIONS: dict[str, Callable[[], Ablation]] = {}


def register_ablation(name: str):
    """Register ``factory() -> Ablation`` under ``name`` (built when asked for)."""
    def wrap(fn):
        if name in _ABLATIONS:
            raise ValueError(f"ablation {name!r} is registered twice")
        _ABLATIONS[name] = fn
        return fn
    return wrap


def list_ablations() -> list[str]:
    return sorted(_ABLATIONS)


def get_ablation(name: str) -> Ablation:
    if name not in _ABLATIONS:
        raise ValueError(f"unknown ablation {name!r}; known: {', '.join(sorted(_ABLATIONS))}")
    return _ABLATIONS[name]()


# --- running ------------------------------------------------------------------------------
def resolve_data(spec: str) -> str:
    """``NAME:DIR`` with a relative DIR that is missing here but present in cnnlab's source
    tree (the shipped ``data/mnist``) points there, so the default task runs from anywhere."""
    import cnnlab

    name, sep, path = spec.partition(":")
    if sep and path and not Path(path).is_absolute() and not Path(path).exists():
        shipped = Path(cnnlab.__file__).resolve().parent.parent / path
        if shipped.exists():
            return f"{name}:{shipped}"
    return spec


@functools.lru_cache(maxsize=8)
def _load_split(data: str, val_split: int, size: tuple[int, ...]):
    from cnnlab.data import load_dataset

    return load_dataset(resolve_data(data), val_split=val_split, seed=0, input_size=size)


def _split_for(task: Task, data: str, size: tuple[int, ...], seed: int):
    split = _load_split(data, task.val_split, tuple(size))
    if task.train_images is not None and task.train_images < len(split.train):
        g = torch.Generator().manual_seed(1000 + seed)
        keep = torch.randperm(len(split.train), generator=g)[:task.train_images]
        split = replace(split, train=split.train.subset(keep))
    return split


def _step_seconds(model: nn.Module, size, batch: int, num_classes: int) -> float:
    """Seconds of one training step (forward + backward), measured after one warm-up."""
    x = torch.randn(batch, *size)
    y = torch.randint(0, num_classes, (batch,))
    opt = torch.optim.SGD(model.parameters(), lr=1e-3)
    times = []
    for _ in range(3):
        t0 = time.perf_counter()
        opt.zero_grad()
        nn.functional.cross_entropy(_main(model(x)), y).backward()
        opt.step()
        times.append(time.perf_counter() - t0)
    return min(times[1:])


def _main(out):
    return out[0] if isinstance(out, (tuple, list)) else out


def plan_iters(ablation: Ablation, seeds: int, budget_min: float | None,
               num_classes: int, in_chans: int) -> int:
    """Training steps per run: the task's, or fewer so that every variant × seed fits in
    ``budget_min`` minutes (the same number for every variant, so the comparison is fair)."""
    task = ablation.task
    if budget_min is None:
        return task.iters
    total = 0.0
    for v in ablation.variants:
        size = _size(v, task, in_chans)
        total += _step_seconds(v.build(size[0], num_classes), size, task.batch_size,
                               num_classes)
    # a fifth of the budget is kept for evaluation, profiling and start-up
    fits = int(0.8 * budget_min * 60 / max(total * seeds, 1e-9))
    return max(1, min(task.iters, fits))


def _size(v: Variant, task: Task, in_chans: int | None = None) -> tuple[int, ...]:
    size = tuple(v.input_size or task.input_size)
    if in_chans is not None and len(size) == 3:
        size = (in_chans, *size[1:])
    return size


def _eval_every(task: Task, steps: int, per_epoch: int) -> int:
    """Epochs between evaluations: only the last one when final accuracy is the measure (a
    large validation set is then cheap), else every ``eval_every_iters`` steps."""
    if task.target_error is None:
        return max(1, math.ceil(steps / per_epoch))
    return max(1, round((task.eval_every_iters or per_epoch) / per_epoch))


def _steps_to_target(history: list[dict], target_error: float) -> int | None:
    for row in history:
        if row.get("val_top1") is not None and 1 - row["val_top1"] / 100 <= target_error:
            return int(row["step"])
    return None


def run_ablation(ablation: Ablation, seeds: int = 3, budget_min: float | None = None,
                 data: str | None = None, iters: int | None = None, log=None,
                 latency_runs: int = 10, **task_changes) -> dict:
    """Train every variant once per seed; returns the results as a JSON-ready dict.

    ``iters`` fixes the training steps (else the task's, cut to fit ``budget_min``);
    ``task_changes`` replace fields of the task (e.g. ``val_split=100`` for a smoke run)."""
    from cnnlab.profile import measure_latency, profile
    from cnnlab.train import TrainConfig, train

    if seeds <= 0:
        raise ValueError(f"seeds must be positive, got {seeds}")
    if budget_min is not None and not budget_min > 0:
        raise ValueError(f"budget must be positive minutes, got {budget_min}")
    if data and data != ablation.task.data and "val_split" not in task_changes:
        task_changes["val_split"] = 500  # another dataset (digits has 1,797 images in all)
    task = replace(ablation.task, **task_changes)
    ablation = replace(ablation, task=task)
    data = data or task.data
    splits = {}

    def split_for(size, seed):
        if (size, seed) not in splits:
            splits[size, seed] = _split_for(task, data, size, seed)
        return splits[size, seed]

    probe = split_for(_size(ablation.variants[0], task), 0)
    in_chans, ncls = probe.in_chans, probe.num_classes
    steps = iters or plan_iters(ablation, seeds, budget_min, ncls, in_chans)
    rows = []
    for v in ablation.variants:
        size = _size(v, task, in_chans)
        model = v.build(in_chans, ncls)
        prof = profile(model, size)
        latency = measure_latency(model, size, runs=latency_runs, warmup=2)
        runs = []
        for seed in range(seeds):
            split = split_for(size, seed)
            torch.manual_seed(seed)
            model = v.build(in_chans, ncls)
            per_epoch = math.ceil(len(split.train) / task.batch_size)
            cfg = TrainConfig(iters=steps, epochs=steps / per_epoch, batch_size=task.batch_size,
                              lr=task.lr, optimizer=task.optimizer,
                              weight_decay=task.weight_decay, schedule=task.schedule,
                              seed=seed, device="cpu", input_size=size,
                              eval_every=_eval_every(task, steps, per_epoch))
            if v.prepare is not None:
                v.prepare(model, split, cfg)
            res = train(model, split, cfg, progress=False)
            top1 = res.metrics.get("top1")
            run = {"seed": seed, "acc": None if top1 is None else top1 / 100, "steps": res.steps,
                   "seconds": res.seconds}
            if task.target_error is not None:
                run["steps_to_target"] = _steps_to_target(res.history, task.target_error)
            runs.append(run)
            if log:
                log(f"{v.name} seed {seed}: acc {run['acc']:.4f}")
        summary = _summary(runs, task.target_error)
        rows.append({"variant": v.name, "curve": v.curve, "params": prof.params,
                     "macs": prof.macs,
                     "input_size": list(size), "latency_ms": latency, "paper": v.paper,
                     "runs": runs, **summary,
                     "at_chance": summary["acc_mean"] is not None
                     and summary["acc_mean"] < 1.5 / ncls})
    result = {"ablation": ablation.name, "title": ablation.title, "source": ablation.source,
              "data": data, "train_images": task.train_images, "iters": steps, "seeds": seeds,
              "target_error": task.target_error, "notes": ablation.notes, "variants": rows}
    result["verdicts"] = verdicts(ablation, rows, task.target_error is not None)
    return result


def _mean_std(xs: list[float]) -> tuple[float | None, float | None]:
    if not xs:
        return None, None
    return statistics.fmean(xs), (statistics.stdev(xs) if len(xs) > 1 else 0.0)


def _summary(runs: list[dict], target_error: float | None) -> dict:
    accs = [r["acc"] for r in runs if r["acc"] is not None]
    out = dict(zip(("acc_mean", "acc_std"), _mean_std(accs)))
    if target_error is not None:
        # a run that never reached the target counts as its full length (a lower bound)
        steps = [r["steps_to_target"] if r["steps_to_target"] is not None else r["steps"]
                 for r in runs]
        out["reached"] = sum(r["steps_to_target"] is not None for r in runs)
        out["steps_mean"], out["steps_std"] = _mean_std(steps)
    return out


def verdicts(ablation: Ablation, rows: list[dict], by_steps: bool) -> list[dict]:
    """For each claim: ``reproduces`` when the better arm wins by more than the two arms'
    summed standard deviations, ``does not reproduce`` when it loses by that much, else
    ``inconclusive`` (the difference is within seed noise); ``invalid`` when an arm stayed
    near chance accuracy (it did not train: nothing can be said)."""
    by = {r["variant"]: r for r in rows}
    out = []
    for c in ablation.claims:
        a, b = by[c.better], by[c.worse]
        what = "fewer steps to the target error" if by_steps else "higher accuracy"
        if len(a["runs"]) < 2:
            out.append({"claim": f"{c.better} beats {c.worse} ({what})",
                        "verdict": "inconclusive (one seed: no spread to judge by)",
                        "difference": None, "noise": None})
            continue
        stuck = [r["variant"] for r in ((a,) if c.worse_may_stall else (a, b))
                 if r.get("at_chance")]
        if stuck:
            out.append({"claim": f"{c.better} beats {c.worse} ({what})",
                        "verdict": f"invalid ({' and '.join(stuck)} stayed near chance "
                        "accuracy: the task setting failed, not the claim)",
                        "difference": None, "noise": None})
            continue
        key = "steps" if by_steps else "acc"
        ma, sa, mb, sb = a[f"{key}_mean"], a[f"{key}_std"], b[f"{key}_mean"], b[f"{key}_std"]
        gain = (mb - ma) if by_steps else (ma - mb)
        noise = sa + sb
        if gain > noise:
            word = "reproduces"
        elif gain < -noise:
            word = "does not reproduce"
        else:
            word = "inconclusive"
        out.append({"claim": f"{c.better} beats {c.worse} ({what})", "verdict": word,
                    "difference": gain, "noise": noise})
    return out


# --- output -------------------------------------------------------------------------------
def table(result: dict) -> str:
    from cnnlab.table import render

    by_steps = result.get("target_error") is not None
    head = ["variant", "params", "mult-adds", "latency ms",
            "steps to target" if by_steps else "accuracy", "paper"]
    rows = []
    for r in result["variants"]:
        if by_steps:
            m = f"{r['steps_mean']:.0f} ± {r['steps_std']:.0f} ({r['reached']}/" \
                f"{len(r['runs'])} reached)"
        else:
            m = f"{100 * r['acc_mean']:.2f} ± {100 * r['acc_std']:.2f} %"
        rows.append([r["variant"], f"{r['params']:,}", f"{r['macs']:,}",
                     f"{r['latency_ms']:.2f}", m, r["paper"]])
    lines = [f"{result['title']} ({result['source']})",
             f"data {result['data']}, {result['train_images'] or 'all'} training images, "
             f"{result['iters']} steps, {result['seeds']} seed(s)",
             render(rows, head, right={1, 2, 3})]
    for v in result["verdicts"]:
        lines.append(f"claim: {v['claim']}: {v['verdict'].upper()}"
                     + (" at this scale" if v["verdict"] != "reproduces" else ""))
    return "\n".join(lines)


def curves(result: dict) -> dict[str, list[tuple[int, float, float]]]:
    """The arms that name a ``curve``, as ``{curve: [(params, measure mean, std), ...]}`` by
    parameters; the measure is validation error in % (steps to the target when the ablation
    counts steps). Empty when no arm names one."""
    by_steps = result.get("target_error") is not None
    out: dict[str, list[tuple[int, float, float]]] = {}
    for r in result["variants"]:
        if r.get("curve"):
            mean, std = (r["steps_mean"], r["steps_std"]) if by_steps else \
                (100 * (1 - r["acc_mean"]), 100 * r["acc_std"])
            out.setdefault(r["curve"], []).append((r["params"], mean, std))
    return {k: sorted(v) for k, v in out.items()}


def _plot_curves(ax, result: dict) -> None:
    for name, pts in curves(result).items():
        xs, ms, ss = zip(*pts)
        ax.errorbar(xs, ms, yerr=ss, marker="o", capsize=3, label=name)
    ax.set_xscale("log")
    ax.set_xlabel("parameters")
    ax.set_ylabel("steps to target error" if result.get("target_error") is not None
                  else "validation error (%)")
    ax.legend(fontsize=8)


def _plot_bars(ax, result: dict) -> None:
    by_steps = result.get("target_error") is not None
    names = [r["variant"] for r in result["variants"]]
    key = "steps" if by_steps else "acc"
    scale = 1 if by_steps else 100
    means = [scale * r[f"{key}_mean"] for r in result["variants"]]
    stds = [scale * r[f"{key}_std"] for r in result["variants"]]
    ax.bar(range(len(names)), means, yerr=stds, capsize=4, color="#4a7fb5")
    ax.set_xticks(range(len(names)), names, rotation=20, ha="right", fontsize=8)
    ax.set_ylabel("steps to target error" if by_steps else "validation accuracy (%)")
    if not by_steps and means:
        lo = min(m - s for m, s in zip(means, stds))
        ax.set_ylim(max(0, lo - 5), min(100, max(m + s for m, s in zip(means, stds)) + 2))


def write_results(result: dict, out: Path) -> tuple[Path, Path]:
    """``NAME.json`` and ``NAME.png`` in ``out`` (both written atomically); the PNG is a bar
    per arm, or error vs parameters, one line per curve, when the arms name curves."""
    import textwrap

    from cnnlab.io import atomic_path
    from cnnlab.plot import _pyplot

    out.mkdir(parents=True, exist_ok=True)
    jpath, ppath = out / f"{result['ablation']}.json", out / f"{result['ablation']}.png"
    with atomic_path(jpath) as tmp:
        tmp.write_text(json.dumps(result, indent=1) + "\n")
    plt = _pyplot()
    if curves(result):
        fig, ax = plt.subplots(figsize=(5.5, 3.8), dpi=100)
        _plot_curves(ax, result)
    else:
        fig, ax = plt.subplots(figsize=(max(5, 1.2 * len(result["variants"])), 3.4), dpi=100)
        _plot_bars(ax, result)
    ax.set_title(textwrap.fill(f"{result['title']} ({result['seeds']} seeds)", 60), fontsize=9)
    fig.tight_layout()
    with atomic_path(ppath) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return jpath, ppath


__all__ = ["Ablation", "Claim", "Task", "Variant", "get_ablation", "list_ablations",
           "plan_iters", "register_ablation", "run_ablation", "table", "verdicts",
           "write_results"]
