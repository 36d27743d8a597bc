"""MobileNetV2 (Sandler et al. 2018): Table 2's structure, width rounding, the inverted
residual block, peak memory with a block as one op, feature strides."""

import pytest
import torch

import cnnlab
from cnnlab.layers.inverted_residual import DropPath, InvertedResidual
from cnnlab.models.base import FeatureExtractor
from cnnlab.models.mobilenet_v2 import BOTTLENECKS
from cnnlab.profile import build_on_meta


def _blocks(model):
    return [m for m in model.modules() if isinstance(m, InvertedResidual)]


def test_table2_rows():
    m = build_on_meta("mobilenet_v2")
    blocks = _blocks(m)
    assert len(blocks) == sum(n for _, _, n, _ in BOTTLENECKS) == 17
    expected = [(t, c, s if j == 0 else 1) for t, c, n, s in BOTTLENECKS for j in range(n)]
    got = [(b.hidden_chs // b.in_chs, b.out_chs, b.stride) for b in blocks]
    assert got == expected
    # shortcuts join the thin tensors wherever the shape allows: n - 1 per row
    assert sum(b.has_skip for b in blocks) == sum(n - 1 for _, _, n, _ in BOTTLENECKS)
    assert isinstance(blocks[0].expand, torch.nn.Identity)  # t = 1: no expansion conv
    assert m.features.stem.conv.out_channels == 32 and m.num_features == 1280


def test_linear_bottleneck_has_no_activation():
    b = InvertedResidual(16, 24, stride=2, expand_ratio=6)
    assert not hasattr(b.project, "act") and isinstance(b.dw.act, torch.nn.ReLU6)
    assert isinstance(b.expand.act, torch.nn.ReLU6)
    assert b.dw.conv.groups == b.hidden_chs == 96 and not b.has_skip
    b.eval()
    with torch.no_grad():
        y = b(torch.randn(2, 16, 8, 8))
    assert y.shape == (2, 24, 4, 4) and (y < 0).any()  # no ReLU after the projection


def test_block_rejects_bad_stride():
    with pytest.raises(ValueError, match="stride"):
        InvertedResidual(8, 8, stride=3)


@pytest.mark.parametrize("width", [0.35, 0.5, 0.75, 1.3, 1.4])
def test_widths_are_multiples_of_8(width):
    m = build_on_meta("mobilenet_v2", width_mult=width)
    convs = [mod for mod in m.modules() if isinstance(mod, torch.nn.Conv2d)]
    assert all(c.out_channels % 8 == 0 for c in convs)
    # Sec. 6.1: the last conv is not thinned below 1280; 1.4 widens it to 1792
    assert m.num_features == {1.3: 1664, 1.4: 1792}.get(width, 1280)


def test_peak_memory_treats_block_as_one_op():
    """Sec. 5.1 / deck: M = max over ops of |inputs| + |outputs|. With every inverted residual
    one op, the 6x expanded tensors never count; the peak is the stem's 32x112x112 map
    (batch norm in + out). Counting inside the blocks, block2_1's 96x112x112 expansion is."""
    p = cnnlab.profile("mobilenet_v2")
    fp32 = 4
    assert p.peak_activation((InvertedResidual,)) == fp32 * 2 * 32 * 112 * 112
    assert p.peak_activation(("InvertedResidual",)) == p.peak_activation((InvertedResidual,))
    assert p.peak_activation_bytes == p.peak_activation() == fp32 * 2 * 96 * 112 * 112
    io = p.module_io["features.block2_1"]
    assert io == ("InvertedResidual", 16 * 112 * 112, 24 * 56 * 56)
    # Table 3's ordering: MobileNetV2 (blocks as ops) needs less than MobileNetV1
    assert p.peak_activation((InvertedResidual,)) < cnnlab.profile("mobilenet_v1").peak_activation()


def test_features_only_strides():
    feats = cnnlab.create_model("mobilenet_v2", width_mult=0.35, features_only=True)
    assert feats.reductions == [2, 4, 8, 16, 32]
    outs = feats(torch.zeros(1, 3, 64, 64))
    assert [o.shape[-1] for o in outs] == [32, 16, 8, 4, 2]
    assert [o.shape[1] for o in outs] == feats.channels == [8, 8, 16, 32, 112]


def test_output_stride_16_dilates_instead():
    m32 = build_on_meta("mobilenet_v2")
    m16 = cnnlab.create_model("mobilenet_v2", width_mult=0.35, output_stride=16)
    assert [f["reduction"] for f in m16.feature_info] == [2, 4, 8, 16]
    outs = FeatureExtractor(m16)(torch.zeros(1, 3, 64, 64))
    assert outs[-1].shape[-1] == 4 and outs[-1].shape[1] == 112
    dil = [b.dw.conv.dilation[0] for b in _blocks(m16)]
    assert dil[-4:] == [1, 2, 2, 2] and all(d == 1 for d in dil[:-4])
    same = build_on_meta("mobilenet_v2", output_stride=16)
    assert cnnlab.profile(same).params == cnnlab.profile(m32).params


def test_forward_backward_tiny():
    m = cnnlab.create_model("mobilenet_v2", width_mult=0.35, num_classes=5)
    out = m(torch.randn(2, 3, 32, 32))
    assert out.shape == (2, 5)
    out.sum().backward()
    assert all(p.grad is not None for p in m.parameters())
    m.reset_classifier(3)
    assert m.eval()(torch.randn(1, 3, 8, 8)).shape == (1, 3)


def test_drop_path_drops_whole_samples():
    torch.manual_seed(0)
    dp = DropPath(0.5)
    y = dp(torch.ones(2000, 3, 2, 2))
    per_sample = y.flatten(1)
    assert set(per_sample.unique().tolist()) == {0.0, 2.0}
    assert (per_sample.min(1).values == per_sample.max(1).values).all()
    assert 0.4 < (per_sample[:, 0] == 0).float().mean() < 0.6
    dp.eval()
    x = torch.randn(4, 3)
    assert torch.equal(dp(x), x)


@pytest.mark.parametrize("kwargs", [{"width_mult": 0}, {"output_stride": 12},
                                    {"drop_rate": 1.0}, {"num_classes": -1}])
def test_bad_arguments(kwargs):
    with pytest.raises(ValueError):
        cnnlab.create_model("mobilenet_v2", **kwargs)
