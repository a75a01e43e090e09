"""--max-error: per-layer sensitivity, the density choice, verification on the whole pipeline and back-off."""

from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn as nn

from eie.config import preset
from eie.golden.models import network_layers, set_threads
from eie.golden.pipeline import Schedule, compress, format_report
from eie.golden.prune import magnitude_mask
from eie.golden.sensitivity import (CANDIDATE_DENSITIES, check_max_error, choose_densities, compress_within,
                                    sensitivity_table)
from eie.golden.share import share_layer

set_threads()   # one torch thread: the machine is shared by parallel tests

CFG = preset("tiny")
QUICK = Schedule(float_epochs=0, prune_steps=2, prune_epochs=8, share_epochs=3)


def _ffn(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(16, 64), nn.ReLU(), nn.Linear(64, 16))


def _rel_l2(ref, out):
    return float(np.linalg.norm(out - ref) / np.linalg.norm(ref))


def test_sensitivity_is_one_layer_pruned_and_shared_alone():
    model = _ffn()
    specs = network_layers(model, CFG, limits=False)
    X = np.random.default_rng(0).standard_normal((64, 16)).astype(np.float32)
    before = [p.detach().clone() for p in model.parameters()]
    table = sensitivity_table(model, specs, X, index_bits=4, share_init="linear")
    assert table["metric"] == "rel_l2" and table["densities"] == sorted(CANDIDATE_DENSITIES)
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))     # the model is untouched
    # One entry recomputed by hand in numpy: fc2 at 25 %, fc1 left dense.
    W1, b1 = model[0].weight.detach().double().numpy(), model[0].bias.detach().double().numpy()
    W2, b2 = model[2].weight.detach().double().numpy(), model[2].bias.detach().double().numpy()
    mask = magnitude_mask(W2, 0.25)
    W2s = share_layer(W2 * mask, mask, b2, index_bits=4, relu=False, init="linear", seed=1).weight
    h = np.maximum(X @ W1.T + b1, 0)
    i = table["densities"].index(0.25)
    assert table["layers"][1]["errors"][i] == pytest.approx(_rel_l2(h @ W2.T + b2, h @ W2s.T + b2), rel=1e-4)
    for row in table["layers"]:
        assert row["errors"][0] > row["errors"][-1]                     # 1 % hurts more than 100 %
        assert row["monotone"] == [max(row["errors"][i:]) for i in range(len(row["errors"]))]


def _table(curves, weights):
    dens = [0.1, 0.25, 0.5, 1.0]
    return {"metric": "rel_l2", "densities": dens,
            "layers": [{"name": f"fc{k + 1}", "weights": w, "errors": c, "monotone": c}
                       for k, (c, w) in enumerate(zip(curves, weights))]}


def test_choice_meets_the_budget_and_cannot_go_lower():
    curves = [[0.5, 0.1, 0.02, 0.0], [0.3, 0.2, 0.05, 0.01], [0.05, 0.01, 0.0, 0.0]]
    table = _table(curves, [10000, 1000, 100])
    for budget in (0.01, 0.05, 0.12, 0.3, 2.0):
        dens, predicted = choose_densities(table, budget)
        idx = [table["densities"].index(d) for d in dens]
        total = sum(c[i] for c, i in zip(curves, idx))
        assert predicted == pytest.approx(total)
        assert total <= budget + 1e-12
        for k, i in enumerate(idx):      # no single layer can step lower within the budget
            if i > 0:
                assert total - curves[k][i] + curves[k][i - 1] > budget + 1e-12
    assert choose_densities(table, 2.0)[0] == [0.1, 0.1, 0.1]
    assert choose_densities(table, 0.0)[0] == [1.0, 1.0, 0.5]       # free steps only, even over the budget


