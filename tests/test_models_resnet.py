"""ResNet (ImageNet, CIFAR, pre-activation), Wide ResNet, ResNeXt: structure the papers state,
shortcut options, feature strides, forward and backward passes."""

import pytest
import torch
import torch.nn as nn

import cnnlab
from cnnlab.layers.resnet_blocks import (
    BasicBlock,
    Bottleneck,
    PreActBasicBlock,
    PreActBottleneck,
    ZeroPadShortcut,
    make_shortcut,
)
from cnnlab.profile import build_on_meta

BLOCKS = (BasicBlock, Bottleneck, PreActBasicBlock, PreActBottleneck)


def _blocks(model):
    return [m for m in model.modules() if isinstance(m, BLOCKS)]


def _weight_layers(model):
    """Convolutions outside the shortcuts, plus linear layers: the papers' depth."""
    shortcut_convs = {id(c) for b in _blocks(model) if b.shortcut is not None
                      for c in b.shortcut.modules()}
    return sum(1 for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))
               and id(m) not in shortcut_convs)


@pytest.mark.parametrize("depth", [18, 34, 50, 101, 152])
def test_resnet_table1_depth(depth):
    assert _weight_layers(build_on_meta(f"resnet{depth}")) == depth
    assert _weight_layers(build_on_meta(f"preact_resnet{depth}")) == depth


@pytest.mark.parametrize("name,depth", [("resnet20", 20), ("resnet110", 110), ("plain56", 56),
                                        ("preact_resnet164", 164)])
def test_cifar_depths(name, depth):
    assert _weight_layers(build_on_meta(name)) == depth


def test_wrn_depth_counts_projections():
    # WRN-d-k: 6N + 1 convolutions and three 1x1 projections, d = 6N + 4
    m = build_on_meta("wrn_28_10")
    assert sum(isinstance(x, nn.Conv2d) for x in m.modules()) == 28


def test_stride_in_1x1_v1_and_v1_5():
    v1 = build_on_meta("resnet50")
    v15 = build_on_meta("resnet50", stride_in_1x1=False)
    assert v1.conv3_x[0].conv1.conv.stride == (2, 2) and v1.conv3_x[0].conv2.conv.stride == (1, 1)
    assert v15.conv3_x[0].conv1.conv.stride == (1, 1) and v15.conv3_x[0].conv2.conv.stride == (2, 2)
    # PAPER-NOTES: 3.86 G vs 4.09 G
    assert round(cnnlab.profile(v1, (3, 224, 224)).macs / 1e9, 2) == 3.86
    assert round(cnnlab.profile(v15, (3, 224, 224)).macs / 1e9, 2) == 4.09


def test_stem_is_7x7_and_3x3_max_pool():
    m = build_on_meta("resnet18")
    assert m.conv1.conv.kernel_size == (7, 7) and m.conv1.conv.stride == (2, 2)
    assert m.pool.kernel_size == 3 and m.pool.stride == 2


def test_option_a_has_no_parameters_and_pads_zeros():
    sc = make_shortcut("A", 16, 32, 2)
    assert isinstance(sc, ZeroPadShortcut) and sum(p.numel() for p in sc.parameters()) == 0
    x = torch.randn(2, 16, 8, 8)
    y = sc(x)
    assert y.shape == (2, 32, 4, 4)
    assert torch.equal(y[:, :16], x[:, :, ::2, ::2]) and not y[:, 16:].any()
    # identity shortcuts everywhere: a CIFAR ResNet has its plain network's parameters
    for depth in (20, 56):
        assert cnnlab.profile(f"resnet{depth}").params == cnnlab.profile(f"plain{depth}").params
    assert cnnlab.profile("resnet34", shortcut="A").params == cnnlab.profile("plain34").params


def test_shortcut_options_b_c_and_plain():
    def projections(m):
        return sum(not isinstance(b.shortcut, (nn.Identity, ZeroPadShortcut))
                   for b in _blocks(m))

    assert projections(build_on_meta("resnet34")) == 3  # B: where dimensions change
    assert projections(build_on_meta("resnet50")) == 4  # incl. conv2_1 (64 -> 256)
    assert projections(build_on_meta("resnet34", shortcut="C")) == 16  # C: every block
    assert all(b.shortcut is None for b in _blocks(build_on_meta("plain34")))
    with pytest.raises(ValueError, match="shortcut"):
        cnnlab.create_model("resnet18", shortcut="D")


