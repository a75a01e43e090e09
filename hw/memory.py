"""Block-RAM read ports that leave read/write collisions to the hardware.

Amaranth emits a synchronous read port as "old data on a same-address write"
(read-first). Neither the iCE40 EBR nor the ECP5 DP16KD guarantees that
between a read port and a separate write port, so Yosys emulates it: it delays
the write by a cycle and puts a forwarding multiplexer on the read data, a
flip-flop per data bit on both sides and a multiplexer level on the block RAM's
output path (on the iCE40 UP5K about 150 logic cells per PE). None of the
datapath's reads ever uses a word written in the same cycle: the accumulator's
read-modify-write takes the bypass on a same-row hit, and every other memory is
written by the host only while the datapath is stopped, when nobody uses what
the read port returns in a write cycle.

:func:`memory` is how a block asks for a memory: it gives the same ports (a
registered read with ``addr``/``en``/``data``, a write with ``addr``/``data``/``en``)
whatever the target. Elaborated for an FPGA (or with no platform) it builds a
``lib.memory.Memory`` as above; elaborated for an :class:`ASICTarget` it
instantiates a wrapper module with a plain SRAM interface instead: an SRAM macro
(``eie_sram_<depth>x<width>``, a black box in synthesis) where the memory is big
enough for a macro to pay, a flip-flop register file (``eie_rf_<depth>x<width>``,
synthesised from its behavioural model) where it is not. A memory the block uses
as single-ported (one address, never read and written in the same cycle: the
Spmat) becomes a one-port macro, ``eie_sram1rw_<depth>x<width>``, about half the
area of a two-port one. :func:`wrapper_verilog` writes the behavioural model of
every wrapper a design used.

:func:`read_port` therefore builds the read as an asynchronous port followed by
a register: simulators see exactly the synchronous port (the word addressed in
the previous cycle, held while ``en`` is low), and Yosys' ``memory_dff`` folds
the register into the block RAM's port, honouring the memory's ``no_rw_check``
attribute (collision value undefined) instead of emulating read-first.
"""

from dataclasses import dataclass
from types import SimpleNamespace

from amaranth.hdl import ClockSignal, Instance, Shape, Signal
from amaranth.lib.memory import Memory

__all__ = ["BLOCK_RAM", "LUT_RAM", "RAM", "ram_attrs", "read_port", "delayed", "memory", "ASICTarget", "MemoryShape",
           "wrapper_verilog"]

# Memories that belong in block RAM even when small (on the ECP5 Yosys would
# otherwise put them into LUT RAM, whose few slices then congest the router:
# 16 PEs filled 75 % of them), collisions left to the hardware. Simulators
# ignore both attributes.
BLOCK_RAM = {"ram_style": "block", "no_rw_check": 1}
# Same, for memories Yosys may place wherever it likes (e.g. the iCE40 SPRAM).
RAM = {"no_rw_check": 1}
# Small memories in LUT RAM (EIEConfig.lutram_words): ECP5 TRELLIS_DPR16X4, Gowin
# RAM16SDP4; the read stays registered (read_port), so timing does not change.
LUT_RAM = {"ram_style": "distributed", "no_rw_check": 1}


def ram_attrs(cfg, depth: int) -> dict:
    """:data:`LUT_RAM` for a memory of at most ``cfg.lutram_words`` words, else :data:`BLOCK_RAM`."""
    return LUT_RAM if depth <= cfg.lutram_words else BLOCK_RAM


def read_port(m, memory, name: str) -> SimpleNamespace:
    """A synchronous read port of ``memory`` (attributes ``addr``, ``en``, ``data``)
    built from an asynchronous port and a register (see the module docstring).

    ``en`` defaults to 1; while it is low ``data`` keeps its value, like the
    ``en`` of ``Memory.read_port()``. ``memory`` must carry ``no_rw_check``
    (:data:`BLOCK_RAM` or :data:`RAM`), or Yosys emulates read-first again.
    """
    if not memory.attrs.get("no_rw_check"):
        raise ValueError(f"read_port: memory {name!r} needs attrs=BLOCK_RAM or RAM (no_rw_check), "
                         f"or its registered read is emulated as read-first in logic")
    port = memory.read_port(domain="comb")
    en = Signal(name=f"{name}_ren", init=1)
    data = Signal(memory.shape, name=f"{name}_rdata", reset_less=True)
    with m.If(en):
        m.d.sync += data.eq(port.data)
    return SimpleNamespace(addr=port.addr, en=en, data=data)


def delayed(m, value, stages: int, name: str, *, reset_less: bool = True, init=None):
    """``value`` through ``stages`` registers (``value`` itself for 0), reset-less
    unless ``reset_less=False``; initial value ``init``, else ``value``'s.

    Call it outside any ``If``/``Switch``: the registers must load every cycle."""
    for i in range(stages):
        reg = Signal.like(value, name=f"{name}_d{i + 1}", reset_less=reset_less,
                          **({} if init is None else {"init": init}))
        m.d.sync += reg.eq(value)
        value = reg
    return value


