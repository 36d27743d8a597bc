"""ENAS search as a resumable run (Pham et al. 2018, Sec. 2.2 "Training ENAS and deriving
architectures"), and its honest baseline, random search with the same weight sharing.

Each epoch alternates two phases: (1) the shared weights ω train on one pass over the
training images, each batch through a child model the controller samples (the Monte-Carlo
gradient of Eq. 1 with M = 1); (2) the controller θ takes ``controller_steps`` REINFORCE
steps, each child scored by its accuracy on one validation batch. Deriving: sample
``derive_samples`` children, score each on the same validation batch, keep the best; it is
then retrained from scratch (``cnnlab.create_model("enas", config=OUT/final.json)``).
``random=True`` samples children uniformly instead and skips phase 2 (Li & Talwalkar's
random search with weight sharing): the same ω steps, the same derivation and retraining.

The run directory holds ``search.jsonl`` (one record per sampled child: phase, epoch,
decisions, config, accuracy, reward, baseline), ``rewards.png``, ``final.json`` and
``search.safetensors``, a checkpoint written atomically after every epoch from which
``resume=True`` continues to the same result, bit for bit on CPU, after a ``kill -9``.
Records written after the last checkpoint are dropped on resume; a log that does not parse
up to that point is an error.

Under ``torchrun`` the ω phase is data parallel as training is (``cnnlab.train`` 's
``DistEnv`` and ``BatchLoader`` shards): every rank samples the same child (the controller
and its random generator are identical on all ranks), computes gradients on its share of
the batch, and the gradients are averaged with ``all_reduce`` (all ranks run the
same child, so the parameters it did not use are the same everywhere and stay untouched);
phase 2 runs identically on every rank. Rank 0 alone writes.
"""

from __future__ import annotations

import dataclasses
import json
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from cnnlab.data.core import DataSplit, carve_val
from cnnlab.data.loader import BatchLoader
from cnnlab.io import write_bytes_atomic
from cnnlab.search.controller import Controller, Reinforce
from cnnlab.search.spaces import make_space
from cnnlab.search.supernet import make_supernet
from cnnlab.train.checkpoint import load_checkpoint, save_checkpoint
from cnnlab.train.config import TrainConfig
from cnnlab.train.optim import Schedule, build_optimizer
from cnnlab.train.trainer import DistEnv

# settings a resumed run must share with the run it continues
_FIXED = ("space", "num_layers", "filters", "num_nodes", "batch_size", "seed", "random",
          "search_val", "controller_steps", "lr", "epochs")
DEFAULTS = {"macro": {"num_layers": 12, "filters": 36}, "micro": {"num_layers": 6, "filters": 20}}


@dataclass
class SearchConfig:
    """Defaults follow the released search scripts where a CPU allows (micro: 6 layers,
    F = 20, 5 blocks; macro: 12 layers, F = 36; ω: SGD-Nesterov, cosine from 0.05;
    θ: Adam 0.0035, entropy weight 1e-4, baseline decay 0.99)."""

    space: str = "micro"
    num_layers: int | None = None
    filters: int | None = None
    num_nodes: int = 7
    epochs: int = 10
    budget_s: float | None = None   # stop after the epoch that passes this much search time
    batch_size: int = 64
    lr: float = 0.05
    weight_decay: float = 1e-4
    grad_clip: float = 5.0
    controller_steps: int = 20
    controller_lr: float = 0.0035
    entropy_weight: float = 1e-4
    baseline_decay: float = 0.99
    derive_samples: int = 16
    search_val: int = 300   # training images held out to score children
    random: bool = False
    seed: int = 0
    out_dir: str | None = None
    resume: bool = False

    def __post_init__(self):
        if self.space not in DEFAULTS:
            raise ValueError(f"unknown search space {self.space!r}; choose macro or micro")
        for k, v in DEFAULTS[self.space].items():
            if getattr(self, k) is None:
                setattr(self, k, v)
        for k in ("epochs", "batch_size", "derive_samples", "search_val", "num_layers",
                  "filters"):
            v = getattr(self, k)
            if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
                raise ValueError(f"{k} must be a positive int, got {v!r}")
        if self.budget_s is not None and not self.budget_s > 0:
            raise ValueError(f"the budget must be positive, got {self.budget_s} s")
        if self.controller_steps < 0:
            raise ValueError("controller_steps must be >= 0")

    def make_space(self):
        kw = {"num_layers": self.num_layers, "filters": self.filters}
        if self.space == "micro":
            kw["num_nodes"] = self.num_nodes
        return make_space(self.space, **kw)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclass
