"""1000 random networks per run on the RTL, bit- and cycle-exact (``eie.sim.regress``).

Seven builds: five of the test matrix (``sim_cases.matrix``; test_tb.py builds
them too, in the same xdist groups, so they are built once) and two configs
drawn at random from the seed (``regress.random_config``: odd queue depths,
narrow biases, 4-bit activations, extra read stages...). Each runs its share
of the 1000 networks in one simulation with the idle/back-pressure rates of
its job; every output is checked bit for bit against the golden model and
every inference's counters against the cycle model. A failure names the
command that reruns the case alone. ``EIE_REGRESS_SEED`` changes the seed.
"""

from __future__ import annotations

import json
import os
import shlex

import numpy as np
import pytest

from eie import cli
from eie.sim import regress

import sim_cases

MATRIX = sim_cases.matrix()
SEED = int(os.environ.get("EIE_REGRESS_SEED", "1"))

# Networks per build: matrix builds by name, random configs by index (of SEED).
SHARES = {"pe1": 100, "pe2": 100, "pe3": 100, "tiny": 100, "pe8": 100, 0: 250, 1: 250}
assert sum(SHARES.values()) == 1000


def _group(which) -> str:
    return f"sim_{which}" if isinstance(which, str) else f"regress_{which}"


def _failures(res: dict, show: int = 10) -> str:
    lines = [f"{f['message']}\n  reproduce: {f['command']}" for f in res["failures"][:show]]
    more = len(res["failures"]) - show
    return "\n".join(lines + ([f"... and {more} more failing cases"] if more > 0 else []))


@pytest.mark.slow
@pytest.mark.parametrize("which", [pytest.param(w, marks=pytest.mark.xdist_group(_group(w)),
                                                id=w if isinstance(w, str) else f"random{w}") for w in SHARES])
def test_random_networks(which, tmp_path):
    """This build's share of the 1000 random networks: 0 output mismatches, cycles equal to the model."""
    config = MATRIX[which] if isinstance(which, str) else which
    res = regress.regress(SHARES[which], SEED, [config], work_dir=tmp_path, progress=print)
    (per,) = res["configs"]
    print(json.dumps({k: per[k] for k in ("digest", "cases", "inferences", "idle", "backpressure", "build_s",
                                          "build_cached", "sim_s")}))
    assert not res["failures"], _failures(res)
    assert per["cases"] == SHARES[which] and per["inferences"] >= per["cases"]
    assert per["cycle_model"], "the cycle model was not checked"
    assert res["mismatches"] == 0 and res["cycle_mismatches"] == 0


@pytest.mark.xdist_group("sim_tiny")
def test_planted_mismatch_names_the_command_that_reproduces_it(tmp_path, monkeypatch, capsys):
    """Biases the golden model does not know (the testbench's fault-injection
    hook) make regress report failing cases, each with a command; that
    command, run as it is, fails the same case the same way."""
    cfg = MATRIX["tiny"]
    tamper = tmp_path / "tamper_bias.npy"
    np.save(tamper, np.full((cfg.pes, cfg.bias_depth), 1 << (cfg.bias_bits - 2), np.int64))
    monkeypatch.setenv("EIE_SIM_TAMPER_BIAS", str(tamper))
    res = regress.regress(3, SEED, [cfg], work_dir=tmp_path / "run")
    assert res["failures"] and res["mismatches"] > 0
    first = res["failures"][0]
    assert first["what"] == "output"
    assert first["command"] == f"eie regress --seed {SEED} --config tiny --case {first['case']}"
    argv = shlex.split(first["command"])
    assert argv[0] == "eie"
    rc = cli.main(argv[1:] + ["--json", "--work-dir", str(tmp_path / "rerun")])
    rerun = json.loads(capsys.readouterr().out)
    assert rc == 1
    assert rerun["cases"] == 1 and len(rerun["failures"]) == 1
    again = rerun["failures"][0]
    assert (again["case"], again["what"], again["message"], again["command"]) == \
        (first["case"], first["what"], first["message"], first["command"])


def test_random_configs_are_valid_and_named_exactly():
    """Every drawn config is a valid EIEConfig that a memory image can hold;
    its --config spec names it exactly; a drawn index names the same config
    every time."""
    pes = set()
    for i in range(300):
        cfg = regress.random_config(SEED, i)
        assert cfg.spmat_word_bits <= 64 and 1 <= cfg.pes <= 8 and cfg.max_len <= 8 * 48
        assert regress.parse_config(regress.config_spec(cfg)) == cfg
        assert regress.random_config(SEED, i) == cfg
        pes.add(cfg.pes)
    assert pes == {1, 2, 3, 4, 5, 6, 8}
    assert regress.config_spec(MATRIX["tiny"]) == "tiny"
    cmd = regress.reproduce_command(SEED, 7, cfg=MATRIX["pe2"])
    words = shlex.split(cmd)
    assert regress.parse_config(words[words.index("--config") + 1]) == MATRIX["pe2"]
    assert regress.reproduce_command(3, 9, config_index=2) == "eie regress --seed 3 --config-index 2 --case 9"


def test_a_case_does_not_depend_on_the_others():
    """Case J is the same network whether it runs in a block or alone, and fits its config."""
    from eie.golden.encode import build_image
    for i in range(6):
        cfg = regress.random_config(SEED, i)
        for j in (0, 5, 123):
            name, layers, x = regress.case_network(cfg, SEED, j)
            name2, layers2, x2 = regress.case_network(cfg, SEED, j)
            assert name == name2 == f"case_{j}" and np.array_equal(x, x2)
            assert all(np.array_equal(a.codes, b.codes) and np.array_equal(a.bias, b.bias)
                       for a, b in zip(layers, layers2))
            build_image(layers, cfg)
            assert x.shape[1] == layers[0].in_len
    a = regress.case_network(MATRIX["pe2"], SEED, 4)
    b = regress.case_network(MATRIX["pe2"], SEED + 1, 4)
    assert not (a[2].shape == b[2].shape and np.array_equal(a[2], b[2]))


@pytest.mark.parametrize("argv", [
    ["regress", "--case", "3"],                                   # which config?
    ["regress", "--config-index", "-1"],
    ["regress", "--configs", "0"],
    ["regress", "--cases", "1", "--configs", "2"],
    ["regress", "--config", "{not json", "--case", "0"],
    ["regress", "--config", '{"pes": 0}', "--case", "0"],
    ["regress", "--config", "tiny", "--config-index", "1", "--case", "0"],
])
def test_bad_input_is_status_2(argv, capsys):
    assert cli.main(argv + ["--json"]) == 2
    out = json.loads(capsys.readouterr().out)
    assert out["error"]
