"""Xception: Fig. 5's flows, the separable convolution without a middle nonlinearity."""

import torch

import cnnlab
from cnnlab.layers import SeparableConv2d
from cnnlab.models.xception import XceptionBlock
from cnnlab.profile import build_on_meta


def test_separable_conv_is_linear_between_depthwise_and_pointwise():
    torch.manual_seed(0)
    sep = SeparableConv2d(4, 6)
    assert [n for n, _ in sep.named_children()] == ["dw", "pw"]
    assert sep.dw.groups == 4 and sep.pw.kernel_size == (1, 1)
    x, y = torch.randn(2, 4, 5, 5), torch.randn(2, 4, 5, 5)
    assert torch.allclose(sep(2 * x - y), 2 * sep(x) - sep(y), atol=1e-5)
    assert "act" in dict(SeparableConv2d(4, 6, act=torch.nn.ReLU).named_children())


def test_fig5_structure():
    m = build_on_meta("xception")
    seps = [s for s in m.modules() if isinstance(s, SeparableConv2d)]
    stem = [m.features.conv1, m.features.conv2]
    assert len(seps) + len(stem) == 36  # "36 convolutional layers"
    blocks = [b for b in m.modules() if isinstance(b, XceptionBlock)]
    assert len(blocks) + 2 == 14  # "14 modules", residual around all but the first and last
    middle = [getattr(m.features, f"middle{i}") for i in range(1, 9)]
    assert all(isinstance(b.shortcut, torch.nn.Identity) for b in middle)
    p = cnnlab.profile(m, (3, 299, 299))
    sizes = {g["name"]: g["output_shape"][-1] for g in p.grouped(2)}
    assert [sizes[f"features.{n}"] for n in ("conv1", "conv2", "entry1", "entry2", "entry3",
                                              "exit1")] == [149, 147, 74, 37, 19, 10]
    assert p.params == 22_855_952


def test_forward_backward_and_features():
    m = cnnlab.create_model("xception", num_classes=4)
    out = m(torch.randn(2, 3, 32, 32))
    assert out.shape == (2, 4)
    out.sum().backward()
    assert all(p.grad is not None for p in m.parameters())
    feats = cnnlab.create_model("xception", features_only=True)
    assert feats.reductions == [2, 4, 8, 16, 32]
    assert feats.channels == [64, 128, 256, 728, 2048]
