"""digits-mlp data and training cache; user models: loading and refusals."""

import textwrap

import numpy as np
import pytest
import torch
import torch.nn as nn

from eie.config import preset
from eie.golden import models
from eie.golden.models import (build_digits_mlp, digits_mlp, digits_split, load_data, load_model,
                               network_layers)
from eie.golden.models import set_threads

set_threads()   # one torch thread: the machine is shared by parallel tests

CFG = preset("tiny")        # max_len = 4 * 128 = 512


def test_digits_split_is_fixed_stratified_and_scaled():
    X_train, y_train, X_test, y_test = digits_split()
    assert X_train.shape == (1437, 64) and X_test.shape == (360, 64)
    assert X_train.dtype == np.float32 and y_test.dtype == np.int64
    assert X_train.min() == 0.0 and X_train.max() == 1.0           # pixel / 16
    np.testing.assert_array_equal(np.unique(X_test * 16), np.arange(17))
    # Stratified: every class has 20 % of its images in the test split (to rounding).
    total = np.bincount(np.concatenate([y_train, y_test]))
    assert np.all(np.abs(np.bincount(y_test) - 0.2 * total) <= 1)
    again = digits_split()
    np.testing.assert_array_equal(again[2], X_test)
    np.testing.assert_array_equal(again[3], y_test)


def test_digits_mlp_trains_and_caches(tmp_path, monkeypatch):
    monkeypatch.setenv("EIE_CACHE", str(tmp_path))
    lines = []
    model = digits_mlp(seed=3, epochs=2, progress=lines.append)
    assert any("epoch 2/2" in l for l in lines)
    cached = list(tmp_path.glob("digits-mlp-*seed3-e2.pt"))
    assert len(cached) == 1
    lines.clear()
    again = digits_mlp(seed=3, epochs=2, progress=lines.append)
    assert any("loaded" in l for l in lines)
    for a, b in zip(model.state_dict().values(), again.state_dict().values()):
        assert torch.equal(a, b)
    X_train, y_train, _, _ = digits_split()
    assert models.accuracy(model, X_train, y_train) > 0.5         # two epochs already learn something


def test_digits_mlp_shape():
    specs = network_layers(build_digits_mlp(), CFG)
    assert [(s.in_len, s.out_len, s.relu) for s in specs] == [(64, 300, True), (300, 100, True), (100, 10, False)]


@pytest.mark.parametrize("model, match", [
    (nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU()), r"layer 0 \(Conv2d\) is not supported"),
    (nn.Sequential(nn.Linear(8, 8), nn.Tanh()), r"layer 1 \(Tanh\) is not supported"),
    (nn.Sequential(nn.ReLU(), nn.Linear(8, 8)), r"layer 0 \(ReLU\) is the first module"),
    (nn.Sequential(nn.Linear(8, 8), nn.ReLU(), nn.ReLU()), r"layer 2 \(ReLU\) follows another ReLU"),
    (nn.Sequential(nn.Linear(600, 8)), r"layer 0 \(Linear 600->8\): in_features=600 exceeds .*max_len = pes \* "
                                       r"act_depth = 4 \* 128 = 512"),
    (nn.Sequential(nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 513)),
     r"layer 2 \(Linear 8->513\): out_features=513 exceeds .* 512"),
    (nn.Sequential(nn.Linear(8, 9), nn.Linear(8, 3)), r"layer 1 .*in_features=8 does not match .*out_features=9"),
    (nn.Sequential(*[nn.Linear(4, 4) for _ in range(9)]), r"9 Linear layers .*max_layers=8"),
    (nn.Linear(4, 4), r"must be a torch.nn.Sequential"),
    (nn.Sequential(), r"no Linear layer"),
])
def test_unsupported_models_refused_with_layer_and_limit(model, match):
    with pytest.raises(ValueError, match=match):
        network_layers(model, CFG)


def test_load_saved_sequential(tmp_path):
    net = nn.Sequential(nn.Linear(5, 6), nn.ReLU(), nn.Linear(6, 2))
    path = tmp_path / "m.pt"
    torch.save(net, path)
    loaded = load_model(str(path))
    assert [type(m) for m in loaded] == [nn.Linear, nn.ReLU, nn.Linear]
    assert torch.equal(loaded[0].weight, net[0].weight)
    torch.save(net.state_dict(), tmp_path / "sd.pt")
    with pytest.raises(ValueError, match="state_dict"):
        load_model(str(tmp_path / "sd.pt"))


def test_load_module_function(tmp_path, monkeypatch):
    (tmp_path / "my_user_model.py").write_text(textwrap.dedent("""
        import torch.nn as nn
        def build():
            return nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    model = load_model("my_user_model:build")
    assert len(network_layers(model, CFG)) == 2
    with pytest.raises(ValueError, match="no function 'nope'"):
        load_model("my_user_model:nope")
    with pytest.raises(ValueError, match="cannot import module"):
        load_model("no_such_module_xyz:build")
    with pytest.raises(FileNotFoundError, match="neither"):
        load_model("missing-file.pt")


def test_load_data(tmp_path):
    rng = np.random.default_rng(0)
    good = dict(X_train=rng.random((10, 5)), y_train=np.arange(10) % 3, X_test=rng.random((4, 5)),
                y_test=np.arange(4) % 3)
    np.savez(tmp_path / "d.npz", **good)
    X_train, y_train, X_test, y_test = load_data(tmp_path / "d.npz", 5)
    assert X_train.dtype == np.float32 and y_test.dtype == np.int64 and X_test.shape == (4, 5)
    with pytest.raises(ValueError, match="first layer takes 6"):
        load_data(tmp_path / "d.npz", 6)
    np.savez(tmp_path / "bad.npz", X_train=good["X_train"])
    with pytest.raises(ValueError, match="lacks array"):
        load_data(tmp_path / "bad.npz")
    np.savez(tmp_path / "float_labels.npz", **{**good, "y_train": good["y_train"] * 0.5})
    with pytest.raises(ValueError, match="integer class labels, not float64 .float targets look like a regression "
                                         "task.*--inputs X.npy, which retrains by MSE distillation"):
        load_data(tmp_path / "float_labels.npz")
    with pytest.raises(FileNotFoundError):
        load_data(tmp_path / "none.npz")


def test_load_data_test_only(tmp_path):
    np.savez(tmp_path / "t.npz", X_test=np.zeros((3, 4)), y_test=np.array([0, 1, 2]))
    X_train, y_train, X_test, y_test = load_data(tmp_path / "t.npz", 4, need_train=False)
    assert X_train is None and y_train is None and X_test.shape == (3, 4)
    with pytest.raises(ValueError, match="lacks array"):
        load_data(tmp_path / "t.npz", 4)
