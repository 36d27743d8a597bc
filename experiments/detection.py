"""SSDLite on MobileNetV2 vs SSD on MobileNet v1, on MNIST canvases with boxes: the shape of
MobileNetV2's Table 6 (Sandler et al. 2018: COCO mAP, params, mult-adds, latency) at CPU scale.

Every detector sees 64×64 canvases of 1-3 real MNIST digits (``mnist-canvas-boxes``), uses
the backbone's strides 8 / 16 / 32 plus one extra stride-2 layer (8×8, 4×4, 2×2, 1×1 maps,
SSD's default boxes at scales 0.2-0.9), and trains with the multibox loss (SGD, cosine). mAP
is VOC's mAP@0.5 on held-out canvases of held-out digits. Parameters are those the detector
uses (the backbone's unused classifier layers are not counted); mult-adds from the profiler;
latency the median of batch-1 forward passes, contenders alternating.

    python experiments/detection.py --seeds 0 1 2 --epochs 4 --train 1000
"""

from __future__ import annotations

import argparse
import statistics

import torch

import cnnlab
from cnnlab.data import load_dataset
from cnnlab.detect import MultiBoxLoss, build_ssd, detect, mean_average_precision
from cnnlab.profile.profiler import measure_latency
from cnnlab.train import TrainConfig, train

# name: (backbone, SSDLite?, width); Table 6 (COCO, 320×320): params / MAdd / mAP
DETECTORS = {
    "SSD mobilenet_v1 0.25": ("mobilenet_v1", False, 0.25),
    "SSDLite mobilenet_v2 0.35": ("mobilenet_v2", True, 0.35),
    "SSDLite mobilenet_v2 0.5": ("mobilenet_v2", True, 0.5),
}
PAPER = {"SSD mobilenet_v1 0.25": "(SSD300 VGG: 14.8 M, 1.25 B, 23.2)",
         "SSDLite mobilenet_v2 0.35": "(1.0 V2 + SSDLite: 4.3 M, 0.8 B, 22.1)",
         "SSDLite mobilenet_v2 0.5": ""}
SIZE = 64


def build(name, chans):
    backbone, lite, width = DETECTORS[name]
    return build_ssd(backbone, 10, SIZE, lite=lite, in_chans=chans, out_indices=(2, 3, 4),
                     extras=(128,), backbone_kw={"width_mult": width})


def used_params(model, split):
    model.zero_grad()
    x = split.val.normalize(split.val.x[:2])
    MultiBoxLoss(model.anchors)(model(x), split.val.y[:2]).backward()
    n = sum(p.numel() for p in model.parameters() if p.grad is not None)
    model.zero_grad()
    return n


def evaluate_map(model, split):
    model.eval()
    with torch.no_grad():
        out = torch.cat([model(split.val.normalize(x)) for x in split.val.x.split(100)])
    return 100 * mean_average_precision(detect(out, model.anchors), list(split.val.y))["map"]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="data/mnist")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--epochs", type=float, default=4)
    ap.add_argument("--train", type=int, default=1000)
    ap.add_argument("--val", type=int, default=300)
    ap.add_argument("--detectors", nargs="+", choices=list(DETECTORS), default=list(DETECTORS),
                    metavar="NAME", help="train these (default: all); the table lists all")
    args = ap.parse_args()
    torch.set_num_threads(1)
    maps = {n: [] for n in DETECTORS}
    for seed in args.seeds:
        split = load_dataset(f"mnist-canvas-boxes:{args.data}", val_split=args.val, seed=seed,
                             train_size=args.train)
        for name in args.detectors:
            torch.manual_seed(seed)
            model = build(name, split.in_chans)
            cfg = TrainConfig(epochs=args.epochs, batch_size=32, lr=0.05, weight_decay=4e-5,
                              seed=seed)
            train(model, split, cfg, loss_fn=MultiBoxLoss(model.anchors), progress=False)
            maps[name].append(evaluate_map(model, split))
            print(f"seed {seed} {name}: mAP@0.5 {maps[name][-1]:.1f}", flush=True)
    models = {n: build(n, 1).eval() for n in DETECTORS}
    lat = {n: [] for n in DETECTORS}
    for _ in range(5):  # alternate the contenders
        for n, m in models.items():
            lat[n].append(measure_latency(m, (1, SIZE, SIZE), runs=10))
    split = load_dataset(f"mnist-canvas-boxes:{args.data}", val_split=10, train_size=10)
    print("\n| detector | mAP@0.5 (%) | params | mult-adds | latency (ms) | paper |")
    print("|---|---|---|---|---|---|")
    for n, m in models.items():
        macs = cnnlab.profile(m, input_size=(1, SIZE, SIZE)).macs
        ap_ = f"{statistics.mean(maps[n]):.1f} ± {statistics.stdev(maps[n]):.1f}" \
            if len(maps[n]) > 1 else " ".join(f"{v:.1f}" for v in maps[n])
        print(f"| {n} | {ap_} | {used_params(m.train(), split):,} | "
              f"{macs / 1e6:.1f} M | {statistics.median(lat[n]):.2f} | {PAPER[n]} |")


if __name__ == "__main__":
    main()
