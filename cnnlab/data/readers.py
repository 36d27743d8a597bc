"""Readers for files on disk: MNIST / Fashion-MNIST IDX, CIFAR-10/100 (python and binary
batches), image folders. Nothing is downloaded; a missing or malformed file raises a one-line
``ValueError`` naming the files expected.

CIFAR's python batches are pickles: they are read by an unpickler that resolves only the
three numpy names an array needs (no other global, no code), never by ``pickle.load``.
"""

from __future__ import annotations

import gzip
import io
import os
import pickle
from pathlib import Path

import numpy as np
import torch

from cnnlab.data.core import DataSplit, TensorData, fit_split, register_dataset

# --- IDX (LeCun's MNIST format) -------------------------------------------------------------
_IDX_TYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def _read_bytes(path: Path) -> bytes:
    data = path.read_bytes()
    if data[:2] == b"\x1f\x8b":
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError) as e:
            raise ValueError(f"{path}: corrupt gzip file ({e})") from None
    return data


def read_idx(path: str | Path) -> np.ndarray:
    """An IDX file (gzip or raw) as a numpy array: magic 0 0 TYPE NDIM, NDIM big-endian
    int32 sizes, then the data."""
    path = Path(path)
    data = _read_bytes(path)
    if len(data) < 4 or data[0] or data[1] or data[2] not in _IDX_TYPES or not 1 <= data[3] <= 4:
        raise ValueError(f"{path}: not an IDX file (bad magic number)")
    ndim = data[3]
    if len(data) < 4 + 4 * ndim:
        raise ValueError(f"{path}: truncated IDX header")
    shape = tuple(int(v) for v in np.frombuffer(data, ">i4", ndim, 4))
    dtype = np.dtype(_IDX_TYPES[data[2]])
    need = 4 + 4 * ndim + int(np.prod(shape)) * dtype.itemsize
    if len(data) != need:
        raise ValueError(f"{path}: IDX header says {shape} ({need} bytes), file has {len(data)}")
    return np.frombuffer(data, dtype, offset=4 + 4 * ndim).reshape(shape).astype(
        dtype.newbyteorder("="))


def _find(root: Path, names: list[str]) -> Path | None:
    for n in names:
        for cand in (root / n, root / (n + ".gz")):
            if cand.is_file():
                return cand
    return None


def _check_dir(path: str | None, kind: str, expect: str) -> Path:
    if not path:
        raise ValueError(f"--data {kind} needs a directory: --data {kind}:DIR with {expect}")
    root = Path(path).expanduser()
    if not root.is_dir():
        raise ValueError(f"{kind} directory {path} not found (expected {expect})")
    return root


def _idx_pair(root: Path, prefix: str) -> TensorData | None:
    img = _find(root, [f"{prefix}-images-idx3-ubyte", f"{prefix}-images.idx3-ubyte"])
    lab = _find(root, [f"{prefix}-labels-idx1-ubyte", f"{prefix}-labels.idx1-ubyte"])
    if img is None and lab is None:
        return None
    if img is None or lab is None:
        raise ValueError(f"{root}: {prefix} images and labels must come together "
                         f"({prefix}-images-idx3-ubyte[.gz], {prefix}-labels-idx1-ubyte[.gz])")
    x, y = read_idx(img), read_idx(lab)
    if x.ndim != 3 or y.ndim != 1 or len(x) != len(y) or x.dtype != np.uint8:
        raise ValueError(f"{img}: expected N×H×W uint8 images and N labels, got {x.shape} "
                         f"{x.dtype} and {y.shape}")
    return TensorData(torch.from_numpy(x.copy())[:, None], torch.from_numpy(y.astype(np.int64)))


FASHION = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker",
           "Bag", "Ankle boot"]


