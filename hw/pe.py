"""The EIE processing element (PE).

PE ``k`` of ``N`` owns output rows ``i = r * N + k`` (local row ``r``) and input
activations ``j = r * N + k`` (register-file index ``r``). Its pipeline, one
broadcast column in, one weight entry per cycle out of the multiplier::

    activation queue (fifo_depth x (j, a_j))
      -> pointer read: p[ptr_base + j], p[ptr_base + j + 1] from the even/odd banks
         (the broadcast carries ptr_base + j)
         (one column per cycle; empty columns are dropped here)
      -> column buffer (column_buffer_depth x (word, slot, count, a_j))
      -> Spmat read: one entry per cycle, no bubble between columns
      -> arithmetic: codebook lookup || row address, register, multiply, accumulate (bypass)

Cycle-level contract (what ``eie.golden.cycle_model`` reproduces; see
docs/hardware.md, "Timing"): for the ``b``-th broadcast pushed in cycle ``t_b``
and its ``n_b`` entries in this PE,

* the queue accepts a push while it holds fewer than ``fifo_depth`` items or
  pops in the same cycle (``bcast.ready`` does not depend on ``bcast.valid``);
* the pointer stage P1 takes column ``b`` in ``q_b = max(t_b, m_{b-1})``,
  straight off the bus when the queue is empty, else popped from the queue;
  its pointers are on the read ports from ``q_b + 1`` and move into the P2
  registers in ``m_b = max(q_b + 1, l_{b-1})``; from ``m_b + 1`` an empty column
  leaves P2 at once (``l_b = m_b + 1``), a non-empty one is pushed into the
  column buffer in ``c_b = max(m_b + 1, f_{i-C})`` (``l_b = c_b``), where ``i``
  counts non-empty columns and ``f`` is the cycle the Spmat read issues a
  column's last entry (a stage accepts in the cycle its column leaves); the
  credit comes back to the CCU in ``l_b + 1`` (a register);
* the Spmat read issues the ``n_i`` entries in ``s_i .. f_i = s_i + n_i - 1``,
  ``s_i = max(c_i + 1, f_{i-1} + 1)``; the accumulator is written
  ``cfg.mac_latency`` (6) cycles after an entry is issued; the datapath is
  empty from ``max(m_last + 2, f_last + mac_latency + 1)`` and ``idle`` (a
  register) rises one cycle later.

Memories (``lib.memory.Memory``, synchronous read, one read and one write port
each, shared between compute and the host io port by muxes): Spmat (one
address for both ports: single-port RAM), even and odd pointer banks,
codebook, bias, accumulators and the two activation register files (one
memory, bank ``b`` at ``b * act_depth``).
"""

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from eie.config import EIEConfig, clog2
from eie.format import NetworkImage
from eie.protocol import Mem, memory_readable, memory_width

from .fifo import SyncQueue
from .layouts import broadcast_layout, column_layout, divide_by_constant
from .memory import BLOCK_RAM, delayed, memory, ram_attrs

__all__ = ["ProcessingElement", "io_width", "pe_rdata_width", "pe_wdata_width"]



def _check_stages(what: str, valids: list, latency: int) -> None:
    """The pipeline built has one register stage per entry of ``eie.timing.<what>``, or elaboration fails."""
    if len(valids) != latency:
        raise AssertionError(f"the PE's pipeline has {len(valids)} register stages but eie.timing.{what} "
                             f"gives a latency of {latency}: change the RTL and eie.timing together")


# The memories inside each PE (the host addresses them per PE).
_PE_MEMS = (Mem.SPMAT, Mem.PTR, Mem.CODEBOOK, Mem.BIAS, Mem.ACT)


def pe_wdata_width(cfg: EIEConfig) -> int:
    """Width of a PE's io write data: its widest memory item (every memory is writable)."""
    return max(memory_width(cfg, mm) for mm in _PE_MEMS)


def pe_rdata_width(cfg: EIEConfig) -> int:
    """Width of a PE's io read data: its widest readable memory item (cfg.host_readback) or counter."""
    readable = [memory_width(cfg, mm) for mm in _PE_MEMS if memory_readable(cfg, mm)]
    return max(*readable, cfg.counter_bits if cfg.pe_counters else 0)


def io_width(cfg: EIEConfig) -> int:
    """Width of the array's io data ports: the widest item (PE memories, layer entry, counters)."""
    return max(pe_wdata_width(cfg), cfg.layer_entry_bits, cfg.counter_bits)


def check_image(cfg: EIEConfig, image, who: str) -> None:
    """Raise unless ``image`` is None or an ``eie.format.NetworkImage`` built for ``cfg``."""
    if image is None:
        return
    if not isinstance(image, NetworkImage):
        raise TypeError(f"{who} image must be an eie.format.NetworkImage or None, not {type(image).__name__}")
    if image.config != cfg:
        raise ValueError(f"{who} image was encoded for config {image.config.digest}, not for this design's "
                         f"config {cfg.digest}; re-encode it with eie.golden.encode.build_image(layers, cfg)")


