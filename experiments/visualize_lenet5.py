"""Pictures of LeNet-5 trained on the MNIST split (8,000 train / 2,000 val): first-layer
filters, the 6 nearest training images of 5 validation images in the penultimate features
(AlexNet's Fig. 4 probe, deck 002:125-138) with the PCA-compressed search's overlap, a
t-SNE map of the features, and saliency (input gradients and Grad-CAM on LeNet-5; guided
backpropagation, Springenberg et al. 2015, on the ReLU rebuild, since LeNet-5's scaled tanh
is not a ReLU).

Train the checkpoints first (about 1 minute on 1 thread):
    cnnlab train lenet5 --data mnist:data/mnist --val-split 2000 --epochs 5 --threads 1 \
        --out runs/lenet5
    cnnlab train lenet5_modern --data mnist:data/mnist --val-split 2000 --epochs 5 --threads 1 \
        --out runs/lenet5_modern
    python experiments/visualize_lenet5.py runs/lenet5/last.safetensors \
        runs/lenet5_modern/last.safetensors --out runs/figures
(more checkpoints, e.g. other --seed runs, add to the statistics: mean ± std over runs)
(experiments/figures/ holds three of the ten pictures it draws.)
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

import torch

from cnnlab.runspec import RunSpec, model_and_data
from cnnlab.train import load_checkpoint
from cnnlab.train.checkpoint import read_meta
from cnnlab.visualize import (
    compressed_overlap,
    extract_features,
    nearest_neighbours,
    neighbour_overlap,
    plot_embedding,
    plot_filters,
    plot_neighbours,
    plot_saliency,
)


def load_run(path):
    """The model and its data exactly as the run trained them (split, size, normalisation)."""
    run = RunSpec.from_checkpoint(path)
    model, split, _, _ = model_and_data(run.model, run.data_spec, run.val_split, run.split_seed,
                                        run.input_size, run.model_args)
    load_checkpoint(path, model)
    split = replace(split, train=run.normalise(split.train), val=run.normalise(split.val))
    return model.eval(), split


def probe(model, split, pca: int) -> dict:
    """Neighbour statistics over all validation images, and the feature extraction time."""
    t = time.perf_counter()
    train_f = extract_features(model, split.train)
    val_f = extract_features(model, split.val)
    seconds = time.perf_counter() - t
    every, _ = nearest_neighbours(val_f, train_f, k=6)
    pixels, _ = nearest_neighbours(split.val.x.flatten(1).float(),
                                   split.train.x.flatten(1).float(), k=6)
    return {"feature_seconds": seconds, "same_class": 100 * _same(split, every),
            "pca_overlap": 100 * compressed_overlap(train_f, val_f, pca, k=6),
            "pixel_same_class": 100 * _same(split, pixels),
            "pixel_overlap": 100 * neighbour_overlap(every, pixels)}


def _same(split, idx) -> float:
    return (split.train.y[idx] == split.val.y[:, None]).float().mean().item()


def draw(model, split, ckpt, name, out: Path, pca: int, overlap: float) -> None:
    train_f = extract_features(model, split.train)
    val_f = extract_features(model, split.val)
    pick = torch.randperm(len(split.val), generator=torch.Generator().manual_seed(0))[:5]
    idx, dist = nearest_neighbours(val_f[pick], train_f, k=6)
    note = f"PCA-{pca} keeps {overlap:.0f}% of them (all 2,000 val)"
    plot_filters(model, out / f"{name}_filters.png", ckpt)
    plot_neighbours(model, split.val, split.train, pick, idx, dist,
                    out / f"{name}_neighbours.png", ckpt, split.classes, note=note)
    plot_embedding(model, val_f, split.val.y, out / f"{name}_tsne.png", ckpt, split.classes,
                   method="tsne")
    some = pick[:4]
    x = split.val.normalize(split.val.x[some])
    # guided backpropagation needs ReLUs: LeNet-5's scaled tanh gets plain gradients
    methods = ("guided", "cam") if name == "lenet5_modern" else ("grad", "cam")
    for m in methods:
        plot_saliency(model, split.val.x[some], x, m, out / f"{name}_{m}.png", ckpt,
                      labels=split.val.y[some], classes=split.classes)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("checkpoints", nargs="+", help="lenet5 / lenet5_modern runs (any seeds); "
                    "the first of each model is drawn")
    ap.add_argument("--out", default="runs/figures")
    ap.add_argument("--pca", type=int, default=16)
    args = ap.parse_args()
    torch.set_num_threads(1)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows: dict[str, list[dict]] = {}
    for ckpt in args.checkpoints:
        model, split = load_run(ckpt)
        name = read_meta(ckpt)["model"]
        r = probe(model, split, args.pca)
        if name not in rows:
            draw(model, split, ckpt, name, out, args.pca, r["pca_overlap"])
        rows.setdefault(name, []).append(r)
    report = {}
    for name, rs in rows.items():
        report[name] = {"seeds": len(rs)}
        for key in rs[0]:
            v = torch.tensor([r[key] for r in rs], dtype=torch.float64)
            report[name][key] = f"{v.mean():.2f} ± {v.std() if len(v) > 1 else 0:.2f}"
    print(json.dumps(report, indent=1, ensure_ascii=False))


if __name__ == "__main__":
    main()
