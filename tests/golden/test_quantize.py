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
    with pytest.raises(ValueError, match="digits-test, mnist-test, a .npy or a .npz"):
        load_inputs(str(tmp_path / "x.txt"), CFG, 5)
    with pytest.raises(ValueError, match="--limit"):
        load_inputs(str(tmp_path / "x.npy"), CFG, 5, limit=0)


def _one_input_layer(weights, bias, relu, unused=()):
    """A SharedLayer with one input: row i has weight ``weights[i]`` (codebook slot i + 1); the codebook
    also holds the values ``unused``, which no weight uses."""
    from eie.golden.share import SharedLayer
    codebook = np.zeros(CFG.codebook_size)
    codebook[1:len(weights) + 1] = weights
    codebook[len(weights) + 1:len(weights) + 1 + len(unused)] = unused
    codes = np.arange(1, len(weights) + 1, dtype=np.uint8)[:, None]
    return SharedLayer(codes=codes, codebook=codebook, bias=np.asarray(bias, np.float64), relu=relu, name="l")


# Expectations by hand from the contract in golden/quantize.py's docstring, with the tiny
# preset's numbers: act_bits = 16 (largest activation 32767, smallest -32768), act_frac_bits = 8,
# codebook_bits = 16, HEADROOM = 2. Every value is a binary fraction, so nothing rounds.
#   codebook_frac: most f with max|centroid| * 2**f <= 32767: 1.0 -> 14 (2**14 = 16384; 2**15 = 32768 >);
#                  1000 -> 5 (32000; 64000 >).
#   out_frac: most f <= min(15, in_frac + codebook_frac) with 2 * max|y| * 2**f <= 32767
#             (max y > 0 only, with ReLU); 0 when even f = 0 does not fit.
QUANT_CASES = [
    # (id, weights, bias, relu, X (one input each), codebook_frac, out_frac, saturated[, unused centroids])
    # outputs 3.5, 3.0, 1.5 | -10.5, -10.25, -9.5 | 0.25, 0.125, -0.25: max |y| = 10.5:
    # 2 * 10.5 = 21; 21 * 2**10 = 21504 fits, 21 * 2**11 = 43008 does not -> 10
    ("abs-max", [1.0, -0.5, 0.25], [2.5, -10.0, 0.0], False, [1.0, 0.5, -1.0], 14, 10, 0),
    # the same with ReLU: only the positive side, max 3.5: 7 * 2**12 = 28672 fits, 7 * 2**13 = 57344 not -> 12
    ("relu-positive-max", [1.0, -0.5, 0.25], [2.5, -10.0, 0.0], True, [1.0, 0.5, -1.0], 14, 12, 0),
    # outputs up to 2**-8: f = 21 would fit, capped at act_bits - 1 = 15
    ("capped-act-bits", [1.0], [0.0], False, [2.0 ** -8], 14, 15, 0),
    # codebook [1/32, 1000 (unused)] -> codebook_frac 5, in_frac 8; outputs up to 2**-13:
    # capped at in_frac + codebook_frac = 13 (shift 0)
    ("capped-acc-frac", [1 / 32], [0.0], False, [0.0, 2.0 ** -8], 5, 13, 0, [1000.0]),
    # outputs 32766 .. 32769 and -32766 .. -32769: even f = 0 does not fit -> 0; saturated:
    # 32768, 32769 (above 32767) and -32769 (below -32768): 3
    ("saturates", [1.0, -1.0], [32766.0, -32766.0], False, [0.0, 1.0, 2.0, 3.0], 14, 0, 3),
    # with ReLU the negative ones are zeroed, not saturated: 2
    ("saturates-relu", [1.0, -1.0], [32766.0, -32766.0], True, [0.0, 1.0, 2.0, 3.0], 14, 0, 2),
]


@pytest.mark.parametrize("weights, bias, relu, X, cb_frac, out_frac, saturated, unused",
                         [(c + ((),))[1:9] for c in QUANT_CASES], ids=[c[0] for c in QUANT_CASES])
def test_out_frac_is_the_most_that_fits_and_saturations_are_counted(weights, bias, relu, X, cb_frac, out_frac,
                                                                     saturated, unused):
    X = np.asarray(X, np.float64)[:, None]
    layers, input_frac, calib = quantize_network([_one_input_layer(weights, bias, relu, unused)], X, CFG)
    q, c = layers[0], calib[0]
    assert input_frac == 8                               # act_frac_bits: 2 * 3 * 2**8 fits 16 bits
    assert (q.codebook_frac, q.out_frac, q.shift) == (cb_frac, out_frac, 8 + cb_frac - out_frac)
    assert (c["codebook_frac"], c["out_frac"], c["saturated"]) == (cb_frac, out_frac, saturated)
    assert c["input_saturated"] == 0
    # The outputs, from the float network by hand: exact where they fit, else clamped.
    y = X @ np.asarray(weights)[None, :] + np.asarray(bias)
    if relu:
        y = np.maximum(y, 0)
    expect = np.clip(y, -32768 * 2.0 ** -out_frac, 32767 * 2.0 ** -out_frac)
    np.testing.assert_array_equal(fixed_point_outputs(layers, X, CFG, input_frac), expect)


def test_saturated_inputs_are_counted_exactly():
    """Inputs beyond +-2**15 lower the input fraction to 0 (the least); then exactly the inputs outside
    -32768..32767 after rounding half up are saturated: 40000, -40000, 32767.5 (rounds to 32768),
    -32769 (4), not 32767, -32768, -32768.5 (rounds to -32768) or 1."""
    X = np.array([[40000.0, 32767.0], [-40000.0, -32768.0], [32767.5, -32768.5], [-32769.0, 1.0]])
    layer = _one_input_layer([1.0, 1.0], [0.0, 0.0], False)
    layer.codes = np.array([[1, 0], [0, 2]], np.uint8)
    _, input_frac, calib = quantize_network([layer], X, CFG)
    assert input_frac == 0
    assert calib[0]["input_saturated"] == 4


def test_labels_refused_for_digits_test(tmp_path):
    """digits-test brings its own labels; --labels is only for FILE.npy inputs."""
    from eie.golden.quantize import load_inputs
    np.save(tmp_path / "y.npy", np.zeros(3, np.int64))
    with pytest.raises(ValueError, match=r"--labels is for FILE\.npy inputs; digits-test brings its own labels"):
        load_inputs("digits-test", CFG, 5, labels=str(tmp_path / "y.npy"))
