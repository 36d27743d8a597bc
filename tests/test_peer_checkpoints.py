"""Peer checkpoints reproduced without the peers: seeded torchvision/timm state dicts and the
peer's output on a fixed input (tests/fixtures/peers/checkpoints, written by
``tools/peer_parity.py --write-checkpoints`` in an environment with torchvision and timm),
and the name rules checked against every peer's tensor names (``*.json.gz``)."""

import gzip
import json
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file

import cnnlab
from cnnlab.layers.release import resolve
from cnnlab.pretrained import match, pair, registration_key
from cnnlab.profile import build_on_meta

torch.set_num_threads(1)
PEERS = Path(__file__).parent / "fixtures" / "peers"
CKPT = PEERS / "checkpoints"


def _efficientnet_w05_d05():
    from cnnlab.models.efficientnet import RELEASES, EfficientNet, scale

    model = EfficientNet(scale(0.5, 0.5), num_classes=10)
    model.init_weights()
    return resolve("efficientnet_b0", RELEASES, "tf").apply(model)


# fixture -> (how cnnlab builds the peer's network, how the pairs are made)
CHECKPOINTS = {
    "squeezenet1_1": (lambda: cnnlab.create_model("squeezenet1_1", num_classes=10), "order"),
    "shufflenet_v2_x0_5": (lambda: cnnlab.create_model("shufflenet_v2_x0_5", num_classes=10),
                           "order"),
    "mobilenet_v2_035": (lambda: cnnlab.create_model("mobilenet_v2", width_mult=0.35,
                                                     num_classes=10), "order"),
    "tf_efficientnet_w05_d05": (_efficientnet_w05_d05, "names (timm rules)"),
    "timm_mobilenetv1_025": (lambda: cnnlab.create_model(
        "mobilenet_v1", width_mult=0.25, num_classes=10, release="timm"), "names (timm rules)"),
}


def _relative_error(model, io):
    with torch.no_grad():
        got = model.eval()(io["input"].float())
    return float((got - io["output"]).abs().max() / io["output"].abs().max())


@pytest.mark.parametrize("fixture", sorted(CHECKPOINTS))
def test_peer_checkpoint_computes_the_peers_output(fixture, tmp_path):
    build, how = CHECKPOINTS[fixture]
    path = CKPT / f"{fixture}.safetensors"
    with safe_open(str(path), "pt") as f:
        assert f.metadata()["peer"].split(".")[0] in ("torchvision", "timm")
    io = load_file(str(CKPT / f"{fixture}.io.safetensors"))
    model = build()
    report = cnnlab.load_weights(model, path)
    assert report["by"] == how and not report["skipped"]
    assert _relative_error(model, io) <= 1e-5
    # the same weights as a torch file (registration order kept) load the same way
    pth = tmp_path / f"{fixture}.pth"
    torch.save(dict(sorted(load_file(str(path)).items(),
                           key=lambda kv: registration_key(kv[0]))), pth)
    again = build()
    cnnlab.load_weights(again, pth)
    assert _relative_error(again, io) <= 1e-5


def test_a_release_changes_the_function_the_weights_compute():
    """The timm MobileNet v1 weights in the paper's network (ReLU, not ReLU6) compute another
    function: the release matters, not only the names."""
    io = load_file(str(CKPT / "timm_mobilenetv1_025.io.safetensors"))
    model = cnnlab.create_model("mobilenet_v1", width_mult=0.25, num_classes=10)
    cnnlab.load_weights(model, CKPT / "timm_mobilenetv1_025.safetensors")
    assert _relative_error(model, io) > 1e-3


def _names(stem):
    return json.loads(gzip.decompress((PEERS / f"{stem}.json.gz").read_bytes()))


# every peer naming scheme with rules, once (the smallest model of each)
NAMED = ["torchvision_resnet18", "torchvision_resnext50_32x4d", "timm_resnet50",
         "torchvision_inception_v3", "timm_inception_v3", "timm_tf_efficientnet_b0",
         "timm_mobilenetv1_100", "timm_inception_resnet_v2"]


@pytest.mark.parametrize("stem", NAMED)
def test_name_rules_agree_with_the_registration_order(stem):
    """Two independent rules, one answer: pairing by the family's name rules gives the same
    pairs as the module order of the peer's own registration, and uses every tensor."""
    d = _names(stem)
    model = build_on_meta(d["model"])
    ours = model.state_dict()
    peer = {k: torch.empty(s, device="meta") for k, s in d["tensors"]}
    by_names, skipped, note, how = pair(dict(sorted(peer.items())), ours, model)
    assert how.startswith("names") and not skipped and not note
    by_order, _, _ = match(peer, ours)
    assert set(by_names) == set(by_order) == {k for k in ours
                                              if not k.endswith("num_batches_tracked")}
    for name, t in by_order.items():
        assert by_names[name].shape == t.shape
        if t.dim() != 2:  # (timm's 1x1-conv classifier is reshaped on both paths)
            assert by_names[name] is t, name


