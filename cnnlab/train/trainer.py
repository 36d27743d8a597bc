"""The training loop: ``train(model, split, cfg)``.

Batches come from the dataset held as one tensor (:class:`cnnlab.data.loader.BatchLoader`),
augmented on the device; a checkpoint (``OUT/last.safetensors``) is written atomically at the
end of every epoch (and every ``save_every`` steps), and ``resume`` continues from it to the
same result, bit for bit on CPU, as an uninterrupted run. A non-finite loss stops the run with
:class:`TrainingDiverged`; the last good checkpoint stays. Under ``torchrun`` the model is
wrapped in DistributedDataParallel (NCCL on GPUs, gloo on CPU), each rank draws its share of
every batch, and rank 0 alone logs and writes checkpoints.
"""

from __future__ import annotations

import copy
import inspect
import json
import math
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn as nn

from cnnlab.data.core import DataSplit
from cnnlab.data.loader import BatchLoader
from cnnlab.io import write_bytes_atomic
from cnnlab.train.checkpoint import load_checkpoint, save_checkpoint
from cnnlab.train.config import TrainConfig
from cnnlab.train.evaluate import (
    SUM_KEYS,
    batch_sums,
    cross_entropy,
    evaluate,
    main_output,
    train_columns,
)
from cnnlab.train.optim import Schedule, build_optimizer

