import json

import pytest

from cnnlab.cli import main


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


DIGITS = ["--data", "digits", "--val-split", "300"]


def test_train_eval_plot_resume(capsys, tmp_path):
    out = tmp_path / "run"
    code, stdout, err = run(capsys, "train", "lenet5_modern", *DIGITS, "--epochs", "1",
                            "--batch-size", "50", "--lr", "0.05", "--opt", "warmup=0.2",
                            "--out", str(out), "--json")
    assert code == 0, err
    res = json.loads(stdout.strip().splitlines()[-1])
    assert res["steps"] == 1497 // 50 and res["epochs"] == 1 and 0 <= res["top1"] <= 100
    assert "epoch 1/1" in err  # per-epoch lines go to stderr with --json
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert rows[0]["val_top1"] == res["top1"]

    # eval rebuilds the model, the split (seeded) and the normalisation from the checkpoint
    code, stdout, _ = run(capsys, "eval", "lenet5_modern", "--checkpoint",
                          str(out / "last.safetensors"), "--json")
    ev = json.loads(stdout.strip().splitlines()[-1])
    assert code == 0 and ev["n"] == 300 and ev["top1"] == pytest.approx(res["top1"])
    cm = ev["confusion"]
    assert len(cm) == 10 and sum(map(sum, cm)) == 300
    code, stdout, _ = run(capsys, "eval", "lenet5_modern", "--checkpoint",
                          str(out / "last.safetensors"), "--tta", "10crop")
    assert code == 0 and "TTA 10crop" in stdout and "confusion matrix" in stdout

    code, stdout, _ = run(capsys, "plot", str(out))
    assert code == 0 and (out / "curves.png").read_bytes()[:4] == b"\x89PNG"

    code, stdout, err = run(capsys, "train", "lenet5_modern", *DIGITS, "--epochs", "2",
                            "--batch-size", "50", "--lr", "0.05", "--opt", "warmup=0.2",
                            "--out", str(out), "--resume")
    assert code == 0, err
    assert "resumed" in stdout and "epoch 2/2" in stdout and "epoch 1/2" not in stdout
    assert len((out / "metrics.jsonl").read_text().splitlines()) == 2

    code, _, err = run(capsys, "train", "lenet5_modern", *DIGITS, "--epochs", "2",
                       "--batch-size", "25", "--out", str(out), "--resume")
    assert code == 2 and "cannot resume with batch_size=25" in err


def test_recipes_listing(capsys):
    code, stdout, _ = run(capsys, "recipes")
    assert code == 0 and "resnet_cifar" in stdout and "64,000 it" in stdout
    code, stdout, _ = run(capsys, "recipes", "--json")
    recipes = {r["name"]: r for r in json.loads(stdout)}
    s = recipes["resnet_cifar"]["settings"]
    assert (s["lr"], s["weight_decay"], s["milestones"]) == (0.1, 1e-4, [32000, 48000])


@pytest.mark.parametrize("argv, message", [
    (["train", "lenet5", "--data", "mnist:/no/such/dir"], "t10k-images-idx3-ubyte"),
    (["train", "lenet5", "--data", "imagenet"], "unknown dataset"),
    (["train", "lenet5", "--recipe", "adam_magic"], "unknown recipe"),
    (["train", "lenet5", "--data", "mnist:data/mnist"], "--val-split"),
    (["train", "lenet5", "--opt", "warmpu=3"], "unknown training setting"),
    (["eval", "lenet5", "--checkpoint", "/no/such.safetensors"], "not found"),
])
def test_user_errors_are_one_line_exit_2(capsys, argv, message):
    code, _, err = run(capsys, *argv)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err


def test_diverging_run_stops_with_a_clear_message(capsys, tmp_path):
    code, _, err = run(capsys, "train", "lenet5_modern", *DIGITS, "--epochs", "1",
                       "--lr", "1e6", "--opt", "momentum=0.99", "--batch-size", "100",
                       "--out", str(tmp_path))
    assert code == 1 and "loss became" in err and "training stopped" in err
