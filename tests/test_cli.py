import json
import subprocess
import sys

import pytest

from cnnlab.cli import main


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_list_and_json(capsys):
    code, out, _ = run(capsys, "list", "vgg1*")
    assert code == 0 and "vgg16_bn" in out
    code, out, _ = run(capsys, "list", "--json")
    names = [m["name"] for m in json.loads(out)]
    assert "mobilenet_v1" in names and names == sorted(names)


def test_summary_table_and_json(capsys):
    code, out, _ = run(capsys, "summary", "mobilenet_v1", "--set", "width_mult=0.5",
                       "--input-size", "3x160x160")
    assert code == 0 and "features.block13" in out and "3x160x160" in out
    code, out, _ = run(capsys, "summary", "lenet5", "--json")
    d = json.loads(out)
    assert d["params"] == 60_000 and d["flops"] == 2 * d["macs"] and d["layers"]


def test_summary_by_type(capsys):
    code, out, _ = run(capsys, "summary", "mobilenet_v1", "--by-type")
    assert code == 0 and "94.86%" in out and "conv dw 3x3" in out


def test_compare(capsys):
    code, out, _ = run(capsys, "compare", "mobilenet_v1", "vgg16", "--json")
    rows = json.loads(out)
    assert [r["model"] for r in rows] == ["mobilenet_v1", "vgg16"]
    assert rows[1]["params"] == 138_357_544


def test_verify_cli(capsys):
    code, out, _ = run(capsys, "verify", "mobilenet*")
    assert code == 0 and "FAIL" not in out and "match their papers" in out
    code, out, _ = run(capsys, "verify", "vgg_d", "--json")
    assert code == 0 and json.loads(out)["ok"] is True


@pytest.mark.parametrize("argv,message", [
    (["summary", "nosuchnet"], "unknown model"),
    (["plot", "no/such/run"], "no metrics.jsonl in no/such/run"),
    (["eval", "lenet5", "--checkpoint", "no/such.safetensors"], "not found"),
    (["compress", "lenet5", "--checkpoint", "no/such.safetensors", "-o", "x.dcz"], "not found"),
    (["train", "lenet5", "--data", "nosuchset"], "unknown dataset"),
    (["summary", "mobilenet_v"], "did you mean"),
    (["summary", "lenet5", "--input-size", "3xx"], "malformed input size"),
    (["summary", "lenet5", "--input-size", "0x32x32"], "malformed input size"),
    (["summary", "vgg16", "--input-size", "3x8x8"], "at least 32x32"),
    (["summary", "mobilenet_v1", "--set", "width_mult=-1"], "width_mult must be"),
    (["summary", "mobilenet_v1", "--set", "bogus=1"], "unknown argument"),
    (["summary", "mobilenet_v1", "--set", "novalue"], "key=value"),
    (["verify", "zzz*"], "no model"),
    (["frobnicate"], "invalid choice"),
    (["distill", "lenet_300_100", "--teacher", "no.safetensors", "--out", "o"], "no checkpoint"),
    (["distill", "lenet_300_100", "--teacher", "t", "--out", "o", "--transfer-set", "some:3"],
     "malformed --transfer-set"),
    (["distill", "lenet_300_100", "--teacher", "t", "--out", "o", "--alpha", "2"], "--alpha"),
    (["visualize", "lenet5", "--checkpoint", "/no/such.safetensors", "--filters", "--out", "."],
     "not found"),
    (["binarize", "lenet5", "--checkpoint", "c", "--mode", "ternary", "--out", "o"],
     "invalid choice"),
    (["binarize", "lenet5", "--checkpoint", "/no/such.safetensors", "--mode", "bwn", "--out",
      "/no/such/dir/out"], "does not exist"),
    (["search", "enas", "--budget", "0", "--out", "x"], "--budget must be a positive"),
    (["search", "enas", "--space", "nas", "--out", "x"], "invalid choice"),
])
def test_bad_input_is_one_line_exit_2(capsys, argv, message):
    code, out, err = run(capsys, *argv)
    assert code == 2
    assert message in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_console_script_exit_code():
    r = subprocess.run([sys.executable, "-m", "cnnlab", "summary", "nosuchnet"],
                       capture_output=True, text=True)
    assert r.returncode == 2 and r.stderr.startswith("cnnlab: error: unknown model")


def test_compare_plot_writes_a_png(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    out = tmp_path / "zoo.png"
    assert main(["compare", "mobilenet_v1", "vgg16", "--plot", str(out)]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert oct(out.stat().st_mode & 0o777) != oct(0o600)


def test_parser_and_argument_errors_do_not_import_torch():
    code = ("import sys; from cnnlab.cli import main; code = main(['summary']); "
            "assert code == 2, code; assert 'torch' not in sys.modules, 'torch imported'")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "cnnlab: error: the following arguments are required: model" in r.stderr
