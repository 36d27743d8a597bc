"""Dense metrics against hand-computed values, the MNIST canvases, and a few training steps."""

from pathlib import Path

import pytest
import torch

import cnnlab
from cnnlab.data import gaussian_heatmaps, load_dataset, make_canvases
from cnnlab.data.canvas import STROKE, digit_pools
from cnnlab.train import (
    KeypointMetrics,
    SegmentationMetrics,
    TrainConfig,
    confusion_matrix,
    heatmap_mse,
    mean_iou,
    pck,
    pixel_accuracy,
    pixel_cross_entropy,
    train,
)

MNIST = str(Path(__file__).resolve().parents[1] / "data" / "mnist")


# --- metrics -------------------------------------------------------------------------------
def test_segmentation_metrics_by_hand():
    target = torch.tensor([[0, 0, 1], [1, 2, 255]])
    pred = torch.tensor([[0, 1, 1], [1, 1, 0]])
    # labelled pixels: 5; right: (0,0), (0,2), (1,0) -> 3/5
    assert pixel_accuracy(pred, target) == pytest.approx(0.6)
    conf = confusion_matrix(pred, target, 3)
    assert conf.tolist() == [[1, 1, 0], [0, 2, 0], [0, 1, 0]]
    # IoU: class 0: 1/(2+1-1)=1/2; class 1: 2/(2+4-2)=1/2; class 2: 0/(1+0-0)=0
    assert mean_iou(pred, target, 3) == pytest.approx((0.5 + 0.5 + 0.0) / 3)
    scores = torch.nn.functional.one_hot(pred.clamp(max=2), 3).permute(2, 0, 1)[None].float()
    metric = SegmentationMetrics(3)
    sums = {k: v for k, v in metric(scores, target[None]).items()}
    res = metric.finalize(sums)
    assert res["pixel_acc"] == pytest.approx(60.0)
    assert res["miou"] == pytest.approx(100 / 3)
    assert res["iou"] == [50.0, 50.0, 0.0]
    # a class absent from prediction and target is left out of the mean
    assert mean_iou(torch.tensor([0, 1]), torch.tensor([0, 1]), 5) == pytest.approx(1.0)


def test_pck_and_heatmaps_by_hand():
    centres = torch.tensor([[[6.0, 10.0], [float("nan")] * 2, [30.0, 2.0]]])  # canvas px
    target = gaussian_heatmaps(centres, side=8, stride=4, sigma=1.0)
    assert target.shape == (1, 3, 8, 8) and target[0, 1].abs().sum() == 0
    # (6 + .5) / 4 - .5 = 1.125 -> peak at x=1; (10 + .5) / 4 - .5 = 2.125 -> y=2
    assert divmod(int(target[0, 0].argmax()), 8) == (2, 1)
    pred = torch.zeros(1, 3, 8, 8)
    pred[0, 0, 2, 3] = 1  # 2 px from the truth
    pred[0, 2, 7, 7] = 1  # truth at (x=7, y=0): 7 px away
    assert pck(pred, target, threshold=2.0) == pytest.approx(50.0)  # 1 of 2 visible
    assert pck(pred, target, threshold=1.5) == 0.0
    m = KeypointMetrics(threshold=7.0)
    assert m.finalize(m(pred, target))["pck"] == pytest.approx(100.0)
    loss = heatmap_mse()([pred, pred], target)  # intermediate supervision: summed per stack
    assert loss == pytest.approx(2 * float(((pred - target) ** 2).mean()))


def test_pixel_cross_entropy_ignores_and_sums_stacks():
    out = torch.randn(2, 4, 5, 5)
    y = torch.randint(0, 4, (2, 5, 5))
    y[0, 0, 0] = 255
    ce = pixel_cross_entropy()
    keep = y != 255
    manual = -out.log_softmax(1).gather(1, y.clamp(max=3)[:, None])[:, 0][keep].mean()
    assert ce(out, y) == pytest.approx(float(manual), rel=1e-5)
    assert ce((out, out), y) == pytest.approx(2 * float(manual), rel=1e-5)


# --- canvases ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def pools():
    return digit_pools(MNIST, seed=0)


