"""DenseNet: Table 1/2 structure, feature strides, forward/backward, memory-efficient mode."""

import copy

import pytest
import torch
import torch.nn as nn

import cnnlab
from cnnlab.layers.dense import DenseBlock, DenseLayer, Transition
from cnnlab.models.densenet import DenseNet
from cnnlab.profile import build_on_meta


def _weight_layers(model):
    return sum(isinstance(m, (nn.Conv2d, nn.Linear)) for m in model.modules())


@pytest.mark.parametrize("name,depth", [
    ("densenet121", 121), ("densenet169", 169), ("densenet201", 201), ("densenet161", 161),
    ("densenet_40_12", 40), ("densenet_100_24", 100), ("densenet_bc_100_12", 100),
    ("densenet_bc_250_24", 250), ("densenet_bc_190_40", 190),
])
def test_depth_is_l(name, depth):
    assert _weight_layers(build_on_meta(name)) == depth


def test_growth_and_compression():
    m = build_on_meta("densenet121")
    blocks = [b for b in m.modules() if isinstance(b, DenseBlock)]
    trans = [t for t in m.modules() if isinstance(t, Transition)]
    assert [len(b.layers) for b in blocks] == [6, 12, 24, 16]
    assert [b.out_channels for b in blocks] == [256, 512, 1024, 1024]  # c_in + n k
    assert [t.conv.out_channels for t in trans] == [128, 256, 512]  # theta = 0.5
    assert all(layer.conv1.out_channels == 128 for b in blocks for layer in b.layers)  # 4k
    plain = build_on_meta("densenet_40_12")
    assert all(t.conv.out_channels == t.conv.in_channels  # no compression without C
               for t in plain.modules() if isinstance(t, Transition))
    assert build_on_meta("densenet_bc_100_12").conv.out_channels == 24  # 2k for BC


def test_feature_strides():
    feats = build_on_meta("densenet121", features_only=True).eval()
    assert feats.reductions == [2, 4, 8, 16, 32]
    outs = feats(torch.empty(1, 3, 224, 224, device="meta"))
    assert [tuple(o.shape[1:]) for o in outs] == [(64, 112, 112), (256, 56, 56),
                                                  (512, 28, 28), (1024, 14, 14),
                                                  (1024, 7, 7)]
    cifar = build_on_meta("densenet_bc_100_12", features_only=True).eval()
    assert [o.shape[-1] for o in cifar(torch.empty(1, 3, 32, 32, device="meta"))] == [32, 16, 8]


def test_forward_backward_cifar():
    torch.manual_seed(0)
    m = cnnlab.create_model("densenet_bc_100_12", num_classes=7, conv_drop_rate=0.2)
    out = m(torch.randn(2, 3, 16, 16))
    assert out.shape == (2, 7)
    out.logsumexp(1).sum().backward()
    assert all(p.grad is not None for p in m.parameters())


def test_forward_backward_imagenet_layout():
    torch.manual_seed(0)
    m = DenseNet((2, 2, 2, 2), growth_rate=4, stem_chs=8, num_classes=3)
    assert m.min_input_size == 29
    out = m(torch.randn(2, 3, 29, 29))
    assert out.shape == (2, 3)
    out.sum().backward()
    assert all(p.grad is not None for p in m.parameters())


@pytest.mark.parametrize("bottleneck", [True, False])
def test_memory_efficient_matches(bottleneck):
    """Same outputs, gradients and BN running statistics; the concatenation and first
    BN-ReLU-conv are recomputed in the backward pass."""
    torch.manual_seed(0)
    ref = DenseNet((3, 3, 3), growth_rate=6, stem_chs=8, bottleneck=bottleneck,
                   stem="cifar", num_classes=4)
    eff = copy.deepcopy(ref)
    for layer in eff.modules():
        if isinstance(layer, DenseLayer):
            layer.memory_efficient = True
    calls = {"ref": 0, "eff": 0}
    for key, model in (("ref", ref), ("eff", eff)):
        for layer in model.modules():
            if isinstance(layer, DenseLayer):
                layer.norm1.register_forward_hook(
                    lambda *a, k=key: calls.__setitem__(k, calls[k] + 1))
    x = torch.randn(3, 3, 12, 12)
    out_ref, out_eff = ref(x), eff(x)
    torch.testing.assert_close(out_eff, out_ref)
    out_ref.square().sum().backward()
    out_eff.square().sum().backward()
    assert calls == {"ref": 9, "eff": 9}  # the rerun bypasses the module: stats updated once
    for (n, p), q in zip(ref.named_parameters(), eff.parameters()):
        torch.testing.assert_close(q.grad, p.grad, msg=n)
    for (n, b), c in zip(ref.named_buffers(), eff.buffers()):
        torch.testing.assert_close(c, b, msg=n)


def test_memory_efficient_recomputes():
    layer = DenseLayer(8, 4, memory_efficient=True)
    seen, first = [], layer._first
    layer._first = lambda *f: seen.append(1) or first(*f)
    x = torch.randn(2, 8, 5, 5, requires_grad=True)
    layer([x]).sum().backward()
    assert len(seen) == 2  # forward, then the recomputation during backward
    assert x.grad is not None
