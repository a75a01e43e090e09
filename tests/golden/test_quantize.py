"""Fixed-point conversion: rounding, calibration, and fixed point against float within a derived bound."""

import numpy as np
import pytest

from eie.config import preset
from eie.golden.quantize import (HEADROOM, dequantize, fixed_point_accuracy, fixed_point_outputs, frac_bits_for,
                                 quantize_input, quantize_network, to_fixed)
from eie.golden.reference import forward_all
from eie.golden.share import share_layer

CFG = preset("tiny")


def test_round_half_up():
    np.testing.assert_array_equal(to_fixed([0.5, -0.5, 1.5, -1.5, 0.49, -0.51], 0), [1, 0, 2, -1, 0, -1])
    np.testing.assert_array_equal(to_fixed([0.125, -0.0625], 4), [2, -1])


def test_quantize_input_saturates_and_dequantizes():
    q = quantize_input([0.25, 1000.0, -1000.0], 8, CFG)
    np.testing.assert_array_equal(q, [64, 32767, -32768])
    assert dequantize(64, 8) == 0.25


@pytest.mark.parametrize("max_abs", [1e-6, 0.3, 1.0, 7.9, 8.0, 1234.5, 40000.0])
def test_frac_bits_is_the_largest_that_fits(max_abs):
    f = frac_bits_for(max_abs, 16, headroom=2.0, lo=-8, hi=40)
    assert 2 * max_abs * 2.0 ** f <= 32767
    assert 2 * max_abs * 2.0 ** (f + 1) > 32767 or f == 40


def _network(rng, sizes=(12, 20, 8, 3), density=0.4, scale=0.5):
    layers = []
    for k, (i, o) in enumerate(zip(sizes[:-1], sizes[1:])):
        w = rng.standard_normal((o, i)) * scale
        mask = rng.random(w.shape) < density
        layers.append(share_layer(w * mask, mask, rng.standard_normal(o) * 0.1, index_bits=4,
                                  relu=k < len(sizes) - 2, name=f"fc{k + 1}"))
    return layers


def _float_forward(layers, X):
    acts = [np.asarray(X, dtype=np.float64)]
    for l in layers:
        y = acts[-1] @ l.weight.T + l.bias
        acts.append(np.maximum(y, 0) if l.relu else y)
    return acts


def test_fractions_follow_the_contract():
    rng = np.random.default_rng(0)
    shared = _network(rng)
    X = rng.random((200, 12))
    layers, input_frac, calib = quantize_network(shared, X, CFG)
    assert input_frac == CFG.act_frac_bits            # data in [0, 1): the config's input format fits
    in_frac = input_frac
    for q, s, c in zip(layers, shared, calib):
        q.check(CFG)
        assert q.in_frac == in_frac
        assert q.shift == q.in_frac + q.codebook_frac - q.out_frac >= 0
        # The codebook uses its range: the largest value needs the top magnitude bit.
        assert (1 << (CFG.codebook_bits - 2)) <= np.abs(q.codebook).max() <= (1 << (CFG.codebook_bits - 1)) - 1
        np.testing.assert_array_equal(q.codebook, to_fixed(s.codebook, q.codebook_frac))
        np.testing.assert_array_equal(q.bias, to_fixed(s.bias, q.in_frac + q.codebook_frac))
        np.testing.assert_array_equal(q.codes, s.codes)
        assert c["saturated"] == 0
        in_frac = q.out_frac
    # Nothing comes near saturation on the calibration data (HEADROOM spare), checked with the reference.
    acts = forward_all(layers, quantize_input(X, input_frac, CFG), CFG)
    for a in acts[1:]:
        assert np.abs(a).max() <= ((1 << (CFG.act_bits - 1)) - 1) / HEADROOM


def test_large_inputs_lower_the_input_fraction():
    rng = np.random.default_rng(1)
    shared = _network(rng)
    X = rng.random((50, 12)) * 1000
    _, input_frac, _ = quantize_network(shared, X, CFG)
    assert input_frac == 4      # 2 * 1000 * 2**4 = 32000 fits 16 bits, 2**5 would not


@pytest.mark.parametrize("bias_width, big", [(0, 3e5), (12, 40.0)])
def test_large_bias_lowers_codebook_fraction_to_fit_bias_bits(bias_width, big):
    cfg = CFG.replace(bias_width=bias_width)
    rng = np.random.default_rng(2)
    shared = _network(rng, sizes=(12, 5))
    shared[0].bias[:] = big
    X = rng.random((20, 12))
    layers, input_frac, _ = quantize_network(shared, X, cfg)
    q = layers[0]
    q.check(cfg)
    assert np.abs(q.bias).max() <= (1 << (cfg.bias_bits - 1)) - 1
    assert big * 2.0 ** (q.in_frac + q.codebook_frac + 1) > (1 << (cfg.bias_bits - 1)) - 1  # the most that fits
    # the narrower bias costs codebook fraction bits against the default width
    if bias_width:
        wide, _, _ = quantize_network(shared, X, CFG)          # the same network and calibration data
        assert q.codebook_frac < wide[0].codebook_frac


