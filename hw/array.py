"""The EIE array: ``N`` processing elements and the CCU, with a flat io port.

No protocol here: :class:`eie.hw.top.EIETop` decodes host commands into the io
port and the start/run signals of :class:`EIEArray`. Ports: see the
``EIEArray`` table of docs/hardware.md (this class implements it exactly).
"""

from amaranth.hdl import Array, Cat, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from eie.config import EIEConfig
from eie.protocol import ALL_PES, Mem

from .ccu import CCU
from .pe import ProcessingElement, check_image, io_width

__all__ = ["EIEArray", "io_width", "READ_LATENCY"]

# Cycles from io_re to the item on io_rdata (see EIEArray.elaborate).
READ_LATENCY = 3


class EIEArray(wiring.Component):
    """``cfg.pes`` processing elements and the CCU.

    Members
    -------
    start : In(1)
        Pulse: start a run of ``num_layers`` layers (ignored while ``running``).
    num_layers : In(range(max_layers + 1))
        Sampled with ``start``.
    running : Out(1)
        High from the cycle after ``start`` until the run is complete.
    done : Out(1)
        One-cycle pulse when a run completes (``running`` falls the same cycle).
    io_mem, io_pe, io_addr, io_wdata, io_we : In
        Write ``io_wdata`` to item ``io_addr`` of memory ``io_mem``
        (:class:`eie.protocol.Mem`) of PE ``io_pe`` (``0xFFFF``: every PE).
    io_re : In(1)
        Read; ``io_rdata`` holds the item from :attr:`read_latency` cycles later
        on, until the item of the next ``io_re`` arrives.
    io_rdata : Out(io_width)
        Read data, zero-extended raw bits. ``COUNTER`` with ``io_pe = 0xFFFF``
        reads the global counters (:class:`eie.protocol.Counter`), with
        ``io_pe = k`` PE ``k``'s (:class:`eie.protocol.PECounter`).

    The caller has checked the io fields against :func:`eie.protocol.memory_depth`
    and keeps io idle while ``running``.

    ``image`` (keyword, an :class:`eie.format.NetworkImage` for ``cfg``, or
    None) is baked into the memories' initial contents (Spmat, pointers,
    codebook, bias, layer table): after power-up only the input activations
    need writing before a ``RUN``.
    """

    @property
    def read_latency(self) -> int:
        """Cycles from ``io_re`` to its item on ``io_rdata`` (``EIETop`` waits for it):
        ``READ_LATENCY + cfg.io_read_stages``, plus 1 for the registered io bus
        when ``io_read_stages >= 1``."""
        stages = self._cfg.io_read_stages
        return READ_LATENCY + stages + (1 if stages else 0)

    def __init__(self, cfg: EIEConfig, *, image=None):
        if not isinstance(cfg, EIEConfig):
            raise TypeError(f"EIEArray needs an EIEConfig, not {cfg!r}")
        check_image(cfg, image, "EIEArray")
        self._cfg = cfg
        self._image = image
        width = io_width(cfg)
        super().__init__({
            "start": In(1),
            "num_layers": In(range(cfg.max_layers + 1)),
            "running": Out(1),
            "done": Out(1),
            "io_mem": In(3),
            "io_pe": In(16),
            "io_addr": In(32),
            "io_wdata": In(width),
            "io_we": In(1),
            "io_re": In(1),
            "io_rdata": Out(width),
        })

    @property
    def cfg(self) -> EIEConfig:
        return self._cfg

    def elaborate(self, platform):
        cfg = self._cfg
        m = Module()
        # The host io bus (writes and reads of every memory) crosses the die to
        # every PE: with cfg.io_read_stages >= 1 it is registered once here, the
        # per-PE write enable decoded before the register (+1 cycle on writes and
        # reads; the host never uses the array in the cycles between).
        io_mem, io_addr, io_wdata, io_we, io_pe, io_re = (
            self.io_mem, self.io_addr, self.io_wdata, self.io_we, self.io_pe, self.io_re)
        pe_we = [io_we & ((io_pe == k) | (io_pe == ALL_PES)) for k in range(cfg.pes)]
        if cfg.io_read_stages:
            bus = [Signal.like(v, name=f"{v.name}_q", reset_less=True) for v in (io_mem, io_addr, io_wdata, io_pe)]
            m.d.sync += [q.eq(v) for q, v in zip(bus, (io_mem, io_addr, io_wdata, io_pe))]
            io_mem, io_addr, io_wdata, io_pe = bus
            we_q = Signal(name="io_we_q")
            re_q = Signal(name="io_re_q")
            pe_we_q = Signal(cfg.pes, name="pe_we_q")
            m.d.sync += [we_q.eq(io_we), re_q.eq(io_re), pe_we_q.eq(Cat(*pe_we))]
            io_we, io_re, pe_we = we_q, re_q, list(pe_we_q)
        ccu = m.submodules.ccu = CCU(cfg, image=self._image)
        m.d.comb += [
            ccu.start.eq(self.start),
            ccu.num_layers.eq(self.num_layers),
            self.running.eq(ccu.running),
            self.done.eq(ccu.done),
            ccu.io_mem.eq(io_mem),
            ccu.io_addr.eq(io_addr),
            ccu.io_wdata.eq(io_wdata),
            ccu.io_we.eq(io_we),
        ]
        pes = []
        for k in range(cfg.pes):
            pe = ProcessingElement(cfg, k, image=self._image)
            m.submodules[f"pe{k}"] = pe
            pes.append(pe)
            m.d.comb += [
                pe.running.eq(ccu.running),
                pe.clear.eq(ccu.clear),
                pe.codebook.eq(ccu.codebook),
                pe.bias_base.eq(ccu.bias_base),
                pe.shift.eq(ccu.shift),
                pe.relu.eq(ccu.relu),
                pe.dst_bank.eq(ccu.dst_bank),
                pe.bcast.valid.eq(ccu.bcast_valid),
                pe.bcast.payload.eq(ccu.bcast),
                pe.stall.eq(ccu.pe_stall[k]),
                ccu.pe_credit[k].eq(pe.credit),
                ccu.pe_idle[k].eq(pe.idle),
                pe.scan_addr.eq(ccu.scan_addr),
                ccu.scan_data[k].eq(pe.scan_data),
                ccu.scan_nz[k].eq(pe.scan_nz),
                pe.wb_issue.eq(ccu.wb_issue),
                pe.wb_row.eq(ccu.wb_row),
                pe.wb_rem.eq(ccu.wb_rem),
                pe.acc_clear.eq(ccu.acc_clear),
                pe.io_mem.eq(io_mem),
                pe.io_addr.eq(io_addr),
                pe.io_wdata.eq(io_wdata),
                pe.io_we.eq(pe_we[k]),
            ]

        # Reads, READ_LATENCY = 3 cycles: the memories answer in the cycle after
        # io_re, the PEs and the CCU register that word in the next, and the
        # array's own register takes the selected one in the third and keeps it
        # until the next read. Every stage ends in a register, so the read-back
        # path (PE memories -> multiplexers -> the protocol's response FIFO) is
        # never a critical path, however many PEs there are.
        # (cfg.io_read_stages more in the PEs and the CCU: registers after the memories)
        # from the (registered, when io_read_stages >= 1) io_re above
        latency = self.read_latency - (1 if cfg.io_read_stages else 0)
        rd_valid = Signal(latency - 1)
        rd_global = Signal(latency - 1)
        rd_pe = [Signal(range(cfg.pes), name=f"rd_pe{i}") for i in range(latency - 1)]
        m.d.sync += [
            rd_valid.eq(Cat(io_re, rd_valid)),
            rd_global.eq(Cat((io_mem == Mem.LAYER) | (io_mem == Mem.COUNTER) & (io_pe == ALL_PES),
                             rd_global)),
            rd_pe[0].eq(io_pe),
            *(rd_pe[i + 1].eq(rd_pe[i]) for i in range(latency - 2)),
        ]
        pe_rdata = Array(pe.io_rdata for pe in pes)
        with m.If(rd_valid[-1]):
            m.d.sync += self.io_rdata.eq(Mux(rd_global[-1], ccu.io_rdata, pe_rdata[rd_pe[-1]]))
        return m
