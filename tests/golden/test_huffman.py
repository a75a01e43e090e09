"""Huffman code lengths: optimality against exhaustive search and the entropy bound."""

import itertools

import numpy as np
import pytest

from eie.golden.huffman import code_lengths, coded_bits, entropy_bits, stream_report


def brute_force_min_bits(counts):
    """Cheapest prefix code by enumerating every length vector that satisfies Kraft's inequality."""
    n = len(counts)
    best = None
    for lengths in itertools.product(range(1, n), repeat=n):
        if sum(2.0 ** -l for l in lengths) <= 1.0:
            cost = sum(c * l for c, l in zip(counts, lengths))
            best = cost if best is None else min(best, cost)
    return best


def test_dyadic_distribution_meets_entropy_exactly():
    # p = 1/2, 1/4, 1/8, 1/8: the optimal code has lengths 1, 2, 3, 3 and costs exactly n*H.
    symbols = [0] * 8 + [1] * 4 + [2] * 2 + [3] * 2
    assert code_lengths({0: 8, 1: 4, 2: 2, 3: 2}) == {0: 1, 1: 2, 2: 3, 3: 3}
    assert coded_bits(symbols) == 28
    assert entropy_bits(symbols) == pytest.approx(28.0)


@pytest.mark.parametrize("seed", range(6))
def test_optimal_against_exhaustive_search(seed):
    rng = np.random.default_rng(seed)
    counts = rng.integers(1, 50, size=int(rng.integers(2, 6))).tolist()
    symbols = np.repeat(np.arange(len(counts)), counts)
    assert coded_bits(symbols) == brute_force_min_bits(counts)


@pytest.mark.parametrize("seed", range(4))
def test_within_entropy_bounds_and_kraft(seed):
    rng = np.random.default_rng(seed)
    symbols = rng.geometric(0.3, size=2000) % 16     # a skewed 16-symbol stream, like zero runs
    lengths = code_lengths(dict(zip(*np.unique(symbols, return_counts=True))))
    assert sum(2.0 ** -l for l in lengths.values()) == pytest.approx(1.0)  # complete prefix code
    h = entropy_bits(symbols)
    assert h <= coded_bits(symbols) < h + len(symbols)


def test_single_symbol_and_empty():
    assert code_lengths({7: 10}) == {7: 1}
    assert coded_bits([3, 3, 3]) == 3
    assert code_lengths({}) == {}
    assert coded_bits([]) == 0


def test_stream_report_counts_table_and_fixed_width():
    symbols = [0] * 8 + [1] * 4 + [2] * 2 + [3] * 2
    r = stream_report(symbols, 4)
    assert r["fixed_bits"] == 16 * 4
    assert r["huffman_stream_bits"] == 28
    assert r["table_bits"] == 16 * 4
    assert r["huffman_bits"] == 28 + 64
