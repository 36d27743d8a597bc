"""``cnnlab.load_weights`` / ``create_model(pretrained=PATH)`` on synthetic peer state dicts
built from torchvision's names and shapes (tests/fixtures/peers, written from the live peers
by tools/peer_parity.py),
and ``model.pretrained_cfg``. Live parity with torchvision is tools/peer_parity.py's job."""

import gzip
import json
import warnings
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

import cnnlab
from cnnlab.pretrained import match
from cnnlab.profile import build_on_meta

torch.set_num_threads(1)
FIXTURES = Path(__file__).parent / "fixtures" / "peers"


def peer_names(stem: str) -> dict:
    """A peer's tensor names and shapes, written by tools/peer_parity.py --write-fixtures."""
    return json.loads(gzip.decompress((FIXTURES / f"{stem}.json.gz").read_bytes()))

# one torchvision name per family whose cnnlab counterpart is known by reading both models:
# the order rule must land each where it belongs
ANCHORS = {
    "resnet18": {"layer3.0.downsample.0.weight": "conv4_x.0.shortcut.conv.weight",
                 "layer1.1.bn2.running_var": "conv2_x.1.conv2.bn.running_var",
                 "fc.weight": "head.fc.weight"},
    "resnet50": {"layer2.0.conv3.weight": "conv3_x.0.conv3.conv.weight",
                 "layer4.2.bn3.bias": "conv5_x.2.conv3.bn.bias"},
    "vgg11_bn": {"features.4.weight": "features.conv2.weight",
                 "features.5.running_mean": "features.bn2.running_mean",
                 "classifier.3.weight": "classifier.4.weight", "classifier.6.bias": "head.fc.bias"},
    "alexnet": {"features.10.weight": "features.conv5.weight",
                "classifier.1.weight": "classifier.2.weight"},
    "squeezenet1_1": {"features.12.expand3x3.weight": "fire9.expand3x3.weight",
                      "classifier.1.weight": "conv10.conv.weight"},
    "mobilenet_v2": {"features.1.conv.0.0.weight": "features.block1_1.dw.conv.weight",
                     "features.2.conv.2.weight": "features.block2_1.project.conv.weight",
                     "classifier.1.weight": "head.fc.weight"},
    "shufflenet_v2_x0_5": {"stage2.0.branch1.2.weight": "features.stage2.0.proj.pw.conv.weight",
                           "stage3.1.branch2.3.weight": "features.stage3.1.branch.dw.conv.weight",
                           "conv5.1.running_mean": "features.conv5.bn.running_mean"},
    "resnext50_32x4d": {"layer1.0.conv2.weight": "conv2_x.0.conv2.conv.weight"},
    "efficientnet_b0": {"features.1.0.block.1.fc1.weight": "stages.0.0.se.conv_reduce.weight",
                        "features.2.0.block.3.0.weight": "stages.1.0.project.conv.weight",
                        "features.8.0.weight": "conv_head.conv.weight"},
    "densenet121": {"features.denseblock2.denselayer3.conv2.weight":
                    "block2.layers.2.conv2.weight",
                    "features.transition1.conv.weight": "transition1.conv.weight"},
}


def _peer(name, device="cpu", seed=0):
    d = peer_names(f"torchvision_{name}")
    g = torch.Generator().manual_seed(seed)
    out = {}
    for k, shape in d["tensors"]:
        if k.endswith("num_batches_tracked"):
            out[k] = torch.zeros((), dtype=torch.long, device=device)
        elif device == "meta":
            out[k] = torch.empty(shape, device="meta")
        else:
            t = torch.rand(shape, generator=g) + 0.5  # positive: valid running variances
            out[k] = t
    return out


@pytest.mark.parametrize("name", sorted(ANCHORS))
def test_torchvision_names_land_where_they_belong(name):
    peer = _peer(name, "meta")
    mapping, skipped, note = match(peer, build_on_meta(name).state_dict(), "torchvision")
    assert not skipped and not note
    assert len(mapping) == sum(not k.endswith("num_batches_tracked") for k in peer)
    for theirs, ours in ANCHORS[name].items():
        assert mapping[ours] is peer[theirs], f"{theirs} should load into {ours}"


def test_load_from_safetensors_and_torch_files(tmp_path):
    peer = _peer("squeezenet1_1")
    st, pt = tmp_path / "sq.safetensors", tmp_path / "sq.pth"
    save_file(peer, str(st))
    torch.save({"state_dict": {f"module.{k}": v for k, v in peer.items()}}, pt)
    for path in (st, pt):
        model = cnnlab.create_model("squeezenet1_1", pretrained=path)
        torch.testing.assert_close(model.fire9.expand3x3.weight,
                                   peer["features.12.expand3x3.weight"])
        assert model.pretrained_cfg["source"] == f"auto:{path.name}"


def test_other_num_classes_loads_all_but_the_classifier(tmp_path):
    path = tmp_path / "sv2.safetensors"
    peer = _peer("shufflenet_v2_x0_5")
    save_file(peer, str(path))
    model = cnnlab.create_model("shufflenet_v2_x0_5", num_classes=10)
    fc = model.head.fc.weight.clone()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        report = cnnlab.load_weights(model, path, source="torchvision")
    assert report["skipped"] == ["head.fc.weight", "head.fc.bias"]
    assert "loaded all but the classifier head.fc" in str(caught[0].message)
    assert torch.equal(model.head.fc.weight, fc)
    torch.testing.assert_close(model.features.conv5.conv.weight, peer["conv5.0.weight"])


