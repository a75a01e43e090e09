"""Deep Compression step 4: Huffman coding of the index and zero-run streams (storage only).

The hardware reads the fixed-width format; Huffman coding only shows how small
the model is at rest, as in Deep Compression's table. Each stream (the ``v``
codebook indices, the ``z`` zero runs, padding entries included) of each layer
gets its own optimal prefix code. The stored size counts the coded stream plus
the code itself, written as one ``b``-bit code length per symbol of the
``2**b``-symbol alphabet (canonical Huffman codes are fully described by their lengths).
"""

from __future__ import annotations

import heapq

import numpy as np

__all__ = ["code_lengths", "coded_bits", "entropy_bits", "stream_report"]


def code_lengths(counts) -> dict:
    """Optimal (Huffman) code length of each symbol, from ``{symbol: count}``.

    Symbols with count 0 are left out. A single symbol gets length 1 (a
    stream still needs one bit per symbol to be decodable by length). Ties are
    broken by insertion order, so the result is deterministic.
    """
    items = [(s, int(c)) for s, c in dict(counts).items() if c > 0]
    if not items:
        return {}
    if len(items) == 1:
        return {items[0][0]: 1}
    # Heap of (weight, tie-break, symbols in the subtree); merging deepens every symbol of both subtrees.
    heap = [(c, i, [s]) for i, (s, c) in enumerate(items)]
    heapq.heapify(heap)
    lengths = {s: 0 for s, _ in items}
    tie = len(heap)
    while len(heap) > 1:
        c1, _, s1 = heapq.heappop(heap)
        c2, _, s2 = heapq.heappop(heap)
        for s in s1:
            lengths[s] += 1
        for s in s2:
            lengths[s] += 1
        heapq.heappush(heap, (c1 + c2, tie, s1 + s2))
        tie += 1
    return lengths


def _counts(symbols) -> dict:
    arr = np.asarray(symbols).ravel()
    values, counts = np.unique(arr, return_counts=True)
    return {int(v): int(c) for v, c in zip(values, counts)}


def coded_bits(symbols) -> int:
    """Bits of ``symbols`` (any integer sequence) under their own Huffman code (table not included)."""
    counts = _counts(symbols)
    lengths = code_lengths(counts)
    return sum(counts[s] * lengths[s] for s in counts)


def entropy_bits(symbols) -> float:
    """Shannon bound ``n * H`` in bits: no prefix code of ``symbols`` is shorter."""
    counts = np.array(list(_counts(symbols).values()), dtype=np.float64)
    if counts.size == 0:
        return 0.0
    p = counts / counts.sum()
    return float(-(counts * np.log2(p)).sum())


def stream_report(symbols, alphabet_bits: int) -> dict:
    """Sizes of one stream: fixed width, Huffman (stream + code table), entropy bound."""
    arr = np.asarray(symbols).ravel()
    # A code over 2**b symbols has lengths 0 (unused) .. 2**b - 1: b bits each.
    table = (1 << alphabet_bits) * alphabet_bits if arr.size else 0
    huff = coded_bits(arr)
    return {"symbols": int(arr.size), "fixed_bits": int(arr.size) * alphabet_bits, "huffman_bits": huff + table,
            "huffman_stream_bits": huff, "table_bits": table, "entropy_bits": entropy_bits(arr)}
