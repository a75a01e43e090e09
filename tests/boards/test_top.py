"""Board top level (boards/top.py): PLL settings and elaboration for every board."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

from eie.boards.platforms import BOARDS, get_board
from eie.boards.top import BoardTop, LoopbackCore, ecp5_pll, ice40_pll, make_core, pll_settings

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


def test_pll_bypass_and_range_errors():
    assert ice40_pll(12.0, 12.0).primitive == "none"
    with pytest.raises(ValueError, match="out of range"):
        ice40_pll(12.0, 300.0)
    with pytest.raises(ValueError, match="out of range"):
        ecp5_pll(25.0, 500.0)
    with pytest.raises(ValueError, match="no PLL"):
        pll_settings("gowin", 27.0, 50.0)


@pytest.mark.parametrize("name", sorted(set(BOARDS) - {"ulx3s"}))
def test_board_top_elaborates(name, tmp_path):
    """Every registered board gets a build plan (PLL instance, UART and LED pins, clock constraint)."""
    board = get_board(name)
    pll = pll_settings(board.family, board.input_clock_hz() / 1e6, 24.0 if board.family == "ice40" else 50.0)
    top = BoardTop(board, LoopbackCore(), pll=pll, baud=board.baud)
    plan = board.make_platform().prepare(top, name="t")
    files = plan.files
    constraints = files["t.pcf"] if board.family == "ice40" else files["t.lpf"]
    text = constraints if isinstance(constraints, str) else constraints.decode()
    assert f"{pll.achieved_mhz:g}" in text or f"{pll.achieved_mhz * 1e6:g}" in text or \
        str(round(pll.achieved_mhz, 3)) in text
    rtlil = files["t.il"]
    rtlil = rtlil if isinstance(rtlil, str) else rtlil.decode()
    assert ("SB_PLL40_PAD" if board.family == "ice40" else "EHXPLLL") in rtlil


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