def _load_idx_dir(path, kind, classes):
    expect = ("train-images-idx3-ubyte[.gz], train-labels-idx1-ubyte[.gz] and/or "
              "t10k-images-idx3-ubyte[.gz], t10k-labels-idx1-ubyte[.gz]")
    root = _check_dir(path, kind, expect)
    train, test = _idx_pair(root, "train"), _idx_pair(root, "t10k")
    if train is None and test is None:
        raise ValueError(f"no {kind} files in {root} (expected {expect})")
    val = test if test is not None else train.subset(torch.zeros(0, dtype=torch.long))
    if train is None:  # only the test files: --val-split carves a training set out of them
        train = test.subset(torch.zeros(0, dtype=torch.long))
    n = int(max(train.y.max() if len(train) else 0, val.y.max() if len(val) else 0)) + 1
    return DataSplit(train, val, num_classes=max(n, len(classes)), in_chans=1, name=kind,
                     classes=list(classes))


@register_dataset("mnist")
def load_mnist(path: str | None) -> DataSplit:
    """MNIST IDX files (gzip or raw) in DIR."""
    return _load_idx_dir(path, "mnist", [str(i) for i in range(10)])


@register_dataset("fashion")
def load_fashion(path: str | None) -> DataSplit:
    """Fashion-MNIST: the same IDX file names as MNIST."""
    return _load_idx_dir(path, "fashion", FASHION)


# --- CIFAR ----------------------------------------------------------------------------------
class _ArrayUnpickler(pickle.Unpickler):
    """Resolves only what a pickled numpy array needs (and latin1 bytes); any other global
    is refused, so a crafted file cannot run code."""

    def find_class(self, module, name):
        if (module, name) in {("numpy.core.multiarray", "_reconstruct"),
                              ("numpy._core.multiarray", "_reconstruct")}:
            return _reconstruct()
        if (module, name) == ("numpy", "ndarray"):
            return np.ndarray
        if (module, name) == ("numpy", "dtype"):
            return _plain_dtype
        if (module, name) == ("_codecs", "encode"):  # bytes pickled by Python 3, protocol 2
            return _latin1
        raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a data file")


def _reconstruct():
    import importlib

    try:
        return importlib.import_module("numpy._core.multiarray")._reconstruct
    except ImportError:  # numpy < 2
        return importlib.import_module("numpy.core.multiarray")._reconstruct


def _latin1(text, encoding="utf-8"):
    if encoding != "latin1" or not isinstance(text, str):
        raise pickle.UnpicklingError("refusing a codec call other than latin1 bytes")
    return text.encode("latin1")


def _plain_dtype(*args, **kwargs):
    dt = np.dtype(*args, **kwargs)
    if dt.hasobject:
        raise pickle.UnpicklingError("refusing object arrays in a data file")
    return dt


def safe_unpickle(data: bytes):
    """Unpickle plain containers and numpy arrays only (CIFAR batches were pickled by
    Python 2: ``encoding="bytes"`` keeps their str keys as bytes)."""
    return _ArrayUnpickler(io.BytesIO(data), encoding="bytes").load()


def _cifar_python(file: Path, label_key: bytes) -> TensorData:
    try:
        d = safe_unpickle(_read_bytes(file))
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError,
            IndexError, KeyError) as e:
        raise ValueError(f"{file}: not a CIFAR python batch ({e})") from None
    if not isinstance(d, dict):
        raise ValueError(f"{file}: not a CIFAR python batch (no dict)")
    d = {(k.decode() if isinstance(k, bytes) else k): v for k, v in d.items()}
    key = label_key.decode()
    if "data" not in d or key not in d:
        raise ValueError(f"{file}: CIFAR batch without 'data' and '{key}' entries")
    x = np.asarray(d["data"])
    y = np.asarray(d[key], dtype=np.int64)
    if x.dtype != np.uint8 or x.ndim != 2 or x.shape[1] != 3072 or len(x) != len(y):
        raise ValueError(f"{file}: expected N×3072 uint8 data and N labels, got {x.shape}")
    return TensorData(torch.from_numpy(x.reshape(-1, 3, 32, 32).copy()), torch.from_numpy(y))


