"""The ``.dcz`` file: a Deep-Compressed model that loads back without the original.

Layout (all integers little-endian)::

    magic      8  b"\\x89DCZ\\r\\n\\x1a\\n"
    version    u16 (1), flags u16 (0)
    file size  u64: the whole file, checksum included (a longer or shorter file is an error)
    meta       u32 length + UTF-8 JSON: {"model": registered name, "config": builder kwargs,
               "info": {...}}
    tensors    u32 count, then per tensor (in state-dict order):
      name       u16 length + UTF-8
      kind       u8: 0 raw, 1 deep-compressed;  dtype u8;  ndim u8;  shape u32 × ndim
      raw        u64 byte count + the tensor's bytes (biases, BN parameters and buffers)
      compressed index bits u8, span bits u8, codebook size k u32, codebook f32 × k,
                 entries u32 (non-zeros + filler zeros), then two Huffman streams:
                 index differences (alphabet 2**span + 1) and cluster indices (alphabet
                 k + 1, symbol k = filler zero)
      stream     code lengths as nibbles, bit count u64, symbols per chunk u16,
                 chunk bit lengths u16 × (chunks − 1), payload bytes
    checksum   u32: CRC-32 of everything before it

Any damaged, truncated, extended or foreign file raises :class:`CompressedFileError` (a
``ValueError``) naming the problem: the size and checksum are checked before anything is
parsed, and every length and value is bounds-checked while parsing.
"""

from __future__ import annotations

import json
import struct
import zlib
from dataclasses import dataclass, field

import numpy as np
import torch

from cnnlab.compress import huffman
from cnnlab.compress.sparse import positions_from_diffs

MAGIC = b"\x89DCZ\r\n\x1a\n"
VERSION = 1
RAW, COMPRESSED = 0, 1
DTYPES = [torch.float32, torch.float16, torch.bfloat16, torch.float64, torch.int64,
          torch.int32, torch.int16, torch.int8, torch.uint8, torch.bool]
MAX_NUMEL = 1 << 34
_HEAD = struct.Struct("<8sHHQ")


class CompressedFileError(ValueError):
    """A ``.dcz`` file that is damaged, truncated, extended or not a ``.dcz`` file."""


@dataclass
class Stream:
    lengths: np.ndarray  # code length per symbol
    bits: huffman.Bitstream


@dataclass
class TensorRecord:
    name: str
    shape: tuple[int, ...]
    dtype: torch.dtype
    raw: bytes | None = None  # kind RAW
    index_bits: int = 0  # kind COMPRESSED
    span_bits: int = 0
    codebook: np.ndarray | None = None  # float32 (k,)
    entries: int = 0
    diffs: Stream | None = None
    index: Stream | None = None
    offset: int = 0  # where the record starts in the file
    size: int = 0  # bytes the record takes

    @property
    def numel(self) -> int:
        n = 1
        for s in self.shape:
            n *= s
        return n

    @property
    def compressed(self) -> bool:
        return self.raw is None


@dataclass
class DczFile:
    model: str
    config: dict
    info: dict = field(default_factory=dict)
    tensors: list[TensorRecord] = field(default_factory=list)
    size: int = 0

    def decode(self) -> dict[str, torch.Tensor]:
        return {t.name: decode_tensor(t) for t in self.tensors}


# --- building records ----------------------------------------------------------------------
def _stream(symbols: np.ndarray, alphabet: int) -> Stream:
    lengths = huffman.code_lengths(np.bincount(symbols, minlength=alphabet)[:alphabet])
    return Stream(lengths, huffman.encode(symbols, lengths))


def compressed_record(name: str, codebook, index, k: int, index_bits: int,
                      span_bits: int) -> TensorRecord:
    """Record of a weight tied to ``codebook`` by ``index`` (``index == k``: pruned)."""
    idx = torch.as_tensor(index).reshape(-1).cpu().numpy().astype(np.int64)
    cb = torch.as_tensor(codebook).detach().float().cpu().numpy()
    if len(cb) != k or k > 1 << index_bits or not 1 <= span_bits <= 12:
        raise ValueError(f"{name}: inconsistent codebook size, index bits or span bits")
    from cnnlab.compress.sparse import relative_indices

    pos = np.flatnonzero(idx < k)
    diffs, filler = relative_indices(pos, 1 << span_bits)
    sym = np.full(len(diffs), k, dtype=np.int64)
    sym[~filler] = idx[pos]
    return TensorRecord(name, tuple(index.shape), torch.float32, index_bits=index_bits,
                        span_bits=span_bits, codebook=cb, entries=len(diffs),
                        diffs=_stream(diffs, (1 << span_bits) + 1), index=_stream(sym, k + 1))


