"""A small synchronous FIFO with stream ports, used inside the processing element.

Unlike :class:`amaranth.lib.fifo.SyncFIFO`, the write side can be told to accept
a write into a full queue in a cycle in which the head is read
(``ready_when_popping``): the column buffer uses that so a column can enter in
the very cycle the multiplier finishes the head column. The cycle model
(``eie.golden.cycle_model``) depends on exactly this timing:

* an item written in cycle ``t`` can be read from cycle ``t + 1`` on;
* ``w.ready = level < depth`` (plus ``| r.ready & r.valid`` when
  ``ready_when_popping``); it never depends on ``w.valid``.
"""

from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

__all__ = ["SyncQueue"]


class SyncQueue(wiring.Component):
    """First-in first-out queue of ``depth`` items of ``shape``.

    Parameters
    ----------
    shape : shape-castable
        Item shape (a layout is fine: the payloads are views).
    depth : int
        Capacity in items, ``1 ..``.
    ready_when_popping : bool
        Accept a write while full if the head is read in the same cycle.

    Members
    -------
    w : In(stream.Signature(shape))
        Write side. ``w.ready`` does not depend on ``w.valid``.
    r : Out(stream.Signature(shape))
        Read side; ``r.valid`` is ``level != 0`` and ``r.payload`` the head.
    level : Out(range(depth + 1))
        Items held (a register).
    """

    def __init__(self, shape, depth: int, *, ready_when_popping: bool = False):
        if not isinstance(depth, int) or depth < 1:
            raise ValueError(f"SyncQueue depth must be a positive integer, not {depth!r}")
        self._shape = shape
        self._depth = depth
        self._ready_when_popping = bool(ready_when_popping)
        super().__init__({
            "w": In(stream.Signature(shape)),
            "r": Out(stream.Signature(shape)),
            "level": Out(range(depth + 1)),
        })

    @property
    def depth(self) -> int:
        return self._depth

    def elaborate(self, platform):
        m = Module()
        depth = self._depth
        storage = m.submodules.storage = Memory(shape=self._shape, depth=depth, init=[])
        wp = storage.write_port()
        rp = storage.read_port(domain="comb")
        produce = Signal(range(depth))
        consume = Signal(range(depth))

        pop = Signal()
        push = Signal()
        m.d.comb += [
            self.r.valid.eq(self.level != 0),
            pop.eq(self.r.valid & self.r.ready),
        ]
        if self._ready_when_popping:
            m.d.comb += self.w.ready.eq((self.level != depth) | pop)
        else:
            m.d.comb += self.w.ready.eq(self.level != depth)
        m.d.comb += [
            push.eq(self.w.valid & self.w.ready),
            wp.addr.eq(produce),
            wp.data.eq(self.w.payload),
            wp.en.eq(push),
            rp.addr.eq(consume),
            self.r.payload.eq(rp.data),
        ]

        def incr(ptr):
            return Mux(ptr == depth - 1, 0, ptr + 1)

        with m.If(push):
            m.d.sync += produce.eq(incr(produce))
        with m.If(pop):
            m.d.sync += consume.eq(incr(consume))
        with m.If(push & ~pop):
            m.d.sync += self.level.eq(self.level + 1)
        with m.Elif(pop & ~push):
            m.d.sync += self.level.eq(self.level - 1)
        return m
