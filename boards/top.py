"""Board top level: the EIE core behind a UART bridge, a PLL and status LEDs.

:class:`BoardCore` is everything in the design clock domain and has plain
``rx`` / ``tx`` / ``leds`` ports, so the cocotb test simulates exactly the
logic that goes onto the board. :class:`BoardTop` adds what needs the
platform: the PLL that makes the requested clock from the board oscillator
(iCE40 ``SB_PLL40_PAD``, ECP5 ``EHXPLLL``, Gowin ``rPLL``), the reset held
until the PLL locked, and the pins.

Status LEDs, in the order of :attr:`eie.boards.platforms.Board.leds` (boards
with fewer LEDs show a prefix): 0 heartbeat (blinks about twice a second; fast
while a run is in progress), 1 running, 2 error (the last command failed, or a
frame was rejected in the last 0.5 s), 3 link activity (a frame was accepted
in the last 50 ms), 4 PLL locked.
"""


import re
from dataclasses import dataclass

from amaranth.hdl import (Cat, ClockDomain, ClockSignal, Const, DomainRenamer, Elaboratable, Instance, Module, Mux,
                          Signal)
from amaranth.lib import fifo, io, stream, wiring
from amaranth.lib.cdc import ResetSynchronizer
from amaranth.lib.wiring import In, Out

from amaranth.build import ResourceError

from ..config import EIEConfig
from ..framing import MAX_FRAME_WORDS
from .uart import UARTBridge

__all__ = ["PLLSettings", "ice40_pll", "ecp5_pll", "gowin_pll", "GOWIN_PLL_LIMITS", "pll_settings", "LoopbackCore", "BoardCore", "BoardTop",
           "N_STATUS_LEDS", "make_core"]

N_STATUS_LEDS = 5


# -- PLL settings ---------------------------------------------------------------

@dataclass(frozen=True)
class PLLSettings:
    """A PLL configuration: the primitive, its parameters and the frequency it gives."""
    primitive: str          # "SB_PLL40_PAD", "EHXPLLL", "rPLL" or "none" (the oscillator drives the design)
    input_mhz: float
    requested_mhz: float
    achieved_mhz: float
    params: dict
    vco_mhz: float = 0.0

    def to_dict(self) -> dict:
        return {"primitive": self.primitive, "input_mhz": self.input_mhz, "requested_mhz": self.requested_mhz,
                "achieved_mhz": round(self.achieved_mhz, 6), "vco_mhz": round(self.vco_mhz, 3),
                "params": dict(self.params)}


def _check_request(fin: float, fout: float, lo: float, hi: float, family: str) -> None:
    if not isinstance(fout, (int, float)) or not lo <= fout <= hi:
        raise ValueError(f"--clock {fout!r} MHz is out of range for the {family} PLL: "
                         f"{lo:g}..{hi:g} MHz (or exactly the {fin:g} MHz oscillator)")


def ice40_pll(fin: float, fout: float) -> PLLSettings:
    """``SB_PLL40`` settings (SIMPLE feedback) closest to ``fout`` MHz from ``fin`` MHz.

    Same search as Project IceStorm's ``icepll``: PFD 10..133 MHz, VCO 533..1066 MHz,
    output 16..275 MHz; the first best setting in (DIVR, DIVF, DIVQ) order wins.
    """
    if fout == fin:
        return PLLSettings("none", fin, fout, fin, {})
    _check_request(fin, fout, 16.0, 275.0, "iCE40")
    best = None
    for divr in range(16):
        fpfd = fin / (divr + 1)
        if not 10.0 <= fpfd <= 133.0:
            continue
        for divf in range(128):
            fvco = fpfd * (divf + 1)
            if not 533.0 <= fvco <= 1066.0:
                continue
            for divq in range(1, 7):
                f = fvco / (1 << divq)
                if best is None or abs(f - fout) < abs(best[0] - fout):
                    best = (f, divr, divf, divq, fpfd, fvco)
    if best is None:
        raise ValueError(f"no iCE40 PLL setting makes {fout} MHz from {fin} MHz")
    f, divr, divf, divq, fpfd, fvco = best
    filter_range = next(i for i, limit in enumerate((17, 26, 44, 66, 101), start=1) if fpfd < limit) \
        if fpfd < 101 else 6
    return PLLSettings("SB_PLL40_PAD", fin, fout, f,
                       {"DIVR": divr, "DIVF": divf, "DIVQ": divq, "FILTER_RANGE": filter_range}, fvco)


