"""Datasets as tensors: ``TensorData``, ``DataSplit``, the dataset registry and ``load_dataset``.

A small dataset is held whole as one ``N×C×H×W`` tensor (``uint8`` images stay ``uint8`` until
a batch is drawn), so training never touches per-sample Python. A dataset spec is
``NAME`` or ``NAME:PATH`` (``digits``, ``mnist:data/mnist``, ``cifar10:DIR``, ``folder:DIR``);
``register_dataset`` adds names. Nothing is ever downloaded.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import torch
import torch.nn.functional as F


@dataclass
class TensorData:
    """Images ``x`` (N×C×H×W, uint8 0-255 or float32) and targets ``y`` ((N,) int64 class
    indices, or dense targets such as N×H×W masks). ``mean``/``std`` (per channel, in the
    0-1 scale of uint8 images) normalise every batch drawn from it."""

    x: torch.Tensor
    y: torch.Tensor
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None

    def __post_init__(self):
        if self.x.dim() != 4:
            raise ValueError(f"images must be N×C×H×W, got shape {tuple(self.x.shape)}")
        if len(self.x) != len(self.y):
            raise ValueError(f"{len(self.x)} images but {len(self.y)} targets")

    def __len__(self) -> int:
        return len(self.x)

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.x.shape[1:])

    def subset(self, index) -> TensorData:
        index = torch.as_tensor(index, dtype=torch.long)
        return replace(self, x=self.x[index], y=self.y[index])

    def to(self, device) -> TensorData:
        return replace(self, x=self.x.to(device), y=self.y.to(device))

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """A batch drawn from ``x`` as float32 and normalised: uint8 → [0, 1] → (x-mean)/std."""
        x = x.float().div_(255) if x.dtype == torch.uint8 else x.float()
        if self.mean is not None:
            m = torch.tensor(self.mean, device=x.device).view(1, -1, 1, 1)
            s = torch.tensor(self.std, device=x.device).view(1, -1, 1, 1)
            x = (x - m) / s
        return x


@dataclass
class DataSplit:
    train: TensorData
    val: TensorData
    num_classes: int
    in_chans: int
    name: str
    classes: list[str] = field(default_factory=list)
    test: TensorData | None = None


_DATASETS: dict[str, Callable[..., DataSplit]] = {}


def register_dataset(name: str):
    """Register ``loader(path: str | None, **opts) -> DataSplit`` under ``name``.

    ``load_dataset`` applies ``val_split``/``seed`` and ``input_size`` itself unless the loader
    takes them as keyword arguments (then the loader handles them)."""
    def wrap(fn):
        if name in _DATASETS:
            raise ValueError(f"dataset {name!r} is registered twice")
        _DATASETS[name] = fn
        return fn
    return wrap


def list_datasets() -> list[str]:
    return sorted(_DATASETS)


def parse_spec(spec: str) -> tuple[str, str | None]:
    name, sep, path = spec.partition(":")
    name = name.strip().lower()
    names = list_datasets()
    if name not in _DATASETS:
        raise ValueError(f"unknown dataset {name!r} in --data {spec!r}; known: {', '.join(names)}"
                         " (as NAME or NAME:DIR)")
    return name, (path or None) if sep else None


def load_dataset(spec: str = "digits", val_split: int | None = None, seed: int = 0,
                 input_size: tuple[int, ...] | None = None, **opts) -> DataSplit:
    """Load ``spec`` (``"digits"``, ``"mnist:DIR"`` …) as a :class:`DataSplit`.

    ``val_split=N`` carves a fixed validation set of N images (a seeded permutation) from the
    training images, or from everything when the dataset has no training files; the held-out
    test set, if any, is then kept as ``split.test``. ``input_size=(C, H, W)`` fits every image
    to the model's input (see :func:`fit_images`). Normalisation statistics come from the
    training images."""
    name, path = parse_spec(spec)
    loader = _DATASETS[name]
    params = inspect.signature(loader).parameters
    own = {k: v for k, v in (("val_split", val_split), ("seed", seed), ("input_size", input_size))
           if k in params}
    split = loader(path, **own, **opts)
    if "val_split" not in params:
        split = carve_val(split, val_split, seed)
    if input_size is not None and "input_size" not in params:
        split = fit_split(split, input_size)
    return with_stats(split)


def carve_val(split: DataSplit, n: int | None, seed: int = 0) -> DataSplit:
    """Move a seeded random ``n`` images of the training set (or, if it is empty, of the
    validation set) into a fresh validation set."""
    if n is None:
        return split
    if not isinstance(n, int) or isinstance(n, bool) or n <= 0:
        raise ValueError(f"--val-split must be a positive number of images, got {n!r}")
    pool, test = (split.train, split.val) if len(split.train) else (split.val, split.test)
    if n >= len(pool):
        raise ValueError(f"--val-split {n} leaves no training images ({split.name} has "
                         f"{len(pool)} to split)")
    perm = torch.randperm(len(pool), generator=torch.Generator().manual_seed(seed))
    return replace(split, train=pool.subset(perm[n:].sort().values),
                   val=pool.subset(perm[:n].sort().values), test=test)


def channel_stats(x: torch.Tensor, chunk: int = 4096) -> tuple[tuple, tuple]:
    """Per-channel mean and std of images in the 0-1 scale (uint8 images are /255)."""
    scale = 255.0 if x.dtype == torch.uint8 else 1.0
    s = torch.zeros(x.shape[1], dtype=torch.float64)
    s2 = torch.zeros_like(s)
    for i in range(0, len(x), chunk):
        b = x[i:i + chunk].double() / scale
        s += b.sum((0, 2, 3))
        s2 += (b * b).sum((0, 2, 3))
    n = max(len(x), 1) * x.shape[2] * x.shape[3]
    mean = s / n
    std = (s2 / n - mean ** 2).clamp_min(1e-12).sqrt()
    return tuple(round(v, 6) for v in mean.tolist()), tuple(round(v, 6) for v in std.tolist())


def with_stats(split: DataSplit) -> DataSplit:
    if split.train.mean is not None:
        return split
    src = split.train if len(split.train) else split.val
    mean, std = channel_stats(src.x)
    parts = {k: replace(getattr(split, k), mean=mean, std=std) for k in ("train", "val", "test")
             if getattr(split, k) is not None}
    return replace(split, **parts)


def fit_images(x: torch.Tensor, size: tuple[int, ...]) -> torch.Tensor:
    """Fit N×C×H×W images to ``size`` = (C, H, W) or (H, W), keeping the dtype.

    Channels: grey → RGB by repetition, RGB → grey by ITU-R 601 luma. Space: images up to 25 %
    smaller are zero-padded at the centre (MNIST 28 → LeNet's 32, as LeCun padded it); much
    smaller ones are scaled up to 7/8 of the side and padded (digits 8 → 28 in 32, MNIST's
    framing); larger ones are scaled down (short side) and centre-cropped."""
    c, (h, w) = (size[0] if len(size) == 3 else x.shape[1]), size[-2:]
    dtype = x.dtype
    if c != x.shape[1]:
        if x.shape[1] == 1:
            x = x.expand(-1, c, -1, -1)
        elif c == 1 and x.shape[1] == 3:
            luma = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
            x = (x.float() * luma).sum(1, keepdim=True).round().to(dtype) \
                if dtype == torch.uint8 else (x * luma).sum(1, keepdim=True)
        else:
            raise ValueError(f"cannot turn {x.shape[1]}-channel images into {c} channels")
    H, W = x.shape[-2:]
    if (H, W) == (h, w):
        return x.contiguous()
    if H <= h and W <= w and 4 * h <= 5 * H and 4 * w <= 5 * W:
        t, lft = (h - H) // 2, (w - W) // 2
        return F.pad(x, (lft, w - W - lft, t, h - H - t)).contiguous()
    if H <= h and W <= w:  # much smaller: upscale to 7/8 of the frame, then pad
        s = 7 / 8 * min(h / H, w / W)
        inner = (max(1, round(H * s)), max(1, round(W * s)))
        return fit_images(_resize(x, inner), (c, h, w))
    s = max(h / H, w / W)  # larger: short side to the target, centre crop
    x = _resize(x, (max(h, round(H * s)), max(w, round(W * s))))
    t, lft = (x.shape[-2] - h) // 2, (x.shape[-1] - w) // 2
    return x[..., t:t + h, lft:lft + w].contiguous()


def _resize(x: torch.Tensor, size: tuple[int, int], chunk: int = 2048) -> torch.Tensor:
    out = []
    for i in range(0, len(x), chunk):
        b = F.interpolate(x[i:i + chunk].float(), size=size, mode="bilinear",
                          align_corners=False, antialias=True)
        out.append(b.round().clamp_(0, 255).to(torch.uint8) if x.dtype == torch.uint8 else b)
    return torch.cat(out) if out else x.new_zeros((0, x.shape[1], *size))


def complete_size(size: tuple[int, ...] | None, channels: int,
                  default: tuple[int, ...]) -> tuple[int, ...]:
    """A model's full input size from a partial one: ``default`` when ``size`` is None, one
    side → ``(channels, s, s)``, H×W → ``(channels, H, W)``, anything longer as given."""
    if size is None:
        return tuple(default)
    if len(size) == 1:
        return (channels, size[0], size[0])
    if len(size) == 2:
        return (channels, *size)
    return tuple(size)


def fit_split(split: DataSplit, input_size: tuple[int, ...]) -> DataSplit:
    """Every part of ``split`` fitted to ``input_size`` (dense N×H×W targets too, nearest)."""
    def fit(d: TensorData | None):
        if d is None:
            return None
        y = d.y
        if y.dim() == 3 and tuple(y.shape[-2:]) == tuple(d.x.shape[-2:]):
            y = fit_images(y[:, None], input_size[-2:])[:, 0]
        return replace(d, x=fit_images(d.x, input_size), y=y)

    c = input_size[0] if len(input_size) == 3 else split.in_chans
    out = replace(split, train=fit(split.train), val=fit(split.val), test=fit(split.test),
                  in_chans=c)
    if split.train.mean is not None and len(split.train.mean) != c:
        out = replace(out, **{k: replace(getattr(out, k), mean=None, std=None)
                              for k in ("train", "val", "test") if getattr(out, k) is not None})
        out = with_stats(out)
    return out


@register_dataset("digits")
def load_digits(path: str | None = None, val_split: int | None = None, seed: int = 0
                ) -> DataSplit:
    """scikit-learn's 1,797 real 8×8 handwritten digits (UCI), shipped with scikit-learn.
    Pixel values 0-16 become 0-255. Without ``val_split`` a seeded 360 (20 %) are held out."""
    if path:
        raise ValueError("--data digits takes no path (the images ship with scikit-learn)")
    try:
        from sklearn.datasets import load_digits as sk_digits
    except ImportError:
        raise ValueError("--data digits needs scikit-learn: pip install -e '.[data]'") from None
    d = sk_digits()
    x = torch.from_numpy(d.images).float().mul(255 / 16).round().to(torch.uint8)[:, None]
    y = torch.from_numpy(d.target).long()
    full = TensorData(x, y)
    empty = full.subset(torch.zeros(0, dtype=torch.long))
    split = DataSplit(train=empty, val=full, num_classes=10, in_chans=1, name="digits",
                      classes=[str(i) for i in range(10)])
    return carve_val(split, 360 if val_split is None else val_split, seed)
