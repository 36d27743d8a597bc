"""``cnnlab visualize``: PNGs from a checkpoint, and bad input as one line, exit 2, no files."""

from __future__ import annotations

import json

import pytest
import torch

import cnnlab
from cnnlab.cli import main
from cnnlab.runspec import RunSpec
from cnnlab.train import save_checkpoint

pytest.importorskip("matplotlib")
pytest.importorskip("sklearn")


def _checkpoint(path, name, size=(1, 32, 32)):
    torch.manual_seed(0)
    args = {"num_classes": 10, "in_chans": 1}
    model = cnnlab.create_model(name, **args)
    meta = {**RunSpec(name, args, size, "digits", None, 0).to_meta(),
            "data": {"mean": [0.2], "std": [0.3]}}
    return str(save_checkpoint(path / f"{name}.safetensors", model, meta=meta))


@pytest.fixture(scope="module")
def ckpts(tmp_path_factory):
    d = tmp_path_factory.mktemp("ckpt")
    return {n: _checkpoint(d, n, (1, 28, 28) if n == "lenet_300_100" else (1, 32, 32))
            for n in ("lenet5", "lenet5_modern", "lenet_300_100")}


def test_visualize_writes_the_pictures_it_lists(capsys, tmp_path, ckpts):
    out = tmp_path / "new" / "pics"
    code = main(["visualize", "lenet5_modern", "--checkpoint", ckpts["lenet5_modern"],
                 "--filters", "--neighbours", "2", "-k", "3", "--compress", "4",
                 "--saliency", "guided,cam", "--images", "0,5", "--out", str(out), "--json"])
    report = json.loads(capsys.readouterr().out)
    assert code == 0
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["filters.png", "neighbours.png", "saliency_guided.png", "saliency_cam.png"])
    assert sorted(report["files"]) == sorted(str(p) for p in out.iterdir())
    assert 0 <= report["pca4_overlap"] <= 100
    for f in report["files"]:
        assert open(f, "rb").read(8) == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("model, ckpt, extra, message", [
    ("lenet5_modern", "lenet5", ["--filters"], "holds lenet5, not lenet5_modern"),
    ("lenet_300_100", "lenet_300_100", ["--filters"], "lenet_300_100 has no convolution"),
    ("lenet5", "lenet5", ["--saliency", "guided"], "lenet5 uses ScaledTanh (tanh)"),
    ("lenet5", "lenet5", ["--saliency", "cam", "--images", "9999"], "out of range"),
    ("lenet5", "lenet5", ["--saliency", "gradcam"], "unknown --saliency"),
    ("lenet5", "lenet5", [], "nothing to draw"),
    # fails only after filters.png is written: that file and the new folder go again
    ("lenet5", "lenet5", ["--filters", "--neighbours", "1", "--compress", "999"],
     "--compress must be between 1 and 84"),
])
def test_bad_input_is_one_line_exit_2_and_nothing_is_left(capsys, tmp_path, ckpts, model,
                                                          ckpt, extra, message):
    code = main(["visualize", model, "--checkpoint", ckpts[ckpt], *extra,
                 "--out", str(tmp_path / "made" / "out")])
    err = capsys.readouterr().err
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err
    assert list(tmp_path.iterdir()) == []


def test_unwritable_out_is_refused_before_any_work(capsys, tmp_path, ckpts):
    file = tmp_path / "a_file"
    file.write_text("x")
    for out, message in ((file, "is not a directory"), (file / "sub", "cannot create")):
        code = main(["visualize", "lenet5", "--checkpoint", ckpts["lenet5"], "--filters",
                     "--out", str(out)])
        err = capsys.readouterr().err
        assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err
    assert list(tmp_path.iterdir()) == [file] and file.read_text() == "x"
