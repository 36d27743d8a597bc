import inspect

import pytest
import torch

import cnnlab
from cnnlab.registry import Figure


def test_list_models_sorted_and_glob():
    names = cnnlab.list_models()
    assert names == sorted(names)
    assert cnnlab.list_models("mobilenet_v1*") == [
        "mobilenet_v1", "mobilenet_v1_conv", "mobilenet_v1_shallow"]
    assert cnnlab.list_models("no_such_*") == []


def test_unknown_model_suggests_close_names():
    with pytest.raises(ValueError, match="did you mean.*mobilenet_v1"):
        cnnlab.create_model("mobilenet_v")


def test_unknown_and_invalid_keywords():
    with pytest.raises(ValueError, match="unknown argument.*depth_mult.*valid: width_mult"):
        cnnlab.create_model("mobilenet_v1", depth_mult=2)
    with pytest.raises(ValueError, match="width_mult must be a positive"):
        cnnlab.create_model("mobilenet_v1", width_mult=-1)


def test_defaults_per_dataset():
    from cnnlab.profile import build_on_meta

    assert build_on_meta("vgg11").get_classifier().out_features == 1000
    assert cnnlab.model_info("lenet5").num_classes == 10
    assert cnnlab.model_info("lenet5").input_size == (1, 32, 32)


def test_figure_tolerance_is_the_printed_precision():
    f = Figure.parse("4.2M")
    assert f.matches(4_249_999) and f.matches(4_150_000) and not f.matches(4_260_000)
    assert Figure.parse(60_000).matches(60_000) and not Figure.parse(60_000).matches(60_001)
    assert Figure.parse("15.47G").value == pytest.approx(15.47e9)
    with pytest.raises(ValueError):
        Figure.parse(4.2e6)


def test_reference_with_exact_count_needs_a_note():
    from cnnlab.registry import Reference

    with pytest.raises(ValueError, match="note"):
        Reference.from_dict({"params": "6.9M", "exact_params": 6_108_776, "table": "T4"},
                            (3, 224, 224))


def test_profile_by_name_and_kwargs():
    p = cnnlab.profile("mobilenet_v1", (3, 160, 160), width_mult=0.5)
    q = cnnlab.profile(cnnlab.create_model("mobilenet_v1", width_mult=0.5), (3, 160, 160))
    assert (p.params, p.macs) == (q.params, q.macs)
    assert isinstance(p.params, int) and isinstance(p.macs, int)


def test_reset_classifier():
    m = cnnlab.create_model("mobilenet_v1", width_mult=0.25)
    m.reset_classifier(7)
    assert m(torch.zeros(1, 3, 64, 64)).shape == (1, 7)


def test_model_size_figures_are_checked_in_mib():
    from cnnlab.profile.verify import verify

    checks = {(c.model, c.metric): c for c in verify("squeezenet1_0*")}
    vanilla = checks[("squeezenet1_0", "size_mib")]
    assert vanilla.ok and vanilla.measured == pytest.approx(1_248_424 * 4 / 2**20)
    complex_ = checks[("squeezenet1_0_complex_bypass", "size_mib")]
    assert complex_.paper.text == "7.7" and complex_.expected.text == "6.06" and complex_.note


@pytest.mark.parametrize("kwargs,message", [
    ({"num_classes": -1}, "num_classes must be a positive integer"),
    ({"num_classes": 2.5}, "num_classes must be a positive integer"),
    ({"in_chans": -3}, "in_chans must be a positive integer"),
    ({"drop_rate": 1.0}, r"drop_rate must be in \[0, 1\)"),
])
def test_shared_arguments_are_checked_for_every_model(kwargs, message):
    for name in cnnlab.list_models():
        params = inspect.signature(cnnlab.model_info(name).builder).parameters
        if all(k in params for k in kwargs):
            with pytest.raises(ValueError, match=message):
                cnnlab.create_model(name, **kwargs)
