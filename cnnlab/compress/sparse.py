"""Sparse storage of a pruned layer: relative index differences with filler zeros.

Han et al. 2016 (Deep Compression, Sec. 2 and Fig. 2) store each non-zero weight with the
*difference* of its position to the previous one instead of the absolute position, in
``b`` bits (8 for conv, 5 for fc layers). When a gap exceeds the span ``2**b`` a *filler
zero* is stored at ``previous + 2**b``. The first difference counts from position 0, as in
the paper's example: non-zeros at positions 1, 4, 15 with 3-bit differences are stored as
differences 1, 3, 8 (filler), 3.

The weight tensor is read in its memory order (row-major: output unit, then input).
"""

from __future__ import annotations

import numpy as np


def relative_indices(positions, span: int) -> tuple[np.ndarray, np.ndarray]:
    """Differences (each in ``0..span``) and a filler flag for sorted ``positions``.

    Returns ``(diffs, is_filler)``: one entry per non-zero plus one per filler zero.
    """
    pos = np.asarray(positions, dtype=np.int64).ravel()
    if span < 1:
        raise ValueError(f"span must be positive, got {span}")
    if len(pos) == 0:
        return np.zeros(0, np.int64), np.zeros(0, bool)
    gap = np.diff(pos, prepend=0)
    if pos[0] < 0 or (gap[1:] <= 0).any():
        raise ValueError("positions must be non-negative and strictly increasing")
    nfill = np.maximum((gap - 1) // span, 0)
    real = np.cumsum(nfill + 1) - 1  # slot of each non-zero after its fillers
    diffs = np.full(int(real[-1]) + 1, span, dtype=np.int64)
    diffs[real] = gap - nfill * span
    is_filler = np.ones(len(diffs), dtype=bool)
    is_filler[real] = False
    return diffs, is_filler


def positions_from_diffs(diffs, span: int, numel: int) -> np.ndarray:
    """Absolute positions of all entries (fillers included); validates the differences."""
    d = np.asarray(diffs, dtype=np.int64)
    if len(d) == 0:
        return d
    if (d < 0).any() or (d > span).any():
        raise ValueError(f"index difference outside 0..{span}")
    if (d[1:] == 0).any():
        raise ValueError("index difference 0 after the first entry (duplicate position)")
    pos = np.cumsum(d)
    if pos[-1] >= numel:
        raise ValueError(f"sparse position {int(pos[-1])} beyond the tensor's {numel} entries")
    return pos


def sparse_encode(values, bits: int) -> tuple[np.ndarray, np.ndarray]:
    """A flat array → (differences, stored values with 0 for fillers), ``bits``-bit span.

    ``sparse_encode([0, 3.4, 0, 0, 0.9, 0, ..., 1.7], 3)`` → ``([1, 3, 8, 3],
    [3.4, 0.9, 0, 1.7])`` for non-zeros at positions 1, 4 and 15.
    """
    v = np.asarray(values).ravel()
    pos = np.flatnonzero(v)
    diffs, filler = relative_indices(pos, 1 << bits)
    stored = np.zeros(len(diffs), dtype=v.dtype)
    stored[~filler] = v[pos]
    return diffs, stored


def sparse_decode(diffs, stored, numel: int, bits: int) -> np.ndarray:
    """Inverse of :func:`sparse_encode`: the dense flat array of ``numel`` entries."""
    stored = np.asarray(stored)
    if len(stored) != len(diffs):
        raise ValueError("differences and values differ in length")
    out = np.zeros(numel, dtype=stored.dtype)
    out[positions_from_diffs(diffs, 1 << bits, numel)] = stored
    return out


def entry_count(positions, span: int) -> int:
    """Stored entries (non-zeros + fillers) for sorted ``positions`` and a ``span``."""
    pos = np.asarray(positions, dtype=np.int64).ravel()
    if len(pos) == 0:
        return 0
    gap = np.diff(pos, prepend=0)
    return int(len(pos) + np.maximum((gap - 1) // span, 0).sum())


def csr_numbers(weight) -> int:
    """CSR/CSC cost of a 2-D view of a weight: 2a + n + 1 numbers (a non-zeros, n rows)."""
    w = np.asarray(weight)
    rows = w.shape[0] if w.ndim else 1
    return 2 * int(np.count_nonzero(w)) + rows + 1
