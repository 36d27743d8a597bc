"""The CUDA paths: training (seeded, resumed, mixed precision), evaluation across devices,
distillation, profiling, benchmarking, compression and export of a model that lives on a GPU.

CI has no GPU, so these skip there; they run where one is lent (benchmarks/README.md records
the last such run: machine, torch version, result)."""

from __future__ import annotations

import json
import math

import pytest
import torch

from cnnlab.cli import main

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")

TINY = ["--iters", "3", "--batch-size", "16", "--device", "cuda"]
DIGITS = ["--data", "digits", "--val-split", "300", "--batch-size", "100"]


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def last_json(out: str) -> dict:
    return json.loads(out.strip().splitlines()[-1])


def _weights(path):
    from safetensors.torch import load_file

    return {k: v for k, v in load_file(str(path)).items() if k.startswith("model.")}


def test_deterministic_cuda_runs_with_one_seed_are_bit_identical(tmp_path, capsys):
    for name, seed in (("a", 3), ("b", 3), ("c", 4)):
        code, _, err = run(capsys, "train", "lenet5", *TINY, "--seed", seed, "--deterministic",
                           "--out", tmp_path / name, "--json")
        assert code == 0, err
    a, b, c = (_weights(tmp_path / n / "last.safetensors") for n in "abc")
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)


def test_resume_on_cuda_is_bit_exact(tmp_path):
    from test_checkpoint import CFG, Crash, make, strip, toy_split, weights

    from cnnlab.train import TrainConfig, train

    cfg = dict(CFG, device="cuda", deterministic=True, amp="off")
    split = toy_split()
    ref = make()
    r_ref = train(ref, split, TrainConfig(out_dir=str(tmp_path / "a"), **cfg), progress=False)

    def crash(m, step):
        if step == 8:
            raise Crash

    with pytest.raises(Crash):
        train(make(), split, TrainConfig(out_dir=str(tmp_path / "b"), **cfg),
              step_hooks=[crash], progress=False)
    other = make()
    r = train(other, split, TrainConfig(out_dir=str(tmp_path / "b"), resume=True, **cfg),
              progress=False)
    assert all(torch.equal(x, y) for x, y in zip(weights(ref), weights(other)))
    assert strip(r.history) == strip(r_ref.history)


def test_mixed_precision_follows_fp32_and_keeps_fp32_weights(tmp_path, capsys):
    top1 = {}
    for amp in ("off", "bf16", "fp16"):
        code, out, err = run(capsys, "train", "lenet5_caffe", *DIGITS, "--epochs", "3", "--lr",
                             "0.05", "--device", "cuda", "--amp", amp, "--out", tmp_path / amp,
                             "--json")
        assert code == 0, err
        top1[amp] = last_json(out)["top1"]
        w = _weights(tmp_path / amp / "last.safetensors")
        assert all(v.dtype == torch.float32 and torch.isfinite(v).all() for v in w.values())
    assert top1["off"] > 50, top1  # the run learns, so the comparison means something
    for amp in ("bf16", "fp16"):
        assert abs(top1[amp] - top1["off"]) <= 5, top1  # 15 of 300 validation images


def test_quantization_aware_training_runs_in_fp32_under_auto_and_refuses_bf16():
    from test_deploy_quant import tiny

    from cnnlab.data import load_dataset
    from cnnlab.deploy.quant import prepare
    from cnnlab.train import TrainConfig, train

    split = load_dataset("digits", val_split=200)
    prepared, _, _ = prepare(tiny(), split.val.normalize(split.val.x)[:1], qat=True)
    res = train(prepared, split, TrainConfig(iters=10, batch_size=64, lr=0.05, device="cuda"),
                progress=False)
    assert math.isfinite(res.history[-1]["train_loss"])
    with pytest.raises(ValueError, match="quantization-aware"):
        train(prepared, split, TrainConfig(iters=2, batch_size=64, device="cuda", amp="bf16"),
              progress=False)


def test_compiled_training_on_cuda_follows_the_eager_run():
    from test_train import tiny

    from cnnlab.data import load_dataset
    from cnnlab.train import TrainConfig, train

    split = load_dataset("digits", input_size=(1, 32, 32))
    split.train = split.train.subset(range(128))
    # SGD, not Adam: Adam turns a rounding difference in a near-zero gradient into a whole
    # step of lr, so its runs part ways by lr, not by rounding
    cfg = TrainConfig(epochs=2, batch_size=32, lr=0.05, optimizer="sgd", schedule="constant",
                      device="cuda", amp="off")
    eager, compiled = tiny(), tiny()
    a = train(eager, split, cfg, progress=False)
    b = train(compiled, split, cfg.replace(compile=True), progress=False)
    # Triton's kernels sum in another order than cuDNN's: close, not equal
    for (k, v), w in zip(eager.state_dict().items(), compiled.state_dict().values()):
        assert torch.allclose(v.float(), w.float(), atol=2e-3), k
    assert b.history[-1]["train_loss"] == pytest.approx(a.history[-1]["train_loss"], rel=1e-2)


