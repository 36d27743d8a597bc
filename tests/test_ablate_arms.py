"""The arms that complete two studies: Inception v3's asymmetric factorisation (3×3 → 3×1
then 1×3, Sec. 3.2) and MobileNetV2's shortcut between expansions (Fig. 6b)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from cnnlab.ablate import nets
from cnnlab.profile import profile


def _cost(model, size):
    p = profile(model, size)
    return p.params, p.macs


def test_asymmetric_factorisation_cost_deck_002_632():
    """3×3 conv 10 → 10 on 28×28: 900 weights; two 2×2: 800 (−11 %); 3×1 then 1×3: 600
    (−33 %), and the mult-adds shrink by the same third (deck 002:632-666)."""
    size = (10, 28, 28)
    full = _cost(nn.Conv2d(10, 10, 3, padding=1, bias=False), size)
    asym = _cost(nn.Sequential(nn.Conv2d(10, 10, (3, 1), padding=(1, 0), bias=False),
                               nn.Conv2d(10, 10, (1, 3), padding=(0, 1), bias=False)), size)
    two2x2 = nn.Sequential(nn.Conv2d(10, 10, 2, bias=False), nn.Conv2d(10, 10, 2, bias=False))
    assert full == (900, 900 * 28 * 28)
    assert asym == (600, 600 * 28 * 28)
    assert 3 * asym[1] == 2 * full[1]  # 33 % cheaper
    assert sum(p.numel() for p in two2x2.parameters()) == 800


def test_3x1_then_1x3_sees_the_same_3x3_window():
    x = torch.zeros(1, 1, 7, 7, requires_grad=True)
    asym = nn.Sequential(nn.Conv2d(1, 1, (3, 1), padding=(1, 0)),
                         nn.Conv2d(1, 1, (1, 3), padding=(0, 1)))
    nn.init.constant_(asym[0].weight, 1.0)
    nn.init.constant_(asym[1].weight, 1.0)
    asym(x)[0, 0, 3, 3].backward()
    assert (x.grad[0, 0] != 0).nonzero().tolist() == [[i, j] for i in (2, 3, 4)
                                                       for j in (2, 3, 4)]


def test_asymmetric_arms_save_a_third_of_each_factorised_layer():
    """Each stage's second 3×3 (w → w) becomes 3×1 + 1×3: 3w² fewer weights per stage
    (plus one more batch norm), 3w²·HW fewer mult-adds; ReLU vs linear differ in one
    activation only."""
    size = (1, 16, 16)
    base = profile(nets.plain_cnn(1, 10, conv="3x3"), size)
    relu = profile(nets.plain_cnn(1, 10, conv="3x1_1x3_relu"), size)
    linear = profile(nets.plain_cnn(1, 10, conv="3x1_1x3_linear"), size)
    widths, sides = (16, 32, 64), (16, 8, 4)
    conv_params = {k: sum(r.params for r in p.rows if r.op == "conv2d")
                   for k, p in (("base", base), ("relu", relu))}
    assert conv_params["base"] - conv_params["relu"] == sum(3 * w * w for w in widths)
    assert base.macs - relu.macs == sum(3 * w * w * s * s for w, s in zip(widths, sides))
    assert (relu.params, relu.macs) == (linear.params, linear.macs)
    kinds = [r.kind for r in relu.rows if r.op == "conv2d"]
    assert kinds.count("conv 3x1") == kinds.count("conv 1x3") == 3
    acts = {k: sum(r.kind == "activation" for r in p.rows)
            for k, p in (("relu", relu), ("linear", linear))}
    assert acts["relu"] - acts["linear"] == 3
    with pytest.raises(ValueError):
        nets.plain_cnn(1, 10, conv="2x2")


def test_expansion_shortcut_adds_at_the_expanded_width():
    """Fig. 6b: the same layers and costs; the bottleneck arm adds 24- and 32-channel
    tensors, the expansion arm t = 6 times wider ones (144, 192); the t = 1 block, which
    has no expansion, keeps its 16-channel shortcut in both."""
    size = (1, 16, 16)
    adds, costs, outs = {}, {}, {}
    x = torch.randn(2, *size)
    for sc in nets.SHORTCUTS:
        torch.manual_seed(0)
        model = nets.mbv2_net(1, 10, shortcut=sc).eval()
        p = profile(model, size)
        adds[sc] = [r.input_shape[0][1] for r in p.rows if r.op == "add"]
        assert all(a == b for a, b in (r.input_shape for r in p.rows if r.op == "add"))
        costs[sc] = (p.params, p.macs)
        outs[sc] = model(x)
    assert adds == {"bottleneck": [16, 24, 32], "expansion": [16, 144, 192], "none": []}
    assert len(set(costs.values())) == 1
    assert not torch.allclose(outs["bottleneck"], outs["expansion"])
    wide = [m for m in nets.mbv2_net(1, 10, shortcut="expansion").modules()
            if isinstance(m, nets.ExpansionShortcut)]
    assert [m.expand.out_channels for m in wide] == [144, 192]
    relu6 = nets.mbv2_net(1, 10, linear=False, shortcut="expansion")
    assert all(hasattr(m.project, "act") for m in relu6.modules()
               if isinstance(m, nets.ExpansionShortcut))
    with pytest.raises(ValueError):
        nets.mbv2_net(1, 10, shortcut="both")
