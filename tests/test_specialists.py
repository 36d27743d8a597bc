"""Specialists: confusable subsets, dustbin specialists, the KL combination."""

import torch
import torch.nn as nn
import torch.nn.functional as F

from cnnlab.compress.distill import soft_cross_entropy
from cnnlab.compress.specialists import (
    FullSoftmaxLoss,
    SpecialistEnsemble,
    combine,
    confusable_subsets,
    enriched_split,
    make_specialist,
    specialist_labels,
    train_full_specialist,
    train_specialist,
)
from cnnlab.data.core import DataSplit, TensorData
from cnnlab.train import TrainConfig, evaluate


def test_confusable_subsets_from_the_covariance():
    g = torch.Generator().manual_seed(0)
    rows = []
    for _ in range(300):  # the generalist hesitates within {0,1} and within {2,3,4}; 5 is sure
        grp = [[0, 1], [2, 3, 4], [5]][int(torch.randint(3, (1,), generator=g))]
        p = torch.full((6,), 0.01)
        w = torch.rand(len(grp), generator=g)
        p[grp] = w / w.sum()
        rows.append(p / p.sum())
    assert confusable_subsets(torch.stack(rows), 3) == [[0, 1], [2, 3, 4]]


def test_specialist_labels_and_init():
    assert specialist_labels(torch.tensor([3, 5, 8, 0, 5]), [3, 5, 8]).tolist() == [0, 1, 2, 3, 1]
    torch.manual_seed(0)
    gen = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 6))
    spec = make_specialist(gen, [1, 4])
    x = torch.randn(5, 4)
    z, zs = gen(x), spec(x)
    assert zs.shape == (5, 3)
    torch.testing.assert_close(zs[:, :2], z[:, [1, 4]])
    assert gen[2].out_features == 6  # the generalist is untouched