def _cifar_bin(file: Path, label_bytes: int, fine: bool = True) -> TensorData:
    raw = np.frombuffer(_read_bytes(file), np.uint8)
    rec = label_bytes + 3072
    if raw.size == 0 or raw.size % rec:
        raise ValueError(f"{file}: size {raw.size} is not a multiple of a {rec}-byte CIFAR record")
    raw = raw.reshape(-1, rec)
    y = raw[:, label_bytes - 1 if fine else 0].astype(np.int64)
    x = raw[:, label_bytes:].reshape(-1, 3, 32, 32)
    return TensorData(torch.from_numpy(x.copy()), torch.from_numpy(y))


def _cat(parts: list[TensorData]) -> TensorData:
    return TensorData(torch.cat([p.x for p in parts]), torch.cat([p.y for p in parts]))


def _meta_names(file: Path | None, key: bytes) -> list[str]:
    if file is None or not file.is_file():
        return []
    try:
        d = safe_unpickle(_read_bytes(file))
        return [n.decode() if isinstance(n, bytes) else str(n) for n in d[key]]
    except Exception:  # names are cosmetic: a bad meta file must not stop training
        return []


def _load_cifar(path, n_classes: int, labels: str = "fine") -> DataSplit:
    kind = f"cifar{n_classes}"
    if n_classes == 10:
        py_train, py_test = [f"data_batch_{i}" for i in range(1, 6)], ["test_batch"]
        subdirs, meta, key = ["cifar-10-batches-py", "cifar-10-batches-bin"], "batches.meta", \
            b"label_names"
        expect = ("data_batch_1..5 + test_batch (python) or data_batch_1..5.bin + "
                  "test_batch.bin (binary)")
    else:
        py_train, py_test = ["train"], ["test"]
        subdirs, meta = ["cifar-100-python", "cifar-100-binary"], "meta"
        key = b"fine_label_names" if labels == "fine" else b"coarse_label_names"
        expect = "train + test (python) or train.bin + test.bin (binary)"
    if labels not in ("fine", "coarse"):
        raise ValueError(f"labels must be 'fine' or 'coarse', got {labels!r}")
    root = _check_dir(path, kind, expect)
    roots = [root] + [root / s for s in subdirs if (root / s).is_dir()]
    label_key = b"labels" if n_classes == 10 else (b"fine_labels" if labels == "fine"
                                                   else b"coarse_labels")
    found = None
    for r in roots:
        for suffix in ("", ".bin"):
            tr = [_find(r, [f + suffix]) for f in py_train]
            te = [_find(r, [f + suffix]) for f in py_test]
            if all(tr) or all(te):
                found = (r, suffix, tr if all(tr) else None, te if all(te) else None)
                break
        if found:
            break
    if found is None:
        raise ValueError(f"no {kind} files in {root} (expected {expect})")
    r, suffix, tr, te = found

    def read(files):
        if files is None:
            return None
        if suffix:
            return _cat([_cifar_bin(f, 1 if n_classes == 10 else 2, labels == "fine")
                         for f in files])
        return _cat([_cifar_python(f, label_key) for f in files])

    if suffix:
        txt = r / ("batches.meta.txt" if n_classes == 10 else f"{labels}_label_names.txt")
        names = [w for w in txt.read_text().split() if w] if txt.is_file() else []
    else:
        names = _meta_names(_find(r, [meta]), key)
    train, test = read(tr), read(te)
    empty = (test if train is None else train).subset(torch.zeros(0, dtype=torch.long))
    train = train if train is not None else empty
    test = test if test is not None else empty
    n = 20 if labels == "coarse" else n_classes
    return DataSplit(train, test, num_classes=n, in_chans=3, name=kind, classes=names[:n])


@register_dataset("cifar10")
def load_cifar10(path: str | None) -> DataSplit:
    return _load_cifar(path, 10)


