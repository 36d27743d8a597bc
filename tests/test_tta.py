"""Test-time augmentation: AlexNet's 10 crops, VGG's dense multi-scale and 150-crop views."""

import pytest
import torch

import cnnlab
from cnnlab.data import TensorData
from cnnlab.models.vgg import VGGNet
from cnnlab.profile import build_on_meta
from cnnlab.train import evaluate
from cnnlab.train.tta import DenseForm, dense_form, tta_views


@pytest.fixture(scope="module")
def small_vgg():
    torch.manual_seed(0)  # VGG's head over a 7×7 pool5, narrow convolutions to stay quick
    return VGGNet([8, "M", 8, "M", 8, "M", 8, "M", 8, "M"], num_classes=10).eval()


def test_dense_form_is_the_network_at_its_training_size(small_vgg):
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        assert torch.allclose(DenseForm(small_vgg)(x), small_vgg(x), atol=1e-5)


def test_dense_form_averages_the_classifier_over_every_7x7_window(small_vgg):
    x = torch.randn(2, 3, 256, 288)  # pool5 is 8×9: 2×3 windows
    with torch.no_grad():
        f = small_vgg.forward_features(x)
        windows = [f[..., i:i + 7, j:j + 7] for i in range(2) for j in range(3)]
        expect = torch.stack([small_vgg.head(small_vgg.classifier(w)) for w in windows]).mean(0)
        assert torch.allclose(DenseForm(small_vgg)(x), expect, atol=1e-5)


def test_which_networks_run_densely(small_vgg):
    assert isinstance(dense_form(small_vgg), DenseForm)
    assert isinstance(dense_form(build_on_meta("alexnet")), DenseForm)
    resnet = cnnlab.create_model("resnet20")
    assert dense_form(resnet) is resnet  # global average pooling: already fully convolutional
    assert dense_form(cnnlab.create_model("lenet5")) is None


def test_views():
    x = torch.arange(2 * 3 * 40 * 48, dtype=torch.float32).view(2, 3, 40, 48)
    size = (32, 32)
    assert [tuple(v.shape[-2:]) for v in tta_views(x, "multiscale", size, dense=True)] == \
        [(32, 38), (32, 38), (37, 44), (37, 44), (41, 49), (41, 49)]
    crops = tta_views(x, "multiscale", size)
    assert len(crops) == 6 and all(v.shape[-2:] == size for v in crops)
    assert torch.equal(crops[1], crops[0].flip(-1))
    grid = tta_views(x, "multicrop", size)
    assert len(grid) == 150 and all(v.shape[-2:] == size for v in grid)
    scale1 = torch.nn.functional.interpolate(x, size=(32, 38), mode="bilinear",
                                             align_corners=False, antialias=True)
    corners = {(0, 0), (0, 6)}  # the 5×5 grid spans the image: its corners are crops' corners
    assert all(any(torch.equal(g, scale1[..., t:t + 32, lf:lf + 32]) for g in grid[:25])
               for t, lf in corners)
    ten = tta_views(x, "10crop", size)
    assert len(ten) == 10 and torch.equal(ten[0], x[..., :32, :32])
    assert torch.equal(ten[3], x[..., 8:, 16:]) and torch.equal(ten[5], ten[0].flip(-1))
    with pytest.raises(ValueError, match="unknown --tta"):
        tta_views(x, "5crop", size)


def test_multiscale_feeds_whole_images_to_a_fully_convolutional_network():
    torch.manual_seed(0)
    model = cnnlab.create_model("resnet20")
    seen = set()
    model.register_forward_pre_hook(lambda m, a: seen.add(tuple(a[0].shape[-2:])))
    g = torch.Generator().manual_seed(0)
    data = TensorData(torch.randint(0, 256, (20, 3, 32, 32), dtype=torch.uint8, generator=g),
                      torch.randint(0, 10, (20,), generator=g), (0.5,) * 3, (0.25,) * 3)
    m = evaluate(model, data, batch_size=8, tta="multiscale")
    assert seen == {(32, 32), (37, 37), (41, 41)} and m["n"] == 20
    assert 0 <= m["top1"] <= m["top5"] <= 100


