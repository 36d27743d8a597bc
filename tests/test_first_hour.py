"""What a newcomer does in the first hour: runs that are saved and reproducible, compressed
models that come back into every command, plots that show what they say."""

from __future__ import annotations

import json
import os

import pytest
import torch
from safetensors.torch import load_file

from cnnlab.cli import main

TINY = ["--iters", "3", "--batch-size", "16", "--threads", "1"]


def _train(out, *extra) -> int:
    return main(["train", "lenet5", *TINY, "--out", str(out), "--json", *extra])


def _weights(path):
    return {k: v for k, v in load_file(str(path)).items() if k.startswith("model.")}


def test_same_seed_same_weights_bit_for_bit_from_the_cli(tmp_path):
    for name in ("a", "b", "c"):
        assert _train(tmp_path / name, "--seed", "3" if name != "c" else "4") == 0
    a, b, c = (_weights(tmp_path / n / "last.safetensors") for n in "abc")
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)


def test_same_seed_same_initial_weights_from_the_library():
    from cnnlab.runspec import model_and_data

    def first(seed):
        return model_and_data("lenet5", "digits", seed=seed)[0].state_dict()

    a, b = first(0), first(0)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["features.c1.weight"], first(1)["features.c1.weight"])


def test_a_run_without_out_lands_in_runs_and_says_where(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["train", "lenet5", *TINY]) == 0
    runs = list((tmp_path / "runs").iterdir())
    assert len(runs) == 1 and runs[0].name.startswith("lenet5-")
    assert {"last.safetensors", "best.safetensors", "metrics.jsonl"} <= \
        {p.name for p in runs[0].iterdir()}
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert f"runs/{runs[0].name}" in last and "run saved in" in last


def test_an_out_holding_a_run_is_refused_unless_resume_or_overwrite(tmp_path, capsys):
    out = tmp_path / "run"
    assert _train(out) == 0
    before = (out / "last.safetensors").read_bytes()
    capsys.readouterr()
    assert _train(out) == 2
    assert "already holds a run" in capsys.readouterr().err
    assert (out / "last.safetensors").read_bytes() == before
    assert _train(out, "--overwrite", "--seed", "9") == 0
    assert (out / "last.safetensors").read_bytes() != before


def test_resume_with_nothing_to_resume_starts_afresh_then_resumes(tmp_path, capsys):
    out = tmp_path / "job"
    assert _train(out, "--resume") == 0
    assert "starting a fresh run" in capsys.readouterr().err
    assert main(["train", "lenet5", "--iters", "5", "--batch-size", "16", "--threads", "1",
                 "--out", str(out), "--resume", "--json"]) == 0
    meta = json.loads((out / "last.json").read_text())
    assert meta["step"] == 5


def test_best_checkpoint_follows_validation_top1(tmp_path):
    from cnnlab.train.checkpoint import KeepBest

    (tmp_path / "last.safetensors").write_bytes(b"epoch1")
    (tmp_path / "last.json").write_text(json.dumps({"history": [{"val_top1": 50.0}]}))
    keep = KeepBest(tmp_path)
    keep({"val_top1": 50.0})
    (tmp_path / "last.safetensors").write_bytes(b"epoch2")
    keep({"val_top1": 40.0})       # worse: best stays epoch 1
    assert (tmp_path / "best.safetensors").read_bytes() == b"epoch1"
    (tmp_path / "last.safetensors").write_bytes(b"epoch3")
    (tmp_path / "last.json").write_text(json.dumps({"history": [{"val_top1": 60.0}]}))
    keep({"val_top1": 60.0})
    assert (tmp_path / "best.safetensors").read_bytes() == b"epoch3"
    assert KeepBest(tmp_path).best == 60.0  # a resumed run knows its best


def test_default_threads_one_for_small_models_all_for_large():
    import cnnlab
    from cnnlab.cli.runs import default_threads

    assert default_threads(cnnlab.create_model("lenet5"), (1, 32, 32)) == 1
    assert default_threads(cnnlab.create_model("resnet20"), (3, 32, 32)) == \
        torch.get_num_threads()


@pytest.fixture(scope="module")
def compressed(tmp_path_factory):
    root = tmp_path_factory.mktemp("dcz")
    run = root / "run"
    assert main(["train", "lenet5", "--iters", "20", "--batch-size", "32", "--threads", "1",
                 "--out", str(run), "--json"]) == 0
    dcz = root / "m.dcz"
    assert main(["compress", "lenet5", "--checkpoint", str(run / "last.safetensors"),
                 "--rounds", "1", "--epochs", "0", "--quant-epochs", "0", "-o", str(dcz),
                 "--json"]) == 0
    weights = root / "w.safetensors"
    assert main(["decompress", str(dcz), "-o", str(weights), "--json"]) == 0
    return run / "last.safetensors", dcz, weights


