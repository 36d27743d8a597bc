"""Dense-prediction metrics: pixel accuracy and mean IoU (segmentation), PCK (keypoints).

The functions compute a metric on one batch; :class:`SegmentationMetrics` and
:class:`KeypointMetrics` are ``metric_fn``s for :func:`cnnlab.train.train` /
:func:`cnnlab.train.evaluate`: they return sums per batch, which the engine adds up over the
set, and ``finalize`` turns the totals into the metrics (in percent).
"""

from __future__ import annotations

import torch


def _labels(pred: torch.Tensor) -> torch.Tensor:
    """Class scores N×C×H×W → labels N×H×W (labels pass through)."""
    return pred.argmax(1) if pred.dim() == 4 else pred


def confusion_matrix(pred: torch.Tensor, target: torch.Tensor, num_classes: int,
                     ignore_index: int | None = 255) -> torch.Tensor:
    """C×C pixel counts, rows the true class, columns the predicted one; pixels labelled
    ``ignore_index`` (or outside 0…C-1) are left out."""
    pred, target = _labels(pred).reshape(-1), target.reshape(-1).long()
    keep = (target >= 0) & (target < num_classes)
    if ignore_index is not None:
        keep &= target != ignore_index
    idx = target[keep] * num_classes + pred[keep].long()
    return torch.bincount(idx, minlength=num_classes ** 2).view(num_classes, num_classes)


def pixel_accuracy(pred: torch.Tensor, target: torch.Tensor, ignore_index: int | None = 255
                   ) -> float:
    """Fraction of labelled pixels whose predicted class is right (Long et al. 2015, Sec. 5:
    Σ n_ii / Σ t_i)."""
    pred = _labels(pred)
    keep = torch.ones_like(target, dtype=torch.bool) if ignore_index is None \
        else target != ignore_index
    return float((pred[keep] == target[keep]).float().mean()) if keep.any() else float("nan")


def iou_per_class(conf: torch.Tensor) -> torch.Tensor:
    """n_ii / (t_i + Σ_j n_ji − n_ii) per class; NaN for a class absent from both the
    prediction and the target."""
    conf = conf.double()
    inter = conf.diag()
    union = conf.sum(0) + conf.sum(1) - inter
    return torch.where(union > 0, inter / union.clamp_min(1), torch.full_like(union, float("nan")))


def mean_iou(pred: torch.Tensor | None = None, target: torch.Tensor | None = None,
             num_classes: int | None = None, ignore_index: int | None = 255,
             conf: torch.Tensor | None = None) -> float:
    """Mean region intersection over union (Long et al. 2015, Sec. 5) over the classes that
    occur in the prediction or the target; from labels/scores or a confusion matrix."""
    if conf is None:
        if num_classes is None:
            num_classes = pred.shape[1] if pred.dim() == 4 else \
                int(max(pred.max(), target.max())) + 1
        conf = confusion_matrix(pred, target, num_classes, ignore_index)
    return float(iou_per_class(conf).nanmean())


class SegmentationMetrics:
    """``metric_fn`` for segmentation: sums the confusion matrix; ``finalize`` gives
    ``pixel_acc``, ``mean_acc`` and ``miou`` in percent (and the IoU of each class)."""

    def __init__(self, num_classes: int, ignore_index: int | None = 255):
        self.num_classes, self.ignore_index = num_classes, ignore_index

    def __call__(self, out: torch.Tensor, target: torch.Tensor) -> dict[str, torch.Tensor]:
        conf = confusion_matrix(out.detach(), target, self.num_classes, self.ignore_index)
        return {"seg_confusion": conf.reshape(-1).double()}

    def finalize(self, sums: dict[str, torch.Tensor]) -> dict:
        conf = sums["seg_confusion"].reshape(self.num_classes, self.num_classes).cpu()
        iou = iou_per_class(conf)
        total = conf.sum().double().clamp_min(1)
        acc = conf.diag().double() / conf.sum(1).double().clamp_min(1)
        seen = conf.sum(1) > 0
        return {"pixel_acc": 100 * float(conf.diag().sum() / total),
                "mean_acc": 100 * float(acc[seen].mean()) if seen.any() else float("nan"),
                "miou": 100 * float(iou.nanmean()),
                "iou": [round(100 * float(v), 2) for v in iou]}


def heatmap_argmax(heatmaps: torch.Tensor) -> torch.Tensor:
    """Peak (x, y) of every N×K×H×W heatmap, as N×K×2 float coordinates."""
    n, k, h, w = heatmaps.shape
    idx = heatmaps.reshape(n, k, -1).argmax(-1)
    return torch.stack([idx % w, idx // w], -1).float()


def pck_counts(pred: torch.Tensor, target: torch.Tensor, threshold: float,
               visible: float = 0.5) -> tuple[int, int]:
    """(correct, visible) keypoints: a keypoint is visible where its target heatmap peaks
    above ``visible``, correct where the predicted peak lies within ``threshold`` heatmap
    pixels of the target peak (PCK, Newell et al. 2016, Sec. 4)."""
    if isinstance(pred, (list, tuple)):
        pred = pred[-1]
    vis = target.flatten(2).amax(-1) > visible
    d = (heatmap_argmax(pred) - heatmap_argmax(target)).norm(dim=-1)
    return int(((d <= threshold) & vis).sum()), int(vis.sum())


def pck(pred: torch.Tensor, target: torch.Tensor, threshold: float, visible: float = 0.5
        ) -> float:
    """Percentage of correct keypoints within ``threshold`` heatmap pixels."""
    hit, n = pck_counts(pred, target, threshold, visible)
    return 100 * hit / n if n else float("nan")


class KeypointMetrics:
    """``metric_fn`` for heatmaps: ``pck`` in percent at ``threshold`` heatmap pixels (the
    normaliser, e.g. a fraction of the object size, as PCKh uses the head size)."""

    def __init__(self, threshold: float, visible: float = 0.5):
        self.threshold, self.visible = threshold, visible

    def __call__(self, out, target) -> dict[str, torch.Tensor]:
        hit, n = pck_counts(out.detach() if torch.is_tensor(out) else out, target,
                            self.threshold, self.visible)
        return {"pck_hits": torch.tensor(float(hit)), "pck_visible": torch.tensor(float(n))}

    def finalize(self, sums: dict[str, torch.Tensor]) -> dict:
        n = float(sums["pck_visible"])
        return {"pck": 100 * float(sums["pck_hits"]) / n if n else float("nan")}
