import json

import numpy as np
import pytest
import torch

import cnnlab
from cnnlab.cli import main
from cnnlab.deploy.export import export_onnx

ort = pytest.importorskip("onnxruntime")


def test_onnx_matches_pytorch_at_other_batch_sizes(tmp_path):
    torch.manual_seed(0)
    m = cnnlab.create_model("mobilenet_v1", width_mult=0.25, num_classes=10)
    for bn in m.modules():  # BN running statistics as a trained model would have them
        if isinstance(bn, torch.nn.BatchNorm2d):
            bn.momentum = None  # cumulative average
    with torch.no_grad():
        for _ in range(5):
            m(torch.randn(8, 3, 48, 48))
    m.eval()
    report = export_onnx(m, tmp_path / "m.onnx", (3, 48, 48))
    sess = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    x = torch.randn(5, 3, 48, 48)
    ref = m(x).detach().numpy()
    got = sess.run(None, {"input": x.numpy()})[0]
    assert got.shape == (5, 10) and ref.std(0).max() > 1e-3  # inputs give different outputs
    np.testing.assert_allclose(got, ref, atol=1e-4 * np.abs(ref).max())
    assert report["bytes"] == (tmp_path / "m.onnx").stat().st_size


def test_cli_export_lenet5(tmp_path, capsys):
    out = tmp_path / "lenet5.onnx"
    assert main(["export", "lenet5", "-o", str(out), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["checked"] and out.exists() and report["output_shape"] == [10]
    assert [p.name for p in tmp_path.iterdir()] == ["lenet5.onnx"]  # no temp file left


def test_cli_export_bad_directory_is_exit_2(tmp_path, capsys):
    code = main(["export", "lenet5", "-o", str(tmp_path / "missing" / "x.onnx")])
    assert code == 2 and "does not exist" in capsys.readouterr().err
