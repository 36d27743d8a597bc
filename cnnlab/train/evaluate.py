"""Evaluation: loss, top-1/top-5 (in percent), a confusion matrix, custom metric sums, and
test-time augmentation (flip, AlexNet's 10 crops, VGG's dense multi-scale and multi-crop
evaluation: :mod:`cnnlab.train.tta`)."""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from cnnlab.data.core import DataSplit, TensorData
from cnnlab.data.loader import BatchLoader
from cnnlab.train.tta import TTA, dense_form, tta_views


def main_output(out):
    """The final prediction among several outputs. A tuple is (main, *auxiliary heads), as
    GoogLeNet and Inception v3 return in training; a list is intermediate supervision in
    order, the last being the final prediction (the Stacked Hourglass's stacks)."""
    if isinstance(out, tuple):
        return out[0]
    return out[-1] if isinstance(out, list) else out


def _check_shapes(out: torch.Tensor, y: torch.Tensor) -> None:
    """A model whose output does not fit the targets is a user error, not a traceback."""
    if y.dim() >= 2 and out.dim() == y.dim() + 1 and out.shape[2:] != y.shape[1:]:
        got, want = "x".join(map(str, out.shape[2:])), "x".join(map(str, y.shape[1:]))
        raise ValueError(f"the model outputs {got} maps but the targets are {want} (a "
                         "valid-convolution U-Net needs --set padding=same, or a larger input)")
    if y.dim() == 1 and out.dim() != 2:
        raise ValueError(f"the model outputs shape {tuple(out.shape[1:])} per image but the "
                         "targets are class labels: use a classifier, or dense targets")


def cross_entropy(label_smoothing: float = 0.0, aux_weight: float | tuple = 0.3):
    """Cross-entropy; a tuple of outputs is main + auxiliary heads, the latter weighted by
    ``aux_weight`` (one weight, or one per head; GoogLeNet: 0.3); a list is intermediate
    supervision, every output weighted 1 (Newell et al. 2016, Sec. 3.4)."""
    def loss_fn(out, y):
        _check_shapes(main_output(out), y)
        if isinstance(out, list):
            return sum(F.cross_entropy(o, y, label_smoothing=label_smoothing) for o in out)
        if isinstance(out, tuple):
            ws = aux_weight if isinstance(aux_weight, (tuple, list)) else \
                [aux_weight] * (len(out) - 1)
            loss = F.cross_entropy(out[0], y, label_smoothing=label_smoothing)
            for w, o in zip(ws, out[1:]):
                loss = loss + w * F.cross_entropy(o, y, label_smoothing=label_smoothing)
            return loss
        return F.cross_entropy(out, y, label_smoothing=label_smoothing)
    return loss_fn


def batch_sums(out: torch.Tensor, y: torch.Tensor, loss: torch.Tensor | None
               ) -> dict[str, torch.Tensor]:
    """Sums over a batch (kept on the device: no synchronisation per batch)."""
    n = torch.tensor(float(len(y)), device=y.device, dtype=torch.float64)
    sums = {"n": n}
    if loss is not None:
        sums["loss"] = loss.detach().double() * len(y)
    if out.dim() == 2 and y.dim() == 1 and not y.dtype.is_floating_point:
        k = min(5, out.shape[1])
        top = out.detach().topk(k, dim=1).indices
        hit = top == y[:, None]
        sums["top1"] = hit[:, 0].sum().double()
        sums["top5"] = hit.any(1).sum().double()
    elif out.dim() == 4 and y.dim() == 3:
        valid = (y >= 0) & (y < out.shape[1])
        sums["pixels"] = valid.sum().double()
        sums["pixel_correct"] = ((out.detach().argmax(1) == y) & valid).sum().double()
    return sums


# every sum batch_sums can return (classification and dense prediction): the training loop
# keeps all of them so that every rank all-reduces the same keys
SUM_KEYS = ("n", "loss", "top1", "top5", "pixels", "pixel_correct")


def train_columns(sums: dict[str, torch.Tensor]) -> dict:
    """An epoch's training columns from its sums: the loss, and top-1 for classification or
    pixel accuracy for dense prediction."""
    m = finish(sums)
    if float(sums["pixels"]) > 0:
        return {"train_loss": m["loss"], "train_top1": None, "train_pixel_acc": m["pixel_acc"]}
    return {"train_loss": m["loss"], "train_top1": m.get("top1")}


