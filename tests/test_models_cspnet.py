"""CSPNet: the authors' Darknet counts, the cross-stage split, tiny forward/backward passes."""

import pytest
import torch
import torch.nn as nn

import cnnlab
from cnnlab.layers.csp import CrossStagePartial, DarkBlock
from cnnlab.models.base import FeatureExtractor
from cnnlab.models.cspnet import CSPNet, Stage
from cnnlab.profile import build_on_meta


@pytest.mark.parametrize("name, params, bflops", [
    ("cspresnet50", 21.57, 8.97), ("cspresnext50", 20.50, 7.93), ("cspdarknet53", 27.61, 13.07)])
def test_darknet_counts(name, params, bflops):
    """The README/Table 3 figures are Darknet's: weights without batch norm, 2 FLOPs per
    multiply-add, at 256x256."""
    p = cnnlab.profile(name)
    m = build_on_meta(name)
    bn = sum(q.numel() for mod in m.modules() if isinstance(mod, nn.BatchNorm2d)
             for q in mod.parameters())
    assert round((p.params - bn) / 1e6, 2) == params
    assert round(2 * p.macs / 1e9, 2) == bflops


def test_split_sends_part_through_blocks_and_cross_around_them():
    seen = {}
    block = DarkBlock(6, 3)
    stage = CrossStagePartial([block], in_chs=8, part_chs=6, cross_chs=10, block_chs=6,
                              out_chs=12, down=nn.Conv2d(4, 8, 3, 2, 1))
    block.register_forward_pre_hook(lambda m, a: seen.__setitem__("blocks", a[0].shape))
    stage.transition.register_forward_pre_hook(lambda m, a: seen.__setitem__("fuse", a[0]))
    x = torch.randn(2, 4, 10, 10)
    assert stage(x).shape == (2, 12, 5, 5)
    assert seen["blocks"] == (2, 6, 5, 5) and seen["fuse"].shape == (2, 16, 5, 5)
    split = stage.split(stage.down(x))
    assert torch.equal(seen["fuse"][:, 6:], split[:, 6:])  # the bypass reaches the fusion as is


def test_first_resnet_stage_has_a_partial_shortcut():
    """csresnet50.cfg: the first block takes 64 channels and gives 128; Darknet adds the input
    to the first 64 output channels."""
    m = build_on_meta("cspresnet50")
    first = m.stages[0].blocks[0]
    assert (first.conv1.conv.in_channels, first.conv3.conv.out_channels) == (64, 128)
    assert m.stages[0].split.conv.out_channels == 64 + 128
    groups = {mod.groups for mod in build_on_meta("cspresnext50").modules()
              if isinstance(mod, nn.Conv2d) and mod.kernel_size == (3, 3)}
    assert groups == {32}


TINY = {
    "bottleneck": ("resnet", [Stage(n=2, down=0, part=8, cross=16, mid=16, block=16, out=16,
                                    groups=4),
                              Stage(n=1, down=16, part=16, cross=16, mid=16, block=16, out=32,
                                    groups=4, split_act=False)], "bottleneck"),
    "dark": ("darknet", [Stage(n=1, down=16, part=8, cross=8, mid=4, block=8, out=16),
                         Stage(n=2, down=32, part=16, cross=16, mid=16, block=16, out=32)],
             "dark"),
}


@pytest.mark.parametrize("kind", list(TINY))
def test_tiny_forward_backward(kind):
    m = CSPNet(TINY[kind], num_classes=5)
    out = m(torch.randn(2, 3, 32, 32))
    assert out.shape == (2, 5)
    out.sum().backward()
    assert all(p.grad is not None for p in m.parameters())


@pytest.mark.parametrize("kind", list(TINY))
def test_features_only_strides(kind):
    feats = FeatureExtractor(CSPNet(TINY[kind], num_classes=5))
    outs = feats(torch.randn(1, 3, 64, 64))
    assert [o.shape[-1] for o in outs] == [64 // r for r in feats.reductions]
    assert [o.shape[1] for o in outs] == feats.channels
    for name in ("cspresnet50", "cspresnext50", "cspdarknet53"):
        m = build_on_meta(name)
        assert [f["reduction"] for f in m.feature_info] == [2, 4, 8, 16, 32]
        assert m.feature_info[-1]["channels"] == m.head.in_features


def test_invalid_arguments():
    with pytest.raises(ValueError, match="num_classes"):
        cnnlab.create_model("cspdarknet53", num_classes=-1)
