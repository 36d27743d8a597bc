"""Net2Net: every supported growth preserves the function (to 1e-5), train and eval modes."""

import pytest
import torch
import torch.nn as nn

from cnnlab.compress.net2net import net2deeper, net2wider
from cnnlab.data.core import DataSplit, TensorData
from cnnlab.models.lenet import MLP
from cnnlab.train import TrainConfig, evaluate, train


def _randomise_bn(model, x):
    model.train()
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            with torch.no_grad():
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.5, 0.5)
            m.momentum = 1.0
    with torch.no_grad():
        model(x)  # non-trivial running statistics


def _check(model, grow, x, modes=("eval", "train")):
    outs = {}
    for mode in modes:
        model.train(mode == "train")
        with torch.no_grad():
            outs[mode] = model(x).clone()
    grow()
    for mode in modes:
        model.train(mode == "train")
        with torch.no_grad():
            torch.testing.assert_close(model(x), outs[mode], atol=1e-5, rtol=1e-5)


def test_wider_linear():
    torch.manual_seed(0)
    m = MLP(hidden=(8, 6), image_size=4)
    _check(m, lambda: net2wider(m, ["features.1"], ["features.3"], 13), torch.randn(5, 1, 4, 4))
    assert m.features[1].out_features == 13 and m.features[3].in_features == 13


class ConvBNNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4)
        self.conv2, self.bn2 = nn.Conv2d(4, 5, 3, padding=1, bias=False), nn.BatchNorm2d(5)
        self.fc = nn.Linear(5 * 6 * 6, 3)

    def forward(self, x):
        x = torch.relu(self.bn1(self.conv1(x)))
        x = torch.relu(self.bn2(self.conv2(x)))
        return self.fc(x.flatten(1))


def test_wider_conv_bn_and_flatten_linear():
    torch.manual_seed(0)
    m, x = ConvBNNet(), torch.randn(6, 3, 6, 6)
    _randomise_bn(m, x)
    _check(m, lambda: net2wider(m, ["conv1", "bn1"], ["conv2"], 9), x)
    _check(m, lambda: net2wider(m, ["conv2", "bn2"], ["fc"], 7), x)
    assert m.bn2.running_var.shape == (7,) and m.fc.in_features == 7 * 36


class ResNetLet(nn.Module):
    def __init__(self, c=4):
        super().__init__()
        self.stem, self.bn0 = nn.Conv2d(3, c, 3, padding=1), nn.BatchNorm2d(c)
        self.a1, self.abn1 = nn.Conv2d(c, c, 3, padding=1), nn.BatchNorm2d(c)
        self.a2, self.abn2 = nn.Conv2d(c, c, 3, padding=1), nn.BatchNorm2d(c)
        self.b1, self.b2 = nn.Conv2d(c, c, 3, padding=1), nn.Conv2d(c, c, 3, padding=1)
        self.fc = nn.Linear(c, 3)

    def forward(self, x):
        x = torch.relu(self.bn0(self.stem(x)))
        x = torch.relu(x + self.abn2(self.a2(torch.relu(self.abn1(self.a1(x))))))
        x = torch.relu(x + self.b2(torch.relu(self.b1(x))))
        return self.fc(x.mean((2, 3)))


def test_wider_through_residual_adds():
    torch.manual_seed(0)
    m, x = ResNetLet(), torch.randn(4, 3, 5, 5)
    _randomise_bn(m, x)
    stream = dict(producers=["stem", "bn0", "a2", "abn2", "b2"],
                  consumers=["a1", "b1", "fc"])
    _check(m, lambda: net2wider(m, width=10, **stream), x)
    _check(m, lambda: net2wider(m, ["a1", "abn1"], ["a2"], 7), x)


def test_noise_breaks_symmetry_approximately():
    torch.manual_seed(0)
    m, x = MLP(hidden=(8, 6), image_size=4), torch.randn(5, 1, 4, 4)
    before = m(x).detach()
    net2wider(m, ["features.1"], ["features.3"], 16, noise=0.01)
    diff = (m(x) - before).abs().max()
    assert 0 < diff < 0.1


def test_wider_errors():
    m = MLP(hidden=(8, 6), image_size=4)
    with pytest.raises(ValueError, match="shrink"):
        net2wider(m, ["features.1"], ["features.3"], 4)
    with pytest.raises(ValueError, match="disagree"):
        net2wider(m, ["features.1", "features.3"], ["head.fc"], 12)
    with pytest.raises(ValueError, match="no module"):
        net2wider(m, ["nope"], ["features.3"], 12)


@pytest.mark.parametrize("kind", ["linear", "conv", "conv_bn"])
def test_deeper_is_identity(kind):
    torch.manual_seed(0)
    if kind == "linear":
        m, x, after = MLP(hidden=(8, 6), image_size=4), torch.randn(5, 1, 4, 4), "features.2"
        modes = ("eval", "train")
    else:
        m, x, after = ConvBNNet(), torch.randn(6, 3, 6, 6), None
        m = nn.Sequential(m.conv1, m.bn1, nn.ReLU(), m.conv2, nn.ReLU(), nn.Flatten(), m.fc)
        after = "2"
        _randomise_bn(m, x)
        modes = ("eval",) if kind == "conv_bn" else ("eval", "train")
    _check(m, lambda: net2deeper(m, after, kind, kernel_size=3), x, modes)
    assert sum(isinstance(q, (nn.Linear, nn.Conv2d)) for q in m.modules()) == 4


def test_deeper_refuses_tanh():
    m = nn.Sequential(nn.Linear(4, 4), nn.Tanh(), nn.Linear(4, 2))
    with pytest.raises(ValueError, match="f\\(f\\(x\\)\\) != f\\(x\\).*Tanh|Tanh.*f\\(f"):
        net2deeper(m, "1")
    m = nn.Sequential(nn.Linear(4, 4), nn.Sigmoid(), nn.Linear(4, 2))
    with pytest.raises(ValueError, match="Sigmoid"):
        net2deeper(m, "1")


def test_tiny_net2net_run_starts_at_the_teacher():
    g = torch.Generator().manual_seed(0)
    centres = torch.randn(4, 1, 4, 4, generator=g) * 2
    y = torch.randint(0, 4, (300,), generator=g)
    d = TensorData(centres[y] + torch.randn(300, 1, 4, 4, generator=g), y)
    split = DataSplit(d.subset(range(200)), d.subset(range(200, 300)), 4, 1, "blobs")
    torch.manual_seed(0)
    m = MLP(hidden=(6,), image_size=4)
    cfg = TrainConfig(epochs=4, lr=0.05, batch_size=20, device="cpu")
    train(m, split, cfg, progress=False)
    acc = evaluate(m, split)["top1"]
    net2wider(m, ["features.1"], ["head.fc"], 12)
    net2deeper(m, "features.2", "linear")
    assert evaluate(m, split)["top1"] == acc
    res = train(m, split, cfg.replace(epochs=2), progress=False)
    assert res.metrics["top1"] >= acc - 5
