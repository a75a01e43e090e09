"""Networks for the RTL test matrix: adversarial layers and seeded random ones.

Every case is ``(name, layers, inputs)``: a list of :class:`QuantLayer` (a
chain) and integer inputs ``(batch, in_len)``. They are written as memory
images (:func:`eie.golden.encode.build_image`) into a simulation job; the
testbench checks the RTL against the golden reference and the cycle model.
Cases adapt to the config (PE count, lengths) so that every build runs the
same kinds of layer.
"""

from __future__ import annotations

import numpy as np

from eie.config import EIEConfig
from eie.golden.encode import QuantLayer, build_image
from eie.golden.synthetic import random_layer


def _codebook(cfg: EIEConfig, rng, big: bool = False) -> np.ndarray:
    lo, hi = -(1 << (cfg.codebook_bits - 1)), (1 << (cfg.codebook_bits - 1)) - 1
    if big:
        vals = rng.choice([lo, hi, lo + 1, hi - 1], cfg.codebook_size - 1)
    else:
        vals = rng.integers(-(1 << (cfg.codebook_bits - 4)), 1 << (cfg.codebook_bits - 4), cfg.codebook_size - 1)
    vals[vals == 0] = 1
    return np.concatenate([[0], vals]).astype(np.int64)


def _layer(cfg, codes, rng, *, shift=None, relu=False, bias=None, big=False, name=""):
    codes = np.asarray(codes, np.uint8)
    out_len, in_len = codes.shape
    if bias is None:
        bias = rng.integers(-1000, 1000, out_len)
    if shift is None:
        shift = min(cfg.acc_bits - 1, 8)
    return QuantLayer(codes=codes, codebook=_codebook(cfg, rng, big), bias=np.asarray(bias, np.int64),
                      shift=shift, relu=relu, name=name)


def _inputs(cfg, in_len, rng, batch=2, density=0.5, signed=True):
    hi = 1 << (cfg.act_bits - 2)
    x = rng.integers(-hi if signed else 0, hi, (batch, in_len))
    x[rng.random((batch, in_len)) >= density] = 0
    return x.astype(np.int64)


def _codes(shape, rng, density, cfg):
    c = rng.integers(1, cfg.codebook_size, shape)
    c[rng.random(shape) >= density] = 0
    return c


