"""`cnnlab distill` and `cnnlab eval` of an ensemble, end to end on the digits."""

import json

import torch

from cnnlab.cli import main
from cnnlab.models import create_model
from cnnlab.train import save_checkpoint

DIGITS = ["--data", "digits", "--val-split", "300", "--batch-size", "100"]


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_distill_resume_and_ensemble_eval(capsys, tmp_path):
    code, _, err = run(capsys, "train", "lenet_300_100", *DIGITS, "--epochs", "1", "--lr",
                       "0.05", "--out", str(tmp_path / "t"), "--json")
    assert code == 0, err
    teacher = str(tmp_path / "t" / "last.safetensors")
    code, out, err = run(capsys, "distill", "lenet_300_100", "--teacher",
                         f"lenet_300_100:{teacher}", "--T", "4", *DIGITS, "--epochs", "1",
                         "--lr", "0.05", "--transfer-set", "exclude:3",
                         "--out", str(tmp_path / "s"), "--json")
    assert code == 0, err
    res = json.loads(out.strip().splitlines()[-1])
    assert res["epochs"] == 1 and 0 <= res["top1"] <= 100
    assert "1497" not in err and "transfer images" in err  # the 3s left the transfer set
    student = str(tmp_path / "s" / "last.safetensors")
    code, out, err = run(capsys, "distill", "lenet_300_100", "--teacher", teacher,
                         "--teacher", teacher, "--T", "4", *DIGITS, "--epochs", "2",
                         "--lr", "0.05", "--transfer-set", "exclude:3",
                         "--out", str(tmp_path / "s"), "--resume", "--json")
    assert code == 0, err
    assert json.loads(out.strip().splitlines()[-1])["epochs"] == 2
    code, out, err = run(capsys, "eval", "lenet_300_100", "--checkpoint", teacher,
                         "--checkpoint", student, "--json")
    assert code == 0, err
    ev = json.loads(out.strip().splitlines()[-1])
    assert ev["n"] == 300 and len(ev["members_top1"]) == 2 and 0 <= ev["top1"] <= 100


def test_teacher_that_does_not_fit_is_one_line(capsys, tmp_path):
    wrong = tmp_path / "five.safetensors"
    save_checkpoint(wrong, create_model("lenet_300_100", num_classes=5), meta={
        "model": "lenet_300_100", "model_args": {"num_classes": 5}})
    small = tmp_path / "lenet5.safetensors"
    torch.manual_seed(0)
    save_checkpoint(small, create_model("lenet5"), meta={"model": "lenet5", "model_args": {}})
    for ckpt, msg in ((wrong, "5,) outputs but"), (small, "cannot take the student's input")):
        out_dir = tmp_path / "out"
        code, _, err = run(capsys, "distill", "lenet_300_100", "--teacher", str(ckpt),
                           *DIGITS, "--out", str(out_dir))
        assert code == 2 and msg in err and len(err.strip().splitlines()) == 1, err
        assert not out_dir.exists()  # nothing left behind


def test_stored_soft_targets_train_the_same_student_as_the_teacher(capsys, tmp_path):
    code, _, err = run(capsys, "train", "lenet_300_100", *DIGITS, "--epochs", "1", "--lr",
                       "0.05", "--out", str(tmp_path / "t"), "--json")
    assert code == 0, err
    teacher = str(tmp_path / "t" / "last.safetensors")
    st = tmp_path / "soft.safetensors"
    common = ["--T", "4", *DIGITS, "--epochs", "1", "--lr", "0.05", "--seed", "3", "--json"]
    code, out, err = run(capsys, "distill", "lenet_300_100", "--teacher", teacher,
                         "--save-soft-targets", str(st), "--out", str(tmp_path / "a"), *common)
    assert code == 0, err
    assert st.is_file() and not list(tmp_path.glob("*.tmp*"))
    live = json.loads(out.strip().splitlines()[-1])
    code, out, err = run(capsys, "distill", "lenet_300_100", "--soft-targets", str(st),
                         "--out", str(tmp_path / "b"), *common)
    assert code == 0, err
    again = json.loads(out.strip().splitlines()[-1])
    assert again["top1"] == live["top1"] and again["loss"] == live["loss"]
    # a transfer set the file was not computed for is one line, exit 2, nothing written
    code, _, err = run(capsys, "distill", "lenet_300_100", "--soft-targets", str(st),
                       "--out", str(tmp_path / "c"), *common[:-1], "--split-seed", "5")
    assert code == 2 and "no soft targets for" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "c").exists()