@dataclass(frozen=True)
class MemoryShape:
    """One memory wrapper module: ``kind`` (``"sram"`` macro or ``"rf"`` flip-flops),
    ``depth`` words of ``width`` bits, ``ports`` ``"1r1w"`` (one synchronous read and
    one write port) or ``"1rw"`` (one port that reads or writes, SRAM macros only)."""
    kind: str
    depth: int
    width: int
    ports: str = "1r1w"

    def __post_init__(self):
        if self.ports not in ("1r1w", "1rw") or (self.ports == "1rw" and self.kind != "sram"):
            raise ValueError(f"memory wrapper ports must be 1r1w, or 1rw for an SRAM macro; not {self.kind} "
                             f"{self.ports!r}")

    @property
    def module(self) -> str:
        return f"eie_{self.kind}{'1rw' if self.ports == '1rw' else ''}_{self.depth}x{self.width}"

    @property
    def addr_bits(self) -> int:
        return max(1, (self.depth - 1).bit_length())


class ASICTarget:
    """Elaboration platform of a standard-cell flow: every memory a wrapper module.

    A memory becomes an SRAM macro when it has at least ``macro_min_words`` words
    and ``macro_min_bits`` bits, otherwise a flip-flop register file: below that
    a macro's periphery (decoders, sense amplifiers) outweighs its array and
    memory compilers' smallest arrays are 16-32 words. With the defaults every
    memory of a PE is a macro (the 16-entry-per-layer codebook too, as a 16 x
    16-bit register file is in the paper) and the CCU's layer table (a few
    wide words) is flip-flops. Memories built inline by
    library blocks (the activation queue, the column buffer, the response FIFO:
    a few words each, asynchronous reads) stay flip-flops by synthesis.

    ``memories`` lists, after elaboration, ``(name, MemoryShape)`` for every
    wrapper instance in elaboration order; ``shapes`` the distinct shapes.
    """

    def __init__(self, *, macro_min_words: int = 32, macro_min_bits: int = 1024):
        for name, value in (("macro_min_words", macro_min_words), ("macro_min_bits", macro_min_bits)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"ASICTarget {name} must be a positive integer, not {value!r}")
        self.macro_min_words = macro_min_words
        self.macro_min_bits = macro_min_bits
        self.memories: list[tuple[str, MemoryShape]] = []

    def shape_of(self, depth: int, width: int, single_port: bool = False) -> MemoryShape:
        macro = depth >= self.macro_min_words and depth * width >= self.macro_min_bits
        return MemoryShape("sram" if macro else "rf", depth, width, "1rw" if macro and single_port else "1r1w")

    @property
    def shapes(self) -> list[MemoryShape]:
        return sorted({shape for _, shape in self.memories}, key=lambda s: (s.kind, s.depth, s.width, s.ports))


