import math

import pytest
import torch

import cnnlab
from cnnlab.data import load_dataset
from cnnlab.train import TrainConfig, TrainingDiverged, evaluate, get_recipe, train
from cnnlab.train.config import RECIPES, recipe_for
from cnnlab.train.optim import Schedule, build_optimizer


@pytest.fixture(scope="module")
def digits():
    split = load_dataset("digits", input_size=(1, 32, 32))
    split.train = split.train.subset(range(512))
    return split


def tiny(**kw):
    torch.manual_seed(0)
    return cnnlab.create_model("lenet5_modern", **kw)


def test_train_learns_digits_and_evaluate_agrees(digits):
    model = tiny()
    cfg = TrainConfig(epochs=4, batch_size=32, lr=3e-3, optimizer="adamw", weight_decay=0.01,
                      schedule="cosine", warmup=0.5)
    res = train(model, digits, cfg, progress=False)
    assert len(res.history) == 4 and res.steps == 4 * 16
    assert res.metrics["top1"] > 60, res.metrics  # chance is 10 %
    ev = evaluate(model, digits.val, confusion=True)
    assert ev["top1"] == pytest.approx(res.metrics["top1"])
    cm = torch.tensor(ev["confusion"])
    assert cm.sum() == len(digits.val) and cm.trace() / cm.sum() * 100 == pytest.approx(ev["top1"])
    assert ev["top5"] >= ev["top1"]


def test_lenet5_paper_network_learns_with_its_recipe(digits):
    torch.manual_seed(0)
    model = cnnlab.create_model("lenet5")
    res = train(model, digits, get_recipe("lenet").config(epochs=2), progress=False)
    assert res.metrics["top1"] > 70, res.metrics


def test_step_hooks_loss_fn_metric_fn_and_aux_outputs(digits):
    class Aux(torch.nn.Module):  # returns (main, aux) like GoogLeNet in training
        def __init__(self):
            super().__init__()
            self.net = tiny()
            self.aux = torch.nn.Linear(32 * 32, 10)

        def forward(self, x):
            out = self.net(x)
            return (out, self.aux(x.flatten(1))) if self.training else out

    steps, calls = [], []

    def hook(m, step):
        steps.append(step)
        with torch.no_grad():  # e.g. a pruning mask re-applied after every step
            m.aux.weight[:, :10] = 0

    def metric(out, y):
        calls.append(1)
        return {"wrong": (out.argmax(1) != y).sum()}

    model = Aux()
    cfg = TrainConfig(epochs=1, batch_size=64, lr=0.05, aux_weight=0.3)
    res = train(model, digits, cfg, metric_fn=metric, step_hooks=[hook], progress=False)
    assert steps == list(range(1, 9)) and model.aux.weight[:, :10].abs().sum() == 0
    assert calls and res.metrics["wrong"] == pytest.approx(
        len(digits.val) * (1 - res.metrics["top1"] / 100))


def test_tuple_is_main_plus_aux_and_list_is_stacks_with_the_last_final():
    from cnnlab.train.evaluate import cross_entropy, main_output

    good, bad = torch.eye(4) * 10, torch.zeros(4, 4)
    y = torch.arange(4)
    assert main_output((good, bad)) is good and main_output([bad, good]) is good
    ce = torch.nn.functional.cross_entropy
    loss = cross_entropy(aux_weight=0.3)
    assert loss((good, bad), y) == pytest.approx(float(ce(good, y) + 0.3 * ce(bad, y)))
    assert loss([bad, good], y) == pytest.approx(float(ce(bad, y) + ce(good, y)))