def test_back_off_when_the_pipeline_is_worse_than_predicted():
    """The stub pipeline's error is twice the sensitivity's prediction: the first choice fails, the budget is
    cut until a run meets the target, and the run returned is the most compressed one that met it."""
    model = _ffn()
    specs = network_layers(model, CFG, limits=False)
    X = np.random.default_rng(1).standard_normal((64, 16)).astype(np.float32)
    target = 0.4

    def run(choose):
        dens = choose(model, specs, None, None, X, 16, 0, 4, "linear")
        table = sensitivity_table(model, specs, X, index_bits=4, share_init="linear")
        error = 2 * sum(row["monotone"][table["densities"].index(d)] for row, d in zip(table["layers"], dens))
        ratio = 1 / np.mean(dens)
        return SimpleNamespace(report={"densities": dens, "notes": [], "compression": {"ratio": ratio},
                                       "fidelity": {"fixed_point": {"rel_l2": error}}})

    r = compress_within(run, target, max_tries=6)
    me = r.report["max_error"]
    assert not me["attempts"][0]["met"] and me["attempts"][0]["achieved"] > target
    assert me["met"] and me["achieved"] <= target
    assert me["densities"] == r.report["densities"]
    met = [a for a in me["attempts"] if a["met"]]
    assert me["ratio"] == max(a["ratio"] for a in met)
    assert [a["densities"] for a in me["attempts"]] == [list(d) for d in
                                                          {tuple(a["densities"]): 0 for a in me["attempts"]}]  # no repeats


def test_unreachable_target_says_so():
    model = _ffn()
    specs = network_layers(model, CFG, limits=False)

    def run(choose):
        dens = choose(model, specs, None, None, None, 16, 0, 4, "linear")
        return SimpleNamespace(report={"densities": dens, "notes": [], "compression": {"ratio": 1.0},
                                       "fidelity": {"fixed_point": {"rel_l2": 0.5}}})

    r = compress_within(run, 0.01)
    assert r.report["max_error"]["met"] is False
    assert r.report["max_error"]["densities"] == [1.0, 1.0]
    assert "--max-error 0.01 not met" in r.report["notes"][-1]
    assert "standard-normal" in r.report["max_error"]["sensitivity"]["inputs"]


def test_max_error_unlabelled_on_the_whole_pipeline():
    """--inputs: relative L2 of the fixed-point outputs on the held-out inputs, within the target; a tighter
    target keeps more weights."""
    X = np.random.default_rng(3).standard_normal((300, 16)).astype(np.float32)
    runs = {}
    for target in (0.15, 0.3):
        r = compress(_ffn(), CFG, schedule=QUICK, max_error=target, inputs=X, progress=None, balance=False)
        me = r.report["max_error"]
        assert me["metric"] == "rel_l2" and me["met"]
        assert me["achieved"] == r.report["fidelity"]["fixed_point"]["rel_l2"] <= target
        assert me["densities"] == r.report["densities"] and min(me["densities"]) < 1.0
        assert me["sensitivity"]["inputs"] == "the 240 --inputs not held out (relative L2)"
        runs[target] = r
    nnz = {t: sum(l.nnz for l in r.layers) for t, r in runs.items()}
    assert nnz[0.15] > nnz[0.3]
    assert "--max-error 0.3 (rel_l2): achieved" in format_report(runs[0.3].report)


def _blobs(seed=0, n=600, d=16, classes=4):
    """Gaussian blobs: a task a small MLP learns in a few epochs."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((classes, d)) * 2
    y = rng.integers(0, classes, n)
    X = (centres[y] + rng.standard_normal((n, d))).astype(np.float32)
    return X[:480], y[:480], X[480:], y[480:]


def test_max_error_labelled_is_an_accuracy_drop():
    from eie.golden.models import train_classifier
    data = _blobs()
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(16, 40), nn.ReLU(), nn.Linear(40, 24), nn.ReLU(), nn.Linear(24, 4))
    train_classifier(model, data[0], data[1], epochs=5, lr=3e-3)
    r = compress(model, CFG, data=data, schedule=QUICK, max_error=0.02, progress=None, balance=False)
    me, acc = r.report["max_error"], r.report["accuracy"]
    assert me["metric"] == "accuracy_drop"
    assert me["achieved"] == pytest.approx(max(0.0, acc["float"] - acc["fixed_point"])) and me["achieved"] <= 0.02
    assert "training inputs" in me["sensitivity"]["inputs"]


@pytest.mark.parametrize("bad", [0, -0.1, float("nan"), True, "0.1"])
def test_bad_max_error_refused(bad):
    with pytest.raises(ValueError, match=r"--max-error must be a number > 0"):
        check_max_error(bad)


def test_max_error_and_density_exclusive():
    with pytest.raises(ValueError, match="--max-error chooses every layer's density; give it or --density"):
        compress(_ffn(), CFG, density=0.5, max_error=0.1, progress=None)
