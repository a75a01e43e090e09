"""How faithful a compressed network is to its float model: the one owner of these measures.

:func:`fidelity` compares a network's outputs ``approx`` (batch, outputs) with
the float model's ``reference`` on the same held-out inputs:

``rel_l2``
    ``||approx - reference|| / ||reference||`` over the whole batch (Frobenius norms).
``sqnr_db``
    ``10 log10(sum reference**2 / sum (approx - reference)**2)`` =
    ``-20 log10(rel_l2)``; ``null`` when the outputs are equal (infinite).
``cosine``
    Mean over the inputs of the cosine similarity of the two output vectors
    (1 for a pair of zero vectors, 0 for one zero vector).
``max_abs_error``
    Largest ``|approx - reference|`` of any output.
``argmax_agreement``
    Fraction of inputs whose largest output is the same output.
``accuracy``, ``reference_accuracy``
    With ``labels``: top-1 accuracy of ``approx`` and of ``reference``; else ``null``.
``samples``
    Number of inputs.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["fidelity", "float_outputs", "against_float_model", "METRICS"]

METRICS = ("rel_l2", "sqnr_db", "cosine", "max_abs_error", "argmax_agreement", "accuracy")


def fidelity(reference, approx, labels=None) -> dict:
    """The measures above of ``approx`` against ``reference`` (arrays of equal shape, (batch, outputs))."""
    r = np.atleast_2d(np.asarray(reference, dtype=np.float64))
    a = np.atleast_2d(np.asarray(approx, dtype=np.float64))
    if r.ndim > 2 and r.shape == a.shape:         # a sequence's outputs: one vector per input
        r, a = r.reshape(len(r), -1), a.reshape(len(a), -1)
    if r.shape != a.shape:
        raise ValueError(f"outputs of shape {a.shape} cannot be compared with reference outputs of shape {r.shape}")
    if r.shape[0] == 0:
        raise ValueError("fidelity needs at least one input")
    err = a - r
    signal, noise = float(np.sum(r * r)), float(np.sum(err * err))
    if noise == 0.0:
        rel_l2, sqnr = 0.0, None
    elif signal == 0.0:
        rel_l2, sqnr = None, None
    else:
        rel_l2, sqnr = math.sqrt(noise / signal), 10.0 * math.log10(signal / noise)
    nr, na = np.linalg.norm(r, axis=1), np.linalg.norm(a, axis=1)
    both = (nr > 0) & (na > 0)
    cos = np.where(both, np.sum(r * a, axis=1) / np.where(both, nr * na, 1.0), np.where((nr == 0) & (na == 0), 1.0, 0.0))
    out = {
        "samples": int(r.shape[0]),
        "rel_l2": rel_l2,
        "sqnr_db": sqnr,
        "cosine": float(np.mean(cos)),
        "max_abs_error": float(np.max(np.abs(err))),
        "argmax_agreement": float(np.mean(a.argmax(axis=1) == r.argmax(axis=1))),
        "accuracy": None,
        "reference_accuracy": None,
    }
    if labels is not None:
        y = np.asarray(labels).reshape(-1)
        if len(y) != r.shape[0]:
            raise ValueError(f"{len(y)} labels for {r.shape[0]} inputs")
        out["accuracy"] = float(np.mean(a.argmax(axis=1) == y))
        out["reference_accuracy"] = float(np.mean(r.argmax(axis=1) == y))
    return out


def float_outputs(model, X) -> np.ndarray:
    """Outputs of a float torch ``model`` on inputs ``X`` (batch, in_len), as float64."""
    import torch
    with torch.no_grad():
        return model(torch.as_tensor(np.asarray(X, dtype=np.float32))).double().numpy()


def summary(f: dict) -> str:
    """One line of the measures (human output)."""
    def num(v, fmt):
        return "exact" if v is None else format(v, fmt)
    text = (f"rel. L2 error {num(f['rel_l2'], '.4f')}, SQNR {num(f['sqnr_db'], '.1f')} dB, cosine "
            f"{f['cosine']:.4f}, max abs error {f['max_abs_error']:.4g}, argmax agreement {f['argmax_agreement']:.2%}")
    if f.get("accuracy") is not None:
        text += f", accuracy {f['accuracy']:.2%}"
    return text


def against_float_model(directory, manifest: dict, Xq, outputs, labels=None):
    """Fidelity of a compressed folder's fixed-point ``outputs`` (logical order, hardware units) on
    fixed-point inputs ``Xq`` (logical order) against its float model (``float_model.pt`` of
    ``eie compress``), which gets the same inputs dequantised: what ``eie simulate`` reports.
    ``None`` when the folder has no float model (written by an older ``eie compress``)."""
    from pathlib import Path

    from .quantize import dequantize
    name = manifest.get("files", {}).get("float_model")
    if not name or not (Path(directory) / name).exists():
        return None
    import torch
    model = torch.load(Path(directory) / name, weights_only=False)
    ref = float_outputs(model, dequantize(Xq, int(manifest["input_frac"])))
    result = fidelity(ref, dequantize(outputs, int(manifest["output_frac"])), labels)
    result["source"] = "the simulated inputs (as quantised), against float_model.pt"
    return result
