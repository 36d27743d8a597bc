"""Magnitude pruning: thresholds, masks held during training, dropout adjustment, Han's table."""

import math

import pytest
import torch
import torch.nn as nn

from cnnlab.compress.prune import Pruner, Target, parse_prune, prunable_layers, regularizer
from cnnlab.compress.report import pruning_table
from cnnlab.models import create_model


def test_layers_are_named_like_the_papers_tables():
    labels = [(ly.label, ly.name) for ly in prunable_layers(create_model("lenet5_caffe"))]
    assert labels == [("conv1", "features.conv1"), ("conv2", "features.conv2"),
                      ("fc1", "fc1.1"), ("fc2", "head.fc")]


def test_targets_and_specs():
    layers = prunable_layers(create_model("lenet5_caffe"))
    t = parse_prune("conv=66%,fc=q1.5,fc2=19%", layers)
    assert t == {"conv1": Target(keep=0.66), "conv2": Target(keep=0.66),
                 "fc1": Target(quality=1.5), "fc2": Target(keep=0.19)}  # later entries win
    assert Target(keep=0.01).at(0.5).keep == pytest.approx(0.1)  # geometric schedule
    assert Target(quality=2.0).at(0.25).quality == 0.5
    for bad in ("fc1=8", "fc1=120%", "fc1=qx", "nolayer=5%"):
        with pytest.raises(ValueError):
            parse_prune(bad, layers)


def test_quality_threshold_is_q_times_std():
    torch.manual_seed(0)
    layer = nn.Linear(100, 100)
    sigma = layer.weight.detach().std().item()
    pruner = Pruner(layer)
    thr = pruner.prune({"fc1": Target(quality=0.8)})["fc1"]
    assert thr == pytest.approx(0.8 * sigma)
    w = layer.weight.detach()
    assert (w.abs()[w != 0] > thr).all() and (w == 0).sum() > 0


def test_target_density_is_hit_and_masks_only_shrink():
    torch.manual_seed(0)
    layer = nn.Linear(100, 50)
    pruner = Pruner(layer)
    pruner.prune({"fc1": Target(keep=0.2)})
    assert pruner.kept()["fc1"] == 1000
    with torch.no_grad():
        layer.weight.add_(1.0)  # a pruned weight cannot come back
    pruner.prune({"fc1": Target(keep=0.5)})
    assert pruner.kept()["fc1"] == 1000


def test_masks_hold_during_training():
    from cnnlab.data import DataSplit, TensorData
    from cnnlab.train import TrainConfig, train

    torch.manual_seed(0)
    model = create_model("lenet_300_100")
    pruner = Pruner(model)
    pruner.prune({"fc1": Target(keep=0.1), "fc2": Target(keep=0.3)})
    dead = {k: ~m for k, m in pruner.masks.items()}
    x = torch.randint(0, 255, (256, 1, 28, 28), dtype=torch.uint8)
    y = torch.randint(0, 10, (256,))
    split = DataSplit(TensorData(x, y), TensorData(x[:64], y[:64]), 10, 1, "random")
    layers = {ly.label: ly.module for ly in pruner.layers}
    model(x[:8].float()).sum().backward()
    assert all((layers[k].weight.grad[d] == 0).all() for k, d in dead.items())
    train(model, split, TrainConfig(epochs=1, batch_size=64, lr=0.1, momentum=0.9,
                                    weight_decay=1e-3), step_hooks=[pruner], progress=False)
    for k, d in dead.items():
        assert (layers[k].weight.detach()[d] == 0).all()
    assert pruner.kept()["fc1"] == round(0.1 * 784 * 300)


def test_dropout_ratio_adjustment():
    model = create_model("lenet_300_100", drop_rate=0.5)
    pruner = Pruner(model)
    pruner.prune({"fc2": Target(keep=0.25), "fc3": Target(keep=0.64)})
    adjusted = pruner.adjust_dropout()
    # the dropout after fc1 feeds fc2, the one after fc2 feeds fc3: D_r = D_o·√(C_ir/C_io)
    assert list(adjusted.values()) == pytest.approx([0.5 * math.sqrt(0.25),
                                                     0.5 * math.sqrt(0.64)])
    assert pruner.adjust_dropout() == adjusted  # always relative to the original ratio


def test_l1_and_l2_regularisers():
    layer = nn.Linear(3, 2, bias=False)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([[1.0, -2.0, 0.0], [0.5, 0.0, -1.0]]))
    out, y = torch.zeros(1, 2), torch.tensor([0])
    base = nn.functional.cross_entropy(out, y)
    assert regularizer(layer, "l1", 0.1)(out, y).item() == pytest.approx(float(base) + 0.45)
    assert regularizer(layer, "l2", 0.1)(out, y).item() == pytest.approx(float(base) + 0.3125)


def test_pruning_table_like_han_2015_table_2():
    torch.manual_seed(0)
    model = create_model("lenet5_caffe")
    Pruner(model).prune({"conv2": Target(keep=0.12), "fc1": Target(keep=0.08)})
    x = torch.randn(16, 1, 28, 28)
    x[:, :, :14] = 0  # the top half of every image is blank: conv1 sees 50 % non-zeros
    rows = {r["layer"]: r for r in pruning_table(model, (1, 28, 28), x)}
    assert [rows[k]["flop"] for k in ("conv1", "conv2", "fc1", "fc2")] == \
        [576_000, 3_200_000, 800_000, 10_000]  # Table 2's FLOP column (2 × mult-adds)
    assert rows["conv1"]["act_pct"] == pytest.approx(50.0)
    assert rows["conv2"]["weights_pct"] == pytest.approx(12.0)
    for r in rows.values():
        if r["layer"] != "Total":
            assert r["flop_pct"] == pytest.approx(r["weights_pct"] * r["act_pct"] / 100)
    assert rows["Total"]["weights"] == 430_500
