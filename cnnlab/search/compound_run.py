"""A whole compound-scaling search on a dataset (Tan & Le 2019, Sec. 3.3 and 4), as
``cnnlab search compound`` and ``experiments/compound_scaling.py`` run it.

Step 1 trains every (α, β, γ) of the grid at φ = 1 on each seed and ranks them by the mean
accuracy under the mult-add budget (or by the step-0 reward, ``objective="reward"``).
Step 2 trains, on each seed, the baseline, the winner scaled by φ, the paper's ImageNet
coefficients scaled by φ, and depth-, width- and resolution-only networks with at most the
winner's mult-adds; the verdict compares compound with the best one-dimensional network.
The data split is the same for every run (``split_seed``); the seed changes the
initialisation and the batch order.
"""

from __future__ import annotations

import json
import math
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from cnnlab.models.base import check_arg
from cnnlab.search.compound_search import (
    REWARD_W,
    Baseline,
    check_objective,
    coefficient_grid,
    compound,
    default_budget,
    grid_search,
    layers,
    match_macs,
    reward,
)

PAPER = (1.2, 1.1, 1.15)  # α, β, γ found on ImageNet (Sec. 4, step 1)
FILES = ("compound.json", "compound.md", "compound.png")


@dataclass(frozen=True)
class CompoundConfig:
    """One search. ``budget`` is in mult-adds (default: 2.2× the baseline's)."""

    data: str = "digits"
    val_split: int | None = None
    split_seed: int = 0
    train_images: int | None = None   # the first N training images (None: all)
    width: float = 0.25
    depth: float = 0.5
    resolution: int = 12
    alphas: tuple[float, ...] = (1.0, 1.2, 2.0)
    betas: tuple[float, ...] = (1.0, 1.1, 2 ** 0.5)
    budget: float | None = None
    objective: str = "budget"
    w: float = REWARD_W
    phi: float = 1.5
    grid_epochs: float = 2
    epochs: float = 2
    batch_size: int = 32
    lr: float = 0.05
    seeds: tuple[int, ...] = (0,)

    def __post_init__(self):
        check_objective(self.objective)
        check_arg(self.budget is None or (math.isfinite(self.budget) and self.budget > 0),
                  f"the mult-add budget must be a positive number, got {self.budget}")
        for k in ("width", "depth", "phi", "grid_epochs", "epochs", "lr"):
            v = getattr(self, k)
            check_arg(math.isfinite(v) and v > 0, f"{k} must be a positive number, got {v}")
        check_arg(int(self.resolution) >= 1, f"resolution must be >= 1, got {self.resolution}")
        check_arg(self.train_images is None or self.train_images > 0,
                  f"train_images must be positive, got {self.train_images}")
        check_arg(len(self.seeds) > 0, "need at least one seed")
        check_arg(all(v >= 1 for v in (*self.alphas, *self.betas)),
                  f"alphas and betas must be >= 1, got {self.alphas}, {self.betas}")

    def baseline(self, in_chans: int = 1, num_classes: int = 10) -> Baseline:
        return Baseline(self.width, self.depth, int(self.resolution), num_classes, in_chans)

    def grid(self) -> list[tuple[float, float, float]]:
        grid = coefficient_grid(self.alphas, self.betas)
        check_arg(grid, "no (alpha, beta) pair leaves gamma >= 1 with alpha*beta^2*gamma^2 = 2")
        return grid


def check_budget(cfg: CompoundConfig, base: Baseline) -> float:
    """The budget in mult-adds; under ``"budget"`` it must admit a grid candidate (checked
    on profiled counts before any training)."""
    budget = cfg.budget or default_budget(base)
    if cfg.objective == "budget":
        least = min(base.macs(base.config(w=b, d=a, r=g)) for a, b, g in cfg.grid())
        check_arg(least <= budget, f"budget {budget:,.0f} mult-adds is below every grid "
                                   f"candidate (the smallest has {least:,})")
    return budget


class Trainer:
    """``trainer(config, seed, epochs) -> top-1 %``: a network of ``base`` trained on
    ``cfg.data`` fitted to the config's resolution; identical runs (the same layers, seed and
    epochs, in either step) are trained once."""

    def __init__(self, cfg: CompoundConfig, base: Baseline,
                 on_done: Callable[[], None] | None = None):
        self.cfg, self.base, self.on_done = cfg, base, on_done
        self._splits: dict = {}
        self._done: dict = {}

    @staticmethod
    def key(config, seed: int, epochs: float):
        return layers(config), seed, epochs

    def pending(self, configs, seeds, epochs: float) -> int:
        """How many of these runs are still to train."""
        return len({self.key(c, s, epochs) for c in configs for s in seeds} - set(self._done))

    def split(self, res: int):
        from cnnlab.data import load_dataset

        if res not in self._splits:
            s = load_dataset(self.cfg.data, self.cfg.val_split, self.cfg.split_seed,
                             input_size=(self.base.in_chans, res, res))
            if self.cfg.train_images:
                s = replace(s, train=s.train.subset(range(min(self.cfg.train_images,
                                                              len(s.train)))))
            self._splits[res] = s
        return self._splits[res]

    def __call__(self, config, seed: int, epochs: float) -> float:
        import torch

        from cnnlab.train import TrainConfig, train

        key = self.key(config, seed, epochs)
        if key not in self._done:
            torch.manual_seed(seed)
            model = self.base.build(config)
            res = train(model, self.split(config.resolution),
                        TrainConfig(epochs=epochs, batch_size=self.cfg.batch_size,
                                    lr=self.cfg.lr, weight_decay=1e-4, seed=seed,
                                    device="cpu"), progress=False)
            self._done[key] = float(res.metrics["top1"])
            if self.on_done:
                self.on_done()
        return self._done[key]


