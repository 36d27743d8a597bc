"""Weight sharing: k-means centroids, Eq. 1's compression rate, gradient sharing (Eq. 3)."""

import pytest
import torch
import torch.nn as nn

from cnnlab.compress.quantize import (
    bake,
    codebook_and_index,
    compression_rate,
    init_centroids,
    kmeans_1d,
    quantize_layer,
)


def test_compression_rate_worked_example():
    # Deep Compression Fig. 3: 16 weights, 4 clusters, 32-bit weights → 3.2
    assert compression_rate(16, 4, 32) == pytest.approx(3.2)
    assert compression_rate(16 * 4, 4, 32) > compression_rate(16, 4, 32)


def test_kmeans_finds_the_cluster_means():
    g = torch.Generator().manual_seed(0)
    groups = [torch.randn(500, generator=g) * 0.01 + m for m in (-2.0, 0.5, 3.0)]
    x = torch.cat(groups)[torch.randperm(1500, generator=g)]
    for init in ("linear", "density", "random"):
        c, labels = kmeans_1d(x, 3, init=init, seed=3)
        if init != "random":  # Forgy's random start may settle in a local optimum
            assert torch.allclose(c, torch.stack([gr.mean() for gr in groups]), atol=1e-6)
        # a fixed point of Lloyd's iteration: nearest centroids, centroids = members' means
        assert torch.equal(labels, (x[:, None] - c[None]).abs().argmin(1))
        for j in range(3):
            assert torch.allclose(c[j], x[labels == j].mean(), atol=1e-6)


def test_centroid_initialisations():
    x = torch.tensor([0.0, 1.0, 1.0, 1.0, 1.0, 10.0])
    assert init_centroids(x, 3, "linear").tolist() == [0.0, 5.0, 10.0]
    assert init_centroids(x, 3, "density").tolist() == [0.0, 1.0, 10.0]  # CDF quantiles
    assert set(init_centroids(x, 3, "random").tolist()) <= set(x.tolist())
    with pytest.raises(ValueError, match="initialisation"):
        init_centroids(x, 3, "spectral")


def tied_layer():
    torch.manual_seed(0)
    layer = nn.Linear(30, 20)
    with torch.no_grad():
        layer.weight[layer.weight.abs() < 0.05] = 0  # pruned
    pruned = layer.weight.detach() == 0
    quantize_layer(layer, bits=2)
    return layer, pruned


def test_gradients_are_summed_per_cluster():
    layer, _ = tied_layer()
    codebook, index, k = codebook_and_index(layer)
    x = torch.randn(8, 30)
    w = layer.weight.detach().clone().requires_grad_()  # the same weights, untied
    nn.functional.linear(x, w, layer.bias).pow(2).sum().backward()
    layer(x).pow(2).sum().backward()
    param = layer.parametrizations.weight.original
    want = torch.zeros(k + 1).index_add_(0, index.reshape(-1), w.grad.reshape(-1))[:k]
    assert torch.allclose(param.grad, want, atol=1e-5)  # ∂L/∂C_k = Σ ∂L/∂W · 1(I = k)


def test_training_keeps_weights_tied_and_pruned_weights_zero():
    layer, pruned = tied_layer()
    opt = torch.optim.SGD(layer.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-3)
    for _ in range(5):
        opt.zero_grad()
        layer(torch.randn(16, 30)).sin().sum().backward()
        opt.step()
    codebook, index, k = codebook_and_index(layer)
    w = layer.weight.detach()
    assert len(torch.unique(w[~pruned])) <= k == 4
    assert (w[pruned] == 0).all()
    assert torch.equal(w, torch.cat([codebook, torch.zeros(1)])[index])
    codes = bake(layer)
    assert isinstance(layer.weight, nn.Parameter)
    assert torch.equal(layer.weight.detach(), w)
    assert torch.equal(codes[""][0], codebook)


def test_quantized_layer_starts_at_the_kmeans_centroids():
    torch.manual_seed(1)
    layer = nn.Linear(40, 10)
    before = layer.weight.detach().clone()
    quantize_layer(layer, bits=3)
    c, labels = kmeans_1d(before.reshape(-1), 8)
    assert torch.allclose(layer.weight.detach().reshape(-1), c[labels], atol=1e-6)
