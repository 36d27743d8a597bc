"""Mean-image subtraction and ZCA whitening as a data option (issue 21): fitted on the
training split, attached in front of the model, kept in the checkpoint and re-attached when
the checkpoint is loaded for evaluation."""

import pytest
import torch

import cnnlab
from cnnlab.data.whiten import (
    MeanImage,
    ZCAWhitening,
    attach_preprocess,
    empty_preprocess,
    fit_preprocess,
    parse_preprocess,
)
from cnnlab.runspec import RunSpec, load_weights
from cnnlab.train.checkpoint import save_checkpoint


def test_parse_and_refuse():
    assert parse_preprocess("mean-image") == ("mean-image", 0.1)
    assert parse_preprocess("zca:0.01") == ("zca", 0.01)
    for bad in ("bogus", "zca:0", "zca:x", "mean-image:1", "zca:inf"):
        with pytest.raises(ValueError):
            parse_preprocess(bad)
    with pytest.raises(ValueError, match="4,096"):
        empty_preprocess("zca", (1, 72, 72))
    assert isinstance(empty_preprocess("mean-image", (3, 224, 224)), MeanImage)


@pytest.mark.parametrize("spec", ["mean-image", "zca:0.01"])
def test_the_fitted_transform_travels_with_the_checkpoint(spec, tmp_path):
    g = torch.Generator().manual_seed(0)
    images = torch.rand(64, 1, 16, 16, generator=g)
    torch.manual_seed(0)
    model = attach_preprocess(cnnlab.create_model("lenet1989"), fit_preprocess(spec, images))
    kind = ZCAWhitening if spec.startswith("zca") else MeanImage
    assert isinstance(model.preprocess, kind)
    x = torch.rand(3, 1, 16, 16, generator=g)
    model.eval()
    with torch.no_grad():  # the hook feeds the network the transformed images
        plain = cnnlab.create_model("lenet1989")
        plain.load_state_dict({k: v for k, v in model.state_dict().items()
                               if not k.startswith("preprocess.")})
        assert torch.equal(model(x), plain.eval()(model.preprocess(x)))
    path = tmp_path / "last.safetensors"
    run = RunSpec("lenet1989", {}, (1, 16, 16), "digits", preprocess=spec)
    save_checkpoint(path, model, meta=run.to_meta())
    assert RunSpec.from_checkpoint(path).preprocess == spec
    fresh = cnnlab.create_model("lenet1989")
    load_weights(path, fresh)  # attaches an unfitted module, then loads its buffers
    assert torch.equal(fresh.preprocess.mean, model.preprocess.mean)
    with torch.no_grad():
        assert torch.equal(fresh.eval()(x), model(x))