def ecp5_pll(fin: float, fout: float) -> PLLSettings:
    """``EHXPLLL`` settings closest to ``fout`` MHz from ``fin`` MHz (feedback from CLKOP).

    Limits as Project Trellis' ``ecppll``: PFD 3.125..400 MHz, VCO 400..800 MHz,
    output 3.125..400 MHz; among equally close settings the highest VCO wins.
    """
    if fout == fin:
        return PLLSettings("none", fin, fout, fin, {})
    _check_request(fin, fout, 3.125, 400.0, "ECP5")
    best = None
    for clki_div in range(1, 129):
        fpfd = fin / clki_div
        if not 3.125 <= fpfd <= 400.0:
            continue
        for clkfb_div in range(1, 81):
            f = fpfd * clkfb_div
            for clkop_div in range(1, 129):
                fvco = f * clkop_div
                if not 400.0 <= fvco <= 800.0:
                    continue
                err = abs(f - fout)
                if best is None or err < best[0] - 1e-9 or (abs(err - best[0]) <= 1e-9 and fvco > best[5]):
                    best = (err, f, clki_div, clkfb_div, clkop_div, fvco)
    if best is None:
        raise ValueError(f"no ECP5 PLL setting makes {fout} MHz from {fin} MHz")
    _, f, clki_div, clkfb_div, clkop_div, fvco = best
    return PLLSettings("EHXPLLL", fin, fout, f,
                       {"CLKI_DIV": clki_div, "CLKFB_DIV": clkfb_div, "CLKOP_DIV": clkop_div,
                        "CLKOP_CPHASE": clkop_div - 1, "CLKOP_FPHASE": 0}, fvco)


# Gowin rPLL limits in MHz (PFD, VCO, CLKOUT) per device series and speed grade, from
# the data sheets as Project Apicula's ``gowin_pll`` lists them (DS117 GW1NR-9, DS102 GW2A).
GOWIN_PLL_LIMITS = {
    "GW1N-9": {"pfd": (3.0, 400.0), "vco": (400.0, 1200.0), "clkout": (3.125, 600.0)},     # C6/I5
    "GW2A-18": {"pfd": (3.0, 500.0), "vco": (500.0, 1250.0), "clkout": (3.90625, 625.0)},  # C8/I7
}
_GOWIN_ODIV = (2, 4, 8, 16, 32, 48, 64, 80, 96, 112, 128)


def _gowin_series(device: str) -> str:
    """``"GW1NR-9C"`` -> ``"GW1N-9"``, ``"GW2A-18C"`` / ``"GW2AR-18C"`` -> ``"GW2A-18"``."""
    m = re.match(r"(GW[12])[A-Z]*-(\d+)", device or "")
    key = f"{m.group(1)}{'N' if m and m.group(1) == 'GW1' else 'A'}-{m.group(2)}" if m else None
    if key not in GOWIN_PLL_LIMITS:
        raise ValueError(f"no Gowin rPLL limits for device {device!r}; known: {', '.join(GOWIN_PLL_LIMITS)} "
                         f"(and their R/C variants)")
    return key


def gowin_pll(fin: float, fout: float, device: str = "GW1NR-9C") -> PLLSettings:
    """``rPLL`` settings closest to ``fout`` MHz from ``fin`` MHz on a Gowin ``device``
    (the platform's ``family``, e.g. ``"GW1NR-9C"``).

    CLKOUT = fin * (FBDIV_SEL + 1) / (IDIV_SEL + 1), VCO = CLKOUT * ODIV_SEL; same
    search and limits as Project Apicula's ``gowin_pll`` (the first strictly better
    setting in (IDIV_SEL, FBDIV_SEL, ODIV_SEL) order wins).
    """
    if fout == fin:
        return PLLSettings("none", fin, fout, fin, {})
    lim = GOWIN_PLL_LIMITS[_gowin_series(device)]
    _check_request(fin, fout, *lim["clkout"], "Gowin")
    best, best_err = None, fin
    for idiv in range(64):
        fpfd = fin / (idiv + 1)
        if not lim["pfd"][0] <= fpfd <= lim["pfd"][1]:
            continue
        for fbdiv in range(64):
            f = fin * (fbdiv + 1) / (idiv + 1)
            if not lim["clkout"][0] < f < lim["clkout"][1]:
                continue
            for odiv in _GOWIN_ODIV:
                fvco = f * odiv
                if not lim["vco"][0] < fvco < lim["vco"][1]:
                    continue
                if abs(f - fout) < best_err:
                    best_err, best = abs(f - fout), (f, idiv, fbdiv, odiv, fvco)
    if best is None:
        raise ValueError(f"no Gowin rPLL setting makes {fout} MHz from {fin} MHz")
    f, idiv, fbdiv, odiv, fvco = best
    return PLLSettings("rPLL", fin, fout, f, {"IDIV_SEL": idiv, "FBDIV_SEL": fbdiv, "ODIV_SEL": odiv,
                                              "DEVICE": device}, fvco)


