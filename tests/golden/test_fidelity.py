"""golden/fidelity.py: the fidelity measures against hand-computed values."""

import math

import pytest

from eie.golden.fidelity import fidelity


def test_hand_computed():
    # error [[0, 1], [-1, 2]]: noise 6; signal 9 + 16 + 1 = 26
    ref = [[3.0, 4.0], [1.0, 0.0]]
    approx = [[3.0, 5.0], [0.0, 2.0]]
    f = fidelity(ref, approx, labels=[1, 1])
    assert f["samples"] == 2
    assert f["rel_l2"] == pytest.approx(math.sqrt(6 / 26))
    assert f["sqnr_db"] == pytest.approx(10 * math.log10(26 / 6))
    # cosines: (9 + 20) / (5 * sqrt(34)) and 0 / (1 * 2) = 0
    assert f["cosine"] == pytest.approx((29 / (5 * math.sqrt(34)) + 0.0) / 2)
    assert f["max_abs_error"] == 2.0
    assert f["argmax_agreement"] == 0.5          # row 0: 1 = 1; row 1: 1 != 0
    assert f["accuracy"] == 1.0 and f["reference_accuracy"] == 0.5


def test_exact_and_unlabelled():
    f = fidelity([[1.0, -2.0]], [[1.0, -2.0]])
    assert f["rel_l2"] == 0.0 and f["sqnr_db"] is None and f["cosine"] == pytest.approx(1.0)
    assert f["max_abs_error"] == 0.0 and f["argmax_agreement"] == 1.0
    assert f["accuracy"] is None and f["reference_accuracy"] is None


def test_shape_mismatch_refused():
    with pytest.raises(ValueError, match="cannot be compared"):
        fidelity([[1.0, 2.0]], [[1.0, 2.0, 3.0]])


def test_against_float_model_of_a_folder(tmp_path):
    """What `eie simulate` reports: a folder's fixed-point outputs against its float_model.pt."""
    import numpy as np
    import torch
    import torch.nn as nn

    from eie.config import preset
    from eie.format import read_manifest
    from eie.golden.balance import unpermute_output
    from eie.golden.fidelity import against_float_model, float_outputs
    from eie.golden.pipeline import compress, write_output
    from eie.golden.quantize import dequantize, quantize_input
    from eie.golden.reference import forward

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(12, 20), nn.ReLU(), nn.Linear(20, 4))
    X = np.random.default_rng(1).standard_normal((30, 12))
    result = compress(model, preset("tiny"), density=0.5, inputs=X, progress=None)
    write_output(result, tmp_path / "o")
    manifest = read_manifest(tmp_path / "o")
    assert manifest["files"]["float_model"] == "float_model.pt"
    cfg = result.config
    Xq = quantize_input(X, manifest["input_frac"], cfg)
    out = unpermute_output(forward(result.layers, Xq, cfg), manifest["output_perm"])
    f = against_float_model(tmp_path / "o", manifest, Xq, out, labels=np.zeros(30, int))
    want = fidelity(float_outputs(model, dequantize(Xq, manifest["input_frac"])),
                    dequantize(out, manifest["output_frac"]), np.zeros(30, int))
    assert {k: f[k] for k in want} == want and f["samples"] == 30
    del manifest["files"]["float_model"]
    assert against_float_model(tmp_path / "o", manifest, Xq, out) is None
