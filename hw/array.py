"""The EIE array: ``N`` processing elements and the CCU, with a flat io port.

No protocol here: :class:`eie.hw.top.EIETop` decodes host commands into the io
port and the start/run signals of :class:`EIEArray`. Ports: see the
``EIEArray`` table of docs/hardware.md (this class implements it exactly).
"""

from amaranth.hdl import Array, Cat, Module, Mux, Signal, Value
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from eie.config import EIEConfig
from eie.protocol import ALL_PES, Mem
from eie.timing import FANOUT_GROUP

from .ccu import CCU
from .memory import delayed
from .pe import ProcessingElement, check_image, io_width

__all__ = ["EIEArray", "io_width", "READ_LATENCY", "FANOUT_PREFIX", "GROUP_PREFIX", "fanout_tree"]

# Cycles from io_re to the item on io_rdata (see EIEArray.elaborate).
READ_LATENCY = 3

#: Names of a fanout tree's registers start with this: the FPGA build marks
#: them ``keep`` (eie.boards.build), or Yosys would merge the copies of a stage
#: back into one register, which is what drove every PE across the die.
FANOUT_PREFIX = "fanout_"
#: With a fanout tree, submodule ``group<g>`` of the array holds PEs ``8 g .. 8 g + 7``
#: (:data:`eie.timing.FANOUT_GROUP` each) and the tree's last-stage registers for them.
GROUP_PREFIX = "group"


def _register(m, value, name, reset_less):
    reg = Signal.like(Value.cast(value), name=name, reset_less=reset_less)
    m.d.sync += reg.eq(value)
    return reg


def fanout_tree(m, value, pes: int, stages: int, name: str, *, reset_less: bool = False, groups=None):
    """``value`` for each of ``pes`` PEs, through ``stages`` registers (a list of ``pes`` Values).

    The last stage has one register per group of :data:`eie.timing.FANOUT_GROUP`
    PEs (PE ``k`` takes copy ``k // FANOUT_GROUP``), each earlier stage one per
    group of ``FANOUT_GROUP`` registers of the next: a register drives at most
    ``FANOUT_GROUP`` loads and sits between its driver and them, so no net runs
    from one register to every PE. ``groups`` (a list of Modules, one per group
    of PEs, or None) takes the last stage's registers, each into its group's
    module; the earlier stages go to ``m``. Call it outside any ``If``/``Switch``."""
    copies, span = [value], FANOUT_GROUP ** (stages + 1)
    for stage in range(1, stages + 1):
        span //= FANOUT_GROUP                          # PEs behind one register of this stage
        copies = [_register(groups[i] if groups is not None and stage == stages else m,
                            copies[i // FANOUT_GROUP] if stage > 1 else value,
                            f"{FANOUT_PREFIX}{name}_s{stage}_{i}", reset_less)
                  for i in range(-(-pes // span))]
    return [copies[k // span] if stages else value for k in range(pes)]


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
        when ``io_read_stages >= 1``, plus ``cfg.fanout_stages`` (the io bus
        reaches the PEs through the fanout tree)."""
        stages = self._cfg.io_read_stages
        return READ_LATENCY + stages + (1 if stages else 0) + self._cfg.fanout_stages

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
        pes = [ProcessingElement(cfg, k, image=self._image) for k in range(cfg.pes)]
        # With a fanout tree, the PEs behind one last-stage register form a module
        # (submodule group<g> of PEs 8 g .. 8 g + 7, with that stage's registers):
        # the FPGA build keeps it as a unit of hierarchy, so synthesis maps a group at
        # a time and shares within it what its PEs compute from the same broadcast.
        D = cfg.fanout_stages
        groups = [Module() for _ in range(-(-cfg.pes // FANOUT_GROUP))] if D else None
        for g, group in enumerate(groups or ()):
            m.submodules[f"{GROUP_PREFIX}{g}"] = group
        for k, pe in enumerate(pes):
            (groups[k // FANOUT_GROUP] if D else m).submodules[f"pe{k}"] = pe
        # CCU -> PEs: through cfg.fanout_stages registers of a tree (none: the CCU's and
        # the io bus's registers drive every PE), the control bits reset, the data not;
        # the per-PE bits (stall, io write enable) through a plain pipeline each.
        # PEs -> CCU: credits, idle flags and register-file words through as many.
        ctrl = [ccu.running, ccu.clear, ccu.bcast_valid, ccu.wb_issue, ccu.acc_clear]
        data = [ccu.codebook, ccu.bias_base, ccu.shift, ccu.relu, ccu.dst_bank, ccu.bcast, ccu.scan_addr,
                ccu.wb_row, ccu.wb_rem, io_mem, io_addr, io_wdata]
        ctrl_at = fanout_tree(m, Cat(*ctrl), cfg.pes, D, "ctrl", groups=groups)
        data_at = fanout_tree(m, Cat(*data), cfg.pes, D, "data", reset_less=True, groups=groups)
        stall = delayed(m, ccu.pe_stall, D, "fanin_stall", reset_less=False)
        we = delayed(m, Cat(*pe_we), D, "fanin_io_we", reset_less=False)
        credit = delayed(m, Cat(pe.credit for pe in pes), D, "fanin_credit", reset_less=False)
        idle = delayed(m, Cat(pe.idle for pe in pes), D, "fanin_idle", reset_less=False, init=(1 << cfg.pes) - 1)
        scan = delayed(m, Cat(Cat(pe.scan_data, pe.scan_nz) for pe in pes), D, "fanin_scan")
        m.d.comb += [ccu.pe_credit.eq(credit), ccu.pe_idle.eq(idle)]
        scan_bits = cfg.act_bits + 1
        for k, pe in enumerate(pes):
            down = [pe.running, pe.clear, pe.bcast.valid, pe.wb_issue, pe.acc_clear]
            m.d.comb += Cat(*down).eq(ctrl_at[k])
            down = [pe.codebook, pe.bias_base, pe.shift, pe.relu, pe.dst_bank, pe.bcast.payload, pe.scan_addr,
                    pe.wb_row, pe.wb_rem, pe.io_mem, pe.io_addr, pe.io_wdata]
            m.d.comb += [
                Cat(*down).eq(data_at[k]),
                pe.stall.eq(stall[k]),
                pe.io_we.eq(we[k]),
                Cat(ccu.scan_data[k], ccu.scan_nz[k]).eq(scan[k * scan_bits:(k + 1) * scan_bits]),
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
        # (the CCU's word waits for the PEs', which are D cycles later: the io bus passes the tree)
        ccu_rdata = delayed(m, ccu.io_rdata, D, "ccu_rdata")
        with m.If(rd_valid[-1]):
            m.d.sync += self.io_rdata.eq(Mux(rd_global[-1], ccu_rdata, pe_rdata[rd_pe[-1]]))
        return m
