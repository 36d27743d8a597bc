"""A tiny Deep Compression run end to end: real MNIST images, the library and the CLI."""

import json
from dataclasses import replace

import numpy as np
import pytest
import torch

import cnnlab
from cnnlab.compress import CompressSettings, compress_model
from cnnlab.compress.prune import prunable_layers
from cnnlab.models import create_model


@pytest.fixture(scope="module")
def small_mnist():
    from cnnlab.data import load_dataset

    split = load_dataset("mnist:data/mnist", val_split=2000, seed=0)
    return replace(split, train=split.train.subset(range(1000)),
                   val=split.val.subset(range(500)))


@pytest.fixture(scope="module")
def trained(small_mnist):
    from cnnlab.train import TrainConfig, train

    torch.manual_seed(0)
    model = create_model("lenet_300_100")
    train(model, small_mnist, TrainConfig(epochs=3, batch_size=32, lr=0.1), progress=False)
    return model


def test_tiny_compression_run(small_mnist, trained, tmp_path):
    model = create_model("lenet_300_100")
    model.load_state_dict(trained.state_dict())
    path = tmp_path / "lenet.dcz"
    res = compress_model(model, "lenet_300_100", {}, small_mnist,
                         CompressSettings(prune="fc1=5%,fc2=10%,fc3=40%", rounds=2,
                                          prune_epochs=1, quant_epochs=0.5, lr=0.05),
                         out=str(path))
    stages = {s["stage"]: s for s in res.stages}
    assert list(stages) == ["dense fp32", "pruned", "quantized", "Huffman (.dcz)"]
    assert stages["dense fp32"]["top1"] > 70  # real data, a real (if short) training
    assert stages["pruned"]["top1"] > stages["dense fp32"]["top1"] - 5
    assert stages["Huffman (.dcz)"]["top1"] == stages["quantized"]["top1"]  # lossless coding
    assert stages["Huffman (.dcz)"]["bytes"] == path.stat().st_size
    sizes = [s["bytes"] for s in res.stages]
    assert sizes == sorted(sizes, reverse=True) and sizes[0] / sizes[-1] > 30

    back = cnnlab.load_compressed(path)
    for ly in prunable_layers(back):
        w = ly.module.weight.detach()
        want = {"fc1": 0.05, "fc2": 0.10, "fc3": 0.40}[ly.label]
        assert int(torch.count_nonzero(w)) == round(want * w.numel())
        assert len(np.unique(w[w != 0].numpy())) <= 32  # 5-bit codebooks
    mine = model.state_dict()
    assert all(torch.equal(v, mine[k].cpu()) for k, v in back.state_dict().items())
    table = {r["layer"]: r for r in res.pruning}
    assert table["fc1"]["weights_pct"] == pytest.approx(5.0)
    assert 0 < table["fc2"]["act_pct"] < 100  # ReLU outputs: measured, not assumed


def test_cli_compress_and_decompress(trained, tmp_path, capsys):
    from safetensors.torch import load_file

    from cnnlab.cli import main
    from cnnlab.train import save_checkpoint

    ckpt = tmp_path / "dense.safetensors"
    save_checkpoint(ckpt, trained, meta={"model": "lenet_300_100"})
    out = tmp_path / "m.dcz"
    assert main(["compress", "lenet_300_100", "--checkpoint", str(ckpt), "--prune", "fc=10%",
                 "--bits", "fc=4", "-o", str(out), "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["totals"]["huffman_bytes"] == out.stat().st_size
    assert [s["top1"] for s in res["stages"]] == [None] * 4  # no --data: nothing evaluated
    assert main(["compress", "lenet_300_100", "--checkpoint", str(ckpt), "-o", str(out)]) == 0
    text = capsys.readouterr().out
    assert "Weights%" in text and "Huffman (.dcz)" in text
    w = tmp_path / "w.safetensors"
    assert main(["decompress", str(out), "-o", str(w)]) == 0
    assert set(load_file(w)) == set(trained.state_dict())
    capsys.readouterr()
    for bad in (["--bits", "fc=20"], ["--prune", "fc9=5%"], ["--prune", "fc1=5"]):
        assert main(["compress", "lenet_300_100", "--checkpoint", str(ckpt), *bad,
                     "-o", str(tmp_path / "x.dcz")]) == 2
        assert capsys.readouterr().err.startswith("cnnlab: error:")
    assert not (tmp_path / "x.dcz").exists()
