"""Huffman coding: round trips on any alphabet, optimality, the length limit, and damage."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cnnlab.compress import huffman as hf


def roundtrip(symbols, alphabet, sync_every=None):
    symbols = np.asarray(symbols, dtype=np.int64)
    lengths = hf.code_lengths(np.bincount(symbols, minlength=alphabet))
    stream = hf.encode(symbols, lengths, sync_every)
    back = hf.decode(stream, lengths)
    assert np.array_equal(back, symbols)
    return lengths, stream


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 40), min_size=0, max_size=3000),
       st.sampled_from([None, 1, 3, 32, 1000]))
def test_roundtrip_any_sequence(seq, every):
    roundtrip(seq, 41, every)


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 256), st.integers(1, 5000))
def test_one_symbol_alphabet(symbol, n):
    lengths, stream = roundtrip([symbol] * n, 257)
    assert lengths[symbol] == 1 and stream.nbits == n  # one bit per symbol


@settings(max_examples=30, deadline=None)
@given(st.integers(2, 60), st.integers(0, 2**32 - 1))
def test_skewed_alphabet_is_length_limited(alphabet, seed):
    # Fibonacci-like frequencies make unlimited Huffman codes as long as the alphabet
    freqs = [1, 1]
    while len(freqs) < alphabet:
        freqs.append(freqs[-1] + freqs[-2])
    freqs = np.array(freqs[:alphabet], dtype=np.int64)
    lengths = hf.code_lengths(freqs)
    assert lengths.max() <= hf.MAX_LEN
    assert (2.0 ** -lengths.astype(float)).sum() == pytest.approx(1.0)  # complete code
    rng = np.random.default_rng(seed)
    sample = rng.choice(alphabet, size=2000, p=freqs / freqs.sum())
    sample[:alphabet] = np.arange(alphabet)  # every symbol, the rarest included
    stream = hf.encode(sample, lengths)
    assert np.array_equal(hf.decode(stream, lengths), sample)


def test_code_is_optimal_when_unconstrained():
    rng = np.random.default_rng(0)
    x = rng.choice(33, size=20000, p=rng.dirichlet(np.ones(33) * 0.5))
    lengths, stream = roundtrip(x, 33)
    entropy = hf.entropy_bits(x, 33)
    assert entropy <= stream.nbits < entropy + len(x)  # Huffman: within 1 bit per symbol


def test_canonical_codes_are_prefix_free():
    lengths = np.array([3, 3, 3, 3, 3, 2, 4, 4])
    codes = hf.canonical_codes(lengths)
    words = [format(c, f"0{ln}b") for c, ln in zip(codes, lengths)]
    assert len(set(words)) == len(words)
    assert not any(a != b and b.startswith(a) for a in words for b in words)


def test_lengths_table_packs_into_nibbles():
    lengths = np.array([0, 15, 3, 1, 7])
    packed = hf.pack_lengths(lengths)
    assert len(packed) == 3
    assert np.array_equal(hf.unpack_lengths(packed, 5), lengths)


def test_damaged_stream_is_an_error():
    rng = np.random.default_rng(1)
    x = rng.integers(0, 5, size=3000)
    lengths, stream = roundtrip(x, 5)
    short = hf.Bitstream(stream.payload, stream.nbits - 3, stream.count, stream.sync_every,
                         stream.sync_deltas)
    with pytest.raises(hf.HuffmanError):
        hf.decode(short, lengths)
    bad = np.array(lengths)
    bad[bad > 0] = 1  # not a prefix code
    with pytest.raises(hf.HuffmanError, match="Kraft"):
        hf.decode(stream, bad)
