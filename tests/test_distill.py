"""Distillation: the deck's gradient identities, ensembles, stored soft targets, a tiny run."""

import pytest
import torch
import torch.nn as nn

from cnnlab.compress.distill import (
    DistillLoss,
    Ensemble,
    SoftTargets,
    expected_gradient,
    fit_bias_shift,
    logit_matching_gradient,
    max_norm,
    soft_cross_entropy,
    temperature_softmax,
)
from cnnlab.data.core import DataSplit, TensorData
from cnnlab.train import TrainConfig, evaluate, train


def _soft_grad(z, v, T, scale=1.0):
    z = z.clone().requires_grad_(True)
    (scale * soft_cross_entropy(temperature_softmax(v, T), z, T) * len(z)).backward()
    return z.grad


def test_gradient_is_q_minus_p_over_T():
    torch.manual_seed(0)
    z, v = torch.randn(4, 10) * 3, torch.randn(4, 10) * 3
    for T in (1.0, 4.0, 20.0):
        torch.testing.assert_close(_soft_grad(z, v, T), expected_gradient(z, v, T))


def test_high_temperature_limit_is_logit_matching():
    torch.manual_seed(0)
    z, v = torch.randn(8, 10, dtype=torch.float64), torch.randn(8, 10, dtype=torch.float64)
    z, v = z - z.mean(1, keepdim=True), v - v.mean(1, keepdim=True)
    T = 1e3

    def rel_err(T):
        g, lim = _soft_grad(z, v, T), logit_matching_gradient(z, v, T)
        return float((g - lim).norm() / lim.norm())

    assert rel_err(T) < 1e-2
    assert rel_err(1.0) > 0.1  # the limit is a high-temperature statement


def test_T_squared_keeps_soft_gradient_magnitude():
    torch.manual_seed(1)
    z, v = torch.randn(16, 10, dtype=torch.float64), torch.randn(16, 10, dtype=torch.float64)
    scaled = [float(_soft_grad(z, v, T, scale=T * T).norm()) for T in (20.0, 100.0, 1000.0)]
    plain = [float(_soft_grad(z, v, T).norm()) for T in (20.0, 100.0, 1000.0)]
    assert max(scaled) / min(scaled) < 1.1
    assert plain[0] / plain[2] > 1000  # without T² it falls as 1/T²


def test_ensemble_combinations():
    torch.manual_seed(0)
    a, b = nn.Linear(5, 3), nn.Linear(5, 3)
    x = torch.randn(7, 5)
    mean_p = (a(x).softmax(1) + b(x).softmax(1)) / 2
    ens = Ensemble([a, b])
    torch.testing.assert_close(ens(x).exp(), mean_p)
    torch.testing.assert_close(ens.soft_targets(x, 1.0), mean_p)
    geo = Ensemble([a, b], combine="logits")
    g = (a(x).softmax(1) * b(x).softmax(1)).sqrt()
    torch.testing.assert_close(geo.soft_targets(x, 1.0), g / g.sum(1, keepdim=True))
    with pytest.raises(ValueError, match="disagree"):
        Ensemble([a, nn.Linear(5, 4)])(x)


def test_ensemble_of_checkpoints_is_evaluable(tmp_path):
    from cnnlab.compress.distill import load_ensemble
    from cnnlab.models import create_model
    from cnnlab.train import save_checkpoint

    models, paths = [], []
    for seed in (0, 1):
        torch.manual_seed(seed)
        m = create_model("lenet_300_100").eval()
        paths.append(save_checkpoint(tmp_path / f"m{seed}.safetensors", m, meta={
            "model": "lenet_300_100", "model_args": {"num_classes": 10}}))
        models.append(m)
    ens = load_ensemble([str(paths[0]), f"lenet_300_100:{paths[1]}"])
    x = torch.randn(4, 1, 28, 28)
    torch.testing.assert_close(ens(x), Ensemble(models)(x))
    data = TensorData(torch.randn(20, 1, 28, 28), torch.randint(0, 10, (20,)))
    assert evaluate(ens, data)["n"] == 20
    with pytest.raises(ValueError, match="holds lenet_300_100"):
        load_ensemble([f"lenet5_caffe:{paths[0]}"])


def _blobs(n=240, seed=0):
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(4, 1, 4, 4, generator=g) * 2
    y = torch.randint(0, 4, (n,), generator=g)
    x = centres[y] + torch.randn(n, 1, 4, 4, generator=g)
    return TensorData(x, y)