def test_train_statistics_follow_the_final_stack(digits):
    class Stacks(torch.nn.Module):  # intermediate supervision like the Stacked Hourglass
        def __init__(self):
            super().__init__()
            self.net = tiny()
            self.bias = torch.nn.Parameter(torch.zeros(10))

        def forward(self, x):
            out = self.net(x)
            chance = self.bias.expand(len(x), 10)  # the first "stack" never learns
            return [chance, out] if self.training else out

    torch.manual_seed(0)
    cfg = TrainConfig(epochs=3, batch_size=32, lr=3e-3, optimizer="adamw", weight_decay=0.0,
                      schedule="constant")
    res = train(Stacks(), digits, cfg, progress=False)
    assert res.history[-1]["train_top1"] > 50, res.history[-1]  # the first stack: ~10 %


def test_weight_decay_exclusions():
    model = cnnlab.create_model("mobilenet_v1", width_mult=0.25, num_classes=10)
    cfg = TrainConfig(weight_decay=4e-5, no_decay_depthwise=True)
    opt = build_optimizer(model, cfg)
    decayed = {id(p) for p in opt.param_groups[0]["params"]}
    for name, m in model.named_modules():
        if isinstance(m, torch.nn.Conv2d):
            dw = m.groups > 1 and m.groups == m.in_channels
            assert (id(m.weight) in decayed) != dw, name
        if isinstance(m, torch.nn.BatchNorm2d):
            assert id(m.weight) not in decayed and id(m.bias) not in decayed
    assert opt.param_groups[1]["weight_decay"] == 0
    assert id(model.head.fc.weight) in decayed and id(model.head.fc.bias) not in decayed


def test_schedules():
    def lrs(spe=10, total=100, **kw):
        s = Schedule(TrainConfig(lr=1.0, **kw), spe, total)
        return [s.lr(i) for i in range(total)]

    r = get_recipe("resnet_cifar").config()
    s = Schedule(r, 391, r.iters)
    assert [s.lr(i) for i in (0, 31999, 32000, 47999, 48000, 63999)] == pytest.approx(
        [0.1, 0.1, 0.01, 0.01, 0.001, 0.001])
    g = lrs(schedule="googlenet", total=200)  # 4 % every 8 epochs of 10 steps
    assert g[79] == 1 and g[80] == pytest.approx(0.96) and g[160] == pytest.approx(0.96 ** 2)
    c = lrs(schedule="cosine")
    assert c[0] == 1 and c[50] == pytest.approx(0.5) and c[99] < 0.01
    w = lrs(schedule="constant", warmup=2, warmup_start=0.0)
    assert w[0] == 0 and w[10] == pytest.approx(0.5) and w[20] == 1
    p = lrs(schedule="poly", power=2.0)
    assert p[50] == pytest.approx(0.25)
    m = lrs(schedule="multistep", milestones=(2, 5), gamma=(0.4, 0.5))
    assert (m[19], m[20], m[50]) == pytest.approx((1, 0.4, 0.2))
    s = Schedule(TrainConfig(lr=1.0, schedule="plateau", plateau_patience=2, gamma=0.1), 10, 100)
    for err in (50, 40, 41, 40.5, 39, 39.5, 39.2):
        s.observe(err)
    assert s.lr(0) == pytest.approx(0.01)  # two plateaus of two epochs each


def test_recipes_are_the_papers():
    r = get_recipe("resnet_cifar").config()
    assert (r.optimizer, r.lr, r.momentum, r.weight_decay, r.batch_size, r.iters) == \
        ("sgd", 0.1, 0.9, 1e-4, 128, 64000)
    assert r.milestones == (32000, 48000) and r.augment == "crop:4,flip"
    mb = get_recipe("mobilenet").config()
    assert mb.optimizer == "rmsprop" and mb.no_decay_depthwise
    assert get_recipe("alexnet").config().schedule == "plateau"
    assert {"resnet_cifar", "mobilenet", "lenet", "alexnet", "vgg", "googlenet"} <= set(RECIPES)
    assert recipe_for("lenet5") == "lenet" and recipe_for("vgg16_bn") == "vgg"
    assert recipe_for("mobilenet_v1") == "mobilenet" and recipe_for("resnet20") == "resnet_cifar"
    with pytest.raises(ValueError, match="unknown recipe"):
        get_recipe("nope")