def adversarial_cases(cfg: EIEConfig, seed: int = 0) -> list:
    """The adversarial layers of the test matrix, sized for ``cfg``."""
    rng = np.random.default_rng([seed, cfg.pes, 1])
    n = cfg.pes
    ml = cfg.max_len
    cases = []
    rows = min(ml, 5 * n + 3)                 # not divisible by N (unless N == 1... then any)
    cols = min(ml, 23)

    # Empty columns, all-zero rows and a fully dense column in one layer.
    c = _codes((rows, cols), rng, 0.4, cfg)
    c[:, ::3] = 0                             # empty columns
    c[1::4, :] = 0                            # all-zero rows
    c[:, 1] = rng.integers(1, cfg.codebook_size, rows)   # a fully dense column
    cases.append(("empty_cols_rows_dense_col", [_layer(cfg, c, rng)], _inputs(cfg, cols, rng, 3, 0.8)))

    # Zero runs of 15, 16, 31 and 100 (in PE 0's slice, local rows), and the same
    # runs starting after an entry, across column boundaries.
    for run in (15, 16, 31, 100):
        local = run + 2
        out = min(ml, local * n)
        if (out + n - 1) // n < run + 1:
            continue                          # the config cannot hold that many local rows
        c = np.zeros((out, 4), np.uint8)
        c[run * n, 0] = 3                     # run zeros before the first entry of PE 0, column 0
        c[0, 1] = 5
        if (run + 1) * n < out:
            c[(run + 1) * n, 1] = 7           # run zeros between two entries of PE 0, column 1
        c[out - 1, 2] = 1                     # the last row
        c[:, 3] = 0                           # an empty last column
        cases.append((f"zero_run_{run}", [_layer(cfg, c, rng)], _inputs(cfg, 4, rng, 2, 1.0)))

    # A single non-zero weight; all-zero input vector; fully dense input.
    c = np.zeros((rows, cols), np.uint8)
    c[rows // 2, cols // 2] = 9 % cfg.codebook_size or 1
    x = _inputs(cfg, cols, rng, 2, 1.0)
    cases.append(("single_nonzero", [_layer(cfg, c, rng)], x))
    c = _codes((rows, cols), rng, 0.5, cfg)
    cases.append(("zero_input", [_layer(cfg, c, rng, relu=True)], np.zeros((2, cols), np.int64)))
    cases.append(("dense_input_dense_weights", [_layer(cfg, _codes((rows, cols), rng, 1.0, cfg), rng, shift=12)],
                  _inputs(cfg, cols, rng, 2, 1.0)))

    # Saturation both ways: extreme codebook values, extreme inputs, no shift.
    c = _codes((rows, cols), rng, 0.7, cfg)
    lay = _layer(cfg, c, rng, shift=0, big=True, bias=np.zeros(rows, np.int64))
    hi = (1 << (cfg.act_bits - 1)) - 1
    x = rng.choice([-hi - 1, hi], (2, cols)).astype(np.int64)
    cases.append(("saturate", [lay], x))
    lay = _layer(cfg, c, rng, shift=3, big=True, relu=True)
    cases.append(("saturate_relu", [lay], x))
    # Largest bias magnitudes with the largest shift.
    bmax = (1 << (cfg.bias_bits - 1)) - 1
    bias = rng.choice([-bmax - 1, bmax, 0, 1], rows)
    cases.append(("bias_extremes", [_layer(cfg, c, rng, shift=cfg.acc_bits - 1, bias=bias)], x))
    cases.append(("bias_extremes_noshift", [_layer(cfg, c, rng, shift=0, bias=bias)], x))

    # 1x1 layers, alone and chained.
    one = [_layer(cfg, [[5]], rng, shift=2, relu=bool(k % 2)) for k in range(3)]
    big_in = min(1000, (1 << (cfg.act_bits - 1)) - 1)
    cases.append(("one_by_one", one[:1], np.array([[big_in], [-7], [0]])))
    cases.append(("one_by_one_chain", one, np.array([[big_in], [-7]])))

    # Chains of several layers with and without ReLU, lengths up to max_len.
    for relu in (False, True):
        lens = [min(ml, v) for v in (300, 3 * n + 1, 2 * n + 5, n + 2, 7)]
        depth = min(cfg.max_layers, len(lens) - 1)
        layers = []
        for l in range(depth):
            layers.append(_layer(cfg, _codes((lens[l + 1], lens[l]), rng, 0.3, cfg), rng, shift=9,
                                 relu=relu or l % 2 == 1))
        cases.append((f"chain_relu{int(relu)}", layers, _inputs(cfg, lens[0], rng, 2, 0.6)))

    # Full-length vectors (every register-file row used) with a dense-ish matrix.
    c = _codes((ml, min(ml, 2 * n + 1)), rng, 0.2, cfg)
    cases.append(("full_length_out", [_layer(cfg, c, rng)], _inputs(cfg, c.shape[1], rng, 1, 0.7)))
    return cases


def random_cases(cfg: EIEConfig, count: int, seed: int = 0, max_len: int = 160) -> list:
    """``count`` seeded random networks (1 to 3 layers, random shapes, densities,
    ReLU, signed or non-negative inputs), sized to fit ``cfg``."""
    rng = np.random.default_rng([seed, cfg.pes, 2])
    ml = min(cfg.max_len, max_len)
    cases = []
    k = 0
    while len(cases) < count:
        depth = int(rng.integers(1, min(3, cfg.max_layers) + 1))
        lens = [int(rng.integers(1, ml + 1)) for _ in range(depth + 1)]
        wd = float(rng.choice([0.02, 0.1, 0.3, 0.6, 1.0]))
        ad = float(rng.choice([0.0, 0.2, 0.5, 1.0])) if k % 7 else 1.0
        signed = bool(rng.integers(0, 2))
        layers, x0 = [], None
        for l in range(depth):
            layer, x = random_layer(rng, lens[l], lens[l + 1], wd, ad, cfg, relu=bool(rng.integers(0, 2)),
                                    signed_input=signed)
            layers.append(layer)
            if x0 is None:
                x0 = x
        k += 1
        try:
            build_image(layers, cfg)
        except ValueError:                    # does not fit this config's memories: draw again
            continue
        batch = int(rng.integers(1, 3))
        xs = [x0] + [_inputs(cfg, lens[0], rng, 1, ad, signed)[0] for _ in range(batch - 1)]
        cases.append((f"random_{len(cases)}", layers, np.stack(xs)))
    return cases


def images(cfg: EIEConfig, cases) -> list:
    """``(name, NetworkImage, inputs)`` of every case (the form :func:`eie.sim.driver.write_job` takes)."""
    return [(name, build_image(layers, cfg), x) for name, layers, x in cases]


# The build matrix: every PE count (1, 2, 3, 4, 8, 16, 64), queue depth (1, 2, 8),
# Spmat word width (1 and 8 entries), 8- and 16-bit numbers and 32- and 64-bit
# counters appear in at least one build.
# "tiny" (4 PEs) is the digits-mlp config, so the digits test shares its build.
def matrix() -> dict:
    from eie.config import preset
    return {
        "pe1": EIEConfig(pes=1, fifo_depth=1, entries_per_word=1, act_depth=256, spmat_depth=16384,
                         ptr_depth=1024, bias_depth=512, column_buffer_depth=1),
        # the iCEBreaker preset's number format: 8-bit activations and codebook, 32-bit counters
        "pe2": EIEConfig(pes=2, fifo_depth=2, entries_per_word=8, act_depth=128, spmat_depth=1024,
                         ptr_depth=1024, bias_depth=256, column_buffer_depth=2, act_bits=8, act_frac_bits=6,
                         codebook_bits=8, counter_bits=32),
        "pe3": EIEConfig(pes=3, fifo_depth=8, entries_per_word=1, act_depth=64, spmat_depth=4096,
                         ptr_depth=1024, bias_depth=128, column_buffer_depth=4),
        "tiny": preset("tiny"),
        "pe8": EIEConfig(pes=8, fifo_depth=2, entries_per_word=4, act_depth=40, spmat_depth=512,
                         ptr_depth=1024, bias_depth=128, column_buffer_depth=2),
        "pe16": EIEConfig(pes=16, fifo_depth=1, entries_per_word=8, act_depth=40, spmat_depth=256,
                          ptr_depth=1024, bias_depth=128, column_buffer_depth=4),
        "pe64": EIEConfig(pes=64, fifo_depth=8, entries_per_word=8, act_depth=34, spmat_depth=256,
                          ptr_depth=1024, bias_depth=64, column_buffer_depth=4, max_layers=4),
    }
