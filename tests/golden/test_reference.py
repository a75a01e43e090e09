"""Tests of the bit-exact reference (golden/reference.py).

The reference is compared with a plain dense computation in Python integers
(unbounded, so it cannot overflow), and the work figures with a brute-force
count written from their definitions.
"""

import numpy as np
import pytest

from eie.config import PRESETS, EIEConfig
from eie.golden.encode import QuantLayer, build_image, encode_layer
from eie.golden.reference import (LayerWork, forward, forward_all, image_forward, layer_forward, layer_work,
                                  layer_work_batch, network_work, round_shift)

TINY = PRESETS["tiny"]


def model_layer(layer, x, cfg):
    """Dense Python-int model of one layer on one input vector (docs/hardware.md, "Numbers")."""
    lo, hi = -(1 << (cfg.act_bits - 1)), (1 << (cfg.act_bits - 1)) - 1
    out = []
    for i in range(layer.out_len):
        acc = int(layer.bias[i])
        for j in range(layer.in_len):
            acc += int(layer.codebook[int(layer.codes[i, j])]) * int(x[j])
        if layer.shift:
            acc = (acc + (1 << (layer.shift - 1))) >> layer.shift   # Python >> is arithmetic (floor)
        acc = min(max(acc, lo), hi)
        if layer.relu:
            acc = max(acc, 0)
        out.append(acc)
    return out


