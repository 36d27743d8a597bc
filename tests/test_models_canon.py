"""The canon's remaining networks (issue 21): Inception-v4, ResNet-200, ResNeXt's equivalent
block forms and its capacity rule, the early LeNets, NASNet's other cells and sizes."""

import pytest
import torch
import torch.nn as nn

import cnnlab
from cnnlab.layers.inception import Branches
from cnnlab.profile import build_on_meta


def _meta(size, batch=1, chans=3):
    return torch.empty(batch, chans, size, size, device="meta")


# --- Inception-v4 (Szegedy et al. 2016, Figs. 3-9) ---------------------------------------
def test_inception_v4_fig9_grids_and_widths(meta_model):
    m = meta_model("inception_v4")
    x, shapes = _meta(299), {}
    for name, layer in m.features.named_children():
        x = layer(x)
        shapes[name] = tuple(x.shape[1:])
    # Fig. 3: 149x149x32, 147x147x32, 147x147x64, 73x73x160, 71x71x192, 35x35x384
    assert [shapes[k] for k in ("conv1a", "conv2a", "conv2b", "mixed3a", "mixed4a",
                                "mixed5a")] == [(32, 149, 149), (32, 147, 147), (64, 147, 147),
                                                (160, 73, 73), (192, 71, 71), (384, 35, 35)]
    # Fig. 9: 35x35x384 -> 17x17x1024 -> 8x8x1536
    assert shapes["inception_a"] == (384, 35, 35) and shapes["reduction_a"] == (1024, 17, 17)
    assert shapes["inception_b"] == (1024, 17, 17) and shapes["reduction_b"] == (1536, 8, 8)
    assert shapes["inception_c"] == (1536, 8, 8)
    assert [len(m.features[i]) for i in (6, 8, 10)] == [4, 7, 3]
    assert m.head.drop.p == 0.2  # keep 0.8


def test_inception_v4_reduction_a_table1():
    """Table 1's k, l, m, n for the shared Reduction-A (Fig. 7): the output width is
    n + m + input, as the table's two rows give for v4 and Inception-ResNet-v2."""
    from cnnlab.models.inception_resnet import reduction_a

    v4 = Branches(384, reduction_a(192, 224, 256, 384))
    assert v4.out_channels == 384 + 256 + 384
    irv2 = Branches(320, reduction_a(256, 256, 384, 384))
    assert irv2.out_channels == 384 + 384 + 320
    convs = [c.conv.out_channels for c in v4.branch3x3dbl]
    assert convs == [192, 224, 256] and v4.branch3x3dbl[2].conv.stride == (2, 2)


def test_inception_v4_exact_counts():
    p = cnnlab.profile("inception_v4")
    assert p.params == 42_679_816 and round(p.macs / 1e9, 2) == 12.25


# --- ResNet-200 --------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["resnet200", "preact_resnet200"])
def test_resnet200_depth(name, meta_model):
    m = meta_model(name)
    stages = [len(getattr(m, f"conv{i}_x")) for i in range(2, 6)]
    assert stages == [3, 24, 36, 3]
    shortcut = {id(c) for b in m.modules() if getattr(b, "shortcut", None) is not None
                for c in b.shortcut.modules()}
    layers = sum(1 for c in m.modules() if isinstance(c, (nn.Conv2d, nn.Linear))
                 and id(c) not in shortcut)
    assert layers == 200


# --- ResNeXt: three equivalent forms, capacity rule (Xie et al. 2017, Fig. 3, Table 2) ---
def _randomised_bottleneck(in_chs, c, d, out, stride):
    from cnnlab.layers.resnet_blocks import Bottleneck

    torch.manual_seed(0)
    block = Bottleneck(in_chs, c * d, out, stride, groups=c)
    for mod in block.modules():  # non-trivial BN statistics, so a wrong slice shows
        if isinstance(mod, nn.BatchNorm2d):
            mod.weight.data.uniform_(0.5, 1.5)
            mod.bias.data.uniform_(-0.2, 0.2)
            mod.running_mean.uniform_(-0.2, 0.2)
            mod.running_var.uniform_(0.5, 1.5)
    return block.eval()


