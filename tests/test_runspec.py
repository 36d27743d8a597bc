"""The run a checkpoint records, read back by eval, export and compress."""

import pytest
import torch

from cnnlab.data import TensorData
from cnnlab.runspec import RunSpec
from cnnlab.train import save_checkpoint


@pytest.fixture
def ckpt(tmp_path):
    spec = RunSpec("lenet5", {"num_classes": 10, "in_chans": 1}, (1, 32, 32), "mnist:data/mnist",
                   2000, 3)
    path = tmp_path / "last.safetensors"
    save_checkpoint(path, torch.nn.Linear(2, 2), meta={
        **spec.to_meta(), "data": {"mean": [0.13], "std": [0.31]}})
    return path


def test_the_recorded_run_reads_back(ckpt):
    run = RunSpec.from_checkpoint(ckpt)
    assert (run.model, run.model_args, run.input_size) == \
        ("lenet5", {"num_classes": 10, "in_chans": 1}, (1, 32, 32))
    assert (run.data_spec, run.val_split, run.split_seed) == ("mnist:data/mnist", 2000, 3)
    assert run.builder_args({"num_classes": 7}) == {"num_classes": 7, "in_chans": 1}
    run.check_model("lenet5")
    with pytest.raises(ValueError, match="holds lenet5, not alexnet"):
        run.check_model("alexnet")


def test_the_split_is_the_runs_only_on_the_runs_data(ckpt):
    run = RunSpec.from_checkpoint(ckpt)
    assert run.split_args(None) == ("mnist:data/mnist", 2000, 3)
    assert run.split_args("mnist:data/mnist", 500, None) == ("mnist:data/mnist", 500, 3)
    assert run.split_args("digits") == ("digits", None, 0)


def test_data_is_normalised_with_the_runs_statistics(ckpt):
    run = RunSpec.from_checkpoint(ckpt)
    one = TensorData(torch.zeros(2, 1, 4, 4, dtype=torch.uint8), torch.zeros(2, dtype=torch.long))
    assert (run.normalise(one).mean, run.normalise(one).std) == ((0.13,), (0.31,))
    rgb = TensorData(torch.zeros(2, 3, 4, 4, dtype=torch.uint8), torch.zeros(2, dtype=torch.long))
    assert run.normalise(rgb) is rgb  # other channels: the run's statistics do not apply