def _blobs(n=400, classes=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(classes, 1, 4, 4, generator=g) * 2
    centres[1] = centres[0] + 0.3 * torch.randn(1, 4, 4, generator=g)  # 0 and 1 look alike
    y = torch.randint(0, classes, (n,), generator=g)
    return TensorData(centres[y] + torch.randn(n, 1, 4, 4, generator=g), y)


def _split():
    d = _blobs()
    return DataSplit(d.subset(range(300)), d.subset(range(300, 400)), 6, 1, "blobs")


def test_enriched_split_is_half_special():
    s = enriched_split(_split(), [0, 1])
    frac = float((s.train.y < 2).float().mean())
    assert abs(frac - 0.5) < 0.02 and s.num_classes == 3
    assert set(s.val.y.tolist()) <= {0, 1, 2}


def test_combine_agrees_with_consistent_specialist_and_follows_a_sharper_one():
    p_g = torch.tensor([[0.4, 0.3, 0.2, 0.1]])
    same = torch.tensor([[0.4, 0.3, 0.3]])  # classes 0, 1 and the dustbin {2, 3}
    q = combine(p_g, [([0, 1], same)], steps=200)
    torch.testing.assert_close(q, p_g, atol=1e-3, rtol=0)
    sharp = torch.tensor([[0.1, 0.6, 0.3]])
    q = combine(p_g, [([0, 1], sharp)], steps=300)
    assert q[0, 1] > q[0, 0]  # the specialist overturns the generalist within its subset
    assert abs(float(q[0, 2:].sum()) - 0.3) < 0.05  # and the dustbin mass is respected
    inactive = combine(p_g, [([2, 3], torch.tensor([[0.9, 0.05, 0.05]]))])
    torch.testing.assert_close(inactive, p_g.float())  # top-1 class 0 is not in {2, 3}


def test_tiny_specialist_run_is_an_evaluable_ensemble():
    torch.manual_seed(0)
    split = _split()
    gen = nn.Sequential(nn.Flatten(), nn.Linear(16, 16), nn.ReLU(), nn.Linear(16, 6))
    from cnnlab.train import train

    cfg = TrainConfig(epochs=3, lr=0.05, batch_size=30, device="cpu")
    train(gen, split, cfg, progress=False)
    spec = train_specialist(gen, split, [0, 1], cfg.replace(epochs=4), patience=1)
    assert spec.special_classes == [0, 1] and spec[-1].out_features == 3
    ens = SpecialistEnsemble(gen, [spec], steps=20)
    res = evaluate(ens, split)
    assert res["n"] == 100 and 0 <= res["top1"] <= 100
    with torch.no_grad():
        q = ens(split.val.normalize(split.val.x[:8])).exp()
    torch.testing.assert_close(q.sum(1), torch.ones(8), atol=1e-4, rtol=0)
    assert F.softmax(gen(split.val.normalize(split.val.x[:8])), 1).shape == q.shape


def test_full_softmax_terms_combine_to_the_mean_distribution():
    g = torch.Generator().manual_seed(0)
    p_g = F.softmax(torch.randn(3, 5, generator=g) * 2, 1)
    p_g[2] = torch.tensor([0.05, 0.05, 0.1, 0.2, 0.6])  # top-1 class 4: no specialist active
    p_a = F.softmax(torch.randn(3, 5, generator=g) * 2, 1)
    p_b = F.softmax(torch.randn(3, 5, generator=g) * 2, 1)
    top = p_g.argmax(1).tolist()
    sa, sb = [top[0], top[1]], [top[1]]  # a is active on examples 0 and 1, b on 1
    q = combine(p_g, [(sa, p_a, True), (sb, p_b, True)], steps=400, lr=0.1)
    want = torch.stack([(p_g[0] + p_a[0]) / 2, (p_g[1] + p_a[1] + p_b[1]) / 3, p_g[2]])
    torch.testing.assert_close(q, want, atol=2e-3, rtol=0)  # argmin Σ KL(p, q) = mean of p


def test_full_softmax_loss_is_hard_inside_the_subset_and_soft_outside():
    torch.manual_seed(0)
    gen = nn.Linear(4, 5)
    x, z = torch.randn(6, 4), torch.randn(6, 5)
    y = torch.tensor([1, 3, 0, 3, 4, 1])
    loss = FullSoftmaxLoss(gen, [1, 3], T=5.0)
    inside = torch.tensor([True, True, False, True, False, True])
    hard = F.cross_entropy(z[inside], y[inside], reduction="sum")
    p = F.softmax(gen(x[~inside]) / 5.0, 1).detach()
    soft = 25.0 * soft_cross_entropy(p, z[~inside], 5.0) * int((~inside).sum())
    torch.testing.assert_close(loss(z, y, inputs=x), (hard + soft) / 6)
    torch.testing.assert_close(loss(z, y), F.cross_entropy(z, y))  # evaluation


def test_soft_targets_keep_a_full_specialist_close_to_the_generalist_elsewhere():
    from cnnlab.train import train

    torch.manual_seed(0)
    split = _split()
    gen = nn.Sequential(nn.Flatten(), nn.Linear(16, 16), nn.ReLU(), nn.Linear(16, 6))
    cfg = TrainConfig(epochs=3, lr=0.05, batch_size=30, device="cpu")
    train(gen, split, cfg, progress=False)
    full = train_full_specialist(gen, split, [0, 1], cfg.replace(epochs=4), T=4.0,
                                 patience=10)
    assert full.full_softmax and full[-1].out_features == 6 and full.special_classes == [0, 1]
    import copy

    hard = copy.deepcopy(gen)  # the same enriched data, hard targets everywhere
    train(hard, enriched_split(split, [0, 1], relabel=False), cfg.replace(epochs=4),
          progress=False)
    x = split.val.normalize(split.val.x[split.val.y >= 2])
    with torch.no_grad():
        p_g = F.softmax(gen(x), 1)

        def drift(m):
            return float(F.kl_div(F.log_softmax(m(x), 1), p_g, reduction="batchmean"))

        assert drift(full) < drift(hard)  # the soft targets keep the other classes' knowledge
    res = evaluate(SpecialistEnsemble(gen, [full], steps=20), split)
    assert res["n"] == 100 and 0 <= res["top1"] <= 100
