"""The canon's remaining networks (issue 21): Inception-v4, ResNet-200, ResNeXt's equivalent
block forms and its capacity rule, the early LeNets, NASNet's other cells and sizes."""

import pytest
import torch
import torch.nn as nn

import cnnlab
from cnnlab.layers.inception import Branches


def _meta(size, batch=1, chans=3):
    return torch.empty(batch, chans, size, size, device="meta")


# --- Inception-v4 (Szegedy et al. 2016, Figs. 3-9) ---------------------------------------
def test_inception_v4_fig9_grids_and_widths(meta_model):
    m = meta_model("inception_v4")
    x, shapes = _meta(299), {}
    for name, layer in m.features.named_children():
        x = layer(x)
        shapes[name] = tuple(x.shape[1:])
    # Fig. 3: 149x149x32, 147x147x32, 147x147x64, 73x73x160, 71x71x192, 35x35x384
    assert [shapes[k] for k in ("conv1a", "conv2a", "conv2b", "mixed3a", "mixed4a",
                                "mixed5a")] == [(32, 149, 149), (32, 147, 147), (64, 147, 147),
                                                (160, 73, 73), (192, 71, 71), (384, 35, 35)]
    # Fig. 9: 35x35x384 -> 17x17x1024 -> 8x8x1536
    assert shapes["inception_a"] == (384, 35, 35) and shapes["reduction_a"] == (1024, 17, 17)
    assert shapes["inception_b"] == (1024, 17, 17) and shapes["reduction_b"] == (1536, 8, 8)
    assert shapes["inception_c"] == (1536, 8, 8)
    assert [len(m.features[i]) for i in (6, 8, 10)] == [4, 7, 3]
    assert m.head.drop.p == 0.2  # keep 0.8


def test_inception_v4_reduction_a_table1():
    """Table 1's k, l, m, n for the shared Reduction-A (Fig. 7): the output width is
    n + m + input, as the table's two rows give for v4 and Inception-ResNet-v2."""
    from cnnlab.models.inception_resnet import reduction_a

    v4 = Branches(384, reduction_a(192, 224, 256, 384))
    assert v4.out_channels == 384 + 256 + 384
    irv2 = Branches(320, reduction_a(256, 256, 384, 384))
    assert irv2.out_channels == 384 + 384 + 320
    convs = [c.conv.out_channels for c in v4.branch3x3dbl]
    assert convs == [192, 224, 256] and v4.branch3x3dbl[2].conv.stride == (2, 2)


def test_inception_v4_exact_counts():
    p = cnnlab.profile("inception_v4")
    assert p.params == 42_679_816 and round(p.macs / 1e9, 2) == 12.25


# --- ResNet-200 --------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["resnet200", "preact_resnet200"])
def test_resnet200_depth(name, meta_model):
    m = meta_model(name)
    stages = [len(getattr(m, f"conv{i}_x")) for i in range(2, 6)]
    assert stages == [3, 24, 36, 3]
    shortcut = {id(c) for b in m.modules() if getattr(b, "shortcut", None) is not None
                for c in b.shortcut.modules()}
    layers = sum(1 for c in m.modules() if isinstance(c, (nn.Conv2d, nn.Linear))
                 and id(c) not in shortcut)
    assert layers == 200