def test_bad_config_is_a_clear_error(digits):
    with pytest.raises(ValueError, match="unknown optimizer"):
        TrainConfig(optimizer="lbfgs")
    with pytest.raises(ValueError, match="batch size"):
        TrainConfig(batch_size=0)
    mnist_test_only = load_dataset("mnist:data/mnist")
    with pytest.raises(ValueError, match="--val-split"):
        train(tiny(), mnist_test_only, TrainConfig(epochs=1), progress=False)


def test_nan_loss_stops_and_keeps_last_good_checkpoint(digits, tmp_path):
    model = tiny()
    state = {}

    def poison(m, step):
        if step == 20:  # after the first epoch's checkpoint
            state["ckpt"] = (tmp_path / "last.safetensors").read_bytes()
            with torch.no_grad():
                m.output.weight.fill_(math.inf)

    cfg = TrainConfig(epochs=3, batch_size=32, lr=0.01, out_dir=str(tmp_path))
    with pytest.raises(TrainingDiverged, match="last good checkpoint"):
        train(model, digits, cfg, step_hooks=[poison], progress=False)
    assert (tmp_path / "last.safetensors").read_bytes() == state["ckpt"]


def test_mismatched_dense_output_is_a_clear_error():
    from cnnlab.train import cross_entropy

    loss = cross_entropy()
    with pytest.raises(ValueError, match="outputs 24x24 maps but the targets are 64x64"):
        loss(torch.zeros(2, 3, 24, 24), torch.zeros(2, 64, 64, dtype=torch.long))
    with pytest.raises(ValueError, match="targets are class labels"):
        loss(torch.zeros(2, 3, 8, 8), torch.zeros(2, dtype=torch.long))
    assert loss(torch.zeros(2, 3, 8, 8), torch.zeros(2, 8, 8, dtype=torch.long)) > 0


def test_mnist_canvas_is_a_registered_dataset_spec():
    from cnnlab.data import list_datasets

    assert "mnist-canvas" in list_datasets()


def test_bf16_autocast_on_cpu_runs_convolutions_in_bf16_and_learns(digits):
    model = tiny()
    dtypes = set()
    model.get_submodule("features.c1").register_forward_hook(
        lambda m, i, o: dtypes.add(o.dtype) if m.training else None)
    cfg = TrainConfig(epochs=3, batch_size=32, lr=3e-3, optimizer="adamw", weight_decay=0.0,
                      amp="bf16", channels_last=False)
    res = train(model, digits, cfg, progress=False)
    assert dtypes == {torch.bfloat16}
    assert all(p.dtype == torch.float32 for p in model.parameters())  # master weights
    assert res.metrics["top1"] > 50, res.metrics


def test_fp16_on_cpu_is_a_clear_error(digits):
    with pytest.raises(ValueError, match="fp16 mixed precision needs a CUDA device"):
        train(tiny(), digits, TrainConfig(epochs=1, amp="fp16", device="cpu"), progress=False)


def test_compiled_training_follows_the_eager_run():
    split = load_dataset("digits", input_size=(1, 32, 32))
    split.train = split.train.subset(range(128))
    cfg = TrainConfig(epochs=2, batch_size=32, lr=3e-3, optimizer="adamw", schedule="constant",
                      device="cpu")  # tests/test_cuda.py has the GPU's
    eager, compiled = tiny(), tiny()
    a = train(eager, split, cfg, progress=False)
    b = train(compiled, split, cfg.replace(compile=True), progress=False)
    assert not any(k.startswith("_orig_mod") for k in compiled.state_dict())
    for (k, v), w in zip(eager.state_dict().items(), compiled.state_dict().values()):
        assert torch.allclose(v.float(), w.float(), atol=1e-4), k
    assert b.history[-1]["train_loss"] == pytest.approx(a.history[-1]["train_loss"], rel=1e-4)
