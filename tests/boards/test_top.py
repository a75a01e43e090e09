"""Board top level (boards/top.py): PLL settings and elaboration for every board."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

from eie.boards.platforms import BOARDS, get_board
from eie.boards.top import BoardTop, LoopbackCore, ecp5_pll, gowin_pll, ice40_pll, make_core, pll_settings

BIN = Path(sys.executable).parent


def _tool(name, *args):
    exe = BIN / name
    if not exe.exists():
        pytest.skip(f"{name} is not installed")
    return subprocess.run([str(exe), *args], capture_output=True, text=True, timeout=300).stdout


def _field(text, pattern):
    m = re.search(pattern, text)
    assert m, f"{pattern!r} not in tool output:\n{text}"
    return float(m.group(1))


@pytest.mark.parametrize("mhz", [16, 24, 30, 36, 48, 50.25, 100])
def test_ice40_pll_matches_icepll(mhz):
    out = _tool("yowasp-icepll", "-i", "12", "-o", str(mhz))
    ours = ice40_pll(12.0, mhz)
    assert ours.achieved_mhz == pytest.approx(_field(out, r"F_PLLOUT:\s+([\d.]+) MHz \(achieved\)"), abs=1e-3)
    assert ours.params["DIVR"] == _field(out, r"DIVR:\s+(\d+)")
    assert ours.params["DIVF"] == _field(out, r"DIVF:\s+(\d+)")
    assert ours.params["DIVQ"] == _field(out, r"DIVQ:\s+(\d+)")
    assert ours.params["FILTER_RANGE"] == _field(out, r"FILTER_RANGE:\s+(\d+)")


@pytest.mark.parametrize("mhz", [40, 50, 60, 75, 100, 125, 33.3])
def test_ecp5_pll_matches_ecppll(mhz):
    out = _tool("yowasp-ecppll", "-i", "25", "-o", str(mhz))
    ours = ecp5_pll(25.0, mhz)
    assert ours.achieved_mhz == pytest.approx(_field(out, r"clkout0 frequency:\s+([\d.]+) MHz"), abs=1e-3)
    p = ours.params
    # self-consistent: the feedback divides the output (CLKOP) back to the PFD frequency
    assert 25.0 / p["CLKI_DIV"] * p["CLKFB_DIV"] == pytest.approx(ours.achieved_mhz)
    assert 400 <= ours.achieved_mhz * p["CLKOP_DIV"] <= 800


@pytest.mark.parametrize("device, tool_device", [("GW1NR-9C", "GW1NR-9 C6/I5"), ("GW2A-18C", "GW2A-18 C8/I7")])
@pytest.mark.parametrize("mhz", [24, 36, 40, 50, 54, 81, 100])
def test_gowin_pll_matches_gowin_pll(mhz, device, tool_device):
    """rPLL settings against Project Apicula's gowin_pll (installed with the Gowin nextpnr)."""
    out = _tool("gowin_pll", "-i", "27", "-o", str(mhz), "-d", tool_device)
    ours = gowin_pll(27.0, mhz, device)
    assert ours.primitive == "rPLL" and ours.params["DEVICE"] == device
    assert ours.achieved_mhz == pytest.approx(_field(out, r"Achieved output frequency:\s+([\d.]+) MHz"), abs=1e-3)
    for name in ("IDIV_SEL", "FBDIV_SEL", "ODIV_SEL"):
        assert ours.params[name] == _field(out, rf"\.{name}\((\d+)\)"), name
    p = ours.params
    assert 27.0 * (p["FBDIV_SEL"] + 1) / (p["IDIV_SEL"] + 1) == pytest.approx(ours.achieved_mhz)
    assert ours.vco_mhz == pytest.approx(ours.achieved_mhz * p["ODIV_SEL"])


def test_pll_bypass_and_range_errors():
    assert ice40_pll(12.0, 12.0).primitive == "none"
    with pytest.raises(ValueError, match="out of range"):
        ice40_pll(12.0, 300.0)
    with pytest.raises(ValueError, match="out of range"):
        ecp5_pll(25.0, 500.0)
    assert gowin_pll(27.0, 27.0).primitive == "none"
    with pytest.raises(ValueError, match="out of range"):
        gowin_pll(27.0, 700.0)
    with pytest.raises(ValueError, match="no Gowin rPLL limits"):
        gowin_pll(27.0, 50.0, "GW5A-25A")
    assert pll_settings("gowin", 27.0, 54.0, device="GW2A-18C").params["DEVICE"] == "GW2A-18C"
    with pytest.raises(ValueError, match="no PLL"):
        pll_settings("xilinx", 27.0, 50.0)


@pytest.mark.parametrize("name", sorted(set(BOARDS) - {"ulx3s"}))
def test_board_top_elaborates(name, tmp_path):
    """Every registered board gets a build plan (PLL instance, UART and LED pins, clock constraint)."""
    board = get_board(name)
    pll = pll_settings(board.family, board.input_clock_hz() / 1e6, 24.0 if board.family == "ice40" else 50.0,
                       device=board.pll_device())
    top = BoardTop(board, LoopbackCore(), pll=pll, baud=board.baud)
    plan = board.make_platform().prepare(top, name="t")
    files = plan.files

    def text(name):
        return files[name] if isinstance(files[name], str) else files[name].decode()

    rtlil = text("t.il")
    assert {"ice40": "SB_PLL40_PAD", "ecp5": "EHXPLLL", "gowin": "rPLL"}[board.family] in rtlil
    if board.family == "gowin":
        # No clock constraint file in amaranth's Gowin flow (eie build passes --freq); the
        # pins are in the .cst, and the script runs nextpnr-himbaechel, not nextpnr-gowin.
        cst = text("t.cst")
        platform = board.make_platform()
        pins = {sub.name: sub.ios[0].names[0] for sub in platform.lookup(*board.uart).ios}
        name, number = board.uart
        for sub in ("rx", "tx"):
            assert f'IO_LOC "{name}_{number}__{sub}__io" {pins[sub]};' in cst, sub
        script = " ".join(text("build_t.sh").split())
        assert "NEXTPNR_HIMBAECHEL" in script and f"--vopt family={platform._chipdb_device}" in script
        assert "--vopt cst=t.cst" in script and "NEXTPNR_GOWIN" not in script and "GOWIN_PACK" in script
        assert f"{pll.input_mhz:g}" in rtlil and pll.params["ODIV_SEL"] in (2, 4, 8, 16, 32, 48, 64)
        return
    constraints = files["t.pcf"] if board.family == "ice40" else files["t.lpf"]
    constraints = constraints if isinstance(constraints, str) else constraints.decode()
    assert f"{pll.achieved_mhz:g}" in constraints or f"{pll.achieved_mhz * 1e6:g}" in constraints or \
        str(round(pll.achieved_mhz, 3)) in constraints


def test_oscillator_clock_bypasses_pll_on_icebreaker():
    board = get_board("icebreaker")
    pll = pll_settings(board.family, board.input_clock_hz() / 1e6, 12.0)
    top = BoardTop(board, LoopbackCore(), pll=pll, baud=board.baud)
    rtlil = board.make_platform().prepare(top, name="t").files["t.il"]
    rtlil = rtlil if isinstance(rtlil, str) else rtlil.decode()
    assert pll.primitive == "none" and "SB_PLL40" not in rtlil


def test_make_core_refuses_model_for_loopback():
    with pytest.raises(ValueError, match="loopback"):
        make_core(None, image=object(), loopback=True)
