"""Deep Compression step 3 (EIE's part): fixed-point conversion with calibration.

The hardware's numbers (``docs/hardware.md``, "Numbers"): activations are
signed ``act_bits`` fixed point, codebook values signed ``codebook_bits``
fixed point, products exact, the accumulator seeded with the bias, and one
round-half-up right shift, saturation and optional ReLU at write-back. This
module picks, per layer, the binary point of each of those numbers:

``input_frac`` (the network input)
    ``cfg.act_frac_bits`` (the config's stated input format, and an upper
    bound), lowered only if the calibration inputs times :data:`HEADROOM`
    would saturate.
``codebook_frac``
    The most fraction bits with which the largest ``|centroid|`` still fits
    ``codebook_bits`` signed: the codebook uses its whole range. (Lowered if
    the bias, in accumulator units, would not fit ``bias_bits``.)
``out_frac`` (each layer's output, the next layer's ``in_frac``)
    The most fraction bits (0 .. ``act_bits - 1``) with which
    :data:`HEADROOM` times the largest output seen on the calibration data
    still fits ``act_bits`` signed, so nothing saturates on the calibration
    data and inputs up to twice as large as any seen are still safe. Only the
    positive side counts for a layer with ReLU (a negative value that
    saturates is zeroed by the ReLU anyway). The outputs are measured on the
    fixed-point network itself, layer by layer, so the measurement includes
    the rounding of earlier layers.
``bias``
    ``round(b * 2**(in_frac + codebook_frac))``: accumulator units.
``shift``
    ``in_frac + codebook_frac - out_frac`` (at least 0; ``out_frac`` is capped
    at ``in_frac + codebook_frac``).

Rounding from float to fixed point is round half up (``floor(v * 2**f + 1/2)``)
everywhere, as the hardware rounds.
"""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import numpy as np

from eie.format import FormatError, check_finite, read_npy

__all__ = ["HEADROOM", "to_fixed", "quantize_input", "dequantize", "frac_bits_for", "quantize_network",
           "fixed_point_outputs", "fixed_point_accuracy"]

HEADROOM = 2.0  # calibrated maxima are doubled before fitting them into act_bits (one spare integer bit)


def to_fixed(values, frac: int) -> np.ndarray:
    """``floor(values * 2**frac + 1/2)`` as int64 (round half up), no saturation (beyond +-2**62, where
    int64 would wrap: a huge input saturates to the right sign, an out-of-range bias stays detectable)."""
    v = np.asarray(values, dtype=np.float64)
    return np.clip(np.floor(np.ldexp(v, frac) + 0.5), -2.0 ** 62, 2.0 ** 62).astype(np.int64)


def _saturate(values, bits):
    return np.clip(values, -(1 << (bits - 1)), (1 << (bits - 1)) - 1)


def quantize_input(x, frac: int, cfg) -> np.ndarray:
    """Float network inputs to ``act_bits`` signed fixed point with ``frac`` fraction bits (saturating)."""
    return _saturate(to_fixed(x, frac), cfg.act_bits)


def dequantize(q, frac: int) -> np.ndarray:
    """Fixed-point integers with ``frac`` fraction bits back to float64."""
    return np.ldexp(np.asarray(q, dtype=np.float64), -frac)


def frac_bits_for(max_abs: float, bits: int, *, headroom: float = 1.0, lo: int = 0, hi: int | None = None) -> int:
    """Most fraction bits ``f`` in ``lo..hi`` with ``headroom * max_abs * 2**f <= 2**(bits-1) - 1``.

    ``hi`` defaults to ``bits - 1``. If even ``lo`` does not fit, returns ``lo``
    (the caller reports the saturation). ``max_abs == 0`` gives ``hi``.
    """
    hi = bits - 1 if hi is None else hi
    limit = (1 << (bits - 1)) - 1
    m = float(max_abs) * headroom
    if m <= 0.0:
        return hi
    f = math.floor(math.log2(limit / m))
    # Guard the floating-point edge of log2 both ways.
    while f + 1 <= hi and m * 2.0 ** (f + 1) <= limit:
        f += 1
    while f > lo and m * 2.0 ** f > limit:
        f -= 1
    return max(lo, min(hi, f))


