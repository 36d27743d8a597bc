"""MNIST canvases: a small dense-prediction task built from real digits, without downloads.

Real MNIST digits (28×28) are pasted at random places on a larger black canvas, strokes never
overlapping and no digit class twice on one canvas. Every canvas comes with

* a label map: the digit's class + 1 where its stroke is (a pixel at least ``STROKE``
  bright), 0 (background) elsewhere: 11 classes, for segmentation;
* keypoint heatmaps: one channel per digit class with a Gaussian (σ in heatmap pixels) at
  the digit's centre (its intensity centroid), at ``1/stride`` of the canvas resolution, as
  pose networks predict joints (Newell et al. 2016, Sec. 3.4).

* boxes (``mnist-canvas-boxes``): per digit the tight box around its stroke pixels, rows
  (x1, y1, x2, y2, class) in 0-1 canvas coordinates, padded to 10 rows with class −1, for
  detection (:mod:`cnnlab.detect`).

Generation is deterministic from the seed. Training and validation canvases use disjoint
digits: MNIST's training images and its test set if DIR holds both, otherwise a seeded
80 / 20 split of whatever DIR holds (the repository ships the 10,000 test images). Dataset
specs: ``mnist-canvas:DIR`` (label maps) and ``mnist-canvas-keypoints:DIR`` (heatmaps).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from cnnlab.data.core import DataSplit, TensorData, register_dataset

DIGIT = 28  # MNIST's side
CANVAS = 64
PER_CANVAS = (1, 3)  # digits per canvas, inclusive
STROKE = 128  # brightness (0-255) from which a pixel is labelled as the digit's
STRIDE = 4  # heatmap resolution: canvas / stride (the hourglass's output stride)
SIGMA = 1.0  # of the heatmap Gaussians, in heatmap pixels
TRAIN_CANVASES, VAL_CANVASES = 4000, 1000
SEG_CLASSES = ["background"] + [str(i) for i in range(10)]


@dataclass
class Canvases:
    images: torch.Tensor  # N×1×S×S uint8
    masks: torch.Tensor  # N×S×S int64: 0 background, 1 + digit class on the strokes
    heatmaps: torch.Tensor  # N×10×(S/stride)×(S/stride) float32
    centres: torch.Tensor  # N×10×2 (x, y) canvas pixels, NaN where the class is absent


def make_canvases(digits: np.ndarray | torch.Tensor, labels: np.ndarray | torch.Tensor, n: int,
                  size: int = CANVAS, per_canvas: tuple[int, int] = PER_CANVAS, seed: int = 0,
                  stride: int = STRIDE, sigma: float = SIGMA, stroke: int = STROKE,
                  tries: int = 50) -> Canvases:
    """``n`` canvases of ``size``×``size`` from ``digits`` (M×28×28 uint8) and ``labels``."""
    digits = np.asarray(digits, dtype=np.uint8).reshape(-1, DIGIT, DIGIT)
    labels = np.asarray(labels, dtype=np.int64).reshape(-1)
    lo, hi = per_canvas
    if not (isinstance(size, int) and size >= DIGIT):
        raise ValueError(f"canvas size must be at least {DIGIT} pixels, got {size!r}")
    if not 1 <= lo <= hi <= 10:
        raise ValueError(f"digits per canvas must satisfy 1 <= lo <= hi <= 10, got {per_canvas}")
    if size % stride:
        raise ValueError(f"canvas size {size} is not a multiple of the heatmap stride {stride}")
    by_class = [np.flatnonzero(labels == c) for c in range(10)]
    present = [c for c in range(10) if len(by_class[c])]
    if not present:
        raise ValueError("no digits to paste")
    rng = np.random.default_rng(seed)
    images = np.zeros((n, size, size), np.uint8)
    masks = np.zeros((n, size, size), np.int64)
    centres = np.full((n, 10, 2), np.nan, np.float32)
    ys, xs = np.mgrid[0:DIGIT, 0:DIGIT]
    for i in range(n):
        k = int(rng.integers(lo, hi + 1))
        for c in rng.permutation(present)[:k]:
            d = digits[by_class[c][rng.integers(len(by_class[c]))]]
            ink = d > 0
            for _ in range(tries):
                y, x = rng.integers(0, size - DIGIT + 1, 2)
                window = images[i, y:y + DIGIT, x:x + DIGIT]
                if not (window[ink] > 0).any():
                    break
            else:
                continue  # no room left on this canvas
            np.maximum(window, d, out=window)
            masks[i, y:y + DIGIT, x:x + DIGIT][d >= stroke] = c + 1
            w = d.astype(np.float64)
            centres[i, c] = (x + (xs * w).sum() / w.sum(), y + (ys * w).sum() / w.sum())
    return Canvases(torch.from_numpy(images)[:, None], torch.from_numpy(masks),
                    gaussian_heatmaps(torch.from_numpy(centres), size // stride, stride, sigma),
                    torch.from_numpy(centres))


def gaussian_heatmaps(centres: torch.Tensor, side: int, stride: int = STRIDE,
                      sigma: float = SIGMA) -> torch.Tensor:
    """N×K×side×side Gaussians (peak 1) at ``centres`` (N×K×2 canvas pixels; NaN: none).
    Heatmap pixel j covers canvas pixels [j·stride, (j+1)·stride)."""
    u = (centres + 0.5) / stride - 0.5
    g = torch.arange(side, dtype=torch.float32)
    dx = g.view(1, 1, 1, -1) - u[..., 0, None, None]
    dy = g.view(1, 1, -1, 1) - u[..., 1, None, None]
    h = torch.exp(-(dx ** 2 + dy ** 2) / (2 * sigma ** 2))
    return torch.nan_to_num(h, nan=0.0).float()


def canvas_boxes(masks: torch.Tensor) -> torch.Tensor:
    """N×10×5 box rows from label maps: the extent of each class's stroke pixels (a class is
    on a canvas at most once), (x1, y1, x2, y2) as fractions of the side, then the class;
    absent classes are rows of class −1."""
    n, h, w = masks.shape
    ys, xs = torch.arange(h), torch.arange(w)
    out = torch.full((n, 10, 5), -1.0)
    for c in range(10):
        on = masks == c + 1
        rows, cols = on.any(2), on.any(1)
        y1 = torch.where(rows, ys, h).min(1).values / h
        y2 = (torch.where(rows, ys, -1).max(1).values + 1) / h
        x1 = torch.where(cols, xs, w).min(1).values / w
        x2 = (torch.where(cols, xs, -1).max(1).values + 1) / w
        box = torch.stack([x1, y1, x2, y2, torch.full_like(x1, float(c))], 1)
        have = rows.any(1)
        out[have, c] = box[have]
    return out


def digit_pools(path: str | None, seed: int = 0):
    """(images, labels) of the digits for training canvases and for validation ones."""
    from cnnlab.data.core import load_dataset

    if not path:
        raise ValueError("--data mnist-canvas needs the MNIST directory: "
                         "--data mnist-canvas:DIR (e.g. data/mnist)")
    split = load_dataset(f"mnist:{path}")
    if len(split.train):
        return (split.train.x[:, 0], split.train.y), (split.val.x[:, 0], split.val.y)
    x, y = split.val.x[:, 0], split.val.y
    perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))
    cut = len(x) * 4 // 5
    return (x[perm[:cut]], y[perm[:cut]]), (x[perm[cut:]], y[perm[cut:]])


def _canvas_size(input_size) -> tuple[int, int]:
    if input_size is None:
        return 1, CANVAS
    c, h, w = (1, *input_size) if len(input_size) == 2 else tuple(input_size)
    if h != w or c not in (1, 3):
        raise ValueError(f"mnist-canvas makes square 1- or 3-channel canvases, not {input_size}")
    return c, h


def canvas_split(path: str | None, target: str = "mask", val_split: int | None = None,
                 seed: int = 0, input_size=None, train_size: int = TRAIN_CANVASES,
                 per_canvas: tuple[int, int] = PER_CANVAS, stride: int = STRIDE,
                 sigma: float = SIGMA) -> DataSplit:
    """Training and validation canvases (``val_split`` of them, default 1,000) as a
    DataSplit whose targets are label maps (``target="mask"``) or heatmaps."""
    if target not in ("mask", "heatmap", "boxes"):
        raise ValueError(f"target must be 'mask', 'heatmap' or 'boxes', got {target!r}")
    n_val = VAL_CANVASES if val_split is None else val_split
    if not isinstance(n_val, int) or n_val <= 0 or train_size <= 0:
        raise ValueError(f"canvas counts must be positive, got {train_size} and {n_val}")
    chans, size = _canvas_size(input_size)
    pools = digit_pools(path, seed)
    parts = []
    for (x, y), n, s in zip(pools, (train_size, n_val), (2 * seed, 2 * seed + 1)):
        cv = make_canvases(x.numpy(), y.numpy(), n, size, per_canvas, s, stride, sigma)
        img = cv.images.expand(-1, chans, -1, -1).contiguous()
        y = {"mask": cv.masks, "heatmap": cv.heatmaps}.get(target)
        parts.append(TensorData(img, canvas_boxes(cv.masks) if y is None else y))
    classes = SEG_CLASSES if target == "mask" else SEG_CLASSES[1:]
    name = {"mask": "mnist-canvas", "heatmap": "mnist-canvas-keypoints",
            "boxes": "mnist-canvas-boxes"}[target]
    return DataSplit(parts[0], parts[1], num_classes=len(classes), in_chans=chans, name=name,
                     classes=list(classes))


@register_dataset("mnist-canvas")
def load_mnist_canvas(path: str | None, val_split: int | None = None, seed: int = 0,
                      input_size=None, **opts) -> DataSplit:
    """MNIST digits on 64×64 canvases (``input_size`` sets the side), per-pixel labels."""
    return canvas_split(path, "mask", val_split, seed, input_size, **opts)


@register_dataset("mnist-canvas-keypoints")
def load_mnist_canvas_keypoints(path: str | None, val_split: int | None = None, seed: int = 0,
                                input_size=None, **opts) -> DataSplit:
    """The same canvases with one centre heatmap per digit class (stride 4)."""
    return canvas_split(path, "heatmap", val_split, seed, input_size, **opts)


@register_dataset("mnist-canvas-boxes")
def load_mnist_canvas_boxes(path: str | None, val_split: int | None = None, seed: int = 0,
                            input_size=None, **opts) -> DataSplit:
    """The same canvases with a box per digit (N×10×5 rows), for detection."""
    return canvas_split(path, "boxes", val_split, seed, input_size, **opts)
