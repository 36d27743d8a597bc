"""ONNX export of registered models, checked in onnxruntime; folded, pruned and int8 models."""

import os
import warnings

import numpy as np
import pytest
import torch
import torch.nn as nn

import cnnlab
from cnnlab.deploy.export import EXPORT_LIMITS, export_onnx
from cnnlab.deploy.sizes import meta_summary, random_model, representatives, small_input_size

ort = pytest.importorskip("onnxruntime")
FULL = bool(os.environ.get("CNNLAB_FULL_REGISTRY"))
BUDGET = 5_000_000  # parameters: larger models take 10 s to minutes to export on 2 cores


def _cases():
    out = []
    for name in cnnlab.list_models() if FULL else representatives():
        n = meta_summary(name).params
        big = n > BUDGET
        out.append(pytest.param(name, marks=pytest.mark.skipif(
            big and not FULL, reason=f"{n / 1e6:.0f}M parameters: run with "
            "CNNLAB_FULL_REGISTRY=1 (see benchmarks/README.md for the full run)")))
    return out


@pytest.mark.parametrize("name", _cases())
def test_registered_model_exports_with_dynamic_batch(name, tmp_path):
    model = random_model(name).eval()
    size = small_input_size(name)
    path = tmp_path / "m.onnx"
    if name in EXPORT_LIMITS:
        with pytest.raises(ValueError, match="adaptive_avg_pool2d"):
            export_onnx(model, path, size)
        assert not path.exists()
        return
    report = export_onnx(model, path, size)
    assert report["max_rel_diff"] <= 1e-4 and path.exists()
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert sess.run(None, {"input": np.zeros((3, *size), np.float32)})[0].shape[0] == 3


def test_the_limit_behind_export_limits(tmp_path):
    """What AlexNet and VGG run into below their paper size, on a two-layer model."""
    m = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.AdaptiveAvgPool2d(6)).eval()
    with pytest.raises(ValueError, match="adaptive_avg_pool2d"):
        export_onnx(m, tmp_path / "m.onnx", (3, 9, 9))
    assert all("adaptive_avg_pool2d" in why for why in EXPORT_LIMITS.values())


def test_folded_model_exports_without_batchnorm(tmp_path):
    import onnx

    m = random_model("resnet20").eval()
    report = export_onnx(m, tmp_path / "f.onnx", (3, 16, 16), fuse_bn=True)
    assert report["bn_folded"] == 19 and report["max_rel_diff"] <= 1e-4
    ops = {n.op_type for n in onnx.load(str(tmp_path / "f.onnx")).graph.node}
    assert "BatchNormalization" not in ops and "Conv" in ops


def test_pruned_model_exports(tmp_path):
    from cnnlab.compress.prune import Pruner, Target, prunable_layers

    torch.manual_seed(0)
    m = cnnlab.create_model("lenet5_caffe")
    pruner = Pruner(m)
    pruner.prune({ly.label: Target(keep=0.1) for ly in prunable_layers(m)})  # keep 10 %
    w = m.get_submodule(prunable_layers(m)[2].name).weight
    assert (w == 0).float().mean() > 0.85
    report = export_onnx(m.eval(), tmp_path / "p.onnx", (1, 28, 28))
    assert report["max_rel_diff"] <= 1e-4


def test_int8_model_exports_as_quantized_onnx(tmp_path):
    import onnx

    from cnnlab.deploy.quant import quantize_ptq

    warnings.filterwarnings("ignore", module="torch.ao")
    m = cnnlab.create_model("lenet5_caffe").eval()
    q = quantize_ptq(m, [torch.randn(8, 1, 28, 28)])
    report = export_onnx(q.model, tmp_path / "q.onnx", (1, 28, 28), rtol=1e-2)
    ops = {n.op_type for n in onnx.load(str(tmp_path / "q.onnx")).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    assert report["bytes"] < 0.3 * 4 * 431080  # int8 weights: about a quarter of fp32


def test_int8_shufflenet_v2_units_export_through_their_channel_split(tmp_path):
    # the split is torch.narrow on int8 values: the exporter has no quantized narrow of its own
    import onnx

    from cnnlab.deploy.quant import quantize_ptq
    from cnnlab.layers import ConvNormAct
    from cnnlab.models.shufflenet import ShuffleV2Unit

    warnings.filterwarnings("ignore", module="torch.ao")
    m = nn.Sequential(ConvNormAct(3, 24, 3, 2), ShuffleV2Unit(24, 24, 1),
                      ShuffleV2Unit(24, 48, 2), ShuffleV2Unit(48, 48, 1)).eval()
    q = quantize_ptq(m, [torch.randn(4, 3, 16, 16)], input_size=(3, 16, 16))
    report = export_onnx(q.model, tmp_path / "q.onnx", (3, 16, 16), rtol=1e-2)
    nodes = onnx.load(str(tmp_path / "q.onnx")).graph.node
    made_by = {out: n.op_type for n in nodes for out in n.output}
    slices = [n for n in nodes if n.op_type == "Slice"]
    assert report["checked"] and report["max_rel_diff"] <= 1e-2
    assert len(slices) == 2 * 2  # two halves in each of the two stride-1 units
    assert all(made_by[n.input[0]] == "DequantizeLinear" for n in slices)  # int8 values in