@pytest.mark.parametrize("stride,in_chs", [(1, 32), (2, 16)])
def test_resnext_three_forms_compute_the_same_function(stride, in_chs):
    from cnnlab.layers.aggregated import EarlyConcat, SplitTransformMerge, as_form

    block = _randomised_bottleneck(in_chs, 4, 3, 32, stride)
    a, b = as_form(block, "a"), as_form(block, "b")
    assert isinstance(a, SplitTransformMerge) and isinstance(b, EarlyConcat)
    assert len(a.paths) == len(b.paths) == 4 and len(a.expand) == 4
    # same number of weights: the three are one function written three ways
    count = [sum(p.numel() for p in m.parameters()) for m in (a, b, block)]
    assert count[0] == count[1] == count[2]
    x = torch.randn(2, in_chs, 8, 8)
    with torch.no_grad():
        ref = block(x)
        assert torch.allclose(a(x), ref, atol=1e-5) and torch.allclose(b(x), ref, atol=1e-5)
        # a permuted path is a different function: the test can tell them apart
        a.expand[0].weight.copy_(a.expand[1].weight)
        assert not torch.allclose(a(x), ref, atol=1e-3)


def test_resnext_forms_reject_a_strided_1x1():
    from cnnlab.layers.aggregated import as_form
    from cnnlab.layers.resnet_blocks import Bottleneck

    with pytest.raises(ValueError, match="3x3"):
        as_form(Bottleneck(8, 8, 16, 2, groups=2, stride_in_1x1=True), "a")
    with pytest.raises(ValueError, match="form"):
        as_form(Bottleneck(8, 8, 16, 1, groups=2), "c")


def test_resnext_capacity_rule_and_table2():
    from cnnlab.models.resnext import COMPLEXITY_MATCHED, bottleneck_width, template_params

    assert template_params(1, 64) == 256 * 64 + 9 * 64 * 64 + 64 * 256 == 69_632
    assert template_params(32, 4) == 70_144  # deck 003:1074: "= 70k when C = 32, d = 4"
    assert bottleneck_width(1) == 64
    assert [(c, bottleneck_width(c)) for c, _ in COMPLEXITY_MATCHED] == COMPLEXITY_MATCHED
    assert [c * d for c, d in [(1, 64), *COMPLEXITY_MATCHED]] == [64, 80, 96, 112, 128]
    # the template's count is what the registered network's conv2 block holds
    m = build_on_meta("resnext50_8x14d")
    b = m.conv2_x[1]
    convs = sum(x.weight.numel() for x in b.modules() if isinstance(x, nn.Conv2d))
    assert convs == template_params(8, 14)
    with pytest.raises(ValueError, match="cardinality"):
        bottleneck_width(0)


# --- the early LeNets --------------------------------------------------------------------
def test_lenet1989_counts_and_units():
    """Sec. 5: 1,256 units, 64,660 connections (a bias is a connection), 9,760 free
    parameters; kernels shared within a map, one bias per unit."""
    m = cnnlab.create_model("lenet1989")
    p = cnnlab.profile("lenet1989")
    assert p.params == 9_760
    units = 16 * 16 + 12 * 8 * 8 + 12 * 4 * 4 + 30 + 10
    assert units == 1_256
    biases = 12 * 8 * 8 + 12 * 4 * 4 + 30 + 10
    assert p.macs + biases == 64_660
    assert m.features.h1_bias.bias.shape == (12, 8, 8)
    assert all(len(r) == 8 for r in m.features.h2.table)
    x = torch.randn(3, 1, 16, 16)
    assert m(x).shape == (3, 10)
    with pytest.raises(ValueError, match="16x16"):
        m(torch.randn(1, 1, 28, 28))


def test_lenet1989_partial_connections_are_real():
    """An H2 map does not see the 4 H1 maps outside its row of the table."""
    m = cnnlab.create_model("lenet1989").eval()
    weight, bias = m.features.h2.dense_weight()
    assert bias is None and weight.shape == (12, 12, 5, 5)
    for j, row in enumerate(m.features.h2.table):
        unused = [i for i in range(12) if i not in row]
        assert len(unused) == 4 and weight[j, unused].abs().sum() == 0
        assert weight[j, list(row)].abs().sum() > 0


def test_lenet1_counts():
    """LeCun et al. 1990: 4,635 units, 98,442 connections, 2,578 independent parameters."""
    p = cnnlab.profile("lenet1")
    assert p.params == 2_578
    units = 28 * 28 + 4 * 24 * 24 + 4 * 12 * 12 + 12 * 8 * 8 + 12 * 4 * 4 + 10 + 1  # + bias unit
    assert units == 4_635
    bias_links = 4 * 24 * 24 + 12 * 8 * 8 + 10
    pool_links = 5 * (4 * 12 * 12 + 12 * 4 * 4)  # four inputs and a bias per averaging unit
    assert p.macs + bias_links + pool_links == 98_442
    m = cnnlab.create_model("lenet1", num_classes=3)
    assert m(torch.randn(2, 1, 28, 28)).shape == (2, 3)


