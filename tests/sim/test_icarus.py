"""A second Verilog simulator: the same cocotb testbench on Icarus Verilog.

The generated Verilog runs under Icarus Verilog (``iverilog -g2012``, 4-state,
event-driven) and under Verilator, and both must agree with each other, with
the golden model bit for bit and with the cycle model cycle for cycle:

- the first ``DIGITS_SUBSET`` images of the digits test split on the compressed
  digits-mlp (the ``tiny`` preset). All 360 take about 9 minutes of CPU under
  Icarus (about 1.5 s per inference, against 0.03 s under Verilator), so the
  test runs 60; ``eie simulate DIR --simulator icarus`` runs the whole split;
- seeded random networks and a few adversarial layers on two small builds
  (2 PEs with the iCEBreaker number format, 3 PEs with one entry per Spmat
  word), over the fast link with idle and back-pressure;
- the Python per-cycle link.

Without Icarus (Debian package ``iverilog``) these tests are skipped, by name,
with the command that installs it.
"""

from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pytest

from eie.sim import driver, runner

import sim_cases

HAVE_ICARUS = runner.icarus_available()
needs_icarus = pytest.mark.skipif(not HAVE_ICARUS, reason="Icarus Verilog (iverilog, vvp) is not installed; "
                                                         f"install it with `{runner.ICARUS_INSTALL}`")

MATRIX = sim_cases.matrix()
SEED = int(os.environ.get("EIE_SIM_SEED", "1"))
DIGITS_SUBSET = 60
RANDOM = {"pe2": 10, "pe3": 8}
RATES = {"pe2": (0.3, 0.5), "pe3": (0.1, 0.1)}


@pytest.fixture(scope="module")
def digits_dir(tmp_path_factory):
    from eie.config import preset
    from eie.golden.pipeline import compress, write_output
    out = tmp_path_factory.mktemp("digits")
    write_output(compress("digits-mlp", preset("tiny"), progress=None), out, save_model=False)
    return out


def _outputs(job, name):
    rtl, golden = driver.read_outputs(job, name)
    return rtl, golden


@pytest.mark.slow
@needs_icarus
@pytest.mark.xdist_group("sim_tiny")
def test_digits_subset_on_both_simulators(digits_dir):
    """The first 60 digits test images: Icarus and Verilator give the same outputs and cycles,
    equal to the golden model and the cycle model."""
    from eie.sim.cli import simulate
    runs = {}
    for simulator in ("icarus", "verilator"):
        res = simulate(digits_dir, limit=DIGITS_SUBSET, simulator=simulator, keep_job=True, progress=lambda m: None)
        assert res["simulator"] == simulator
        assert res["inferences"] == DIGITS_SUBSET
        assert res["mismatches"] == 0, res["first_mismatch"]
        assert res["cycle_model_checked"] and res["cycles"] == res["cycles_model"]
        assert res["predictions_rtl"] == res["predictions_golden"]
        runs[simulator] = res
    ica, ver = runs["icarus"], runs["verilator"]
    assert ica["cycles"] == ver["cycles"]
    assert ica["predictions_rtl"] == ver["predictions_rtl"]
    rtl_i, golden = _outputs(ica["job"], "net")
    rtl_v, _ = _outputs(ver["job"], "net")
    assert np.array_equal(rtl_i, rtl_v) and np.array_equal(rtl_i, golden)
    for res in runs.values():
        shutil.rmtree(res["job"], ignore_errors=True)


@pytest.mark.slow
@needs_icarus
@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.xdist_group(f"sim_{n}")) for n in RANDOM])
def test_random_networks_on_both_simulators(name, tmp_path):
    """Seeded random networks and adversarial layers (fast link, idle and back-pressure):
    outputs, every counter-checked cycle count and the outputs files agree between the simulators."""
    cfg = MATRIX[name]
    adv = {c[0]: c for c in sim_cases.adversarial_cases(cfg, SEED)}
    cases = [adv[k] for k in ("empty_cols_rows_dense_col", "zero_run_16", "saturate", "one_by_one_chain")
             if k in adv] + sim_cases.random_cases(cfg, RANDOM[name], SEED + 31, 64)
    images = sim_cases.images(cfg, cases)
    idle, bp = RATES[name]
    results = {}
    for simulator in ("icarus", "verilator"):
        job = tmp_path / simulator
        driver.write_job(job, cfg, images, seed=SEED, idle=idle, backpressure=bp)
        sim = runner.build(cfg, simulator=simulator)
        assert sim.simulator == simulator and (simulator == "verilator") == ("-icarus" not in sim.directory.name)
        result, failure = driver.run_job(sim, job)
        assert failure is None and result is not None, failure
        assert result["mismatches"] == 0, result["first_mismatch"]
        assert result["cycle_model"]
        for net in result["networks"]:
            for inf in net["inferences"]:
                assert inf["cycles"] == inf["cycles_model"], (net["name"], inf)
        results[simulator] = (job, result)
    (job_i, res_i), (job_v, res_v) = results["icarus"], results["verilator"]
    assert len(res_i["networks"]) == len(cases)
    for net_i, net_v in zip(res_i["networks"], res_v["networks"]):
        for a, b in zip(net_i["inferences"], net_v["inferences"]):
            assert (a["cycles"], a["broadcasts"], a["broadcast_stalls"]) == \
                   (b["cycles"], b["broadcasts"], b["broadcast_stalls"]), net_i["name"]
        out_i, golden = _outputs(job_i, net_i["name"])
        out_v, _ = _outputs(job_v, net_i["name"])
        assert np.array_equal(out_i, out_v) and np.array_equal(out_i, golden), net_i["name"]


