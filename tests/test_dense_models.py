"""FCN, U-Net and stacked hourglass: the papers' shapes, crops, upsampling, counts."""

import pytest
import torch

import cnnlab
from cnnlab.models.fcn import BilinearUpsample, bilinear_kernel
from cnnlab.profile import build_on_meta


def _out_shape(model, size):
    return cnnlab.profile(model, size).rows[-1].output_shape


# --- U-Net ---------------------------------------------------------------------------------
def test_unet_paper_tile_572_to_388():
    p = cnnlab.profile("unet")  # Fig. 1: 1 channel in, 2 classes
    assert p.input_size == (1, 572, 572)
    assert p.rows[-1].output_shape == (1, 2, 388, 388)
    assert p.params == 31_030_658
    assert cnnlab.profile("unet", num_classes=1).params == 31_030_593
    convs = [m for m in build_on_meta("unet").modules() if isinstance(m, torch.nn.Conv2d)]
    assert [c.out_channels for c in convs[:10:2]] == [64, 128, 256, 512, 1024]
    assert all(c.padding == (0, 0) for c in convs)


def test_unet_valid_tiles_are_checked():
    m = build_on_meta("unet")
    assert m.min_input_size == 188
    assert _out_shape(m, (1, 188, 188))[-1] == 4
    with pytest.raises(ValueError, match="even size; 200 is not one .nearest: 188, 204"):
        cnnlab.profile(m, (1, 200, 200))


def test_unet_same_padding_round_trip():
    m = cnnlab.create_model("unet", padding="same", depth=3, base_width=4, in_chans=3,
                            num_classes=5, norm=True)
    for h, w in [(37, 50), (16, 16), (64, 48)]:
        assert m(torch.randn(2, 3, h, w)).shape == (2, 5, h, w)
    with pytest.raises(ValueError, match="at least 8x8"):
        m(torch.randn(1, 3, 7, 7))


@pytest.mark.parametrize("backbone", ["mobilenet_v1", "resnet50", "mobilenet_v2", "vgg16"])
def test_unet_on_backbones(backbone):
    m = build_on_meta("unet", backbone=backbone, in_chans=3, num_classes=4)
    assert _out_shape(m, (3, 100, 77)) == (1, 4, 100, 77)
    assert [f["reduction"] for f in m.feature_info] == m.encoder.reductions
    assert not any(n.startswith("encoder.model.head.") for n, _ in m.named_parameters())


# --- FCN ----------------------------------------------------------------------------------
def test_fcn_reference_geometry_and_crop():
    offsets = {"fcn32s": [19], "fcn16s": [5, 27], "fcn8s": [5, 9, 31]}  # Caffe's Crop layers
    for name, expect in offsets.items():
        m = build_on_meta(name)
        assert m._offsets == expect, name
        assert m.encoder.model.features.conv1.padding == (100, 100)
        for size in (1, 37, 500):
            assert _out_shape(m, (3, size, size))[-2:] != (size, size)  # before the crop
            m.eval()
            out = m(torch.empty(1, 3, size, size + 3, device="meta"))
            assert out.shape == (1, 21, size, size + 3), (name, size)
    p = cnnlab.profile("fcn32s")
    assert p.params == 134_346_581  # Table 1: 134 M; the fixed final upsampling is no weight
    assert cnnlab.profile("fcn8s").params == 134_346_581 + 512 * 21 + 21 + 256 * 21 + 21 \
        + 2 * 21 * 21 * 4 * 4


def test_fcn_casts_the_vgg_classifier_as_convolutions():
    """Sec. 3.1: fc6/fc7 carry the classifier's weights; on a 7x7 pool5 map they compute what
    the classifier computes."""
    import copy

    from cnnlab.models.vgg import VGGNet

    vgg = VGGNet([8, "M", 8, "M", 8, "M", 8, "M", 8, "M"], num_classes=10).eval()
    classifier = copy.deepcopy(vgg.classifier)
    m = cnnlab.create_model("fcn8s", backbone=vgg).eval()
    assert m.fc.fc6.weight.shape == (4096, 8, 7, 7) and m.fc.fc7.kernel_size == (1, 1)
    assert not any(isinstance(mod, torch.nn.Linear) for mod in m.modules())
    pool5 = torch.randn(2, 8, 7, 7)
    with torch.no_grad():
        assert torch.allclose(m.fc(pool5).flatten(1), classifier(pool5), atol=1e-5)


