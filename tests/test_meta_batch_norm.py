"""The test suite's shape-only batch norm on meta (conftest) agrees with PyTorch's meta
kernel: the same output shape, the same refusals."""

import pytest
import torch
import torch.nn.functional as F


def _both(*args, **kw):
    """(ours, PyTorch's) outcome: an output shape or the exception type."""
    outs = []
    for fn in (F.batch_norm, F.batch_norm.real):
        try:
            outs.append(tuple(fn(*args, **kw).shape))
        except (RuntimeError, ValueError) as e:
            outs.append(type(e).__name__)
    return outs


def meta(*shape):
    return torch.empty(*shape, device="meta")


def test_the_suite_runs_the_shape_only_batch_norm():
    assert hasattr(F.batch_norm, "real")


@pytest.mark.parametrize("shape, c, training", [
    ((2, 8, 5, 5), 8, False), ((2, 8, 5, 5), 8, True), ((4, 8), 8, True),
    ((2, 8, 5, 5), 7, False), ((1, 8, 1, 1), 8, True), ((1, 8), 8, False),
])
def test_same_shapes_and_refusals_as_pytorch(shape, c, training):
    ours, theirs = _both(meta(*shape), meta(c), meta(c), meta(c), meta(c), training=training)
    assert ours == theirs


def test_bn_module_with_the_wrong_channels_is_refused_on_meta():
    bn = torch.nn.BatchNorm2d(6, device="meta").eval()
    with pytest.raises(RuntimeError):
        bn(meta(1, 5, 4, 4))
    assert bn(meta(1, 6, 4, 4)).shape == (1, 6, 4, 4)
