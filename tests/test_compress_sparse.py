"""Relative-index storage with filler zeros (Deep Compression, Fig. 2)."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cnnlab.compress.sparse import (
    csr_numbers,
    entry_count,
    relative_indices,
    sparse_decode,
    sparse_encode,
)


def test_decks_worked_example():
    x = np.zeros(16)
    x[[1, 4, 15]] = [3.4, 0.9, 1.7]
    diffs, values = sparse_encode(x, bits=3)
    assert diffs.tolist() == [1, 3, 8, 3]
    assert values.tolist() == [3.4, 0.9, 0.0, 1.7]  # the 0 is the filler at position 12
    assert np.array_equal(sparse_decode(diffs, values, 16, bits=3), x)


def test_position_zero_and_exact_span():
    x = np.zeros(20)
    x[[0, 8, 16]] = 1.0
    diffs, values = sparse_encode(x, bits=3)
    assert diffs.tolist() == [0, 8, 8] and values.tolist() == [1, 1, 1]
    x[:] = 0
    x[17] = 2.0  # 17 = 8 + 8 + 1: two fillers
    diffs, values = sparse_encode(x, bits=3)
    assert diffs.tolist() == [8, 8, 1] and values.tolist() == [0, 0, 2]


@settings(max_examples=80, deadline=None)
@given(st.lists(st.booleans(), min_size=0, max_size=400), st.integers(1, 6))
def test_roundtrip(mask, bits):
    x = np.where(np.array(mask, dtype=bool), np.arange(1, len(mask) + 1, dtype=float), 0.0)
    diffs, values = sparse_encode(x, bits)
    assert ((diffs >= 0) & (diffs <= 2 ** bits)).all()
    assert len(diffs) == entry_count(np.flatnonzero(x), 2 ** bits)
    assert np.array_equal(sparse_decode(diffs, values, len(x), bits), x)


def test_bad_differences_are_rejected():
    with pytest.raises(ValueError, match="outside"):
        sparse_decode([9], [1.0], 20, bits=3)
    with pytest.raises(ValueError, match="beyond"):
        sparse_decode([8, 8], [0.0, 1.0], 10, bits=3)
    with pytest.raises(ValueError, match="duplicate"):
        sparse_decode([2, 0], [1.0, 1.0], 10, bits=3)
    with pytest.raises(ValueError):
        relative_indices([3, 3], 8)


def test_csr_cost_is_2a_plus_n_plus_1():
    w = np.zeros((4, 5))
    w[0, 1] = w[2, 3] = w[3, 0] = 1
    assert csr_numbers(w) == 2 * 3 + 4 + 1
