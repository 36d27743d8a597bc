"""NASNet-A: cells as data, the released networks' structure, tiny forward/backward passes."""

import pytest
import torch

import cnnlab
from cnnlab.layers.nas_ops import OPS, Cell, Genotype, SepConv
from cnnlab.models.base import FeatureExtractor
from cnnlab.models.nasnet import NASNET_A_NORMAL, NASNET_A_REDUCTION, NASNet
from cnnlab.profile import build_on_meta


def tiny(**kw):
    """NASNet-A 1 @ 96: F = 4 filters in the first stack, a few thousand parameters."""
    return NASNet(**{"num_cells": 1, "penultimate_filters": 96, "stem_filters": 8,
                     "num_classes": 5, **kw})


def test_released_counts():
    """Mobile: 5,289,978 params, the released (TF-slim) network's count; both meet the paper's
    mult-adds (Tables 2-3)."""
    mobile, large = cnnlab.profile("nasnet_a_mobile"), cnnlab.profile("nasnet_a_large")
    assert mobile.params == 5_289_978 and round(mobile.macs / 1e6) == 564
    assert large.params == 88_753_150 and round(large.macs / 1e8) == 238
    assert [r.output_shape for r in large.rows if r.name == "act"] == [(1, 4032, 11, 11)]


def test_cells_follow_n_at_f():
    """N @ F: 3 stacks of N normal cells, 2 reduction cells and 2 stem cells; the normal
    cells give 6 x F/24, F/12 and F/6 channels, the last F."""
    m = build_on_meta("nasnet_a_mobile")
    normal = [c for n, c in m.cells.items() if n.startswith("cell_") and "stem" not in n]
    reduction = [c for n, c in m.cells.items() if "reduction" in n or "stem" in n]
    assert len(normal) == 12 and len(reduction) == 4
    assert all(c.genotype is NASNET_A_NORMAL for c in normal)
    assert all(c.genotype is NASNET_A_REDUCTION and c.reduction for c in reduction)
    assert [c.out_channels for c in normal[::4]] == [264, 528, 1056]
    assert m.head.in_features == 1056


def test_cell_from_custom_genotype():
    """Any genotype over OPS builds and runs: block inputs, ops and the concat follow the data."""
    g = Genotype(nodes=[(0, "conv_1x7_7x1", 1, "max_pool_5x5"),
                        (2, "dil_conv_3x3", 0, "identity"),
                        (3, "conv_1x3_3x1", 2, "avg_pool_3x3")],
                 concat=[0, 3, 4])
    cell = Cell(g, in_chs_prev=6, in_chs=10, channels=8, reduction=True)
    ops = [(cell.comb_iter_0.left, "conv_1x7_7x1"), (cell.comb_iter_1.right, "identity"),
           (cell.comb_iter_2.right, "avg_pool_3x3")]
    for module, name in ops:
        assert type(module) is type(OPS[name](8, 8, 1)), name
    h_prev, h = torch.randn(2, 6, 12, 12), torch.randn(2, 10, 12, 12, requires_grad=True)
    out = cell(h_prev, h)
    assert out.shape == (2, 24, 6, 6) and cell.out_channels == 24
    out.sum().backward()
    assert h.grad is not None and all(p.grad is not None for p in cell.parameters())

    concat_cell = Cell(Genotype([(1, "sep_conv_3x3", 0, "conv_1x1")], [2], combine="concat"),
                       8, 8, 4).double()  # a cell moves like any module
    out = concat_cell(torch.randn(2, 8, 5, 5).double(), torch.randn(2, 8, 5, 5).double())
    assert out.shape == (2, 8, 5, 5) and out.dtype == torch.float64


@pytest.mark.parametrize("stride", [1, 2])
def test_every_op_runs(stride):
    x = torch.randn(1, 6, 9, 9)
    for name, build in OPS.items():
        assert build(6, 4, stride)(x).shape == (1, 4, 5 if stride == 2 else 9, 9 if stride == 1
                                                 else 5), name


def test_separable_conv_is_applied_twice():
    op = SepConv(6, 4, 5, stride=2)
    convs = [m for m in op.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [(c.groups, c.kernel_size, c.stride) for c in convs] == [
        (6, (5, 5), (2, 2)), (1, (1, 1), (1, 1)), (4, (5, 5), (1, 1)), (1, (1, 1), (1, 1))]


def test_genotype_rejects_bad_data():
    with pytest.raises(ValueError, match="reads hidden state 3"):
        Genotype([(0, "identity", 3, "identity")], [2])
    with pytest.raises(ValueError, match="unknown operation"):
        Genotype([(0, "conv_9x9", 1, "identity")], [2])
    with pytest.raises(ValueError, match="concat"):
        Genotype([(0, "identity", 1, "identity")], [3])


@pytest.mark.parametrize("skip_reduction", [False, True])
def test_tiny_forward_backward(skip_reduction):
    m = tiny(skip_reduction=skip_reduction)
    out = m(torch.randn(2, 3, 32, 32))
    assert out.shape == (2, 5)
    out.sum().backward()
    assert all(p.grad is not None for p in m.parameters())


def test_aux_head_in_training_only():
    m = tiny(aux_head=True, aux_input_size=67)
    logits, aux = m(torch.randn(2, 3, 67, 67))
    assert logits.shape == aux.shape == (2, 5)
    (logits.sum() + aux.sum()).backward()
    assert all(p.grad is not None for p in m.parameters())
    assert m.eval()(torch.randn(1, 3, 67, 67)).shape == (1, 5)
    with pytest.raises(ValueError, match="aux_input_size"):
        tiny(aux_head=True, aux_input_size=64)


def test_drop_path_only_in_training():
    m = tiny(drop_path_rate=0.5)
    x = torch.randn(2, 3, 32, 32)
    torch.manual_seed(0)
    a = m.forward_features(x)
    torch.manual_seed(1)
    assert not torch.allclose(a, m.forward_features(x))
    m.eval()
    assert torch.equal(m.forward_features(x), m.forward_features(x))


def test_features_only_strides():
    feats = FeatureExtractor(tiny())
    outs = feats(torch.randn(1, 3, 64, 64))
    assert feats.reductions == [2, 4, 8, 16, 32]
    assert [o.shape[-1] for o in outs] == [31, 16, 8, 4, 2]
    assert [o.shape[1] for o in outs] == feats.channels
    assert cnnlab.create_model("nasnet_a_mobile", features_only=True).channels[-1] == 1056


def test_invalid_arguments():
    with pytest.raises(ValueError, match="penultimate_filters"):
        cnnlab.create_model("nasnet_a_mobile", penultimate_filters=1000)
    with pytest.raises(ValueError, match="penultimate_filters"):
        tiny(penultimate_filters=100)