def quantize_network(shared_layers, X_calib, cfg, *, headroom: float = HEADROOM, input_frac: int | None = None):
    """Convert float :class:`~eie.golden.share.SharedLayer` s to :class:`~eie.golden.encode.QuantLayer` s.

    ``X_calib`` (n, in_len) float are the calibration inputs (the training
    data). ``input_frac`` fixes the input's fraction bits (a program's EIE call
    gets its source tensor's). Returns ``(layers, input_frac, calibration)`` where ``calibration``
    is a list of per-layer dicts: the float maxima seen, the chosen fractions and
    the number of saturated outputs on the calibration data (0 unless a layer's
    range exceeds even ``out_frac = 0``; the first layer's dict also counts
    saturated network inputs as ``input_saturated``).
    """
    from . import reference
    from .encode import QuantLayer

    X = np.asarray(X_calib, dtype=np.float64)
    in_max = float(np.abs(X).max()) if X.size else 0.0
    if input_frac is None:
        input_frac = frac_bits_for(in_max, cfg.act_bits, headroom=headroom, hi=cfg.act_frac_bits)
    x = quantize_input(X, input_frac, cfg)
    input_saturated = int(np.count_nonzero(to_fixed(X, input_frac) != x))     # clamped by quantize_input
    in_frac = input_frac
    cb_lim = (1 << (cfg.codebook_bits - 1)) - 1
    bias_lim = (1 << (cfg.bias_bits - 1)) - 1
    layers, calibration = [], []
    for k, sl in enumerate(shared_layers):
        cmax = float(np.abs(sl.codebook).max())
        # Codebook fractions: fill codebook_bits; keep the bias and the shift in range.
        cb_frac = frac_bits_for(cmax, cfg.codebook_bits, lo=-(cfg.acc_bits), hi=cfg.acc_bits - 1 - in_frac)
        bmax = float(np.abs(sl.bias).max()) if sl.bias.size else 0.0
        while cb_frac > -cfg.acc_bits and bmax * 2.0 ** (in_frac + cb_frac) > bias_lim:
            cb_frac -= 1
        codebook = _saturate(to_fixed(sl.codebook, cb_frac), cfg.codebook_bits)
        codebook[0] = 0
        if np.any(np.abs(to_fixed(sl.codebook, cb_frac)) > cb_lim):
            raise ValueError(f"layer {k} ({sl.name}): weights up to {cmax:g} do not fit codebook_bits="
                             f"{cfg.codebook_bits} even with {cb_frac} fraction bits; scale the model's weights down "
                             f"or raise codebook_bits")
        acc_frac = in_frac + cb_frac
        if acc_frac < 0:
            raise ValueError(f"layer {k} ({sl.name}): weights up to {cmax:g} and bias up to {bmax:g} leave no "
                             f"fraction bits in the accumulator; scale the model's weights down")
        bias = to_fixed(sl.bias, acc_frac)
        # The bit-exact reference's accumulator (exact), before the shift is known.
        layer = QuantLayer(codes=sl.codes, codebook=codebook, bias=bias, shift=0, relu=sl.relu,
                           name=sl.name or f"fc{k + 1}", in_frac=in_frac, codebook_frac=cb_frac)
        acc = reference.accumulate(layer, x)
        real = np.ldexp(acc.astype(np.float64), -acc_frac)
        out_max = float(real.max(initial=0.0)) if sl.relu else float(np.abs(real).max(initial=0.0))
        out_frac = frac_bits_for(out_max, cfg.act_bits, headroom=headroom, hi=min(cfg.act_bits - 1, acc_frac))
        shift = acc_frac - out_frac
        layer = replace(layer, shift=shift, out_frac=out_frac)
        layer.check(cfg, index=k)
        # The reference's write-back; an output saturated if rounding left it out of act_bits (ReLU zeroes a
        # negative one anyway).
        y = reference.write_back(acc, shift, sl.relu, cfg)
        rounded = reference.round_shift(acc, shift)
        sat = rounded != reference.saturate(rounded, cfg.act_bits)
        if sl.relu:
            sat &= rounded > 0
        layers.append(layer)
        calibration.append({"name": layer.name, "input_saturated": input_saturated if k == 0 else 0, "in_max": float(np.abs(dequantize(x, in_frac)).max(initial=0.0)),
                            "out_max": out_max, "codebook_max": cmax, "bias_max": bmax, "in_frac": in_frac,
                            "codebook_frac": cb_frac, "out_frac": out_frac, "shift": shift,
                            "saturated": int(np.count_nonzero(sat))})
        x, in_frac = y, out_frac
    return layers, input_frac, calibration


def fixed_point_outputs(layers, X, cfg, input_frac: int, output_perm=None) -> np.ndarray:
    """Network outputs (batch, out_len) as float, by the bit-exact reference, in logical order.

    ``output_perm[i]`` is the logical output held at hardware output ``i``
    (identity when ``None``).
    """
    from .balance import unpermute_output
    from .reference import forward

    y = forward(layers, quantize_input(X, input_frac, cfg), cfg)
    y = np.atleast_2d(y)
    if output_perm is not None:
        y = unpermute_output(y, output_perm)
    return dequantize(y, layers[-1].out_frac)


def fixed_point_accuracy(layers, X, y, cfg, input_frac: int, output_perm=None) -> float:
    """Top-1 accuracy of the fixed-point network (bit-exact reference) on ``(X, y)``."""
    out = fixed_point_outputs(layers, X, cfg, input_frac, output_perm)
    return float(np.mean(out.argmax(axis=1) == np.asarray(y)))


_INPUTS_FIX = "--inputs expects digits-test, mnist-test, FILE.npy of shape (batch, in_len) (floats, or integers in fixed point) " \
              "or FILE.npz with X_test and y_test"


