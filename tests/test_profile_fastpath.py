"""The profiler answers plain torch layers without running their forward: the rows must be
the ones their functional calls give, and the model must come back as it was."""

import dataclasses

import pytest
import torch
import torch.nn as nn

from cnnlab import profile


# subclasses run their (inherited) forward: the reference path through __torch_function__
class SlowConv1d(nn.Conv1d):
    pass


class SlowConv2d(nn.Conv2d):
    pass


class SlowBN1d(nn.BatchNorm1d):
    pass


class SlowBN2d(nn.BatchNorm2d):
    pass


class SlowReLU(nn.ReLU):
    pass


class SlowLinear(nn.Linear):
    pass


def net(conv2d, conv1d, bn2d, bn1d, relu, linear):
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.c1 = conv2d(3, 8, 3, stride=2, padding=1, bias=False)
            self.b1 = bn2d(8)
            self.r1 = relu(inplace=True)
            self.c2 = conv2d(8, 8, 3, padding="same", groups=8)
            self.b2 = bn2d(8, affine=False, track_running_stats=False)
            self.r2 = relu()
            self.c4 = conv2d(8, 8, (3, 1), stride=(1, 2), padding=(2, 0), dilation=(2, 1),
                             groups=2)  # bias, groups, and a different value per axis
            self.c3 = conv1d(8, 4, 3, dilation=2)
            self.b3 = bn1d(4)
            self.fc = linear(4 * 4, 10)
            self.b4 = bn1d(10)

        def forward(self, x):
            x = self.c4(self.r2(self.b2(self.c2(self.r1(self.b1(self.c1(x)))))))  # 4x2
            x = self.b3(self.c3(x.flatten(2)))  # (1, 8, 8) -> (1, 4, 4)
            return self.b4(self.fc(x.flatten(1)))

    return Net()


def rows(p):
    return [dataclasses.astuple(r) for r in p.rows]


def test_layers_answered_directly_give_their_functional_rows():
    fast = profile(net(nn.Conv2d, nn.Conv1d, nn.BatchNorm2d, nn.BatchNorm1d, nn.ReLU,
                       nn.Linear), (3, 8, 8))
    slow = profile(net(SlowConv2d, SlowConv1d, SlowBN2d, SlowBN1d, SlowReLU, SlowLinear),
                   (3, 8, 8))
    assert [r.name for r in fast.rows] == ["c1", "b1", "r1", "c2", "b2", "r2", "c4", "c3",
                                           "b3", "fc", "b4"]
    assert rows(fast) == rows(slow)
    assert [v[1:] for v in fast.module_io.values()] == [v[1:] for v in slow.module_io.values()]
    assert (fast.params, fast.macs, fast.memory_access) == \
        (slow.params, slow.macs, slow.memory_access)


class SlowReLU6(nn.ReLU6):
    pass


class SlowHardtanh(nn.Hardtanh):
    pass


class SlowMaxPool2d(nn.MaxPool2d):
    pass


def test_clamps_and_max_pooling_answered_directly_match_their_functional_rows():
    def seq(relu6, hardtanh, pool):
        return nn.Sequential(nn.Conv2d(2, 4, 1), relu6(inplace=True), pool(3, 2, 1, ceil_mode=True),
                             hardtanh(-2.0, 2.0), pool(2))

    fast = profile(seq(nn.ReLU6, nn.Hardtanh, nn.MaxPool2d), (2, 9, 9))
    slow = profile(seq(SlowReLU6, SlowHardtanh, SlowMaxPool2d), (2, 9, 9))
    assert [r.op for r in fast.rows] == ["conv2d", "hardtanh", "max_pool2d", "hardtanh",
                                         "max_pool2d"]
    assert rows(fast) == rows(slow)


def test_forward_wrappers_are_removed_after_the_pass_and_after_an_error():
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.ReLU())
    own = model[1].forward = lambda x: x  # an instance forward of the user's own
    profile(model, (1, 5, 5))
    with pytest.raises(ValueError, match="too small"):
        profile(model, (1, 2, 2))
    assert "forward" not in model.__dict__ and "forward" not in model[0].__dict__
    assert model[1].__dict__["forward"] is own
    assert torch.equal(model(torch.ones(1, 1, 3, 3)), model[0](torch.ones(1, 1, 3, 3)))


