"""``create_model(name, release=...)``: the released networks' BN eps, TF SAME padding,
activation, pool padding and classifier bias, on the paper network's parameters."""

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import cnnlab
from cnnlab.layers.release import AvgPool2dSame, Conv2dSame, MaxPool2dSame, same_pads
from cnnlab.profile import build_on_meta

torch.set_num_threads(1)


def _params(m):
    return sum(p.numel() for p in m.parameters())


@pytest.mark.parametrize("size,kernel,stride,pads", [
    (224, 3, 2, (0, 1)),  # even input, stride 2: TF pads only after
    (225, 3, 2, (1, 1)),
    (112, 5, 2, (1, 2)),
    (14, 3, 1, (1, 1)),
    (8, 1, 2, (0, 0)),
])
def test_same_pads_are_tfs(size, kernel, stride, pads):
    # TF: out = ceil(n/s); total = (out-1)*s + k - n; the odd pixel goes after
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    assert same_pads(size, kernel, stride) == pads == (total // 2, total - total // 2)


def test_conv2d_same_is_the_hand_padded_convolution():
    torch.manual_seed(0)
    conv = nn.Conv2d(3, 4, 3, 2, padding=1)
    x = torch.randn(1, 3, 8, 8)
    same = Conv2dSame(3, 4, 3, 2)
    same.load_state_dict(conv.state_dict())
    want = F.conv2d(F.pad(x, (0, 1, 0, 1)), conv.weight, conv.bias, 2)
    torch.testing.assert_close(same(x), want)
    assert not torch.allclose(conv(x), want)  # PyTorch's symmetric pad samples another grid
    pool = MaxPool2dSame(3, 2)
    torch.testing.assert_close(pool(x), F.max_pool2d(F.pad(x, (0, 1, 0, 1), value=-1e9), 3, 2))
    avg = AvgPool2dSame(3, 2, count_include_pad=False)
    ones = torch.ones(1, 1, 8, 8)
    torch.testing.assert_close(avg(x), F.avg_pool2d(F.pad(x, (0, 1, 0, 1)), 3, 2)
                               / F.avg_pool2d(F.pad(ones, (0, 1, 0, 1)), 3, 2))


def test_efficientnet_tf_release():
    paper = build_on_meta("efficientnet_b0")
    tf = build_on_meta("efficientnet_b0", release="tf")
    assert paper.release == "paper" and tf.release == "tf"
    assert not any(isinstance(m, Conv2dSame) for m in paper.modules())
    assert isinstance(tf.stem.conv, Conv2dSame) and tf.stem.conv.padding == (0, 0)
    bns = [m for m in tf.modules() if isinstance(m, nn.BatchNorm2d)]
    assert {(m.eps, m.momentum) for m in bns} == {(1e-3, 0.01)}
    assert {m.eps for m in paper.modules() if isinstance(m, nn.BatchNorm2d)} == {1e-5}
    assert paper.state_dict().keys() == tf.state_dict().keys()
    assert _params(paper) == _params(tf)
    # only strided convolutions change; stride-1 3×3 ones are already TF's SAME
    same = [m for m in tf.modules() if isinstance(m, Conv2dSame)]
    assert same and all(max(m.stride) == 2 for m in same)


def _same_function(a, b, x):
    b.load_state_dict(a.state_dict())
    with torch.no_grad():
        return torch.allclose(a.eval()(x), b.eval()(x), atol=1e-6)


def test_mobilenet_v1_tf_release_is_relu6_same_and_differs_on_even_inputs():
    torch.manual_seed(0)
    paper = cnnlab.create_model("mobilenet_v1", width_mult=0.25, num_classes=10)
    tf = cnnlab.create_model("mobilenet_v1", width_mult=0.25, num_classes=10, release="tf")
    assert not any(type(m) is nn.ReLU for m in tf.modules())
    assert any(isinstance(m, nn.ReLU6) for m in tf.modules())
    assert _params(paper) == _params(tf)
    assert not _same_function(paper, tf, torch.randn(2, 3, 64, 64))
    with pytest.raises(ValueError, match="mobilenet_v1_conv has: paper$"):
        cnnlab.create_model("mobilenet_v1_conv", release="tf")


def test_same_padding_exports_to_onnx(tmp_path):
    pytest.importorskip("onnxruntime")
    from cnnlab.deploy.export import export_onnx

    model = cnnlab.create_model("mobilenet_v1", width_mult=0.25, num_classes=10, release="tf")
    report = export_onnx(model, tmp_path / "m.onnx", (3, 64, 64), dynamic_batch=False)
    assert report["checked"] and report["max_rel_diff"] <= 1e-4


def test_xception_tf_pads_its_pools_only():
    tf = build_on_meta("xception", release="tf")
    pools = [m for m in tf.modules() if isinstance(m, nn.MaxPool2d)]
    assert pools and all(isinstance(m, MaxPool2dSame) for m in pools)
    assert not any(isinstance(m, Conv2dSame) for m in tf.modules())
    assert {m.eps for m in tf.modules() if isinstance(m, nn.BatchNorm2d)} == {1e-3}


def test_shufflenet_v2_megvii_has_no_classifier_bias():
    paper = cnnlab.create_model("shufflenet_v2_x0_5")
    megvii = cnnlab.create_model("shufflenet_v2_x0_5", release="megvii")
    assert megvii.head.fc.bias is None
    assert _params(paper) - _params(megvii) == 1000
    assert megvii(torch.randn(1, 3, 64, 64)).shape == (1, 1000)
    with pytest.raises(ValueError, match="has: paper$"):
        cnnlab.create_model("shufflenet_v1", release="megvii")


def test_inception_v3_torchvision_counts_pool_padding():
    tv = build_on_meta("inception_v3", release="torchvision")
    paper = build_on_meta("inception_v3")
    padded = [m for m in tv.modules() if isinstance(m, nn.AvgPool2d) and m.padding]
    assert padded and all(m.count_include_pad for m in padded)
    assert not any(m.count_include_pad for m in paper.modules()
                   if isinstance(m, nn.AvgPool2d) and m.padding)
    assert _params(tv) == _params(paper)


def test_unknown_release_is_one_line_listing_the_releases():
    with pytest.raises(ValueError) as e:
        cnnlab.create_model("efficientnet_b0", release="keras")
    assert str(e.value) == ("efficientnet_b0: unknown release 'keras'; "
                            "efficientnet_b0 has: paper, tf, torchvision")


def test_torchvision_efficientnets_change_eps_from_b5_on():
    def eps(name):
        return {m.eps for m in build_on_meta(name, release="torchvision").modules()
                if isinstance(m, nn.BatchNorm2d)}

    assert eps("efficientnet_b0") == {1e-5} and eps("efficientnet_b5") == {1e-3}


def test_torchvision_resnet50_strides_the_3x3():
    tv, paper = build_on_meta("resnet50", release="torchvision"), build_on_meta("resnet50")
    unit, ref = tv.conv3_x[0], paper.conv3_x[0]
    assert (unit.conv1.conv.stride, unit.conv2.conv.stride) == ((1, 1), (2, 2))
    assert (ref.conv1.conv.stride, ref.conv2.conv.stride) == ((2, 2), (1, 1))
    assert [p.shape for p in tv.parameters()] == [p.shape for p in paper.parameters()]
    # a user's keyword still wins over the release's
    v1 = build_on_meta("resnet50", release="torchvision", stride_in_1x1=True)
    assert v1.conv3_x[0].conv1.conv.stride == (2, 2)


def test_torchvision_shufflenet_v2_splits_strided_units_in_halves():
    # torchvision's shufflenet_v2_x1_0 has 2,278,604 parameters (its model card)
    tv = build_on_meta("shufflenet_v2_x1_0", release="torchvision")
    assert _params(tv) == 2_278_604
    assert tv.features.stage2[0].proj.pw.conv.out_channels == 58  # 116 / 2, not 116 - 24
    assert _params(build_on_meta("shufflenet_v2_x0_5", release="torchvision")) == \
        _params(build_on_meta("shufflenet_v2_x0_5"))


def test_timm_nasnet_counts_the_padding_of_its_same_average_pools():
    from cnnlab.layers.release import AvgPool2dSame

    def pools(release):
        return [m.count_include_pad for m in build_on_meta("nasnet_a_large",
                                                           release=release).modules()
                if isinstance(m, AvgPool2dSame)]

    assert pools("timm") == [True] * 4 and pools("tf") == [False] * 4
    x = torch.ones(1, 1, 4, 4)
    tf_pool = nn.AvgPool2d(3, 2, padding=1, count_include_pad=False)
    timm_pool = nn.AvgPool2d(3, 2, padding=1, count_include_pad=False)
    for m, counts in ((tf_pool, False), (timm_pool, True)):
        m.__class__, m.padding, m.count_include_pad = AvgPool2dSame, 0, counts
    assert torch.equal(tf_pool(x), torch.ones(1, 1, 2, 2))  # TF: real pixels only
    assert timm_pool(x)[0, 0, 1, 1] == 4 / 9  # timm: the padded zeros are averaged in
