"""The switches the newer ablations turn (SimpNet's principles, grid-size reduction,
ShuffleNet's Table 4 units, SqueezeNet's design space, DenseNet's forms, VGG's net-A
initialisation) do what their papers describe, at the costs they state; plus the G3/G4
micro-benchmarks' blocks."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch
from torch import nn

from cnnlab.ablate import Ablation, Claim, Task, Variant, nets, run_ablation, verdicts
from cnnlab.ablate.core import resolve_data
from cnnlab.profile import profile

ROOT = Path(__file__).resolve().parent.parent


def test_grid_reduction_costs_deck_002_677():
    """d×d×k → (d/2)×(d/2)×2k: convolving first costs 2d²k² (per kernel tap), pooling first
    2(d/2)²k², a quarter; the parallel module's stride-2 conv (k → k) half of that."""
    d, k = 16, 8
    convs = {}
    for kind in nets.GridReduction.KINDS:
        block = nets.GridReduction(k, kind)
        p = profile(block, (k, d, d))
        assert block(torch.randn(2, k, d, d)).shape == (2, 2 * k, d // 2, d // 2)
        convs[kind] = sum(r.macs for r in p.rows if r.op.startswith("conv"))
    assert convs["pool_first"] == 2 * (d // 2) ** 2 * k * k * 9
    assert convs["conv_first"] == 2 * d * d * k * k * 9 == 4 * convs["pool_first"]
    assert 2 * convs["efficient"] == convs["pool_first"]
    with pytest.raises(ValueError):
        nets.GridReduction(k, "avg")


def test_table4_units_share_shufflenets_skeleton_and_mult_adds():
    target = profile(nets.shuffle_net(1, 10, 8), (1, 32, 32)).macs
    kinds = {}
    for unit in nets.UNITS:
        model = nets.unit_net(1, 10, unit)
        assert abs(profile(model, (1, 32, 32)).macs / target - 1) < 0.1, unit
        kinds[unit] = type(model.features.stage3[1]).__name__
    assert kinds == {"shufflenet": "ShuffleV1Unit", "vgg_like": "VGGUnit",
                     "resnet": "BottleneckUnit", "xception_like": "ShuffleV1Unit",
                     "resnext": "BottleneckUnit"}
    xcep = nets.unit_net(1, 10, "xception_like").features.stage3[1]
    assert xcep.gconv1.conv.groups == 1 and not xcep.shuffle  # g = 1: no groups, no shuffle
    resnext = nets.unit_net(1, 10, "resnext").features.stage3[1]
    assert resnext.body[1].conv.groups == 16


def test_simpnet_variants_compare_at_equal_parameters():
    built = {k: nets.simp_at(1, 10, 30_000, 8, kernels=k) for k in (3, 5, 7)}
    for m in built.values():
        assert abs(nets.n_params(m) / 30_000 - 1) < 0.05
    widths = {k: m[0].out_channels for k, m in built.items()}
    assert widths[3] > widths[5] > widths[7]  # larger kernels, fewer channels
    early, late = (nets.simp_at(1, 10, 30_000, 10, pools=p) for p in ((3, 8), (7, 9)))
    assert nets.n_params(early) == nets.n_params(late)
    assert profile(late, (1, 16, 16)).macs > profile(early, (1, 16, 16)).macs
    assert [type(m).__name__ for m in nets.simp_net(1, 10, [4, 4], (1,), saf=0.2)][:3] == \
        ["ConvNormAct", "MaxPool2d", "Dropout"]
    assert nets.ramp(3, 10, 3) == [10, 20, 30]


def test_densenet_forms_at_equal_parameters():
    forms = {(b, c): nets.dense_net(1, 10, b, c) for b in (False, True) for c in (1.0, 0.5)}
    for (b, c), m in forms.items():
        assert abs(nets.n_params(m) / 60_000 - 1) < 0.1
        assert hasattr(m.block1.layers[0], "conv2") == b
        grown = m.block1.out_channels
        assert m.transition1.conv.out_channels == int(grown * c)


def test_squeeze_ratio_and_3x3_share_set_the_fire_widths():
    fire = [m for m in nets.squeeze_net(1, 10, sr=0.125, pct3x3=0.01).modules()
            if type(m).__name__ == "Fire"][-1]
    assert (fire.squeeze1x1.out_channels, fire.expand1x1.out_channels,
            fire.expand3x3.out_channels) == (8, 63, 1)
    plain, normed = nets.squeeze_net(1, 10), nets.squeeze_net(1, 10, norm=True)
    assert sum(isinstance(m, nn.BatchNorm2d) for m in plain.modules()) == 0
    assert sum(isinstance(m, nn.BatchNorm2d) for m in normed.modules()) == 5
    with pytest.raises(ValueError):
        nets.squeeze_net(1, 10, pct3x3=1.0)


def test_net_a_initialises_the_matching_layers_of_the_deeper_net():
    """VGG Sec. 3.1: the deeper net takes net A's layers where they fit (the first conv of
    each stage, both of the last stage's, and the three FC layers); the rest keep theirs."""
    torch.manual_seed(0)
    a = nets.mini_vgg(1, 10, nets.VGG_A, init="glorot")
    d = nets.mini_vgg(1, 10, nets.VGG_D, init="normal")
    before = {k: v.clone() for k, v in d.state_dict().items()}
    copied = nets.init_from(d, a)
    assert sorted({k.split(".")[0] for k in copied}) == \
        ["fc1", "fc2", "fc3", "s1c1", "s2c1", "s3c1", "s3c2"]
    for k, v in d.state_dict().items():
        assert torch.equal(v, a.state_dict()[k] if k in copied else before[k]), k
    assert d(torch.randn(2, 1, 16, 16)).shape == (2, 10)
    std = nets.mini_vgg(1, 10, init="normal_0.01").s2c2.weight.std().item()
    assert abs(std - 0.01) < 0.002


def test_vgg_normal_init_keeps_the_per_layer_gains_of_vgg_d():
    """N(0, 10⁻²) in kind: each layer's std·sqrt(fan-in) is that of the matching layer of
    the registered VGG-D (its first seven convs, its three FC layers) at std 0.01; the first
    conv's also carries VGG's 0-255 pixel scale."""
    from cnnlab.models import create_model

    def layers(m):
        return [x for x in m.modules() if isinstance(x, (nn.Conv2d, nn.Linear))]

    with torch.device("meta"):  # only the fan-ins are needed, not 138 M weights
        vgg = layers(create_model("vgg_d"))
    vgg = vgg[:7] + vgg[-3:]
    torch.manual_seed(0)
    ours = layers(nets.mini_vgg(1, 10, nets.VGG_D, init="normal"))
    assert len(ours) == 10
    for i, (o, v) in enumerate(zip(ours, vgg)):
        gain = o.weight.std().item() * o.weight[0].numel() ** 0.5
        want = 0.01 * v.weight[0].numel() ** 0.5 * (nets.VGG_INPUT_STD if i == 0 else 1)
        assert abs(gain / want - 1) < 0.15, (i, gain, want)
    with pytest.raises(ValueError):
        nets.mini_vgg(1, 10, init="kaiming")


def test_prepare_runs_before_training_and_a_stalled_worse_arm_can_be_the_claim():
    seen = []

    def prepare(model, split, cfg):
        seen.append((split.num_classes, cfg.iters))

    def build(c, n):
        return nn.Sequential(nn.Flatten(), nn.Linear(c * 16 * 16, n))

    a = Ablation("x", "x", "x", (Variant("v", build, "p", prepare=prepare),), Task(), ())
    run_ablation(a, seeds=1, iters=1, val_split=40, train_images=16, latency_runs=1)
    assert seen == [(10, 1)]
    rows = [{"variant": "a", "runs": [{}] * 3, "acc_mean": 0.9, "acc_std": 0.01},
            {"variant": "b", "runs": [{}] * 3, "acc_mean": 0.1, "acc_std": 0.0,
             "at_chance": True}]
    tolerant = Ablation("x", "x", "x", (), Task(), (Claim("a", "b", worse_may_stall=True),))
    strict = Ablation("x", "x", "x", (), Task(), (Claim("a", "b"),))
    assert verdicts(tolerant, rows, False)[0]["verdict"] == "reproduces"
    assert verdicts(strict, rows, False)[0]["verdict"].startswith("invalid")


def test_default_task_finds_the_shipped_mnist_from_anywhere(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    name, _, path = resolve_data(Task().data).partition(":")
    assert name == "mnist" and (Path(path) / "t10k-images-idx3-ubyte.gz").exists()
    assert resolve_data("digits") == "digits"


def _bench():
    spec = importlib.util.spec_from_file_location("g3g4", ROOT / "benchmarks" /
                                                  "guidelines_g3g4.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_g3_blocks_keep_the_mult_adds_and_g4_switches_remove_elementwise_ops():
    g = _bench()
    macs = [profile(g.Fragments(64, n, par), (64, 8, 8)).macs for _, n, par in g.G3]
    assert all(abs(m / macs[0] - 1) < 0.03 for m in macs)
    assert len(g.Fragments(64, 4, True).convs) == len(g.Fragments(64, 4, False).convs) == 4
    shares = [g.elementwise_share(profile(g.Bottleneck(16, r, s), (16, 8, 8)))
              for _, r, s in g.G4]
    assert shares[0] > shares[1] > 0 and shares[0] > shares[2] > 0 and shares[3] == 0


def test_table2_group_nets_widen_with_g_at_equal_mult_adds():
    """Table 1's rule in the groups study: more groups, wider stages, about the same
    mult-adds as the g = 8 net of Table 4's study; g = 1 is the Xception-like unit."""
    from cnnlab.ablate import get_ablation

    target = profile(nets.shuffle_net(1, 10, 8), (1, 32, 32)).macs
    widths = {}
    for v in get_ablation("shufflenet_groups").variants:
        model = v.build(1, 10)
        g = int(v.name[1:])
        assert abs(profile(model, (1, 32, 32)).macs / target - 1) < 0.07, v.name
        unit = model.features.stage3[1]
        assert unit.gconv1.conv.groups == unit.gconv2.conv.groups == g
        assert unit.shuffle == (g > 1)
        widths[g] = model.feature_info[1]["channels"]
    assert widths == {1: 44, 2: 64, 3: 72, 4: 80, 8: 96}  # the study's note names these
    assert all(w % (4 * g) == 0 for g, w in widths.items())


def test_shuffle_study_has_a_g2_pair_the_paper_does_not():
    from cnnlab.ablate import get_ablation

    a = get_ablation("shufflenet_shuffle")
    assert [c.better for c in a.claims] == ["g2_shuffle", "g3_shuffle", "g8_shuffle"]
    assert "not in Table 3" in a.variant("g2_noshuffle").paper
    on, off = (a.variant(f"g2_{s}").build(1, 10).features.stage3[1]
               for s in ("shuffle", "noshuffle"))
    assert on.groups == off.groups == 2 and on.shuffle and not off.shuffle


def test_arms_that_name_a_curve_are_plotted_as_error_vs_parameters(tmp_path, monkeypatch):
    """Variant.curve groups arms into lines of error vs parameters (DenseNet Fig. 4): the
    rows carry the curve, :func:`curves` orders each line by parameters, and the PNG is
    drawn as lines; arms without a curve keep the bar plot."""
    from cnnlab.ablate import core

    def build(width):
        return lambda c, n: nn.Sequential(nn.Flatten(), nn.Linear(c * 16 * 16, width),
                                          nn.ReLU(), nn.Linear(width, n))

    a = Ablation("c", "c", "c", (Variant("wide", build(8), "p", curve="mlp"),
                                 Variant("narrow", build(2), "p", curve="mlp"),
                                 Variant("alone", build(4), "p")), Task(), ())
    r = run_ablation(a, seeds=1, iters=1, val_split=40, train_images=16, latency_runs=1)
    assert [v["curve"] for v in r["variants"]] == ["mlp", "mlp", ""]
    (line,) = core.curves(r).values()
    assert [p for p, _, _ in line] == sorted(v["params"] for v in r["variants"][:2])
    narrow = r["variants"][1]
    assert line[0][1:] == (100 * (1 - narrow["acc_mean"]), 100 * narrow["acc_std"])
    drawn = []
    monkeypatch.setattr(core, "_plot_curves", lambda ax, res: drawn.append(res["ablation"]))
    assert core.write_results(r, tmp_path)[1].stat().st_size > 0
    assert drawn == ["c"]
    bars = {**r, "ablation": "b", "variants": [{**v, "curve": ""} for v in r["variants"]]}
    assert core.curves(bars) == {}
    core.write_results(bars, tmp_path)
    assert drawn == ["c"] and (tmp_path / "b.png").exists()


def test_plain_cnn_act_init_takes_each_activations_gain():
    """relu_tanh_no_bn: without batch norm each net starts from its activation's gain,
    std = gain / sqrt(fan-in) (√2 for ReLU, 5/3 for tanh), biases zero."""
    torch.manual_seed(0)
    for act, gain in (("relu", 2 ** 0.5), ("tanh", 5 / 3)):
        m = nets.plain_cnn(1, 10, act=act, norm=False, conv="5x5", init="act")
        convs = [x for x in m.modules() if isinstance(x, nn.Conv2d)]
        assert len(convs) == 3  # three 5×5 convs and the classifier: four layers
        for c in convs[1:]:
            want = gain / c.weight[0].numel() ** 0.5
            assert abs(c.weight.std().item() / want - 1) < 0.1, act
            assert torch.all(c.bias == 0)
    with pytest.raises(ValueError):
        nets.plain_cnn(1, 10, act="elu", init="act")