def raw_record(name: str, tensor: torch.Tensor) -> TensorRecord:
    t = tensor.detach().cpu().contiguous()
    if t.dtype not in DTYPES:
        raise ValueError(f"{name}: dtype {t.dtype} cannot be stored")
    data = t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b""
    return TensorRecord(name, tuple(t.shape), t.dtype, raw=data)


def decode_tensor(t: TensorRecord) -> torch.Tensor:
    if not t.compressed:
        buf = bytearray(t.raw)
        flat = torch.frombuffer(buf, dtype=t.dtype) if buf else torch.zeros(0, dtype=t.dtype)
        return flat.reshape(t.shape).clone()
    k = len(t.codebook)
    try:
        diffs = huffman.decode(t.diffs.bits, t.diffs.lengths)
        sym = huffman.decode(t.index.bits, t.index.lengths)
        pos = positions_from_diffs(diffs, 1 << t.span_bits, t.numel)
    except ValueError as e:
        raise CompressedFileError(f"tensor {t.name!r}: {e}") from None
    out = np.zeros(t.numel, dtype=np.float32)
    real = sym < k
    out[pos[real]] = t.codebook[sym[real]]
    return torch.from_numpy(out).reshape(t.shape)


# --- writing -------------------------------------------------------------------------------
def _pack_stream(s: Stream) -> bytes:
    b = s.bits
    return b"".join([huffman.pack_lengths(s.lengths), struct.pack("<QH", b.nbits, b.sync_every),
                     b.sync_deltas.astype("<u2").tobytes(), b.payload])


def _pack_record(t: TensorRecord) -> bytes:
    name = t.name.encode()
    parts = [struct.pack("<H", len(name)), name,
             struct.pack("<BBB", RAW if t.raw is not None else COMPRESSED,
                         DTYPES.index(t.dtype), len(t.shape)),
             struct.pack(f"<{len(t.shape)}I", *t.shape)]
    if t.raw is not None:
        parts += [struct.pack("<Q", len(t.raw)), t.raw]
    else:
        parts += [struct.pack("<BBI", t.index_bits, t.span_bits, len(t.codebook)),
                  t.codebook.astype("<f4").tobytes(), struct.pack("<I", t.entries),
                  _pack_stream(t.diffs), _pack_stream(t.index)]
    return b"".join(parts)


def to_bytes(f: DczFile) -> bytes:
    meta = json.dumps({"model": f.model, "config": f.config, "info": f.info},
                      sort_keys=True, separators=(",", ":")).encode()
    body = [struct.pack("<I", len(meta)), meta, struct.pack("<I", len(f.tensors))]
    pos = _HEAD.size + len(meta) + 8
    for t in f.tensors:
        rec = _pack_record(t)
        t.offset, t.size = pos, len(rec)
        pos += len(rec)
        body.append(rec)
    total = pos + 4
    data = _HEAD.pack(MAGIC, VERSION, 0, total) + b"".join(body)
    f.size = total
    return data + struct.pack("<I", zlib.crc32(data))


def write(path, f: DczFile) -> int:
    """Write atomically; returns the file size in bytes."""
    from cnnlab.io import write_bytes_atomic

    data = to_bytes(f)
    write_bytes_atomic(path, data)
    return len(data)


# --- reading -------------------------------------------------------------------------------
class _Reader:
    def __init__(self, data: memoryview, start: int, end: int):
        self.data, self.pos, self.end = data, start, end

    def take(self, n: int, what: str) -> memoryview:
        if n < 0 or self.pos + n > self.end:
            raise CompressedFileError(f"truncated {what} at byte {self.pos} (needs {n} bytes)")
        out = self.data[self.pos:self.pos + n]
        self.pos += n
        return out

    def unpack(self, fmt: str, what: str):
        s = struct.Struct("<" + fmt)
        return s.unpack(self.take(s.size, what))


def check_bytes(data: bytes) -> None:
    """Magic, version, size and checksum of a whole file (before any parsing)."""
    if len(data) < _HEAD.size + 4 or data[:8] != MAGIC:
        raise CompressedFileError("not a .dcz file (bad magic)" if data[:8] != MAGIC
                                  else "truncated .dcz file (shorter than its header)")
    _, version, flags, total = _HEAD.unpack_from(data)
    if version != VERSION:
        raise CompressedFileError(f"unsupported .dcz version {version} (this reads {VERSION})")
    if len(data) < total:
        raise CompressedFileError(f"truncated .dcz file: {len(data)} of {total} bytes")
    if len(data) > total:
        raise CompressedFileError(f"{len(data) - total} trailing bytes after the .dcz data")
    if zlib.crc32(data[:-4]) != struct.unpack("<I", data[-4:])[0]:
        raise CompressedFileError("checksum mismatch: the .dcz file is corrupt")
    if flags:
        raise CompressedFileError(f"unknown .dcz flags {flags:#x}")