def _stats(accs) -> dict:
    accs = [round(a, 3) for a in accs]
    sd = statistics.stdev(accs) if len(accs) > 1 else 0.0
    return {"accuracies": accs, "mean": round(statistics.mean(accs), 3), "std": round(sd, 3)}


def step2_networks(cfg: CompoundConfig, base: Baseline, winner) -> list[tuple[str, dict, object]]:
    """(name, multipliers, config): the baseline, compound (winner and paper), and the three
    one-dimensional networks matched to at most the winner's mult-adds."""
    a, b, g = winner
    p = cfg.phi
    target_cfg = compound(base, p, a, b, g)
    target = base.macs(target_cfg)
    nets = [("baseline", {"d": 1.0, "w": 1.0, "r": 1.0}, base.config()),
            (f"compound phi={p:g} (grid winner)", {"d": a ** p, "w": b ** p, "r": g ** p},
             target_cfg),
            (f"compound phi={p:g} (paper's a, b, g)",
             {"d": PAPER[0] ** p, "w": PAPER[1] ** p, "r": PAPER[2] ** p},
             compound(base, p, *PAPER))]
    for dim in ("depth", "width", "resolution"):
        m, c, _ = match_macs(base, target, dim)
        mult = {"d": 1.0, "w": 1.0, "r": 1.0} | {dim[0]: m}
        nets.append((f"{dim} only", mult, c))
    return nets


def verdict(rows: list[dict], winner) -> str:
    """Compound (the grid's winner, then the paper's α, β, γ) against the best
    one-dimensional network: a win or a loss only when the means differ by more than the
    larger std."""
    one_d = max((r for r in rows if r["name"].endswith(" only")), key=lambda r: r["mean"])

    def compare(r):
        gap, noise = r["mean"] - one_d["mean"], max(r["std"], one_d["std"])
        word = "beats" if gap > noise else "loses to" if gap < -noise else "ties"
        return f"{word} {one_d['name']} ({r['mean']:.2f} ± {r['std']:.2f} vs " \
               f"{one_d['mean']:.2f} ± {one_d['std']:.2f})"

    comp, paper = rows[1], rows[2]
    if sum(v > 1 for v in winner) <= 1:
        head = "the claim does not reproduce: the grid's winner scales one dimension only, " \
               "so compound scaling reduces to 1-D scaling here"
    else:
        ok = comp["mean"] - one_d["mean"] > max(comp["std"], one_d["std"])
        head = f"the claim {'reproduces' if ok else 'does not reproduce'}: compound " \
               f"{compare(comp)}"
    return f"{head}; the paper's alpha, beta, gamma {compare(paper)}"


def run(cfg: CompoundConfig, log: Callable[[str], None] | None = None,
        progress: Callable[[int, int], None] | None = None) -> dict:
    """Both steps; the result as JSON-ready data. ``progress(done, total)`` after each
    training (the total grows once step 2's networks are known)."""
    from cnnlab.data import load_dataset
    from cnnlab.profile import profile

    log = log or (lambda _line: None)
    t0 = time.perf_counter()
    probe = load_dataset(cfg.data, cfg.val_split, cfg.split_seed)
    base = cfg.baseline(probe.in_chans, probe.num_classes)
    budget = check_budget(cfg, base)
    grid, seeds = cfg.grid(), list(cfg.seeds)
    count = {"done": 0, "total": 0}

    def tick():
        count["done"] += 1
        if progress:
            progress(count["done"], count["total"])

    b_macs = base.macs(base.config())
    log(f"step 1: {len(grid)} candidates x {len(seeds)} seed(s), {cfg.grid_epochs:g} epochs; "
        f"baseline {b_macs:,} mult-adds, budget {budget:,.0f}")
    trainer = Trainer(cfg, base, tick)
    count["total"] = trainer.pending([base.config(w=b, d=a, r=g) for a, b, g in grid], seeds,
                                     cfg.grid_epochs)
    ranked = grid_search(base, lambda c, s: trainer(c, s, cfg.grid_epochs), grid, budget,
                         cfg.objective, cfg.w, seeds)
    step1 = [{"alpha": c.alpha, "beta": c.beta, "gamma": c.gamma, "macs": c.macs,
              "macs_ratio": round(c.macs / b_macs, 3), "fits_budget": c.macs <= budget,
              "reward": round(reward(c.accuracy, c.macs, budget, cfg.w), 3),
              "score": round(c.score, 3), **_stats(c.accuracies)} for c in ranked]
    winner = (ranked[0].alpha, ranked[0].beta, ranked[0].gamma)
    log(f"winner alpha={winner[0]:g} beta={winner[1]:.3g} gamma={winner[2]:.3g} "
        f"({time.perf_counter() - t0:.0f} s)")

    nets = step2_networks(cfg, base, winner)
    count["total"] += trainer.pending([c for _n, _m, c in nets], seeds, cfg.epochs)
    step2 = []
    for name, mult, c in nets:
        accs = [trainer(c, s, cfg.epochs) for s in seeds]
        prof = profile(base.build(c), (base.in_chans, c.resolution, c.resolution))
        step2.append({"name": name, **{k: round(v, 3) for k, v in mult.items()},
                      "px": c.resolution, "macs": prof.macs, "params": prof.params,
                      **_stats(accs)})
        log(f"{name}: {step2[-1]['mean']:.2f} ± {step2[-1]['std']:.2f} %")
    return {"method": "compound scaling (Tan & Le 2019)", "data": cfg.data,
            "config": {**asdict(cfg), "seeds": seeds},
            "baseline": {"width": base.width, "depth": base.depth, "px": base.resolution,
                         "macs": b_macs},
            "budget_macs": round(budget), "winner": dict(zip(("alpha", "beta", "gamma"),
                                                             winner)),
            "paper": {"alpha": PAPER[0], "beta": PAPER[1], "gamma": PAPER[2],
                      "claim": "compound scaling beats depth-, width- or resolution-only "
                               "scaling at equal FLOPS (Fig. 3, Table 3: +2.5 % on ImageNet)"},
            "step1": step1, "step2": step2, "verdict": verdict(step2, winner),
            "seconds": round(time.perf_counter() - t0, 1)}


