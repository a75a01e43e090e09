"""The liberty reader (asic/liberty.py): the three OSU libraries and the syntax corners.

Expected numbers are copied from the liberty files' text (and the LEF for the NAND2X1
area), not computed with the reader.
"""

from pathlib import Path

import pytest

from eie.asic.liberty import LibertyError, parse_groups, parse_liberty, read_liberty

TECH = Path("/usr/share/qflow/tech")
OSU = {"osu018": (TECH / "osu018/osu018_stdcells.lib", 32, 1.8),
       "osu035": (TECH / "osu035/osu035_stdcells.lib", 39, 3.3),
       "osu050": (TECH / "osu050/osu05_stdcells.lib", 39, 5.0)}


def _osu(name):
    path, cells, vdd = OSU[name]
    if not path.exists():
        pytest.skip(f"{name} liberty missing: apt-get install qflow-tech-{name}")
    return read_liberty(path), cells, vdd


@pytest.mark.parametrize("name", sorted(OSU))
def test_osu_libraries(name):
    lib, cells, vdd = _osu(name)
    assert len(lib.cells) == cells
    assert lib.nom_voltage == vdd
    u = lib.units
    assert (u.time_s, u.capacitance_f, u.voltage_v, u.current_a, u.leakage_power_w) == (1e-9, 1e-12, 1.0, 1e-6, 1e-9)
    assert u.energy_j == pytest.approx(1e-12)                      # pF x V^2 = pJ
    for cell in lib.cells.values():
        for pin in cell.pins.values():
            assert pin.direction in ("input", "output", "inout")
            for p in pin.internal_power:
                for table in (p.rise, p.fall):
                    assert table is None or len(table.values) == max(1, len(table.index_1))
    dffsr = lib.cells["DFFSR"].sequential[0]
    assert (dffsr.kind, dffsr.state, dffsr.state_n, dffsr.clocked_on, dffsr.next_state, dffsr.clear,
            dffsr.preset, dffsr.clear_preset_var1) == ("ff", "P0002", "P0003", "CLK", "D", "(!R)", "(!S)", "L")
    assert lib.cells["DFFNEGX1"].sequential[0].clocked_on == "(!CLK)"
    latch = lib.cells["LATCH"].sequential[0]
    assert (latch.kind, latch.enable, latch.data_in) == ("latch", "CLK", "D")
    tbuf = lib.cells["TBUFX1"].pins["Y"]
    assert (tbuf.function, tbuf.three_state) == ("(!A)", "(!EN)")
    assert lib.cells["MUX2X1"].pins["Y"].function == "(!((S A) + (!S B)))"


def test_osu018_numbers():
    """Values and table look-ups against numbers copied from osu018_stdcells.lib."""
    lib, _, _ = _osu("osu018")
    nand = lib.cells["NAND2X1"]
    assert nand.area == 24                                           # = its LEF outline, 2.4 x 10 um
    inv = lib.cells["INVX1"]
    assert inv.leakage_power == pytest.approx(0.0221741)
    assert inv.pins["A"].capacitance == pytest.approx(0.00932456)
    assert inv.pins["A"].fall_capacitance == pytest.approx(0.00932456)
    y = inv.pins["Y"]
    (power,) = y.internal_power
    assert power.related_pin == "A"
    # rise_power / fall_power rows are loads 0.005 .. 0.15 pF, columns slews 0.06 .. 1.2 ns
    assert power.rise.at(load=0.0125, slew=0.06) == pytest.approx(0.023165)
    assert power.fall.at(load=0.0125, slew=0.06) == pytest.approx(0.009047)
    assert y.internal_energy(load=0.0125, slew=0.06) == pytest.approx((0.023165 + 0.009047) / 2)
    mid = power.rise.at(load=(0.005 + 0.0125) / 2, slew=(0.06 + 0.18) / 2)
    assert mid == pytest.approx((0.023555 + 0.029044 + 0.023165 + 0.028621) / 4)
    # linear extrapolation beyond the last load (0.075, 0.15 at slew 0.06: 0.024479, 0.024942)
    assert power.rise.at(load=0.225, slew=0.06) == pytest.approx(0.024942 + (0.024942 - 0.024479))
    # mean of rise_transition (0.072) and fall_transition (0.06) at 0.025 pF, 0.06 ns
    assert y.transition(load=0.025, slew=0.06) == pytest.approx((0.072 + 0.06) / 2)
    clk = lib.cells["DFFPOSX1"].pins["CLK"]
    assert clk.clock and clk.internal_power[0].related_pin is None
    assert len(clk.internal_power[0].rise.index_1) == 6 and not clk.internal_power[0].rise.index_2
    # DFFSR S -> Q is one `power` table for both directions
    s_power = [p for p in lib.cells["DFFSR"].pins["Q"].internal_power if p.related_pin == "S"][0]
    assert s_power.rise is s_power.fall
    assert lib.cell("INVX1") is inv
    with pytest.raises(KeyError, match="not in liberty library osu018_stdcells"):
        lib.cell("NOPE")


