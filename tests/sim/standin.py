"""A behavioural stand-in for ``EIEArray``: memories only, no arithmetic.

Used with the real :class:`eie.hw.top.EIETop` (protocol decoder) to test the
simulation harness, the runner and the links without the PE array: WRITE/READ
round-trip through one flat memory, RUN takes ``RUN_CYCLES_PER_LAYER`` cycles
per layer and the global ``CYCLES`` counter reads back how many it took.
"""

from amaranth.hdl import Cat, Module, Mux, Signal
from amaranth.lib import memory, wiring
from amaranth.lib.wiring import In, Out

from eie.config import EIEConfig
from eie.protocol import Counter, Mem

RUN_CYCLES_PER_LAYER = 7


def io_width(cfg: EIEConfig) -> int:
    return max(cfg.spmat_word_bits, cfg.ptr_bits, cfg.codebook_bits, cfg.bias_bits, cfg.act_bits,
               cfg.layer_entry_bits, 64)


class StandInArray(wiring.Component):
    def __init__(self, cfg: EIEConfig):
        self._cfg = cfg
        w = io_width(cfg)
        super().__init__({
            "start": In(1), "num_layers": In(range(cfg.max_layers + 1)), "running": Out(1), "done": Out(1),
            "io_mem": In(3), "io_pe": In(16), "io_addr": In(32), "io_wdata": In(w), "io_we": In(1),
            "io_re": In(1), "io_rdata": Out(w),
        })

    def elaborate(self, platform):
        m = Module()
        w = io_width(self._cfg)
        m.submodules.store = store = memory.Memory(shape=w, depth=1 << 14, init=[])
        wr = store.write_port()
        rd = store.read_port()
        # The layer table is global (written with pe = ALL_PES, read with pe = 0).
        # Broadcast writes to per-PE memories are not modelled.
        shared = self.io_mem == Mem.LAYER
        index = Cat(self.io_addr[:9], Mux(shared, 0, self.io_pe[:2]), self.io_mem)
        m.d.comb += [wr.addr.eq(index), wr.data.eq(self.io_wdata), wr.en.eq(self.io_we),
                     rd.addr.eq(index), rd.en.eq(self.io_re)]
        cycles = Signal(64)
        left = Signal(16)
        layers = Signal(8)
        is_counter = Signal()
        counter_addr = Signal(2)
        with m.If(self.io_re):
            m.d.sync += [is_counter.eq(self.io_mem == Mem.COUNTER), counter_addr.eq(self.io_addr[:2])]
        with m.If(is_counter):
            with m.Switch(counter_addr):
                with m.Case(Counter.CYCLES):
                    m.d.comb += self.io_rdata.eq(cycles)
                with m.Case(Counter.LAYERS):
                    m.d.comb += self.io_rdata.eq(layers)
        with m.Else():
            m.d.comb += self.io_rdata.eq(rd.data)
        with m.If(self.running):
            m.d.sync += [cycles.eq(cycles + 1), left.eq(left - 1)]
            with m.If(left == 1):
                m.d.sync += self.running.eq(0)
                m.d.comb += self.done.eq(1)
        with m.Elif(self.start):
            m.d.sync += [self.running.eq(1), cycles.eq(0), layers.eq(self.num_layers),
                         left.eq(self.num_layers * RUN_CYCLES_PER_LAYER)]
        return m


def standin_verilog(cfg: EIEConfig) -> str:
    from eie.hw.verilog import convert
    return convert(cfg, array=StandInArray)
