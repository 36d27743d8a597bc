import gzip
import pickle

import numpy as np
import pytest
import torch

from cnnlab.data import DataSplit, TensorData, fit_images, load_dataset, register_dataset
from cnnlab.data.augment import (
    BatchAugment,
    cutout,
    parse_augment,
    pca_basis,
    random_crop,
    random_flip,
    random_scale,
)
from cnnlab.data.loader import BatchLoader
from cnnlab.data.readers import read_idx, safe_unpickle


def idx_bytes(a: np.ndarray) -> bytes:
    code = {np.uint8: 0x08, np.int32: 0x0C}[a.dtype.type]
    head = bytes([0, 0, code, a.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in a.shape)
    return head + a.astype(a.dtype.newbyteorder(">")).tobytes()


def write_mnist(d, prefix, n, gz, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
    y = rng.integers(0, 10, n).astype(np.uint8)
    for kind, a, nd in (("images", x, 3), ("labels", y, 1)):
        data = idx_bytes(a)
        name = d / f"{prefix}-{kind}-idx{nd}-ubyte"
        if gz:
            (d / (name.name + ".gz")).write_bytes(gzip.compress(data))
        else:
            name.write_bytes(data)
    return x, y


@pytest.mark.parametrize("gz", [True, False])
def test_idx_reader_raw_and_gzip(tmp_path, gz):
    x, y = write_mnist(tmp_path, "train", 30, gz)
    write_mnist(tmp_path, "t10k", 12, gz, seed=1)
    split = load_dataset(f"mnist:{tmp_path}")
    assert split.train.x.shape == (30, 1, 28, 28) and split.train.x.dtype == torch.uint8
    assert np.array_equal(split.train.x[:, 0].numpy(), x)
    assert np.array_equal(split.train.y.numpy(), y) and len(split.val) == 12
    a = np.arange(24, dtype=np.int32).reshape(2, 3, 4)
    (tmp_path / "ints.idx").write_bytes(idx_bytes(a))
    assert np.array_equal(read_idx(tmp_path / "ints.idx"), a)


def test_idx_malformed_and_missing_files_are_one_line_errors(tmp_path):
    with pytest.raises(ValueError, match="train-images-idx3-ubyte"):
        load_dataset(f"mnist:{tmp_path}")  # empty directory: names the files expected
    with pytest.raises(ValueError, match="not found.*t10k-images"):
        load_dataset(f"mnist:{tmp_path}/nowhere")
    with pytest.raises(ValueError, match="needs a directory"):
        load_dataset("mnist")
    write_mnist(tmp_path, "t10k", 5, gz=False)
    f = tmp_path / "t10k-images-idx3-ubyte"
    f.write_bytes(f.read_bytes()[:-7])
    with pytest.raises(ValueError, match="IDX header says"):
        load_dataset(f"mnist:{tmp_path}")
    f.write_bytes(b"\x01\x02garbage")
    with pytest.raises(ValueError, match="not an IDX file"):
        load_dataset(f"mnist:{tmp_path}")
    with pytest.raises(ValueError, match="unknown dataset 'imagenet'"):
        load_dataset("imagenet:/x")


def test_real_mnist_val_split_is_seeded_and_disjoint():
    a = load_dataset("mnist:data/mnist", val_split=2000, seed=0)
    b = load_dataset("mnist:data/mnist", val_split=2000, seed=0)
    c = load_dataset("mnist:data/mnist", val_split=2000, seed=1)
    assert (len(a.train), len(a.val), a.num_classes, a.in_chans) == (8000, 2000, 10, 1)
    assert torch.equal(a.val.x, b.val.x) and not torch.equal(a.val.x, c.val.x)
    assert set(a.train.y.tolist()) == set(range(10))
    # disjoint: no validation image also in training (compare by content hash)
    h = lambda t: {hash(r.numpy().tobytes()) for r in t.x}  # noqa: E731
    assert not h(a.train) & h(a.val)
    assert 0.05 < a.train.mean[0] < 0.2  # MNIST's mean intensity ≈ 0.13
    with pytest.raises(ValueError, match="leaves no training images"):
        load_dataset("mnist:data/mnist", val_split=10000)


def cifar_arrays(n, seed=0, classes=10):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, 3072), dtype=np.uint8), rng.integers(0, classes, n)


def test_cifar10_python_batches_through_the_restricted_unpickler(tmp_path):
    d = tmp_path / "cifar-10-batches-py"
    d.mkdir()
    for i in range(1, 6):
        x, y = cifar_arrays(4, i)
        (d / f"data_batch_{i}").write_bytes(pickle.dumps(
            {b"batch_label": b"x", b"data": x, b"labels": [int(v) for v in y]}, protocol=2))
    x, y = cifar_arrays(6, 9)
    (d / "test_batch").write_bytes(pickle.dumps({b"data": x, b"labels": y.tolist()}))
    names = [f"c{i}".encode() for i in range(10)]
    (d / "batches.meta").write_bytes(pickle.dumps({b"label_names": names}, protocol=2))
    split = load_dataset(f"cifar10:{tmp_path}")
    assert split.train.x.shape == (20, 3, 32, 32) and len(split.val) == 6
    assert torch.equal(split.val.x.reshape(6, -1), torch.from_numpy(x))
    assert split.val.y.tolist() == y.tolist() and split.classes[3] == "c3"


