"""Binary-Weight-Networks and XNOR-Net (Rastegari et al. 2016): identities and the kernel."""

import copy

import pytest
import torch
import torch.nn as nn

import cnnlab
from cnnlab.compress.binary import (
    BinaryConv2d,
    BinaryLinear,
    InputBN,
    SignSTE,
    add_input_bn,
    binarize,
    binary_layers,
    input_scale,
    load_binary,
    save_binary,
    sign,
    weight_scale,
)
from cnnlab.compress.binary_kernel import (
    HAVE_KERNEL,
    PackedConv2d,
    float_counts,
    pack_model,
    pack_weight,
    xnor_conv,
    xnor_counts,
)

needs_kernel = pytest.mark.skipif(not HAVE_KERNEL, reason="C kernel not built")


def test_sign_of_zero_is_plus_one():
    assert sign(torch.tensor([-2.0, 0.0, 3.0])).tolist() == [-1.0, 1.0, 1.0]


def test_alpha_is_the_minimiser_of_the_approximation_error():
    torch.manual_seed(0)
    w = torch.randn(4, 3, 3, 3)
    w[0, 0, 0, 0] = 0.0
    alpha = weight_scale(w).flatten()
    b = sign(w)
    # numeric minimisation of ||W - a B||^2 over a, per filter, by gradient descent
    a = torch.zeros(4, requires_grad=True)
    opt = torch.optim.SGD([a], lr=0.01)
    for _ in range(300):
        opt.zero_grad()
        ((w - a.view(-1, 1, 1, 1) * b) ** 2).sum().backward()
        opt.step()
    assert torch.allclose(a.detach(), alpha, atol=1e-5)
    # and B = sign(W) beats flipping any single sign at that alpha
    err = ((w - alpha.view(-1, 1, 1, 1) * b) ** 2).sum()
    for i in range(0, w.numel(), 7):
        b2 = b.flatten().clone()
        b2[i] = -b2[i]
        assert ((w - alpha.view(-1, 1, 1, 1) * b2.view_as(w)) ** 2).sum() >= err


def test_straight_through_gradient_passes_only_where_abs_at_most_one():
    x = torch.tensor([-2.0, -1.0, -0.5, 0.0, 0.7, 1.0, 1.5], requires_grad=True)
    g = torch.arange(1.0, 8.0)
    SignSTE.apply(x).backward(g)
    assert x.grad.tolist() == [0.0, 2.0, 3.0, 4.0, 5.0, 6.0, 0.0]


def test_input_scale_is_box_filtered_channel_mean():
    torch.manual_seed(1)
    x = torch.randn(2, 5, 6, 6)
    k = input_scale(x, (3, 3), stride=1, padding=1)
    a = x.abs().mean(1)
    assert torch.allclose(k[1, 0, 2, 3], a[1, 1:4, 2:5].mean())
    assert torch.allclose(k[0, 0, 0, 0], a[0, 0:2, 0:2].sum() / 9)  # zero padding counts


def test_bwn_forward_is_alpha_b_and_real_weights_train():
    torch.manual_seed(2)
    conv = nn.Conv2d(3, 4, 3, padding=1)
    b = BinaryConv2d.from_conv(conv, "bwn")
    x = torch.randn(2, 3, 5, 5)
    ref = nn.functional.conv2d(x, weight_scale(conv.weight) * sign(conv.weight), conv.bias,
                               padding=1)
    assert torch.allclose(b(x), ref, atol=1e-6)
    before = conv.weight.detach().clone()
    opt = torch.optim.SGD(b.parameters(), lr=0.1)
    b(x).square().sum().backward()
    opt.step()
    assert b.weight is conv.weight and not torch.equal(conv.weight, before)
    assert len(torch.unique(b.weight.abs().detach())) > 2  # real values kept, not binarised


def test_binarize_keeps_first_and_last_real():
    m = cnnlab.create_model("lenet5_caffe")
    binarize(m, "xnor")
    assert isinstance(m.features.conv1, nn.Conv2d) and not isinstance(m.features.conv1,
                                                                        BinaryConv2d)
    assert isinstance(m.features.conv2, BinaryConv2d) and m.features.conv2.mode == "xnor"
    assert isinstance(m.fc1[1], BinaryLinear)
    assert sorted(binary_layers(m)) == ["fc1.1", "features.conv2"]
    assert not isinstance(m.head.fc, BinaryLinear)
    m.train()
    out = m(torch.randn(2, 1, 28, 28))
    out.sum().backward()
    assert m.features.conv2.weight.grad is not None
    m2 = binarize(cnnlab.create_model("lenet5_caffe"), "bwn", keep_first_last=False)
    assert len(binary_layers(m2)) == 4


