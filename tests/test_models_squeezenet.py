"""SqueezeNet: Table 1's per-layer counts, the Fire module, bypasses (Table 3), design space."""

import pytest
import torch

import cnnlab
from cnnlab.cli import main
from cnnlab.layers import Fire
from cnnlab.models.squeezenet import BODY_1_0, PAPER_METAPARAMETERS, body_from_layout, fire_layout
from cnnlab.profile import build_on_meta

# Table 1, "#parameter before pruning"
TABLE1_PARAMS = {"conv1": 14_208, "fire2": 11_920, "fire3": 12_432, "fire4": 45_344,
                 "fire5": 49_440, "fire6": 104_880, "fire7": 111_024, "fire8": 188_992,
                 "fire9": 197_184, "conv10": 513_000}
# Table 1, "output size" (maxpool8's printed 13x12 is 13x13)
TABLE1_SIZES = {"conv1": (96, 111), "maxpool1": (96, 55), "fire2": (128, 55),
                "fire4": (256, 55), "maxpool4": (256, 27), "fire8": (512, 27),
                "maxpool8": (512, 13), "fire9": (512, 13), "conv10": (1000, 13)}


def test_table1_per_layer_counts_from_the_profiler():
    p = cnnlab.profile("squeezenet1_0")
    rows = {g["name"]: g for g in p.grouped(1)}
    assert {n: rows[n]["params"] for n in TABLE1_PARAMS} == TABLE1_PARAMS
    assert p.params == sum(TABLE1_PARAMS.values()) == 1_248_424
    for name, (c, hw) in TABLE1_SIZES.items():
        assert rows[name]["output_shape"] == (1, c, hw, hw), name


def test_summary_prints_table1_rows(capsys):
    assert main(["summary", "squeezenet1_0", "--depth", "1"]) == 0
    lines = {ln.split()[0]: ln.split() for ln in capsys.readouterr().out.splitlines() if ln}
    for name, params in TABLE1_PARAMS.items():
        assert f"{params:,}" in lines[name], name


def test_fire_module_concatenates_expand_layers():
    fire = Fire(8, 3, 4, 5)  # Fig. 1's s1x1 = 3 with e1x1 = 4, e3x3 = 5
    assert fire(torch.randn(2, 8, 6, 6)).shape == (2, 9, 6, 6)
    assert fire.squeeze1x1.out_channels == 3 and fire.expand3x3.kernel_size == (3, 3)
    with pytest.raises(ValueError, match="simple bypass"):
        Fire(8, 3, 4, 5, bypass="simple")


def test_bypasses_add_the_input():
    torch.manual_seed(0)
    plain, simple = Fire(16, 4, 8, 8), Fire(16, 4, 8, 8, bypass="simple")
    simple.load_state_dict(plain.state_dict())
    x = torch.randn(1, 16, 5, 5)
    assert torch.allclose(simple(x), plain(x) + x)
    cplx = Fire(12, 4, 8, 8, bypass="complex")
    assert cplx.bypass.weight.shape == (16, 12, 1, 1)


def test_table3_model_sizes():
    mib = {n: cnnlab.profile(build_on_meta(n), (3, 227, 227)).model_size(32) / 2**20
           for n in ("squeezenet1_0", "squeezenet1_0_simple_bypass",
                     "squeezenet1_0_complex_bypass")}
    assert round(mib["squeezenet1_0"], 1) == round(mib["squeezenet1_0_simple_bypass"], 1) == 4.8
    m = build_on_meta("squeezenet1_0_complex_bypass")
    convs = [f.bypass for f in m.modules() if isinstance(f, Fire) and f.bypass is not None]
    assert len(convs) == 4  # fire2, fire4, fire6, fire8
    added = sum(c.in_channels * c.out_channels for c in convs)
    assert added == 339_968
    assert round(mib["squeezenet1_0_complex_bypass"], 2) == 6.06  # the paper prints 7.7


def test_design_space_defaults_are_the_paper_network():
    assert PAPER_METAPARAMETERS == dict(base_e=128, incr_e=128, pct_3x3=0.5, freq=2, sr=0.125)
    assert body_from_layout(fire_layout(**PAPER_METAPARAMETERS)) == BODY_1_0
    a, b = build_on_meta("squeezenet_design"), build_on_meta("squeezenet1_0")
    assert {k: v.shape for k, v in a.state_dict().items()} == \
        {k: v.shape for k, v in b.state_dict().items()}


def test_design_space_follows_the_metaparameters():
    layout = fire_layout(base_e=64, incr_e=32, pct_3x3=0.25, freq=3, sr=0.5)
    for i, (s, e1, e3) in enumerate(layout):
        e = 64 + 32 * (i // 3)
        assert (e1 + e3, e3, s) == (e, round(0.25 * e), round(0.5 * e))
    m = cnnlab.create_model("squeezenet_design", sr=0.75, pct_3x3=0.75, num_classes=3)
    assert m.fire9.squeeze1x1.out_channels == 384 and m.fire9.expand3x3.out_channels == 384
    with pytest.raises(ValueError, match="pct_3x3"):
        fire_layout(pct_3x3=1.0)
    with pytest.raises(ValueError, match="at least 1"):
        fire_layout(sr=0.001)


@pytest.mark.parametrize("name", ["squeezenet1_0", "squeezenet1_1",
                                  "squeezenet1_0_complex_bypass"])
def test_forward_backward(name):
    m = cnnlab.create_model(name, num_classes=5)
    out = m(torch.randn(2, 3, 48, 48))
    assert out.shape == (2, 5)
    out.sum().backward()
    assert all(p.grad is not None for p in m.parameters())


def test_features_and_classifier():
    feats = cnnlab.create_model("squeezenet1_1", features_only=True)
    outs = feats(torch.zeros(1, 3, 64, 64))
    assert feats.reductions == [2, 4, 8, 16]
    assert [o.shape[1] for o in outs] == feats.channels == [64, 128, 256, 512]
    m = cnnlab.create_model("squeezenet1_0")
    m.reset_classifier(7)
    assert m(torch.zeros(1, 3, 32, 32)).shape == (1, 7)
    v10, v11 = cnnlab.profile("squeezenet1_0"), cnnlab.profile("squeezenet1_1")
    assert v11.params < v10.params and v10.macs / v11.macs > 2  # "2.4x less computation"
