"""Energy per inference (Horowitz 2014) against a hand computation for LeNet-5 (Caffe)."""

import pytest
import torch

import cnnlab
from cnnlab.compress import fileformat as ff
from cnnlab.compress.pipeline import build_file
from cnnlab.deploy.energy import energy, energy_of_dcz, parse_bytes
from cnnlab.profile import profile

# lenet5_caffe, 1x28x28: conv1 20@5x5 -> 24x24, pool, conv2 50@5x5 -> 8x8, pool, fc 800-500,
# relu, fc 500-10
MACS = {"features.conv1": 20 * 24 * 24 * 25, "features.conv2": 50 * 8 * 8 * 20 * 25,
        "fc1.1": 800 * 500, "head.fc": 500 * 10}
PARAMS = {"features.conv1": 520, "features.conv2": 25050, "fc1.1": 400500, "head.fc": 5010}


def test_lenet5_fp32_matches_the_hand_computation():
    e = energy(profile("lenet5_caffe"), sram_bytes="512KiB")
    assert not e.weights_in_sram and e.weight_bytes == 4 * 431080  # 1.7 MB > 512 KiB
    layers = {ly.name: ly for ly in e.layers}
    for name, macs in MACS.items():
        assert layers[name].compute_pj == pytest.approx(macs * (3.7 + 0.9))
        assert layers[name].weight_pj == pytest.approx(PARAMS[name] * 640.0)  # DRAM
    # conv1 reads 784 input pixels and writes 20x24x24 outputs in SRAM at 5 pJ per word
    assert layers["features.conv1"].activation_pj == pytest.approx((784 + 11520) * 5.0)
    # pool1 compares (one add each) 11520 inputs into 2880 outputs
    assert layers["features.pool1"].compute_pj == pytest.approx(11520 * 0.9)
    assert e.total_pj == pytest.approx(sum(ly.total_pj for ly in e.layers))
    assert e.weight_pj == pytest.approx(431080 * 640.0)
    # the same model with 2 MiB on chip: the weights cost SRAM reads, 128x less
    big = energy(profile("lenet5_caffe"), sram_bytes="2MiB")
    assert big.weights_in_sram and big.weight_pj == pytest.approx(431080 * 5.0)
    assert big.compute_pj == e.compute_pj


def test_compressed_lenet5_fits_in_sram(tmp_path):
    torch.manual_seed(0)
    model = cnnlab.create_model("lenet5_caffe")
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear)):
                w = m.weight
                w[w.abs() < w.abs().flatten().quantile(0.92)] = 0  # 8% survive (Han: 8%)
    bits = {"conv1": 8, "conv2": 8, "fc1": 5, "fc2": 5}
    f = build_file(model, "lenet5_caffe", {}, bits, {k: 5 for k in bits})
    path = tmp_path / "lenet.dcz"
    ff.write(path, f)
    e = energy_of_dcz(path, sram_bytes="512KiB")
    assert e.weights_in_sram
    stored = sum(t.size for t in ff.read(path).tensors)
    assert e.weight_bytes == stored < 431080 * 4 / 20
    assert e.weight_pj == pytest.approx(stored * 8 * 5.0 / 32)
    dense = energy(profile("lenet5_caffe"))
    assert dense.weight_pj / e.weight_pj > 1000  # DRAM at 32 bits vs SRAM at ~1.5 bits


def test_bad_sizes_and_precisions():
    assert parse_bytes("512KiB") == 524288 and parse_bytes("2MB") == 2_000_000
    with pytest.raises(ValueError, match="memory size"):
        parse_bytes("lots")
    with pytest.raises(ValueError, match="precision"):
        energy(profile("lenet5_caffe"), precision="fp8")
