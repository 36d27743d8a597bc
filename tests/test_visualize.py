"""cnnlab.visualize: guided backprop, Grad-CAM, neighbours, filters, and their errors."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import cnnlab
from cnnlab.data import TensorData
from cnnlab.visualize import (
    cam_layer,
    compressed_overlap,
    extract_features,
    filter_tiles,
    grad_cam,
    guided_backprop,
    input_gradient,
    nearest_neighbours,
    plot_embedding,
    plot_filters,
    plot_saliency,
)

# x = (1, 2, 1); hidden pre-activations W1 x = (3, 1, -1); class 0's output weights (2, -1, 5)
W1 = torch.tensor([[1.0, 1.0, 0.0], [0.0, 1.0, -1.0], [1.0, 0.0, -2.0]])
W2 = torch.tensor([[2.0, -1.0, 5.0], [1.0, 1.0, 1.0]])
X = torch.tensor([[1.0, 2.0, 1.0]])
# plain: W1ᵀ · [(pre > 0) · w] = W1ᵀ (2, -1, 0) = (2, 1, 1)
# guided: W1ᵀ · [(pre > 0) · (w > 0) · w] = W1ᵀ (2, 0, 0) = (2, 2, 0)
PLAIN = torch.tensor([[2.0, 1.0, 1.0]])
GUIDED = torch.tensor([[2.0, 2.0, 0.0]])


def _linear(w):
    lin = nn.Linear(w.shape[1], w.shape[0], bias=False)
    lin.weight.data.copy_(w)
    return lin


class FunctionalNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1, self.fc2 = _linear(W1), _linear(W2)

    def forward(self, x):
        return self.fc2(F.relu(self.fc1(x)))


def module_net(inplace=False):
    return nn.Sequential(_linear(W1), nn.ReLU(inplace=inplace), _linear(W2))


@pytest.mark.parametrize("make", [module_net, lambda: module_net(True), FunctionalNet],
                         ids=["ReLU", "ReLU-inplace", "F.relu"])
def test_guided_backprop_equals_the_hand_computed_case(make):
    net = make()
    g, t = guided_backprop(net, X, target=0)
    assert t.tolist() == [0]
    assert torch.allclose(g, GUIDED)
    plain, _ = input_gradient(net, X, target=0)
    assert torch.allclose(plain, PLAIN)  # and the guiding is gone once the pass is over


def test_guided_backprop_refuses_other_activations_by_name():
    tanh_net = nn.Sequential(_linear(W1), nn.Tanh(), _linear(W2))
    with pytest.raises(ValueError, match=r"Tanh \(tanh\) at 1"):
        guided_backprop(tanh_net, X)
    lenet = cnnlab.create_model("lenet5")
    with pytest.raises(ValueError, match=r"lenet5 uses ScaledTanh \(tanh\) at features.act1"):
        guided_backprop(lenet, torch.zeros(1, 1, 32, 32))


def tiny_cnn():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(inplace=True),
                         nn.Conv2d(4, 3, 3, padding=1), nn.ReLU(inplace=True),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(3, 2))


def test_grad_cam_weights_are_the_spatially_averaged_gradients():
    net = tiny_cnn()
    x = torch.randn(2, 1, 6, 6)
    # at the last ReLU, followed by global averaging and fc: d y_c / d A_k(i, j) = W[c, k] / 36
    r = grad_cam(net, x, target=1, layer="3")
    assert torch.allclose(r["weights"], net[6].weight[1].detach().expand(2, 3) / 36)
    # the default layer is the last convolution; its weights are its averaged gradients
    assert cam_layer(net, x)[0] == "2"
    r = grad_cam(net, x, target=0)
    conv_out = net[2](net[1](net[0](x)))
    logits = net[4:](F.relu(conv_out))
    (g,) = torch.autograd.grad(logits[:, 0].sum(), conv_out)
    assert torch.allclose(r["weights"], g.mean((2, 3)), atol=1e-6)
    cam = F.relu((r["weights"][:, :, None, None] * conv_out).sum(1))
    assert torch.allclose(r["cam"], cam / cam.flatten(1).amax(1)[:, None, None], atol=1e-6)


def test_grad_cam_skips_a_one_by_one_stage():
    # LeNet-5's C5 output is 1x1: the map comes from S4's 5x5 stage
    lenet = cnnlab.create_model("lenet5_modern")
    assert cam_layer(lenet, torch.zeros(1, 1, 32, 32))[0] == "features.act4"


def test_neighbour_search_returns_the_image_itself_first():
    base = torch.randn(50, 8, generator=torch.Generator().manual_seed(0))
    rows = [3, 17, 42]
    for metric in ("euclidean", "cosine"):
        idx, dist = nearest_neighbours(base[rows], base, k=4, metric=metric)
        assert idx[:, 0].tolist() == rows
        assert dist[:, 0].abs().max() < 1e-3
        assert (dist[:, 1:] >= dist[:, :-1]).all()
    # the same through batched feature extraction of real images
    net = tiny_cnn()
    g = torch.Generator().manual_seed(1)
    data = TensorData(torch.randint(0, 256, (30, 1, 6, 6), dtype=torch.uint8, generator=g),
                      torch.arange(30) % 2, mean=(0.5,), std=(0.25,))
    feats = extract_features(net, data, batch_size=7)
    assert feats.shape == (30, 3)
    idx, _ = nearest_neighbours(feats[[5, 20]], feats, k=3)
    assert idx[:, 0].tolist() == [5, 20]


def test_pca_to_full_dimension_keeps_every_neighbour():
    f = torch.randn(40, 6, generator=torch.Generator().manual_seed(2))
    assert compressed_overlap(f[:30], f[30:], dim=6, k=5) == pytest.approx(1.0)
    assert compressed_overlap(f[:30], f[30:], dim=1, k=5) < 1.0


def test_filter_tiles_scale_each_filter_and_keep_rgb():
    w = torch.randn(5, 3, 4, 4)
    tiles = filter_tiles(w)
    assert tiles.shape == (5, 4, 4, 3)
    assert tiles.reshape(5, -1).min(1) == pytest.approx([0] * 5)
    assert tiles.reshape(5, -1).max(1) == pytest.approx([1] * 5)
    assert filter_tiles(torch.randn(4, 2, 3, 3)).shape == (8, 3, 3)


def test_filters_of_a_model_without_convolution_is_an_error(tmp_path):
    mlp = cnnlab.create_model("lenet_300_100")
    with pytest.raises(ValueError, match="lenet_300_100 has no convolution"):
        plot_filters(mlp, tmp_path / "f.png")
    assert list(tmp_path.iterdir()) == []


def test_every_picture_is_a_png_and_nothing_else_is_left(tmp_path):
    # filters (grey), neighbours, guided backprop and Grad-CAM are drawn in
    # test_visualize_cli.py; here the other paths: RGB filters, the PCA map, input gradients
    pytest.importorskip("matplotlib")
    pytest.importorskip("sklearn")
    net = tiny_cnn()
    g = torch.Generator().manual_seed(3)
    data = TensorData(torch.randint(0, 256, (24, 1, 6, 6), dtype=torch.uint8, generator=g),
                      torch.arange(24) % 2)
    feats = extract_features(net, data)
    rgb = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU())
    files = [plot_filters(rgb, tmp_path / "filters.png", "run/last.safetensors"),
             plot_embedding(net, feats, data.y, tmp_path / "pca.png"),
             plot_saliency(net, data.x[:2], data.normalize(data.x[:2]), "grad",
                           tmp_path / "grad.png", labels=data.y[:2])]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["filters.png", "grad.png", "pca.png"]
    for f in files:
        assert open(f, "rb").read(8) == b"\x89PNG\r\n\x1a\n"


def test_features_are_cached_by_weights_and_images(tmp_path):
    from cnnlab.visualize import features

    net = tiny_cnn()
    data = TensorData(torch.rand(10, 1, 6, 6), torch.zeros(10, dtype=torch.long))
    first = extract_features(net, data, cache_dir=tmp_path)
    assert extract_features(net, data, cache_dir=tmp_path) is first
    (file,) = tmp_path.glob("features-*.npy")
    features._MEMORY.clear()
    assert torch.equal(extract_features(net, data, cache_dir=tmp_path), first)
    with torch.no_grad():
        net[6].bias.add_(1.0)  # the head is not in the features, but the weights changed
        net[0].bias.add_(1.0)
    assert not torch.equal(extract_features(net, data, cache_dir=tmp_path), first)
    assert len(list(tmp_path.glob("features-*.npy"))) == 2 and file.exists()
