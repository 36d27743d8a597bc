"""Hand-computed counts on small nets: the profiler's convention, op by op."""

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
import torch.nn.utils.prune as prune

from cnnlab import profile
from cnnlab.profile import formulas


def test_plain_conv_counts():
    # 3→8 channels, 3x3, pad 1 on 10x10: 8*10*10 outputs, each 3*9 mult-adds
    p = profile(nn.Conv2d(3, 8, 3, padding=1), (3, 10, 10))
    assert p.macs == 8 * 10 * 10 * 3 * 9
    assert p.params == 8 * 3 * 9 + 8
    assert p.rows[0].output_shape == (1, 8, 10, 10)
    assert p.rows[0].memory_access == 3 * 100 + 8 * 100 + (8 * 27 + 8)


@pytest.mark.parametrize("stride,padding,dilation,size,out", [
    (2, 0, 1, 11, 5), (2, 1, 1, 11, 6), (1, 2, 2, 9, 9), (3, 0, 2, 20, 6), (1, 0, 1, 3, 1),
])
def test_strided_padded_dilated(stride, padding, dilation, size, out):
    conv = nn.Conv2d(4, 6, 3, stride, padding, dilation, bias=False)
    p = profile(conv, (4, size, size))
    assert p.rows[0].output_shape == (1, 6, out, out)
    assert p.rows[0].output_shape == tuple(conv(torch.zeros(1, 4, size, size)).shape)
    assert p.macs == 6 * out * out * 4 * 9


def test_grouped_and_depthwise():
    g = profile(nn.Conv2d(8, 16, 3, padding=1, groups=4, bias=False), (8, 5, 5))
    assert g.macs == 16 * 25 * (8 // 4) * 9
    assert g.rows[0].kind == "conv 3x3 grouped"
    dw = profile(nn.Conv2d(8, 8, 3, padding=1, groups=8, bias=False), (8, 5, 5))
    assert dw.macs == 8 * 25 * 9
    assert dw.rows[0].kind == "conv dw 3x3"


def test_same_padding_and_rectangular_kernel():
    p = profile(nn.Conv2d(2, 3, (1, 7), padding="same", bias=False), (2, 9, 9))
    assert p.rows[0].output_shape == (1, 3, 9, 9)
    assert p.macs == 3 * 81 * 2 * 7


def test_conv_transpose():
    layer = nn.ConvTranspose2d(4, 2, 4, stride=2, padding=1, bias=False)
    p = profile(layer, (4, 5, 5))
    assert p.rows[0].output_shape == tuple(layer(torch.zeros(1, 4, 5, 5)).shape)
    assert p.macs == 4 * 25 * 2 * 16


def test_linear_and_matmul():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(6, 5)
            self.w = nn.Parameter(torch.zeros(5, 7))

        def forward(self, x):
            return self.fc(x) @ self.w

    p = profile(Net(), (3, 6))
    assert p.macs == 3 * 6 * 5 + 3 * 5 * 7
    assert p.params == 6 * 5 + 5 + 35
    assert [r.kind for r in p.rows] == ["fully connected", "matmul"]


def test_bmm_and_other_ops_kept_apart():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.bn = nn.BatchNorm2d(4)

        def forward(self, x):
            y = F.relu(self.bn(x))
            z = y + x
            z = F.max_pool2d(z, 2)
            a = z.flatten(2)
            return torch.bmm(a, a.transpose(1, 2))

    p = profile(Net(), (4, 6, 6))
    assert p.macs == 4 * 4 * 9  # only the bmm: (4x9)@(9x4)
    assert p.other_ops["norm"] == 4 * 36
    assert p.other_ops["activation"] == 4 * 36
    assert p.other_ops["elementwise"] == 4 * 36
    assert p.other_ops["pool"] == 4 * 9 * 4


def test_unknown_ops_fall_back_to_meta():
    class Net(nn.Module):
        def forward(self, x):
            return torch.roll(F.interpolate(x, scale_factor=2), 1, dims=-1)

    p = profile(Net(), (2, 4, 4))
    assert p.macs == 0 and p.params == 0


def test_real_weights_stay_where_they_are():
    conv = nn.Conv2d(3, 4, 3)
    before = conv.weight.detach().clone()
    p = profile(conv, (3, 8, 8))
    assert p.macs == 4 * 36 * 27
    assert conv.weight.device.type == "cpu" and torch.equal(conv.weight, before)


def test_too_small_input_is_a_value_error():
    with pytest.raises(ValueError, match="input too small"):
        profile(nn.Sequential(nn.Conv2d(1, 1, 5), nn.Conv2d(1, 1, 5)), (1, 6, 6))


def test_peak_activation_and_model_size():
    net = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.Conv2d(4, 2, 1))
    p = profile(net, (1, 8, 8))
    assert p.peak_activation_bytes == (4 * 64 + 2 * 64) * 4  # the second conv: in + out
    assert p.model_size(32) == p.params * 4
    assert p.model_size(8) == p.params