def test_restricted_unpickler_refuses_code(tmp_path):
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            import os
            return (os.system, (f"touch {marker}",))

    payload = pickle.dumps({b"data": Evil(), b"labels": [0]})
    with pytest.raises(pickle.UnpicklingError, match="refusing"):
        safe_unpickle(payload)
    (tmp_path / "test_batch").write_bytes(payload)
    with pytest.raises(ValueError, match="not a CIFAR python batch"):
        load_dataset(f"cifar10:{tmp_path}")
    assert not marker.exists()
    obj = pickle.dumps({b"data": np.array([object()], dtype=object), b"labels": [0]})
    with pytest.raises(pickle.UnpicklingError):
        safe_unpickle(obj)


def test_cifar_binary_formats(tmp_path):
    x, y = cifar_arrays(5)
    rec = np.concatenate([y[:, None].astype(np.uint8), x], 1)
    for i in range(1, 6):
        (tmp_path / f"data_batch_{i}.bin").write_bytes(rec.tobytes())
    (tmp_path / "test_batch.bin").write_bytes(rec[:3].tobytes())
    s = load_dataset(f"cifar10:{tmp_path}")
    assert len(s.train) == 25 and s.train.y[:5].tolist() == y.tolist()
    assert torch.equal(s.val.x.reshape(3, -1), torch.from_numpy(x[:3]))
    d = tmp_path / "c100"
    d.mkdir()
    fine, coarse = np.arange(5) * 7, np.arange(5) * 3
    rec = np.concatenate([coarse[:, None], fine[:, None], x], 1).astype(np.uint8)
    (d / "train.bin").write_bytes(rec.tobytes())
    (d / "test.bin").write_bytes(rec.tobytes())
    s = load_dataset(f"cifar100:{d}")
    assert s.num_classes == 100 and s.train.y.tolist() == fine.tolist()
    assert load_dataset(f"cifar100:{d}", labels="coarse").train.y.tolist() == coarse.tolist()
    (d / "test.bin").write_bytes(rec.tobytes()[:-5])
    with pytest.raises(ValueError, match="3074-byte CIFAR record"):
        load_dataset(f"cifar100:{d}")