def test_wrong_width_is_one_line_naming_the_first_tensor(tmp_path):
    path = tmp_path / "mv2.safetensors"
    save_file(_peer("mobilenet_v2"), str(path))
    model = cnnlab.create_model("mobilenet_v2", width_mult=0.5)
    with pytest.raises(ValueError) as e:
        cnnlab.load_weights(model, path, source="torchvision")
    msg = str(e.value)
    assert "\n" not in msg and "features.0.0.weight in the torchvision file does not fit " \
        "features.stem.conv.weight: (32, 3, 3, 3) vs (16, 3, 3, 3)" in msg
    with pytest.raises(ValueError, match="in the peer file does not fit features.conv1.weight"):
        cnnlab.create_model("alexnet", pretrained=path)


def test_plain_pickles_are_refused(tmp_path):
    path = tmp_path / "evil.pth"
    torch.save({"state_dict": {"w": torch.zeros(1)}, "obj": Path("x")}, path)
    with pytest.raises(ValueError, match="weights_only=True"):
        cnnlab.create_model("lenet5", pretrained=path)


def test_pretrained_true_says_which_file_to_pass():
    with pytest.raises(ValueError, match="no bundled weights; pass the file"):
        cnnlab.create_model("alexnet", pretrained=True)


@pytest.mark.parametrize("name", ["alexnet", "allcnn_c", "bn_inception", "cspdarknet53"])
def test_profile_reads_the_input_size_from_pretrained_cfg(name):
    model = build_on_meta(name)
    assert model.pretrained_cfg["input_size"] == cnnlab.model_info(name).input_size
    prof = cnnlab.profile(model)
    assert prof.input_size == cnnlab.model_info(name).input_size and prof.macs > 0


def test_pretrained_cfg_follows_the_model():
    cfg = build_on_meta("efficientnet_b3").pretrained_cfg
    assert cfg["input_size"] == (3, 300, 300) and cfg["num_classes"] == 1000
    assert cfg["mean"] == (0.485, 0.456, 0.406) and cfg["crop_pct"] == 0.875
    lenet = build_on_meta("lenet5", num_classes=10).pretrained_cfg
    assert lenet["input_size"] == (1, 32, 32) and lenet["num_classes"] == 10


@pytest.mark.parametrize("name", sorted(ANCHORS))
def test_registration_order_is_restored_from_sorted_names(name):
    from cnnlab.pretrained import registration_key

    names = [k for k, _ in peer_names(f"torchvision_{name}")["tensors"]]
    layers = list(dict.fromkeys(k.rpartition(".")[0] for k in names))
    restored = list(dict.fromkeys(k.rpartition(".")[0]
                                  for k in sorted(sorted(names), key=registration_key)))
    assert restored == layers


def _keras_mobilenet(path, width=8, classes=10):
    """A Keras-layout HDF5 file as keras.applications.MobileNet(alpha=0.25) writes it:
    conv1, conv_dw_i / conv_pw_i with their _bn layers, conv_preds (1x1 conv, bias)."""
    h5py = pytest.importorskip("h5py")
    from cnnlab.models.mobilenet import BODY

    g = torch.Generator().manual_seed(0)
    layers = []

    def add(name, **weights):
        layers.append((name, {k: torch.rand(s, generator=g).numpy() + 0.5
                              for k, s in weights.items()}))

    def bn(name, c):
        add(name, gamma=(c,), beta=(c,), moving_mean=(c,), moving_variance=(c,))

    add("conv1", kernel=(3, 3, 3, width))
    bn("conv1_bn", width)
    c = width
    for i, (_, out) in enumerate(BODY, 1):
        out = max(int(out * 0.25), 8)
        add(f"conv_dw_{i}", depthwise_kernel=(3, 3, c, 1))
        bn(f"conv_dw_{i}_bn", c)
        add(f"conv_pw_{i}", kernel=(1, 1, c, out))
        bn(f"conv_pw_{i}_bn", out)
        c = out
    add("conv_preds", kernel=(1, 1, c, classes), bias=(classes,))
    with h5py.File(path, "w") as f:
        root = f.create_group("model_weights")
        root.attrs["layer_names"] = [n.encode() for n, _ in layers]
        for name, weights in layers:
            grp = root.create_group(name)
            names = [f"{name}/{k}:0" for k in weights]
            grp.attrs["weight_names"] = [n.encode() for n in names]
            for n, v in zip(names, weights.values()):
                grp.create_dataset(n, data=v)
    return dict(layers)


def test_keras_hdf5_is_transposed_into_place(tmp_path):
    path = tmp_path / "mobilenet_2_5_224_tf.h5"
    keras = _keras_mobilenet(path)
    model = cnnlab.create_model("mobilenet_v1", width_mult=0.25, num_classes=10,
                                release="tf", pretrained=path)
    dw = torch.from_numpy(keras["conv_dw_2"]["depthwise_kernel"])  # H, W, C, 1
    torch.testing.assert_close(model.features.block2.dw.conv.weight, dw.permute(2, 3, 0, 1))
    pw = torch.from_numpy(keras["conv_pw_2"]["kernel"])  # 1, 1, in, out
    torch.testing.assert_close(model.features.block2.pw.conv.weight, pw.permute(3, 2, 0, 1))
    torch.testing.assert_close(model.features.block2.pw.bn.running_var,
                               torch.from_numpy(keras["conv_pw_2_bn"]["moving_variance"]))
    fc = torch.from_numpy(keras["conv_preds"]["kernel"])[0, 0].T
    torch.testing.assert_close(model.head.fc.weight, fc)
    assert model.pretrained_cfg["source"] == f"keras:{path.name}"
    with pytest.raises(ValueError, match="in the keras file does not fit"):
        cnnlab.load_weights(cnnlab.create_model("mobilenet_v1", width_mult=0.5), path)