def load_inputs(spec: str, cfg, frac: int, *, in_len: int | None = None, labels=None, limit: int | None = None,
                classes: int | None = None, sequence: bool = False):
    """Network inputs for ``eie simulate`` and ``eie run``: ``(fixed-point inputs, labels or None, description)``.

    ``spec`` is ``digits-test`` or ``mnist-test`` (the test split of a built-in
    model's data and its labels: :data:`.models.TEST_INPUTS`), a
    ``.npy`` file of float inputs (quantised with ``frac`` fraction bits) or of
    integers (already ``act_bits`` fixed point, range-checked), or an ``.npz``
    with ``X_test`` and ``y_test`` (float inputs and labels, as for ``eie
    compress --data``). ``labels`` (a ``.npy`` of integers) gives labels to a
    ``.npy``'s inputs; ``limit`` keeps the first inputs; ``in_len`` is checked,
    and so are labels against ``classes`` (the network's outputs). With
    ``sequence`` (a recurrent program) inputs are ``(batch, T, in_len)``; flat
    rows of ``T * in_len`` values (``digits-test`` for a row-by-row model) are
    read as ``T`` steps. Damaged
    files, NaN or infinite inputs raise :class:`eie.format.FormatError`.
    """
    y = None
    from .models import TEST_INPUTS
    if spec in TEST_INPUTS:
        if labels:
            raise ValueError(f"--labels is for FILE.npy inputs; {spec} brings its own labels")
        _, _, X, y = TEST_INPUTS[spec]()
        what = spec
    else:
        path = Path(spec)
        if path.suffix not in (".npy", ".npz"):
            raise ValueError(f"--inputs must be {', '.join(TEST_INPUTS)}, a .npy or a .npz file, not {spec!r}")
        if not path.exists():
            raise FileNotFoundError(f"--inputs {path}: no such file (or use {' or '.join(TEST_INPUTS)})")
        if path.suffix == ".npz":
            from .models import load_data
            if labels:
                raise ValueError("--labels is for FILE.npy inputs; a .npz brings y_test")
            _, _, X, y = load_data(path, need_train=False, classes=classes)
        else:
            X = read_npy(path, what="inputs file", fix=_INPUTS_FIX)
        what = str(path)
    X = np.asarray(X)
    if sequence and X.ndim == 2 and in_len and X.shape[1] % in_len == 0:
        X = X.reshape(len(X), -1, in_len)
    if X.ndim == 1:
        X = X[None, :]
    if sequence and X.ndim != 3:
        raise FormatError(what, f"a recurrent network takes sequences (batch, T, {in_len}), not {X.shape}", _INPUTS_FIX)
    if X.ndim != 2 + sequence:
        raise FormatError(what, f"inputs must have shape (batch, in_len) or (in_len,), not {X.shape}", _INPUTS_FIX)
    if X.shape[0] == 0:
        raise FormatError(what, "holds no inputs (batch 0)", _INPUTS_FIX)
    if np.issubdtype(X.dtype, np.floating):
        check_finite(what, "the inputs", X, "replace NaN and infinite inputs by numbers before running them")
        Xq = quantize_input(X, frac, cfg)
    elif np.issubdtype(X.dtype, np.integer):
        lo, hi = -(1 << (cfg.act_bits - 1)), (1 << (cfg.act_bits - 1)) - 1
        if X.size and (X.min() < lo or X.max() > hi):
            raise FormatError(what, f"integer inputs are fixed-point activations and must be in {lo}..{hi} "
                                    f"(act_bits={cfg.act_bits})", "pass floats to have them quantised")
        Xq = X.astype(np.int64)
    else:
        raise FormatError(what, f"inputs must be floating point or integer, not {X.dtype}", _INPUTS_FIX)
    if in_len is not None and Xq.shape[-1] != in_len:
        raise FormatError(what, f"inputs have {Xq.shape[-1]} values each but the network takes {in_len}",
                          _INPUTS_FIX)
    if labels:
        y = read_npy(labels, what="labels file", fix="save the integer labels with numpy.save")
        if y.shape != (len(Xq),) or not np.issubdtype(y.dtype, np.integer) or y.dtype == bool:
            raise FormatError(labels, f"labels must be integers of shape ({len(Xq)},), not {y.dtype} {y.shape}",
                              "save one integer label per input with numpy.save")
        if classes is not None and y.size and (int(y.min()) < 0 or int(y.max()) >= classes):
            raise FormatError(labels, f"labels {int(y.min())}..{int(y.max())} are not all outputs of the network "
                                      f"(0..{classes - 1})", "save one class index per input with numpy.save")
    if limit is not None:
        if limit < 1:
            raise ValueError(f"--limit must be a positive integer, not {limit}")
        Xq = Xq[:limit]
        y = None if y is None else np.asarray(y)[:limit]
    return Xq, (None if y is None else np.asarray(y)), what