def test_image_folder_decodes_in_workers(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(0)
    for part, n in (("train", 130), ("val", 4)):
        for c in ("cat", "dog"):
            (tmp_path / part / c).mkdir(parents=True)
            for i in range(n):
                a = rng.integers(0, 256, (12 + i % 3, 10, 3), dtype=np.uint8)
                Image.fromarray(a).save(tmp_path / part / c / f"{i}.png")
    s = load_dataset(f"folder:{tmp_path}", input_size=(3, 8, 8), workers=2)
    assert s.train.x.shape == (260, 3, 8, 8) and s.val.x.shape == (8, 3, 8, 8)
    assert s.classes == ["cat", "dog"] and s.train.y.bincount().tolist() == [130, 130]
    g = load_dataset(f"folder:{tmp_path / 'val'}", val_split=2, input_size=(1, 6, 6))
    assert (len(g.train), len(g.val), g.in_chans) == (6, 2, 1)
    (tmp_path / "val" / "cat" / "bad.png").write_bytes(b"not a png")
    with pytest.raises(ValueError, match="cannot decode"):
        load_dataset(f"folder:{tmp_path / 'val'}")


def test_digits_default_and_fitting():
    s = load_dataset("digits")
    assert (len(s.train), len(s.val), s.num_classes) == (1437, 360, 10)
    assert s.train.x.shape[1:] == (1, 8, 8) and int(s.train.x.max()) == 255
    f = load_dataset("digits", input_size=(1, 32, 32))
    assert f.train.x.shape[1:] == (1, 32, 32)
    assert f.train.x[:, :, :2].sum() == 0  # digit scaled to 28 and centred in 32, as MNIST
    m = torch.randint(0, 256, (2, 1, 28, 28), dtype=torch.uint8)
    p = fit_images(m, (1, 32, 32))
    assert torch.equal(p[:, :, 2:30, 2:30], m) and p.sum() == m.sum()  # LeCun's padding
    rgb = fit_images(m, (3, 28, 28))
    assert torch.equal(rgb[:, 2], m[:, 0])
    big = fit_images(torch.rand(2, 3, 64, 48), (3, 32, 32))
    assert big.shape == (2, 3, 32, 32)


def test_register_dataset_with_dense_targets():
    @register_dataset("toy-seg")
    def toy(path, size=10):
        x = torch.arange(size * 16, dtype=torch.float32).view(size, 1, 4, 4)
        y = (x[:, 0] > 50).long()
        empty = TensorData(x[:0], y[:0])
        return DataSplit(TensorData(x, y), empty, num_classes=2, in_chans=1, name="toy")

    s = load_dataset("toy-seg", val_split=3, size=12, input_size=(1, 8, 8))
    assert (len(s.train), len(s.val)) == (9, 3)
    assert s.train.x.shape[1:] == (1, 8, 8) and s.train.y.shape[1:] == (8, 8)
    with pytest.raises(ValueError, match="registered twice"):
        register_dataset("toy-seg")(toy)


def test_batch_augmentations():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(64, 3, 8, 8)
    c = random_crop(x, 2, (8, 8), g)
    padded = torch.nn.functional.pad(x, (2, 2, 2, 2))
    for i in range(0, 64, 9):  # each output is some 8x8 window of its own padded image
        wins = padded[i].unfold(1, 8, 1).unfold(2, 8, 1)  # C, 5, 5, 8, 8
        assert any(torch.equal(wins[:, a, b], c[i]) for a in range(5) for b in range(5))
    f = random_flip(x, g)
    same = (f == x).flatten(1).all(1)
    assert 10 < same.sum() < 54 and torch.equal(f[~same], x[~same].flip(-1))
    k = cutout(x + 1, 4, g)
    zeros = (k == 0).flatten(1).sum(1) // 3
    assert zeros.max() == 16 and zeros.min() >= 4  # 4x4 squares, clipped at borders
    s, _ = random_scale(x, 1.0, 1.0, g)
    assert torch.allclose(s, x, atol=1e-5)  # s = 1: identity
    assert random_scale(x, 0.5, 2.0, g)[0].shape == x.shape
    val, vec = pca_basis((x * 255).to(torch.uint8))
    aug = BatchAugment("pca:0.1", pca=(val, vec))
    d = aug.pre(x, g) - x
    assert torch.allclose(d, d[:, :, :1, :1].expand_as(d), atol=1e-6)  # one RGB shift/image
    assert parse_augment("crop:4, flip,scale:0.8-1.2") == {"crop": 4, "flip": True,
                                                           "scale": (0.8, 1.2)}
    for bad in ("crop", "crop:-1", "spin", "flip:2", "scale:2-1"):
        with pytest.raises(ValueError):
            parse_augment(bad)


def test_dense_targets_move_with_the_pixels():
    g = torch.Generator().manual_seed(1)
    x = torch.rand(16, 3, 12, 12) * 0.9 + 0.05
    y = (x[:, 0] * 10).long()  # a label map read off the image itself
    xa, ya = BatchAugment("crop:3,flip").pre(x.clone(), g, y)
    inside = ya != 255
    assert (~inside).any() and inside.float().mean() > 0.5
    assert (xa[:, 0][~inside] == 0).all()  # outside pixels: zero padding, label 255 (void)
    assert torch.equal(ya[inside], (xa[:, 0] * 10).long()[inside])
    xs, ys = BatchAugment("scale:0.5-0.7").pre(x.clone(), g, y)
    assert xs.shape == x.shape and ys.shape == y.shape and (ys == 255).any()
    data = TensorData((x * 255).to(torch.uint8), y)
    xb, yb = next(BatchLoader(data, 8, train=True, augment="crop:2,flip", out_size=(8, 8))
                  .epoch(0))
    assert xb.shape == (8, 3, 8, 8) and yb.shape == (8, 8, 8)


def test_loader_epochs_and_shards():
    data = TensorData(torch.arange(10, dtype=torch.uint8).view(10, 1, 1, 1).expand(10, 1, 2, 2)
                      .contiguous(), torch.arange(10))
    ld = BatchLoader(data, 4, train=True, seed=3, normalize=False)
    assert len(ld) == 2  # drop_last in training
    e0 = [y for _, y in ld.epoch(0)]
    assert torch.equal(torch.cat(e0), torch.cat([y for _, y in ld.epoch(0)]))
    assert not torch.equal(torch.cat(e0), torch.cat([y for _, y in ld.epoch(1)]))
    ranks = [BatchLoader(data, 4, train=True, seed=3, rank=r, world=2) for r in (0, 1)]
    got = [set(ld.indices(5).tolist()) for ld in ranks]
    assert not got[0] & got[1] and got[0] | got[1] == set(range(10))
    ev = [BatchLoader(data, 3, world=3, rank=r) for r in range(3)]
    ys = torch.cat([y for ld in ev for _, y in ld.epoch(0)])
    assert sorted(ys.tolist()) == list(range(10))  # evaluation: each image exactly once
    x, _ = next(BatchLoader(data, 10).epoch(0))
    assert x.dtype == torch.float32 and x.max() == pytest.approx(9 / 255)
