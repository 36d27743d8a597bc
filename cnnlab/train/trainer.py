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
from cnnlab.train.evaluate import batch_sums, cross_entropy, evaluate, finish, main_output
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


def amp_dtype(cfg: TrainConfig, device: torch.device) -> torch.dtype | None:
    if cfg.amp == "off" or (cfg.amp == "auto" and device.type != "cuda"):
        return None
    if cfg.amp == "fp16" or (cfg.amp == "auto" and not torch.cuda.is_bf16_supported()):
        if device.type != "cuda":
            raise ValueError("fp16 mixed precision needs a CUDA device (use --amp bf16 or off)")
        return torch.float16
    return torch.bfloat16


def _write_metrics(out: Path, history: list[dict]) -> None:
    text = "".join(json.dumps(row) + "\n" for row in history)
    write_bytes_atomic(out / "metrics.jsonl", text.encode())


def train(model: nn.Module, split: DataSplit, cfg: TrainConfig | None = None, loss_fn=None,
          metric_fn=None, step_hooks=(), progress: bool = True, log=None,
          meta: dict | None = None, epoch_hooks=()) -> TrainResult:
    """Train ``model`` on ``split.train``, evaluating on ``split.val`` after every epoch.

    ``loss_fn(outputs, targets)`` (default: cross-entropy with ``cfg.label_smoothing``; a
    tuple of outputs = main + ``cfg.aux_weight``-weighted auxiliary heads), ``metric_fn``
    (sums of custom metrics, see :func:`evaluate`), ``step_hooks``: ``hook(model, step)``
    after every optimizer step; ``epoch_hooks``: ``hook(row)`` with each epoch's metrics row
    (after its checkpoint; raise to stop early). ``log(line)`` receives one line per epoch
    (rank 0 only); ``meta`` is stored in every checkpoint (e.g. the model's name and builder
    arguments)."""
    cfg = cfg or TrainConfig()
    device = resolve_device(cfg.device)
    env = DistEnv.from_env(device.type)
    if env.world > 1 and device.type == "cuda":
        device = resolve_device(cfg.device, env.local_rank)
        torch.cuda.set_device(device)
    if len(split.train) == 0:
        raise ValueError(f"no training images in {split.name} (a directory with only test "
                         "files needs --val-split N to carve a validation set out of them)")
    if cfg.deterministic:
        torch.use_deterministic_algorithms(True)
    torch.manual_seed(cfg.seed + 7919 * env.rank)
    log = log if env.rank == 0 else None
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
    optimizer = build_optimizer(raw, cfg)
    sched = Schedule(cfg, spe, total)
    ema = EMA(raw, cfg.ema) if cfg.ema else None
    dtype = amp_dtype(cfg, device)
    scaler = torch.amp.GradScaler("cuda") if dtype == torch.float16 else None
    loss_fn = loss_fn or cross_entropy(cfg.label_smoothing, cfg.aux_weight)

    epoch, step, start_batch, history = 0, 0, 0, []
    rng_aug, partial = None, None
    ckpt = out_dir / "last.safetensors" if out_dir else None
    if cfg.resume:
        path = Path(cfg.resume) if isinstance(cfg.resume, str) else ckpt
        if path is None:
            raise ValueError("--resume needs --out DIR (or a checkpoint path)")
        if not path.is_file():
            raise ValueError(f"nothing to resume: no checkpoint at {path}")
        m = load_checkpoint(path, raw, optimizer)
        old = m.get("config", {})
        for k in _FIXED_ON_RESUME:
            mine = cfg.to_dict()[k]
            if k in old and old[k] != mine:
                raise ValueError(f"{path}: cannot resume with {k}={mine!r}; the run used "
                                 f"{old[k]!r}")
        t = m["tensors"]
        epoch, step, start_batch = m["epoch"], m["step"], m.get("batch", 0)
        history = m.get("history", [])
        sched.load_state_dict(m["schedule"])
        if "rng.torch" in t and env.world == 1:
            torch.set_rng_state(t["rng.torch"])
        if "rng.cuda" in t and device.type == "cuda" and env.world == 1:
            torch.cuda.set_rng_state(t["rng.cuda"], device)
        if start_batch:
            rng_aug = t["rng.aug"]
            partial = m.get("partial")
        if ema is not None and any(k.startswith("ema.") for k in t):
            ema.model.load_state_dict({k[4:]: v for k, v in t.items() if k.startswith("ema.")})
        if log:
            log(f"resumed from {path} at epoch {epoch}, step {step}")

    net = raw
    if env.world > 1:
        net = nn.parallel.DistributedDataParallel(
            raw, device_ids=[device.index] if device.type == "cuda" else None)
    if cfg.compile:
        net = torch.compile(net)

    def save(batch_in_epoch: int, acc=None):
        if ckpt is None or env.rank != 0:
            env.barrier()
            return
        tensors = {"rng.torch": torch.get_rng_state(), "rng.aug": loader.gen.get_state()}
        if device.type == "cuda":
            tensors["rng.cuda"] = torch.cuda.get_rng_state(device)
        if ema is not None:
            tensors.update({f"ema.{k}": v for k, v in ema.model.state_dict().items()})
        info = {"epoch": epoch, "step": step, "batch": batch_in_epoch, "total_steps": total,
                "config": cfg.to_dict(), "history": history, "schedule": sched.state_dict(),
                "partial": {k: float(v) for k, v in (acc or {}).items()},
                "data": {"name": split.name, "num_classes": split.num_classes,
                         "in_chans": split.in_chans, "mean": split.train.mean,
                         "std": split.train.std, "classes": split.classes},
                **(meta or {})}
        save_checkpoint(ckpt, raw, optimizer, info, tensors)
        env.barrier()

    def check_finite(loss_sum):
        if not torch.isfinite(loss_sum).all():
            where = f"the last good checkpoint {ckpt} is kept" if ckpt and ckpt.exists() else \
                "no checkpoint was written"
            raise TrainingDiverged(f"loss became {float(loss_sum.sum())} at step {step} (epoch "
                                   f"{epoch + 1}); training stopped: {where}. Lower the "
                                   "learning rate or add warm-up")

    train_time, images = 0.0, 0
    show = progress and env.rank == 0 and sys.stderr.isatty()
    while step < total:
        net.train()
        acc = {k: torch.tensor(partial.get(k, 0.0) if partial else 0.0, dtype=torch.float64,
                               device=device)
               for k in ("n", "loss", "top1", "top5", "pixels", "pixel_correct")}
        partial = None
        bar = None
        if show:
            from tqdm import tqdm

            bar = tqdm(total=spe * loader.batch, initial=start_batch * loader.batch, unit="img",
                       unit_scale=True, desc=f"epoch {epoch + 1}", leave=False, dynamic_ncols=True)
        t0 = time.perf_counter()
        b = start_batch
        for x, y in loader.epoch(epoch, start_batch, rng_aug):
            rng_aug = None
            lr = sched.lr(step)
            for g in optimizer.param_groups:
                g["lr"] = lr
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            with torch.autocast(device.type, dtype=dtype or torch.float32,
                                enabled=dtype is not None):
                out = net(x)
                loss = loss_fn(out, y)
            optimizer.zero_grad(set_to_none=True)
            if scaler is not None:
                scaler.scale(loss).backward()
                scaler.unscale_(optimizer)
            else:
                loss.backward()
            if cfg.grad_clip:
                nn.utils.clip_grad_norm_(raw.parameters(), cfg.grad_clip)
            if device.type == "cpu" or step % 20 == 0:
                check_finite(loss.detach())
            if scaler is not None:
                scaler.step(optimizer)
                scaler.update()
            else:
                optimizer.step()
            step += 1
            b += 1
            for hook in step_hooks:
                hook(raw, step)
            if ema is not None:
                ema.update(raw)
            with torch.no_grad():
                for k, v in batch_sums(main_output(out).float(), y, loss.float()).items():
                    if k in acc:
                        acc[k] += v
            images += len(y) * env.world
            if bar is not None:
                bar.update(len(y))
                bar.set_postfix(loss=f"{float(loss):.4f}", lr=f"{lr:.3g}", refresh=False)
            if step >= total:
                break
            if cfg.save_every and step % cfg.save_every == 0 and b < spe:
                check_finite(acc["loss"])
                save(b, acc)
        check_finite(acc["loss"])
        train_time += time.perf_counter() - t0
        if bar is not None:
            bar.close()
        start_batch = 0
        if env.world > 1:
            import torch.distributed as dist

            for k in sorted(acc):
                dist.all_reduce(acc[k])
        tr = finish(acc)  # fixed keys (ranks must all-reduce the same): drop those unused
        dense = float(acc["pixels"]) > 0
        row = {"epoch": epoch + 1, "step": step, "lr": sched.lr(max(step - 1, 0)),
               "train_loss": tr["loss"], "train_top1": None if dense else tr.get("top1")}
        if dense:
            row["train_pixel_acc"] = tr.get("pixel_acc")
        last = epoch + 1 >= math.ceil(total / spe) or step >= total
        if (epoch + 1) % max(cfg.eval_every, 1) == 0 or last:
            val = evaluate(raw, split.val, cfg.eval_batch_size, metric_fn, loss_fn=loss_fn,
                           input_size=size, device=device, rank=env.rank, world=env.world,
                           amp_dtype=dtype, channels_last=channels_last) \
                if len(split.val) else {}
            row.update({f"val_{k}": v for k, v in val.items() if k != "n"})
            if ema is not None and len(split.val):
                ev = evaluate(ema.model, split.val, cfg.eval_batch_size, metric_fn,
                              loss_fn=loss_fn, input_size=size, device=device, rank=env.rank,
                              world=env.world, amp_dtype=dtype, channels_last=channels_last)
                row.update({f"val_ema_{k}": v for k, v in ev.items() if k != "n"})
            sched.observe(100 - val["top1"] if "top1" in val else val.get("loss", math.nan))
        row["images_per_s"] = round(images / max(train_time, 1e-9), 1)
        row["seconds"] = round(train_time, 3)
        history.append(row)
        epoch += 1
        if env.rank == 0 and out_dir is not None:
            _write_metrics(out_dir, history)
        save(0)
        if log:
            log(_epoch_line(row, total_epochs=math.ceil(total / spe)))
        for hook in epoch_hooks:
            hook(row)
    metrics = {k[4:]: v for k, v in history[-1].items() if k.startswith("val_")} \
        if history else {}
    return TrainResult(history=history, metrics=metrics, steps=step, seconds=train_time,
                       images_per_s=images / max(train_time, 1e-9),
                       checkpoint=str(ckpt) if ckpt else None,
                       extra={"ema": ema.model if ema else None, "input_size": size})


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