def tables(result: dict) -> str:
    """Both steps as markdown tables, the verdict last."""
    obj = result["config"]["objective"]
    lines = [f"Step 1 (phi = 1, alpha*beta^2*gamma^2 = 2, {len(result['config']['seeds'])} "
             f"seed(s), objective {obj}, budget {result['budget_macs']:,} mult-adds)", "",
             "| alpha | beta | gamma | mult-adds (x base) | val top-1 % | reward "
             "ACC*(MACs/T)^w | score |", "|---|---|---|---|---|---|---|"]
    for c in result["step1"]:
        lines.append(f"| {c['alpha']:g} | {c['beta']:.3g} | {c['gamma']:.3g} | "
                     f"{c['macs_ratio']:.2f} | {c['mean']:.2f} ± {c['std']:.2f} | "
                     f"{c['reward']:.2f} | {c['score']:.2f} |")
    p = result["paper"]
    lines += ["", f"Step 2 (paper, ImageNet: alpha={p['alpha']}, beta={p['beta']}, "
                  f"gamma={p['gamma']}; {p['claim']})", "",
              "| scaling | d | w | r | px | mult-adds | params | val top-1 % |",
              "|---|---|---|---|---|---|---|---|"]
    for r in result["step2"]:
        lines.append(f"| {r['name']} | {r['d']:.2f} | {r['w']:.2f} | {r['r']:.2f} | "
                     f"{r['px']} | {r['macs'] / 1e6:.3f} M | {r['params'] / 1e3:.0f} K | "
                     f"{r['mean']:.2f} ± {r['std']:.2f} |")
    lines += ["", f"Verdict: {result['verdict']}"]
    return "\n".join(lines) + "\n"


def plot(result: dict, path) -> None:
    """Left: step 1's candidates; right: step 2's networks; accuracy (mean ± std over
    seeds) against mult-adds."""
    from cnnlab.plot import _pyplot

    plt = _pyplot()
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 3.8), dpi=90)
    for c in result["step1"]:
        a1.errorbar(c["macs"] / 1e6, c["mean"], yerr=c["std"], fmt="o", capsize=3,
                    label=f"a={c['alpha']:g} b={c['beta']:.2f} g={c['gamma']:.2f}")
    a1.axvline(result["budget_macs"] / 1e6, color="grey", ls="--", lw=1, label="budget")
    a1.set_title("step 1: alpha, beta, gamma at phi = 1", fontsize=9)
    for r, marker in zip(result["step2"], "osD^v<>p"):  # shapes: equal networks overlap
        a2.errorbar(r["macs"] / 1e6, r["mean"], yerr=r["std"], fmt=marker, capsize=3,
                    label=r["name"], alpha=0.8)
    a2.set_title(f"step 2: scaled by phi = {result['config']['phi']:g}", fontsize=9)
    for ax in (a1, a2):
        ax.set_xlabel("mult-adds (M)")
        ax.set_ylabel("val top-1 (%)")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, format="png")
    plt.close(fig)


def write_results(result: dict, folder: Path) -> None:
    """compound.json, compound.md and compound.png in ``folder`` (an empty, fresh folder:
    :func:`cnnlab.io.atomic_dir` makes the set appear whole)."""
    (folder / FILES[0]).write_text(json.dumps(result, indent=1) + "\n")
    (folder / FILES[1]).write_text(tables(result))
    plot(result, folder / FILES[2])
