"""Canonical, length-limited Huffman coding with vectorised, table-driven decoding.

Deep Compression (Han et al. 2016, Sec. 4) Huffman-codes the cluster indices and the sparse
index differences of every layer. Here a code is described by its code lengths alone
(canonical codes, as in DEFLATE), limited to :data:`MAX_LEN` bits so that one lookup in a
``2**max_len`` table decodes a symbol.

Decoding has no per-bit (or per-symbol) Python loop: the encoder records a *sync point*, the
bit offset of every ``sync_every``-th symbol, so the stream splits into chunks that are
decoded side by side — step ``t`` decodes the ``t``-th symbol of every chunk with a few numpy
operations on arrays as long as the number of chunks. The sync points cost 16 bits per chunk.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass

import numpy as np

MAX_LEN = 15  # longest code; a length fits in a nibble of the stored table
SYNC_DELTA_LIMIT = 1 << 16  # chunk lengths (bits) are stored as u16


class HuffmanError(ValueError):
    """A Huffman table or bitstream that cannot be decoded."""


def code_lengths(freqs, max_len: int = MAX_LEN) -> np.ndarray:
    """Optimal code lengths for symbol frequencies, limited to ``max_len`` bits.

    Unused symbols get length 0; a lone used symbol gets a 1-bit code. Lengths over the
    limit are pushed down with the JPEG procedure (ITU T.81, Annex K.3), which keeps the code
    complete; the most frequent symbols keep the shortest codes.
    """
    freqs = np.asarray(freqs, dtype=np.int64)
    if freqs.ndim != 1 or (freqs < 0).any():
        raise ValueError("frequencies must be a 1-D array of non-negative counts")
    lengths = np.zeros(len(freqs), dtype=np.uint8)
    used = np.flatnonzero(freqs)
    if len(used) == 0:
        return lengths
    if len(used) == 1:
        lengths[used[0]] = 1
        return lengths
    if len(used) > 1 << max_len:
        raise ValueError(f"{len(used)} symbols do not fit codes of at most {max_len} bits")
    # Huffman's algorithm over node ids: leaves 0..m-1, internal nodes appended
    m = len(used)
    parent = np.zeros(2 * m - 1, dtype=np.int64)
    heap = [(int(freqs[s]), i) for i, s in enumerate(used)]
    heapq.heapify(heap)
    nxt = m
    while len(heap) > 1:
        fa, a = heapq.heappop(heap)
        fb, b = heapq.heappop(heap)
        parent[a] = parent[b] = nxt
        heapq.heappush(heap, (fa + fb, nxt))
        nxt += 1
    depth = np.zeros(2 * m - 1, dtype=np.int64)
    for node in range(2 * m - 3, -1, -1):  # parents are created after their children
        depth[node] = depth[parent[node]] + 1
    leaf_len = depth[:m]
    if leaf_len.max() > max_len:
        leaf_len = _limit(leaf_len, max_len)
    # most frequent first gets the shortest; ties broken by symbol for determinism
    order = np.lexsort((used, -freqs[used]))
    lengths[used[order]] = np.sort(leaf_len)
    return lengths


def _limit(leaf_len: np.ndarray, max_len: int) -> np.ndarray:
    top = int(leaf_len.max())
    bits = np.bincount(leaf_len, minlength=top + 1).astype(np.int64)
    for i in range(top, max_len, -1):
        while bits[i] > 0:
            j = i - 2
            while bits[j] == 0:
                j -= 1
            bits[i] -= 2
            bits[i - 1] += 1
            bits[j + 1] += 2
            bits[j] -= 1
    return np.repeat(np.arange(len(bits)), bits)[: len(leaf_len)]


def canonical_codes(lengths) -> np.ndarray:
    """Canonical code of every symbol (codes of equal length count up in symbol order)."""
    lengths = np.asarray(lengths, dtype=np.int64)
    codes = np.zeros(len(lengths), dtype=np.int64)
    used = np.flatnonzero(lengths)
    if len(used) == 0:
        return codes
    order = used[np.lexsort((used, lengths[used]))]
    ls = lengths[order]
    # code_i = (code_{i-1} + 1) << (l_i - l_{i-1}); in closed form via Kraft partial sums
    top = int(ls.max())
    units = np.int64(1) << (top - ls)  # share of the code space, in units of 2**-top
    start = np.concatenate([[0], np.cumsum(units)[:-1]])
    codes[order] = start >> (top - ls)
    return codes


def check_lengths(lengths, max_len: int = MAX_LEN) -> np.ndarray:
    """Validate stored code lengths (Kraft inequality); return them as int64."""
    lengths = np.asarray(lengths, dtype=np.int64)
    if (lengths < 0).any() or (lengths > max_len).any():
        raise HuffmanError(f"Huffman code length outside 0..{max_len}")
    used = lengths[lengths > 0]
    kraft = int((np.int64(1) << (max_len - used)).sum()) if len(used) else 0
    if kraft > 1 << max_len:
        raise HuffmanError("Huffman table violates the Kraft inequality (not a prefix code)")
    return lengths


def sync_interval(count: int) -> int:
    """Symbols per chunk: about 32 chunks for small streams, 1024 symbols for large ones."""
    s = 32
    while s < 1024 and s * 32 < count:
        s *= 2
    return s


@dataclass
class Bitstream:
    """A Huffman-coded symbol stream: ``payload`` holds ``nbits`` bits, MSB first."""

    payload: bytes
    nbits: int
    count: int
    sync_every: int
    sync_deltas: np.ndarray  # uint16: bit length of every chunk but the last


def encode(symbols, lengths, sync_every: int | None = None) -> Bitstream:
    """Huffman-code ``symbols`` (integers indexing ``lengths``) into a :class:`Bitstream`."""
    symbols = np.asarray(symbols, dtype=np.int64).ravel()
    lengths = check_lengths(lengths)
    count = len(symbols)
    sync_every = sync_every or sync_interval(count)
    if not 1 <= sync_every or sync_every * MAX_LEN >= SYNC_DELTA_LIMIT:
        raise ValueError(f"sync_every must be in 1..{(SYNC_DELTA_LIMIT - 1) // MAX_LEN}")
    if count == 0:
        return Bitstream(b"", 0, 0, sync_every, np.zeros(0, np.uint16))
    if symbols.min() < 0 or symbols.max() >= len(lengths) or (lengths[symbols] == 0).any():
        raise ValueError("a symbol has no code in this Huffman table")
    codes = canonical_codes(lengths)
    ln = lengths[symbols]
    ends = np.cumsum(ln)
    starts = ends - ln
    nbits = int(ends[-1])
    nbytes = (nbits + 7) // 8
    # each code lies within the 24-bit window of bytes starts>>3 .. +2 (offset <= 7, len <= 15)
    val = codes[symbols] << (24 - (starts & 7) - ln)
    idx = starts >> 3
    out = np.bincount(idx, weights=(val >> 16).astype(np.float64), minlength=nbytes + 2)
    out += np.bincount(idx + 1, weights=((val >> 8) & 255).astype(np.float64),
                       minlength=nbytes + 2)
    out += np.bincount(idx + 2, weights=(val & 255).astype(np.float64), minlength=nbytes + 2)
    payload = out[:nbytes].astype(np.uint8).tobytes()  # codes never overlap: sums are ORs
    sync = starts[::sync_every]
    deltas = np.diff(sync).astype(np.uint16)
    return Bitstream(payload, nbits, count, sync_every, deltas)


def decode(stream: Bitstream, lengths, dtype=np.int64) -> np.ndarray:
    """Decode ``stream.count`` symbols; raise :class:`HuffmanError` on any inconsistency."""
    lengths = check_lengths(lengths)
    count, nbits, every = stream.count, stream.nbits, stream.sync_every
    if count == 0:
        if nbits or stream.payload:
            raise HuffmanError("an empty stream carries bits")
        return np.zeros(0, dtype=dtype)
    chunks = -(-count // every)
    if len(stream.sync_deltas) != chunks - 1:
        raise HuffmanError("wrong number of sync points")
    if len(stream.payload) != (nbits + 7) // 8 or nbits < count or nbits > count * MAX_LEN:
        raise HuffmanError("bitstream length does not match its symbol count")
    used = np.flatnonzero(lengths)
    if len(used) == 0:
        raise HuffmanError("empty Huffman table for a non-empty stream")
    top = int(lengths.max())
    order = used[np.lexsort((used, lengths[used]))]
    span = np.int64(1) << (top - lengths[order])
    table_sym = np.repeat(order, span)
    table_len = np.repeat(lengths[order], span)
    pad = (1 << top) - len(table_sym)  # an incomplete code leaves invalid (length 0) entries
    table_sym = np.concatenate([table_sym, np.zeros(pad, np.int64)]).astype(np.int32)
    table_len = np.concatenate([table_len, np.zeros(pad, np.int64)]).astype(np.int32)

    sync = np.concatenate([[0], np.cumsum(stream.sync_deltas.astype(np.int64))])
    if sync[-1] >= nbits:
        raise HuffmanError("sync point beyond the end of the bitstream")
    buf = np.frombuffer(stream.payload + b"\0\0\0", dtype=np.uint8).astype(np.int64)
    pos = sync.copy()
    steps = min(every, count)
    out = np.empty((steps, chunks), dtype=np.int32)
    lens = np.empty((steps, chunks), dtype=np.int32)
    mask = (1 << top) - 1
    for t in range(steps):
        p = np.minimum(pos, nbits)  # garbage paths past the end stay in bounds
        b = p >> 3
        window = (buf[b] << 16) | (buf[b + 1] << 8) | buf[b + 2]
        w = (window >> (24 - top - (p & 7))) & mask
        out[t] = table_sym[w]
        lens[t] = table_len[w]
        pos += lens[t]
    last = count - every * (chunks - 1)
    flat_len = lens.T.ravel()
    valid = np.ones(chunks * steps, dtype=bool)
    valid[(chunks - 1) * steps + last:] = False
    if (flat_len[valid] == 0).any():
        raise HuffmanError("bit pattern with no code in the Huffman table")
    chunk_bits = lens.sum(0, dtype=np.int64)
    chunk_bits[-1] = lens[:last, -1].sum(dtype=np.int64)
    ends = sync + chunk_bits
    if (ends[:-1] != sync[1:]).any() or ends[-1] != nbits:
        raise HuffmanError("Huffman chunk does not end at the next sync point")
    return out.T.ravel()[valid].astype(dtype, copy=False)


def pack_lengths(lengths) -> bytes:
    """Code lengths as nibbles, two per byte (the stored Huffman table)."""
    ln = np.asarray(lengths, dtype=np.uint8)
    if (ln > MAX_LEN).any():
        raise ValueError("code length over the limit")
    if len(ln) % 2:
        ln = np.concatenate([ln, np.zeros(1, np.uint8)])
    return ((ln[0::2] << 4) | ln[1::2]).astype(np.uint8).tobytes()


def unpack_lengths(data: bytes, alphabet: int) -> np.ndarray:
    b = np.frombuffer(data, dtype=np.uint8)
    if len(b) != (alphabet + 1) // 2:
        raise HuffmanError("Huffman table has the wrong size")
    ln = np.empty(2 * len(b), dtype=np.int64)
    ln[0::2] = b >> 4
    ln[1::2] = b & 15
    if len(ln) > alphabet and ln[alphabet:].any():
        raise HuffmanError("Huffman table padding is not zero")
    return ln[:alphabet]


def entropy_bits(symbols, alphabet: int) -> float:
    """Shannon bound (bits) of the symbol sequence: what ideal entropy coding would take."""
    f = np.bincount(np.asarray(symbols, dtype=np.int64), minlength=alphabet).astype(float)
    p = f[f > 0] / f.sum() if f.sum() else f[f > 0]
    return float(-(f[f > 0] * np.log2(p)).sum())
