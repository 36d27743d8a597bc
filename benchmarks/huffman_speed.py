"""Huffman encode/decode speed on a 60 M-parameter model (goal: decompress in < 10 s).

    python benchmarks/huffman_speed.py [--model alexnet] [--out DIR]

AlexNet (random weights: no ImageNet here) is pruned with Han et al. 2015's per-layer
densities (Table 4: conv1 84 %, conv2 38 %, conv3 35 %, conv4 37 %, conv5 37 %, fc6 9 %,
fc7 9 %, fc8 25 % — 11 % overall), shared at 8 bits (conv) / 5 bits (fc) and written as a
``.dcz``. Reported: k-means time, Huffman encode time, and the time to decompress the file
(parse + checksum + decode every tensor), alone and with the safetensors output written,
with MB/s of compressed input and of decoded fp32 weights (MB = 2**20 bytes).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from cnnlab.compress import fileformat as ff
from cnnlab.compress.pipeline import build_file, decompress, read_weights
from cnnlab.compress.prune import Pruner, Target
from cnnlab.compress.quantize import bake, quantize_layer
from cnnlab.models import create_model
from cnnlab.table import render

HAN_ALEXNET_KEEP = {"conv1": 0.84, "conv2": 0.38, "conv3": 0.35, "conv4": 0.37, "conv5": 0.37,
                    "fc1": 0.09, "fc2": 0.09, "fc3": 0.25}
MB = 2 ** 20


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="alexnet", help="alexnet or alexnet_grouped")
    ap.add_argument("--out", help="directory for the files (default: a temporary one)")
    args = ap.parse_args()
    torch.manual_seed(0)
    model = create_model(args.model)
    pruner = Pruner(model)
    labels = [ly.label for ly in pruner.layers]
    if labels != list(HAN_ALEXNET_KEEP):
        raise SystemExit(f"{args.model} has layers {labels}, not AlexNet's")
    pruner.prune({k: Target(keep=v) for k, v in HAN_ALEXNET_KEEP.items()})
    pruner.remove_hooks()
    weights = sum(ly.module.weight.numel() for ly in pruner.layers)
    kept = sum(pruner.kept().values())
    bits = {k: 8 if k.startswith("conv") else 5 for k in labels}

    t0 = time.perf_counter()
    for ly in pruner.layers:
        quantize_layer(ly.module, bits[ly.label])
    codes = bake(model)
    t_kmeans = time.perf_counter() - t0
    t0 = time.perf_counter()
    f = build_file(model, args.model, {}, bits, bits, codes=codes)
    data = ff.to_bytes(f)
    t_encode = time.perf_counter() - t0
    dense = sum(v.numel() * v.element_size() for v in model.state_dict().values())

    with tempfile.TemporaryDirectory() as tmp:
        d = Path(args.out or tmp)
        path = d / f"{args.model}.dcz"
        path.write_bytes(data)
        t0 = time.perf_counter()
        _, state = read_weights(path)
        t_decode = time.perf_counter() - t0
        ok = all(torch.equal(state[k], v) for k, v in model.state_dict().items())
        t0 = time.perf_counter()
        decompress(path, d / f"{args.model}.safetensors")
        t_full = time.perf_counter() - t0

    print(f"{args.model}: {weights:,} weights, {kept:,} kept ({100 * kept / weights:.1f}%), "
          f"8/5 bits; fp32 {dense / MB:.1f} MB → .dcz {len(data) / MB:.2f} MB "
          f"({dense / len(data):.1f}x); decoded weights identical: {ok}")
    rows = [["k-means (all layers)", f"{t_kmeans:.2f}", "", ""],
            ["Huffman encode + sparse layout", f"{t_encode:.2f}",
             f"{dense / MB / t_encode:.0f}", f"{len(data) / MB / t_encode:.1f}"],
            ["decode (read, checksum, Huffman, scatter)", f"{t_decode:.2f}",
             f"{dense / MB / t_decode:.0f}", f"{len(data) / MB / t_decode:.1f}"],
            ["decompress to safetensors (goal < 10 s)", f"{t_full:.2f}",
             f"{dense / MB / t_full:.0f}", f"{len(data) / MB / t_full:.1f}"]]
    print(render(rows, ["step", "seconds", "fp32 MB/s", ".dcz MB/s"], right={1, 2, 3}))


if __name__ == "__main__":
    main()
