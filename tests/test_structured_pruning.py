"""Structured pruning: the dependency graph ties coupled channels, the pruned dense model
computes what the original computes with the removed channels zeroed, every registered
classifier survives pruning, and targets and bad input behave."""

import os

import pytest
import torch
import torch.nn as nn

import cnnlab
from cnnlab.compress.depgraph import trace
from cnnlab.compress.structured import (
    apply_pruning,
    bn_l1,
    load_pruned,
    prune,
    save_pruned,
    score_bn,
    score_l1,
    score_taylor,
    select,
    slimming_loss,
    slimming_step,
    zero_units,
)
from cnnlab.layers import SqueezeExcite, channel_shuffle, channel_split
from cnnlab.models import model_info
from cnnlab.profile import build_on_meta, profile

torch.set_num_threads(1)


def conv_bn(cin, cout, groups=1):
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, groups=groups, bias=False),
                         nn.BatchNorm2d(cout), nn.ReLU())


class Head(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.fc = nn.Linear(c * 4 * 4, 3)

    def forward(self, x):
        return self.fc(torch.flatten(nn.functional.adaptive_avg_pool2d(x, 4), 1))


class Residual(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem, self.body, self.head = conv_bn(3, 8), conv_bn(8, 8), Head(8)

    def forward(self, x):
        x = self.stem(x)
        return self.head(x + self.body(x))


class Concat(nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.b, self.head = conv_bn(3, 4), conv_bn(3, 6), Head(10)

    def forward(self, x):
        return self.head(torch.cat([self.a(x), self.b(x)], 1))


class Depthwise(nn.Module):
    def __init__(self):
        super().__init__()
        self.pw, self.dw, self.grouped = conv_bn(3, 8), conv_bn(8, 8, groups=8), conv_bn(8, 6, 2)
        self.head = Head(6)

    def forward(self, x):
        return self.head(self.grouped(self.dw(self.pw(x))))


class ShuffleSplit(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem, self.branch, self.head = conv_bn(3, 8), conv_bn(4, 4), Head(8)

    def forward(self, x):
        x1, x2 = channel_split(self.stem(x))
        return self.head(channel_shuffle(torch.cat([x1, self.branch(x2)], 1), 2))


class SE(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem, self.se, self.head = conv_bn(3, 8), SqueezeExcite(8, 0.5), Head(8)

    def forward(self, x):
        return self.head(self.se(self.stem(x)))


def randomize(model):
    torch.manual_seed(0)
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.running_mean.normal_()
            m.running_var.uniform_(0.5, 2)
            m.weight.data.normal_()
            m.bias.data.normal_()
    return model.eval()


def unit_of(graph, weight, row):
    return next(u.id for u in graph.units if (weight, 0, row) in u.slices)


def test_residual_ties_both_operands():
    g = trace(Residual(), (3, 8, 8))
    assert len(g) == 8  # one unit per channel of the residual stream
    for i in range(8):
        u = g.units[unit_of(g, "stem.0.weight", i)]
        assert ("body.0.weight", 0, i) in u.slices and ("body.0.weight", 1, i) in u.slices
        assert {("head.fc.weight", 1, i * 16 + k) for k in range(16)} <= set(u.slices)


def test_concat_offsets_consumers():
    g = trace(Concat(), (3, 8, 8))
    u = g.units[unit_of(g, "b.0.weight", 2)]
    assert ("head.fc.weight", 1, (4 + 2) * 16) in u.slices
    assert ("b.1.weight", 0, 2) in u.slices  # the BN that follows


def test_depthwise_and_grouped():
    g = trace(Depthwise(), (3, 8, 8))
    u = g.units[unit_of(g, "pw.0.weight", 5)]
    assert ("dw.0.weight", 0, 5) in u.slices  # depthwise keeps its input's channel
    assert ("grouped.0.weight", 1, 5 % 4) in u.slices
    # position 1 of input group 0 and of group 1 go together, so the groups stay equal
    assert unit_of(g, "pw.0.weight", 1) == unit_of(g, "pw.0.weight", 5)
    assert unit_of(g, "grouped.0.weight", 0) == unit_of(g, "grouped.0.weight", 3)


def test_shuffle_and_split_tie_positions():
    g = trace(ShuffleSplit(), (3, 8, 8))
    # the split ties stem channel p to p + 4; the shuffle ties x1[p] to branch[p]
    assert unit_of(g, "stem.0.weight", 1) == unit_of(g, "stem.0.weight", 5)
    assert unit_of(g, "stem.0.weight", 1) == unit_of(g, "branch.0.weight", 1)
    assert len(g) == 4


class SliceSplit(ShuffleSplit):
    """The same split written as slicing and as narrow by keywords: the same ties."""

    def forward(self, x):
        y = self.stem(x)
        x1, x2 = y[:, :4], y.narrow(dim=1, start=4, length=4)
        return self.head(channel_shuffle(torch.cat([x1, self.branch(x2)], 1), 2))


def test_split_written_as_slices_or_narrow_ties_the_same_positions():
    for model in (ShuffleSplit(), SliceSplit()):
        g = trace(model, (3, 8, 8))
        assert unit_of(g, "stem.0.weight", 1) == unit_of(g, "stem.0.weight", 5)
        assert len(g) == 4


def test_se_gate_tied_to_its_channel():
    g = trace(SE(), (3, 8, 8))
    u = g.units[unit_of(g, "stem.0.weight", 3)]
    assert ("se.conv_expand.weight", 0, 3) in u.slices
    assert ("se.conv_reduce.weight", 1, 3) in u.slices


@pytest.mark.parametrize("cls", [Residual, Concat, Depthwise, ShuffleSplit, SE])
def test_pruned_equals_zeroed_small(cls):
    model = randomize(cls())
    res = prune(model, amount=0.4, input_size=(3, 8, 8))
    assert res.removed
    x = torch.randn(2, 3, 8, 8)
    with torch.no_grad():
        pruned = res.model.eval()(x)
        zeroed = zero_units(model, res.graph, res.removed)(x)
        original = model(x)
    torch.testing.assert_close(pruned, zeroed, rtol=1e-5, atol=1e-5)
    assert (pruned - original).abs().max() > 1e-3  # the test can fail: something was cut


@pytest.mark.parametrize("name,size", [("resnet20", 16), ("shufflenet_v2_x0_5", 32),
                                       ("densenet_40_12", 16),
                                       ("squeezenet1_1", 64), ("lenet5_caffe", 28)])
def test_pruned_registry_model_equals_zeroed(name, size):
    model = randomize(cnnlab.create_model(name))
    size = (model_info(name).input_size[0], size, size)
    res = prune(model, amount=0.3, input_size=size)
    x = torch.randn(2, *size)
    with torch.no_grad():
        pruned = res.model.eval()(x)
        zeroed = zero_units(model, res.graph, res.removed)(x)
    torch.testing.assert_close(pruned, zeroed, rtol=1e-4, atol=1e-4)
    assert profile(res.model, size).macs == res.macs_after < res.macs_before


# every registered classifier (fcn*, unet and hourglass are dense-prediction networks, not
# classifiers) with CNNLAB_FULL_REGISTRY=1: about 130 models, minutes on 2 shared cores. By
# default the ones whose structure differs: LRN and groups (alexnet_grouped), concatenation
# (densenet, googlenet with its auxiliary heads, squeezenet's Fire with bypass), SE and
# depthwise (efficientnet_b0, mobilenet_v2), LeNet-5's per-map coefficients and connection
# table, option-A zero-padded shortcuts (resnet20), grouped convolution + shuffle (ShuffleNet
# v1), split + shuffle (ShuffleNet V2), pre-activation (preact_resnet18)
CLASSIFIERS = [n for n in cnnlab.list_models()
               if model_info(n).family not in ("fcn", "unet", "hourglass")]
QUICK = ["alexnet_grouped", "densenet_40_12", "efficientnet_b0", "googlenet", "lenet5",
         "lenet5_caffe", "mobilenet_v2", "preact_resnet18", "resnet20", "shufflenet_v1_g3",
         "shufflenet_v2_x0_5", "squeezenet1_0_complex_bypass"]


@pytest.mark.parametrize("name", CLASSIFIERS if os.environ.get("CNNLAB_FULL_REGISTRY")
                         else [n for n in QUICK if n in CLASSIFIERS])
def test_every_classifier_runs_after_pruning_30_percent(name):
    model = build_on_meta(name)
    info = model_info(name)
    s = min(max(getattr(model, "min_input_size", 1), 32), info.input_size[-1])
    size = (info.input_size[0], s, s)
    graph = trace(model, size)
    assert len(graph) > 0
    scores = torch.rand(len(graph), generator=torch.Generator().manual_seed(0))
    removed = select(graph, scores, amount=0.3)
    assert len(removed) == round(0.3 * len(graph))
    pruned = apply_pruning(model, graph, removed)
    assert profile(pruned, size).macs < graph.macs  # runs on meta tensors, and is smaller
    pruned.train()
    with torch.no_grad():
        pruned(torch.empty(2, *size, device="meta"))  # auxiliary heads too


def test_macs_target_and_reload(tmp_path):
    model = randomize(cnnlab.create_model("resnet20"))
    res = prune(model, macs=0.5, input_size=(3, 32, 32))
    macs = profile(res.model, (3, 32, 32)).macs
    assert 0.45 * res.macs_before <= macs <= 0.5 * res.macs_before
    save_pruned(res.model, tmp_path / "p", model_name="resnet20")
    back = load_pruned(tmp_path / "p").eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(back(x), res.model.eval()(x))


def test_scores():
    model = randomize(Residual())
    g = trace(model, (3, 8, 8))
    with torch.no_grad():
        model.stem[0].weight[2] = 0
        model.body[0].weight[2] = 0
        model.stem[1].weight[6] = 0
        model.body[1].weight[6] = 0
    assert int(score_l1(model, g).argmin()) == unit_of(g, "stem.0.weight", 2)
    bn = score_bn(model, g)
    assert int(bn.argmin()) == unit_of(g, "stem.0.weight", 6)
    u = unit_of(g, "stem.0.weight", 0)
    expected = model.stem[1].weight[0].abs() + model.body[1].weight[0].abs()
    assert bn[u].item() == pytest.approx(expected.item(), rel=1e-6)
    with torch.no_grad():  # a channel the head ignores has zero gradient: Taylor score 0
        model.head.fc.weight[:, 4 * 16:5 * 16] = 0
        model.body[0].weight[:, 4] = 0
    batches = [(torch.randn(4, 3, 8, 8), torch.randint(0, 3, (4,)))]
    taylor = score_taylor(model, g, batches)
    assert taylor[unit_of(g, "stem.0.weight", 4)] == 0
    assert taylor[unit_of(g, "stem.0.weight", 2)] == 0  # zero filters: zero activations
    assert (taylor > 0).sum() >= 4


def test_slimming_loss_adds_l1_of_gamma():
    model = Residual()
    loss = slimming_loss(model, lam=0.5, base=lambda out, y: out.sum() * 0)
    out = model(torch.randn(1, 3, 8, 8))
    assert loss(out, None).item() == pytest.approx(0.5 * bn_l1(model).item())
    with pytest.raises(ValueError, match="BatchNorm"):
        slimming_loss(Head(2))


def test_slimming_step_hook_shrinks_gamma_towards_zero():
    model = randomize(Residual())
    before = model.stem[1].weight.detach().clone()
    slimming_step(lam=0.5, lr=0.1)(model, 0)
    torch.testing.assert_close(model.stem[1].weight.detach(),
                               before - 0.05 * torch.sign(before))


def test_no_prunable_layer():
    model = nn.Sequential(nn.Flatten(), nn.Linear(12, 3))
    with pytest.raises(ValueError, match="no prunable channel"):
        prune(model, macs=0.5, input_size=(3, 2, 2))


def test_target_below_reachable():
    with pytest.raises(ValueError, match="cannot keep only 1%"):
        prune(randomize(Residual()), macs=0.01, input_size=(3, 8, 8))


# --- cnnlab prune ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def lenet_ckpt(tmp_path_factory):
    from cnnlab.train.checkpoint import save_checkpoint

    path = tmp_path_factory.mktemp("ckpt") / "lenet5_caffe.safetensors"
    torch.manual_seed(0)
    save_checkpoint(path, cnnlab.create_model("lenet5_caffe"),
                    meta={"model": "lenet5_caffe", "input_size": [1, 28, 28]})
    return path


def cli(capsys, *argv):
    from cnnlab.cli import main

    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_prune_writes_a_reloadable_model(capsys, tmp_path, lenet_ckpt):
    out = tmp_path / "pruned"
    code, text, err = cli(capsys, "prune", "lenet5_caffe", "--checkpoint", str(lenet_ckpt),
                          "--macs", "0.5", "--runs", "3", "--out", str(out))
    assert code == 0, err
    assert "conv1" in text and "fc1" in text and "total" in text
    back = load_pruned(out)
    macs = profile(back, (1, 28, 28)).macs
    assert macs <= 0.5 * profile("lenet5_caffe").macs


@pytest.mark.parametrize("extra,message", [
    (["--macs", "0.001"], "cannot keep only"),
    (["--macs", "1.5"], "--macs must be"),
    (["--score", "taylor"], "needs --data"),
])
def test_cli_prune_bad_input(capsys, tmp_path, lenet_ckpt, extra, message):
    out = tmp_path / "pruned"
    code, _, err = cli(capsys, "prune", "lenet5_caffe", "--checkpoint", str(lenet_ckpt),
                       "--out", str(out), *extra)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_cli_prune_checkpoint_of_another_model(capsys, tmp_path, lenet_ckpt):
    out = tmp_path / "pruned"
    code, _, err = cli(capsys, "prune", "lenet_300_100", "--checkpoint", str(lenet_ckpt),
                       "--out", str(out))
    assert code == 2 and "holds lenet5_caffe, not lenet_300_100" in err
    assert list(tmp_path.iterdir()) == []
