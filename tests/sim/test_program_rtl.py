"""Programs on the RTL: a residual GELU/LayerNorm MLP, an LSTM and a GRU, each saved as a file, compressed
with one `eie compress` command and run by `eie simulate` (host steps between EIE calls), bit-exact and
cycle-exact per EIE call."""

import json

import numpy as np
import pytest
import torch

from eie.cli import main as eie_main
from eie.golden.examples import example_data, train_example

# name -> (EIE calls per input: one per Linear chain, or one per time step plus the head)
CASES = {"digits-resmlp": 3, "digits-lstm": 9, "digits-gru": 9}


def _run(capsys, *argv):
    capsys.readouterr()
    code = eie_main([str(a) for a in argv])
    return code, json.loads(capsys.readouterr().out)


@pytest.mark.slow
@pytest.mark.xdist_group("sim_tiny")
@pytest.mark.parametrize("name", sorted(CASES))
def test_example_compresses_in_one_command_and_runs_bit_and_cycle_exact(name, tmp_path, capsys):
    model = train_example(name, epochs=4)
    torch.save(model, tmp_path / "model.pt")
    X_train, y_train, X_test, y_test = example_data(name)
    np.savez(tmp_path / "data.npz", X_train=X_train, y_train=y_train, X_test=X_test[:40], y_test=y_test[:40])
    code, rep = _run(capsys, "compress", "--model", tmp_path / "model.pt", "--data", tmp_path / "data.npz",
                     "--config", "tiny", "--density", "0.3", "--quick", "-o", tmp_path / "net", "--json")
    assert code == 0
    part = rep["partition"]
    assert 0.9 < part["eie_share"] < 1.0 and part["host_ops"]            # host work exists, EIE does most
    for stage in ("pruned", "shared", "fixed_point"):
        assert rep["fidelity"][stage]["accuracy"] is not None
    np.save(tmp_path / "x.npy", X_test[:6])
    code, res = _run(capsys, "simulate", tmp_path / "net", "--inputs", tmp_path / "x.npy", "--json")
    assert code == 0
    assert res["mismatches"] == 0, res["first_mismatch"]
    assert res["cycle_model_checked"] and res["cycles"] == res["cycles_model"]
    assert res["eie_calls_per_inference"] == [CASES[name]] * 6
    # The RTL's outputs are the compressed network's: its predictions agree with the fidelity measured by
    # compress on the same inputs' float model (argmax agreement of the RTL run is reported, not assumed).
    assert res["fidelity"]["samples"] == 6 and res["predictions_equal"]
