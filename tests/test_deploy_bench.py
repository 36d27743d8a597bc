"""Benchmark library: timings, configurations, Kendall's τ and refused combinations."""

import pytest
import torch
import torch.nn as nn

from cnnlab.deploy.bench import (
    alternate,
    bench,
    check_options,
    config_name,
    kendall_tau,
    make_runner,
    summarize,
    table8,
)
from cnnlab.models import create_model


def tiny():
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 4))


def test_bench_times_each_batch_and_reports_throughput():
    rows = bench(tiny(), input_size=(3, 16, 16), batches=(1, 4), runs=5, warmup=1,
                 fuse_bn=True, channels_last=True, threads=1)
    assert [r.batch for r in rows] == [1, 4]
    for r in rows:
        assert 0 < r.p10_ms <= r.median_ms <= r.p90_ms
        assert r.images_per_s == pytest.approx(1000 * r.batch / r.median_ms)
        assert "fuse_bn" in r.config and "1 BN folded" in r.config


def test_onnxruntime_backend_runs_the_exported_graph():
    pytest.importorskip("onnxruntime")
    (r,) = bench(tiny(), input_size=(3, 16, 16), runs=3, warmup=1, backend="onnxruntime")
    assert r.config.startswith("onnxruntime") and r.median_ms > 0


def test_onnxruntime_runs_an_int8_graph_and_says_how_far_it_is_from_pytorch():
    """onnxruntime's int8 kernels round otherwise than PyTorch's: the int8 graph is checked to
    a looser tolerance, and the difference found is in the configuration."""
    pytest.importorskip("onnxruntime")
    import warnings

    import cnnlab.deploy.bench as b

    warnings.filterwarnings("ignore", module="torch.ao")
    torch.manual_seed(0)
    model = nn.Sequential(*[m for _ in range(3) for m in (nn.Conv2d(8, 8, 3, padding=1),
                                                          nn.BatchNorm2d(8), nn.ReLU())])
    (r,) = bench(model, input_size=(8, 12, 12), runs=2, warmup=1, backend="onnxruntime",
                 int8=True)
    rel = float(r.config.split("within ")[1].split(" ")[0])
    assert r.config.startswith("onnxruntime+int8")
    assert 1e-4 < rel <= b.INT8_RTOL  # past the fp32 check: the looser one let it run


def test_int8_backend_is_chosen_and_fbgemms_slow_depthwise_path_is_named():
    """fbgemm runs depthwise int8 convolutions whose channels are not a multiple of 8 on a slow
    path (ShuffleNet V2's 58/116): the x86 run names them, the oneDNN run uses its kernels."""
    import warnings

    from cnnlab.deploy.quant import slow_depthwise

    warnings.filterwarnings("ignore", module="torch.ao")
    model = nn.Sequential(nn.Conv2d(3, 12, 1), nn.BatchNorm2d(12), nn.ReLU(),
                          nn.Conv2d(12, 12, 3, padding=1, groups=12), nn.BatchNorm2d(12),
                          nn.Conv2d(12, 16, 1), nn.Conv2d(16, 16, 3, padding=1, groups=16))
    assert slow_depthwise(model) == ["3"]  # 12 channels; 16 is a multiple of 8
    engine = torch.backends.quantized.engine
    try:
        (x86,) = bench(model, input_size=(3, 8, 8), runs=1, warmup=0, int8=True)
        (dnn,) = bench(model, input_size=(3, 8, 8), runs=1, warmup=0, int8=True,
                       int8_backend="onednn")
        assert torch.backends.quantized.engine == "onednn"  # the engine the runs used
    finally:
        torch.backends.quantized.engine = engine
    assert "backend x86" in x86.config and "(e.g. 3) take fbgemm's slow" in x86.config
    assert "backend onednn" in dnn.config and "slow" not in dnn.config


def test_alternate_runs_contenders_in_turns():
    order = []
    alternate({"a": lambda: order.append("a"), "b": lambda: order.append("b")},
              warmup=0, runs=3)
    assert order == ["a", "b"] * 3
    assert summarize([0.001, 0.002, 0.003])[0] == pytest.approx(2.0)


def test_kendall_tau_by_hand():
    assert kendall_tau([1, 2, 3, 4], [10, 20, 30, 40]) == 1.0
    assert kendall_tau([1, 2, 3, 4], [40, 30, 20, 10]) == -1.0
    # pairs: (1,2)+ (1,3)+ (1,4)+ (2,3)- (2,4)+ (3,4)+ : (5 - 1) / 6
    assert kendall_tau([1, 2, 3, 4], [1, 3, 2, 4]) == pytest.approx(4 / 6)


def test_table8_rows_and_tau():
    t = table8(["lenet5_caffe", "lenet_300_100"], [(1, 28, 28)], runs=3, warmup=1)
    assert [r["model"] for r in t["rows"]] == ["lenet5_caffe", "lenet_300_100"]
    assert t["rows"][0]["macs"] == 2_293_000 and t["rows"][1]["params"] == 266_610
    assert -1 <= t["kendall_tau"]["1x28x28"] <= 1


@pytest.mark.parametrize("opts, message", [
    ({"backend": "tensorrt"}, "unknown backend"),
    ({"device": "cuda"}, "no CUDA" if not torch.cuda.is_available() else "no quantized"),
    ({"device": "tpu"}, "unknown device"),
    ({"cuda_graph": True}, "needs --device cuda"),
    ({"compile_mode": "fastest"}, "unknown compile mode"),
    ({"dtype": "fp8"}, "unknown dtype"),
    ({"dtype": "bf16", "int8": True}, "without --int8"),
    ({"dtype": "fp16", "backend": "onnxruntime"}, "torch backend"),
])
def test_bad_configurations_are_refused(opts, message):
    if opts.get("device") == "cuda" and torch.cuda.is_available():
        opts = {**opts, "int8": True}
    with pytest.raises(ValueError, match=message):
        check_options(**opts)


def test_config_names_say_what_runs():
    assert config_name(channels_last=True, dtype="bf16") == "torch+channels_last+bf16"
    assert config_name(compile_mode="reduce-overhead") == "torch+compile(reduce-overhead)"
    assert config_name(compile=True, compile_mode="default") == "torch+compile"
    assert config_name(device="cuda", cuda_graph=True) == "torch+cuda_graph"


def test_bf16_runner_computes_in_bf16_near_fp32():
    torch.manual_seed(0)
    m = create_model("resnet20")
    want, _ = make_runner(m, (3, 16, 16), 2)
    got, _ = make_runner(m, (3, 16, 16), 2, dtype="bf16", channels_last=True)
    a, b = want(), got()
    assert b.dtype == torch.bfloat16 and a.dtype == torch.float32
    assert torch.allclose(b.float(), a, rtol=0.1, atol=0.1 * a.abs().max())


def test_alternate_reads_the_clock_it_is_given():
    ticks = iter(range(100))
    t = alternate({"a": lambda: None, "b": lambda: None}, warmup=1, runs=2,
                  clock=lambda: 3 * next(ticks))
    assert t == {"a": [3, 3], "b": [3, 3]}