# --- NASNet-A's other sizes (Zoph et al. 2018, Tables 1-2) ------------------------------
def test_nasnet_cifar_stack(meta_model):
    m = meta_model("nasnet_a_cifar_6_768")
    names = list(m.cells)
    assert not any(n.startswith("cell_stem") for n in names)
    assert sum(n.startswith("cell_") for n in names) == 18
    assert [n for n in names if n.startswith("reduction")] == ["reduction_cell_0",
                                                                "reduction_cell_1"]
    assert m.conv0.conv.stride == (1, 1) and m.conv0.conv.out_channels == 96
    assert [f["reduction"] for f in m.feature_info] == [1, 2, 4]
    assert m.feature_info[-1]["channels"] == 768  # "6 @ 768": F in the penultimate layer
    assert m(_meta(32, batch=2)).shape == (2, 10)
    assert cnnlab.profile("nasnet_a_cifar_6_768").params == 3_346_538


def test_nasnet_cifar_trains_with_aux_head():
    torch.manual_seed(0)
    m = cnnlab.create_model("nasnet_a_cifar_6_768", num_classes=4, aux_head=True,
                            aux_input_size=16)
    logits, aux = m.train()(torch.randn(2, 3, 16, 16))  # the aux head reads the 8x8 map
    assert logits.shape == aux.shape == (2, 4)
    (logits.sum() + aux.sum()).backward()
    assert m.aux_head.fc.weight.grad is not None


@pytest.mark.parametrize("name,penultimate", [("nasnet_a_5_1536", 1536),
                                              ("nasnet_a_7_1920", 1920)])
def test_nasnet_imagenet_sizes(name, penultimate, meta_model):
    m = meta_model(name)
    assert m.feature_info[-1]["channels"] == penultimate
    assert [f["reduction"] for f in m.feature_info] == [2, 4, 8, 16, 32]


