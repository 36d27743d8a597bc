"""Low rank: Eckart-Young error, full rank = the original, rank rules, the AlexNet size row."""

import pytest
import torch
import torch.nn as nn

from cnnlab.compress.lowrank import (
    compression_for_size,
    discarded_norm,
    factorize,
    factorize_conv,
    factorize_linear,
    layer_report,
    rank_for,
    unfold_kernel,
)


def _linear_weight(low):
    return low.u.weight @ low.v.weight


def _conv_weight(low):
    v, h = low.vertical.weight[..., 0], low.horizontal.weight[:, :, 0]  # r,C,kh ; N,r,kw
    return torch.einsum("rcy,nrx->ncyx", v, h)


def test_linear_error_is_the_discarded_singular_values():
    torch.manual_seed(0)
    fc = nn.Linear(30, 20)
    for k in (1, 5, 12):
        low = factorize_linear(fc, rank=k)
        err = float((fc.weight - _linear_weight(low)).detach().double().norm())
        assert err == pytest.approx(discarded_norm(fc.weight, k), rel=1e-5)


def test_conv_error_is_the_discarded_singular_values():
    torch.manual_seed(0)
    conv = nn.Conv2d(4, 6, 3, padding=1)
    for k in (1, 4, 9):
        low = factorize_conv(conv, rank=k)
        err = float((conv.weight - _conv_weight(low)).detach().double().norm())
        assert err == pytest.approx(discarded_norm(conv.weight, k), rel=1e-5)


def test_full_rank_equals_the_original():
    torch.manual_seed(0)
    fc, x = nn.Linear(12, 7), torch.randn(5, 12)
    torch.testing.assert_close(factorize_linear(fc, rank=7)(x), fc(x), atol=1e-5, rtol=1e-5)
    conv = nn.Conv2d(3, 5, 3, stride=2, padding=1)
    x = torch.randn(2, 3, 9, 8)
    full = min(unfold_kernel(conv.weight).shape)
    torch.testing.assert_close(factorize_conv(conv, rank=full)(x), conv(x), atol=1e-5,
                               rtol=1e-5)


def test_rank_rules():
    s = torch.tensor([4.0, 2.0, 1.0, 1.0])
    assert rank_for((100, 100), compression=5) == 10       # 10·200 = 2000 = 10000/5
    assert rank_for((4, 4), s, energy=0.9) == 2            # (16+4)/22 = 0.91
    assert rank_for((4, 4), s, energy=1.0) == 4
    with pytest.raises(ValueError, match="exactly one"):
        rank_for((4, 4), s, rank=2, energy=0.5)


def test_factorize_model_and_report():
    torch.manual_seed(0)
    m = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 36, 50),
                      nn.ReLU(), nn.Linear(50, 10))
    before = __import__("copy").deepcopy(m)
    ranks = factorize(m, {"0": dict(rank=2), "3": dict(compression=4)})
    assert ranks == {"0": 2, "3": rank_for((50, 144), compression=4)}
    rows = layer_report(before, m, ranks, (1, 8, 8))
    fc = rows[1]
    assert fc["params_after"] == ranks["3"] * (144 + 50) + 50
    assert fc["macs_after"] == ranks["3"] * (144 + 50)
    assert rows[0]["macs_after"] == 2 * 1 * 3 * 6 * 8 + 4 * 2 * 3 * 6 * 6
    with pytest.raises(ValueError, match="not a Linear"):
        factorize(m, ["1"], rank=1)


def test_alexnet_fc_svd_reaches_denton_size():
    from cnnlab.profile import build_on_meta

    m = build_on_meta("alexnet")
    fcs = [n for n, q in m.named_modules() if isinstance(q, nn.Linear)]
    total = sum(p.numel() for p in m.parameters())
    c = compression_for_size(m, fcs, total // 5)
    factorize(m, fcs, compression=c)
    after = sum(p.numel() for p in m.parameters())
    assert total / after == pytest.approx(5.0, rel=0.01)