def random_layer(rng, cfg, in_len, out_len, density=0.3, shift=None, relu=None, extreme=False):
    codes = ((rng.random((out_len, in_len)) < density) *
             rng.integers(1, cfg.codebook_size, (out_len, in_len))).astype(np.uint8)
    clim = 1 << (cfg.codebook_bits - 1)
    blim = 1 << (cfg.bias_bits - 1)
    if extreme:
        codebook = rng.choice([-clim, clim - 1], cfg.codebook_size)
        bias = rng.choice([-blim, blim - 1, 0], out_len)
    else:
        codebook = rng.integers(-clim, clim, cfg.codebook_size)
        bias = rng.integers(-blim // 2 ** 20, blim // 2 ** 20, out_len)
    codebook[0] = 0
    if shift is None:
        shift = int(rng.integers(0, cfg.acc_bits))
    if relu is None:
        relu = bool(rng.integers(0, 2))
    return QuantLayer(codes=codes, codebook=codebook, bias=bias, shift=shift, relu=relu)


def random_input(rng, cfg, n, density=0.5, extreme=False):
    lim = 1 << (cfg.act_bits - 1)
    if extreme:
        x = rng.choice([-lim, lim - 1], n)
    else:
        x = rng.integers(-lim, lim, n)
    return x * (rng.random(n) < density)


CONFIGS = [
    TINY,
    PRESETS["paper"],
    # acc_bits = 32 + 24 + clog2(64) + 1 = 63: products and sums near the int64 limit.
    EIEConfig(pes=4, act_bits=32, act_frac_bits=8, codebook_bits=24, act_depth=16, bias_depth=16),
    # acc_bits = 32 + 25 + 6 + 1 = 64, the largest the config allows.
    EIEConfig(pes=2, act_bits=32, act_frac_bits=8, codebook_bits=25, act_depth=32, bias_depth=32),
    EIEConfig(pes=3, act_bits=4, act_frac_bits=1, codebook_bits=3, index_bits=2, act_depth=8, bias_depth=8),
]


@pytest.mark.parametrize("cfg", CONFIGS, ids=lambda c: f"act{c.act_bits}_cb{c.codebook_bits}_acc{c.acc_bits}")
@pytest.mark.parametrize("extreme", [False, True])
def test_layer_forward_matches_python_ints(cfg, extreme):
    rng = np.random.default_rng(cfg.acc_bits * 2 + extreme)
    for trial in range(6):
        in_len = int(rng.integers(1, min(cfg.max_len, 70) + 1))
        out_len = int(rng.integers(1, min(cfg.max_len, 40) + 1))
        density = 1.0 if extreme and trial % 2 else 0.4
        layer = random_layer(rng, cfg, in_len, out_len, density=density, extreme=extreme)
        x = random_input(rng, cfg, in_len, density=1.0 if extreme else 0.6, extreme=extreme)
        y = layer_forward(layer, x, cfg)
        assert y.dtype == np.int64
        assert y.tolist() == model_layer(layer, x, cfg)


def test_worst_case_accumulator_at_64_bits():
    """Every product at its maximum and the bias at its limit, largest shift: no int64 overflow anywhere."""
    cfg = CONFIGS[3]
    assert cfg.acc_bits == 64
    n = cfg.max_len
    clim, alim, blim = 1 << (cfg.codebook_bits - 1), 1 << (cfg.act_bits - 1), 1 << (cfg.bias_bits - 1)
    codebook = np.full(cfg.codebook_size, -clim)
    codebook[0] = 0
    codes = np.ones((2, n), np.uint8)
    x = np.full(n, -alim)                              # (-clim) * (-alim) = the largest product
    for bias in (blim - 1, -blim):
        for shift in (0, 1, cfg.acc_bits - 2, cfg.acc_bits - 1):
            for relu in (False, True):
                layer = QuantLayer(codes=codes, codebook=codebook, bias=np.array([bias, -bias - 1]), shift=shift,
                                   relu=relu)
                assert layer_forward(layer, x, cfg).tolist() == model_layer(layer, x, cfg)
                assert layer_forward(layer, -x - 1, cfg).tolist() == model_layer(layer, -x - 1, cfg)


def test_rounding_saturation_relu_edges():
    cfg = TINY
    hi = (1 << (cfg.act_bits - 1)) - 1
    lo = -(1 << (cfg.act_bits - 1))
    codebook = np.zeros(16, np.int64)
    codebook[1] = 1
    codes = np.zeros((12, 1), np.uint8)
    codes[:, 0] = 1
    # With x = 1, acc = bias + 1: chosen values around every edge.
    cases = [  # (bias + 1 = acc, shift, expected without relu), expected values worked out by hand
        (5, 1, 3), (-5, 1, -2), (4, 1, 2), (-4, 1, -2), (6, 2, 2), (-6, 2, -1), (-7, 2, -2),
        (hi, 0, hi), (hi + 1, 0, hi), (lo, 0, lo), (lo - 1, 0, lo), ((hi << 3) + 4, 3, hi),
    ]
    for relu in (False, True):
        for acc, shift, expected in cases:
            layer = QuantLayer(codes=codes[:1], codebook=codebook, bias=np.array([acc - 1]), shift=shift, relu=relu)
            got = int(layer_forward(layer, np.array([1]), cfg)[0])
            assert got == (max(expected, 0) if relu else expected), (acc, shift, relu)


def test_round_shift_matches_definition():
    rng = np.random.default_rng(5)
    acc = np.concatenate([rng.integers(-(1 << 62), 1 << 62, 200), [-(1 << 63), (1 << 63) - 1, -1, 0, 1]])
    for shift in (0, 1, 2, 17, 62, 63):
        expected = [(int(a) + (1 << (shift - 1))) >> shift if shift else int(a) for a in acc]
        assert round_shift(acc, shift).tolist() == expected


def test_batch_equals_single():
    rng = np.random.default_rng(7)
    layer = random_layer(rng, TINY, 50, 30, shift=10)
    xs = np.stack([random_input(rng, TINY, 50, density=0.3) for _ in range(9)])
    ys = layer_forward(layer, xs, TINY)
    assert ys.shape == (9, 30)
    for x, y in zip(xs, ys):
        assert y.tolist() == model_layer(layer, x, TINY)


def network(rng, cfg, sizes):
    return [random_layer(rng, cfg, a, b, shift=int(rng.integers(8, 20)), relu=l < len(sizes) - 2)
            for l, (a, b) in enumerate(zip(sizes[:-1], sizes[1:]))]


def test_forward_all_and_image_forward():
    cfg = TINY
    rng = np.random.default_rng(11)
    layers = network(rng, cfg, [64, 40, 25, 10])
    x = random_input(rng, cfg, 64)
    acts = forward_all(layers, x, cfg)
    assert len(acts) == 4 and acts[0].tolist() == x.tolist()
    for l, layer in enumerate(layers):
        assert acts[l + 1].tolist() == model_layer(layer, acts[l], cfg)
    assert forward(layers, x, cfg).tolist() == acts[-1].tolist()
    from_image = image_forward(build_image(layers, cfg), x)
    assert [a.tolist() for a in from_image] == [a.tolist() for a in acts]
    xs = np.stack([random_input(rng, cfg, 64) for _ in range(5)])
    batch = forward(layers, xs, cfg)
    assert [row.tolist() for row in batch] == [forward(layers, x, cfg).tolist() for x in xs]


def test_input_errors():
    cfg = TINY
    layer = random_layer(np.random.default_rng(0), cfg, 5, 3)
    with pytest.raises(ValueError, match=r"values must be in range -32768..32767 \(act_bits=16 signed\)"):
        layer_forward(layer, np.array([0, 0, 1 << 15, 0, 0]), cfg)
    with pytest.raises(ValueError, match=r"values must be in range"):
        layer_forward(layer, np.array([0, 0, -(1 << 15) - 1, 0, 0]), cfg)
    with pytest.raises(ValueError, match=r"must have shape \(5,\) or \(batch, 5\)"):
        layer_forward(layer, np.zeros(4, np.int64), cfg)
    with pytest.raises(ValueError, match=r"must hold integers"):
        layer_forward(layer, np.full(5, 0.5), cfg)
    with pytest.raises(ValueError, match=r"in_len=4 does not match the previous layer's out_len=3"):
        forward([layer, random_layer(np.random.default_rng(1), cfg, 4, 2)], np.zeros(5, np.int64), cfg)
    with pytest.raises(ValueError, match=r"shift=99 is out of range"):
        layer.shift = 99
        layer_forward(layer, np.zeros(5, np.int64), cfg)


# -- work and bound -------------------------------------------------------------------

def brute_work(codes, x, pes, max_zrun):
    """Work per PE from the definition: entries (real + padding) of each non-zero input's column slice."""
    pe_work = [0] * pes
    padding = 0
    for j in np.flatnonzero(x):
        for k in range(pes):
            zeros = 0
            for i in range(k, codes.shape[0], pes):
                if codes[i, j] == 0:
                    zeros += 1
                    continue
                pads = zeros // (max_zrun + 1)
                pe_work[k] += pads + 1
                padding += pads
                zeros = 0
    return pe_work, padding


@pytest.mark.parametrize("pes", [1, 3, 4, 8, 64])
def test_layer_work_matches_brute_force(pes):
    cfg = TINY.replace(pes=pes, act_depth=64, bias_depth=64)
    rng = np.random.default_rng(pes)
    for density in (0.02, 0.1, 0.5):
        layer = random_layer(rng, cfg, 90, 150, density=density)
        x = random_input(rng, cfg, 90, density=0.4)
        work = layer_work(encode_layer(layer, cfg), x, cfg)
        pe_work, padding = brute_work(layer.codes, x, pes, cfg.max_zrun)
        b = int(np.count_nonzero(x))
        assert isinstance(work, LayerWork)
        assert work.broadcasts == b
        assert work.pe_work.tolist() == pe_work
        assert work.work == sum(pe_work)
        assert work.max_pe_work == max(pe_work)
        assert work.padding_work == padding
        assert work.bound == max(b, -(-sum(pe_work) // pes))
        assert work.pes == pes


def test_bound_cases():
    cfg = TINY.replace(pes=4)
    # Dense column, one non-zero input: 8 entries over 4 PEs -> 2 cycles, B = 1.
    codes = np.zeros((8, 3), np.uint8)
    codes[:, 1] = 1
    layer = QuantLayer(codes=codes, codebook=np.arange(16), bias=np.zeros(8, np.int64), shift=0, relu=False)
    layer.codebook[0] = 0
    w = layer_work(encode_layer(layer, cfg), np.array([0, 5, 0]), cfg)
    assert (w.broadcasts, w.work, w.bound, w.max_pe_work) == (1, 8, 2, 2)
    # All inputs non-zero but only empty columns: the broadcasts bound it.
    w = layer_work(encode_layer(layer, cfg), np.array([3, 0, -3]), cfg)
    assert (w.broadcasts, w.work, w.bound, w.max_pe_work) == (2, 0, 2, 0)
    with pytest.raises(ValueError, match=r"input must have shape \(3,\)"):
        layer_work(encode_layer(layer, cfg), np.zeros(4), cfg)


def test_network_work_uses_reference_activations():
    cfg = TINY
    rng = np.random.default_rng(3)
    layers = network(rng, cfg, [40, 30, 20])
    x = random_input(rng, cfg, 40)
    works = network_work(layers, x, cfg)
    acts = forward_all(layers, x, cfg)
    assert len(works) == 2
    for layer, a, w in zip(layers, acts, works):
        pe_work, padding = brute_work(layer.codes, a, cfg.pes, cfg.max_zrun)
        assert w.pe_work.tolist() == pe_work and w.broadcasts == int(np.count_nonzero(a))


def test_layer_work_batch_equals_single():
    cfg = TINY.replace(pes=3)
    rng = np.random.default_rng(9)
    layer = random_layer(rng, cfg, 60, 80, density=0.05)
    enc = encode_layer(layer, cfg)
    xs = np.stack([random_input(rng, cfg, 60, density=d) for d in (0.0, 0.1, 0.5, 1.0)])
    for single, batched in zip([layer_work(enc, x, cfg) for x in xs], layer_work_batch(enc, xs, cfg)):
        assert single.to_dict() == batched.to_dict()
    with pytest.raises(ValueError, match=r"inputs must have shape \(batch, 60\)"):
        layer_work_batch(enc, xs[0], cfg)