def _read_stream(r: _Reader, alphabet: int, count: int, what: str) -> Stream:
    lengths = huffman.unpack_lengths(r.take((alphabet + 1) // 2, f"{what} table"), alphabet)
    try:
        huffman.check_lengths(lengths)
    except ValueError as e:
        raise CompressedFileError(f"{what}: {e}") from None
    nbits, every = r.unpack("QH", f"{what} header")
    if every == 0 or every * huffman.MAX_LEN >= huffman.SYNC_DELTA_LIMIT:
        raise CompressedFileError(f"{what}: bad chunk size {every}")
    if nbits > 8 * (r.end - r.pos) or nbits > count * huffman.MAX_LEN or nbits < count:
        raise CompressedFileError(f"{what}: bit count {nbits} does not fit {count} symbols")
    chunks = -(-count // every) if count else 0
    deltas = np.frombuffer(r.take(2 * max(chunks - 1, 0), f"{what} sync points"), "<u2")
    payload = bytes(r.take((nbits + 7) // 8, f"{what} bitstream"))
    return Stream(lengths, huffman.Bitstream(payload, nbits, count, every, deltas.copy()))


def _read_record(r: _Reader) -> TensorRecord:
    start = r.pos
    (n,) = r.unpack("H", "tensor name")
    try:
        name = bytes(r.take(n, "tensor name")).decode()
    except UnicodeDecodeError:
        raise CompressedFileError(f"tensor name at byte {start} is not UTF-8") from None
    kind, dt, ndim = r.unpack("BBB", f"header of {name!r}")
    if kind not in (RAW, COMPRESSED) or dt >= len(DTYPES) or ndim > 8:
        raise CompressedFileError(f"bad header of tensor {name!r}")
    shape = tuple(r.unpack(f"{ndim}I", f"shape of {name!r}"))
    t = TensorRecord(name, shape, DTYPES[dt], offset=start)
    if t.numel > MAX_NUMEL:
        raise CompressedFileError(f"tensor {name!r} claims {t.numel} entries")
    if kind == RAW:
        (nbytes,) = r.unpack("Q", f"size of {name!r}")
        if nbytes != t.numel * t.dtype.itemsize:
            raise CompressedFileError(f"tensor {name!r}: {nbytes} bytes for shape {shape}")
        t.raw = bytes(r.take(nbytes, f"data of {name!r}"))
    else:
        if t.dtype != torch.float32:
            raise CompressedFileError(f"compressed tensor {name!r} is not float32")
        t.index_bits, t.span_bits, k = r.unpack("BBI", f"codebook header of {name!r}")
        if not 1 <= t.index_bits <= 12 or not 1 <= t.span_bits <= 12 or \
                not 1 <= k <= 1 << t.index_bits:
            raise CompressedFileError(f"tensor {name!r}: bad bit widths or codebook size")
        t.codebook = np.frombuffer(r.take(4 * k, f"codebook of {name!r}"), "<f4").copy()
        (t.entries,) = r.unpack("I", f"entry count of {name!r}")
        if t.entries > t.numel:
            raise CompressedFileError(f"tensor {name!r}: {t.entries} entries for {t.numel}")
        t.diffs = _read_stream(r, (1 << t.span_bits) + 1, t.entries, f"{name!r} differences")
        t.index = _read_stream(r, k + 1, t.entries, f"{name!r} indices")
    t.size = r.pos - start
    return t


def from_bytes(data: bytes) -> DczFile:
    check_bytes(data)
    view = memoryview(data)
    r = _Reader(view, _HEAD.size, len(data) - 4)
    (n,) = r.unpack("I", "metadata size")
    try:
        meta = json.loads(bytes(r.take(n, "metadata")).decode())
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise CompressedFileError("metadata is not valid JSON") from None
    if not isinstance(meta, dict) or not isinstance(meta.get("model"), str) or \
            not isinstance(meta.get("config", {}), dict):
        raise CompressedFileError("metadata lacks the model name and config")
    f = DczFile(meta["model"], meta.get("config", {}), meta.get("info", {}), size=len(data))
    if not isinstance(f.info, dict):
        raise CompressedFileError("metadata 'info' is not an object")
    (count,) = r.unpack("I", "tensor count")
    names = set()
    for _ in range(count):
        try:
            t = _read_record(r)
        except CompressedFileError:
            raise
        except ValueError as e:  # a Huffman table that cannot be a code
            raise CompressedFileError(str(e)) from None
        if t.name in names:
            raise CompressedFileError(f"tensor {t.name!r} appears twice")
        names.add(t.name)
        f.tensors.append(t)
    if r.pos != r.end:
        raise CompressedFileError(f"{r.end - r.pos} unparsed bytes inside the .dcz data")
    return f


def read(path) -> DczFile:
    with open(path, "rb") as fh:
        return from_bytes(fh.read())
