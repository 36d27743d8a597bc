"""Augmentation on whole batches: one tensor op per transform for the entire batch, random
parameters drawn per image from a seeded generator — no per-sample Python.

A spec is a comma-separated list, applied in this order whatever order it is written in:

- ``scale:LO-HI``  per-image zoom factor uniform in [LO, HI] with a random centre (VGG's scale
  jitter S ∈ [256, 512] on 224 crops is ``scale:1.14-2.29``)
- ``crop:P``       zero-pad P pixels, then a random crop of the model's input (CIFAR: ``crop:4``);
  images stored larger than the input are randomly cropped to it in any case (AlexNet's 224
  of 256)
- ``flip``         horizontal flip with probability 1/2
- ``pca:S``        AlexNet's PCA colour: add Σ αᵢλᵢpᵢ, αᵢ ~ N(0, S) (S = 0.1 in the paper)
- ``rgbshift:A``   a random shift of each colour channel, uniform in [-A, A] (0-1 scale)
- ``cutout:L``     zero an L×L square (after normalisation, i.e. to the mean) at a random centre

Dense targets (N×H×W label maps the size of the images) move with the pixels.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

ORDER = ("scale", "crop", "flip", "pca", "rgbshift", "cutout")
IGNORE = 255  # label of pixels that came from outside the image (VOC's "void")
_ARGS = {"scale": "LO-HI", "crop": "P", "flip": None, "pca": "S", "rgbshift": "A", "cutout": "L"}


def parse_augment(spec: str | None) -> dict[str, object]:
    """``"crop:4,flip"`` → ``{"crop": 4, "flip": True}`` (one-line ValueError if malformed)."""
    ops: dict[str, object] = {}
    for item in (spec or "").replace(" ", "").split(","):
        if not item or item == "none":
            continue
        name, _, arg = item.partition(":")
        if name not in _ARGS:
            raise ValueError(f"unknown augmentation {name!r} in {spec!r}; known: "
                             + ", ".join(f"{k}:{v}" if v else k for k, v in _ARGS.items()))
        try:
            if _ARGS[name] is None:
                if arg:
                    raise ValueError
                val: object = True
            elif name == "scale":
                lo, hi = (float(v) for v in arg.split("-"))
                if not 0 < lo <= hi:
                    raise ValueError
                val = (lo, hi)
            elif name in ("crop", "cutout"):
                val = int(arg)
                if val < 0:
                    raise ValueError
            else:
                val = float(arg)
                if val < 0:
                    raise ValueError
        except ValueError:
            form = f"{name}:{_ARGS[name]}" if _ARGS[name] else name
            raise ValueError(f"malformed augmentation {item!r}: expected {form}") from None
        ops[name] = val
    return ops


def pca_basis(x: torch.Tensor, max_images: int = 2000) -> tuple[torch.Tensor, torch.Tensor]:
    """Eigenvalues and eigenvectors of the RGB covariance of the training pixels (0-1 scale),
    AlexNet Sec. 4.1."""
    if x.shape[1] != 3:
        raise ValueError("pca colour augmentation needs RGB images")
    sample = x[torch.linspace(0, len(x) - 1, min(len(x), max_images)).long()]
    px = (sample.double() / (255 if x.dtype == torch.uint8 else 1)).permute(1, 0, 2, 3)
    px = px.reshape(3, -1)
    cov = torch.cov(px)
    val, vec = torch.linalg.eigh(cov)
    return val.float().clamp_min(0), vec.float()


class BatchAugment:
    """Applies a parsed spec to float batches in the 0-1 scale (``pre``), and the transforms
    that belong after normalisation (``post``: cutout)."""

    def __init__(self, spec: str | dict | None, out_size: tuple[int, int] | None = None,
                 pca: tuple[torch.Tensor, torch.Tensor] | None = None):
        self.ops = parse_augment(spec) if not isinstance(spec, dict) else dict(spec)
        self.out_size = out_size
        self.pca = pca

    def __bool__(self):
        return bool(self.ops)

    def pre(self, x: torch.Tensor, g: torch.Generator, y: torch.Tensor | None = None):
        """Augment ``x``; with dense targets ``y`` (N×H×W label maps) the geometric transforms
        move the labels with the pixels (nearest), and pixels from outside the image get the
        label :data:`IGNORE`. Returns ``x``, or ``(x, y)`` when ``y`` is given."""
        ops = self.ops
        lab = None if y is None else (y.float() + 1)[:, None]  # 0 = outside the image
        if "scale" in ops:
            x, lab = random_scale(x, *ops["scale"], g, lab)
        h, w = self.out_size or x.shape[-2:]
        if "crop" in ops or (x.shape[-2], x.shape[-1]) != (h, w):
            c = x.shape[1]
            both = x if lab is None else torch.cat([x, lab], 1)
            both = random_crop(both, int(ops.get("crop", 0)), (h, w), g)
            x, lab = (both, None) if lab is None else (both[:, :c], both[:, c:])
        if "flip" in ops:
            m = _rand(len(x), g, x.device) < 0.5
            x = _flip_where(x, m)
            lab = None if lab is None else _flip_where(lab, m)
        if "pca" in ops and ops["pca"]:
            val, vec = self.pca
            x = pca_colour(x, val.to(x.device), vec.to(x.device), ops["pca"], g)
        if "rgbshift" in ops and ops["rgbshift"]:
            x = rgb_shift(x, ops["rgbshift"], g)
        if y is None:
            return x
        lab = lab[:, 0].round().long() - 1
        return x, lab.masked_fill(lab < 0, IGNORE).to(y.dtype)

    def post(self, x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        if self.ops.get("cutout"):
            x = cutout(x, int(self.ops["cutout"]), g)
        return x


def _rand(n, g, device, *shape):
    return torch.rand((n, *shape), generator=g, device=device)


def random_crop(x: torch.Tensor, pad: int, size: tuple[int, int], g: torch.Generator):
    """Zero-pad by ``pad`` and take one random ``size`` window per image (a gather, no loop)."""
    if pad:
        x = F.pad(x, (pad, pad, pad, pad))
    n, c, H, W = x.shape
    h, w = size
    if h > H or w > W:
        raise ValueError(f"cannot crop {h}x{w} from {H}x{W} images")
    oy = (_rand(n, g, x.device) * (H - h + 1)).long().clamp_max(H - h)
    ox = (_rand(n, g, x.device) * (W - w + 1)).long().clamp_max(W - w)
    rows = (oy[:, None] + torch.arange(h, device=x.device))[:, None, :, None]
    cols = (ox[:, None] + torch.arange(w, device=x.device))[:, None, None, :]
    nn_ = torch.arange(n, device=x.device)[:, None, None, None]
    cc = torch.arange(c, device=x.device)[None, :, None, None]
    return x[nn_, cc, rows, cols]


def center_crop(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    H, W = x.shape[-2:]
    h, w = size
    t, lft = (H - h) // 2, (W - w) // 2
    return x[..., t:t + h, lft:lft + w]


def random_flip(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    return _flip_where(x, _rand(len(x), g, x.device) < 0.5)


def _flip_where(x: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
    return torch.where(m[:, None, None, None], x.flip(-1), x)


def random_scale(x: torch.Tensor, lo: float, hi: float, g: torch.Generator,
                 labels: torch.Tensor | None = None):
    """Zoom each image by s ~ U[lo, hi] about a random centre that keeps the view inside the
    image (s < 1 shrinks it onto a zero border): one affine_grid + grid_sample per batch.
    ``labels`` (N×1×H×W, float) follow with nearest sampling; returns ``(x, labels)``."""
    n = len(x)
    s = lo + (hi - lo) * _rand(n, g, x.device)
    inv = 1 / s
    room = (1 - inv).clamp_min(0)
    t = (_rand(n, g, x.device, 2) * 2 - 1) * room[:, None]
    theta = torch.zeros(n, 2, 3, device=x.device, dtype=x.dtype)
    theta[:, 0, 0] = inv
    theta[:, 1, 1] = inv
    theta[:, :, 2] = t
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    x = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    if labels is not None:
        labels = F.grid_sample(labels, grid, mode="nearest", padding_mode="zeros",
                               align_corners=False)
    return x, labels


def pca_colour(x, eigval, eigvec, std, g):
    alpha = torch.randn(len(x), 3, generator=g, device=x.device) * std
    delta = (alpha * eigval) @ eigvec.T  # Σ_i α_i λ_i p_i, one RGB offset per image
    return x + delta[:, :, None, None]


def rgb_shift(x, amount, g):
    return x + (_rand(len(x), g, x.device, x.shape[1]) * 2 - 1)[:, :, None, None] * amount


def cutout(x: torch.Tensor, size: int, g: torch.Generator) -> torch.Tensor:
    n, _, H, W = x.shape
    cy = (_rand(n, g, x.device) * H).long()
    cx = (_rand(n, g, x.device) * W).long()
    ys = torch.arange(H, device=x.device)
    xs = torch.arange(W, device=x.device)
    my = (ys[None] >= (cy - size // 2)[:, None]) & (ys[None] < (cy - size // 2 + size)[:, None])
    mx = (xs[None] >= (cx - size // 2)[:, None]) & (xs[None] < (cx - size // 2 + size)[:, None])
    mask = my[:, :, None] & mx[:, None, :]
    return x.masked_fill(mask[:, None], 0.0)