def error_bound(qlayers, shared, X):
    """Worst-case |fixed - float| per output, from the rounding steps (no saturation assumed).

    Input rounding <= 2**-(in_frac+1) per input; codebook rounding <= 2**-(codebook_frac+1) per
    weight; bias rounding <= 2**-(acc_frac+1); write-back rounding <= 2**-(out_frac+1); ReLU is
    1-Lipschitz. Propagated exactly through |W_fixed|.
    """
    acts = _float_forward(shared, X)
    e = np.full(X.shape, 2.0 ** -(qlayers[0].in_frac + 1))
    for q, s, x in zip(qlayers, shared, acts[:-1]):
        w_fixed = np.abs(dequantize(q.weights(), q.codebook_frac))
        nz = (q.codes != 0).astype(np.float64)
        e = (e @ w_fixed.T + np.abs(x) @ nz.T * 2.0 ** -(q.codebook_frac + 1)
             + 2.0 ** -(q.in_frac + q.codebook_frac + 1) + 2.0 ** -(q.out_frac + 1))
    return e, acts[-1]


@pytest.mark.parametrize("seed", range(3))
def test_fixed_point_matches_float_within_derived_bound(seed):
    rng = np.random.default_rng(seed)
    shared = _network(rng)
    X_cal, X_test = rng.random((300, 12)), rng.random((100, 12))
    layers, input_frac, _ = quantize_network(shared, X_cal, CFG)
    fixed = fixed_point_outputs(layers, X_test, CFG, input_frac)
    bound, flt = error_bound(layers, shared, X_test)
    assert np.all(np.abs(fixed - flt) <= bound)
    # The stated tolerance: with 16-bit numbers the error is below 1e-2 of the output range.
    assert np.abs(fixed - flt).max() <= 1e-2 * np.abs(flt).max()


def test_accuracy_with_output_permutation():
    rng = np.random.default_rng(7)
    shared = _network(rng)
    X = rng.random((100, 12))
    layers, input_frac, _ = quantize_network(shared, X, CFG)
    labels = _float_forward(shared, X)[-1].argmax(axis=1)
    assert fixed_point_accuracy(layers, X, labels, CFG, input_frac) > 0.95
    # Permute the last layer's rows; with the permutation passed, the accuracy is unchanged.
    from dataclasses import replace
    perm = np.array([2, 0, 1])
    last = layers[-1]
    layers_p = layers[:-1] + [replace(last, codes=last.codes[perm], bias=last.bias[perm])]
    assert (fixed_point_accuracy(layers_p, X, labels, CFG, input_frac, perm)
            == fixed_point_accuracy(layers, X, labels, CFG, input_frac))


def test_inputs_beyond_16_bits_are_counted_as_saturated():
    rng = np.random.default_rng(3)
    shared = _network(rng)
    X = rng.random((10, 12)) * 1e5
    _, input_frac, calib = quantize_network(shared, X, CFG)
    assert input_frac == 0
    assert calib[0]["input_saturated"] == np.count_nonzero(np.floor(X + 0.5) > 32767)


def test_load_inputs_accepts_every_form_and_names_bad_input(tmp_path):
    """One loader for `eie simulate` and `eie run`: digits-test, float/integer .npy (+ labels), .npz."""
    from eie.golden.quantize import load_inputs
    rng = np.random.default_rng(3)
    X = rng.normal(size=(6, 12))
    y = rng.integers(0, 3, 6)
    np.save(tmp_path / "x.npy", X)
    np.save(tmp_path / "y.npy", y)
    np.savez(tmp_path / "d.npz", X_test=X, y_test=y)
    q, labels, what = load_inputs(str(tmp_path / "x.npy"), CFG, 5, in_len=12, labels=str(tmp_path / "y.npy"))
    assert np.array_equal(q, quantize_input(X, 5, CFG)) and np.array_equal(labels, y)
    q2, labels2, _ = load_inputs(str(tmp_path / "d.npz"), CFG, 5, in_len=12, limit=4)
    assert np.array_equal(q2, q[:4]) and np.array_equal(labels2, y[:4])
    np.save(tmp_path / "xq.npy", q)
    q3, none, _ = load_inputs(str(tmp_path / "xq.npy"), CFG, 5)
    assert np.array_equal(q3, q) and none is None
    np.save(tmp_path / "big.npy", np.full((1, 12), 1 << CFG.act_bits))
    with pytest.raises(ValueError, match=f"act_bits={CFG.act_bits}"):
        load_inputs(str(tmp_path / "big.npy"), CFG, 5)
    with pytest.raises(ValueError, match="network takes 13"):
        load_inputs(str(tmp_path / "x.npy"), CFG, 5, in_len=13)
    with pytest.raises(ValueError, match="labels must be integers of shape"):
        load_inputs(str(tmp_path / "x.npy"), CFG, 5, labels=str(tmp_path / "x.npy"))
    with pytest.raises(ValueError, match="digits-test, a .npy or a .npz"):
        load_inputs(str(tmp_path / "x.txt"), CFG, 5)
    with pytest.raises(ValueError, match="--limit"):
        load_inputs(str(tmp_path / "x.npy"), CFG, 5, limit=0)
