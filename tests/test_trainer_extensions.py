"""The trainer's extension points: a loss that sees the batch and the model, and hooks
before and after every optimizer step."""

import pytest
import torch
import torch.nn.functional as F

from cnnlab.data import load_dataset
from cnnlab.train import TrainConfig, train
from cnnlab.train.trainer import loss_caller


@pytest.fixture(scope="module")
def digits():
    split = load_dataset("digits")
    split.train = split.train.subset(range(128))
    split.val = split.val.subset(range(64))
    return split


class Linear(torch.nn.Module):
    """No batch statistics, no dropout: the same input always gives the same output."""

    def __init__(self, events=None):
        super().__init__()
        torch.manual_seed(0)
        self.fc = torch.nn.Linear(64, 10)
        self.events = events

    def forward(self, x):
        if self.events is not None and self.training:
            self.events.append("forward")
        return self.fc(x.flatten(1))


CFG = TrainConfig(epochs=1, batch_size=32, lr=0.1, augment="flip", schedule="constant")


def test_a_loss_that_accepts_inputs_and_model_gets_the_augmented_batch(digits):
    model, seen, plain = Linear(), [], []

    def loss_fn(out, y, inputs=None, model=None):
        if inputs is None:  # evaluation calls the loss as loss_fn(outputs, targets)
            plain.append(len(y))
        else:
            seen.append(model)
            with torch.no_grad():  # the very batch the forward pass saw, augmented
                assert torch.equal(model(inputs), out.detach())
        return F.cross_entropy(out, y)

    res = train(model, digits, CFG, loss_fn=loss_fn, progress=False)
    assert len(seen) == res.steps == 4 and all(m is model for m in seen)
    assert sum(plain) == len(digits.val)


def test_the_loss_gets_only_the_keywords_it_accepts():
    out, y, x, model = torch.zeros(2, 3), torch.zeros(2, dtype=torch.long), torch.ones(2), "m"
    assert loss_caller(lambda o, t: "plain")(out, y, x, model) == "plain"
    assert loss_caller(lambda o, t, inputs=None: inputs)(out, y, x, model) is x
    assert loss_caller(lambda o, t, model=None: model)(out, y, x, model) == "m"
    assert loss_caller(lambda o, t, **kw: sorted(kw))(out, y, x, model) == ["inputs", "model"]
    assert loss_caller(torch.nn.CrossEntropyLoss())(out, y, x, model) == pytest.approx(
        torch.log(torch.tensor(3.0)))


def test_before_step_hooks_run_before_each_forward_and_step_hooks_after(digits):
    events = []
    model = Linear(events)

    def before(m, step):  # e.g. binarise the weights the forward pass will use
        events.append(("before", step))
        with torch.no_grad():
            m.fc.weight.sign_()

    def after(m, step):
        events.append(("after", step))
        assert m.fc.weight.abs().ne(1).any()  # the update moved the binarised weights

    train(model, digits, CFG, before_step=[before], step_hooks=[after], progress=False)
    steps = [[("before", i), "forward", ("after", i + 1)] for i in range(4)]
    assert events == [e for s in steps for e in s]