SMALL = r"""
/* a comment */ library (tiny) {
  time_unit : "10ps" ;
  capacitive_load_unit (1, ff);
  voltage_unit : "1mV"; leakage_power_unit : "1pW";
  nom_voltage : 1200
  lu_table_template (t2) { variable_1 : input_net_transition; variable_2 : total_output_net_capacitance;
                           index_1 ("1, 2"); index_2 ("10, 20"); }
  cell (X) {
    area : 3.5;
    pin (A, B) { direction : input; capacitance : 2; }  // two pins in one group
    pin (Y) {
      direction : output;
      function : "A' B + \
                  !B A";
      timing () { related_pin : "A";
        rise_transition (t2) { values ("1, 2", \
                                       "3, 4"); }
        fall_transition (t2) { index_1 ("0, 10"); values ("0, 0", "10, 10"); } }
    }
  }
}
"""


def test_syntax_corners():
    lib = parse_liberty(SMALL)
    assert lib.units.time_s == pytest.approx(1e-11) and lib.units.capacitance_f == pytest.approx(1e-15)
    assert lib.units.voltage_v == pytest.approx(1e-3) and lib.units.leakage_power_w == pytest.approx(1e-12)
    assert lib.nom_voltage == 1200                                   # no semicolon: ends at the line
    x = lib.cells["X"]
    assert x.area == 3.5 and list(x.pins) == ["A", "B", "Y"] and x.pins["B"].capacitance == 2
    assert " ".join(x.pins["Y"].function.split()) == "A' B + !B A"     # continued inside the string
    rise, fall = (x.pins["Y"].timing[0].tables[k] for k in ("rise_transition", "fall_transition"))
    assert rise.variables == ("input_net_transition", "total_output_net_capacitance")
    assert rise.index_1 == (1.0, 2.0) and rise.values == ((1.0, 2.0), (3.0, 4.0))   # template's index
    assert rise.at(load=15, slew=1.5) == pytest.approx(2.5)          # variables in the template's order
    assert fall.index_1 == (0.0, 10.0) and fall.at(load=10, slew=5) == pytest.approx(5)
    tree = parse_groups(SMALL)
    assert tree.subgroups("cell")[0].attr("area") == "3.5"


@pytest.mark.parametrize("text, message", [
    ("library (x) { cell (a) { area : 1;", "end of file inside group cell"),
    ("library (x) { cell (a) { area : ; } }", "line 1: attribute area has no value"),
    ("library (x) {\n cell (a) { bus (d) { } } }", "line 2: bus groups are not supported"),
    ("library (x) { } }", "unmatched"),
    ("library (x) { capacitive_load_unit (1, pf); }", "no nom_voltage"),
    ("library (x) { nom_voltage : 1; }", "no capacitive_load_unit"),
])
def test_errors_say_where(text, message):
    with pytest.raises(LibertyError, match=message):
        parse_liberty(text)


def test_missing_file_names_the_package(tmp_path):
    with pytest.raises(FileNotFoundError, match="apt-get install qflow-tech-osu018"):
        read_liberty(tmp_path / "none.lib")