class SearchResult:
    config: dict           # the derived network
    score: float           # its accuracy on the derivation batch
    epochs: int
    seconds: float
    records: list[dict]
    supernet: nn.Module | None = None


class _State(nn.Module):
    def __init__(self, supernet, controller):
        super().__init__()
        self.supernet = supernet
        self.controller = controller


def read_log(path: Path, lines: int | None = None) -> list[dict]:
    """The first ``lines`` records of a search log; a line that is not a JSON record there
    is a ``ValueError`` naming it."""
    if not path.is_file():
        if lines:
            raise ValueError(f"search log {path} is missing; cannot resume")
        return []
    text = path.read_text(errors="replace").splitlines()
    if lines is not None and len(text) < lines:
        raise ValueError(f"search log {path} has {len(text)} records, the checkpoint "
                         f"expects {lines}: the log is corrupt; start a new run")
    out = []
    for n, line in enumerate(text[:lines] if lines is not None else text, 1):
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            rec = None
        if not isinstance(rec, dict) or "phase" not in rec:
            raise ValueError(f"search log {path} line {n} is not a search record: the log "
                             "is corrupt; start a new run")
        out.append(rec)
    return out


def _write_log(path: Path, records: list[dict]) -> None:
    write_bytes_atomic(path, "".join(json.dumps(r) + "\n" for r in records).encode())


def _adam_tensors(opt: torch.optim.Optimizer) -> tuple[dict, list]:
    sd = opt.state_dict()
    return ({f"theta.{pid}.{k}": v for pid, st in sd["state"].items() for k, v in st.items()},
            sd["param_groups"])


def _load_adam(opt, tensors: dict, groups: list) -> None:
    state: dict[int, dict] = {}
    for k, v in tensors.items():
        if k.startswith("theta."):
            _, pid, key = k.split(".", 2)
            state.setdefault(int(pid), {})[key] = v
    for g in groups:
        g["betas"] = tuple(g["betas"])
    opt.load_state_dict({"state": state, "param_groups": groups})


def plot_rewards(records: list[dict], path) -> None:
    """Reward of every controller sample (dots) and its moving average against the step."""
    from cnnlab.io import atomic_path
    from cnnlab.plot import _pyplot

    plt = _pyplot()
    pts = [r for r in records if r["phase"] in ("theta", "omega_sample")]
    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=110)
    if pts:
        y = [r["accuracy"] for r in pts]
        ax.plot(range(len(y)), y, ".", ms=3, alpha=0.4, label="sampled child")
        k = max(1, len(y) // 20)
        avg = [sum(y[max(0, i - k + 1):i + 1]) / len(y[max(0, i - k + 1):i + 1])
               for i in range(len(y))]
        ax.plot(range(len(y)), avg, "-", label=f"moving average ({k})")
    ax.set_xlabel("controller sample")
    ax.set_ylabel("validation-batch accuracy")
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)


