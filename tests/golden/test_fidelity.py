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