@pytest.mark.parametrize("model", [nn.Sequential(nn.ReLU(), nn.Flatten()),
                                   nn.Sequential(nn.Linear(3, 2))])
def test_binarize_without_layers_is_a_clear_error(model):
    with pytest.raises(ValueError, match="binarise"):
        binarize(model)


def test_binarize_rejects_unknown_mode():
    with pytest.raises(ValueError, match="mode"):
        binarize(cnnlab.create_model("lenet5_caffe"), "ternary")


def _bn_stats(m):
    with torch.no_grad():  # non-trivial BN statistics, then inference
        m.train()
        m(torch.randn(8, 1, 28, 28))
    return m.eval()


def test_input_bn_puts_the_same_batch_norm_in_front_in_every_variant():
    torch.manual_seed(6)
    base = cnnlab.create_model("lenet5_caffe")
    fp, bwn, xnor = (copy.deepcopy(base) for _ in range(3))
    add_input_bn(fp)
    binarize(bwn, "bwn", input_bn=True)
    binarize(xnor, "xnor")
    # the same layers gain one BatchNorm over the same channels/features in all three
    bns = [{n: type(mod) for n, mod in m.named_modules() if isinstance(mod, nn.modules.batchnorm
                                                                         ._BatchNorm)}
           for m in (fp, bwn, xnor)]
    assert [sorted(n.rsplit(".bn", 1)[0] for n in b) for b in bns] == \
        [["fc1.1", "features.conv2"]] * 3
    assert isinstance(fp.features.conv2, InputBN) and bwn.features.conv2.bn.num_features == 20
    assert not binary_layers(fp) and binarize(copy.deepcopy(base), "bwn").features.conv2.bn \
        is None  # without input_bn, BWN keeps the model's own blocks
    _bn_stats(bwn)
    conv, x = bwn.features.conv2, torch.randn(2, 20, 12, 12)
    ref = nn.functional.conv2d(conv.bn(x), weight_scale(conv.weight) * sign(conv.weight),
                               conv.bias)
    assert torch.allclose(conv(x), ref, atol=1e-5)
    fc, v = bwn.fc1[1], torch.randn(3, 800)
    assert torch.allclose(fc(v), nn.functional.linear(
        fc.bn(v), weight_scale(fc.weight).view(-1, 1) * sign(fc.weight), fc.bias), atol=1e-5)
    _bn_stats(fp)
    assert torch.allclose(fp.fc1[1](v), fp.fc1[1].layer(fp.fc1[1].bn(v)))
    with pytest.raises(ValueError, match="input_bn=False"):
        binarize(copy.deepcopy(base), "xnor", input_bn=False)


def test_bwn_with_input_bn_saves_and_reloads(tmp_path):
    torch.manual_seed(7)
    m = _bn_stats(binarize(cnnlab.create_model("lenet5_caffe"), "bwn", input_bn=True))
    path = tmp_path / "m.safetensors"
    save_binary(m, path, meta={"model": "lenet5_caffe", "config": {}})
    back = load_binary(path).eval()
    assert back.features.conv2.bn is not None
    x = torch.randn(2, 1, 28, 28)
    assert torch.allclose(back(x), m(x), rtol=1e-5, atol=1e-6)


def _simd_paths():
    from cnnlab.compress import binary_kernel

    return binary_kernel._binconv.simd_paths() if HAVE_KERNEL else []


