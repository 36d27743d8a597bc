"""NIN, GoogLeNet, BN-Inception, Inception v3, Inception-ResNet-v2, All-CNN-C, SimpNet:
the structure their papers state, auxiliary heads, feature strides, forward and backward."""

import pytest
import torch
import torch.nn as nn

import cnnlab
from cnnlab.layers.inception import Branches, InceptionResidual
from cnnlab.profile import build_on_meta, profile


def _meta_input(name, size=None, batch=2):
    info = cnnlab.model_info(name)
    shape = info.input_size if size is None else (info.input_size[0], size, size)
    return torch.empty(batch, *shape, device="meta")


# --- forward and backward on tiny inputs, one per family ---------------------------------
@pytest.mark.parametrize("name,kwargs,size", [
    ("nin_cifar10", {}, 16),
    ("allcnn_c", {}, 16),
    ("simpnet_slim_300k", {}, 16),
    ("bn_inception", {"separable_stem": True}, 32),
])
def test_forward_backward(name, kwargs, size):
    torch.manual_seed(0)
    m = cnnlab.create_model(name, num_classes=7, **kwargs)
    out = m(torch.randn(2, 3, size, size))
    assert out.shape == (2, 7)
    out.sum().backward()
    assert all(p.grad is not None for p in m.parameters())


def test_googlenet_aux_heads_train_mode_only():
    torch.manual_seed(0)
    m = cnnlab.create_model("googlenet", num_classes=5, aux_logits=True)
    x = torch.randn(2, 3, 32, 32)
    out = m.train()(x)
    assert isinstance(out, tuple) and [o.shape for o in out] == [(2, 5)] * 3
    (out[0] + m.aux_loss_weight * (out[1] + out[2])).sum().backward()
    assert all(p.grad is not None for p in m.parameters())
    assert m.aux_loss_weight == 0.3
    with torch.no_grad():
        assert m.eval()(x).shape == (2, 5)
    plain = build_on_meta("googlenet", num_classes=5)
    assert plain.aux is None and plain.train()(x.to("meta")).shape == (2, 5)


def test_aux_heads_follow_reset_classifier():
    m = build_on_meta("googlenet", aux_logits=True)
    m.reset_classifier(3)
    assert [o.shape for o in m.train()(_meta_input("googlenet"))] == [(2, 3)] * 3
    v3 = build_on_meta("inception_v3", aux_logits=True)
    v3.reset_classifier(4)
    assert [o.shape for o in v3.train()(_meta_input("inception_v3"))] == [(2, 4)] * 2


def test_inception_v3_aux_head_train_mode_only():
    m = build_on_meta("inception_v3", aux_logits=True)
    x = _meta_input("inception_v3")
    main, aux = m.train()(x)
    assert main.shape == aux.shape == (2, 1000)
    assert m.eval()(x).shape == (2, 1000)
    # Sec. 7's BN-auxiliary head: 128 1x1, 768 5x5 (both with BN), FC — 3,326,696 params
    assert profile(m, (3, 299, 299)).params - cnnlab.profile("inception_v3").params == 3_326_696


def test_inception_blocks_forward_backward():
    """The v3 Fig. 7 split and the Inception-ResNet residual block at small width."""
    from cnnlab.models.inception import FIG7
    from cnnlab.models.inception_resnet import BLOCK17

    torch.manual_seed(0)
    fig7 = Branches(16, FIG7)
    assert fig7.out_channels == 2048  # 320 + 2·384 + 2·384 + 192
    res = InceptionResidual(32, BLOCK17, scale=0.1)
    x = torch.randn(1, 32, 5, 5, requires_grad=True)
    y = res(x)
    assert y.shape == x.shape and (y >= 0).all()
    y2 = fig7(torch.randn(1, 16, 4, 4))
    assert y2.shape == (1, 2048, 4, 4)
    (y.sum() + y2.sum()).backward()
    assert x.grad is not None and res.up.weight.grad is not None
    # scale 0: the block is relu(x)
    zero = InceptionResidual(32, BLOCK17, scale=0.0)
    assert torch.equal(zero(x.detach()), torch.relu(x.detach()))


# --- feature maps at each stride ---------------------------------------------------------
@pytest.mark.parametrize("name,size,expect", [
    ("googlenet", 224, [112, 56, 28, 14, 7]),
    ("bn_inception", 224, [112, 56, 28, 14, 7]),
    ("inception_v3", 299, [147, 71, 35, 17, 8]),  # Table 1's grids (73 -> 71 by a valid 3x3)
    ("inception_resnet_v2", 299, [147, 71, 35, 17, 8]),
    ("nin_imagenet", 224, [54, 27, 13, 6]),
    ("nin_cifar10", 32, [32, 16, 8]),
    ("allcnn_c", 32, [32, 16, 6]),
    ("simpnet", 32, [32, 16, 8]),
])
def test_features_only_strides(name, size, expect):
    feats = build_on_meta(name, features_only=True)
    outs = feats(_meta_input(name, size, batch=1))
    assert [o.shape[-1] for o in outs] == expect
    assert [o.shape[1] for o in outs] == feats.channels
    assert feats.reductions == sorted(feats.reductions)
    assert all(b == 2 * a for a, b in zip(feats.reductions, feats.reductions[1:]))


