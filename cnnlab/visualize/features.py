"""Probing what the last hidden layer knows (Krizhevsky et al. 2012, Sec. 6.1, Fig. 4;
deck 002:125-138): images whose penultimate feature vectors are close in Euclidean distance
look alike to the network. Also the deck's note that comparing compressed features is
cheaper (there an auto-encoder; here PCA) and barely changes the neighbours, and a 2-d map
of the features coloured by class (PCA or t-SNE)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

from cnnlab.data import TensorData
from cnnlab.io import atomic_path
from cnnlab.visualize.common import model_label, penultimate, pyplot, save_png, suptitle

_MEMORY: dict[str, torch.Tensor] = {}
_MEMORY_SLOTS = 8


def _bytes(t: torch.Tensor) -> bytes:
    return t.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes()


def _fingerprint(model: nn.Module, data: TensorData) -> str:
    h = hashlib.sha256(type(model).__name__.encode())
    for k, v in model.state_dict().items():
        h.update(k.encode())
        if isinstance(v, torch.Tensor):
            h.update(_bytes(v))
    h.update(_bytes(data.x))
    h.update(repr((data.mean, data.std, tuple(data.x.shape))).encode())
    return h.hexdigest()[:24]


@torch.no_grad()
def extract_features(model: nn.Module, data: TensorData, batch_size: int = 500,
                     cache_dir: str | os.PathLike | None = None) -> torch.Tensor:
    """Penultimate features (N×D float32) of every image in ``data``, normalised as the
    model was trained (``data.mean``/``std``), in eval mode and in batches.

    Results are cached by a hash of the weights and the images: in memory for this process,
    and as ``.npy`` files under ``cache_dir`` when given (written atomically, read without
    pickle)."""
    key = _fingerprint(model, data)
    if key in _MEMORY:
        return _MEMORY[key]
    file = Path(cache_dir) / f"features-{key}.npy" if cache_dir else None
    if file is not None and file.is_file():
        feats = torch.from_numpy(np.load(file, allow_pickle=False))
    else:
        was_training = model.training
        model.eval()
        device = next(model.parameters(), torch.empty(0)).device
        try:
            feats = torch.cat([penultimate(model, data.normalize(data.x[i:i + batch_size]
                                                                 .to(device))).float().cpu()
                               for i in range(0, len(data), batch_size)])
        finally:
            model.train(was_training)
        if file is not None:
            file.parent.mkdir(parents=True, exist_ok=True)
            with atomic_path(file) as tmp, open(tmp, "wb") as f:
                np.save(f, feats.numpy(), allow_pickle=False)
    if len(_MEMORY) >= _MEMORY_SLOTS:
        _MEMORY.pop(next(iter(_MEMORY)))
    _MEMORY[key] = feats
    return feats


def nearest_neighbours(query: torch.Tensor, base: torch.Tensor, k: int = 6,
                       metric: str = "euclidean", chunk: int = 1024
                       ) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices (N×k) into ``base`` of each query row's ``k`` nearest rows, nearest first,
    and their distances: Euclidean (the paper's) or cosine distance (1 − cos)."""
    if metric not in ("euclidean", "cosine"):
        raise ValueError(f"unknown metric {metric!r}: euclidean or cosine")
    if not 1 <= k <= len(base):
        raise ValueError(f"k must be between 1 and {len(base)} (the set's size), got {k}")
    query, base = query.float(), base.float()
    if metric == "cosine":
        query = torch.nn.functional.normalize(query, dim=1)
        base = torch.nn.functional.normalize(base, dim=1)
    idx, dist = [], []
    for i in range(0, len(query), chunk):
        q = query[i:i + chunk]
        d = torch.cdist(q, base) if metric == "euclidean" else 1 - q @ base.T
        v, j = d.topk(k, dim=1, largest=False)
        idx.append(j)
        dist.append(v)
    return torch.cat(idx), torch.cat(dist)


