"""Conv–BN folding: exact for every registered model, the original model untouched."""

import os

import pytest
import torch
import torch.nn as nn

import cnnlab
from cnnlab.deploy.sizes import meta_summary, random_model, representatives, small_input_size
from cnnlab.layers.fuse import find_conv_bn, fuse_bn


def _random_bn_statistics(model, gen):
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats:
                n = m.num_features
                m.running_mean.copy_(0.5 * torch.randn(n, generator=gen))
                m.running_var.copy_(torch.rand(n, generator=gen) * 1.5 + 0.5)
                if m.affine:  # scales below 1 keep 1,000-layer residual sums finite
                    m.weight.copy_(torch.rand(n, generator=gen) * 0.4 + 0.2)
                    m.bias.copy_(0.1 * torch.randn(n, generator=gen))


# One model per (family, set of module types) by default: every block type, about a third of
# the registry. CNNLAB_FULL_REGISTRY=1 runs every model (about 4 CPU-minutes: the cost is
# filling 4.4 G weights).
MODELS = cnnlab.list_models() if os.environ.get("CNNLAB_FULL_REGISTRY") else representatives()


@pytest.mark.parametrize("name", [n for n in MODELS if meta_summary(n).has_bn])
def test_folding_is_exact_for_every_registered_model(name):
    gen = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    size = small_input_size(name)
    model = random_model(name).eval()
    _random_bn_statistics(model, gen)
    n_orig = sum(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())
    x = torch.randn((2, *size), generator=gen)
    with torch.no_grad():
        ref = model(x)
        fused = fuse_bn(model, size, inplace=True)  # the copy is tested below; memory is not
        got = fused(x)
    n_bn = sum(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in fused.modules())
    assert n_bn == n_orig - len(fused.fused_pairs)
    assert torch.isfinite(ref).all()
    err = (got - ref).abs().max() / ref.abs().max()
    assert err <= 1e-5, f"{name}: relative difference {err:.2e}"


def test_bn_whose_conv_output_is_read_elsewhere_is_not_folded():
    class Branch(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.bn_a = nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4)
            self.b, self.bn_b = nn.Conv2d(4, 4, 1), nn.BatchNorm2d(4)

        def forward(self, x):
            y = self.a(x)
            z = self.b(self.bn_a(y) + y)  # y also feeds the sum: bn_a cannot fold
            return self.bn_b(z)

    m = Branch()
    assert find_conv_bn(m, (3, 5, 5)) == [("b", "bn_b")]


def test_fuse_leaves_the_model_untouched_and_folds_into_a_biased_conv():
    m = cnnlab.create_model("resnet20", num_classes=10)
    _random_bn_statistics(m, torch.Generator().manual_seed(1))
    before = {k: v.clone() for k, v in m.state_dict().items()}
    fused = fuse_bn(m)
    assert m.training and all(torch.equal(before[k], v) for k, v in m.state_dict().items())
    assert isinstance(fused.bn1 if hasattr(fused, "bn1") else fused.get_submodule(
        fused.fused_pairs[0][1]), nn.Identity)
    conv = fused.get_submodule(fused.fused_pairs[0][0])
    assert conv.bias is not None


def test_model_fuse_folds_in_place_and_returns_the_model():
    m = cnnlab.create_model("resnet20", num_classes=10)
    _random_bn_statistics(m, torch.Generator().manual_seed(2))
    m.eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        ref = m(x)
        assert m.fuse() is m
        got = m(x)
    assert not m.training and m.fused_pairs
    assert not any(isinstance(v, nn.BatchNorm2d) for v in m.modules())
    assert ((got - ref).abs().max() / ref.abs().max()) <= 1e-5