# --- what the papers state ---------------------------------------------------------------
def test_googlenet_table1_rows():
    from cnnlab.models.googlenet import INCEPTION

    p = cnnlab.profile("googlenet")
    rows = {g["name"].split(".")[-1]: g for g in p.grouped(2) if g["name"].startswith("feat")}
    assert list(rows) == ["conv1", "pool1", "norm1", "conv2", "norm2", "pool2", "inception3a",
                          "inception3b", "pool3", "inception4a", "inception4b", "inception4c",
                          "inception4d", "inception4e", "pool4", "inception5a", "inception5b"]
    for name, row in INCEPTION.items():
        g = rows[f"inception{name}"]
        assert g["output_shape"][1] == row[0] + row[2] + row[4] + row[5]
        if name != "5a":  # the ops column, to the printed megabyte (4a's 73.6 is truncated)
            assert abs(g["macs"] / 1e6 - int(row[7][:-1])) < 1, name
    assert p.params == 6_998_552
    # real 5x5 convolutions in every module, no batch norm anywhere
    m = build_on_meta("googlenet")
    five = [mod for mod in m.modules() if isinstance(mod, nn.Conv2d) and mod.kernel_size == (5, 5)]
    assert len(five) == 9
    assert not any(isinstance(mod, nn.BatchNorm2d) for mod in m.modules())
    assert m.head.drop.p == 0.4


def test_bn_inception_fig5_widths():
    m = build_on_meta("bn_inception")
    widths = [mod.out_channels for n, mod in m.features.named_children()
              if n.startswith("inception")]
    assert widths == [256, 320, 576, 576, 576, 576, 576, 1024, 1024, 1024]
    assert not any(mod.kernel_size == (5, 5) for mod in m.modules()
                   if isinstance(mod, nn.Conv2d))


def test_exact_counts():
    assert cnnlab.profile("inception_v3").params == 23_834_568
    assert cnnlab.profile("inception_resnet_v2").params == 55_843_464
    assert cnnlab.profile("nin_cifar10").params == 966_986
    assert cnnlab.profile("nin_imagenet").params == 7_595_176
    assert cnnlab.profile("allcnn_c").params == 1_369_738
    assert cnnlab.profile("simpnet").params == 5_478_223


def test_inception_resnet_v2_blocks():
    m = build_on_meta("inception_resnet_v2")
    blocks = [mod for mod in m.modules() if isinstance(mod, InceptionResidual)]
    assert [b.out_channels for b in blocks] == [320] * 10 + [1088] * 20 + [2080] * 10
    assert [b.scale for b in blocks] == [0.17] * 10 + [0.10] * 20 + [0.20] * 9 + [1.0]
    assert isinstance(blocks[-1].act, nn.Identity)


def test_nin_and_allcnn_have_no_fully_connected_layer():
    for name in ("nin_cifar10", "nin_imagenet", "allcnn_c"):
        m = build_on_meta(name)
        assert not any(isinstance(mod, nn.Linear) for mod in m.modules()), name
        m.reset_classifier(3)
        assert m.eval()(_meta_input(name)).shape == (2, 3)
    allcnn = build_on_meta("allcnn_c")
    assert not any(isinstance(mod, (nn.MaxPool2d, nn.AvgPool2d)) for mod in allcnn.modules())
    assert sum(mod.stride == (2, 2) for mod in allcnn.modules()
               if isinstance(mod, nn.Conv2d)) == 2


def test_simpnet_has_13_conv_layers():
    for name in ("simpnet", "simpnet_slim_600k", "simpnet_slim_300k"):
        m = build_on_meta(name)
        convs = [mod for mod in m.modules() if isinstance(mod, nn.Conv2d)]
        assert len(convs) == 13 and all(c.kernel_size == (3, 3) for c in convs), name
    slim = build_on_meta("simpnet_slim_300k")
    assert not any(isinstance(mod, nn.Dropout) for mod in slim.modules())


@pytest.mark.parametrize("name,kwargs", [
    ("googlenet", {"num_classes": -2}), ("inception_v3", {"num_classes": -1}),
    ("allcnn_c", {"drop_rate": 1.5}), ("simpnet", {"drop_rate_early": -0.1}),
])
def test_invalid_arguments(name, kwargs):
    with pytest.raises(ValueError):
        build_on_meta(name, **kwargs)