def finish(sums: dict[str, torch.Tensor], metric_fn=None) -> dict:
    """Sums → metrics: loss and top-k as means (top-k in percent), custom sums as totals
    (through ``metric_fn.finalize(sums)`` when the metric function has one)."""
    out = {}
    n = float(sums.get("n", torch.tensor(0.0)))
    for k, v in sums.items():
        v = v.tolist() if v.numel() > 1 else float(v)
        if k in ("loss",):
            out[k] = v / max(n, 1)
        elif k in ("top1", "top5"):
            out[k] = 100.0 * v / max(n, 1)
        elif k == "pixel_correct":
            out["pixel_acc"] = 100.0 * v / max(float(sums["pixels"]), 1)
        elif k != "pixels":
            out[k] = v
    out["n"] = int(n)
    if metric_fn is not None and hasattr(metric_fn, "finalize"):
        out.update(metric_fn.finalize({k: v for k, v in sums.items()}))
    return out


@torch.no_grad()
def evaluate(model: nn.Module, data: TensorData | DataSplit, batch_size: int = 256,
             metric_fn=None, *, loss_fn=None, tta: str | None = None, confusion: bool = False,
             input_size: tuple[int, ...] | None = None, device=None, rank: int = 0,
             world: int = 1, amp_dtype: torch.dtype | None = None,
             channels_last: bool = False, tta_scales: tuple[float, ...] | None = None) -> dict:
    """Validation metrics of ``model`` on ``data`` (a DataSplit means its ``val``):
    ``{"loss", "top1", "top5", "n", ...}`` with top-k in percent; ``confusion=True`` adds
    ``"confusion"`` (rows: true class, columns: predicted). ``metric_fn(outputs, targets)``
    returns a dict of sums, added up over the set. ``tta_scales``: VGG's test scales
    (:func:`cnnlab.train.tta.q_scales`) for the multi-scale modes."""
    if isinstance(data, DataSplit):
        data = data.val
    if tta not in (None, *TTA):
        raise ValueError(f"unknown --tta {tta!r}; known: {', '.join(TTA)}")
    if len(data) == 0:
        raise ValueError("no validation images to evaluate on")
    param = next(iter(model.parameters()), None)
    device = torch.device(device) if device is not None else \
        (param.device if param is not None else torch.device("cpu"))
    size = tuple(input_size[-2:]) if input_size else tuple(data.x.shape[-2:])
    loader = BatchLoader(data, batch_size, train=False, device=device, rank=rank, world=world,
                         out_size=tuple(data.x.shape[-2:]))
    loss_fn = loss_fn or cross_entropy()
    scorer = dense_form(model) if tta in ("multiscale", "multicrop+dense") else None
    dense = scorer is not None  # whole images, not centre crops
    scorer = scorer if dense else model
    was_training = model.training
    model.eval()
    sums: dict[str, torch.Tensor] = {}
    conf = None
    try:
        for x, y in loader.epoch(0):
            views = tta_views(x, tta, size, dense, tta_scales)
            outs = []
            for v in views:
                if channels_last:
                    v = v.contiguous(memory_format=torch.channels_last)
                with torch.autocast(device.type, dtype=amp_dtype or torch.float32,
                                    enabled=amp_dtype is not None):
                    outs.append(main_output(scorer(v)).float())
            if len(outs) == 1:
                out = outs[0]
            else:  # average the views' probabilities; log of the mean keeps argmax and CE
                out = torch.stack([o.softmax(1) for o in outs]).mean(0).clamp_min(1e-12).log()
            loss = loss_fn(out, y) if tta is None else F.nll_loss(out, y)
            b = batch_sums(out, y, loss)
            if metric_fn is not None:
                b.update({k: torch.as_tensor(v, device=device).double()
                          for k, v in metric_fn(out, y).items()})
            for k, v in b.items():
                sums[k] = sums[k] + v if k in sums else v
            if confusion and out.dim() == 2:
                c = out.shape[1]
                cm = torch.bincount(y * c + out.argmax(1), minlength=c * c).view(c, c)
                conf = cm if conf is None else conf + cm
    finally:
        model.train(was_training)
    if world > 1:
        import torch.distributed as dist

        for k in sorted(sums):  # the same keys on every rank, in the same order
            dist.all_reduce(sums[k])
        if conf is not None:
            dist.all_reduce(conf)
    res = finish(sums, metric_fn)
    if conf is not None:
        res["confusion"] = conf.cpu().tolist()
    return res
