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

:func:`read_port` therefore builds the read as an asynchronous port followed by
a register: simulators see exactly the synchronous port (the word addressed in
the previous cycle, held while ``en`` is low), and Yosys' ``memory_dff`` folds
the register into the block RAM's port, honouring the memory's ``no_rw_check``
attribute (collision value undefined) instead of emulating read-first.
"""

from types import SimpleNamespace

from amaranth.hdl import Signal

__all__ = ["BLOCK_RAM", "RAM", "read_port", "delayed"]

# Memories that belong in block RAM even when small (on the ECP5 Yosys would
# otherwise put them into LUT RAM, whose few slices then congest the router:
# 16 PEs filled 75 % of them), collisions left to the hardware. Simulators
# ignore both attributes.
BLOCK_RAM = {"ram_style": "block", "no_rw_check": 1}
# Same, for memories Yosys may place wherever it likes (e.g. the iCE40 SPRAM).
RAM = {"no_rw_check": 1}


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


def delayed(m, value, stages: int, name: str):
    """``value`` through ``stages`` reset-less registers (``value`` itself for 0).

    Call it outside any ``If``/``Switch``: the registers must load every cycle."""
    for i in range(stages):
        reg = Signal.like(value, name=f"{name}_d{i + 1}", reset_less=True)
        m.d.sync += reg.eq(value)
        value = reg
    return value
