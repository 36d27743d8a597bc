"""int8 through torch.ao.quantization: runs, is smaller, stays close; eager fallback; QAT."""

import warnings

import pytest
import torch
import torch.nn as nn

from cnnlab.data import load_dataset
from cnnlab.deploy.quant import quantize_ptq, state_bytes
from cnnlab.train import TrainConfig

warnings.filterwarnings("ignore", module="torch.ao")


def tiny(c=1):
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(c, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(),
                         nn.Conv2d(32, 32, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                         nn.Flatten(), nn.Linear(32, 10)).eval()


class Untraceable(nn.Module):
    """Control flow on a tensor's value: torch.fx cannot trace it."""

    def __init__(self):
        super().__init__()
        self.net = tiny()

    def forward(self, x):
        if x.mean() > 100:
            x = x * 0
        return self.net(x)


def test_ptq_runs_is_smaller_and_close_to_fp32():
    m = tiny()
    calib = [torch.randn(32, 1, 8, 8) for _ in range(2)]
    q = quantize_ptq(m, calib)
    assert q.mode == "fx" and not q.fx_error
    kinds = {type(x).__module__ for x in q.model.modules()}
    assert any(k.startswith("torch.ao.nn.quantized") for k in kinds)
    x = torch.randn(16, 1, 8, 8)
    with torch.no_grad():
        ref, got = m(x), q.model(x)
    assert (got - ref).abs().max() < 0.05 * ref.abs().max()
    assert state_bytes(q.model) < 0.5 * state_bytes(m)


def test_untraceable_model_falls_back_to_eager_per_module_and_says_which():
    m = Untraceable().eval()
    q = quantize_ptq(m, [torch.randn(32, 1, 8, 8)])
    assert q.mode == "eager" and "TraceError" in q.fx_error
    names = " ".join(q.fp32_ops)
    assert "ReLU" in names and "AdaptiveAvgPool2d" in names and "Conv2d" not in names
    x = torch.randn(4, 1, 8, 8)
    with torch.no_grad():
        assert (q.model(x) - m(x)).abs().max() < 0.05 * m(x).abs().max()
    assert "fp32" in q.summary()


def test_calibration_of_the_wrong_shape_is_refused():
    with pytest.raises(ValueError, match="does not fit"):
        quantize_ptq(tiny(), [torch.randn(4, 1, 8, 8)], input_size=(3, 8, 8))
    with pytest.raises(ValueError, match="unknown quantization backend"):
        quantize_ptq(tiny(), [torch.randn(4, 1, 8, 8)], backend="tpu")


def test_qat_trains_with_the_trainer_and_int8_follows_the_fake_quantized_model():
    from cnnlab.deploy.quant import convert, prepare
    from cnnlab.train import train

    split = load_dataset("digits", val_split=200)
    x = split.val.normalize(split.val.x)
    prepared, mode, _ = prepare(tiny(), x[:1], qat=True)
    before = {k: v.clone() for k, v in prepared.state_dict().items()}
    result = train(prepared, split, TrainConfig(iters=20, batch_size=64, lr=0.05,
                                                channels_last=False), progress=False)
    assert result.history and mode == "fx"
    changed = [k for k, v in prepared.state_dict().items()
               if v.is_floating_point() and not torch.equal(before[k], v.cpu())]
    assert any(k.endswith("weight") for k in changed)  # the trainer stepped the QAT copy
    prepared.eval()
    with torch.no_grad():
        fake = prepared(x.to(next(prepared.parameters()).device)).argmax(1).cpu()
        q = convert(prepared, mode, "x86")
        real = q.model(x).argmax(1)
    assert any(type(m).__module__.startswith("torch.ao.nn.quantized")
               for m in q.model.modules())
    assert (fake == real).float().mean() > 0.9  # int8 computes what training saw


def test_qat_under_mixed_precision_is_refused_before_a_run_folder_is_made(tmp_path):
    from cnnlab.deploy.quant import prepare
    from cnnlab.train import train

    split = load_dataset("digits", val_split=200)
    prepared, _, _ = prepare(tiny(), split.val.normalize(split.val.x)[:1], qat=True)
    out = tmp_path / "run"
    with pytest.raises(ValueError, match="quantization-aware"):
        train(prepared, split, TrainConfig(iters=2, batch_size=64, amp="bf16", device="cpu",
                                           out_dir=str(out)), progress=False)
    assert not out.exists()
