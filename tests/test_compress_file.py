"""The .dcz file: bit-exact round trip and a clear error for every kind of damage."""

import struct
import zlib

import numpy as np
import pytest
import torch

import cnnlab
from cnnlab.compress import fileformat as ff
from cnnlab.compress.pipeline import build_file, decompress, load_compressed
from cnnlab.compress.prune import Pruner, prunable_layers
from cnnlab.models import create_model


def small_record_file() -> bytes:
    torch.manual_seed(0)
    w = torch.randn(12, 20)
    w[w.abs() < 1.0] = 0  # about a third survives; long gaps need fillers at span 4
    idx = torch.full(w.shape, 4, dtype=torch.long)
    nz = w != 0
    idx[nz] = torch.bucketize(w[nz], torch.tensor([-1.5, 0.0, 1.5]))
    codebook = torch.tensor([-2.0, -1.2, 1.2, 2.0])
    f = ff.DczFile("tiny", {"a": 1}, {}, [
        ff.compressed_record("w", codebook, idx, 4, index_bits=2, span_bits=2),
        ff.raw_record("b", torch.arange(5, dtype=torch.float32)),
        ff.raw_record("n", torch.tensor(7)),
    ])
    return ff.to_bytes(f)


@pytest.fixture(scope="module")
def lenet_file(tmp_path_factory):
    torch.manual_seed(0)
    model = create_model("lenet_300_100")
    pruner = Pruner(model)
    pruner.prune({ly.label: pruner_target(0.02) for ly in prunable_layers(model)})
    f = build_file(model, "lenet_300_100", {}, {"fc1": 5, "fc2": 5, "fc3": 5},
                   {"fc1": 5, "fc2": 5, "fc3": 5})
    path = tmp_path_factory.mktemp("dcz") / "lenet.dcz"
    path.write_bytes(ff.to_bytes(f))
    return path, f


def pruner_target(keep):
    from cnnlab.compress.prune import Target

    return Target(keep=keep)


def test_round_trip_is_bit_exact(lenet_file):
    path, f = lenet_file
    model = cnnlab.load_compressed(path)
    assert not model.training
    for t in f.tensors:
        got = model.state_dict()[t.name]
        assert torch.equal(got, ff.decode_tensor(t))
        if t.compressed:  # every stored weight is a codebook value or zero
            vals = set(np.unique(got.numpy()).tolist()) - {0.0}
            assert vals <= set(t.codebook.tolist())
    again = ff.to_bytes(ff.from_bytes(path.read_bytes()))
    assert again == path.read_bytes()  # re-encoding the parsed file reproduces it byte for byte


def test_decompress_writes_the_decoded_weights(lenet_file, tmp_path):
    from safetensors.torch import load_file

    path, _ = lenet_file
    out = tmp_path / "w.safetensors"
    decompress(path, out)
    model = load_compressed(path)
    loaded = load_file(out)
    assert set(loaded) == set(model.state_dict())
    assert all(torch.equal(loaded[k], v) for k, v in model.state_dict().items())


def test_every_flipped_byte_is_detected(lenet_file):
    data = lenet_file[0].read_bytes()
    for i in range(len(data)):
        bad = bytearray(data)
        bad[i] ^= 0x5A
        with pytest.raises(ff.CompressedFileError):
            ff.from_bytes(bytes(bad))


def test_every_truncation_and_any_extension_is_detected(lenet_file):
    data = lenet_file[0].read_bytes()
    for n in range(len(data)):
        with pytest.raises(ff.CompressedFileError, match="truncated|magic"):
            ff.from_bytes(data[:n])
    for extra in (b"\0", b"x" * 100, data):
        with pytest.raises(ff.CompressedFileError, match="trailing"):
            ff.from_bytes(data + extra)


def test_damage_behind_a_valid_checksum_is_a_clean_error():
    # a crafted file (checksum recomputed): the parser's bounds checks must hold on their own
    data = small_record_file()
    clean = ff.from_bytes(data).decode()
    outcomes = set()
    for i in range(len(data) - 4):
        for flip in (0x01, 0x80, 0xFF):
            bad = bytearray(data)
            bad[i] ^= flip
            bad[-4:] = struct.pack("<I", zlib.crc32(bytes(bad[:-4])))
            try:
                out = ff.from_bytes(bytes(bad)).decode()
                outcomes.add("decoded")  # e.g. a changed codebook value: still a valid file
                assert all(isinstance(v, torch.Tensor) for v in out.values())
            except ff.CompressedFileError:
                outcomes.add("error")
    assert outcomes == {"decoded", "error"}
    assert torch.equal(clean["b"], torch.arange(5, dtype=torch.float32))


def test_foreign_files(tmp_path):
    from safetensors.torch import save

    for blob, msg in [(b"", "magic"), (b"PK\x03\x04" + bytes(40), "magic"),
                      (save({"x": torch.zeros(3)}), "magic"),
                      (ff.MAGIC + struct.pack("<HHQ", 9, 0, 24) + bytes(4), "version")]:
        with pytest.raises(ff.CompressedFileError, match=msg):
            ff.from_bytes(blob)
    p = tmp_path / "x.dcz"
    p.write_bytes(b"hello")
    with pytest.raises(ValueError, match="magic"):
        load_compressed(p)


def test_file_of_another_model_is_rejected(lenet_file, tmp_path):
    _, f = lenet_file
    other = ff.DczFile("lenet5_caffe", {}, {}, f.tensors)
    p = tmp_path / "other.dcz"
    p.write_bytes(ff.to_bytes(other))
    with pytest.raises(ff.CompressedFileError, match="does not match model 'lenet5_caffe'"):
        load_compressed(p)


def test_no_output_file_when_the_input_is_damaged(lenet_file, tmp_path):
    data = bytearray(lenet_file[0].read_bytes())
    data[len(data) // 2] ^= 1
    p = tmp_path / "bad.dcz"
    p.write_bytes(bytes(data))
    out = tmp_path / "out.safetensors"
    with pytest.raises(ff.CompressedFileError, match="checksum"):
        decompress(p, out)
    assert list(tmp_path.iterdir()) == [p]


def test_cli_errors_exit_2(lenet_file, tmp_path, capsys):
    from cnnlab.cli import main

    p = tmp_path / "t.dcz"
    p.write_bytes(lenet_file[0].read_bytes()[:-1])
    assert main(["decompress", str(p), "-o", str(tmp_path / "o.safetensors")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("cnnlab: error: truncated") and err.count("\n") == 1
    assert not (tmp_path / "o.safetensors").exists()