# settings that must not change when a run is resumed (the rest, e.g. epochs, may)
_FIXED_ON_RESUME = ("batch_size", "seed", "optimizer", "augment", "normalize", "input_size")


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite."""


@dataclass
class TrainResult:
    history: list[dict]
    metrics: dict
    steps: int = 0
    seconds: float = 0.0
    images_per_s: float = 0.0
    checkpoint: str | None = None
    extra: dict = field(default_factory=dict)


class EMA:
    """Exponential moving average of the weights (buffers copied), updated every step."""

    def __init__(self, model: nn.Module, decay: float):
        self.decay = decay
        self.model = copy.deepcopy(model).eval()
        for p in self.model.parameters():
            p.requires_grad_(False)

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        for s, v in zip(self.model.state_dict().values(), model.state_dict().values()):
            if s.dtype.is_floating_point:
                s.lerp_(v, 1 - self.decay)
            else:
                s.copy_(v)


@dataclass
class DistEnv:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @classmethod
    def from_env(cls, device_type: str) -> DistEnv:
        world = int(os.environ.get("WORLD_SIZE", "1"))
        if world <= 1:
            return cls()
        import torch.distributed as dist

        if not dist.is_initialized():
            dist.init_process_group("nccl" if device_type == "cuda" else "gloo")
        return cls(dist.get_rank(), dist.get_world_size(),
                   int(os.environ.get("LOCAL_RANK", dist.get_rank())))

    def barrier(self):
        if self.world > 1:
            import torch.distributed as dist

            dist.barrier()


def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", local_rank % torch.cuda.device_count())
        return torch.device("cpu")
    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda: no CUDA device is available")
    return dev


def _check_one_gpu_per_process() -> None:
    """NCCL refuses two processes on one GPU (in the middle of setting up DDP): say so first."""
    local = os.environ.get("LOCAL_WORLD_SIZE")
    n = torch.cuda.device_count()
    need = int(local) if local else int(os.environ.get("LOCAL_RANK", "0")) + 1
    if need > n:
        raise ValueError(f"{need} processes on this machine but {n} CUDA device(s): data-"
                         f"parallel training takes one GPU per process (torchrun "
                         f"--nproc_per_node {n}, or --device cpu)")


def _fake_quantized(model: nn.Module) -> bool:
    from torch.ao.quantization import FakeQuantizeBase

    return any(isinstance(m, FakeQuantizeBase) for m in model.modules())


@torch.no_grad()
def channels_last_works(model: nn.Module, x: torch.Tensor) -> bool:
    """Whether ``model`` runs on NHWC tensors (it is 1.5-2.5× faster for small CNNs on CPU
    with oneDNN, and the layout tensor cores want); a model that reshapes with ``view``
    may not, and then stays NCHW. The probe runs in eval mode: no statistics, no RNG."""
    if x.dim() != 4:
        return False
    was = model.training
    model.eval()
    try:
        model.to(memory_format=torch.channels_last)
        model(x.contiguous(memory_format=torch.channels_last))
        return True
    except RuntimeError:
        return False
    finally:
        model.to(memory_format=torch.contiguous_format)
        model.train(was)


def amp_dtype(cfg: TrainConfig, device: torch.device, model: nn.Module | None = None
              ) -> torch.dtype | None:
    """The autocast dtype: ``auto`` is bf16 (fp16 where the GPU lacks bf16) on CUDA and off
    on the CPU, and off for a model in quantization-aware training, whose fake-quantize
    observers take fp32 only."""
    if cfg.amp == "off" or (cfg.amp == "auto" and device.type != "cuda"):
        return None
    if model is not None and _fake_quantized(model):
        if cfg.amp == "auto":
            return None
        raise ValueError(f"--amp {cfg.amp}: a model in quantization-aware training runs in "
                         f"fp32 (its fake-quantize observers take no {cfg.amp}); use --amp off")
    if cfg.amp == "fp16" or (cfg.amp == "auto" and not torch.cuda.is_bf16_supported()):
        if device.type != "cuda":
            raise ValueError("fp16 mixed precision needs a CUDA device (use --amp bf16 or off)")
        return torch.float16
    return torch.bfloat16


def _write_metrics(out: Path, history: list[dict]) -> None:
    text = "".join(json.dumps(row) + "\n" for row in history)
    write_bytes_atomic(out / "metrics.jsonl", text.encode())


def loss_caller(loss_fn):
    """``loss_fn`` as ``f(outputs, targets, inputs, model)``: the batch's inputs and the model
    are passed as keywords ``inputs=`` and ``model=`` only to a loss that accepts them (by
    name or through ``**kwargs``), so ``loss_fn(outputs, targets)`` keeps working and a
    distillation loss can run its teacher on the same augmented batch."""
    target = loss_fn.forward if isinstance(loss_fn, nn.Module) else loss_fn  # not __call__
    try:
        params = inspect.signature(target).parameters.values()
    except (TypeError, ValueError):  # a callable without a signature takes the plain call
        params = []
    var_kw = any(p.kind is p.VAR_KEYWORD for p in params)
    wants = [k for k in ("inputs", "model") if var_kw or any(p.name == k for p in params)]
    if not wants:
        return lambda out, y, x, model: loss_fn(out, y)

    def call(out, y, x, model):
        given = {"inputs": x, "model": model}
        return loss_fn(out, y, **{k: given[k] for k in wants})
    return call


@dataclass
class RunState:
    """Where a run stands: what every checkpoint stores and ``resume`` restores."""

    epoch: int = 0                       # epochs completed
    step: int = 0                        # optimizer steps taken
    batch: int = 0                       # batches of the current epoch done (mid-epoch saves)
    history: list[dict] = field(default_factory=list)
    rng_aug: torch.Tensor | None = None  # the augmentation generator at ``batch``
    partial: dict | None = None          # the epoch's running sums at ``batch``

    @classmethod
    def from_checkpoint(cls, m: dict) -> RunState:
        batch = m.get("batch", 0)
        return cls(m["epoch"], m["step"], batch, m.get("history", []),
                   m["tensors"]["rng.aug"] if batch else None,
                   m.get("partial") if batch else None)


@dataclass
class Hooks:
    before_step: tuple = ()  # hook(model, step) before the forward pass (steps done so far)
    after_step: tuple = ()   # hook(model, step) after the optimizer step (steps done now)
    epoch: tuple = ()        # hook(row) after the epoch's checkpoint


@dataclass
class _Run:
    """What one call of :func:`train` works with; built once by :func:`_setup`."""

    cfg: TrainConfig
    split: DataSplit
    env: DistEnv
    device: torch.device
    raw: nn.Module           # the model itself (``net`` may wrap it: DDP, torch.compile)
    net: nn.Module
    loader: BatchLoader
    optimizer: torch.optim.Optimizer
    sched: Schedule
    ema: EMA | None
    dtype: torch.dtype | None
    scaler: torch.amp.GradScaler | None
    loss_fn: object          # (outputs, targets), as given; evaluation calls it so
    loss: object             # loss_caller(loss_fn)
    size: tuple[int, int]
    channels_last: bool
    total: int               # optimizer steps in all
    spe: int                 # steps per epoch
    ckpt: Path | None
    meta: dict
    log: object
    state: RunState = field(default_factory=RunState)
    train_time: float = 0.0
    images: int = 0

    @property
    def total_epochs(self) -> int:
        return math.ceil(self.total / self.spe)


def train(model: nn.Module, split: DataSplit, cfg: TrainConfig | None = None, loss_fn=None,
          metric_fn=None, step_hooks=(), progress: bool = True, log=None,
          meta: dict | None = None, epoch_hooks=(), before_step=()) -> TrainResult:
    """Train ``model`` on ``split.train``, evaluating on ``split.val`` after every epoch.

    ``loss_fn(outputs, targets)`` (default: cross-entropy with ``cfg.label_smoothing``; a
    tuple of outputs = main + ``cfg.aux_weight``-weighted auxiliary heads); a loss that
    accepts ``inputs=`` and/or ``model=`` also gets the augmented batch and the model in
    training (see :func:`loss_caller`; evaluation calls ``loss_fn(outputs, targets)``).
    ``metric_fn`` (sums of custom metrics, see :func:`evaluate`); ``before_step``:
    ``hook(model, step)`` before every forward pass (``step`` steps done so far);
    ``step_hooks``: ``hook(model, step)`` after every optimizer step; ``epoch_hooks``:
    ``hook(row)`` with each epoch's metrics row (after its checkpoint; raise to stop early).
    ``log(line)`` receives one line per epoch (rank 0 only); ``meta`` is stored in every
    checkpoint (e.g. the model's name and builder arguments)."""
    # --deterministic switches process-wide flags: the caller gets them back as they were
    flags = torch.are_deterministic_algorithms_enabled(), torch.backends.cudnn.benchmark
    try:
        return _train(model, split, cfg, loss_fn, metric_fn, step_hooks, progress, log, meta,
                      epoch_hooks, before_step)
    finally:
        torch.use_deterministic_algorithms(flags[0])
        torch.backends.cudnn.benchmark = flags[1]


def _train(model, split, cfg, loss_fn, metric_fn, step_hooks, progress, log, meta,
           epoch_hooks, before_step) -> TrainResult:
    run = _setup(model, split, cfg or TrainConfig(), loss_fn, meta, log)
    hooks = Hooks(tuple(before_step), tuple(step_hooks), tuple(epoch_hooks))
    if run.cfg.resume:
        _resume(run)
    _wrap(run)
    show = progress and run.env.rank == 0 and sys.stderr.isatty()
    while run.state.step < run.total:
        sums = _train_epoch(run, hooks, show)
        _end_epoch(run, _epoch_row(run, sums, metric_fn), hooks)
    history = run.state.history
    metrics = {k[4:]: v for k, v in history[-1].items() if k.startswith("val_")} \
        if history else {}
    return TrainResult(history=history, metrics=metrics, steps=run.state.step,
                       seconds=run.train_time,
                       images_per_s=run.images / max(run.train_time, 1e-9),
                       checkpoint=str(run.ckpt) if run.ckpt else None,
                       extra={"ema": run.ema.model if run.ema else None,
                              "input_size": run.size})


def _environment(cfg: TrainConfig, split: DataSplit) -> tuple[torch.device, DistEnv]:
    """The device and process group; checks and seeds before anything draws a number."""
    device = resolve_device(cfg.device)
    if device.type == "cuda":
        _check_one_gpu_per_process()
    env = DistEnv.from_env(device.type)
    if env.world > 1 and device.type == "cuda":
        device = resolve_device(cfg.device, env.local_rank)
        torch.cuda.set_device(device)
    if len(split.train) == 0:
        raise ValueError(f"no training images in {split.name} (a directory with only test "
                         "files needs --val-split N to carve a validation set out of them)")
    if cfg.deterministic:
        if device.type == "cuda":
            # cuBLAS is deterministic only with a fixed workspace (CUDA docs, "Results
            # reproducibility"); it is read when the first handle is made, after this point
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
            torch.backends.cudnn.benchmark = False
        torch.use_deterministic_algorithms(True)
    torch.manual_seed(cfg.seed + 7919 * env.rank)
    return device, env


def _setup(model, split, cfg, loss_fn, meta, log) -> _Run:
    device, env = _environment(cfg, split)
    dtype = amp_dtype(cfg, device, model)  # a refusal here leaves no run folder behind
    out_dir = Path(cfg.out_dir) if cfg.out_dir else None
    if out_dir is not None and env.rank == 0:
        out_dir.mkdir(parents=True, exist_ok=True)
    raw = model.to(device)
    size = tuple(cfg.input_size[-2:]) if cfg.input_size else tuple(split.train.x.shape[-2:])
    channels_last = cfg.channels_last
    if channels_last is None:
        probe = split.train.normalize(split.train.x[:2].to(device))
        channels_last = channels_last_works(raw, probe[..., :size[0], :size[1]])
    if channels_last:
        raw = raw.to(memory_format=torch.channels_last)
    loader = BatchLoader(split.train, cfg.batch_size, train=True, augment=cfg.augment,
                         seed=cfg.seed, rank=env.rank, world=env.world, device=device,
                         out_size=size, normalize=cfg.normalize)
    spe = len(loader)
    if spe == 0:
        raise ValueError(f"batch size {cfg.batch_size} is larger than the {len(split.train)} "
                         "training images")
    total = cfg.iters or max(1, math.ceil(cfg.epochs * spe))
    loss_fn = loss_fn or cross_entropy(cfg.label_smoothing, cfg.aux_weight)
    return _Run(cfg=cfg, split=split, env=env, device=device, raw=raw, net=raw, loader=loader,
                optimizer=build_optimizer(raw, cfg), sched=Schedule(cfg, spe, total),
                ema=EMA(raw, cfg.ema) if cfg.ema else None, dtype=dtype,
                scaler=torch.amp.GradScaler("cuda") if dtype == torch.float16 else None,
                loss_fn=loss_fn, loss=loss_caller(loss_fn), size=size,
                channels_last=channels_last, total=total, spe=spe,
                ckpt=out_dir / "last.safetensors" if out_dir else None, meta=meta or {},
                log=log if env.rank == 0 else None)


def _wrap(run: _Run) -> None:
    if run.env.world > 1:
        dev = run.device
        run.net = nn.parallel.DistributedDataParallel(
            run.raw, device_ids=[dev.index] if dev.type == "cuda" else None)
    if run.cfg.compile:
        run.net = torch.compile(run.net)


# --- checkpoints ---------------------------------------------------------------------------
def _resume(run: _Run) -> None:
    cfg = run.cfg
    path = Path(cfg.resume) if isinstance(cfg.resume, str) else run.ckpt
    if path is None:
        raise ValueError("--resume needs --out DIR (or a checkpoint path)")
    if not path.is_file():
        raise ValueError(f"nothing to resume: no checkpoint at {path}")
    m = load_checkpoint(path, run.raw, run.optimizer)
    old = m.get("config", {})
    for k in _FIXED_ON_RESUME:
        mine = cfg.to_dict()[k]
        if k in old and old[k] != mine:
            raise ValueError(f"{path}: cannot resume with {k}={mine!r}; the run used "
                             f"{old[k]!r}")
    run.state = RunState.from_checkpoint(m)
    run.sched.load_state_dict(m["schedule"])
    t = m["tensors"]
    if "rng.torch" in t and run.env.world == 1:
        torch.set_rng_state(t["rng.torch"])
    if "rng.cuda" in t and run.device.type == "cuda" and run.env.world == 1:
        torch.cuda.set_rng_state(t["rng.cuda"], run.device)
    if run.ema is not None and any(k.startswith("ema.") for k in t):
        run.ema.model.load_state_dict({k[4:]: v for k, v in t.items() if k.startswith("ema.")})
    if run.log:
        run.log(f"resumed from {path} at epoch {run.state.epoch}, step {run.state.step}")


def _save(run: _Run, batch_in_epoch: int, sums=None) -> None:
    """Checkpoint the run (rank 0; every rank waits for it)."""
    if run.ckpt is None or run.env.rank != 0:
        run.env.barrier()
        return
    tensors = {"rng.torch": torch.get_rng_state(), "rng.aug": run.loader.gen.get_state()}
    if run.device.type == "cuda":
        tensors["rng.cuda"] = torch.cuda.get_rng_state(run.device)
    if run.ema is not None:
        tensors.update({f"ema.{k}": v for k, v in run.ema.model.state_dict().items()})
    st, split = run.state, run.split
    info = {"epoch": st.epoch, "step": st.step, "batch": batch_in_epoch,
            "total_steps": run.total, "config": run.cfg.to_dict(), "history": st.history,
            "schedule": run.sched.state_dict(),
            "partial": {k: float(v) for k, v in (sums or {}).items()},
            "data": {"name": split.name, "num_classes": split.num_classes,
                     "in_chans": split.in_chans, "mean": split.train.mean,
                     "std": split.train.std, "classes": split.classes},
            **run.meta}
    save_checkpoint(run.ckpt, run.raw, run.optimizer, info, tensors)
    run.env.barrier()


def _check_finite(run: _Run, loss_sum: torch.Tensor) -> None:
    if not torch.isfinite(loss_sum).all():
        ckpt = run.ckpt
        where = f"the last good checkpoint {ckpt} is kept" if ckpt and ckpt.exists() else \
            "no checkpoint was written"
        raise TrainingDiverged(f"loss became {float(loss_sum.sum())} at step {run.state.step} "
                               f"(epoch {run.state.epoch + 1}); training stopped: {where}. "
                               "Lower the learning rate or add warm-up")


# --- one epoch -----------------------------------------------------------------------------
def _train_epoch(run: _Run, hooks: Hooks, show: bool) -> dict[str, torch.Tensor]:
    """One pass over the training set (from ``state.batch`` when resumed mid-epoch); returns
    the epoch's sums, all-reduced over the ranks."""
    st = run.state
    run.net.train()
    sums = {k: torch.tensor(st.partial.get(k, 0.0) if st.partial else 0.0,
                            dtype=torch.float64, device=run.device) for k in SUM_KEYS}
    st.partial = None
    bar = _progress_bar(run) if show else None
    t0 = time.perf_counter()
    b = st.batch
    for x, y in run.loader.epoch(st.epoch, st.batch, st.rng_aug):
        st.rng_aug = None
        out, loss, lr = _step(run, x, y, hooks)
        b += 1
        with torch.no_grad():
            for k, v in batch_sums(main_output(out).float(), y, loss.float()).items():
                if k in sums:
                    sums[k] += v
        run.images += len(y) * run.env.world
        if bar is not None:
            bar.update(len(y))
            bar.set_postfix(loss=f"{float(loss):.4f}", lr=f"{lr:.3g}", refresh=False)
        if st.step >= run.total:
            break
        if run.cfg.save_every and st.step % run.cfg.save_every == 0 and b < run.spe:
            _check_finite(run, sums["loss"])
            _save(run, b, sums)
    _check_finite(run, sums["loss"])
    run.train_time += time.perf_counter() - t0
    if bar is not None:
        bar.close()
    st.batch = 0
    if run.env.world > 1:
        import torch.distributed as dist

        for k in sorted(sums):
            dist.all_reduce(sums[k])
    return sums


def _progress_bar(run: _Run):
    from tqdm import tqdm

    n = run.loader.batch
    return tqdm(total=run.spe * n, initial=run.state.batch * n, unit="img", unit_scale=True,
                desc=f"epoch {run.state.epoch + 1}", leave=False, dynamic_ncols=True)


def _step(run: _Run, x: torch.Tensor, y: torch.Tensor, hooks: Hooks):
    """One optimizer step on the batch (x, y); returns (outputs, loss, learning rate)."""
    st, opt = run.state, run.optimizer
    lr = run.sched.lr(st.step)
    for g in opt.param_groups:
        g["lr"] = lr
    if run.channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    for hook in hooks.before_step:
        hook(run.raw, st.step)
    with torch.autocast(run.device.type, dtype=run.dtype or torch.float32,
                        enabled=run.dtype is not None):
        out = run.net(x)
        loss = run.loss(out, y, x, run.raw)
    opt.zero_grad(set_to_none=True)
    if run.scaler is not None:
        run.scaler.scale(loss).backward()
        run.scaler.unscale_(opt)
    else:
        loss.backward()
    if run.cfg.grad_clip:
        nn.utils.clip_grad_norm_(run.raw.parameters(), run.cfg.grad_clip)
    if run.device.type == "cpu" or st.step % 20 == 0:
        _check_finite(run, loss.detach())
    if run.scaler is not None:
        run.scaler.step(opt)
        run.scaler.update()
    else:
        opt.step()
    st.step += 1
    for hook in hooks.after_step:
        hook(run.raw, st.step)
    if run.ema is not None:
        run.ema.update(run.raw)
    return out, loss, lr


# --- evaluation, EMA and the log row -------------------------------------------------------
def _epoch_row(run: _Run, sums: dict[str, torch.Tensor], metric_fn) -> dict:
    """The epoch's metrics row: training sums, validation (and EMA) when due, speed."""
    st = run.state
    row = {"epoch": st.epoch + 1, "step": st.step, "lr": run.sched.lr(max(st.step - 1, 0)),
           **train_columns(sums)}
    last = st.epoch + 1 >= run.total_epochs or st.step >= run.total
    if (st.epoch + 1) % max(run.cfg.eval_every, 1) == 0 or last:
        row.update(_validate(run, metric_fn))
    row["images_per_s"] = round(run.images / max(run.train_time, 1e-9), 1)
    row["seconds"] = round(run.train_time, 3)
    return row


def _validate(run: _Run, metric_fn) -> dict:
    """``val_*`` (and ``val_ema_*``) metrics; the plateau schedule observes the error."""
    val = {}
    models = [("val", run.raw)] + ([("val_ema", run.ema.model)] if run.ema else [])
    for prefix, model in models if len(run.split.val) else []:
        m = evaluate(model, run.split.val, run.cfg.eval_batch_size, metric_fn,
                     loss_fn=run.loss_fn, input_size=run.size, device=run.device,
                     rank=run.env.rank, world=run.env.world, amp_dtype=run.dtype,
                     channels_last=run.channels_last)
        val.update({f"{prefix}_{k}": v for k, v in m.items() if k != "n"})
    run.sched.observe(100 - val["val_top1"] if "val_top1" in val
                      else val.get("val_loss", math.nan))
    return val


def _end_epoch(run: _Run, row: dict, hooks: Hooks) -> None:
    st = run.state
    st.history.append(row)
    st.epoch += 1
    if run.env.rank == 0 and run.ckpt is not None:
        _write_metrics(run.ckpt.parent, st.history)
    _save(run, 0)
    if run.log:
        run.log(_epoch_line(row, total_epochs=run.total_epochs))
    for hook in hooks.epoch:
        hook(row)


def _epoch_line(row: dict, total_epochs: int) -> str:
    parts = [f"epoch {row['epoch']}/{total_epochs}", f"step {row['step']}",
             f"lr {row['lr']:.4g}", f"train loss {row['train_loss']:.4f}"]
    if row.get("train_top1") is not None:
        parts.append(f"train top-1 {row['train_top1']:.2f}%")
    if row.get("train_pixel_acc") is not None:
        parts.append(f"train pixel acc {row['train_pixel_acc']:.2f}%")
    if "val_loss" in row:
        parts.append(f"val loss {row['val_loss']:.4f}")
    for k in ("val_top1", "val_top5", "val_pixel_acc", "val_ema_top1"):
        if k in row:
            parts.append(f"{k[4:].replace('top', 'top-')} {row[k]:.2f}%")
    parts.append(f"{row['images_per_s']:.0f} img/s")
    return "  ".join(parts)