def pll_settings(family: str, fin: float, fout: float, *, device: str | None = None) -> PLLSettings:
    """The PLL of ``family`` for ``fout`` MHz from ``fin`` MHz (``device``: the Gowin part family)."""
    if family == "ice40":
        return ice40_pll(fin, fout)
    if family == "ecp5":
        return ecp5_pll(fin, fout)
    if family == "gowin":
        return gowin_pll(fin, fout, device or "GW1NR-9C")
    raise ValueError(f"no PLL for FPGA family {family!r}; known: ice40, ecp5, gowin")


# -- the core in the design clock domain -----------------------------------------

class LoopbackCore(wiring.Component):
    """Stand-in for ``EIETop`` with the same ports: echoes every ``host_in`` word.

    Built with ``eie build --loopback`` to bring up a board's UART link without
    the accelerator, and used by the link tests.
    """

    host_in: In(stream.Signature(32))
    host_out: Out(stream.Signature(32))
    running: Out(1)
    error: Out(1)

    def elaborate(self, platform):
        m = Module()
        m.submodules.queue = queue = fifo.SyncFIFOBuffered(width=32, depth=4)
        m.d.comb += [
            queue.w_data.eq(self.host_in.payload), queue.w_en.eq(self.host_in.valid),
            self.host_in.ready.eq(queue.w_rdy),
            self.host_out.payload.eq(queue.r_data), self.host_out.valid.eq(queue.r_rdy),
            queue.r_en.eq(self.host_out.ready),
        ]
        return m


def make_core(cfg: EIEConfig | None, image=None, *, loopback: bool = False):
    """The EIE top level for ``cfg`` (with ``image`` baked into its memories), or a loopback."""
    if loopback:
        if image is not None:
            raise ValueError("a loopback design has no memories to bake a model into; drop --model or --loopback")
        return LoopbackCore()
    from ..hw.top import EIETop
    # One response word of buffering: the UART bridge takes a word every fourth cycle
    # at most (it splits it into bytes in place), so a deeper FIFO would only cost logic.
    return EIETop(cfg, image=image, response_fifo_depth=1)


class BoardCore(wiring.Component):
    """UART bridge + EIE core + status logic, all in the ``sync`` domain.

    Parameters
    ----------
    core : wiring.Component
        ``EIETop`` (or :class:`LoopbackCore`): ``host_in``, ``host_out``, ``running``, ``error``.
    clk_hz : float
        Frequency of ``sync`` (sets the UART divisor and the LED timing).
    baud : int
        UART bit rate.
    timeout_s : float
        Inter-byte timeout within a frame.

    Members
    -------
    rx : ``In(1)``, tx : ``Out(1)``
        UART pins.
    pll_locked : ``In(1)``
        Shown on the last status LED.
    leds : ``Out(5)``
        Status LEDs (module docstring).
    """

    rx: In(1, init=1)
    tx: Out(1, init=1)
    pll_locked: In(1, init=1)
    leds: Out(N_STATUS_LEDS)

    def __init__(self, core, *, clk_hz: float, baud: int, timeout_s: float = 0.01,
                 max_words: int = MAX_FRAME_WORDS, reset_buffer=None):
        self._core = core
        self._reset_buffer = reset_buffer
        self.clk_hz = clk_hz
        self.bridge = UARTBridge(clk_hz=clk_hz, baud=baud, timeout_s=timeout_s, max_words=max_words)
        super().__init__()

    def elaborate(self, platform):
        m = Module()
        m.submodules.bridge = bridge = self.bridge
        # SYNC resets the core's command decoder (memories keep their contents). The
        # core runs in a domain of its own ("core": the sync clock) whose reset is one
        # register, set by the sync reset (PLL lock) or a SYNC frame's pulse: decoded
        # from the frame FSM, that pulse drove the reset of every flip-flop across the
        # die in the same cycle (48 PEs on the ECP5: 17.1 ns, the critical path). On the
        # ECP5 the register drives the core through a global buffer (reset_buffer: a
        # DCCA, a global net that reaches every slice's LSR). The core is reset a cycle
        # after the bridge's response queue, so a word it sends in that cycle is dropped.
        core_reset = Signal(init=1)
        m.d.sync += core_reset.eq(bridge.core_reset)
        cd_core = ClockDomain("core", local=True)
        m.domains += cd_core
        m.d.comb += [cd_core.clk.eq(ClockSignal("sync")),
                     cd_core.rst.eq(self._reset_buffer(m, core_reset) if self._reset_buffer else core_reset)]
        m.submodules.core = DomainRenamer("core")(self._core)
        wiring.connect(m, bridge.host_in, self._core.host_in)
        out, to = self._core.host_out, bridge.host_out
        m.d.comb += [to.payload.eq(out.payload), to.valid.eq(out.valid & ~core_reset), out.ready.eq(to.ready)]
        m.d.comb += [bridge.rx.eq(self.rx), self.tx.eq(bridge.tx)]

        # A millisecond strobe: the pulse stretchers count it, not clock cycles, so
        # their counters stay short (a 24-bit down-counter here was once the
        # iCE40's critical path).
        ms_cycles = max(1, round(self.clk_hz / 1000))
        ms_count = Signal(range(ms_cycles))
        ms_tick = Signal()
        m.d.comb += ms_tick.eq(ms_count == 0)
        m.d.sync += ms_count.eq(Mux(ms_tick, ms_cycles - 1, ms_count - 1))

        def stretch(pulse, seconds):
            ticks = max(1, round(seconds * 1000)) + 1     # lit for at least `seconds`
            left = Signal(range(ticks + 1))
            with m.If(pulse):
                m.d.sync += left.eq(ticks)
            with m.Elif(ms_tick & (left != 0)):
                m.d.sync += left.eq(left - 1)
            return left != 0

        # Heartbeat from the millisecond strobe too: bit 8 of a millisecond count
        # toggles every 256 ms (about 2 Hz), bit 6 every 64 ms while running.
        beat = Signal(9)
        with m.If(ms_tick):
            m.d.sync += beat.eq(beat + 1)
        running = self._core.running
        heartbeat = Signal()
        m.d.comb += heartbeat.eq(Mux(running, beat[-3], beat[-1]))

        m.d.comb += self.leds.eq(Cat(
            heartbeat,
            running,
            self._core.error | stretch(bridge.frame_error, 0.5),
            stretch(bridge.frame_ok, 0.05),
            self.pll_locked,
        ))
        return m


