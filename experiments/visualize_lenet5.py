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
(experiments/figures/ holds three of the ten pictures it draws.)
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

import torch

from cnnlab.train import load_checkpoint
from cnnlab.train.checkpoint import read_meta
from cnnlab.train.spec import RunSpec, model_and_data
from cnnlab.visualize import (
    compressed_overlap,
    extract_features,
    nearest_neighbours,
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


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("lenet5")
    ap.add_argument("lenet5_modern")
    ap.add_argument("--out", default="runs/figures")
    ap.add_argument("--pca", type=int, default=16)
    args = ap.parse_args()
    torch.set_num_threads(1)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    report = {}
    for ckpt in (args.lenet5, args.lenet5_modern):
        model, split = load_run(ckpt)
        name = read_meta(ckpt)["model"]
        t = time.perf_counter()
        train_f = extract_features(model, split.train)
        val_f = extract_features(model, split.val)
        seconds = time.perf_counter() - t
        g = torch.Generator().manual_seed(0)
        pick = torch.randperm(len(split.val), generator=g)[:5]
        idx, dist = nearest_neighbours(val_f[pick], train_f, k=6)
        every, _ = nearest_neighbours(val_f, train_f, k=6)
        same = (split.train.y[every] == split.val.y[:, None]).float().mean().item()
        overlap = compressed_overlap(train_f, val_f, args.pca, k=6)
        report[name] = {"feature_seconds": round(seconds, 2), "dim": train_f.shape[1],
                        "neighbours_same_class": round(100 * same, 1),
                        f"pca{args.pca}_overlap": round(100 * overlap, 1)}
        note = f"PCA-{args.pca} keeps {100 * overlap:.0f}% of them (all 2,000 val)"
        plot_filters(model, out / f"{name}_filters.png", ckpt)
        plot_neighbours(model, split.val, split.train, pick, idx, dist,
                        out / f"{name}_neighbours.png", ckpt, split.classes, note=note)
        plot_embedding(model, val_f, split.val.y, out / f"{name}_tsne.png", ckpt,
                       split.classes, method="tsne")
        some = pick[:4]
        x = split.val.normalize(split.val.x[some])
        methods = ("guided", "cam") if name == "lenet5_modern" else ("grad", "cam")
        for m in methods:
            plot_saliency(model, split.val.x[some], x, m, out / f"{name}_{m}.png", ckpt,
                          labels=split.val.y[some], classes=split.classes)
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