@pytest.mark.parametrize("args, kwargs, name", [
    ((), {}, "relu"), ((True,), {}, "relu"), ((), {"inplace": True}, "relu"),
    ((False,), {}, "relu"), ((), {}, "relu_")])
def test_relu_rule_makes_the_general_elementwise_row(args, kwargs, name):
    from cnnlab.profile import ops
    from cnnlab.profile.counter import ShapeCounter

    x = torch.empty(2, 3, 4, 4, device="meta")
    rows, outs = [], []
    for rule in (ops._relu, ops._elementwise):
        c = ShapeCounter(nn.Identity())
        outs.append(rule(c, name, (x, *args), dict(kwargs)))
        rows.append(dataclasses.astuple(c.rows[0]))
    assert rows[0] == rows[1]
    assert (outs[0] is x) == (outs[1] is x) and outs[0].shape == outs[1].shape


def test_view_ops_fall_through_with_real_and_meta_tensors_alike():
    """View ops take the meta kernel: with meta activations as they are, with a real
    parameter (here on the CPU) moved to meta first, and nested lists converted too."""
    class Scaled(nn.Module):
        def __init__(self):
            super().__init__()
            self.scale = nn.Parameter(torch.ones(4))

        def forward(self, x):
            y = x.view(1, 2, 2, 3, 3).transpose(1, 2).flatten(1, 2)  # meta activations
            s = self.scale.view(1, -1, 1, 1)  # a CPU parameter
            z = torch.addcmul(y, s, y)  # no rule: a meta and a CPU tensor in one call
            return torch.stack([y * s, z], dim=0)  # a list argument

    model = Scaled()
    p = profile(model, (4, 3, 3))
    assert [r.op for r in p.rows] == ["mul"] and p.rows[0].output_shape == (1, 4, 3, 3)
    assert p.params == 4 and model.scale.device.type == "cpu"


@pytest.mark.parametrize("n", [1, 3])
def test_cat_row_is_the_row_record_makes(n):
    from cnnlab.profile import ops
    from cnnlab.profile.counter import ShapeCounter

    xs = [torch.empty(2, 3 + i, 4, 4, device="meta") for i in range(n)]
    fast, slow = ShapeCounter(nn.Identity()), ShapeCounter(nn.Identity())
    out = ops._cat(fast, "cat", (xs, 1), {})
    slow.record("cat", kind="concat", inputs=xs, out_shape=tuple(out.shape),
                elem_size=xs[0].element_size())
    assert dataclasses.astuple(fast.rows[0]) == dataclasses.astuple(slow.rows[0])
    assert out.shape == torch.cat(xs, 1).shape


def test_hooks_run_during_the_pass_whenever_they_are_registered():
    """Modules without hooks are called without nn.Module's hook checks: a hook that was
    there before, one registered during the pass and a global one must all still run, each
    with the op rows attributed to its module."""
    seen = []

    class Outer(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = nn.Conv2d(1, 2, 3), nn.Conv2d(2, 2, 1)

        def forward(self, x):
            h = self.b.register_forward_hook(lambda m, i, o: seen.append(("late", o.shape)))
            try:
                return self.b(self.a(x))
            finally:
                h.remove()

    model = Outer()
    model.a.register_forward_pre_hook(lambda m, i: seen.append(("pre", i[0].shape)))
    g = nn.modules.module.register_module_forward_hook(
        lambda m, i, o: seen.append(("global", type(m).__name__)))
    try:
        p = profile(model, (1, 5, 5))
    finally:
        g.remove()
    assert ("pre", (1, 1, 5, 5)) in seen and ("late", (1, 2, 3, 3)) in seen
    assert [s for s in seen if s[0] == "global"] == [("global", "Conv2d"), ("global", "Conv2d"),
                                                     ("global", "Outer")]
    assert [r.name for r in p.rows] == ["a", "b"]
    seen.clear()
    p = profile(model, (1, 5, 5))  # no global hook now: the direct calls
    assert [s[0] for s in seen] == ["pre", "late"] and [r.name for r in p.rows] == ["a", "b"]
    for m in model.modules():
        assert "_compiled_call_impl" not in m.__dict__ and "forward" not in m.__dict__