def test_resnet50_feature_strides():
    feats = build_on_meta("resnet50", features_only=True).eval()
    assert feats.reductions == [2, 4, 8, 16, 32]
    assert feats.channels == [64, 256, 512, 1024, 2048]
    outs = feats(torch.empty(1, 3, 224, 224, device="meta"))
    assert [tuple(o.shape[1:]) for o in outs] == [(64, 112, 112), (256, 56, 56),
                                                  (512, 28, 28), (1024, 14, 14),
                                                  (2048, 7, 7)]


def test_cifar_feature_strides():
    for name, channels in [("resnet20", [16, 32, 64]), ("preact_resnet164", [64, 128, 256]),
                           ("wrn_16_8", [128, 256, 512])]:
        feats = build_on_meta(name, features_only=True).eval()
        outs = feats(torch.empty(1, 3, 32, 32, device="meta"))
        assert [o.shape[-1] for o in outs] == [32, 16, 8], name
        assert [o.shape[1] for o in outs] == channels, name


def test_preact_blocks_end_in_a_convolution():
    m = build_on_meta("preact_resnet164")
    for b in _blocks(m):
        assert isinstance(b, PreActBottleneck)
        assert isinstance(list(b.body.modules())[-1], nn.Conv2d)
    assert isinstance(m.final_act.bn, nn.BatchNorm2d)  # the last block's output is normalised


def test_wrn_dropout_between_convolutions():
    m = cnnlab.create_model("wide_resnet", depth=10, k=1, conv_drop_rate=0.3)
    drops = [b.body.conv2.drop for b in _blocks(m)]
    assert len(drops) == 3 and all(d.p == 0.3 for d in drops)
    x = torch.randn(2, 3, 16, 16)
    m.eval()
    assert torch.equal(m(x), m(x))
    m.train()
    assert not torch.equal(m(x), m(x))
    with pytest.raises(ValueError, match="6N"):
        cnnlab.create_model("wide_resnet", depth=27)


def test_resnext_grouped_widths_table2():
    # Table 2: conv2's grouped 3x3 is C x d wide: 64, 80, 96, 112, 128 for 1..32 paths
    ref = cnnlab.profile("resnet50", stride_in_1x1=False)
    for (c, d), width in zip([(2, 40), (4, 24), (8, 14), (32, 4)], [80, 96, 112, 128]):
        m = build_on_meta("resnext", cardinality=c, base_width=d)
        conv = m.conv2_x[0].conv2.conv
        assert (conv.in_channels, conv.out_channels, conv.groups) == (width, width, c)
        assert m.conv5_x[0].conv2.conv.out_channels == 8 * width
        p = cnnlab.profile(m, (3, 224, 224))  # "roughly preserved complexity"
        assert abs(p.macs / ref.macs - 1) < 0.05 and abs(p.params / ref.params - 1) < 0.03
    with pytest.raises(ValueError, match="depth"):
        cnnlab.create_model("resnext", depth=34)


def test_bottleneck_is_general():
    """The constructor other families use: any widths, groups, an explicit downsample."""
    down = nn.Sequential(nn.AvgPool2d(2), nn.Conv2d(8, 24, 1))
    b = Bottleneck(8, 12, 24, stride=2, groups=3, downsample=down)
    assert b.shortcut is down and b.conv2.conv.groups == 3
    assert b(torch.randn(1, 8, 6, 6)).shape == (1, 24, 3, 3)
    with pytest.raises(ValueError, match="divisible"):
        Bottleneck(8, 10, 24, groups=3)


@pytest.mark.parametrize("name,kwargs,size", [
    ("resnet20", {}, 32),
    ("plain20", {}, 32),
    ("preact_resnet110", {}, 16),
    ("wide_resnet", {"depth": 10, "k": 2, "conv_drop_rate": 0.3}, 16),
    ("resnet18", {"shortcut": "A"}, 32),
    ("resnext", {"cardinality": 4, "base_width": 2}, 32),
    ("preact_resnet50", {}, 32),
])
def test_forward_backward(name, kwargs, size):
    torch.manual_seed(0)
    m = cnnlab.create_model(name, num_classes=5, **kwargs)
    out = m(torch.randn(2, 3, size, size))
    assert out.shape == (2, 5)
    out.logsumexp(1).sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in m.parameters())
