"""Gate-level check of the FPGA netlists (eie.boards.netlist).

``eie_top`` of a board config is synthesised the way ``eie build`` does it
(``synth_ice40 -dsp -spram -abc9 -dff`` for the iCEBreaker preset, with the
Spmat in SPRAM; ``synth_ecp5 -abc9`` for the ULX3S-12F preset, 2 PEs), Yosys
writes the netlist, and the unchanged cocotb testbench runs the compressed
digits-mlp on it with the family's cell models: every output bit for bit
against the golden model, every inference's cycles against the cycle model and
against the RTL of the same config.

Each test synthesises (1-2 min of CPU, cached in ``build/netlist``), compresses
the network for the config and builds a Verilator model of the netlist
(cached in ``build/sim``).
"""

from __future__ import annotations

import re

import pytest

from eie.boards import netlist as N

LIMIT = 4


def _compressed(tmp_path_factory, board):
    from eie.boards.platforms import board_config, get_board
    from eie.golden.pipeline import compress, write_output
    out = tmp_path_factory.mktemp(f"digits-{board}")
    write_output(compress("digits-mlp", board_config(get_board(board)), progress=None), out, save_model=False)
    return out


def _check(board, network, expect_cells):
    from eie.sim.cli import simulate
    res = N.simulate_netlist(board, network, limit=LIMIT)
    nl = res["netlist"]
    for cell in expect_cells:
        assert nl["cells"].get(cell, 0) > 0, (cell, nl["cells"])
    assert res["inferences"] == LIMIT
    assert res["mismatches"] == 0, res["first_mismatch"]
    assert res["cycle_model_checked"] and res["cycles"] == res["cycles_model"]
    assert res["predictions_rtl"] == res["predictions_golden"]
    # The RTL of the same config takes the same cycles.
    rtl = simulate(network, limit=LIMIT, progress=lambda m: None)
    assert rtl["mismatches"] == 0 and rtl["cycles"] == res["cycles"]
    return res


@pytest.mark.slow
@pytest.mark.xdist_group("netlist_ice40")
def test_ice40_netlist(tmp_path_factory):
    """iCEBreaker preset (4 PEs, Spmat in SPRAM, multipliers in SB_MAC16): bit- and cycle-exact."""
    network = _compressed(tmp_path_factory, "icebreaker")
    res = _check("icebreaker", network, ["SB_SPRAM256KA", "SB_RAM40_4K", "SB_MAC16", "SB_LUT4"])
    assert "-spram" in res["netlist"]["synth_opts"]


@pytest.mark.slow
@pytest.mark.xdist_group("netlist_ecp5")
def test_ecp5_netlist(tmp_path_factory):
    """ULX3S-12F preset (2 PEs, DP16KD block RAMs, MULT18X18D multipliers): bit- and cycle-exact."""
    network = _compressed(tmp_path_factory, "ulx3s-12f")
    _check("ulx3s-12f", network, ["DP16KD", "MULT18X18D"])


# -- the cell models, without a synthesis ---------------------------------------------

def test_cell_models_are_complete():
    """Every cell type synth_ice40 / synth_ecp5 leaves in these designs has a model (not a black box)."""
    ice = N.cell_models("ice40")
    for cell in ("SB_LUT4", "SB_CARRY", "SB_DFF", "SB_DFFE", "SB_DFFESR", "SB_DFFSR", "SB_RAM40_4K",
                 "SB_SPRAM256KA", "SB_MAC16"):
        assert re.search(rf"\bmodule\s+{cell}\b", ice), cell
    ecp = N.cell_models("ecp5")
    for cell in ("LUT4", "PFUMX", "L6MUX21", "CCU2C", "TRELLIS_FF", "TRELLIS_DPR16X4", "DP16KD", "MULT18X18D"):
        assert len(re.findall(rf"\bmodule\s+{cell}\b", ecp)) == 1, cell
    assert "`timescale" not in ice and "`timescale" not in ecp
    assert "`include" not in ecp
    with pytest.raises(ValueError, match="family must be one of"):
        N.cell_models("gowin")


def test_defaulted_inputs_must_be_connected():
    """The iCE40 models' default input values are dropped (Icarus cannot parse them), so a
    netlist that leaves such an input unconnected is refused by name."""
    defaulted = N._defaulted_ports(N._inline_includes(N.share_dir() / "ice40" / "cells_sim.v"))
    assert "E" in defaulted["SB_DFFE"] and "WCLKE" in defaulted["SB_RAM40_4K"]
    good = "  SB_DFFE q_reg (\n    .C(clk),\n    .D(d),\n    .E(en),\n    .Q(q)\n  );\n"
    N._check_connected(good, defaulted)
    with pytest.raises(ValueError, match=r"q_reg \(SB_DFFE\) leaves E unconnected"):
        N._check_connected(good.replace("    .E(en),\n", ""), defaulted)


def test_cli_netlist_option_refuses_what_it_cannot_do(tmp_path, capsys):
    """`eie simulate DIR --netlist BOARD` runs the board's config on the fast link: other
    options are refused by name, before any synthesis; an unknown board is named."""
    import json

    from eie.cli import main as eie_main
    for extra, word in ((["--idle", "0.2"], "--idle"), (["--config", "x.json"], "--config"),
                        (["--opt", "O2"], "--opt")):
        assert eie_main(["simulate", str(tmp_path), "--netlist", "ulx3s-12f", "--json", *extra]) == 2
        assert word in json.loads(capsys.readouterr().out)["error"]
    assert eie_main(["simulate", str(tmp_path), "--netlist", "nosuch", "--json"]) == 2
    assert "unknown board 'nosuch'" in json.loads(capsys.readouterr().out)["error"]