def test_stored_soft_targets_round_trip(tmp_path):
    data = _blobs()
    teacher = nn.Sequential(nn.Flatten(), nn.Linear(16, 4))
    st = SoftTargets.compute(teacher, data)
    st.save(tmp_path / "t.safetensors")
    st = SoftTargets.load(tmp_path / "t.safetensors")
    x = data.x[[5, 3, 200]].float()
    torch.testing.assert_close(st(x), teacher(x).detach())
    with pytest.raises(ValueError, match="not in the stored"):
        st(x + 0.5)


def test_stored_ensemble_targets_combine_like_the_ensemble_at_any_T(tmp_path):
    data = _blobs()
    torch.manual_seed(1)
    members = [nn.Sequential(nn.Flatten(), nn.Linear(16, 4)) for _ in range(3)]
    for combine in ("probs", "logits"):
        ens = Ensemble(members, combine)
        st = SoftTargets.compute(ens, data, info={"data": "blobs"})
        st.save(tmp_path / "e.safetensors")
        st = SoftTargets.load(tmp_path / "e.safetensors")
        assert st.logits.shape == (3, len(data), 4) and st.info == {"data": "blobs"}
        x = data.x[[7, 0, 99]].float()
        for T in (1.0, 4.0, 20.0):  # stored logits, not probabilities: every T is exact
            torch.testing.assert_close(st.soft_targets(x, T), ens.soft_targets(x, T))
        torch.testing.assert_close(st(x), ens(x).detach())


def test_stored_targets_count_missing_images_and_reject_other_files(tmp_path):
    data = _blobs()
    st = SoftTargets.compute(nn.Sequential(nn.Flatten(), nn.Linear(16, 4)),
                             data.subset(range(100)))
    assert st.missing(data.subset(range(100))) == 0
    assert st.missing(data.subset(range(50, 150))) == 50
    from safetensors.torch import save_file

    save_file({"w": torch.zeros(2)}, str(tmp_path / "w.safetensors"))
    (tmp_path / "junk.safetensors").write_bytes(b"\x99" * 40)
    for name in ("w", "junk", "none"):
        with pytest.raises(ValueError, match="soft-target file"):
            SoftTargets.load(tmp_path / f"{name}.safetensors")


def test_tiny_distillation_lowers_soft_loss():
    torch.manual_seed(0)
    both = _blobs(360)
    data = both.subset(range(240))
    split = DataSplit(data, both.subset(range(240, 360)), 4, 1, "blobs")
    teacher = nn.Sequential(nn.Flatten(), nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 4))
    train(teacher, split, TrainConfig(epochs=5, lr=0.1, batch_size=40, device="cpu"),
          progress=False)
    student = nn.Sequential(nn.Flatten(), nn.Linear(16, 8), nn.ReLU(), nn.Linear(8, 4))
    loss = DistillLoss(teacher, T=4.0, alpha=1.0)

    def soft_loss():
        x = split.train.normalize(data.x.float())
        with torch.no_grad():
            p = temperature_softmax(teacher(x), 4.0)
            return float(soft_cross_entropy(p, student(x), 4.0))

    before = soft_loss()
    train(student, split, TrainConfig(epochs=5, lr=0.05, batch_size=40, device="cpu"),
          loss_fn=loss, progress=False)
    assert loss.last["soft"] > 0  # the trainer gave the loss the inputs
    assert soft_loss() < before - 0.05
    assert evaluate(student, split)["top1"] > 80  # predicts at T = 1 with its plain forward


def test_loss_rejects_mismatched_teacher_and_is_plain_ce_without_inputs():
    loss = DistillLoss(nn.Linear(5, 3), T=2.0)
    z, y = torch.randn(2, 4), torch.zeros(2, dtype=torch.long)
    with pytest.raises(ValueError, match="3 classes"):
        loss(z, y, inputs=torch.randn(2, 5))
    torch.testing.assert_close(loss(z, y), torch.nn.functional.cross_entropy(z, y))


def test_bias_shift_recovers_an_omitted_class():
    torch.manual_seed(0)
    y = torch.arange(6).repeat(20)
    z = torch.nn.functional.one_hot(y, 6).float() * 3
    z[:, 2] -= 4  # class 2 is under-predicted, as after a transfer set without it
    z += torch.randn_like(z) * 0.3
    assert float((z.argmax(1) == y).float().mean()) < 0.9
    shift, acc = fit_bias_shift(z, y, [2])
    assert shift > 0 and acc == 100.0


def test_max_norm_caps_incoming_weights():
    m = nn.Linear(10, 4)
    with torch.no_grad():
        m.weight.mul_(100)
    max_norm(2.0)(m, 0)
    assert torch.all(m.weight.norm(dim=1) <= 2.0 + 1e-5)