@needs_kernel
@pytest.mark.parametrize("path", ["scalar", "avx2", "avx512"])
@pytest.mark.parametrize("seed", range(6))
def test_packed_kernel_equals_float_binary_conv(seed, path, monkeypatch):
    if path not in _simd_paths():
        pytest.skip(f"this CPU has no {path} popcount")
    from cnnlab.compress.binary_kernel import _binconv

    monkeypatch.setenv("CNNLAB_BINCONV_SIMD", path)
    assert _binconv.simd() == path
    g = torch.Generator().manual_seed(seed)
    r = lambda lo, hi: int(torch.randint(lo, hi, (1,), generator=g))  # noqa: E731
    c, cout, k = r(1, 200), r(1, 40), r(1, 6)
    s, p, d = r(1, 4), r(0, k + 1), r(1, 3)
    h, w = r(d * (k - 1) + 1, 14), r(d * (k - 1) + 1, 14)
    x = torch.randn(r(1, 3), c, h, w, generator=g)
    x[x.abs() < 0.1] = 0.0  # sign(0) = +1 on both paths
    wt = torch.randn(cout, c, k, k, generator=g)
    got = xnor_counts(x, pack_weight(wt), c, (k, k), (s, s), (p, p), (d, d), threads=2)
    want = float_counts(x, sign(wt), s, p, d)
    assert got.dtype == torch.int32 and got.shape == want.shape
    assert torch.equal(got.float(), want)


@needs_kernel
@pytest.mark.parametrize("path", ["scalar", "avx2", "avx512"])
def test_packed_kernel_long_patches_and_batches(path, monkeypatch):
    """Patches past the AVX2 path's 31-vector byte counters (600 ch × 5×5 = 250 words), padding
    wider than the kernel reaches, and a batch: every count still equals the float one."""
    if path not in _simd_paths():
        pytest.skip(f"this CPU has no {path} popcount")
    monkeypatch.setenv("CNNLAB_BINCONV_SIMD", path)
    g = torch.Generator().manual_seed(11)
    x = torch.randn(2, 600, 9, 11, generator=g)
    wt = torch.randn(6, 600, 5, 5, generator=g)
    got = xnor_counts(x, pack_weight(wt), 600, (5, 5), (2, 1), (3, 2), threads=2)
    want = float_counts(x, sign(wt), (2, 1), (3, 2))
    assert torch.equal(got.float(), want)


@needs_kernel
@pytest.mark.parametrize("path", ["scalar", "avx2", "avx512"])
def test_kernel_applies_alpha_k_and_bias_as_the_float_layer_does(path, monkeypatch):
    if path not in _simd_paths():
        pytest.skip(f"this CPU has no {path} popcount")
    monkeypatch.setenv("CNNLAB_BINCONV_SIMD", path)
    torch.manual_seed(12)
    conv = nn.Conv2d(70, 9, 3, stride=2, padding=1, bias=True)
    layer = _bn_stats_2d(BinaryConv2d.from_conv(conv, "xnor"))
    packed = PackedConv2d(layer)
    x = torch.randn(2, 70, 11, 9)
    got, want = packed(x), layer(x)
    assert got.dtype == torch.float32 and got.shape == want.shape
    assert torch.allclose(got, want, rtol=1e-6, atol=1e-6)
    alpha, k = packed.alpha, torch.rand(2, 1, 6, 5)
    with pytest.raises(ValueError, match="K the shape"):
        xnor_conv(x, packed.wbits, 70, (3, 3), (2, 2), (1, 1), (1, 1), alpha, k[:, :, :3])


def _bn_stats_2d(layer):
    with torch.no_grad():
        layer.train()
        layer(torch.randn(8, layer.in_channels, 11, 9))
    return layer.eval()


@needs_kernel
@pytest.mark.parametrize("name", ["lenet5_caffe", "resnet20"])
def test_packed_model_equals_float_simulation(name):
    torch.manual_seed(3)
    m = binarize(cnnlab.create_model(name, in_chans=1), "xnor")
    with torch.no_grad():  # non-trivial BN statistics
        m.train()
        m(torch.randn(8, 1, 28, 28))
    m.eval()
    x = torch.randn(3, 1, 28, 28)
    want = m(x)
    packed = pack_model(copy.deepcopy(m))
    assert not binary_layers(packed)
    assert torch.allclose(packed(x), want, rtol=1e-5, atol=1e-6)


