"""Programs (eie.golden.program) and the torch.fx frontend (eie.golden.graph)."""

from dataclasses import replace

import numpy as np
import pytest
import torch
import torch.nn as nn

from eie.config import preset
from eie.golden.fidelity import fidelity
from eie.golden.graph import partition
from eie.golden.program import Program, Step, calibrate, lut_table, partition_report, requant, run_fixed, run_float
from eie.golden.quantize import dequantize, quantize_input
from eie.golden.share import SharedLinear, share_layer

CFG = replace(preset("tiny"), act_depth=64, max_layers=8)


class Residual(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(24, 40), nn.Linear(40, 24)
        self.norm, self.act = nn.LayerNorm(24), nn.GELU()
        self.fc3, self.head = nn.Linear(24, 24), nn.Linear(24, 6)

    def forward(self, x):
        h = self.norm(x + self.fc2(self.act(self.fc1(x))))
        return self.head(torch.relu(self.fc3(h)))


class Recurrent(nn.Module):
    def __init__(self, cell=nn.LSTM, layers=1, per_step=False):
        super().__init__()
        self.rnn, self.fc, self.per_step = cell(5, 12, num_layers=layers, batch_first=True), nn.Linear(12, 4), per_step

    def forward(self, x):
        out, _ = self.rnn(x)
        return self.fc(out) if self.per_step else self.fc(out[:, -1])


CASES = {
    "residual": (Residual, (50, 24)),
    "lstm": (lambda: Recurrent(nn.LSTM), (50, 6, 5)),
    "lstm2-per-step": (lambda: Recurrent(nn.LSTM, 2, True), (50, 6, 5)),
    "gru": (lambda: Recurrent(nn.GRU), (50, 6, 5)),
}


def _model(name):
    torch.manual_seed(3)
    build, shape = CASES[name]
    return build().eval(), torch.randn(*shape)


@pytest.mark.parametrize("name", sorted(CASES))
def test_partitioned_float_model_equals_the_original(name):
    model, X = _model(name)
    pm, prog = partition(model)
    with torch.no_grad():
        assert torch.allclose(pm(X), model(X), atol=1e-5)
    assert prog.sequence == (name != "residual")


def test_relu_and_linear_chains_are_fused_and_the_rest_runs_on_the_host():
    model, _ = _model("residual")
    pm, prog = partition(model)
    ops = [(s.op, s.args.get("first"), s.args.get("count")) for s in prog.steps]
    # fc1 | gelu | fc2 | + x | LayerNorm | fc3 (ReLU fused) and head in one call
    assert ops == [("eie", 0, 1), ("lut", None, None), ("eie", 1, 1), ("add", None, None),
                   ("layernorm", None, None), ("eie", 2, 2)]
    assert pm.relus == [False, False, True, False]
    rep = partition_report(prog, [type("L", (), {"in_len": l.in_features, "out_len": l.out_features,
                                                 "nnz": l.weight.numel()}) for l in pm.linears])
    macs = 24 * 40 + 40 * 24 + 24 * 24 + 24 * 6
    assert rep["eie_macs"] == macs and rep["host_macs"] == 2 * 24      # the LayerNorm's two per element
    assert rep["host_ops"] == ["add", "layernorm", "lut"]


def test_recurrent_programs_call_eie_once_per_step_and_once_after():
    model, X = _model("lstm")
    pm, prog = partition(model)
    assert [s.op for s in prog.post] == ["eie"] and len(prog.state) == 2      # h and c
    layers, prog, _ = _quantised(pm, prog, X.numpy())
    calls = []
    run_fixed(prog, layers, CFG, quantize_input(X.numpy(), prog.fracs[prog.input], CFG),
              trace=lambda s, x, y: calls.append(s.args["first"]))
    assert calls == [0] * X.shape[1] + [1]


def _quantised(pm, prog, X):
    shared = [share_layer(l.weight.detach().numpy(), np.ones(tuple(l.weight.shape), bool), l.bias.detach().numpy(),
                          index_bits=CFG.index_bits, relu=r, name=f"l{k}")
              for k, (l, r) in enumerate(zip(pm.linears, pm.relus))]
    prog, layers, _ = calibrate(prog, shared, X, CFG)
    return layers, prog, shared


@pytest.mark.parametrize("name", sorted(CASES))
def test_fixed_point_program_follows_the_float_program(name):
    """The shared (16-value) weights in float against the calibrated fixed-point program."""
    model, X = _model(name)
    pm, prog = partition(model)
    layers, prog, shared = _quantised(pm, prog, X.numpy())
    with torch.no_grad():
        ref = run_float(prog, [SharedLinear(s) for s in shared], X, [s.relu for s in shared]).numpy()
    y = run_fixed(prog, layers, CFG, quantize_input(X.numpy(), prog.fracs[prog.input], CFG))
    f = fidelity(ref, dequantize(y, prog.fracs[prog.output]))
    assert f["rel_l2"] < 0.01, f


def test_host_arithmetic_by_hand():
    bits = 16
    # 0.75 (frac 2) to frac 1: 1.5 -> rounds half up to 2 (1.0); -0.75 -> -1.5 -> -1 (-0.5)
    assert requant(np.array([3, -3]), 2, 1, bits).tolist() == [2, -1]
    assert requant(np.array([1 << 14]), 0, 2, bits).tolist() == [32767]          # saturates
    prog = Program(input="x", in_len=2, output="z", lengths={"x": 2, "y": 2, "s": 2, "p": 2, "z": 2},
                   steps=[Step("requant", ("x",), "y"), Step("add", ("x", "y"), "s"), Step("mul", ("x", "y"), "p"),
                          Step("sub", ("s", "p"), "z")],
                   fracs={"x": 4, "y": 2, "s": 3, "p": 4, "z": 4})
    x = np.array([[24, -13]])               # 1.5, -0.8125
    # y = x at frac 2: 6 (1.5), -3.25 -> -3 (-0.75); s = x + y at frac 3: 3.0 -> 24, -1.5625 -> -12.5 -> -12
    # p = x * y at frac 4: 2.25 -> 36, 0.609375 -> 9.75 -> 10; z = s - p: 3 - 2.25 = 0.75 -> 12, -1.5 - 0.625 = -2.125 -> -34
    assert run_fixed(prog, [], CFG, x).tolist() == [[12, -34]]
    # sigmoid(0) = 1/2 exactly; tanh of the largest code saturates to 1 - 2**-f
    assert lut_table("sigmoid", 8, 14, bits)[1 << 15] == 1 << 13
    assert lut_table("tanh", 8, 14, bits)[-1] == 1 << 14


def test_layernorm_matches_float_within_one_step():
    rng = np.random.default_rng(0)
    x = rng.integers(-3000, 3000, size=(20, 16))
    w, b = rng.normal(size=16), rng.normal(size=16) * 0.1
    prog = Program(input="x", in_len=16, output="y", lengths={"x": 16, "y": 16},
                   steps=[Step("layernorm", ("x",), "y", {"weight": w, "bias": b, "eps": 1e-5})],
                   fracs={"x": 10, "y": 12})
    got = dequantize(run_fixed(prog, [], CFG, x), 12)
    ref = torch.nn.functional.layer_norm(torch.tensor(x / 1024.0), (16,), torch.tensor(w), torch.tensor(b), 1e-5)
    assert np.max(np.abs(got - ref.numpy())) <= 2.0 ** -12


@pytest.mark.parametrize("module, needle", [
    (lambda: nn.Sequential(nn.Linear(4, 4), nn.Softmax(dim=-1)), "Softmax"),
    (lambda: nn.Sequential(nn.Linear(4, 4), nn.Conv1d(1, 1, 1)), "Conv1d"),
])
def test_unsupported_operations_are_named(module, needle):
    with pytest.raises(ValueError, match=needle):
        partition(module())


def test_constant_operands_and_bad_recurrent_layers_are_refused():
    class Scale(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(4, 4)

        def forward(self, x):
            return self.fc(x) * 2.0

    with pytest.raises(ValueError, match="constant operand 2.0"):
        partition(Scale())

    class TimeFirst(nn.Module):
        def __init__(self):
            super().__init__()
            self.rnn = nn.LSTM(4, 4)

        def forward(self, x):
            return self.rnn(x)[0][:, -1]

    with pytest.raises(ValueError, match="batch_first=True"):
        partition(TimeFirst())


def test_program_json_round_trip_and_checks():
    model, _ = _model("gru")
    _, prog = partition(model)
    again = Program.from_dict(prog.to_dict())
    assert again.to_dict() == prog.to_dict()
    bad = prog.to_dict()
    bad["steps"][1]["srcs"] = ["nowhere"]
    with pytest.raises(ValueError, match="'nowhere' is not defined"):
        Program.from_dict(bad)


def test_a_program_distils_from_inputs_and_meets_a_fidelity_target():
    """--inputs (no labels) retrains a program by distillation; --max-error picks its densities."""
    from eie.golden.pipeline import Schedule, compress
    model, _ = _model("residual")
    X = np.random.default_rng(1).standard_normal((200, 24)).astype(np.float32)
    lines = []
    result = compress(model, preset("tiny"), inputs=X, schedule=Schedule.quick(), fit=True, max_error=0.3,
                      progress=lines.append)
    rep = result.report
    # the program itself was trained: pruning rounds and centroid fine-tuning on the distillation loss
    assert any(l.startswith("prune round") and "mse_distillation loss" in l for l in lines)
    assert any(l.startswith("centroid fine-tuning") and "mse_distillation loss" in l for l in lines)
    assert rep["objective"]["loss"] == "mse_distillation"
    assert rep["max_error"]["met"] and rep["fidelity"]["fixed_point"]["rel_l2"] <= 0.3
    assert rep["max_error"]["achieved"] == rep["fidelity"]["fixed_point"]["rel_l2"]
    assert len(rep["max_error"]["densities"]) == 4 and rep["partition"]["eie_share"] > 0.9
