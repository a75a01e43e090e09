"""The RTL test matrix: the generated Verilog in Verilator under cocotb vs the golden model.

Every case is a real Verilator run of ``eie_top`` (through ``sim/harness.sv``)
driven by the testbench ``eie.sim.tb``: the network is loaded through the host
protocol, run, and the outputs are checked bit for bit against
``eie.golden.reference`` and the ``CYCLES`` counter exactly against
``eie.golden.cycle_model``. Many networks run in one simulation per build to
avoid per-simulation start-up; builds are cached (``build/sim``) and shared
between the tests of one xdist group.

Builds: PE counts 1, 2, 3, 4, 8, 16, 64; queue depths 1, 2, 8; 1, 4 and 8
entries per Spmat word (see ``sim_cases.matrix``).
"""

from __future__ import annotations

import os

import numpy as np
import pytest

from eie.sim import driver, runner

import sim_cases

MATRIX = sim_cases.matrix()

# Random networks per build: together at least 200 per run.
RANDOM = {"pe1": 34, "pe2": 34, "pe3": 30, "tiny": 30, "pe8": 30, "pe16": 24, "pe64": 20}
RANDOM_MAX_LEN = {"pe64": 96}
# Idle/back-pressure rates of the fast link per build (the harness LFSR).
RATES = {"pe1": (0.0, 0.0), "pe2": (0.3, 0.5), "pe3": (0.1, 0.1), "tiny": (0.25, 0.25), "pe8": (0.5, 0.3),
         "pe16": (0.2, 0.6), "pe64": (0.1, 0.2)}
SEED = int(os.environ.get("EIE_SIM_SEED", "1"))


def _build(name):
    return runner.build(MATRIX[name])


def _check(job_dir):
    res = driver.read_result(job_dir)
    assert res["inferences"] > 0
    assert res["mismatches"] == 0, res["first_mismatch"]["message"]
    return res


def _run(name, job_dir, cases, *, link="fast", idle=None, backpressure=None, seed=SEED):
    cfg = MATRIX[name]
    sim = _build(name)
    i, b = RATES[name] if idle is None else (idle, backpressure)
    driver.write_job(job_dir, cfg, sim_cases.images(cfg, cases), link=link, seed=seed, idle=i, backpressure=b)
    try:
        runner.run(sim, job_dir)
    except runner.RunFailed as e:
        if (job_dir / driver.RESULT_FILE).exists():
            _check(job_dir)             # names the first mismatch
        raise AssertionError(str(e)) from None
    return _check(job_dir)


@pytest.mark.slow
@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.xdist_group(f"sim_{n}")) for n in MATRIX])
def test_matrix(name, tmp_path):
    """Adversarial layers and seeded random networks on one build, fast link with idle and back-pressure."""
    cfg = MATRIX[name]
    cases = sim_cases.adversarial_cases(cfg, SEED) + sim_cases.random_cases(
        cfg, RANDOM[name], SEED, RANDOM_MAX_LEN.get(name, 160))
    res = _run(name, tmp_path, cases)
    assert len(res["networks"]) == len(cases)
    assert res["cycle_model"], "the cycle model was not checked"
    for net in res["networks"]:
        for inf in net["inferences"]:
            assert inf["cycles"] == inf["cycles_model"]
    # Work can never beat the bound (one broadcast and N MACs per cycle).
    for net in res["networks"]:
        for inf in net["inferences"]:
            assert inf["cycles"] >= inf["bound"]


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.xdist_group(f"sim_{n}"))
                                  for n in ("pe2", "pe3")])
def test_python_link(name, tmp_path):
    """The cycle-by-cycle Python driver with random idle and back-pressure (small networks)."""
    cfg = MATRIX[name]
    adv = {c[0]: c for c in sim_cases.adversarial_cases(cfg, SEED)}
    cases = [adv["single_nonzero"], adv["chain_relu1"], adv["saturate"]] + \
        sim_cases.random_cases(cfg, 3, SEED + 100, 40)
    _run(name, tmp_path, cases, link="python", idle=0.3, backpressure=0.4, seed=SEED + 7)


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.xdist_group(f"sim_{n}"))
                                  for n in ("pe1", "tiny", "pe16")])
def test_roundtrip(name, tmp_path):
    """Random WRITE then READ of every memory of every PE, broadcast writes included."""
    sim = _build(name)
    driver.write_roundtrip_job(tmp_path, MATRIX[name], seed=SEED, idle=0.2, backpressure=0.3)
    runner.run(sim, tmp_path, testcase="roundtrip")
    res = driver.read_result(tmp_path)
    assert res["checked"] > 0 and not res["errors"]


@pytest.mark.xdist_group("sim_tiny")
def test_mismatch_is_reported(tmp_path):
    """A wrong result must fail the run and be located to layer, PE and row: the
    hardware gets a bias (via the testbench's fault-injection hook) that the
    golden model, decoded from the job's image, does not have."""
    from eie.golden.encode import QuantLayer
    name = "tiny"
    cfg = MATRIX[name]
    sim = _build(name)
    codebook = np.arange(cfg.codebook_size, dtype=np.int64)          # small positive weights
    ones = np.ones((8, 8), np.uint8)
    layers = [QuantLayer(codes=ones * 2, codebook=codebook, bias=np.zeros(8, np.int64), shift=2, relu=False),
              QuantLayer(codes=ones * 3, codebook=codebook, bias=np.zeros(8, np.int64), shift=2, relu=True)]
    x = np.arange(1, 9, dtype=np.int64)[None, :] * 10
    image = sim_cases.images(cfg, [("twolayer", layers, x)])[0][1]
    job = driver.write_job(tmp_path, cfg, [("twolayer", image, x)])
    bias = image.bias.copy()
    bias[1, 0] += 400                          # layer 0, PE 1, local row 0 (global row 1): output + 100
    np.save(job / "tamper_bias.npy", bias)
    with pytest.raises(runner.RunFailed, match="layer 0, row 1 \\(PE 1, local row 0\\)"):
        runner.run(sim, job, env={"EIE_SIM_TAMPER_BIAS": str(job / "tamper_bias.npy")})
    res = driver.read_result(job)
    mm = res["first_mismatch"]
    assert res["mismatches"] == 1
    assert (mm["what"], mm["layer"], mm["row"], mm["pe"], mm["local_row"]) == ("output", 0, 1, 1, 0)
    assert mm["got"] == mm["expected"] + 100