def pe_memory_init(cfg: EIEConfig, image, index: int) -> dict:
    """Initial contents of PE ``index``'s memories from ``image`` (empty lists when None).

    Keys ``spmat``, ``ptr`` (every pointer: ``cfg.pointer_banks`` 1), ``ptr_even``,
    ``ptr_odd`` (banks 2), ``codebook``, ``bias``: the same
    layout as the host's writes (docs/protocol.md, "Memories"), unused tails zero.
    """
    if image is None:
        return {"spmat": [], "ptr": [], "ptr_even": [], "ptr_odd": [], "codebook": [], "bias": []}
    ptr = [int(p) for p in image.ptr[index]]
    return {
        "spmat": [int(w) for w in image.spmat[index]],
        "ptr": ptr,
        "ptr_even": ptr[0::2],
        "ptr_odd": ptr[1::2],
        "codebook": [int(v) for v in image.codebook.reshape(-1)],
        "bias": [int(b) for b in image.bias[index]],
    }


def shift_right_summarised(x, shift, keep: int):
    """``x >> shift`` (arithmetic) reduced to what a saturating write-back needs:
    ``(low, any_up, all_up)``, the low ``keep`` bits of the result and whether any /
    every bit above them (sign extension included) is set.

    A logarithmic shifter, largest step first; after the step by ``2**j`` at most
    ``2**j - 1`` positions of shift remain, so result bits at ``keep + 2**j - 1`` and
    above can never come down into ``low``: they are folded into the two flags
    there and not shifted further.
    """
    bits = [x[i] for i in range(len(x))]
    sign = x[-1]
    any_up, all_up = Const(0, 1), Const(1, 1)
    for j in reversed(range(len(shift))):
        step = 1 << j
        bits = [Mux(shift[j], bits[i + step] if i + step < len(bits) else sign, bits[i])
                for i in range(len(bits))]
        limit = keep + step - 1
        if len(bits) > limit:
            any_up = any_up | Cat(*bits[limit:]).any()
            all_up = all_up & Cat(*bits[limit:]).all()
            bits = bits[:limit]
    bits += [sign] * (keep - len(bits))
    return Cat(*bits[:keep]), any_up, all_up


