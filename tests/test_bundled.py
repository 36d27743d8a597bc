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
    model = cnnlab.create_model(name, pretrained=True)
    assert model.pretrained_cfg["source"].startswith(f"bundled: {entry['file']}")
    spec = RunSpec.from_checkpoint(cnnlab.bundled.WEIGHTS / entry["file"])
    _, split, _, _ = model_and_data(name, spec.data_spec, spec.val_split, spec.split_seed,
                                    tuple(entry["input_size"]))
    acc = evaluate(model.eval(), spec.normalise(split.val))["top1"]
    assert acc == pytest.approx(entry["accuracy"], abs=0.01)


def test_list_pretrained(capsys):
    assert main(["list", "--pretrained", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["name"] for r in rows] == BUNDLED
    assert all(0 < r["accuracy"] <= 100 for r in rows)


def test_no_bundled_weights_is_one_line_naming_the_file_to_pass():
    with pytest.raises(ValueError, match=r"^resnet18: no bundled weights; pass the file: "
                                         r"create_model\('resnet18', pretrained="):
        cnnlab.create_model("resnet18", pretrained=True)