@register_dataset("cifar100")
def load_cifar100(path: str | None, labels: str = "fine") -> DataSplit:
    return _load_cifar(path, 100, labels)


# --- image folders --------------------------------------------------------------------------
IMAGE_EXTS = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".ppm", ".pgm", ".webp", ".tif", ".tiff"}


def _decode(args) -> np.ndarray:
    """Decode one image (in a worker process): RGB or L, short side to ``side``, centre crop."""
    from PIL import Image

    file, mode, side = args
    try:
        with Image.open(file) as im:
            im = im.convert(mode)
            if side:
                w, h = im.size
                s = side / min(w, h)
                nw, nh = max(side, round(w * s)), max(side, round(h * s))
                if (nw, nh) != (w, h):
                    im = im.resize((nw, nh), Image.BILINEAR)
                left, top = (nw - side) // 2, (nh - side) // 2
                im = im.crop((left, top, left + side, top + side))
            a = np.asarray(im, dtype=np.uint8)
    except OSError as e:
        raise ValueError(f"{file}: cannot decode image ({e})") from None
    return a[:, :, None] if a.ndim == 2 else a


def _scan(root: Path) -> tuple[list[str], list[tuple[str, int]]]:
    classes = sorted(d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    items = [(str(f), i) for i, c in enumerate(classes) for f in sorted((root / c).rglob("*"))
             if f.suffix.lower() in IMAGE_EXTS and f.is_file()]
    return classes, items


def read_folder(root: Path, classes: list[str] | None, mode: str, side: int | None,
                workers: int | None = None) -> tuple[TensorData, list[str]]:
    found, items = _scan(root)
    classes = classes or found
    if found != classes:
        raise ValueError(f"{root}: class folders {found} differ from the training set's")
    if not items:
        raise ValueError(f"no images in {root} (expected DIR/<class>/*.png|jpg, one folder "
                         "per class)")
    if side is None:
        from PIL import Image

        with Image.open(items[0][0]) as im:
            side = min(im.size)
    jobs = [(f, mode, side) for f, _ in items]
    workers = workers if workers is not None else min(os.cpu_count() or 1, 8)
    if workers > 1 and len(jobs) >= 256:
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(workers) as pool:
            arrays = list(pool.map(_decode, jobs, chunksize=64))
    else:
        arrays = [_decode(j) for j in jobs]
    x = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()
    y = torch.tensor([c for _, c in items], dtype=torch.long)
    return TensorData(x, y), classes


@register_dataset("folder")
def load_folder(path: str | None, input_size: tuple[int, ...] | None = None,
                workers: int | None = None) -> DataSplit:
    """DIR/<class>/*.jpg (one folder per class), or DIR/train/<class>/ and DIR/val/<class>/.
    Images decode in worker processes, short side resized to the model input's side (or to
    the first image's short side) and centre-cropped to a square."""
    expect = "DIR/<class>/*.jpg|png, or DIR/train/<class>/ and DIR/val/<class>/"
    root = _check_dir(path, "folder", expect)
    mode = "L" if input_size is not None and input_size[0] == 1 else "RGB"
    side = max(input_size[-2:]) if input_size is not None else None
    if (root / "train").is_dir():
        train, classes = read_folder(root / "train", None, mode, side, workers)
        side = side or train.x.shape[-1]
        vdir = next((root / d for d in ("val", "valid", "test") if (root / d).is_dir()), None)
        val = read_folder(vdir, classes, mode, side, workers)[0] if vdir else \
            train.subset(torch.zeros(0, dtype=torch.long))
    else:
        val, classes = read_folder(root, None, mode, side, workers)
        train = val.subset(torch.zeros(0, dtype=torch.long))
    if len(classes) < 2:
        raise ValueError(f"{root}: found {len(classes)} class folder(s); expected {expect}")
    split = DataSplit(train, val, num_classes=len(classes), in_chans=train.x.shape[1],
                      name="folder", classes=classes)
    return fit_split(split, input_size) if input_size is not None else split