@pytest.mark.filterwarnings("ignore:.*weight_norm.*:FutureWarning")
def test_pruned_and_weight_normed_layers_read_their_computed_weight():
    """torch's pruning and weight norm keep the weight as a plain attribute, made by a
    pre-hook: the conv row must see it (not a missing parameter), the hook's op row too."""
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Conv2d(4, 2, 1)).eval()
    plain = profile(net, (3, 8, 8))
    prune.l1_unstructured(net[0], "weight", 0.5)
    torch.nn.utils.weight_norm(net[2])
    p = profile(net, (3, 8, 8))
    convs = [r for r in p.rows if r.op == "conv2d"]
    assert [r.macs for r in convs] == [r.macs for r in plain.rows if r.op == "conv2d"]
    assert p.params == plain.params + 2  # weight norm's g (2 output channels) is new
    assert [r.op for r in p.rows][:2] == ["mul", "conv2d"]  # the mask applied, then the conv


def test_peak_activation_treats_a_block_as_one_op():
    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.expand = nn.Conv2d(2, 12, 1)
            self.project = nn.Conv2d(12, 2, 1)

        def forward(self, x):
            return x + self.project(self.expand(x))

    p = profile(nn.Sequential(Block()), (2, 4, 4))
    assert p.peak_activation() == (2 * 16 + 12 * 16) * 4  # the expanded tensor counts
    assert p.peak_activation(as_op=(Block,)) == (2 * 16 + 2 * 16) * 4  # it never exists whole


def test_shared_parameters_counted_once():
    conv = nn.Conv2d(2, 2, 3, padding=1)
    p = profile(nn.Sequential(conv, nn.ReLU(), conv), (2, 4, 4))
    assert p.params == sum(t.numel() for t in conv.parameters())
    assert sum(r.params for r in p.rows) == p.params
    assert p.macs == 2 * (2 * 16 * 2 * 9)


def test_separable_formula_matches_profiler():
    # MobileNets Table 3 layer: D_K=3, M=N=512, D_F=14
    full = profile(nn.Conv2d(512, 512, 3, padding=1, bias=False), (512, 14, 14))
    sep = profile(nn.Sequential(nn.Conv2d(512, 512, 3, padding=1, groups=512, bias=False),
                                nn.Conv2d(512, 512, 1, bias=False)), (512, 14, 14))
    assert full.macs == formulas.conv_macs(3, 512, 512, 14)
    assert sep.macs == formulas.depthwise_separable_macs(3, 512, 512, 14)
    assert sep.params == formulas.depthwise_separable_params(3, 512, 512)
    assert sep.macs / full.macs == pytest.approx(formulas.separable_ratio(3, 512))
    # Table 3's printed figures: 462 M / 2.36 M vs 52.3 M / 0.27 M
    assert round(full.macs / 1e6) == 462 and round(full.params / 1e6, 2) == 2.36
    assert round(sep.macs / 1e6, 1) == 52.3 and round(sep.params / 1e6, 2) == 0.27
    assert formulas.width_resolution_macs(3, 512, 512, 14, 0.75) / 1e6 == pytest.approx(
        29.6, abs=0.05)