def search(split: DataSplit, cfg: SearchConfig, progress: bool = True, log=None
           ) -> SearchResult:
    """Run (or resume) an ENAS or random search on ``split.train`` (of which
    ``cfg.search_val`` images score the children); ``split.val`` is not touched, so the
    retrained network can be measured on it."""
    env = DistEnv.from_env("cpu")
    log = log if env.rank == 0 else None
    space = cfg.make_space()
    data = carve_val(DataSplit(split.train, split.train.subset([]), split.num_classes,
                               split.in_chans, split.name), cfg.search_val, cfg.seed)
    torch.manual_seed(cfg.seed)
    supernet = make_supernet(space, split.num_classes, split.in_chans)
    controller = Controller(space)
    state = _State(supernet, controller)
    tcfg = TrainConfig(epochs=cfg.epochs, batch_size=cfg.batch_size, lr=cfg.lr,
                       nesterov=True, weight_decay=cfg.weight_decay, schedule="cosine",
                       seed=cfg.seed, device="cpu")
    loader = BatchLoader(data.train, cfg.batch_size, train=True, seed=cfg.seed,
                         rank=env.rank, world=env.world)
    vloader = BatchLoader(data.val, cfg.batch_size, train=True, seed=cfg.seed + 1)
    spe = len(loader)
    if spe == 0:
        raise ValueError(f"batch size {cfg.batch_size} is larger than the "
                         f"{len(data.train)} search-training images")
    omega_opt = build_optimizer(supernet, tcfg)
    sched = Schedule(tcfg, spe, cfg.epochs * spe)
    rl = Reinforce(controller, cfg.controller_lr, cfg.entropy_weight, cfg.baseline_decay)
    gen = torch.Generator().manual_seed(cfg.seed)
    epoch, seconds, records, theta_step = 0, 0.0, [], 0

    out = Path(cfg.out_dir) if cfg.out_dir else None
    ckpt = out / "search.safetensors" if out else None
    log_path = out / "search.jsonl" if out else None
    if out is not None and env.rank == 0:
        out.mkdir(parents=True, exist_ok=True)
    if cfg.resume:
        if ckpt is None or not ckpt.is_file():
            raise ValueError(f"nothing to resume: no search checkpoint at {ckpt}")
        m = load_checkpoint(ckpt, state, omega_opt)
        old = m["search_config"]
        for k in _FIXED:
            if old.get(k) != getattr(cfg, k):
                raise ValueError(f"{ckpt}: cannot resume with {k}={getattr(cfg, k)!r}; the "
                                 f"search used {old.get(k)!r}")
        records = read_log(log_path, m["log_lines"])
        epoch, seconds, theta_step = m["epoch"], m["seconds"], m["theta_step"]
        rl.baseline = m["baseline"]
        _load_adam(rl.optimizer, m["tensors"], m["theta_groups"])
        gen.set_state(m["tensors"]["gen"])
        if log:
            log(f"resumed {ckpt} at epoch {epoch} ({len(records)} records)")

    def sample(with_grad=False):
        if cfg.random:
            return space.sample_uniform(gen), None
        if with_grad:
            s = controller.sample(gen)
            return s.decisions, s
        with torch.no_grad():
            return controller.sample(gen).decisions, None

    @torch.no_grad()
    def score(arch, x, y):
        supernet.train()  # batch statistics, as the released search evaluates children
        return float((supernet(x, arch).argmax(1) == y).float().mean())

    def val_batch(i):
        ve, b = divmod(i, len(vloader))
        return next(vloader.epoch(ve, b))

    def save():
        if env.rank != 0 or ckpt is None:
            return
        _write_log(log_path, records)
        theta, groups = _adam_tensors(rl.optimizer)
        meta = {"epoch": epoch, "seconds": seconds, "theta_step": theta_step,
                "baseline": rl.baseline, "log_lines": len(records), "theta_groups": groups,
                "search_config": cfg.to_dict(), "space_size": str(space.size()),
                "data": {"name": split.name, "num_classes": split.num_classes,
                         "in_chans": split.in_chans}}
        save_checkpoint(ckpt, state, omega_opt, meta, {**theta, "gen": gen.get_state()})

    show = progress and env.rank == 0 and sys.stderr.isatty()
    bar = None
    if show:
        from tqdm import tqdm

        bar = tqdm(total=cfg.epochs, initial=epoch, unit="epoch", desc=f"{space.kind} search",
                   leave=False, dynamic_ncols=True)
    while epoch < cfg.epochs and (cfg.budget_s is None or seconds < cfg.budget_s):
        t0 = time.perf_counter()
        supernet.train()
        loss_sum, n = 0.0, 0
        for b, (x, y) in enumerate(loader.epoch(epoch)):
            step = epoch * spe + b
            for g in omega_opt.param_groups:
                g["lr"] = sched.lr(step)
            decisions, _ = sample()
            loss = F.cross_entropy(supernet(x, space.decode(decisions)), y)
            omega_opt.zero_grad(set_to_none=True)
            loss.backward()
            if env.world > 1:
                _average_grads(supernet, env.world)
            nn.utils.clip_grad_norm_(supernet.parameters(), cfg.grad_clip)
            omega_opt.step()
            loss_sum, n = loss_sum + loss.item() * len(y), n + len(y)
        if not math.isfinite(loss_sum):
            raise ValueError(f"the shared weights diverged in epoch {epoch + 1} (loss "
                             f"{loss_sum}); lower lr")
        records.append({"phase": "omega", "epoch": epoch + 1, "train_loss": loss_sum / n})
        steps = cfg.controller_steps if not cfg.random else 0
        for _ in range(steps):
            decisions, s = sample(with_grad=True)
            x, y = val_batch(theta_step)
            acc = score(space.decode(decisions), x, y)
            upd = rl.step(s, acc)
            theta_step += 1
            records.append({"phase": "theta", "epoch": epoch + 1, "step": theta_step,
                            "decisions": decisions, "accuracy": acc, **upd})
        if cfg.random:  # the same log for the baseline: a few uniform children scored
            for _ in range(cfg.controller_steps):
                decisions, _ = sample()
                x, y = val_batch(theta_step)
                theta_step += 1
                records.append({"phase": "omega_sample", "epoch": epoch + 1,
                                "step": theta_step, "decisions": decisions,
                                "accuracy": score(space.decode(decisions), x, y)})
        seconds += time.perf_counter() - t0
        epoch += 1
        save()
        if bar is not None:
            bar.update(1)
        if log:
            acc = [r["accuracy"] for r in records[-max(steps, cfg.controller_steps):]
                   if "accuracy" in r]
            log(f"epoch {epoch}/{cfg.epochs}  omega loss {loss_sum / n:.4f}  "
                f"mean child acc {sum(acc) / max(len(acc), 1):.3f}  {seconds:.0f} s")
    if bar is not None:
        bar.close()
    best = derive(space, supernet, sample, val_batch(10**6), cfg.derive_samples, score)
    final = {**space.decode(best[0]), "derived": {
        "score": best[1], "method": "random" if cfg.random else "enas", "epochs": epoch,
        "seconds": round(seconds, 1), "decisions": best[0], "seed": cfg.seed,
        "space_size": str(space.size()), "data": split.name}}
    if out is not None and env.rank == 0:
        write_bytes_atomic(out / "final.json", json.dumps(final, indent=1).encode())
        _write_log(log_path, records)
        try:
            plot_rewards(records, out / "rewards.png")
        except ValueError:  # no matplotlib: the log holds the same numbers
            pass
    return SearchResult(final, best[1], epoch, seconds, records, supernet)


def derive(space, supernet, sample, batch, n: int, score) -> tuple[list[int], float]:
    """Sec. 2.2: sample ``n`` children, score each on one validation batch, keep the best
    (the first of equals)."""
    x, y = batch
    best = None
    for _ in range(n):
        d, _s = sample()
        acc = score(space.decode(d), x, y)
        if best is None or acc > best[1]:
            best = (d, acc)
    return best


def _average_grads(model: nn.Module, world: int) -> None:
    import torch.distributed as dist

    for p in model.parameters():
        if p.grad is None:  # unused by this child, on every rank alike
            continue
        dist.all_reduce(p.grad)
        p.grad /= world