@needs_icarus
@pytest.mark.xdist_group("sim_pe3")
def test_python_link_under_icarus(tmp_path):
    """The cycle-by-cycle Python driver (ReadOnly sampling, random idle and back-pressure) under Icarus."""
    cfg = MATRIX["pe3"]
    adv = {c[0]: c for c in sim_cases.adversarial_cases(cfg, SEED)}
    cases = [adv["single_nonzero"], adv["chain_relu1"]] + sim_cases.random_cases(cfg, 2, SEED + 100, 24)
    driver.write_job(tmp_path, cfg, sim_cases.images(cfg, cases), link="python", seed=SEED + 7, idle=0.3,
                     backpressure=0.4)
    result, failure = driver.run_job(runner.build(cfg, simulator="icarus"), tmp_path)
    assert failure is None and result["mismatches"] == 0
    assert all(i["cycles"] == i["cycles_model"] for n in result["networks"] for i in n["inferences"])


@needs_icarus
@pytest.mark.xdist_group("sim_tiny")
def test_cli_simulator_option(digits_dir, capsys):
    """`eie simulate --simulator icarus --json` reports the simulator and matches."""
    from eie.cli import main as eie_main
    code = eie_main(["simulate", str(digits_dir), "--simulator", "icarus", "--limit", "2", "--json"])
    res = json.loads(capsys.readouterr().out)
    assert code == 0 and res["simulator"] == "icarus" and res["mismatches"] == 0
    assert res["inferences"] == 2 and res["cycles"] == res["cycles_model"]


# -- without a simulator run -----------------------------------------------------------

def test_missing_icarus_names_the_install_command(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))          # no iverilog on PATH
    with pytest.raises(FileNotFoundError, match="apt-get install -y --no-install-recommends iverilog"):
        runner.build(MATRIX["pe2"], simulator="icarus", root=tmp_path)


def test_bad_options_are_named(tmp_path):
    with pytest.raises(ValueError, match="simulator must be one of verilator, icarus"):
        runner.build(MATRIX["pe2"], simulator="xsim", root=tmp_path)
    if HAVE_ICARUS:
        with pytest.raises(ValueError, match="Verilator option"):
            runner.build(MATRIX["pe2"], simulator="icarus", opt="O2", root=tmp_path)


def test_icarus_source():
    """The Yosys time-0 trigger becomes `initial #0`; memories that nothing initialises start at 0;
    a memory with initial contents (or a cell model's own init) is left alone; nothing else changes."""
    text = ("module m(input clk);\n"
            "  reg \\$auto$verilog_backend.cc:2355:dump_module$1  = 0;\n"
            "  reg [16:0] act_rf [255:0];\n"
            "  reg [7:0] table_ [0:3];\n"
            "  initial begin\n    table_[0] = 8'h01;\n  end\n"
            "  always @(posedge clk) act_rf[1] <= 17'h1;\n"
            "endmodule\n")
    out = runner.icarus_source(text)
    assert "reg \\$auto$verilog_backend.cc:2355:dump_module$1 ;" in out
    assert "initial #0 \\$auto$verilog_backend.cc:2355:dump_module$1 = 1'b0;" in out
    assert "initial for (int eie_i = 0; eie_i <= 255; eie_i++) act_rf[eie_i] = '0;" in out
    assert "table_[eie_i]" not in out
    assert out.replace(out[out.index("  reg \\$auto"):out.index("  reg [16:0]")], "") \
        .replace("  initial for (int eie_i = 0; eie_i <= 255; eie_i++) act_rf[eie_i] = '0;\n", "") == \
        text.replace("  reg \\$auto$verilog_backend.cc:2355:dump_module$1  = 0;\n", "")