def ecp5_global_buffer(m, signal):
    """``signal`` through an ECP5 DCCA onto a global net (nextpnr routes it to every load,
    LSR and CE pins included, on the primary clock network)."""
    out = Signal(name=f"{signal.name}_global")
    m.submodules[f"{signal.name}_dcca"] = Instance("DCCA", i_CLKI=signal, i_CE=Const(1), o_CLKO=out)
    return out


class BoardTop(Elaboratable):
    """The design ``eie build`` synthesises for a board.

    Parameters
    ----------
    board : eie.boards.platforms.Board
    core : the EIE top level (or a loopback), see :func:`make_core`
    pll : PLLSettings for the design clock
    baud : int
    """

    def __init__(self, board, core, *, pll: PLLSettings, baud: int, timeout_s: float = 0.01):
        self.board = board
        self.pll = pll
        self.core = BoardCore(core, clk_hz=pll.achieved_mhz * 1e6, baud=baud, timeout_s=timeout_s,
                              reset_buffer=ecp5_global_buffer if board.family == "ecp5" else None)

    def elaborate(self, platform):
        m = Module()
        m.domains.sync = cd_sync = ClockDomain("sync")
        locked = Signal()
        pll = self.pll
        if pll.primitive == "none":
            m.submodules.clk_buffer = clk = io.Buffer("i", platform.request(platform.default_clk, dir="-"))
            m.d.comb += [cd_sync.clk.eq(clk.i), locked.eq(1)]
        elif pll.primitive == "SB_PLL40_PAD":
            # The iCE40 PLL takes its input straight from the oscillator pad.
            pad = platform.request(platform.default_clk, dir="-")
            m.submodules.pll = Instance(
                "SB_PLL40_PAD",
                p_FEEDBACK_PATH="SIMPLE",
                p_DIVR=pll.params["DIVR"], p_DIVF=pll.params["DIVF"], p_DIVQ=pll.params["DIVQ"],
                p_FILTER_RANGE=pll.params["FILTER_RANGE"],
                i_PACKAGEPIN=pad.io, i_RESETB=1, i_BYPASS=0,
                o_PLLOUTGLOBAL=cd_sync.clk, o_LOCK=locked)
        elif pll.primitive == "EHXPLLL":
            m.submodules.clk_buffer = clk = io.Buffer("i", platform.request(platform.default_clk, dir="-"))
            clkop = Signal()
            p = pll.params
            m.submodules.pll = Instance(
                "EHXPLLL",
                a_FREQUENCY_PIN_CLKI=f"{pll.input_mhz:g}", a_FREQUENCY_PIN_CLKOP=f"{pll.achieved_mhz:.6g}",
                a_ICP_CURRENT="12", a_LPF_RESISTOR="8", a_MFG_ENABLE_FILTEROPAMP="1", a_MFG_GMCREF_SEL="2",
                p_PLLRST_ENA="DISABLED", p_INTFB_WAKE="DISABLED", p_STDBY_ENABLE="DISABLED",
                p_DPHASE_SOURCE="DISABLED", p_OUTDIVIDER_MUXA="DIVA", p_OUTDIVIDER_MUXB="DIVB",
                p_OUTDIVIDER_MUXC="DIVC", p_OUTDIVIDER_MUXD="DIVD",
                p_CLKI_DIV=p["CLKI_DIV"], p_CLKOP_ENABLE="ENABLED", p_CLKOP_DIV=p["CLKOP_DIV"],
                p_CLKOP_CPHASE=p["CLKOP_CPHASE"], p_CLKOP_FPHASE=p["CLKOP_FPHASE"],
                p_FEEDBK_PATH="CLKOP", p_CLKFB_DIV=p["CLKFB_DIV"],
                i_RST=0, i_STDBY=0, i_CLKI=clk.i, o_CLKOP=clkop, i_CLKFB=clkop,
                i_PHASESEL0=0, i_PHASESEL1=0, i_PHASEDIR=1, i_PHASESTEP=1, i_PHASELOADREG=1,
                i_PLLWAKESYNC=0, i_ENCLKOP=0, o_LOCK=locked)
            m.d.comb += cd_sync.clk.eq(clkop)
        elif pll.primitive == "rPLL":
            m.submodules.clk_buffer = clk = io.Buffer("i", platform.request(platform.default_clk, dir="-"))
            p = pll.params
            m.submodules.pll = Instance(
                "rPLL",
                p_FCLKIN=f"{pll.input_mhz:g}", p_DEVICE=p["DEVICE"],
                p_DYN_IDIV_SEL="false", p_IDIV_SEL=p["IDIV_SEL"],
                p_DYN_FBDIV_SEL="false", p_FBDIV_SEL=p["FBDIV_SEL"],
                p_DYN_ODIV_SEL="false", p_ODIV_SEL=p["ODIV_SEL"],
                p_PSDA_SEL="0000", p_DYN_DA_EN="false", p_DUTYDA_SEL="1000",
                p_CLKOUT_FT_DIR=1, p_CLKOUTP_FT_DIR=1, p_CLKOUT_DLY_STEP=0, p_CLKOUTP_DLY_STEP=0,
                p_CLKFB_SEL="internal", p_CLKOUT_BYPASS="false", p_CLKOUTP_BYPASS="false",
                p_CLKOUTD_BYPASS="false", p_DYN_SDIV_SEL=2, p_CLKOUTD_SRC="CLKOUT", p_CLKOUTD3_SRC="CLKOUT",
                i_CLKIN=clk.i, i_CLKFB=0, i_RESET=0, i_RESET_P=0,
                i_FBDSEL=Const(0, 6), i_IDSEL=Const(0, 6), i_ODSEL=Const(0, 6),
                i_PSDA=Const(0, 4), i_DUTYDA=Const(0, 4), i_FDLY=Const(0, 4),
                o_CLKOUT=cd_sync.clk, o_LOCK=locked)
        else:
            raise ValueError(f"unknown PLL primitive {pll.primitive!r}")
        if pll.primitive != "none":
            platform.add_clock_constraint(cd_sync.clk, pll.achieved_mhz * 1e6)
        # Hold the design in reset until the PLL has locked.
        m.submodules.reset_sync = ResetSynchronizer(~locked, domain="sync")

        m.submodules.board_core = core = self.core
        uart_name, uart_number = self.board.uart
        uart = platform.request(uart_name, uart_number, dir="-")
        m.submodules.uart_rx = uart_rx = io.Buffer("i", uart.rx)
        m.submodules.uart_tx = uart_tx = io.Buffer("o", uart.tx)
        m.d.comb += [core.rx.eq(uart_rx.i), uart_tx.o.eq(core.tx), core.pll_locked.eq(locked)]
        for i, led_resource in enumerate(self.board.leds[:N_STATUS_LEDS]):
            if led_resource is None:
                continue
            name, number = led_resource
            try:
                led = platform.request(name, number, dir="-")
            except ResourceError:   # the board lacks this LED
                continue
            m.submodules[f"led_{i}"] = buffer = io.Buffer("o", led)
            m.d.comb += buffer.o.eq(core.leds[i])
        return m