def test_measure_latency_on_cpu():
    p = profile(nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU()), (3, 16, 16), measure=True,
                runs=3, warmup=1)
    assert p.latency_ms is not None and p.latency_ms > 0


@pytest.mark.parametrize("a,b", [((1, 4, 5, 5), (1, 4, 1, 1)), ((3, 1), (1, 4)), ((5,), (2, 1, 5)),
                                 ((1, 2, 3), ()), ((2, 1, 3), (4, 1)), ((2, 3), (2, 3))])
def test_broadcast_rule_matches_pytorch(a, b):
    from cnnlab.profile.ops import _broadcast

    assert _broadcast(a, b) == tuple(torch.broadcast_shapes(a, b))
    with pytest.raises(RuntimeError):
        _broadcast((2, 3), (4, 3))


def test_reductions_and_resize_shapes_match_pytorch():
    class Net(nn.Module):
        def forward(self, x):
            a = x.mean((2, 3), keepdim=True)
            b = x.sum(1)
            c = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
            d = F.interpolate(x, size=(7, 5), mode="nearest")
            e = torch.mean(x)
            return a, b, c, d, e

    x = torch.zeros(1, 3, 6, 6)
    real = Net()(x)
    p = profile(Net(), (3, 6, 6))
    assert [r.output_shape for r in p.rows] == [tuple(t.shape) for t in real]
    assert p.macs == 0 and p.other_ops["reduce"] == 3 * 108


@pytest.mark.parametrize("op", [
    lambda x: x.split(3, 1), lambda x: torch.split(x, [2, 5], dim=1), lambda x: x.chunk(2, 1),
    lambda x: torch.chunk(x, 3, dim=-1), lambda x: x.chunk(4, 2),
])
def test_split_and_chunk_shapes_match_pytorch(op):
    class Net(nn.Module):
        def forward(self, x):
            return tuple(t * 2 for t in op(x))

    x = torch.zeros(1, 7, 5, 6)
    real = [tuple(t.shape) for t in op(x)]
    p = profile(Net(), (7, 5, 6))
    assert [r.output_shape for r in p.rows if r.op == "mul"] == real


def test_channel_shuffle_copy_counts_as_memory_access():
    from cnnlab.layers.shuffle import channel_shuffle

    class Net(nn.Module):
        def forward(self, x):
            return channel_shuffle(x, 2)

    p = profile(Net(), (8, 4, 4))
    copies = [r for r in p.rows if r.kind == "copy"]
    assert len(copies) == 1 and copies[0].memory_access == 2 * 8 * 16
    assert p.macs == 0
    assert profile(nn.Sequential(), (8, 4, 4)).memory_access == 0  # contiguous input: no copy


def test_build_on_meta_takes_any_constructor_and_restores_the_collector():
    import gc

    from cnnlab.profile import build_on_meta

    m = build_on_meta(nn.Conv2d, 3, 8, 3, bias=False)
    assert m.weight.is_meta and tuple(m.weight.shape) == (8, 3, 3, 3)
    assert gc.isenabled()  # paused for the build only
    assert build_on_meta("lenet5_caffe", num_classes=7).head.fc.weight.shape[0] == 7


def test_cat_row_and_its_shape_checks():
    class Cat(nn.Module):
        def __init__(self, dim, other):
            super().__init__()
            self.dim, self.other = dim, other

        def forward(self, x):
            return torch.cat([x, x, x.new_zeros(self.other)], self.dim)

    p = profile(Cat(1, (1, 2, 5, 5)), (3, 5, 5))
    (row,) = [r for r in p.rows if r.op == "cat"]
    assert row.output_shape == (1, 8, 5, 5) and row.input_elems == 2 * 75 + 50
    assert profile(Cat(-1, (1, 3, 5, 1)), (3, 5, 5)).rows[-1].output_shape == (1, 3, 5, 11)
    with pytest.raises(ValueError, match="cannot run"):
        profile(Cat(1, (1, 2, 4, 5)), (3, 5, 5))  # PyTorch's own error, one line