def test_two_processes_on_one_gpu_are_refused_before_nccl_is_asked(monkeypatch):
    from test_train import tiny

    from cnnlab.data import load_dataset
    from cnnlab.train import TrainConfig, train

    n = torch.cuda.device_count()
    monkeypatch.setenv("LOCAL_WORLD_SIZE", str(n + 1))
    monkeypatch.setenv("WORLD_SIZE", str(n + 1))
    with pytest.raises(ValueError, match="one GPU per process"):
        train(tiny(), load_dataset("digits"), TrainConfig(iters=1, device="cuda"),
              progress=False)


def test_a_cuda_run_evaluates_on_the_cpu_and_on_the_gpu_alike(tmp_path, capsys):
    code, _, err = run(capsys, "train", "lenet5", *DIGITS, "--epochs", "1", "--device", "cuda",
                       "--out", tmp_path / "r", "--json")
    assert code == 0, err
    ckpt = tmp_path / "r" / "last.safetensors"
    tops = {}
    for dev in ("cpu", "cuda"):
        code, out, err = run(capsys, "eval", "lenet5", "--checkpoint", ckpt, "--device", dev,
                             "--json")
        assert code == 0, err
        tops[dev] = last_json(out)["top1"]
    # TF32 convolutions on the GPU may flip an image or two at a decision boundary
    assert abs(tops["cpu"] - tops["cuda"]) <= 2 * 100 / 300


def test_distillation_on_cuda(tmp_path, capsys):
    code, _, err = run(capsys, "train", "lenet_300_100", *DIGITS, "--epochs", "1", "--lr",
                       "0.05", "--device", "cuda", "--out", tmp_path / "t", "--json")
    assert code == 0, err
    code, out, err = run(capsys, "distill", "lenet_300_100", "--teacher",
                         tmp_path / "t" / "last.safetensors", "--T", "4", *DIGITS, "--epochs",
                         "1", "--lr", "0.05", "--device", "cuda", "--out", tmp_path / "s",
                         "--json")
    assert code == 0, err
    assert 0 <= last_json(out)["top1"] <= 100


def test_bench_on_cuda_times_each_batch_and_configuration():
    from cnnlab.deploy.bench import bench

    for opts in ({}, {"channels_last": True, "fuse_bn": True}):
        rows = bench("resnet18", batches=(1, 8), runs=5, warmup=2, device="cuda", **opts)
        assert [r.batch for r in rows] == [1, 8]
        assert all(0 < r.p10_ms <= r.median_ms <= r.p90_ms for r in rows)


def test_a_replayed_cuda_graph_and_compiled_code_give_the_eager_output():
    from cnnlab.deploy.bench import bench, make_runner
    from cnnlab.models import create_model

    torch.manual_seed(0)
    model = create_model("resnet20").eval()
    eager, _ = make_runner(model, (3, 32, 32), 4, device="cuda")
    want = eager().float().cpu()
    for opts in ({"cuda_graph": True}, {"compile_mode": "reduce-overhead"},
                 {"dtype": "bf16", "channels_last": True, "cuda_graph": True}):
        run, _ = make_runner(model, (3, 32, 32), 4, device="cuda", **opts)
        for _ in range(3):  # reduce-overhead records its graph on a later call
            got = run().float().cpu()
        tol = 5e-2 if opts.get("dtype") else 1e-4
        assert torch.allclose(got, want, rtol=tol, atol=tol * want.abs().max()), opts
    rows = bench("resnet20", batches=(1, 8), runs=5, warmup=2, device="cuda", cuda_graph=True)
    assert rows[0].config == "torch+cuda_graph" and all(r.median_ms > 0 for r in rows)


def test_profile_counts_a_cuda_model_and_measures_it_there():
    import cnnlab

    model = cnnlab.create_model("mobilenet_v2").cuda()
    on_cpu = cnnlab.profile("mobilenet_v2", (3, 224, 224))
    p = cnnlab.profile(model, (3, 224, 224), measure=True, device="cuda", runs=5)
    assert (p.macs, p.params) == (on_cpu.macs, on_cpu.params)
    assert p.latency_ms > 0 and math.isfinite(p.latency_ms)
    assert next(model.parameters()).is_cuda


def test_export_of_a_cuda_model_leaves_it_on_the_gpu(tmp_path):
    pytest.importorskip("onnxruntime")
    import cnnlab
    from cnnlab.deploy.export import export_onnx

    model = cnnlab.create_model("lenet5").cuda()
    report = export_onnx(model, tmp_path / "m.onnx", (1, 32, 32))
    assert report["max_rel_diff"] <= 1e-4
    assert next(model.parameters()).is_cuda  # the caller's model is not moved


def test_compressing_a_cuda_model_writes_a_file_that_loads_on_the_cpu(tmp_path):
    import cnnlab
    from cnnlab.compress.pipeline import compress_model, load_compressed

    torch.manual_seed(0)
    model = cnnlab.create_model("lenet_300_100").cuda()
    ref = {k: v.cpu() for k, v in model.state_dict().items()}
    compress_model(model, "lenet_300_100", out=str(tmp_path / "m.dcz"))
    back = load_compressed(tmp_path / "m.dcz")
    assert set(back.state_dict()) == set(ref)
    assert next(back.parameters()).device.type == "cpu"
