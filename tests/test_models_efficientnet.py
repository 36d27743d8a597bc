"""EfficientNet (Tan & Le 2019): B0's Table 1, the B1-B7 configurations, compound scaling and
the budget search, MBConv/SE blocks, tiny forward/backward, feature strides."""

import math

import pytest
import torch

import cnnlab
from cnnlab.layers.inverted_residual import MBConv
from cnnlab.layers.se import SqueezeExcite
from cnnlab.models.efficientnet import (
    ALPHA,
    BETA,
    COEFFICIENTS,
    GAMMA,
    STAGES,
    EfficientNet,
    compound_coefficients,
    compound_scaling,
    scale,
)
from cnnlab.profile import build_on_meta
from cnnlab.search.compound import config_macs, phi_for_budget

# The authors' released networks (tensorflow/tpu efficientnet_builder.py with its rounding):
# stem, seven stage widths, head; repeats per stage; resolution.
RELEASED = {
    "b1": ([32, 16, 24, 40, 80, 112, 192, 320, 1280], [2, 3, 3, 4, 4, 5, 2], 240),
    "b2": ([32, 16, 24, 48, 88, 120, 208, 352, 1408], [2, 3, 3, 4, 4, 5, 2], 260),
    "b3": ([40, 24, 32, 48, 96, 136, 232, 384, 1536], [2, 3, 3, 5, 5, 6, 2], 300),
    "b4": ([48, 24, 32, 56, 112, 160, 272, 448, 1792], [2, 4, 4, 6, 6, 8, 2], 380),
    "b5": ([48, 24, 40, 64, 128, 176, 304, 512, 2048], [3, 5, 5, 7, 7, 9, 3], 456),
    "b6": ([56, 32, 40, 72, 144, 200, 344, 576, 2304], [3, 6, 6, 8, 8, 11, 3], 528),
    "b7": ([64, 32, 48, 80, 160, 224, 384, 640, 2560], [4, 7, 7, 10, 10, 13, 4], 600),
}


