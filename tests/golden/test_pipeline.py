"""The whole compression of a user model: fixed point vs float PyTorch, storage figures, output folder."""

import re
from dataclasses import replace

import numpy as np
import pytest
import torch
import torch.nn as nn

from eie.config import preset
from eie.format import NetworkImage, read_manifest
from eie.golden.encode import decode_image, load_layers
from eie.golden.models import set_threads
from eie.golden.pipeline import Schedule, compress, format_report, write_output
from eie.golden.quantize import dequantize, fixed_point_outputs, quantize_input
from eie.golden.reference import forward

set_threads()   # one torch thread: the machine is shared by parallel tests

CFG = preset("tiny")
QUICK = Schedule(float_epochs=0, prune_steps=2, prune_epochs=3, share_epochs=2)


def _data(seed=0, n=600, d=16, classes=4):
    """Gaussian blobs: a task a small MLP learns in a few epochs."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((classes, d)) * 2
    y = rng.integers(0, classes, n)
    X = (centres[y] + rng.standard_normal((n, d))).astype(np.float32)
    return X[:480], y[:480], X[480:], y[480:]


def _trained_model(data, seed=0):
    from eie.golden.models import train_classifier
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(16, 40), nn.ReLU(), nn.Linear(40, 24), nn.ReLU(), nn.Linear(24, 4))
    train_classifier(model, data[0], data[1], epochs=5, lr=3e-3)
    return model


@pytest.fixture(scope="module")
def data():
    return _data()


@pytest.fixture(scope="module")
def result(data):
    return compress(_trained_model(data), CFG, data=data, schedule=QUICK, balance=False, progress=None)


def test_fixed_point_matches_float_pytorch_within_bound(result, data):
    """Tolerance: the worst-case rounding error of every stage, propagated (see test_quantize), + 1e-4 float32."""
    X_test = data[2]
    layers = result.layers
    fixed = fixed_point_outputs(layers, X_test, CFG, result.input_frac, result.output_perm)
    with torch.no_grad():
        flt = result.compressed_model(torch.from_numpy(X_test)).double().numpy()
        acts = [torch.from_numpy(X_test)]
        for m in result.compressed_model:
            acts.append(m(acts[-1]))
    # The float input of every Linear (the network input, then each ReLU's output).
    inputs = [acts[i].double().numpy() for i, m in enumerate(result.compressed_model) if isinstance(m, nn.Linear)]
    assert len(inputs) == len(layers)
    e = np.full(X_test.shape, 2.0 ** -(result.input_frac + 1))
    for q, x in zip(layers, inputs):
        w_fixed = np.abs(dequantize(q.weights(), q.codebook_frac))
        nz = (q.codes != 0).astype(np.float64)
        e = (e @ w_fixed.T + np.abs(x) @ nz.T * 2.0 ** -(q.codebook_frac + 1)
             + 2.0 ** -(q.in_frac + q.codebook_frac + 1) + 2.0 ** -(q.out_frac + 1))
    assert np.all(np.abs(fixed - flt) <= e + 1e-4 * (1 + np.abs(flt)))
    assert np.abs(fixed - flt).max() < 0.05
    acc = result.report["accuracy"]
    assert acc["fixed_point"] == pytest.approx(np.mean(fixed.argmax(1) == data[3]))
    assert abs(acc["fixed_point"] - acc["shared"]) <= 0.02
    assert acc["float"] > 0.9
    assert result.report["objective"] == {"loss": "cross_entropy", "source": "--data labels (480 training inputs)"}


def test_balancing_keeps_the_function(result, data):
    balanced = compress(_trained_model(data), CFG, data=data, schedule=QUICK, balance=True, progress=None)
    X = data[2]
    np.testing.assert_array_equal(fixed_point_outputs(balanced.layers, X, CFG, balanced.input_frac,
                                                      balanced.output_perm),
                                  fixed_point_outputs(result.layers, X, CFG, result.input_frac, None))
    assert sorted(balanced.output_perm) == list(range(4))


def test_densities_and_image(result):
    report = result.report
    assert report["densities"] == [0.08, 0.08, 0.25]
    for layer, d in zip(result.layers, report["densities"]):
        assert layer.nnz == round(d * layer.codes.size)
    x = quantize_input(np.random.default_rng(0).random((5, 16)), result.input_frac, CFG)
    # The memory image alone computes the same network.
    for a, b in zip(decode_image(result.image), result.layers):
        np.testing.assert_array_equal(a.codes, b.codes)
    np.testing.assert_array_equal(forward(decode_image(result.image), x, CFG), forward(result.layers, x, CFG))


def test_storage_figures_from_first_principles(result):
    c, rows = result.report["compression"], result.report["layers"]
    layers, n = result.layers, CFG.pes
    dense = 4 * sum(l.codes.size + l.out_len for l in layers)
    entries = sum(e.entries for e in result.encoded)
    # Every stored entry is 4 + 4 bits; N (in_len + 1) pointers per layer; 16 codebook values per layer.
    eie_bits = entries * (CFG.index_bits + CFG.zrun_bits) + sum(n * (l.in_len + 1) * CFG.ptr_bits for l in layers) \
        + len(layers) * 16 * CFG.codebook_bits
    assert c["dense_bytes"] == dense
    assert c["eie_bytes"] == -(-eie_bits // 8)
    assert c["ratio"] == pytest.approx(dense / c["eie_bytes"])
    assert c["huffman_bytes"] <= c["eie_bytes"] + 2 * len(layers) * 8   # code tables may cost a little on tiny layers
    for row, enc, layer in zip(rows, result.encoded, layers):
        assert row["padding"] == enc.padding and row["entries"] == enc.entries
        assert row["entries"] - row["padding"] == layer.nnz
        assert sum(row["pe_entries"]) == row["entries"]


def test_write_output_round_trip(result, tmp_path):
    files = write_output(result, tmp_path / "out")
    manifest = read_manifest(tmp_path / "out")
    assert manifest["config"] == CFG.to_dict()
    assert manifest["input_frac"] == result.input_frac
    assert manifest["output_perm"] == result.output_perm
    assert [l["shift"] for l in manifest["layers"]] == [l.shift for l in result.layers]
    for key in ("in_frac", "out_frac", "codebook_frac", "density", "padding"):
        assert all(key in l for l in manifest["layers"])
    for a, b in zip(load_layers(files["layers"]), result.layers):
        np.testing.assert_array_equal(a.codes, b.codes)
        np.testing.assert_array_equal(a.codebook, b.codebook)
        np.testing.assert_array_equal(a.bias, b.bias)
        assert a.metadata() == b.metadata()
    image = NetworkImage.load(files["image"])
    np.testing.assert_array_equal(image.spmat, result.image.spmat)
    model = torch.load(files["model"], weights_only=False)
    assert isinstance(model, nn.Sequential)
    assert "Deep Compression of" in format_report(result.report)


def test_without_data_still_compresses():
    torch.manual_seed(1)
    model = nn.Sequential(nn.Linear(16, 20), nn.ReLU(), nn.Linear(20, 3))
    r = compress(model, CFG, density=0.3, progress=None)
    assert r.report["accuracy"] == {"float": None, "pruned": None, "shared": None, "fixed_point": None}
    assert any("no --data" in note for note in r.report["notes"])
    assert r.report["objective"]["loss"] == "none"
    assert [l.nnz for l in r.layers] == [round(0.3 * 320), round(0.3 * 60)]
    assert "note: no --data" in format_report(r.report)


def test_digits_mlp_refused_without_retraining_when_config_too_small():
    with pytest.raises(ValueError, match=r"act_depth needs 300 \(limit 128\).*out_len=300 is out of range 1..128 "
                                         r"\(max_len = pes \* act_depth = 1 \* 128\)"):
        compress("digits-mlp", replace(CFG, pes=1), progress=None)


def test_inputs_must_be_batch_by_in_len(tmp_path):
    """--inputs: (batch >= 1, in_len) floats; one vector is a batch of one; anything else names its shape."""
    from eie.format import FormatError
    from eie.golden.pipeline import _load_inputs
    X = np.arange(18, dtype=np.float32).reshape(3, 6)
    assert _load_inputs(X, 6).shape == (3, 6)
    assert _load_inputs(X[0], 6).shape == (1, 6)
    np.save(tmp_path / "x.npy", X)
    assert np.array_equal(_load_inputs(tmp_path / "x.npy", 6), X)
    for bad in (X[:, :5], np.zeros((0, 6)), np.zeros((2, 3, 6))):
        with pytest.raises(FormatError, match=rf"inputs must have shape \(batch >= 1, in_len = 6\), not "
                                              rf"{re.escape(str(bad.shape))}"):
            _load_inputs(bad, 6)


def _ffn(seed=0):
    """A regression network (a transformer-like feed-forward block): its outputs are values, not classes."""
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(16, 64), nn.ReLU(), nn.Linear(64, 16))


def test_unlabelled_inputs_retrain_by_distillation():
    """--inputs without labels: pruning retraining and centroid fine-tuning match the float model's outputs
    (MSE) on the inputs not held out, and so bring the held-out outputs much closer than no retraining."""
    X = np.random.default_rng(3).standard_normal((400, 16)).astype(np.float32)
    no_training = Schedule(float_epochs=0, prune_steps=1, prune_epochs=0, share_epochs=0)
    distil = Schedule(float_epochs=0, prune_steps=2, prune_epochs=15, share_epochs=5)
    kw = dict(density=0.2, inputs=X, progress=None, balance=False, share_init="linear")
    model = _ffn()
    before = [p.detach().clone() for p in model.parameters()]
    r0 = compress(_ffn(), CFG, schedule=no_training, **kw)
    r1 = compress(model, CFG, schedule=distil, **kw)
    assert r1.report["objective"]["loss"] == "mse_distillation"
    assert "320 inputs" in r1.report["objective"]["source"]          # the 80 held out are not trained on
    assert r1.report["fidelity"]["source"].startswith("--inputs: 80 held-out inputs")
    for stage in ("pruned", "shared", "fixed_point"):
        assert r1.report["fidelity"][stage]["rel_l2"] < 0.75 * r0.report["fidelity"][stage]["rel_l2"], stage
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))   # the float model is untouched
    assert not any("without retraining" in note for note in r1.report["notes"])
    assert "retraining objective: mse_distillation" in format_report(r1.report)


def test_distillation_targets_and_losses_checked():
    from eie.golden.models import train_classifier
    model = _ffn()
    X = np.zeros((8, 16), np.float32)
    with pytest.raises(ValueError, match="training loss must be one of cross_entropy, mse_distillation, not 'mse'"):
        train_classifier(model, X, np.zeros((8, 16)), epochs=1, loss="mse")
    with pytest.raises(ValueError, match=r"distillation targets must be the float model's outputs, shape "
                                         r"\(n=8, outputs\), not \(8,\)"):
        train_classifier(model, X, np.zeros(8), epochs=1, loss="mse_distillation")