# --- DenseNet-B, -C, -264 (Huang et al. 2017) -------------------------------------------
def test_densenet_b_and_c_are_the_papers_halves_of_bc():
    from cnnlab.layers.dense import Transition

    b = build_on_meta("densenet_b", depth=100, k=12)
    c = build_on_meta("densenet_c", depth=40, k=12)
    bc = build_on_meta("densenet_bc_100_12")
    assert [len(x.block1.layers) for x in (b, c)] == [16, 12]
    trans = [m for m in b.modules() if isinstance(m, Transition)]
    assert all(t.conv.out_channels == t.conv.in_channels for t in trans)  # B: no compression
    trans = [m for m in c.modules() if isinstance(m, Transition)]
    assert all(t.conv.out_channels == t.conv.in_channels // 2 for t in trans)  # C: θ = 0.5
    assert b.conv.out_channels == c.conv.out_channels == 16 and bc.conv.out_channels == 24
    # bottleneck layers: a 1x1 to 4k maps before each 3x3 in B, none in C
    one_by_one = lambda m: [x for x in m.block1.modules()  # noqa: E731
                            if isinstance(x, nn.Conv2d) and x.kernel_size == (1, 1)]
    assert len(one_by_one(b)) == 16 and all(x.out_channels == 48 for x in one_by_one(b))
    assert one_by_one(c) == []
    with pytest.raises(ValueError, match="6n"):
        cnnlab.create_model("densenet_b", depth=101)


def test_densenet264_table1(meta_model):
    m = meta_model("densenet264")
    assert [len(getattr(m, f"block{i}").layers) for i in range(1, 5)] == [6, 12, 64, 48]
    assert cnnlab.profile("densenet264").params == 33_337_704


# --- ShuffleNet v1 with SE (Zhang et al. 2018, Table 5) ---------------------------------
def test_shufflenet_v1_se_gates_every_branch():
    from cnnlab.layers.se import SqueezeExcite
    from cnnlab.models.shufflenet import ShuffleV1Unit

    m = build_on_meta("shufflenet_v1", width_mult=2.0, se=True)
    units = [u for u in m.modules() if isinstance(u, ShuffleV1Unit)]
    assert len(units) == 16 and all(isinstance(u.se, SqueezeExcite) for u in units)
    assert units[0].se.channels == 480 - 48 and units[0].se.reduced_channels == 27
    plain = cnnlab.profile("shufflenet_v1", width_mult=2.0).macs
    assert plain < cnnlab.profile("shufflenet_v1", width_mult=2.0, se=True).macs < plain + 3e6
    torch.manual_seed(0)
    unit = ShuffleV1Unit(48, 48, 3, 1, se=True).eval()
    x = torch.randn(2, 48, 6, 6)
    y = unit(x)
    unit.se.conv_expand.bias.data.fill_(-1e4)  # a closed gate leaves only the shortcut
    assert torch.allclose(unit(x), torch.relu(x)) and not torch.allclose(y, torch.relu(x))


def test_shufflenet_v1_shallow_is_26_layers():
    from cnnlab.models.shufflenet import ShuffleV1Unit

    deep, shallow = (build_on_meta("shufflenet_v1", width_mult=0.5, shallow=s)
                     for s in (False, True))
    weighted = [m for m in shallow.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    assert len(weighted) == 26  # conv1, 8 units of three convolutions, the classifier
    assert [len(stage) for stage in shallow.features[2:5]] == [2, 4, 2]
    assert sum(isinstance(u, ShuffleV1Unit) for u in deep.modules()) == 16
    assert cnnlab.profile("shufflenet_v1", width_mult=0.5, shallow=True).macs == 21_584_496


# --- Xception / Inception v3 "with FC layers" (Chollet 2017, Table 2) -------------------
@pytest.mark.parametrize("name,base", [("xception_fc", "xception"),
                                       ("inception_v3_fc", "inception_v3")])
def test_fc_layer_heads(name, base):
    from cnnlab.models.base import FCHead

    m = build_on_meta(name)
    assert isinstance(m.head, FCHead)
    linear = [x for x in m.head.hidden if isinstance(x, nn.Linear)] + [m.head.fc]
    assert [(x.in_features, x.out_features) for x in linear] == [
        (2048, 4096), (4096, 4096), (4096, 1000)]
    assert sum(isinstance(x, nn.ReLU) for x in m.head.hidden) == 2
    hidden = (2048 * 4096 + 4096) + (4096 * 4096 + 4096)
    wider_classifier = (4096 - 2048) * 1000
    assert cnnlab.profile(name).params - cnnlab.profile(base).params == hidden + wider_classifier
    assert m.num_features == 4096
    x = _meta(299, batch=2)
    assert m.forward_head(m.forward_features(x), pre_logits=True).shape == (2, 4096)
    m.reset_classifier(17000)  # JFT's 17,000 classes
    assert m(x).shape == (2, 17000)


# --- recipes the decks state (SqueezeNet, NIN, BN-Inception) -----------------------------
def test_canon_recipes():
    from cnnlab.train.config import RECIPES, recipe_for
    from cnnlab.train.optim import Schedule

    sq = RECIPES["squeezenet"].config()
    assert (sq.lr, sq.schedule, sq.power, sq.iters, sq.batch_size) == (0.04, "poly", 1.0,
                                                                        170000, 512)
    lr = Schedule(sq, 100, sq.iters).lr  # "we linearly decrease the learning rate"
    assert lr(0) == 0.04 and lr(85000) == pytest.approx(0.02) and lr(170000) == 0.0
    nin = RECIPES["nin"].config()
    assert nin.schedule == "plateau" and nin.gamma == 0.1 and nin.batch_size == 128
    bn, base = RECIPES["bn_inception"].config(), RECIPES["googlenet"].config()
    assert bn.lr == 0.0075 and bn.weight_decay == base.weight_decay / 5
    assert bn.schedule == "step" and bn.gamma == 0.96 and bn.step_size == 8 / 6  # 6x faster
    assert "pca" not in bn.augment and "pca" in base.augment
    assert [recipe_for(n) for n in ("squeezenet1_0", "nin_cifar10", "bn_inception",
                                    "inception_v3")] == ["squeezenet", "nin", "bn_inception",
                                                         "googlenet"]


def test_resnext_table4_two_times_complexity():
    """Table 4: ResNet-200, ResNet-101 wider (1 x 100d), ResNeXt-101 2 x 64d and 64 x 4d all
    cost about twice ResNet-101 (1 x 64d)."""
    base = cnnlab.profile("resnet101", stride_in_1x1=False).macs
    for name in ("preact_resnet200", "resnext101_1x100d", "resnext101_2x64d",
                 "resnext101_64x4d"):
        assert 1.85 < cnnlab.profile(name).macs / base < 2.05, name
    m = build_on_meta("resnext101_1x100d")
    assert m.conv2_x[0].conv2.conv.out_channels == 100 and m.conv2_x[0].conv2.conv.groups == 1


# --- preprocessing fitted on the training split (NIN's ZCA, AlexNet's mean image) --------
def test_zca_whitening_and_mean_image(tmp_path):
    from safetensors.torch import load_file, save_file

    from cnnlab.data.whiten import MeanImage, ZCAWhitening

    g = torch.Generator().manual_seed(0)
    mix = torch.randn(12, 12, generator=g)  # correlated pixels
    train = (torch.randn(2000, 12, generator=g) @ mix).view(2000, 3, 2, 2) + 0.5
    zca = ZCAWhitening.fit(train, eps=1e-6)
    white = zca(train).flatten(1).double()
    cov = white.T @ white / len(white)
    assert torch.allclose(white.mean(0), torch.zeros(12, dtype=torch.float64), atol=1e-3)
    assert torch.allclose(cov, torch.eye(12, dtype=torch.float64), atol=1e-2)
    assert torch.allclose(zca.matrix, zca.matrix.T, atol=1e-5)  # zero-phase: W symmetric
    mean = MeanImage.fit(train)
    assert mean(train).mean(0).abs().max() < 1e-5
    u8 = torch.randint(0, 256, (5, 1, 3, 3), dtype=torch.uint8, generator=g)
    assert torch.allclose(MeanImage.fit(u8).mean, u8.float().div(255).mean(0), atol=1e-6)
    # the fitted transform travels in a safetensors checkpoint with the model
    model = nn.Sequential(zca, nn.Flatten(), nn.Linear(12, 2))
    save_file(model.state_dict(), str(tmp_path / "m.safetensors"))
    fresh = nn.Sequential(ZCAWhitening((3, 2, 2)), nn.Flatten(), nn.Linear(12, 2))
    fresh.load_state_dict(load_file(str(tmp_path / "m.safetensors")))
    test = torch.randn(4, 3, 2, 2, generator=g)
    assert torch.equal(fresh(test), model(test))
    with pytest.raises(ValueError, match="eps"):
        ZCAWhitening.fit(train, eps=0)


def test_nin_gaussian_init():
    torch.manual_seed(0)
    m = cnnlab.create_model("nin_cifar10")
    convs = [c for c in m.modules() if isinstance(c, nn.Conv2d)]
    assert len(convs) == 9
    w = torch.cat([c.weight.detach().flatten() for c in convs])
    assert abs(float(w.std()) - 0.05) < 1e-3 and abs(float(w.mean())) < 1e-3
    assert all(not c.bias.detach().any() for c in convs)


def test_lenet4_counts_and_pairs():
    from cnnlab.models.lenet import C3_TABLE_LENET4

    assert cnnlab.profile("lenet4").params == 4 * 26 + 8 * 2 + (48 * 25 + 16) + 16 * 2 + \
        (400 * 120 + 120) + (120 * 10 + 10) == 50_698
    assert all(len(r) == 3 for r in C3_TABLE_LENET4) and len(C3_TABLE_LENET4) == 16
    assert len(set(C3_TABLE_LENET4)) == 16 and {c for r in C3_TABLE_LENET4 for c in r} == \
        set(range(8))
    # connections (weights and biases, each unit): C1, S2, C3, S4, F5, output
    connections = 28 * 28 * 4 * 26 + 14 * 14 * 8 * 5 + 10 * 10 * (48 * 25 + 16) + \
        5 * 5 * 16 * 5 + 48_120 + 1_210
    assert connections == 262_306  # "about 260,000"
    torch.manual_seed(0)
    m = cnnlab.create_model("lenet4").eval()
    x = torch.randn(1, 1, 32, 32)
    s2 = m.features[:4](x)  # c1, act1, pairs, s2: the two maps of a pair see one C1 map
    assert s2.shape == (1, 8, 14, 14) and torch.equal(s2[:, 0], s2[:, 1])
    with torch.no_grad():
        m.features.s2.weight[1] = 2.0
    assert not torch.equal(m.features[:4](x)[:, 0], m.features[:4](x)[:, 1])
    assert m(torch.randn(2, 1, 32, 32)).shape == (2, 10)
