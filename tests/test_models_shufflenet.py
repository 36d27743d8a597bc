"""ShuffleNet v1/V2: channel shuffle and split, Table 1's units and widths, forward passes."""

import pytest
import torch

import cnnlab
from cnnlab.layers import channel_shuffle, channel_split
from cnnlab.models.shufflenet import V1_CHANNELS, ShuffleV1Unit, ShuffleV2Unit, v1_widths
from cnnlab.profile import build_on_meta


def _coded(c):
    return torch.arange(c, dtype=torch.float32).view(1, c, 1, 1).expand(2, c, 3, 3).clone()


@pytest.mark.parametrize("c,g", [(12, 3), (12, 4), (384, 8), (6, 1), (10, 2)])
def test_channel_shuffle_is_a_permutation_with_inverse(c, g):
    x = _coded(c)
    y = channel_shuffle(x, g)
    order = y[0, :, 0, 0].long().tolist()
    assert sorted(order) == list(range(c))
    n = c // g  # Fig. 1(c): reshape to (g, n), transpose, flatten
    assert order == [i * n + j for j in range(n) for i in range(g)]
    assert torch.equal(channel_shuffle(y, c // g), x)
    with pytest.raises(ValueError, match="groups"):
        channel_shuffle(_coded(10), 3)


def test_channel_split():
    a, b = channel_split(_coded(10))
    assert a[0, :, 0, 0].tolist() == [0, 1, 2, 3, 4] and b.shape[1] == 5
    assert channel_split(_coded(10), 3)[1].shape[1] == 7
    with pytest.raises(ValueError):
        channel_split(_coded(4), 4)


def test_v1_unit_structure():
    unit = ShuffleV1Unit(240, 240, 3, 1)
    assert unit.gconv1.conv.groups == 3 and unit.gconv2.conv.groups == 3
    assert not hasattr(unit.dwconv, "act")  # no ReLU after the depthwise conv (Sec. 3.2)
    down = ShuffleV1Unit(24, 240, 3, 2, first_grouped=False)
    assert down.gconv1.conv.groups == 1 and down.gconv2.out_channels == 216
    assert isinstance(down.shortcut, torch.nn.AvgPool2d)
    assert down(torch.randn(1, 24, 8, 8)).shape == (1, 240, 4, 4)


@pytest.mark.parametrize("g", sorted(V1_CHANNELS))
def test_v1_table1_widths_and_stage2_first_layer(g):
    m = build_on_meta("shufflenet_v1", groups=g)
    assert [f["channels"] for f in m.feature_info[1:]] == list(V1_CHANNELS[g])
    first = m.features.stage2[0].gconv1.conv
    assert first.groups == 1  # Table 1, note 1
    assert m.features.stage2[1].gconv1.conv.groups == g
    assert [len(getattr(m.features, f"stage{i}")) for i in (2, 3, 4)] == [4, 8, 4]


def test_v1_width_scaling_follows_the_authors_code():
    # the authors' released g = 3 networks: (conv1, stage 2, 3, 4)
    assert v1_widths(3, 0.5) == (12, (120, 240, 480))
    assert v1_widths(3, 1.5) == (24, (360, 720, 1440))
    assert v1_widths(3, 2.0) == (48, (480, 960, 1920))
    assert v1_widths(8, 0.5) == (16, (192, 384, 768))
    with pytest.raises(ValueError, match="groups"):
        v1_widths(5, 1.0)


def test_v1_shuffle_ablation_changes_function_not_cost():
    torch.manual_seed(0)
    a = cnnlab.create_model("shufflenet_v1_g3", width_mult=0.25, num_classes=5).eval()
    b = cnnlab.create_model("shufflenet_v1_g3", width_mult=0.25, num_classes=5,
                            shuffle=False).eval()
    b.load_state_dict(a.state_dict())
    x = torch.randn(1, 3, 32, 32)
    assert not torch.allclose(a(x), b(x))
    pa, pb = cnnlab.profile(a, (3, 224, 224)), cnnlab.profile(b, (3, 224, 224))
    assert (pa.params, pa.macs) == (pb.params, pb.macs)


def test_v2_unit_passes_half_the_channels_through():
    unit = ShuffleV2Unit(8, 8, 1).eval()
    x = torch.randn(1, 8, 5, 5)
    out = unit(x)
    assert torch.equal(out[:, 0::2], x[:, :4])  # split, identity half, concat, shuffle(2)
    down = ShuffleV2Unit(24, 116, 2)
    assert down(torch.randn(1, 24, 8, 8)).shape == (1, 116, 4, 4)
    assert down.proj.pw.out_channels == 24  # the authors' code: out − in on the main branch


@pytest.mark.parametrize("name,kw", [("shufflenet_v1", {"width_mult": 0.25}),
                                     ("shufflenet_v1_g8", {"width_mult": 0.25}),
                                     ("shufflenet_v2_x0_5", {})])
def test_forward_backward(name, kw):
    m = cnnlab.create_model(name, num_classes=5, **kw)
    out = m(torch.randn(2, 3, 32, 32))
    assert out.shape == (2, 5)
    out.sum().backward()
    assert all(p.grad is not None for p in m.parameters())
    feats = cnnlab.create_model(name, features_only=True, **kw)
    assert feats.reductions == [2, 8, 16, 32]
    assert [o.shape[1] for o in feats(torch.zeros(1, 3, 64, 64))] == feats.channels


def test_v2_rejects_unknown_width():
    from cnnlab.models.shufflenet import shufflenet_v2_net

    with pytest.raises(ValueError, match="Table 5"):
        shufflenet_v2_net(0.75)


def test_table5_variants_registered_with_their_figures():
    """Table 5's "2× (with SE, g = 3)" and "0.5× (shallow, g = 3)": named variants of the v1
    builder whose rows `cnnlab verify` checks (527 M printed, 526.49 M counted; 40 M printed,
    21.58 M counted, the discrepancy noted)."""
    from cnnlab.profile.verify import verify

    checks = {c.model: c for c in verify("shufflenet_v1_s*") if c.metric == "macs"}
    assert set(checks) == {"shufflenet_v1_se", "shufflenet_v1_shallow"}
    se, shallow = checks["shufflenet_v1_se"], checks["shufflenet_v1_shallow"]
    assert se.ok and se.paper.text == "527M" and round(se.measured) == 526_487_712
    assert shallow.ok and shallow.paper.text == "40M" and shallow.measured == 21_584_496
    assert "half of the blocks" in shallow.note
    torch.manual_seed(0)
    named = cnnlab.create_model("shufflenet_v1_se", width_mult=0.25, num_classes=5).eval()
    torch.manual_seed(0)
    plain = cnnlab.create_model("shufflenet_v1", width_mult=0.25, num_classes=5, se=True).eval()
    x = torch.randn(1, 3, 32, 32)
    assert torch.equal(named(x), plain(x))
    with pytest.raises(ValueError, match="unknown argument"):
        cnnlab.create_model("shufflenet_v1_shallow", shallow=False)


def test_se_gates_the_strided_branch_before_the_concat():
    """SE sits on the branch (after the second 1×1 GConv, as SENet in residual units): with
    its gate shut a strided unit passes only the 3×3 average-pooled shortcut."""
    torch.manual_seed(0)
    unit = ShuffleV1Unit(24, 96, 3, 2, se=True).eval()
    assert unit.se.channels == 96 - 24 == unit.gconv2.out_channels
    assert unit.se.reduced_channels == 72 // 16  # reduction 16 (SENet, r = 16)
    x = torch.randn(2, 24, 8, 8)
    unit.se.conv_expand.bias.data.fill_(-1e4)
    out = unit(x)
    assert torch.allclose(out[:, :24], torch.relu(unit.shortcut(x)))
    assert torch.count_nonzero(out[:, 24:]) == 0


def test_shallow_variant_lacks_half_the_units_not_width():
    deep = build_on_meta("shufflenet_v1", width_mult=0.5)
    shallow = build_on_meta("shufflenet_v1_shallow")
    assert [len(getattr(shallow.features, f"stage{i}")) for i in (2, 3, 4)] == [2, 4, 2]
    assert [f["channels"] for f in shallow.feature_info] == \
        [f["channels"] for f in deep.feature_info]  # 0.5×: same widths, 8 of the 16 units