def test_save_load_round_trip_stores_one_bit_per_weight(tmp_path):
    torch.manual_seed(4)
    m = binarize(cnnlab.create_model("lenet5_caffe"), "xnor")
    with torch.no_grad():
        m(torch.randn(4, 1, 28, 28))
    m.eval()
    path = tmp_path / "m.safetensors"
    size = save_binary(m, path, meta={"model": "lenet5_caffe", "config": {}})
    from safetensors import safe_open

    with safe_open(str(path), "pt") as f:
        bits = f.get_tensor("features.conv2.weight.bits")
        assert "features.conv2.weight" not in f.keys()
    assert bits.dtype == torch.uint8 and bits.shape == (50, (20 * 25 + 7) // 8)
    n_binary = 50 * 20 * 25 + 500 * 800
    n_real = sum(v.numel() for k, v in m.state_dict().items()
                 if k not in ("features.conv2.weight", "fc1.1.weight"))
    # 1 bit per binary weight, 4 B per real value and per alpha, a few KB of header
    assert size < n_binary / 8 + 4 * (n_real + 550) + 8_000
    back = load_binary(path)
    back.eval()
    x = torch.randn(2, 1, 28, 28)
    assert torch.allclose(back(x), m(x), rtol=1e-5, atol=1e-6)
    assert sorted(binary_layers(back)) == sorted(binary_layers(m))


def test_load_binary_rejects_a_foreign_file(tmp_path):
    from safetensors.torch import save_file

    path = tmp_path / "w.safetensors"
    save_file({"a": torch.zeros(2)}, str(path))
    with pytest.raises(ValueError, match="not a cnnlab binary"):
        load_binary(path)


def test_packed_model_without_the_c_kernel_uses_the_torch_path(monkeypatch):
    import cnnlab.compress.binary_kernel as bk

    monkeypatch.setattr(bk, "HAVE_KERNEL", False)
    monkeypatch.setattr(bk, "_binconv", None)
    torch.manual_seed(5)
    m = binarize(cnnlab.create_model("lenet5_caffe"), "xnor").eval()
    x = torch.randn(2, 1, 28, 28)
    want = m(x)
    packed = pack_model(copy.deepcopy(m))
    assert not hasattr(packed.features.conv2, "wbits")
    assert torch.allclose(packed(x), want, rtol=1e-5, atol=1e-6)
    with pytest.raises(RuntimeError, match="not built"):
        bk.pack_bits(x)


@pytest.fixture
def digits_checkpoint(tmp_path):
    from cnnlab.runspec import RunSpec
    from cnnlab.train import save_checkpoint

    torch.manual_seed(6)
    model = cnnlab.create_model("lenet5_modern", num_classes=10, in_chans=1)
    meta = RunSpec("lenet5_modern", {"num_classes": 10, "in_chans": 1}, (1, 32, 32), "digits",
                   300, 0).to_meta()
    return save_checkpoint(tmp_path / "dense.safetensors", model, meta=meta)


def test_cli_binarize_writes_one_bit_weights_and_the_checkpoint(digits_checkpoint, tmp_path,
                                                               capsys):
    import json

    from cnnlab.cli import main

    out = tmp_path / "bin"
    code = main(["binarize", "lenet5_modern", "--checkpoint", str(digits_checkpoint), "--mode",
                 "xnor", "--epochs", "0.04", "--batch-size", "64", "--out", str(out), "--json"])
    stdout, err = capsys.readouterr()
    assert code == 0, err
    res = json.loads(stdout.strip().splitlines()[-1])
    assert res["mode"] == "xnor" and res["binary_bytes"] * 8 < res["full_bytes"]
    assert sorted(p.name for p in out.iterdir()) == ["binary.safetensors", "last.json",
                                                     "last.safetensors", "metrics.jsonl"]
    back = load_binary(out / "binary.safetensors")
    assert {m.mode for m in binary_layers(back).values()} == {"xnor"}


def test_cli_binarize_bad_input_leaves_nothing(digits_checkpoint, tmp_path, capsys):
    from cnnlab.cli import main

    out = tmp_path / "bin"
    code = main(["binarize", "lenet5", "--checkpoint", str(digits_checkpoint), "--mode", "bwn",
                 "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and "holds lenet5_modern, not lenet5" in err
    assert len(err.strip().splitlines()) == 1
    out.mkdir()
    (out / "keep").write_text("x")
    code = main(["binarize", "lenet5_modern", "--checkpoint", str(digits_checkpoint), "--mode",
                 "bwn", "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and "not an empty directory" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bin", "dense.json",
                                                          "dense.safetensors"]
