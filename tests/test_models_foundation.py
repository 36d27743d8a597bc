"""LeNet, AlexNet, VGG, MobileNet v1: structure the papers state, forward passes."""

import pytest
import torch

import cnnlab
from cnnlab.profile import build_on_meta


def test_lenet5_layer_counts():
    m = cnnlab.create_model("lenet5")
    own = {n: sum(p.numel() for p in mod.parameters())
           for n, mod in m.features.named_children()}
    assert [own["c1"], own["s2"], own["c3"], own["s4"], own["c5"]] == [156, 12, 1516, 32, 48120]
    assert sum(p.numel() for p in m.f6.parameters()) == 10164
    assert m.output.prototypes.shape == (10, 84) and not m.output.prototypes.requires_grad
    x = torch.randn(4, 1, 32, 32)
    assert m(x).shape == (4, 10)


def test_lenet5_c3_follows_table_1():
    from cnnlab.models.lenet import C3_TABLE

    m = cnnlab.create_model("lenet5")
    c3 = m.features.c3
    x = torch.zeros(1, 6, 14, 14)
    base = c3(x)
    for src in range(6):
        x = torch.zeros(1, 6, 14, 14)
        x[0, src] = 1.0
        changed = (c3(x) - base).abs().flatten(2).sum(-1)[0] > 0
        expected = torch.tensor([src in row for row in C3_TABLE])
        assert torch.equal(changed, expected), src


def test_mobilenet_table2_mult_add_shares():
    shares = {d["type"]: d for d in cnnlab.profile("mobilenet_v1").by_type()}
    assert round(shares["conv 1x1"]["macs_pct"], 2) == 94.86
    assert round(shares["conv dw 3x3"]["macs_pct"], 2) == 3.06
    assert round(shares["conv 3x3"]["macs_pct"], 2) == 1.91  # printed 1.19: a typo
    assert round(shares["fully connected"]["macs_pct"], 2) == 0.18


def test_mobilenet_table1_strides():
    fi = cnnlab.create_model("mobilenet_v1", width_mult=0.25).feature_info
    assert [f["reduction"] for f in fi] == [2, 4, 8, 16, 32]
    feats = cnnlab.create_model("mobilenet_v1", width_mult=0.25, features_only=True)
    outs = feats(torch.zeros(1, 3, 64, 64))
    assert [o.shape[-1] for o in outs] == [32, 16, 8, 4, 2]
    assert [o.shape[1] for o in outs] == feats.channels


def test_vgg_table1_layer_counts():
    for name, weight_layers in [("vgg_a", 11), ("vgg_b", 13), ("vgg_c", 16), ("vgg_d", 16),
                                ("vgg_e", 19)]:
        m = build_on_meta(name)
        n = sum(1 for mod in m.modules() if isinstance(mod, (torch.nn.Conv2d, torch.nn.Linear)))
        assert n == weight_layers, name
    c = build_on_meta("vgg_c")
    assert sum(1 for mod in c.modules() if isinstance(mod, torch.nn.Conv2d)
               and mod.kernel_size == (1, 1)) == 3


def test_alexnet_grouped_structure():
    m = build_on_meta("alexnet_grouped")
    groups = [mod.groups for mod in m.modules() if isinstance(mod, torch.nn.Conv2d)]
    assert groups == [1, 2, 1, 2, 2]
    assert sum(isinstance(mod, torch.nn.LocalResponseNorm) for mod in m.modules()) == 2
    p = cnnlab.profile("alexnet_grouped")
    assert p.rows[0].output_shape == (1, 96, 55, 55)


SMALL = ["lenet5", "lenet5_modern", "lenet_300_100", "lenet5_caffe", "mobilenet_v1"]


@pytest.mark.parametrize("name", SMALL)
def test_small_models_forward_backward(name):
    info = cnnlab.model_info(name)
    kw = {"width_mult": 0.25} if name.startswith("mobilenet") else {}
    m = cnnlab.create_model(name, num_classes=5, **kw)
    size = info.input_size if info.input_size[-1] <= 32 else (3, 64, 64)
    out = m(torch.randn(2, *size))
    assert out.shape == (2, 5)
    out.sum().backward()
    assert all(p.grad is not None for p in m.parameters() if p.requires_grad)


