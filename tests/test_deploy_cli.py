"""`cnnlab bench`, `summary --energy` (also of a .dcz) and `export --fuse-bn`."""

import json

import pytest
import torch

from cnnlab.cli import main


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_bench_json_rows_and_rank_agreement(capsys, tmp_path):
    pytest.importorskip("matplotlib")
    png = tmp_path / "lat.png"
    code, out, _ = run(capsys, "bench", "lenet5_caffe", "lenet_300_100", "lenet5",
                       "--batch", "1,2", "--runs", "2", "--warmup", "1", "--threads", "1",
                       "--plot", str(png), "--json")
    assert code == 0
    d = json.loads(out)
    assert [(r["model"], r["batch"]) for r in d["rows"]][:2] == [("lenet5_caffe", 1),
                                                                  ("lenet5_caffe", 2)]
    assert -1 <= d["kendall_tau_macs_latency"] <= 1
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_bench_table(capsys):
    code, out, _ = run(capsys, "bench", "lenet5_caffe", "--runs", "2", "--fuse-bn")
    assert code == 0 and "images/s" in out and "torch+fuse_bn" in out


def test_bench_int8_table_is_not_buried_under_torch_notices(capsys):
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", UserWarning)  # shown to users by default
        code, out, _ = run(capsys, "bench", "lenet5_caffe", "--int8", "--runs", "1",
                           "--warmup", "0")
    assert code == 0 and "torch+int8" in out
    assert not [w for w in caught if issubclass(w.category, UserWarning)]


def test_summary_energy_of_a_model_and_of_a_dcz(capsys, tmp_path):
    code, out, _ = run(capsys, "summary", "lenet5_caffe", "--energy", "--json")
    d = json.loads(out)
    assert code == 0 and d["weights_in"] == "DRAM"
    assert d["weight_pj"] == pytest.approx(431080 * 640.0)
    code, out, _ = run(capsys, "summary", "lenet5_caffe", "--energy", "--sram", "2MiB")
    assert code == 0 and "from SRAM" in out and "Horowitz" in out

    from cnnlab.compress import fileformat as ff
    from cnnlab.compress.pipeline import build_file
    from cnnlab.models import create_model

    torch.manual_seed(0)
    m = create_model("lenet_300_100")
    bits = {"fc1": 5, "fc2": 5, "fc3": 5}
    path = tmp_path / "m.dcz"
    ff.write(path, build_file(m, "lenet_300_100", {}, bits, bits))
    code, out, _ = run(capsys, "summary", str(path), "--energy", "--json")
    d = json.loads(out)
    assert code == 0 and d["weights_in"] == "SRAM" and d["weight_bytes"] < 266610


def test_export_fuse_bn(capsys, tmp_path):
    pytest.importorskip("onnxruntime")
    out = tmp_path / "r.onnx"
    code, text, _ = run(capsys, "export", "resnet20", "-o", str(out), "--input-size",
                        "3x16x16", "--fuse-bn", "--json")
    assert code == 0 and json.loads(text)["bn_folded"] == 19 and out.exists()


@pytest.mark.parametrize("argv,message", [
    (["bench", "lenet5", "--backend", "tvm"], "unknown backend"),
    (["bench", "lenet5", "--device", "cuda"], "no CUDA") if not torch.cuda.is_available()
    else (["bench", "lenet5", "--device", f"cuda:{torch.cuda.device_count()}"], "CUDA device(s)"),
    (["bench", "lenet5", "--int8", "--device", "cuda"], "no quantized kernels"),
    (["bench", "lenet5_caffe", "--int8", "--calibration", "digits"], "calibration images"),
    (["bench", "lenet5", "--batch", "0"], "--batch"),
    (["bench", "nosuchnet"], "unknown model"),
    (["bench", "lenet5", "--plot", "/nonexistent/dir/x.png"], "does not exist"),
    (["summary", "lenet5", "--energy", "--sram", "lots"], "memory size"),
    (["summary", "missing.dcz", "--energy"], "no such file"),
])
def test_bad_input_is_one_line_exit_2(capsys, argv, message):
    code, _, err = run(capsys, *argv)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1