def test_eval_reads_a_dcz_and_decompressed_weights_with_the_runs_data(compressed, capsys):
    _, dcz, weights = compressed
    tops = []
    for path in (dcz, weights):
        capsys.readouterr()
        assert main(["eval", "lenet5", "--checkpoint", str(path), "--json"]) == 0
        out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
        assert out["data"] == "digits" and out["n"] == 360
        tops.append(out["top1"])
    assert tops[0] == tops[1]


def test_export_and_summary_read_a_dcz(compressed, tmp_path, capsys):
    _, dcz, weights = compressed
    assert main(["export", "lenet5", "--checkpoint", str(dcz), "-o",
                 str(tmp_path / "m.onnx"), "--json"]) == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert report["input_size"] == [1, 32, 32] and "max_rel_diff" in report
    assert main(["summary", "lenet5", "--checkpoint", str(dcz)]) == 0
    text = capsys.readouterr().out
    assert "on disk" in text and "nonzero" in text and "@ 1x32x32" in text


def test_bench_reads_a_dcz(compressed, capsys):
    _, dcz, _ = compressed
    assert main(["bench", "lenet5", "--checkpoint", str(dcz), "--runs", "2", "--warmup", "0",
                 "--threads", "1", "--json"]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["rows"][0]["model"] == "lenet5" and out["rows"][0]["median_ms"] > 0
    assert main(["bench", "lenet5", "alexnet", "--checkpoint", str(dcz)]) == 2


def test_load_weights_gives_the_dcz_weights_exactly(compressed):
    from cnnlab.compress import load_compressed
    from cnnlab.runspec import RunSpec, build_model, load_weights

    _, dcz, weights = compressed
    loaded = load_compressed(dcz)
    assert loaded.default_input_size == (1, 32, 32)
    assert len(loaded.normalization["mean"]) == 1
    ref = loaded.state_dict()
    spec = RunSpec.from_checkpoint(weights)
    assert spec.model == "lenet5" and spec.input_size == (1, 32, 32) and spec.mean
    model = build_model("lenet5", spec.builder_args())
    load_weights(weights, model)
    assert all(torch.equal(v, ref[k]) for k, v in model.state_dict().items())


def test_compress_defaults_are_the_papers_rates():
    from cnnlab.compress.defaults import default_settings

    assert default_settings("lenet_300_100")["prune"] == "fc1=7%,fc2=9%,fc3=26%"
    assert "Table 4" in default_settings("alexnet")["source"]
    assert default_settings("resnet20")["prune"] == "conv=q0.7,fc=q1.4"


def test_compress_with_no_flags_prunes_and_retrains_on_the_runs_data(compressed, tmp_path,
                                                                     capsys):
    ckpt, _, _ = compressed
    out = tmp_path / "d.dcz"
    assert main(["compress", "lenet5", "--checkpoint", str(ckpt), "--rounds", "1",
                 "--epochs", "0.05", "--quant-epochs", "0.05", "-o", str(out), "--json"]) == 0
    res = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    kept, total = res["totals"]["kept"], res["totals"]["weights"]
    assert kept < 0.7 * total                      # the quality rule pruned
    assert all(s["top1"] is not None for s in res["stages"])  # evaluated on the run's data


def test_compare_plot_leaves_out_models_without_a_paper_top1(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    out = tmp_path / "z.png"
    assert main(["compare", "mobilenet_v1", "lenet5", "--plot", str(out)]) == 0
    err = capsys.readouterr().err
    assert "top-1" in err and "left out" in err and "lenet5" in err
    assert out.stat().st_size > 1000
    assert main(["compare", "lenet5", "--plot", str(tmp_path / "n.png")]) == 2
    assert not os.path.exists(tmp_path / "n.png")


def test_tta_prints_the_plain_top1_beside(compressed, capsys):
    ckpt, _, _ = compressed
    assert main(["eval", "lenet5", "--checkpoint", str(ckpt), "--tta", "flip"]) == 0
    assert "without TTA: top-1" in capsys.readouterr().out


def test_deterministic_kernels_are_switched_on_for_the_run_only(tmp_path):
    assert _train(tmp_path / "d", "--deterministic", "--seed", "3") == 0
    assert _train(tmp_path / "e", "--seed", "3") == 0
    assert not torch.are_deterministic_algorithms_enabled()
    a, b = (_weights(tmp_path / n / "last.safetensors") for n in "de")
    assert all(torch.equal(a[k], b[k]) for k in a)  # CPU kernels are deterministic already