def test_canvases_are_deterministic_and_consistent(pools):
    (x, y), (vx, vy) = pools
    assert len(x) == 8000 and len(vx) == 2000
    a = make_canvases(x[:300], y[:300], 20, size=48, seed=5)
    b = make_canvases(x[:300], y[:300], 20, size=48, seed=5)
    c = make_canvases(x[:300], y[:300], 20, size=48, seed=6)
    assert torch.equal(a.images, b.images) and torch.equal(a.heatmaps, b.heatmaps)
    assert not torch.equal(a.images, c.images)
    img, mask = a.images[:, 0], a.masks
    assert torch.equal(mask > 0, img >= STROKE)  # labels exactly where the strokes are
    for i in range(20):
        present = (~a.centres[i, :, 0].isnan()).nonzero().flatten() + 1
        assert set(mask[i].unique().tolist()) - {0} == set(present.tolist())
        for c_ in present.tolist():  # each centre lies on its digit's bounding box
            ys, xs = (mask[i] == c_).nonzero(as_tuple=True)
            cx, cy = a.centres[i, c_ - 1].tolist()
            assert xs.min() - 1 <= cx <= xs.max() + 1 and ys.min() - 1 <= cy <= ys.max() + 1
    assert a.heatmaps.shape == (20, 10, 12, 12)


def test_canvas_dataset_spec():
    s = load_dataset(f"mnist-canvas:{MNIST}", val_split=8, train_size=16, input_size=(3, 32, 32))
    assert s.train.x.shape == (16, 3, 32, 32) and s.val.y.shape == (8, 32, 32)
    assert s.num_classes == 11 and s.classes[0] == "background" and s.in_chans == 3
    k = load_dataset(f"mnist-canvas-keypoints:{MNIST}", val_split=4, train_size=4)
    assert k.train.y.shape == (4, 10, 16, 16) and k.num_classes == 10
    with pytest.raises(ValueError, match="needs the MNIST directory"):
        load_dataset("mnist-canvas")


# --- a few training steps ------------------------------------------------------------------
def _batch_loss(model, data, loss_fn):
    """The loss on the whole (tiny) training set as one batch, in training mode (batch norm
    on batch statistics: its running averages need more than a few steps)."""
    model.train()
    with torch.no_grad():
        return float(loss_fn(model(data.normalize(data.x)), data.y))


def _fit(model, split, loss_fn, metric_fn, iters, lr):
    before = _batch_loss(model, split.train, loss_fn)
    cfg = TrainConfig(iters=iters, batch_size=8, lr=lr, optimizer="adamw", weight_decay=0,
                      schedule="constant", device="cpu", seed=0)
    res = train(model, split, cfg, loss_fn=loss_fn, metric_fn=metric_fn, progress=False)
    return before, _batch_loss(model, split.train, loss_fn), res


def test_unet_and_fcn_training_lower_the_loss():
    torch.manual_seed(0)
    s = load_dataset(f"mnist-canvas:{MNIST}", val_split=8, train_size=16,
                     input_size=(1, 32, 32), per_canvas=(1, 1))
    metric = SegmentationMetrics(11)
    unet = cnnlab.create_model("unet", padding="same", depth=2, base_width=4, norm=True,
                               num_classes=11, drop_rate=0.0)
    before, after, res = _fit(unet, s, pixel_cross_entropy(), metric, 20, 1e-2)
    assert after < 0.75 * before
    assert "miou" in res.metrics and 0 <= res.metrics["miou"] <= 100
    fcn = cnnlab.create_model("fcn8s", backbone="mobilenet_v1", width_mult=0.25, in_chans=1,
                              num_classes=11)
    before, after, _ = _fit(fcn, s, pixel_cross_entropy(), metric, 6, 1e-2)
    assert after < before


def test_hourglass_training_lowers_the_loss():
    torch.manual_seed(0)
    s = load_dataset(f"mnist-canvas-keypoints:{MNIST}", val_split=4, train_size=16)
    hg = cnnlab.create_model("hourglass", stacks=2, features=8, levels=2, in_chans=1,
                             num_classes=10)
    before, after, res = _fit(hg, s, heatmap_mse(), KeypointMetrics(1.4), 6, 1e-2)
    assert after < 0.5 * before
    assert 0 <= res.metrics["pck"] <= 100