# Dense predictors' score maps: FCN crops back to the input (Sec. 4.1), U-Net's valid
# convolutions give 388x388 for a 572x572 tile (Fig. 1), the hourglass predicts at 64x64
# from 256x256 (Sec. 3.1)
DENSE_OUTPUT = {"fcn8s": (500, 500), "fcn16s": (500, 500), "fcn32s": (500, 500),
                "unet": (388, 388), "hourglass": (64, 64)}


@pytest.mark.parametrize("name", cnnlab.list_models())
def test_every_model_runs_on_meta(name, meta_model):
    info = cnnlab.model_info(name)
    m = meta_model(name)
    out = m(torch.empty(1, *info.input_size, device="meta"))
    # classifiers give (1, classes); dense models (1, classes, H, W)
    assert tuple(out.shape) == (1, info.num_classes, *DENSE_OUTPUT.get(name, ()))
    assert m.dense_prediction == (name in DENSE_OUTPUT)


FIXED_SIZE = {"lenet_300_100", "lenet5_caffe"}  # checked in their own test


@pytest.mark.parametrize("name", [n for n in cnnlab.list_models() if n not in FIXED_SIZE])
def test_min_input_size_is_exact(name, meta_model):
    """The declared minimum runs; one pixel less is refused with a message naming it."""
    m = meta_model(name)
    lo = m.min_input_size
    c = cnnlab.model_info(name).input_size[0]
    cnnlab.profile(m, (c, lo, lo))
    if lo > 1:
        with pytest.raises(ValueError, match=f"at least {lo}x{lo}|input too small"):
            cnnlab.profile(m, (c, lo - 1, lo - 1))


def test_fixed_size_models_name_their_size():
    with pytest.raises(ValueError, match="28x28"):
        cnnlab.profile("lenet5_caffe", (1, 32, 32))


def test_default_init_keeps_the_signal_through_depthwise_layers():
    torch.manual_seed(0)
    m = cnnlab.create_model("mobilenet_v1", width_mult=0.25).eval()
    dw = m.features.block1.dw.conv
    assert dw.weight.std().item() == pytest.approx((2 / 9) ** 0.5, rel=0.15)
    out = m.forward_features(torch.randn(2, 3, 64, 64))
    assert out.abs().mean() > 1e-3  # PyTorch's default init leaves ~1e-13 here


def test_default_init_respects_submodules_with_their_own_scheme():
    from cnnlab.models.base import default_init

    class Special(torch.nn.Conv2d):
        def init_weights(self):
            torch.nn.init.constant_(self.weight, 0.5)

    net = torch.nn.Sequential(torch.nn.Conv2d(2, 2, 3), Special(2, 2, 1))
    default_init(net)
    assert torch.all(net[1].weight == 0.5)
    assert net[0].weight.std() > 0.1 and torch.all(net[0].bias == 0)


def test_lenet5_c3_dense_path_equals_the_partial_connections():
    torch.manual_seed(0)
    c3 = cnnlab.create_model("lenet5").features.c3
    x = torch.randn(3, 6, 14, 14, requires_grad=True)
    dense, grouped = c3(x), c3.forward_grouped(x)
    assert torch.allclose(dense, grouped, atol=1e-5)
    g_dense = torch.autograd.grad(dense.square().sum(), [x, *c3.parameters()])
    g_grouped = torch.autograd.grad(grouped.square().sum(), [x, *c3.parameters()])
    for a, b in zip(g_dense, g_grouped):
        assert torch.allclose(a, b, atol=1e-4)
    weight, _ = c3.dense_weight()
    assert int((weight.abs().sum((2, 3)) > 0).sum()) == 60  # Table I has 60 connections
    c3_rows = [r for r in cnnlab.profile("lenet5").rows if r.name.startswith("features.c3")]
    assert sum(r.macs for r in c3_rows) == 60 * 25 * 10 * 10  # the profiler counts the table


@pytest.mark.parametrize("name", [n for n in cnnlab.list_models() if n != "lenet_300_100"])
def test_features_only_matches_declared_feature_info(name, meta_model):
    """Every model (but the MLP) yields one map per declared stride, with the declared
    channels; later maps are no larger than earlier ones."""
    from cnnlab.models.base import FeatureExtractor

    m = meta_model(name)
    info = m.feature_info
    outs = FeatureExtractor(m)(torch.empty(1, *cnnlab.model_info(name).input_size,
                                           device="meta"))
    assert [o.shape[1] for o in outs] == [f["channels"] for f in info]
    reductions = [f["reduction"] for f in info]
    assert reductions == sorted(reductions)
    sides = [o.shape[-1] for o in outs]
    assert sides == sorted(sides, reverse=True)