def pca_fit(feats: torch.Tensor, dim: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and the top ``dim`` principal directions (D×dim) of ``feats``."""
    if not 1 <= dim <= min(feats.shape):
        raise ValueError(f"PCA dimension must be between 1 and {min(feats.shape)}, got {dim}")
    mean = feats.mean(0)
    _, _, vh = torch.linalg.svd((feats - mean).double(), full_matrices=False)
    return mean, vh[:dim].T.float()


def pca_project(feats: torch.Tensor, basis: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    mean, directions = basis
    return (feats - mean) @ directions


def neighbour_overlap(a: torch.Tensor, b: torch.Tensor) -> float:
    """Mean fraction of each row's neighbours that two searches share (order ignored)."""
    shared = [len(set(x.tolist()) & set(y.tolist())) / a.shape[1] for x, y in zip(a, b)]
    return float(np.mean(shared)) if shared else 1.0


def compressed_overlap(train_feats: torch.Tensor, query_feats: torch.Tensor, dim: int,
                       k: int = 6, metric: str = "euclidean") -> float:
    """How many of the ``k`` neighbours survive compressing the features to ``dim``
    principal components (fitted on the training features)."""
    full, _ = nearest_neighbours(query_feats, train_feats, k, metric)
    basis = pca_fit(train_feats, dim)
    small, _ = nearest_neighbours(pca_project(query_feats, basis),
                                  pca_project(train_feats, basis), k, metric)
    return neighbour_overlap(full, small)


def image_for_display(x: torch.Tensor) -> np.ndarray:
    """One C×H×W image as H×W (grey) or H×W×3 in [0, 1] (uint8 /255, floats min–max)."""
    x = x.detach().cpu()
    x = x.float() / 255 if x.dtype == torch.uint8 else \
        (x.float() - x.min()) / (x.max() - x.min()).clamp_min(1e-12)
    return x[0].numpy() if x.shape[0] != 3 else x.permute(1, 2, 0).numpy()


def _class_name(classes, y) -> str:
    y = int(y)
    return str(classes[y]) if classes and y < len(classes) else str(y)


def plot_neighbours(model: nn.Module, query: TensorData, base: TensorData,
                    query_index: torch.Tensor, neighbours: torch.Tensor, distances: torch.Tensor,
                    path: str | os.PathLike, checkpoint=None, classes=None,
                    metric: str = "euclidean", note: str = "") -> str:
    """One row per query image: the image, then its neighbours from ``base`` (labels and
    distances above them; a neighbour of another class is labelled in red)."""
    plt = pyplot()
    rows, k = neighbours.shape
    fig, axes = plt.subplots(rows, k + 1, figsize=(1.1 * (k + 1), 1.15 * rows + 0.8), dpi=100,
                             squeeze=False)
    grey = query.x.shape[1] != 3
    for r in range(rows):
        qi = int(query_index[r])
        ax = axes[r, 0]
        ax.imshow(image_for_display(query.x[qi]), cmap="gray" if grey else None)
        ax.set_title(f"val #{qi}: {_class_name(classes, query.y[qi])}", fontsize=7,
                     fontweight="bold")
        for c in range(k):
            j = int(neighbours[r, c])
            ax = axes[r, c + 1]
            ax.imshow(image_for_display(base.x[j]), cmap="gray" if grey else None)
            same = int(base.y[j]) == int(query.y[qi])
            ax.set_title(f"{_class_name(classes, base.y[j])}  d={float(distances[r, c]):.2f}",
                         fontsize=6, color="black" if same else "red")
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    what = (f"{k} nearest training images in penultimate features ({metric})"
            f"{'; ' + note if note else ''}")
    suptitle(fig, model, checkpoint, what)
    fig.tight_layout()
    return save_png(fig, path)


def embed_2d(feats: torch.Tensor, method: str = "pca", seed: int = 0) -> np.ndarray:
    """N×2 coordinates of the features: PCA, or t-SNE (scikit-learn, PCA-initialised)."""
    try:
        from sklearn.decomposition import PCA
        from sklearn.manifold import TSNE
    except ImportError:
        raise ValueError("the feature map needs scikit-learn: pip install 'cnnlab[data]'"
                         ) from None
    x = feats.double().numpy()
    if method == "pca":
        return PCA(2, random_state=seed).fit_transform(x)
    if method == "tsne":
        return TSNE(2, init="pca", random_state=seed,
                    perplexity=min(30.0, (len(x) - 1) / 3)).fit_transform(x)
    raise ValueError(f"unknown embedding {method!r}: pca or tsne")


def plot_embedding(model: nn.Module, feats: torch.Tensor, labels: torch.Tensor,
                   path: str | os.PathLike, checkpoint=None, classes=None,
                   method: str = "pca", part: str = "validation", seed: int = 0) -> str:
    """Scatter of the penultimate features in 2-d, coloured by class."""
    xy = embed_2d(feats, method, seed)
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5.6, 4.8), dpi=100)
    labels = labels.cpu().numpy()
    present = np.unique(labels)
    cmap = plt.get_cmap("tab10" if len(present) <= 10 else "tab20")
    for i, c in enumerate(present):
        m = labels == c
        ax.scatter(xy[m, 0], xy[m, 1], s=5, alpha=0.7, color=cmap(i % cmap.N),
                   label=_class_name(classes, c))
    if len(present) <= 20:
        ax.legend(markerscale=3, fontsize=7, loc="best", frameon=False)
    ax.set_xticks([])
    ax.set_yticks([])
    name = "PCA" if method == "pca" else "t-SNE"
    ax.set_title(f"{model_label(model, checkpoint)}\n{name} of penultimate features, "
                 f"{len(labels)} {part} images by class", fontsize=8)
    fig.tight_layout()
    return save_png(fig, path)
