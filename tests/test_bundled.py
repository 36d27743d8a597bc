"""Weights shipped in the package: ``create_model(name, pretrained=True)`` offline, their
accuracy as ``cnnlab/weights/index.json`` states it, ``cnnlab list --pretrained``."""

import json

import pytest
import torch

import cnnlab
from cnnlab.bundled import index
from cnnlab.cli import main

torch.set_num_threads(1)
BUNDLED = sorted(index())


@pytest.mark.parametrize("name", BUNDLED)
def test_bundled_weights_reach_the_stated_accuracy(name):
    from cnnlab.runspec import RunSpec, model_and_data
    from cnnlab.train.evaluate import evaluate

    entry = index()[name]
    model_name, _, tag = name.partition(".")
    model = cnnlab.create_model(model_name, pretrained=tag or True)
    assert model.pretrained_cfg["source"].startswith(f"bundled: {entry['file']}")
    spec = RunSpec.from_checkpoint(cnnlab.bundled.WEIGHTS / entry["file"])
    _, split, _, _ = model_and_data(model_name, spec.data_spec, spec.val_split,
                                    spec.split_seed, tuple(entry["input_size"]))
    val = spec.normalise(split.val)
    acc = evaluate(model.eval(), val)["top1"]
    assert acc == pytest.approx(entry["accuracy"], abs=0.01)
    if entry.get("dcz"):  # the Deep Compression file decodes to the accuracy stated for it
        from cnnlab.compress.pipeline import read_weights

        path = cnnlab.bundled.WEIGHTS / entry["dcz"]
        model.load_state_dict(read_weights(path)[1])
        assert evaluate(model.eval(), val)["top1"] == pytest.approx(entry["dcz_accuracy"],
                                                                    abs=0.01)
        dense = sum(p.numel() * 4 for p in model.state_dict().values())
        assert dense / path.stat().st_size == pytest.approx(entry["dcz_ratio"], abs=0.05)


def test_list_pretrained(capsys):
    assert main(["list", "--pretrained", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["name"] for r in rows] == BUNDLED
    assert all(0 < r["accuracy"] <= 100 for r in rows)


def test_tagged_weights_are_other_weights():
    tagged = [k for k in BUNDLED if "." in k]
    if not tagged:
        pytest.skip("no tagged bundled weights")
    name, _, tag = tagged[0].partition(".")
    assert tag in cnnlab.bundled.tags(name)
    a = cnnlab.create_model(name, pretrained=True).state_dict()
    b = cnnlab.create_model(name, pretrained=tag).state_dict()
    assert any(not torch.equal(a[k], b[k]) for k in a)


def test_no_bundled_weights_is_one_line_naming_the_file_to_pass():
    with pytest.raises(ValueError, match=r"^resnet18: no bundled weights; pass the file: "
                                         r"create_model\('resnet18', pretrained="):
        cnnlab.create_model("resnet18", pretrained=True)


def test_every_bundled_file_ships_in_the_package():
    """A wheel holds only what pyproject's package-data globs name: each file in
    cnnlab/weights/ must match one, or a non-editable install loses it."""
    import fnmatch
    from pathlib import Path

    import tomllib

    root = Path(__file__).resolve().parents[1]
    globs = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"][
        "package-data"]["cnnlab"]
    files = [p.relative_to(root / "cnnlab").as_posix()
             for p in (root / "cnnlab" / "weights").iterdir()]
    assert files and all(any(fnmatch.fnmatch(f, g) for g in globs) for f in files), files
