"""Energy per inference (Horowitz ISSCC 2014, 45 nm) of dense and Deep-Compressed models:
where the weights live decides the figure (Han et al. 2016, Sec. 1).

LeNet-300-100, LeNet-5 (Caffe) and AlexNet pruned with Han et al. 2015's per-layer densities
(Table 1, 2 and 4), shared at 8 bits (conv) / 5 bits (fc), written as ``.dcz`` files; random
weights (the file sizes follow the densities and bits, not the values' meaning). Dense fp32
and int8 for comparison. On-chip SRAM 512 KiB and 8 MiB.

    PYTHONPATH=. python benchmarks/energy.py
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import torch

import cnnlab
from cnnlab.compress import fileformat as ff
from cnnlab.compress.pipeline import build_file
from cnnlab.compress.prune import Pruner, Target
from cnnlab.deploy.energy import energy, energy_of_dcz
from cnnlab.profile import profile

KEEP = {  # Han et al. 2015, Tables 1, 2, 4
    "lenet_300_100": {"fc1": 0.08, "fc2": 0.09, "fc3": 0.26},
    "lenet5_caffe": {"conv1": 0.66, "conv2": 0.12, "fc1": 0.08, "fc2": 0.19},
    "alexnet": {"conv1": 0.84, "conv2": 0.38, "conv3": 0.35, "conv4": 0.37, "conv5": 0.37,
                "fc1": 0.09, "fc2": 0.09, "fc3": 0.25},
}


def dcz(name, tmp) -> Path:
    torch.manual_seed(0)
    model = cnnlab.create_model(name)
    pruner = Pruner(model)
    pruner.prune({k: Target(keep=v) for k, v in KEEP[name].items()})
    pruner.remove_hooks()
    bits = {k: 8 if k.startswith("conv") else 5 for k in KEEP[name]}
    path = Path(tmp) / f"{name}.dcz"
    ff.write(path, build_file(model, name, {}, bits, bits))
    return path


def main():
    print(f"{'model':15} {'weights':22} {'SRAM':>7} {'stored':>10} {'in':>5} {'compute µJ':>10} "
          f"{'weights µJ':>10} {'act. µJ':>8} {'total µJ':>9}")
    with tempfile.TemporaryDirectory() as tmp:
        for name in KEEP:
            path = dcz(name, tmp)
            prof = profile(name)
            for sram in ("512KiB", "8MiB"):
                rows = [("dense fp32", energy(prof, sram_bytes=sram)),
                        ("dense int8", energy(prof, sram_bytes=sram, precision="int8")),
                        ("Deep Compression .dcz", energy_of_dcz(path, sram_bytes=sram))]
                for what, e in rows:
                    print(f"{name:15} {what:22} {sram:>7} {e.weight_bytes / 1024:9.0f}K "
                          f"{'SRAM' if e.weights_in_sram else 'DRAM':>5} "
                          f"{e.compute_pj / 1e6:10.2f} {e.weight_pj / 1e6:10.2f} "
                          f"{e.activation_pj / 1e6:8.2f} {e.total_pj / 1e6:9.2f}")


if __name__ == "__main__":
    main()