@pytest.mark.parametrize("stem", ["torchvision_alexnet", "torchvision_vgg11_bn",
                                  "torchvision_densenet121", "torchvision_squeezenet1_0",
                                  "torchvision_mobilenet_v2", "torchvision_efficientnet_b0",
                                  "torchvision_shufflenet_v2_x0_5"])
def test_index_named_peers_pair_by_order_from_a_sorted_file(stem):
    """torchvision's ``features.N`` families have no name rules: a safetensors file (names
    sorted) is paired as the registration order pairs it."""
    d = _names(stem)
    model = build_on_meta(d["model"])
    ours = model.state_dict()
    peer = {k: torch.empty(s, device="meta") for k, s in d["tensors"]}
    ordered = dict(sorted(sorted(peer.items()), key=lambda kv: registration_key(kv[0])))
    mapping, _, _, how = pair(ordered, ours, model)
    assert how == "order"
    assert {n: id(t) for n, t in mapping.items()} == \
        {n: id(t) for n, t in match(peer, ours)[0].items()}


# timm registers these blocks' shortcut before their body (NASNet: a cell's input
# projections in another order): only the names can pair them
ANCHORS = {
    ("timm_legacy_xception", "xception"): {
        "block1.skip.weight": "features.entry1.shortcut.conv.weight",
        "block1.rep.3.pointwise.weight": "features.entry1.body.sep2.pw.weight",
        "block5.rep.5.running_var": "features.middle2.body.bn2.running_var",
        "block12.rep.1.conv1.weight": "features.exit1.body.sep1.dw.weight",
        "conv4.pointwise.weight": "features.exit_sep2.sep.pw.weight",
        "bn4.bias": "features.exit_sep2.bn.bias"},
    ("timm_resnetv2_50", "preact_resnet50"): {
        "stages.0.blocks.0.downsample.conv.weight": "conv2_x.0.shortcut.weight",
        "stages.0.blocks.0.norm1.weight": "conv1.bn.weight",
        "stages.1.blocks.0.norm1.running_var": "conv3_x.0.preact.0.running_var",
        "stages.2.blocks.3.conv2.weight": "conv4_x.3.body.conv2.conv.weight",
        "stages.3.blocks.2.norm3.bias": "conv5_x.2.body.conv3.bn.bias",
        "norm.weight": "final_act.bn.weight"},
    ("timm_nasnetalarge", "nasnet_a_large"): {
        "cell_1.conv_prev_1x1.conv.weight": "cells.cell_1.prev.conv.weight",
        "cell_stem_1.path_2.conv.weight": "cells.cell_stem_1.prev.path2.weight",
        "cell_0.final_path_bn.running_mean": "cells.cell_0.prev.bn.running_mean",
        "cell_0.comb_iter_0_left.separable_1.depthwise_conv2d.weight":
            "cells.cell_0.comb_iter_0.left.separable_1.dw.weight",
        "last_linear.weight": "head.fc.weight"},
}


@pytest.mark.parametrize("stem,name", sorted(ANCHORS))
def test_timm_names_land_where_they_belong(stem, name):
    model = build_on_meta(name)
    peer = {k: torch.empty(s, device="meta") for k, s in _names(stem)["tensors"]}
    mapping, skipped, _, how = pair(dict(sorted(peer.items())), model.state_dict(), model)
    assert how == "names (timm rules)" and not skipped
    assert mapping["head.fc.weight"].dim() == 2
    for theirs, ours in ANCHORS[stem, name].items():
        assert mapping[ours] is peer[theirs], f"{theirs} should load into {ours}"
    with pytest.raises(ValueError, match="in the peer file does not fit"):
        match(peer, model.state_dict())  # the order rule cannot


def test_a_wrong_model_under_name_rules_names_the_first_misfit():
    d = _names("torchvision_resnet18")
    peer = {k: torch.empty(s, device="meta") for k, s in d["tensors"]}
    model = build_on_meta("resnet34")
    with pytest.raises(ValueError, match=r"no tensor for conv2_x\.2\.conv1\.conv\.weight"):
        pair(peer, model.state_dict(), model)
    wide = {k: torch.empty(s, device="meta") for k, s in _names("torchvision_resnet50")["tensors"]}
    model = build_on_meta("resnext50_32x4d")
    with pytest.raises(ValueError, match=r"layer1\.0\.conv1\.weight in the peer file does not "
                                         r"fit conv2_x\.0\.conv1\.conv\.weight: \(64, 64, 1, 1\) "
                                         r"vs \(128, 64, 1, 1\)"):
        pair(wide, model.state_dict(), model)


def test_other_num_classes_under_name_rules_skips_only_the_classifier():
    peer = {k: torch.empty(s, device="meta") for k, s in _names("timm_resnetv2_50")["tensors"]}
    model = build_on_meta("preact_resnet50", num_classes=10)
    mapping, skipped, note, how = pair(peer, model.state_dict(), model, "timm")
    assert how == "names (timm rules)" and skipped == ["head.fc.weight", "head.fc.bias"]
    assert note == "loaded all but the classifier head.fc (the file's has 1000 classes, " \
                   "the model's 10)"
    assert len(mapping) == len(peer) - 2 - sum(k.endswith("num_batches_tracked") for k in peer)