# --- GoogLeNet's 144 crops, VGG's Q rule and multi-crop & dense (issue 21) ------------------
def test_q_rule():
    from cnnlab.train.tta import SCALES, q_scales

    assert q_scales(None) == SCALES
    assert q_scales((256 / 224, 256 / 224)) == pytest.approx(SCALES)  # S = 256: 224, 256, 288
    assert q_scales((384 / 224,) * 2) == pytest.approx((352 / 224, 384 / 224, 416 / 224))
    assert q_scales((1.0, 1.0)) == pytest.approx((1.0, 256 / 224))
    assert q_scales((256 / 224, 512 / 224)) == pytest.approx((256 / 224, 384 / 224, 512 / 224))
    with pytest.raises(ValueError, match="S_min <= S_max"):
        q_scales((2.0, 1.0))


def test_train_scale_in_pixels_gives_q():
    from argparse import Namespace

    from cnnlab.cli.runs import test_scales

    args = Namespace(train_scale=(256.0, 512.0), checkpoint=["unused"])
    assert test_scales(args, (3, 224, 224)) == pytest.approx((256 / 224, 384 / 224, 512 / 224))


def test_googlenet_144_crops():
    import torch.nn.functional as F

    from cnnlab.train.tta import _resize

    x = torch.rand(1, 3, 28, 35)  # landscape
    size = (16, 16)
    views = tta_views(x, "144crop", size)
    assert len(views) == 4 * 3 * 6 * 2 and all(v.shape[-2:] == size for v in views)
    r = _resize(x, round(16 * 8 / 7))  # scale 1 of 4: short side 18
    assert r.shape[-2:] == (18, 22)
    left, right = r[..., :, :18], r[..., :, 4:]
    assert torch.equal(views[0], left[..., :16, :16])          # top-left corner crop
    assert torch.equal(views[3], left[..., 2:, 2:])            # bottom-right corner crop
    assert torch.equal(views[4], left[..., 1:17, 1:17])        # centre crop
    assert torch.allclose(views[5], F.interpolate(left, size=size, mode="bilinear",
                                                  align_corners=False, antialias=True))
    assert torch.equal(views[6], views[0].flip(-1))            # the six mirrored
    assert torch.equal(views[24], right[..., :16, :16])        # third square: the right one
    tall = tta_views(x.transpose(-1, -2), "144crop", size)     # portrait: top/centre/bottom
    bottom = r.transpose(-1, -2)[..., 4:, :]  # (resizing is transposed up to rounding)
    assert torch.allclose(tall[24], bottom[..., :16, :16], atol=1e-5)


def test_multicrop_and_dense_together():
    x = torch.rand(2, 3, 40, 48)
    views = tta_views(x, "multicrop+dense", (32, 32), dense=True)
    assert len(views) == 150 + 6
    assert [tuple(v.shape[-2:]) for v in views[150:]] == \
        [(32, 38), (32, 38), (37, 44), (37, 44), (41, 49), (41, 49)]
    class Tiny(torch.nn.Sequential):  # pools globally: fully convolutional
        def as_fully_convolutional(self):
            return self

    torch.manual_seed(0)
    model = Tiny(torch.nn.Conv2d(3, 10, 3), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten())
    seen = []
    model.register_forward_pre_hook(lambda m, a: seen.append(tuple(a[0].shape[-2:])))
    g = torch.Generator().manual_seed(0)
    data = TensorData(torch.randint(0, 256, (4, 3, 32, 32), dtype=torch.uint8, generator=g),
                      torch.randint(0, 10, (4,), generator=g))
    m = evaluate(model, data, batch_size=4, tta="multicrop+dense",
                 tta_scales=(1.0, 1.25, 1.5))
    assert set(seen[150:]) == {(32, 32), (40, 40), (48, 48)} and m["n"] == 4