def test_fcn_on_small_backbone_runs_and_crops():
    m = cnnlab.create_model("fcn8s", backbone="mobilenet_v1", width_mult=0.25, in_chans=1,
                            num_classes=3)
    out = m(torch.randn(2, 1, 50, 61))
    assert out.shape == (2, 3, 50, 61)
    assert torch.count_nonzero(out) == 0  # Sec. 4.2: score layers start at zero
    for backbone in ("resnet50", "mobilenet_v2"):
        mm = build_on_meta("fcn8s", backbone=backbone, num_classes=7)
        assert _out_shape(mm, (3, 97, 101))[:2] == (1, 7)
        mm.eval()
        assert mm(torch.empty(1, 3, 97, 101, device="meta")).shape == (1, 7, 97, 101)
    with pytest.raises(ValueError, match="stride"):
        cnnlab.create_model("fcn8s", backbone="lenet5")


def test_bilinear_upsampling_init():
    k = bilinear_kernel(4)
    assert torch.allclose(k, torch.outer(*[torch.tensor([.25, .75, .75, .25])] * 2))
    up = BilinearUpsample(3, 2, padding=1)
    w = up.weight.detach()
    assert torch.equal(w[0, 1], torch.zeros(4, 4)) and torch.equal(w[2, 2], k)
    ramp = torch.arange(8.0).view(1, 1, 1, 8).expand(1, 3, 8, 8)
    out = up(ramp)[0, :, 2:-2, 2:-2]  # interior: exact linear interpolation
    expect = (torch.arange(16.0) / 2 - 0.25)[2:-2]
    assert torch.allclose(out, expect.expand_as(out))
    m = cnnlab.create_model("fcn16s", backbone="mobilenet_v1", width_mult=0.25, num_classes=2)
    assert isinstance(m.upscore_skip[0].weight, torch.nn.Parameter)  # learned (Sec. 4.3)
    assert "upscore.weight" in dict(m.named_buffers())  # final: fixed bilinear
    assert torch.equal(m.upscore.weight[1, 1], bilinear_kernel(32))


# --- Stacked hourglass ---------------------------------------------------------------------
def test_hourglass_256_to_64_and_one_output_per_stack():
    assert cnnlab.profile("hourglass").rows[-1].output_shape == (1, 16, 64, 64)
    m = cnnlab.create_model("hourglass", stacks=3, features=16, num_classes=5)
    x = torch.randn(2, 3, 64, 64)
    outs = m.train()(x)
    assert isinstance(outs, list) and [o.shape for o in outs] == [(2, 5, 16, 16)] * 3
    m.eval()
    assert torch.equal(m(x), m.forward_features(x)[-1])
    hg = m.stacks[0].hourglass
    depth = 0
    while hasattr(hg, "low2"):
        depth, hg = depth + 1, hg.low2
    assert depth == 4  # 64x64 down to 4x4


def test_dense_models_reset_classifier():
    m = cnnlab.create_model("unet", padding="same", depth=2, base_width=4)
    m.reset_classifier(7)
    assert m(torch.randn(1, 1, 16, 16)).shape == (1, 7, 16, 16)
    f = cnnlab.create_model("fcn8s", backbone="mobilenet_v1", width_mult=0.25)
    f.reset_classifier(4)
    assert f(torch.randn(1, 3, 40, 40)).shape == (1, 4, 40, 40)
    h = cnnlab.create_model("hourglass", stacks=2, features=8, levels=2).eval()
    h.reset_classifier(3)
    assert h(torch.randn(1, 3, 32, 32)).shape == (1, 3, 8, 8)


def test_features_only_on_dense_models():
    cases = [("fcn8s", dict(backbone="mobilenet_v1", width_mult=0.25), 3, 64, [2, 4, 8, 16, 32]),
             ("unet", dict(padding="same", base_width=4, depth=2), 1, 32, [1, 2, 4]),
             ("unet", dict(backbone="mobilenet_v1", width_mult=0.25), 1, 64, [2, 4, 8, 16, 32]),
             ("hourglass", dict(stacks=2, features=8, levels=2), 3, 32, [2, 4])]
    for name, kw, c, size, reductions in cases:
        f = cnnlab.create_model(name, features_only=True, **kw)
        outs = f(torch.randn(1, c, size, size))
        assert [size // o.shape[-1] for o in outs] == reductions == f.reductions, name
        assert [o.shape[1] for o in outs] == f.channels, name