class ProcessingElement(wiring.Component):
    """Processing element ``index`` of an EIE array built from ``cfg``.

    Members
    -------
    running : In(1)
        Compute mode: the memories belong to the datapath, not to the io port.
    clear : In(1)
        Clear the performance counters (a run starts).
    codebook, bias_base, shift, relu : In
        Fields of the current layer (registered in the CCU).
    bcast : In(stream.Signature(broadcast_layout))
        Broadcast ``(ptr_base + j, a_j)`` into the activation queue (the CCU adds
        the layer's pointer base). ``ready`` is "queue not full, or popping now"
        and does not depend on ``valid``; a broadcast that finds the queue empty
        and P1 free goes straight into P1. In the array the CCU raises ``valid``
        only while it holds a credit for every PE (``cfg.credits``: the queue's
        slots, P1 and P2), so every PE takes it.
    stall : In(1)
        Count a stall cycle (the CCU: a broadcast waited for this PE's credit).
    credit : Out(1)
        A column left the pointer stage P2 in the previous cycle (a register):
        the CCU's credit for this PE comes back (see :class:`eie.hw.ccu.CCU`).
    idle : Out(1)
        Nothing is queued or in flight in the datapath (registered: one cycle
        late when it rises, in the cycle after a push when it falls).
    scan_addr : In
        While ``running``, the activation register file is read at ``scan_addr``
        every cycle (the CCU's scan); ``scan_data`` is the word in the next cycle.
    scan_data : Out(signed(act_bits))
    scan_nz : Out(1)
        ``scan_data != 0``, stored with the word (no compare on the read path).
    wb_issue, wb_row, wb_rem, dst_bank : In
        Write-back: read accumulator and bias of local row ``wb_row``; one cycle
        later zero the accumulator; ``cfg.writeback_latency`` (4, 5 with
        ``cfg.wb_read_stages``) cycles later
        write ``relu?(saturate(round(acc + bias)))`` (or 0 if ``index >=
        wb_rem``, i.e. the global row ``wb_row * N + index`` is past
        ``out_len``) to the destination register file.
    acc_clear : In(1)
        Zero accumulator ``wb_row`` (after a reset interrupted a run).
    io_mem, io_addr, io_wdata, io_we : In
        Host access to this PE's memories (``io_we`` already decoded for this PE).
    io_rdata : Out(pe_rdata_width)
        Item addressed by ``io_mem``/``io_addr`` ``2 + cfg.io_read_stages`` cycles
        earlier (a register), raw bits.

    ``image`` (keyword, an :class:`eie.format.NetworkImage` for ``cfg``, or
    None) gives the Spmat, pointer, codebook and bias memories this PE's part
    of the network as initial contents, so no host writes are needed.
    """

    def __init__(self, cfg: EIEConfig, index: int, *, image=None):
        if not isinstance(cfg, EIEConfig):
            raise TypeError(f"ProcessingElement needs an EIEConfig, not {cfg!r}")
        if not isinstance(index, int) or not 0 <= index < cfg.pes:
            raise ValueError(f"ProcessingElement index must be in range 0..{cfg.pes - 1}, not {index!r}")
        check_image(cfg, image, "ProcessingElement")
        self._cfg = cfg
        self._index = index
        self._image = image
        super().__init__({
            "running": In(1),
            "clear": In(1),
            "codebook": In(cfg.layer_bits),
            "bias_base": In(cfg.bias_addr_bits),
            "shift": In(cfg.shift_bits),
            "relu": In(1),
            "bcast": In(stream.Signature(broadcast_layout(cfg))),
            "stall": In(1),
            "credit": Out(1),
            "idle": Out(1, init=1),
            "scan_addr": In(range(2 * cfg.act_depth)),
            "scan_data": Out(signed(cfg.act_bits)),
            "scan_nz": Out(1),
            "wb_issue": In(1),
            "wb_row": In(range(cfg.act_depth)),
            "wb_rem": In(cfg.len_bits),
            "dst_bank": In(1),
            "acc_clear": In(1),
            "io_mem": In(3),
            "io_addr": In(32),
            "io_wdata": In(pe_wdata_width(cfg)),
            "io_we": In(1),
            "io_rdata": Out(pe_rdata_width(cfg)),
            **({"busy_count": Out(cfg.counter_bits), "stall_count": Out(cfg.counter_bits)}
               if cfg.pe_counters else {}),
        })

    @property
    def cfg(self) -> EIEConfig:
        return self._cfg

    @property
    def index(self) -> int:
        return self._index

    def elaborate(self, platform):
        cfg = self._cfg
        m = Module()
        E = cfg.entries_per_word
        io_addr = self.io_addr
        init = pe_memory_init(cfg, self._image, self._index)

        def io_write(mem):
            return self.io_we & (self.io_mem == mem) & ~self.running

        def compute_address(mem):
            # Selects the datapath's read address over the host's: only while running
            # where the host can read `mem` back (cfg.host_readback), else always.
            return self.running if memory_readable(cfg, mem) else 1

        # -- activation queue ------------------------------------------------------
        # A full queue takes a push in a cycle in which it pops (the CCU's credits
        # count P1 and P2 too: cfg.credits); a broadcast that finds the queue empty
        # and P1 free goes straight into P1 (`bypass`, below) and is never queued.
        queue = m.submodules.activation_queue = SyncQueue(broadcast_layout(cfg), cfg.fifo_depth,
                                                          ready_when_popping=True)
        queue_empty = Signal()                      # a register's decode: the head is the bus
        m.d.comb += queue_empty.eq(queue.level == 0)
        head = Signal.like(queue.r.payload)         # the column P1 takes next: the queue's head, or the bus
        m.d.comb += head.eq(Mux(queue_empty, self.bcast.payload, queue.r.payload))

        # -- pointer read: p[i] and p[i+1] in one cycle, from the even and odd banks
        # (cfg.pointer_banks = 2) or from the two read ports of one memory (1)
        ptr_index = Signal(cfg.ptr_addr_bits + 1)   # logical pointer index of p[j]
        m.d.comb += ptr_index.eq(head.ptr)
        if cfg.pointer_banks == 2:
            half = (cfg.ptr_depth + 1) // 2
            even = memory(m, platform, "ptr_even", shape=unsigned(cfg.ptr_bits), depth=half, init=init["ptr_even"],
                          attrs=BLOCK_RAM)
            odd = memory(m, platform, "ptr_odd", shape=unsigned(cfg.ptr_bits), depth=half, init=init["ptr_odd"],
                         attrs=BLOCK_RAM)
            even_r, even_w = even.r, even.w
            odd_r, odd_w = odd.r, odd.w
            # p[i] is in bank i & 1 at i >> 1; p[i + 1] in the other bank at (i + 1) >> 1.
            m.d.comb += [
                even_r.addr.eq(Mux(compute_address(Mem.PTR), (ptr_index + 1) >> 1, io_addr >> 1)),
                odd_r.addr.eq(Mux(compute_address(Mem.PTR), ptr_index >> 1, io_addr >> 1)),
                even_w.addr.eq(io_addr >> 1), even_w.data.eq(self.io_wdata),
                even_w.en.eq(io_write(Mem.PTR) & ~io_addr[0]),
                odd_w.addr.eq(io_addr >> 1), odd_w.data.eq(self.io_wdata),
                odd_w.en.eq(io_write(Mem.PTR) & io_addr[0]),
            ]
            ptr_odd_bank = ptr_index[0]
        else:
            # One memory, two read ports: port A reads p[j] (or is the host's port,
            # one address for its read and its write: a true dual-port block RAM),
            # port B reads p[j + 1]. Below, "even" is port A (the start pointer) and
            # "odd" port B (the end pointer), and a column is never "odd".
            ptrs = memory(m, platform, "pointers", shape=unsigned(cfg.ptr_bits), depth=cfg.ptr_depth,
                          init=init["ptr"], attrs=BLOCK_RAM, reads=2)
            even_r, odd_r, ptr_w = ptrs.r, ptrs.r2, ptrs.w
            ptr_a = Signal(range(cfg.ptr_depth))
            m.d.comb += [
                ptr_a.eq(Mux(self.running, ptr_index, io_addr)),
                even_r.addr.eq(ptr_a), odd_r.addr.eq(ptr_index + 1),
                ptr_w.addr.eq(ptr_a), ptr_w.data.eq(self.io_wdata), ptr_w.en.eq(io_write(Mem.PTR)),
            ]
            ptr_odd_bank = 0
        # Two stages: P1 holds a popped column; its pointers are on the read ports
        # in the next cycle (the ports read the queue head every cycle: no
        # handshake reaches a block RAM's enable, which on the ECP5 sits far from
        # the logic) and P1 keeps a copy of them while it waits. P2 holds the two
        # banks' words in registers, unswapped: a block-RAM output (5.8 ns on the
        # ECP5) goes straight into a flip-flop, and every handshake decision is
        # made from registers (P2's pointers, the queues' levels).
        p1_valid = Signal()
        p1_fresh = Signal()                          # popped last cycle: P1's pointers are on the read ports
        p1_odd = Signal(reset_less=True)
        p1_value = Signal(signed(cfg.act_bits), reset_less=True)
        p1_even_word = Signal(cfg.ptr_bits, reset_less=True)
        p1_odd_word = Signal(cfg.ptr_bits, reset_less=True)
        p_valid = Signal()                           # P2
        p_value = Signal(signed(cfg.act_bits), reset_less=True)
        p_odd = Signal(reset_less=True)              # p[j] is in the odd bank
        p_even_word = Signal(cfg.ptr_bits, reset_less=True)
        p_odd_word = Signal(cfg.ptr_bits, reset_less=True)
        p_start = Signal(cfg.ptr_bits)
        p_end = Signal(cfg.ptr_bits)
        p_empty = Signal()
        m.d.comb += [
            p_start.eq(Mux(p_odd, p_odd_word, p_even_word)),
            p_end.eq(Mux(p_odd, p_even_word, p_odd_word)),
            p_empty.eq(p_even_word == p_odd_word),        # p[j] == p[j + 1]
        ]

        column_buffer = m.submodules.column_buffer = SyncQueue(
            column_layout(cfg), cfg.column_buffer_depth, ready_when_popping=True)
        p_leave = Signal()
        p1_move = Signal()
        p1_ready = Signal()
        pop = Signal()
        bypass = Signal()
        take = Signal()                              # P1 takes a column (popped or off the bus)
        m.d.comb += [
            # An empty column leaves P2 at once: it costs no MAC cycle.
            p_leave.eq(p_valid & (p_empty | column_buffer.w.ready)),
            p1_move.eq(p1_valid & (~p_valid | p_leave)),
            p1_ready.eq(~p1_valid | p1_move),
            queue.r.ready.eq(p1_ready),
            pop.eq(queue.r.valid & queue.r.ready),
            bypass.eq(self.bcast.valid & queue_empty & p1_ready),
            take.eq(pop | bypass),
            queue.w.valid.eq(self.bcast.valid & ~bypass),
            queue.w.payload.eq(self.bcast.payload),
            # (bypass only while the queue is empty, when w.ready is high anyway)
            self.bcast.ready.eq(queue.w.ready),
        ]
        m.d.sync += p1_fresh.eq(take)
        # The CCU's credit comes back (a register) in the cycle after a column leaves P2.
        credit = Signal()
        m.d.sync += credit.eq(p_leave)
        m.d.comb += self.credit.eq(credit)
        with m.If(take):
            m.d.sync += [p1_valid.eq(1), p1_odd.eq(ptr_odd_bank), p1_value.eq(head.value)]
        with m.Elif(p1_move):
            m.d.sync += p1_valid.eq(0)
        if cfg.hold_pointer_read:
            # The read ports keep P1's pointers while it waits (their enable is low
            # while P1 holds a column it cannot pass on): no copy registers.
            m.d.comb += [even_r.en.eq(~p1_valid | p1_move), odd_r.en.eq(~p1_valid | p1_move)]
            p1_even, p1_odd_ptr = even_r.data, odd_r.data
        else:
            with m.If(p1_fresh):
                m.d.sync += [p1_even_word.eq(even_r.data), p1_odd_word.eq(odd_r.data)]
            p1_even = Mux(p1_fresh, even_r.data, p1_even_word)
            p1_odd_ptr = Mux(p1_fresh, odd_r.data, p1_odd_word)
        with m.If(p1_move):
            m.d.sync += [
                p_valid.eq(1),
                p_odd.eq(p1_odd),
                p_even_word.eq(p1_even),
                p_odd_word.eq(p1_odd_ptr),
                p_value.eq(p1_value),
            ]
        with m.Elif(p_leave):
            m.d.sync += p_valid.eq(0)


        # Entry address -> (Spmat word, slot) for the column buffer.
        col_in = column_buffer.w.payload
        if E & (E - 1) == 0:
            m.d.comb += [col_in.word.eq(p_start >> clog2(E)), col_in.slot.eq(p_start[:clog2(E)])]
        else:
            multiplier, shift = divide_by_constant(cfg.ptr_bits, E)
            word = Signal(cfg.ptr_bits)
            m.d.comb += [
                word.eq((p_start * multiplier) >> shift),
                col_in.word.eq(word),
                col_in.slot.eq(p_start - word * E),
            ]
        m.d.comb += [
            col_in.count.eq(p_end - p_start),
            col_in.single.eq(col_in.count == 1),
            col_in.value.eq(p_value),
            column_buffer.w.valid.eq(p_valid & ~p_empty),
        ]

        # -- Spmat read: one entry per cycle ---------------------------------------
        spmat = memory(m, platform, "spmat", shape=unsigned(cfg.spmat_word_bits), depth=cfg.spmat_depth,
                       init=init["spmat"], single_port=True)      # one address, never read while written
        spmat_r, spmat_w = spmat.r, spmat.w
        head = column_buffer.r.payload
        m_in_col = Signal()                       # the head column has been started
        m_word = Signal.like(head.word, reset_less=True)
        m_slot = Signal.like(head.slot, reset_less=True)
        m_left = Signal.like(head.count, reset_less=True)
        m_single = Signal(reset_less=True)          # m_left == 1
        # The count is held modulo 2**len(count) (column_layout): "left == 2" compares
        # with 2 modulo that too. With a 1-bit count (act_depth 2) a literal 2 never
        # matched, and a column of 2 entries was never finished.
        two = 2 % (1 << len(head.count))
        word = Signal.like(head.word)
        slot = Signal.like(head.slot)
        left = Signal.like(head.count)
        issue = Signal()
        last = Signal()
        m.d.comb += [
            word.eq(Mux(m_in_col, m_word, head.word)),
            slot.eq(Mux(m_in_col, m_slot, head.slot)),
            left.eq(Mux(m_in_col, m_left, head.count)),
            issue.eq(column_buffer.r.valid),
            last.eq(Mux(m_in_col, m_single, head.single)),      # left == 1
            # The head leaves with its last entry; the next column starts next cycle.
            column_buffer.r.ready.eq(last),
        ]
        with m.If(issue):
            m.d.sync += [m_in_col.eq(~last), m_left.eq(left - 1), m_single.eq(left == two)]
            if E == 1:
                m.d.sync += m_word.eq(word + 1)
            else:
                with m.If(slot == E - 1):
                    m.d.sync += [m_word.eq(word + 1), m_slot.eq(0)]
                with m.Else():
                    m.d.sync += [m_word.eq(word), m_slot.eq(slot + 1)]

        spmat_addr = Signal(range(cfg.spmat_depth))     # one address for both ports: single-port RAM
        m.d.comb += [
            spmat_addr.eq(Mux(self.running, word, io_addr)),
            spmat_r.addr.eq(spmat_addr),
            spmat_w.addr.eq(spmat_addr),
            # Never read while writing: a single-port RAM (iCE40 SPRAM, rdwr no_change)
            # cannot return the old word during a write. Compute never writes.
            spmat_r.en.eq(Mux(self.running, issue, ~spmat_w.en)),
            spmat_w.data.eq(self.io_wdata),
            spmat_w.en.eq(io_write(Mem.SPMAT)),
        ]

        # -- arithmetic pipeline -------------------------------------------------------
        # A: the entry is taken out of the Spmat word and registered (with many PEs
        # the Spmat and codebook block RAMs sit far apart on the ECP5).
        a_valid = Signal()
        a_slot = Signal.like(slot, reset_less=True)
        a_first = Signal(reset_less=True)
        a_value = Signal(signed(cfg.act_bits), reset_less=True)
        m.d.sync += [a_valid.eq(issue), a_slot.eq(slot), a_first.eq(~m_in_col), a_value.eq(head.value)]
        a_entry = Signal(cfg.entry_bits)
        if E == 1:
            m.d.comb += a_entry.eq(spmat_r.data)
        else:
            m.d.comb += a_entry.eq(spmat_r.data.word_select(a_slot, cfg.entry_bits))

        # B: codebook read and row address in parallel.
        b_valid = Signal()
        b_first = Signal(reset_less=True)
        b_value = Signal(signed(cfg.act_bits), reset_less=True)
        entry = Signal(cfg.entry_bits, reset_less=True)
        m.d.sync += [b_valid.eq(a_valid), b_first.eq(a_first), b_value.eq(a_value), entry.eq(a_entry)]
        v = entry[:cfg.index_bits]
        z = entry[cfg.index_bits:]

        # Codebook and bias memories. With cfg.merge_codebook_bias they are one memory,
        # biases at 0 .. bias_depth - 1 and the codebook above: the codebook is read
        # only while columns are processed, the biases only in the write-back
        # (wb_issue), when every PE is idle.
        cb_depth = cfg.max_layers * cfg.codebook_size
        cb_index = Signal(range(cb_depth))
        bias_index = Signal(cfg.bias_addr_bits)
        m.d.comb += [cb_index.eq(Cat(v, self.codebook)), bias_index.eq(self.bias_base + self.wb_row)]
        if cfg.merge_codebook_bias:
            cbias = memory(m, platform, "codebook_bias",
                           shape=signed(max(cfg.bias_bits, cfg.codebook_bits)), depth=cfg.bias_depth + cb_depth,
                           init=init["bias"] + [0] * (cfg.bias_depth - len(init["bias"])) + init["codebook"],
                           attrs=ram_attrs(cfg, cfg.bias_depth + cb_depth))
            cbias_r, cbias_w = cbias.r, cbias.w
            io_cbias = Signal.like(cbias_w.addr)
            m.d.comb += [
                io_cbias.eq(Mux(self.io_mem == Mem.CODEBOOK, cfg.bias_depth + io_addr, io_addr)),
                cbias_r.addr.eq(Mux(compute_address(Mem.BIAS),      # (CODEBOOK and BIAS: the same setting)
                                    Mux(self.wb_issue, bias_index, cfg.bias_depth + cb_index), io_cbias)),
                cbias_w.addr.eq(io_cbias), cbias_w.data.eq(self.io_wdata),
                cbias_w.en.eq(io_write(Mem.CODEBOOK) | io_write(Mem.BIAS)),
            ]
            cb_data = cbias_r.data[:cfg.codebook_bits].as_signed()
            bias_data = cbias_r.data[:cfg.bias_bits].as_signed()
        else:
            codebook = memory(m, platform, "codebooks", shape=signed(cfg.codebook_bits),
                              attrs=ram_attrs(cfg, cb_depth), depth=cb_depth, init=init["codebook"])
            cb_r, cb_w = codebook.r, codebook.w
            m.d.comb += [
                cb_r.addr.eq(Mux(compute_address(Mem.CODEBOOK), cb_index, io_addr)),
                cb_w.addr.eq(io_addr), cb_w.data.eq(self.io_wdata), cb_w.en.eq(io_write(Mem.CODEBOOK)),
            ]
            bias = memory(m, platform, "bias", shape=signed(cfg.bias_bits), depth=cfg.bias_depth,
                          init=init["bias"], attrs=ram_attrs(cfg, cfg.bias_depth))
            bias_r, bias_w = bias.r, bias.w
            m.d.comb += [
                bias_r.addr.eq(Mux(compute_address(Mem.BIAS), bias_index, io_addr)),
                bias_w.addr.eq(io_addr), bias_w.data.eq(self.io_wdata), bias_w.en.eq(io_write(Mem.BIAS)),
            ]
            cb_data, bias_data = cb_r.data, bias_r.data

        row = Signal(range(cfg.act_depth), reset_less=True)      # local row of the last entry
        row_next = Signal(range(cfg.act_depth))
        # Rows start at -1 in every column: the first entry's row is z.
        m.d.comb += row_next.eq(Mux(b_first, z, row + z + 1))
        with m.If(b_valid):
            m.d.sync += row.eq(row_next)

        # C0: the codebook value is registered (a block-RAM output straight into
        # a multiplier was the ECP5's longest path).
        c0_valid = Signal()
        c0_row = Signal.like(row)
        c0_value = Signal(signed(cfg.act_bits), reset_less=True)
        # An empty slot carries the value 0 from here on, so its product is 0 (see E);
        # zeroed here, one register before the multiplier, so that the multiplier's
        # operand register is a plain one (the iCE40 DSP takes it in as its input register).
        m.d.sync += [c0_valid.eq(b_valid), c0_row.eq(row_next), c0_value.eq(Mux(b_valid, b_value, 0))]
        weight = Signal(signed(cfg.codebook_bits), reset_less=True)
        m.d.sync += weight.eq(cb_data)

        # C: codebook value x activation; accumulator read.
        c_valid = Signal()
        c_row = Signal.like(row)
        c_value = Signal(signed(cfg.act_bits), reset_less=True)
        m.d.sync += [c_valid.eq(c0_valid), c_row.eq(c0_row), c_value.eq(c0_value)]

        acc = memory(m, platform, "accumulators", shape=signed(cfg.acc_bits), depth=cfg.act_depth,
                     attrs=ram_attrs(cfg, cfg.act_depth))
        acc_r, acc_w = acc.r, acc.w
        m.d.comb += acc_r.addr.eq(Mux(self.wb_issue, self.wb_row, c_row))

        # D: the product and the accumulator word are registered (on the ECP5 a
        # block-RAM output alone takes 5.6 ns: it goes into a flip-flop, not an adder).
        # E: add and write back. The two entries before this one wrote after (or,
        # undefined, in the same cycle as) its read, so a hit on either's row takes
        # the bypass, the newer first. The hits are decided in D, from registers; the
        # older one is resolved there too: e_acc is the accumulator word or, on a hit
        # of the entry two ahead, that entry's sum (in H1 while this one is in D), so
        # E has one multiplexer level and no second sum register. An empty slot
        # carries e_acc = 0 and a zero product: its sum is 0, the value the
        # write-back and the clear write, so the write data needs no multiplexer.
        d_valid = Signal()
        d_row = Signal.like(row)
        d_product = Signal(signed(cfg.product_bits), reset_less=True)
        m.d.sync += [d_valid.eq(c_valid), d_row.eq(c_row), d_product.eq(c_value * weight)]

        e_valid = Signal()
        e_row = Signal.like(row)
        e_product = Signal(signed(cfg.product_bits), reset_less=True)
        e_acc = Signal(signed(cfg.acc_bits), reset_less=True)
        e_hit1 = Signal(reset_less=True)
        d_hit2 = Signal()
        h1_valid = Signal()
        h1_row = Signal.like(row)
        h1_sum = Signal(signed(cfg.acc_bits), reset_less=True)
        acc_old = Signal(signed(cfg.acc_bits))
        acc_sum = Signal(signed(cfg.acc_bits))
        m.d.comb += d_hit2.eq(h1_valid & (h1_row == d_row))     # the entry now in H1 is two ahead
        m.d.sync += [
            e_valid.eq(d_valid), e_row.eq(d_row), e_product.eq(d_product),
            e_acc.eq(Mux(d_valid, Mux(d_hit2, h1_sum, acc_r.data), 0)),
            e_hit1.eq(d_valid & e_valid & (e_row == d_row)),   # the entry now in E is in H1 then
        ]
        m.d.comb += [
            acc_old.eq(Mux(e_hit1, h1_sum, e_acc)),
            acc_sum.eq(acc_old + e_product),
        ]
        m.d.sync += [h1_valid.eq(e_valid), h1_row.eq(e_row), h1_sum.eq(acc_sum)]
        # One register stage per entry of eie.timing.MAC_STAGES (A .. E): E writes the
        # accumulator cfg.mac_latency cycles after the Spmat read.
        _check_stages("MAC_STAGES", [a_valid, b_valid, c0_valid, c_valid, d_valid, e_valid], cfg.mac_latency)

        # -- bias and write-back: four stages, five with cfg.wb_read_stages (cfg.writeback_latency)
        # W0 (wb_issue): read accumulator and bias of local row wb_row.
        # W1: total = acc + bias (registered); the accumulator is zeroed.
        # W2: half = (2 * total) >> shift, a shifter alone (registered).
        # W3: (half + 1) >> 1 = (total + 2**(shift-1)) >> shift, round half up;
        #     saturate, ReLU, zero rows past out_len.
        # W4: register-file write.
        # The bias is added here rather than seeded: the sum is the same, and
        # no seeding pass is needed before a layer.
        # With cfg.wb_read_stages = 1 a stage W1r between W1 and W2 holds the words
        # read (acc_word, bias_word), and the add is in W1r -> W2.
        w1_valid, w2_valid, w3_valid = Signal(), Signal(), Signal()
        w1_row, w2_row, w3_row = Signal.like(row), Signal.like(row), Signal.like(row)
        w1_in, w2_in, w3_in = (Signal(reset_less=True) for _ in range(3))      # the global row is < out_len
        m.d.sync += [
            w1_valid.eq(self.wb_issue), w1_row.eq(self.wb_row), w1_in.eq(self._index < self.wb_rem),
            w3_valid.eq(w2_valid), w3_row.eq(w2_row), w3_in.eq(w2_in),
        ]
        acc_word, bias_word = acc_r.data, bias_data
        add_valid, add_row, add_in = w1_valid, w1_row, w1_in
        wb_stages = [w1_valid]
        for i in range(cfg.wb_read_stages):
            acc_word = delayed(m, acc_word, 1, f"wb_acc{i}")
            bias_word = delayed(m, bias_word, 1, f"wb_bias{i}")
            r_valid, r_row, r_in = Signal(name=f"w1r{i}_valid"), Signal.like(row, name=f"w1r{i}_row"), Signal()
            m.d.sync += [r_valid.eq(add_valid), r_row.eq(add_row), r_in.eq(add_in)]
            add_valid, add_row, add_in = r_valid, r_row, r_in
            wb_stages.append(r_valid)
        m.d.sync += [w2_valid.eq(add_valid), w2_row.eq(add_row), w2_in.eq(add_in)]
        w2_total = Signal(signed(cfg.acc_bits + 1))
        m.d.sync += w2_total.eq(acc_word + bias_word)
        # W2: half = (2 * total) >> shift, but only what W3 needs of it: its low
        # act_bits + 1 bits (L) exactly, and whether the bits above are any set /
        # all set (a shifter that folds the bits it will never bring below L into
        # these two flags stage by stage: about 60 % of a full-width shifter).
        A = cfg.act_bits
        w3_low = Signal(A + 1, reset_less=True)
        w3_any = Signal(reset_less=True)         # a bit of half[A+1:] is set
        w3_all = Signal(reset_less=True)         # every bit of half[A+1:] is set
        w3_neg = Signal(reset_less=True)         # half < 0
        low_half, any_up, all_up = shift_right_summarised(Cat(Const(0, 1), w2_total).as_signed(), self.shift, A + 1)
        m.d.sync += [w3_low.eq(low_half), w3_any.eq(any_up), w3_all.eq(all_up), w3_neg.eq(w2_total[-1])]
        # out = (half + 1) >> 1 is saturated to [lo, hi]: out > hi exactly when
        # half >= 2*hi + 1, out < lo when half <= 2*lo - 2; in range, out's act_bits
        # low bits are the value, and they depend on half's low act_bits + 1 bits
        # only: a short increment. The two compares as bit tests (no carry chains),
        # with H = half, L = H[:A+1]:
        #   H >= 2**A - 1  <=>  H >= 0 and (a bit of H[A:] is set or H[:A] is all ones)
        #   H <= -2**A - 2 <=>  H < 0 and (H[A+1:] is not all ones, i.e. H < -2**(A+1),
        #                       or L <= 2**A - 2: L[A] clear and H[:A] not all ones)
        hi, lo = (1 << (A - 1)) - 1, -(1 << (A - 1))
        low = Signal(signed(A))
        saturated = Signal(signed(A))
        result = Signal(signed(A))
        over = Signal()
        under = Signal()
        m.d.comb += [
            over.eq(~w3_neg & (w3_low[A] | w3_any | w3_low[:A].all())),
            under.eq(w3_neg & (~w3_all | (~w3_low[A] & ~w3_low[:A].all()))),
            low.eq((w3_low + 1)[1:A + 1]),
            saturated.eq(Mux(over, hi, Mux(under, lo, low))),
            result.eq(Mux(~w3_in | (self.relu & (saturated < 0)), 0, saturated)),
        ]

        # acc_sum is 0 while E is empty (write-back and clear write zeros).
        m.d.comb += acc_w.data.eq(acc_sum)
        with m.If(e_valid):
            m.d.comb += [acc_w.addr.eq(e_row), acc_w.en.eq(1)]
        with m.Elif(w1_valid):
            m.d.comb += [acc_w.addr.eq(w1_row), acc_w.en.eq(1)]
        with m.Elif(self.acc_clear):
            m.d.comb += [acc_w.addr.eq(self.wb_row), acc_w.en.eq(1)]

        # -- activation register files (bank b at b * act_depth) -----------------------
        # Each word carries a "non-zero" flag above the activation, set when it is
        # written: the CCU's scan then needs no compare on the read data (its
        # longest path runs from these read ports to the next read).
        rf = memory(m, platform, "act_rf", shape=unsigned(cfg.act_bits + 1), depth=2 * cfg.act_depth,
                    attrs=ram_attrs(cfg, 2 * cfg.act_depth))
        rf_r, rf_w = rf.r, rf.w
        io_act = self.io_wdata[:cfg.act_bits]
        m.d.comb += [
            rf_r.addr.eq(Mux(self.running, self.scan_addr, io_addr)),
            self.scan_data.eq(rf_r.data[:cfg.act_bits]),
            self.scan_nz.eq(rf_r.data[cfg.act_bits]),
        ]
        # W4: the write is registered: the register files sit by the CCU, which
        # reads them every cycle, often far from the write-back logic (16 PEs on
        # the ECP5: 4.2 ns of routing after W3's saturation).
        w4_valid = Signal()
        w4_addr = Signal(range(2 * cfg.act_depth), reset_less=True)
        w4_data = Signal(cfg.act_bits + 1, reset_less=True)
        m.d.sync += [
            w4_valid.eq(w3_valid),
            w4_addr.eq(Mux(self.dst_bank, cfg.act_depth + w3_row, w3_row)),
            w4_data.eq(Cat(result, result != 0)),
        ]
        # One register stage per entry of eie.timing.WRITEBACK_STAGES (W1 .. W4, and the
        # W1r stages): W4 writes cfg.writeback_latency cycles after wb_issue (W0).
        _check_stages("WRITEBACK_STAGES", wb_stages + [w2_valid, w3_valid, w4_valid], cfg.writeback_latency)
        with m.If(self.running):
            m.d.comb += [rf_w.addr.eq(w4_addr), rf_w.data.eq(w4_data), rf_w.en.eq(w4_valid)]
        with m.Else():
            m.d.comb += [rf_w.addr.eq(io_addr), rf_w.data.eq(Cat(io_act, io_act != 0)),
                         rf_w.en.eq(io_write(Mem.ACT))]

        # -- status and counters ------------------------------------------------------
        # `idle` is a register (it crosses the die to the CCU's end-of-layer decision):
        # it rises the cycle after the datapath empties and falls at once with a push.
        empty = Signal()
        m.d.comb += empty.eq(~queue.r.valid & ~p1_valid & ~p_valid & ~column_buffer.r.valid
                             & ~a_valid & ~b_valid & ~c0_valid & ~c_valid & ~d_valid & ~e_valid)
        m.d.sync += self.idle.eq(empty & ~(self.bcast.valid & self.bcast.ready))
        if cfg.pe_counters:
            with m.If(self.clear):
                m.d.sync += [self.busy_count.eq(0), self.stall_count.eq(0)]
            with m.Else():
                with m.If(d_valid):
                    m.d.sync += self.busy_count.eq(self.busy_count + 1)
                with m.If(self.stall):
                    m.d.sync += self.stall_count.eq(self.stall_count + 1)

        # -- io read data: the item addressed 2 + io_read_stages cycles earlier, from a
        # register (the memories answer in the next cycle; registering their
        # multiplexer keeps the read-back path off the array's critical path, and
        # io_read_stages registers each memory's word before it: the host reads
        # only while the datapath is stopped, so the extra cycles cost nothing else)
        stages = cfg.io_read_stages
        rd_mem = Signal(3, reset_less=True)
        rd_bit0 = Signal(reset_less=True)
        m.d.sync += [rd_mem.eq(self.io_mem), rd_bit0.eq(io_addr[0])]
        rd_mem, rd_bit0 = delayed(m, rd_mem, stages, "rd_mem"), delayed(m, rd_bit0, stages, "rd_bit0")
        # The words the host can read (cfg.host_readback = 0: ACT only, no multiplexer
        # for the other memories), each through its io_read_stages registers; the
        # registers load every cycle, outside the Switch.
        items = {Mem.ACT: delayed(m, rf_r.data[:cfg.act_bits], stages, "io_rf")}
        if memory_readable(cfg, Mem.SPMAT):
            items[Mem.SPMAT] = delayed(m, spmat_r.data, stages, "io_spmat")
        if memory_readable(cfg, Mem.PTR) and cfg.pointer_banks == 1:
            items[Mem.PTR] = delayed(m, even_r.data, stages, "io_ptr")       # port A read p[io_addr]
        elif memory_readable(cfg, Mem.PTR):
            io_odd, io_even = delayed(m, odd_r.data, stages, "io_odd"), delayed(m, even_r.data, stages, "io_even")
            items[Mem.PTR] = Mux(rd_bit0, io_odd, io_even)
        if memory_readable(cfg, Mem.CODEBOOK):
            items[Mem.CODEBOOK] = delayed(m, cb_data, stages, "io_codebook").as_unsigned()
        if memory_readable(cfg, Mem.BIAS):
            items[Mem.BIAS] = delayed(m, bias_data, stages, "io_bias").as_unsigned()
        if cfg.pe_counters:
            items[Mem.COUNTER] = Mux(rd_bit0, self.stall_count, self.busy_count)
        with m.Switch(rd_mem):
            for mm, item in items.items():
                with m.Case(mm):
                    m.d.sync += self.io_rdata.eq(item)
        return m
