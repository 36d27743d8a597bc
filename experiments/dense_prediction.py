"""Dense prediction on MNIST canvases, trained end to end on a CPU in a few minutes.

Real MNIST digits (the repository's test set; validation canvases use digits the training
canvases never show) pasted on 64×64 canvases: segmentation into background + 10 digit
classes (stroke pixels), and keypoints (each digit's centre, one heatmap per class).

* a small U-Net (``padding="same"``, 3 pools, 8…64 channels, batch norm), from scratch;
* FCN-8s on MobileNet v1 (α = 0.25), fine-tuned from a digit classifier as Long et al.
  fine-tune ImageNet classifiers (Sec. 4.1), with zero-initialised score layers and
  bilinear upsampling;
* a 2-stack hourglass (32 features) with intermediate supervision, heatmap MSE.

Prints validation pixel accuracy and mean IoU (trivial: everything background) and PCK at
0.2 and 0.5 digit sizes (trivial: each class's average training position).

    python experiments/dense_prediction.py            # ≈ 4 CPU minutes on one thread
    python experiments/dense_prediction.py --scale 0.3  # shorter

Measured (one CPU thread, 230 s in all; validation canvases, 500 each):

    model                      params  steps  pix acc   mIoU  PCK@.2  PCK@.5
    U-Net (same, 8-64 ch)     121,123   1500    97.35  38.51
    FCN-8s (MobileNet v1 .25) 221,761   1200    95.14  28.13
    Hourglass (2 stacks, 32)  108,980   1000                   28.05   56.39
    trivial                                     94.70   8.61    5.05   29.53

FCN-8s predicts at stride 8 and upsamples bilinearly, so it cannot follow 2-3 pixel strokes
as closely as the U-Net, whose skips reach full resolution.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

import cnnlab
from cnnlab.data import DataSplit, TensorData, load_dataset
from cnnlab.data.canvas import DIGIT, STRIDE, digit_pools
from cnnlab.train import (
    KeypointMetrics,
    SegmentationMetrics,
    TrainConfig,
    evaluate,
    heatmap_mse,
    mean_iou,
    pck,
    pixel_cross_entropy,
    train,
)

ROOT = Path(__file__).resolve().parents[1]


def config(iters: int, lr: float = 3e-3, batch: int = 16) -> TrainConfig:
    return TrainConfig(iters=iters, batch_size=batch, lr=lr, optimizer="adamw",
                       weight_decay=1e-4, schedule="constant", device="cpu", seed=0)


def run(name, model, split, cfg, loss_fn, metric_fn, rows, extra_s=0.0):
    p = cnnlab.profile(model, split.train.shape)
    t = time.perf_counter()
    res = train(model, split, cfg, loss_fn=loss_fn, metric_fn=metric_fn, progress=False)
    secs = time.perf_counter() - t + extra_s
    rows.append((name, p.params, p.macs, cfg.iters, secs, res.metrics))
    print(f"  {name}: {secs:.0f} s, " + ", ".join(
        f"{k} {v:.1f}" for k, v in res.metrics.items() if k in ("miou", "pixel_acc", "pck")),
        flush=True)
    return res


def pretrain_classifier(split: DataSplit, data: str, epochs: float):
    """MobileNet v1 (α = 0.25) as a digit classifier on the training canvases' digits only."""
    (x, y), _ = digit_pools(data, seed=0)
    n_val = 500
    digits = DataSplit(TensorData(x[n_val:, None], y[n_val:], split.train.mean, split.train.std),
                       TensorData(x[:n_val, None], y[:n_val], split.train.mean, split.train.std),
                       10, 1, "digits")
    clf = cnnlab.create_model("mobilenet_v1", width_mult=0.25, in_chans=1, num_classes=10)
    res = train(clf, digits, TrainConfig(epochs=epochs, batch_size=64, lr=3e-3,
                                         optimizer="adamw", weight_decay=1e-4, device="cpu"),
                progress=False)
    return clf, res.metrics["top1"]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default=str(ROOT / "data" / "mnist"))
    ap.add_argument("--scale", type=float, default=1.0, help="multiply every run's steps")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    def steps(n):
        return max(1, round(n * args.scale))

    t0 = time.perf_counter()
    seg = load_dataset(f"mnist-canvas:{args.data}", val_split=500, train_size=3000)
    kp = load_dataset(f"mnist-canvas-keypoints:{args.data}", val_split=500, train_size=3000)
    print(f"canvases: {len(seg.train)} train / {len(seg.val)} val, 64x64, "
          f"{time.perf_counter() - t0:.1f} s")
    rows = []
    metric = SegmentationMetrics(seg.num_classes)

    unet = cnnlab.create_model("unet", padding="same", depth=3, base_width=8, norm=True,
                               in_chans=1, num_classes=11, drop_rate=0.0)
    run("U-Net (same, 3 pools, 8-64 ch)", unet, seg, config(steps(1500)), pixel_cross_entropy(),
        metric, rows)

    t = time.perf_counter()
    clf, top1 = pretrain_classifier(seg, args.data, epochs=max(0.5, 3 * args.scale))
    pre_s = time.perf_counter() - t
    print(f"  classifier pre-training: {pre_s:.0f} s, digit top-1 {top1:.1f}%")
    fcn = cnnlab.create_model("fcn8s", backbone=clf, num_classes=11)
    run("FCN-8s (MobileNet v1 0.25)", fcn, seg, config(steps(1200)), pixel_cross_entropy(),
        metric, rows, extra_s=pre_s)

    thresholds = {"pck@0.2": 0.2 * DIGIT / STRIDE, "pck@0.5": 0.5 * DIGIT / STRIDE}
    hg = cnnlab.create_model("hourglass", stacks=2, features=32, in_chans=1, num_classes=10)
    run("Hourglass (2 stacks, 32 ch)", hg, kp, config(steps(1000)), heatmap_mse(),
        KeypointMetrics(thresholds["pck@0.2"]), rows)
    wide = evaluate(hg, kp.val, metric_fn=KeypointMetrics(thresholds["pck@0.5"]),
                    loss_fn=heatmap_mse())["pck"]

    # trivial predictors: all background; each class at its mean training heatmap
    background = torch.zeros(len(seg.val), 11, 64, 64)
    background[:, 0] = 1
    seg_base = mean_iou(background, seg.val.y, 11)
    mean_map = kp.train.y.mean(0, keepdim=True).expand_as(kp.val.y)
    kp_base = {k: pck(mean_map, kp.val.y, v) for k, v in thresholds.items()}

    print(f"\n{'model':32s} {'params':>9s} {'MMACs':>7s} {'steps':>6s} {'s':>5s} "
          f"{'pix acc':>8s} {'mIoU':>6s} {'PCK@.2':>7s} {'PCK@.5':>7s}")
    for name, params, macs, it, secs, m in rows:
        pk = m.get("pck")
        print(f"{name:32s} {params:9,d} {macs / 1e6:7.1f} {it:6d} {secs:5.0f} "
              f"{m.get('pixel_acc', float('nan')):8.2f} {m.get('miou', float('nan')):6.2f} "
              + (f"{pk:7.2f} {wide:7.2f}" if pk is not None else f"{'':7s} {'':7s}"))
    bg_acc = 100 * float((seg.val.y == 0).float().mean())
    print(f"{'trivial (background / mean position)':32s} {'':9s} {'':7s} {'':6s} {'':5s} "
          f"{bg_acc:8.2f} {100 * seg_base:6.2f} {kp_base['pck@0.2']:7.2f} "
          f"{kp_base['pck@0.5']:7.2f}")
    print(f"total {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