def memory(m, platform, name: str, *, shape, depth: int, init=(), attrs=None,
           single_port: bool = False, reads: int = 1) -> SimpleNamespace:
    """A memory of ``depth`` words of ``shape`` with one registered read port and one
    write port, added to ``m`` as submodule ``name``; returns ``SimpleNamespace(r=, w=)``.

    ``r.addr``, ``r.en`` (default 1; ``r.data`` holds while it is low) and
    ``r.data`` (the word at the address of the last cycle with ``en`` high, the
    old word when that cycle also wrote it); ``w.addr``, ``w.data``, ``w.en``.
    With ``attrs`` (:data:`BLOCK_RAM` or :data:`RAM`) the FPGA read is built by
    :func:`read_port`, without them by ``Memory.read_port()``. On an
    :class:`ASICTarget` ``platform`` the memory is an instance of its wrapper
    module, which cannot hold initial contents: ``init`` must be all zero there.

    ``single_port``: the block drives ``r.addr`` and ``w.addr`` with the same address
    and never has ``r.en`` and ``w.en`` high together. For an FPGA nothing changes
    (Yosys may pick a single-port RAM by itself); on an ASIC target ``r.addr`` and
    ``w.addr`` are one signal and an SRAM-sized memory is a one-port macro, whose
    model stops the simulation on a cycle with both enables high.

    ``reads=2`` adds a second registered read port ``r2`` (FPGA only, with
    ``attrs``): the block drives ``r.addr`` and ``w.addr`` with the same address, so
    that Yosys maps the memory onto one true dual-port block RAM (ECP5 DP16KD, Gowin
    BSRAM): port A reads or writes, port B reads.
    """
    if reads not in (1, 2):
        raise ValueError(f"memory {name!r}: reads must be 1 or 2, not {reads!r}")
    if not isinstance(platform, ASICTarget):
        mem = m.submodules[name] = Memory(shape=shape, depth=depth, init=init, attrs=attrs)
        r = read_port(m, mem, name) if attrs else mem.read_port(src_loc_at=1)
        if reads == 1:
            return SimpleNamespace(r=r, w=mem.write_port(src_loc_at=1))
        if not attrs:
            raise ValueError(f"memory {name!r}: a second read port needs attrs=BLOCK_RAM or RAM")
        return SimpleNamespace(r=r, r2=read_port(m, mem, f"{name}_b"), w=mem.write_port(src_loc_at=1))
    if reads != 1:
        raise ValueError(f"memory {name!r}: the ASIC target's memory wrappers have one read port, not {reads}; "
                         f"build the design with EIEConfig.pointer_banks = 2 (two one-read-port pointer banks)")
    if any(init):
        raise ValueError(f"memory {name!r}: an ASIC target has no initial memory contents (SRAM macros power up "
                         f"undefined); load the network through the host protocol instead of baking it in")
    shape = Shape.cast(shape)
    wrapper = platform.shape_of(depth, shape.width, single_port)
    platform.memories.append((name, wrapper))
    raddr = Signal(range(depth), name=f"{name}_addr" if single_port else f"{name}_raddr")
    waddr = raddr if single_port else Signal(range(depth), name=f"{name}_waddr")
    r = SimpleNamespace(addr=raddr, en=Signal(name=f"{name}_ren", init=1), data=Signal(shape, name=f"{name}_rdata"))
    w = SimpleNamespace(addr=waddr, en=Signal(name=f"{name}_wen"), data=Signal(shape, name=f"{name}_wdata"))
    ports = {"i_addr": raddr} if wrapper.ports == "1rw" else {"i_raddr": raddr, "i_waddr": waddr}
    m.submodules[name] = Instance(wrapper.module, i_clk=ClockSignal(), i_re=r.en, o_rdata=r.data, i_we=w.en,
                                  i_wdata=w.data, **ports)
    return SimpleNamespace(r=r, w=w)


_COUNTER = """
  reg [63:0] reads = 0, writes = 0;
  always @(posedge clk) begin
    if (re) reads <= reads + 1;
    if (we) writes <= writes + 1;
  end
  final $display("EIE_MEMORY_ACCESSES %m %0d %0d", reads, writes);"""


# A one-port macro cannot read and write in one cycle: its model stops the simulation.
_CONFLICT = """
`ifndef SYNTHESIS
  always @(posedge clk)
    if (re && we) $fatal(1, "EIE_MEMORY_CONFLICT %m: read and write in one cycle on a one-port macro");
`endif"""


def wrapper_verilog(shapes, *, count_accesses: bool = False) -> str:
    """Behavioural Verilog of the wrapper modules ``shapes`` (:class:`MemoryShape`).

    The model is the contract of a wrapper: ``rdata`` is registered, updated at
    a rising ``clk`` with ``re`` high to the word at ``raddr`` before that
    edge's write (read-first, like Amaranth's synchronous read port), held
    while ``re`` is low; ``we`` writes ``wdata`` at ``waddr``. A one-port macro
    (``ports`` ``1rw``) has one ``addr`` for both and stops the simulation when
    ``re`` and ``we`` are high in the same cycle. Register files are synthesised from it; for SRAM macros it is the simulation model, and
    synthesis sees a black box with the macro's views (:mod:`eie.asic`).

    ``count_accesses`` (simulation only) counts the cycles with ``re`` and with
    ``we`` high and prints them at the end of the simulation as
    ``EIE_MEMORY_ACCESSES <instance path> <reads> <writes>`` (the power report
    multiplies them by the macro's energy per access).
    """
    out = ["// Memory wrappers of an eie ASIC design (written by eie.hw.memory.wrapper_verilog).",
           "// rdata: registered, read-first, held while re is low."]
    for s in shapes:
        a, w = s.addr_bits, s.width
        one = s.ports == "1rw"
        ra, wa = ("addr", "addr") if one else ("raddr", "waddr")
        ports = ["input wire clk", "input wire re"]
        ports += ["input wire we", f"input wire [{a - 1}:0] addr"] if one else [f"input wire [{a - 1}:0] raddr"]
        ports += [f"output reg [{w - 1}:0] rdata"]
        ports += [] if one else ["input wire we", f"input wire [{a - 1}:0] waddr"]
        ports += [f"input wire [{w - 1}:0] wdata"]
        port_list = ",\n  ".join(ports)
        out.append(f"""
module {s.module} (
  {port_list}
);
  reg [{w - 1}:0] mem [0:{s.depth - 1}];
  always @(posedge clk) begin
    if (we) mem[{wa}] <= wdata;
    if (re) rdata <= mem[{ra}];
  end{_CONFLICT if one else ""}{_COUNTER if count_accesses else ""}
endmodule""")
    return "\n".join(out) + "\n"
