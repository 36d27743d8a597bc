"""What a timm user types: out_indices, num_classes=0 (headless), num_features,
case-insensitive list_models, torch.fx.symbolic_trace; and the variant registry behind it."""

import collections
import inspect

import pytest
import torch
from torch import fx

import cnnlab
from cnnlab.models.vgg import VGGNet
from cnnlab.profile import build_on_meta


def _builders():
    """The registered names grouped by the family builder they bind: each group runs the same
    Python, so its smallest variant (shortest name) stands for it."""
    groups = collections.defaultdict(list)
    for name in cnnlab.list_models():
        builder = cnnlab.model_info(name).builder
        groups[getattr(builder, "__wrapped__", builder)].append(name)
    return sorted(min(names, key=lambda n: (len(n), n)) for names in groups.values())


REPRESENTATIVES = _builders()


def test_features_only_out_indices():
    feats = cnnlab.create_model("mobilenet_v1", width_mult=0.25, features_only=True,
                                out_indices=(2, 3)).eval()
    assert feats.reductions == [8, 16] and feats.channels == [64, 128]
    with torch.no_grad():
        outs = feats(torch.zeros(1, 3, 64, 64))
    assert [tuple(o.shape) for o in outs] == [(1, 64, 8, 8), (1, 128, 4, 4)]
    assert build_on_meta("resnet18", features_only=True, out_indices=(-1,)).reductions == [32]
    with pytest.raises(ValueError, match="5 feature maps"):
        build_on_meta("resnet18", features_only=True, out_indices=(5,))
    with pytest.raises(ValueError, match="features_only"):
        build_on_meta("resnet18", out_indices=(1,))


def test_out_indices_out_of_order_still_run_to_the_deepest_map():
    feats = cnnlab.create_model("mobilenet_v1", width_mult=0.25, features_only=True,
                                out_indices=(4, 1))
    outs = feats(torch.zeros(1, 3, 64, 64))
    assert [o.shape[-1] for o in outs] == [2, 16]


@pytest.mark.parametrize("name,kwargs,size", [
    ("mobilenet_v1", {"width_mult": 0.25}, (3, 64, 64)),  # ClassifierHead
    ("lenet5", {}, (1, 32, 32)),  # RBF output layer
    ("lenet5_modern", {}, (1, 32, 32)),
    ("nin_cifar10", {}, (3, 32, 32)),  # 1x1-convolution classifier, then pooling
    ("allcnn_c", {}, (3, 32, 32)),
    ("squeezenet1_1", {}, (3, 64, 64)),  # conv10
])
def test_num_classes_zero_returns_the_pooled_features(name, kwargs, size):
    """timm's meaning: no classifier, ``forward`` gives ``forward_head(pre_logits=True)``,
    ``num_features`` wide; the classifier's weights are gone."""
    torch.manual_seed(0)
    full = cnnlab.create_model(name, **kwargs).eval()
    headless = cnnlab.create_model(name, num_classes=0, **kwargs).eval()
    headless.load_state_dict(full.state_dict(), strict=False)
    x = torch.randn(2, *size)
    with torch.no_grad():
        expected = full.forward_head(full.forward_features(x), pre_logits=True)
        out = headless(x)
    assert out.shape == (2, full.num_features) == (2, headless.num_features)
    assert torch.allclose(out, expected, atol=1e-6)
    assert headless.num_classes == 0
    assert set(headless.state_dict()) < set(full.state_dict())  # the classifier is gone


def test_headless_fc_head_and_aux_heads():
    vgg = VGGNet([8, "M", 8, "M", 8, "M", 8, "M", 8, "M"], num_classes=10)
    vgg.reset_classifier(0)
    assert vgg(torch.zeros(1, 3, 32, 32)).shape == (1, 4096) and vgg.num_features == 4096
    g = build_on_meta("googlenet", aux_logits=True, num_classes=0)
    assert g.aux is None and g.num_features == 1024  # no auxiliary logits either
    assert not any(isinstance(m, torch.nn.Linear) for m in g.modules())


def test_headless_is_for_classifiers_only():
    with pytest.raises(ValueError, match="headless.*per pixel"):
        build_on_meta("unet", num_classes=0)
    with pytest.raises(ValueError, match="positive integer"):
        cnnlab.create_model("resnet18", num_classes=-1)


@pytest.mark.parametrize("name", REPRESENTATIVES)
def test_num_features_is_the_classifier_input(name, meta_model):
    m = meta_model(name)
    if m.dense_prediction:
        return
    fc = m.get_classifier()
    weight = fc.prototypes if hasattr(fc, "prototypes") else fc.weight  # LeNet-5's RBF units
    assert m.num_features == weight.shape[1]


def test_list_models_ignores_case():
    resnets = cnnlab.list_models("*resnet*")
    assert resnets and cnnlab.list_models("*ResNet*") == resnets
    assert cnnlab.list_models(["VGG16", "LeNet5"]) == ["lenet5", "vgg16"]


@pytest.mark.parametrize("name", REPRESENTATIVES)
def test_every_classifier_builder_traces_with_fx(name, meta_model):
    """torch.fx.symbolic_trace works on every classifier (one variant per builder: the others
    run the same Python); the graph holds the model's layers."""
    m = meta_model(name)
    if m.dense_prediction:
        return
    graph = fx.symbolic_trace(m)
    assert sum(n.op == "call_module" for n in graph.graph.nodes) >= 3


@pytest.mark.parametrize("name,kwargs,size", [
    ("resnet20", {}, (3, 32, 32)),
    ("shufflenet_v2_x0_5", {}, (3, 64, 64)),  # channel split and shuffle
    ("lenet5", {}, (1, 32, 32)),  # C3's partial connections
    ("lenet_300_100", {}, (1, 28, 28)),  # its own input check
    ("mobilenet_v2", {"width_mult": 0.35}, (3, 64, 64)),
])
def test_traced_graph_computes_what_the_model_does(name, kwargs, size):
    torch.manual_seed(0)
    m = cnnlab.create_model(name, **kwargs).eval()
    graph = fx.symbolic_trace(m)
    x = torch.randn(2, *size)
    with torch.no_grad():
        assert torch.equal(graph(x), m(x))


def test_variants_bind_their_arguments():
    """A variant registered with ``fixed`` arguments no longer takes them; ``defaults`` are
    shown in its signature; its docstring is its own."""
    params = inspect.signature(cnnlab.model_info("resnet50").builder).parameters
    assert "depth" not in params and params["shortcut"].default == "B"
    with pytest.raises(ValueError, match="unknown argument.*depth"):
        cnnlab.create_model("resnet50", depth=18)
    b7 = cnnlab.model_info("efficientnet_b7")
    assert inspect.signature(b7.builder).parameters["drop_rate"].default == 0.5
    assert "width 2.0, depth 3.1, 600 px" in b7.doc and b7.family == "efficientnet"
    assert inspect.signature(cnnlab.model_info("vgg16_bn").builder).parameters[
        "batch_norm"].default is True