def test_b0_follows_table1():
    m = build_on_meta("efficientnet_b0")
    blocks = [b for b in m.modules() if isinstance(b, MBConv)]
    assert len(blocks) == 16
    expected = [(st.e, st.k, st.c, st.s if j == 0 else 1) for st in STAGES for j in range(st.n)]
    got = [(b.hidden_chs // b.in_chs, b.dw.conv.kernel_size[0], b.out_chs, b.stride)
           for b in blocks]
    assert got == expected
    assert [b.se.reduced_channels for b in blocks[:4]] == [8, 4, 6, 6]  # 0.25 of block input
    assert all(isinstance(b.dw.act, torch.nn.SiLU) and not hasattr(b.project, "act")
               for b in blocks)
    assert m.stem.conv.out_channels == 32 and m.conv_head.conv.out_channels == 1280
    assert cnnlab.model_info("efficientnet_b0").input_size == (3, 224, 224)


@pytest.mark.parametrize("variant", sorted(RELEASED))
def test_scaling_reproduces_b1_to_b7(variant):
    widths, repeats, res = RELEASED[variant]
    cfg = scale(*COEFFICIENTS[variant])
    assert (cfg.widths, cfg.repeats, cfg.resolution) == (widths, repeats, res)
    name = f"efficientnet_{variant}"
    assert cnnlab.model_info(name).input_size == (3, res, res)
    m = build_on_meta(name)
    assert m.config == cfg and sum(isinstance(b, MBConv) for b in m.modules()) == sum(repeats)


@pytest.mark.parametrize("phi", [-1.5, 0, 0.5, 1, 3.7, 7])
def test_compound_scaling_is_eq3(phi):
    w, d, r = compound_coefficients(phi)
    assert (w, d, r) == pytest.approx((BETA ** phi, ALPHA ** phi, GAMMA ** phi))
    cfg = compound_scaling(phi)
    assert cfg.resolution == round(224 * GAMMA ** phi)
    assert all(c % 8 == 0 and c >= 0.9 * base * w
               for c, base in zip(cfg.widths, [32, *(s.c for s in STAGES), 1280]))
    assert cfg.repeats == [math.ceil(s.n * d) for s in STAGES]


def test_compound_cost_grows_like_two_to_the_phi():
    """Eq. 3: FLOPs grow by (alpha beta^2 gamma^2)^phi ~ 1.92^phi; rounding repeats up makes
    small phi dearer, and the ratio approaches the formula as phi grows."""
    base = config_macs(compound_scaling(0))
    ratios = [config_macs(compound_scaling(p)) / base for p in (1, 7)]
    assert ratios == sorted(ratios)
    target = (ALPHA * BETA ** 2 * GAMMA ** 2) ** 7
    assert abs(ratios[-1] / target - 1) < 0.10


def test_phi_for_budget_is_the_largest_that_fits():
    budget = 1.5e9
    phi, cfg, macs = phi_for_budget(budget, lo=1.0, hi=2.0, tol=0.02)
    assert macs <= budget and macs == config_macs(cfg) and cfg == compound_scaling(phi)
    assert config_macs(compound_scaling(phi + 0.02)) > budget
    with pytest.raises(ValueError, match="below the smallest"):
        phi_for_budget(1e6, lo=0.0, hi=1.0)
    with pytest.raises(ValueError, match="positive"):
        phi_for_budget(-5)


def test_squeeze_excite_gates_channels():
    se = SqueezeExcite(12, ratio=0.25, base_channels=4)
    assert se.reduced_channels == 1 and se.conv_reduce.out_channels == 1
    with torch.no_grad():
        se.conv_expand.weight.zero_()
        se.conv_expand.bias.zero_()
    x = torch.randn(2, 12, 3, 3)
    assert torch.allclose(se(x), 0.5 * x)  # sigmoid(0) = 0.5 on every channel
    with torch.no_grad():
        se.conv_expand.bias.copy_(torch.linspace(-3, 3, 12))
    gate = se(torch.ones(1, 12, 2, 2))[0, :, 0, 0]
    assert torch.allclose(gate, torch.sigmoid(torch.linspace(-3, 3, 12)))


def test_forward_backward_tiny():
    m = EfficientNet(scale(0.25, 0.5, 32), num_classes=5)
    assert m.config.repeats == [1, 1, 1, 2, 2, 2, 1]
    out = m(torch.randn(2, 3, 32, 32))
    assert out.shape == (2, 5)
    out.sum().backward()
    assert all(p.grad is not None for p in m.parameters())
    m.eval()
    x = torch.randn(1, 3, 32, 32)
    assert torch.equal(m(x), m(x))  # dropout and drop path are off in eval


def test_drop_path_rises_linearly():
    m = build_on_meta("efficientnet_b0", drop_path_rate=0.2)
    rates = [b.drop_path.p if hasattr(b.drop_path, "p") else None
             for b in m.modules() if isinstance(b, MBConv)]
    with_skip = [(i, r) for i, r in enumerate(rates) if r is not None]
    assert with_skip and all(r == pytest.approx(0.2 * i / 16) for i, r in with_skip)


def test_released_initialisation():
    m = cnnlab.create_model("efficientnet_b0")
    dw = m.stages[5][0].dw.conv  # depthwise 5x5 over 672 channels: fan-out k^2 = 25
    assert dw.groups == dw.out_channels == 672
    assert dw.weight.std().item() == pytest.approx(math.sqrt(2 / 25), rel=0.03)
    pw = m.stages[5][0].project.conv  # 1x1, 672 -> 192: fan-out 192
    assert pw.weight.std().item() == pytest.approx(math.sqrt(2 / 192), rel=0.03)
    fc = m.get_classifier()
    assert fc.weight.abs().max().item() <= 1 / math.sqrt(1000) and not fc.bias.any()


def test_features_only_strides():
    feats = cnnlab.create_model("efficientnet_b0", features_only=True).eval()
    assert feats.reductions == [2, 4, 8, 16, 32]
    with torch.no_grad():
        outs = feats(torch.zeros(1, 3, 64, 64))
    assert [o.shape[-1] for o in outs] == [32, 16, 8, 4, 2]
    assert [o.shape[1] for o in outs] == feats.channels == [16, 24, 40, 112, 320]


def test_b7_profiles_on_meta():
    """Its speed is benchmarks/profile_speed.py's to measure (every model, goal < 5 s)."""
    p = cnnlab.profile("efficientnet_b7")  # 37.7 G mult-adds, shape-only
    assert p.params == 66_347_960


@pytest.mark.parametrize("kwargs", [{"drop_rate": 1.5}, {"drop_path_rate": -0.1},
                                    {"num_classes": -1}])
def test_bad_arguments(kwargs):
    with pytest.raises(ValueError):
        cnnlab.create_model("efficientnet_b0", **kwargs)


def test_bad_scaling_arguments():
    with pytest.raises(ValueError, match="phi"):
        compound_scaling(float("nan"))
    with pytest.raises(ValueError, match=">= 1"):
        compound_coefficients(1.0, alpha=0.9)
    with pytest.raises(ValueError, match="positive"):
        scale(width=0)
