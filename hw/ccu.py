"""Central control unit (CCU): layer sequencing, activation scan, broadcast, counters.

The CCU runs layers ``0 .. num_layers - 1`` of its layer table with one start
pulse. Per layer ``k`` (fields per :data:`eie.config.LAYER_FIELDS`):

``LOAD`` (1 cycle)
    The table entry is latched; row 0 of source bank ``k % 2`` is read in every PE.
``SCAN``
    The source register files are scanned row by row (row ``r`` holds
    activations ``j = r * N + k``). Rows are fetched ahead into a queue of
    ``cfg.row_queue`` rows (registers; 3, plus 2 per fanout stage: a fetched row
    is back ``1 + 2 cfg.fanout_stages`` cycles later) while the current row is broadcast from a
    second register (``cur``): an all-zero row at the head is dropped in one
    cycle without disturbing the broadcasts, and a non-zero one replaces
    ``cur`` in the cycle ``cur``'s last non-zero is broadcast, so rows cost no
    bubbles. The register files are read every cycle at an address computed
    from registers only, fetching depends only on a registered count of the
    rows fetched and not yet popped, and the head is a register: no path runs from read data to a
    decision in the same cycle.
    The LNZD tree picks the lowest non-zero ``j < in_len`` of ``cur``; it is
    broadcast in a cycle in which every PE holds a credit. The CCU keeps one
    credit counter per PE (``cfg.credits`` = ``fifo_depth + 2`` at reset: the
    queue's slots and the PE's pointer stages P1 and P2): a broadcast takes one
    from every PE, and a PE returns one in the cycle after a column leaves P2
    (``pe_credit``, a register in the PE). A credit therefore means "the PE
    has room for one more column ahead of its column buffer" and the decision
    uses the CCU's own registers only: nothing crosses the die between a PE
    and the broadcast (and the row-queue enables behind it) in one cycle. The
    price is one cycle: a slot freed in cycle ``t`` is used from ``t + 2``,
    not ``t + 1``; counting P1 and P2 (and the PE taking a broadcast straight
    into P1 past an empty queue) more than pays for it.
    The phase ends in the first cycle in which nothing is left to scan and
    every PE is idle.
``WB`` (``ceil(out_len / N)`` cycles) then ``WBLAST`` (``writeback_latency`` = 4 or 5 cycles)
    Each PE writes back local row ``r`` (bias added, rounded, saturated,
    ReLU) into bank ``(k + 1) % 2`` and zeroes the accumulator, leaving every
    accumulator at 0 for the next layer; WBLAST waits for the last rows to
    leave the PEs' write-back pipelines.

After the last layer's ``WBLAST`` ``running`` falls and ``done`` pulses. The
per-layer cycle formula is in docs/hardware.md ("Timing").

The accumulators are not initialised (the Verilog gives them no initial
contents) and a reset may interrupt a run: a reset-less flag, set at power-up,
marks them dirty, and the CCU then zeroes them in the background while idle
(``act_depth`` cycles after power-up or reset, while the host loads memories;
``acc_clear`` with ``running`` low). A run started before that has finished
first zeroes them all (``CLEAR``, ``act_depth`` cycles, counted in ``cycles``
but not in the cycle model).
"""

import operator
from functools import reduce

from amaranth.hdl import Cat, Module, Mux, Signal, Value, signed, unsigned
from amaranth.lib import data, enum, wiring
from amaranth.lib.wiring import In, Out

from eie.config import EIEConfig
from eie.protocol import Counter, Mem, unpack_layer_entry

from .layouts import broadcast_layout
from .lnzd import LNZDTree
from .memory import BLOCK_RAM, delayed, memory
from .pe import check_image, io_width

__all__ = ["CCU", "Phase"]

class Phase(enum.Enum, shape=3):
    IDLE = 0
    CLEAR = 1
    LOAD = 2
    SCAN = 3
    WB = 4
    WBLAST = 5
    START = 6


class CCU(wiring.Component):
    """Central control unit of an EIE array of ``cfg.pes`` PEs.

    Members
    -------
    start, num_layers, running, done :
        As on :class:`eie.hw.array.EIEArray`.
    io_mem, io_addr, io_wdata, io_we : In
        Host access to the layer table (writes with ``io_mem == LAYER``).
    io_rdata : Out(io_width)
        Layer-table entry or global counter (``io_addr``) addressed ``2 +
        cfg.io_read_stages`` cycles earlier (a register).
    clear : Out(1)
        A run started in the previous cycle: clear the PE counters (a register).
    codebook, bias_base, shift, relu, dst_bank : Out
        Fields of the current layer for the PEs (registers, loaded in LOAD;
        ``dst_bank`` in START).
    bcast_valid, bcast : Out
        The broadcast bus, a register: ``bcast_valid``: a broadcast decided in
        the previous cycle is pushed into every PE's queue now; ``bcast``: its
        ``(ptr, value)``, ``ptr`` = the layer's ``ptr_base`` + column ``j``.
    bcast_pending : Out(1)
        A broadcast is waiting (``cur`` has a non-zero).
    pe_stall : Out(pes)
        A broadcast was pending in the previous cycle and PE ``k`` held no
        credit (a register; PE ``k``'s ``stall`` counter counts it).
    pe_credit : In(pes)
        A column left PE ``k``'s pointer stage P2 in the previous cycle (a
        register in the PE): its credit comes back.
    pe_idle : In(pes)
    scan_addr : Out
        Register-file read address of every PE (read every cycle while running).
    scan_data : In(ArrayLayout(signed(act_bits), pes))
    scan_nz : In(pes)
        ``scan_data[k] != 0``, from a flag stored with the word in the PE.
    wb_issue, wb_row, wb_rem, acc_clear : Out
        Write-back / accumulator clear of local row ``wb_row``; ``wb_rem`` is
        ``out_len - wb_row * N`` (PE ``k`` writes 0 when ``k >= wb_rem``).

    ``image`` (keyword, an :class:`eie.format.NetworkImage` for ``cfg``, or
    None) gives the layer table the image's layers as initial contents.
    """

    def __init__(self, cfg: EIEConfig, *, image=None):
        if not isinstance(cfg, EIEConfig):
            raise TypeError(f"CCU needs an EIEConfig, not {cfg!r}")
        check_image(cfg, image, "CCU")
        self._cfg = cfg
        self._image = image
        n = cfg.pes
        super().__init__({
            "start": In(1),
            "num_layers": In(range(cfg.max_layers + 1)),
            "running": Out(1),
            "done": Out(1),
            "io_mem": In(3),
            "io_addr": In(32),
            "io_wdata": In(io_width(cfg)),
            "io_we": In(1),
            "io_rdata": Out(io_width(cfg)),
            "clear": Out(1),
            "codebook": Out(cfg.layer_bits),
            "bias_base": Out(cfg.bias_addr_bits),
            "shift": Out(cfg.shift_bits),
            "relu": Out(1),
            "dst_bank": Out(1),
            "bcast_valid": Out(1),
            "bcast_pending": Out(1),
            "pe_stall": Out(n),
            "bcast": Out(broadcast_layout(cfg)),
            "pe_credit": In(n),
            "pe_idle": In(n),
            "scan_addr": Out(range(2 * cfg.act_depth)),
            "scan_data": In(data.ArrayLayout(signed(cfg.act_bits), n)),
            "scan_nz": In(n),
            "wb_issue": Out(1),
            "wb_row": Out(range(cfg.act_depth)),
            "wb_rem": Out(cfg.len_bits),
            "acc_clear": Out(1),
            "phase": Out(Phase),
            "counters": Out(data.ArrayLayout(cfg.counter_bits, len(Counter))),
        })

    @property
    def cfg(self) -> EIEConfig:
        return self._cfg

    def elaborate(self, platform):
        cfg = self._cfg
        n = cfg.pes
        m = Module()
        phase = self.phase
        m.d.comb += self.running.eq(phase != Phase.IDLE)

        # -- layer table: read address = next layer index, so the entry of the
        # current layer is on the read port in the cycle the index changes.
        table_init = [] if self._image is None else [l.packed(cfg) for l in self._image.layers]
        # A few entries only, but wide: a block RAM instead of flip-flops and a read
        # multiplexer (several hundred iCE40 logic cells; ram_style is Yosys' hint).
        table = memory(m, platform, "layer_table", shape=unsigned(cfg.layer_entry_bits),
                       depth=cfg.max_layers, init=table_init, attrs=BLOCK_RAM)
        tbl_r, tbl_w = table.r, table.w
        layer_idx = Signal(range(cfg.max_layers + 1))
        layer_next = Signal.like(layer_idx)
        num = Signal.like(self.num_layers)
        m.d.comb += [
            tbl_w.addr.eq(self.io_addr), tbl_w.data.eq(self.io_wdata),
            tbl_w.en.eq(self.io_we & (self.io_mem == Mem.LAYER) & ~self.running),
            layer_next.eq(layer_idx),
        ]
        m.d.sync += layer_idx.eq(layer_next)
        with m.If(self.running):
            m.d.comb += tbl_r.addr.eq(layer_next)
        with m.Elif(self.start):
            m.d.comb += tbl_r.addr.eq(0)
        with m.Else():
            m.d.comb += tbl_r.addr.eq(self.io_addr)

        # LOAD registers the entry (the table is a block RAM, its read data goes
        # into registers only): the fields the PEs use straight into their output
        # registers (nothing reads them between the last write-back and START),
        # in_len and ptr_base into registers for START.
        table_entry = unpack_layer_entry(cfg, tbl_r.data)     # the host's unpacking, on a Value
        in_len_q = Signal(cfg.len_bits)
        ptr_base_q = Signal(cfg.ptr_addr_bits)

        out_len = Signal(cfg.len_bits)
        src_bank = Signal()

        # -- scan state --------------------------------------------------------------
        cur_mask = Signal(n)                          # non-zeros of the row being broadcast
        cur_vals = Signal(data.ArrayLayout(signed(cfg.act_bits), n))
        # ptr_base + r * N of that row: broadcasts carry pointer indices ptr_base + j,
        # always < ptr_depth (a layer's in_len + 1 pointers lie in the pointer banks)
        cur_base = Signal(cfg.ptr_addr_bits)
        # Remaining lengths are one bit wider than needed so that no comparison
        # with N is constant (lint-clean for act_depth = 1 too).
        rem_bits = max(cfg.len_bits, n.bit_length()) + 1
        # Rows are fetched ahead into a queue of cfg.row_queue rows (registers; the
        # head at entry 0). The register files are read every cycle at an address
        # made from registers; a fetched row arrives on the read ports 1 + 2 D
        # cycles later (D = cfg.fanout_stages: the address and the words pass D
        # registers each way; `inflight` remembers the fetches) and is pushed,
        # masked (`a != 0 and j < in_len`), into the queue. Fetching depends only
        # on a registered count (`pending`: rows fetched and not yet popped), the
        # head only on registers: no path runs from read data to a decision.
        # The queue is a ring (one-hot read and write pointers): a push writes one
        # entry, enabled from registers only, and a pop moves the read pointer, so
        # the broadcast decision drives a few flip-flops, not every queued bit.
        D = cfg.fanout_stages
        Q = cfg.row_queue
        q_vals = [Signal.like(self.scan_data, name=f"row_vals{i}") for i in range(Q)]
        q_mask = [Signal(n, name=f"row_mask{i}") for i in range(Q)]
        q_base = [Signal.like(cur_base, name=f"row_base{i}") for i in range(Q)]
        q_rd = Signal(Q, init=1)                      # one-hot: the head entry
        q_wr = Signal(Q, init=1)                      # one-hot: the entry the next push writes
        occ = Signal(range(Q + 1))
        pending = Signal(range(Q + 1))                # occ + rows fetched and not yet pushed
        inflight = Signal(1 + 2 * D)                  # bit i: a row fetched i + 1 cycles ago
        # the next row pushed: its PE k's activation is < in_len, its ptr_base + r * N,
        # and in_len - (r + 1) * N (rows are pushed in the order they were fetched)
        in_lim = Signal(n)
        push_base = Signal(cfg.ptr_addr_bits)
        push_rem = Signal(rem_bits)
        # next row to read; stays at the last row once every row is fetched, so the
        # address never leaves the source bank
        fetch_row = Signal(range(max(2, cfg.act_depth)))
        fetch_rem = Signal(rem_bits)                  # in_len - fetch_row * N
        fetch_more = Signal()

        lnzd = m.submodules.lnzd = LNZDTree(n, signed(cfg.act_bits))
        m.d.comb += [lnzd.mask.eq(cur_mask), lnzd.data.eq(cur_vals)]

        # Credits: free slots of each PE's activation queue and pointer stages as the
        # CCU knows them (a column leaving P2 reaches the CCU one cycle late, so a
        # credit never overstates the room). `has_credit` is a register: fire
        # depends on CCU registers only.
        slots = cfg.credits
        credits = [Signal(range(slots + 1), init=slots, name=f"credits{k}") for k in range(n)]
        has_credit = Signal(n, init=(1 << n) - 1)
        all_ready = Signal(init=1)                    # has_credit.all(), as a register of its own
        # What a broadcast needs now: every PE holding a credit, from all_ready (a
        # register), or with cfg.credit_bypass holding one or returning one now.
        # room_now[k]: PE k has room now (pe_stall).
        ready = Signal()
        room_now = Signal(n)
        all_idle = self.pe_idle.all()
        # The decision state of the current row is kept in registers beside
        # cur_mask, so that no decision waits for a carry chain or an OR over
        # the mask (at 16 PEs on the ECP5 the loop cur_mask -> lowest non-zero
        # -> cur_mask was the longest path, ABC sharing it with the LNZD tree):
        cur_any = Signal()                            # cur_mask != 0
        cur_rest = Signal(n)                          # cur_mask without its lowest non-zero
        cur_last = Signal()                           # cur_rest == 0
        fire = Signal()
        cur_free = Signal()
        head_valid = Signal()
        # Broadcasts sent in the last 1 + 2 D cycles (bit 0: bcast_valid): a PE's
        # registered idle flag falls in the cycle after it takes one, D cycles
        # after bcast_valid, and reaches the CCU D cycles after that.
        sent = Signal(1 + 2 * D)
        m.d.comb += sent[0].eq(self.bcast_valid)
        if D:
            m.d.sync += sent[1:].eq(sent[:-1])
        head_any = Signal()
        # the head entry, an AND-OR multiplexer on the one-hot read pointer
        head_vals = Signal.like(self.scan_data)
        head_mask = Signal(n)
        head_base = Signal.like(cur_base)

        def at_head(entries):
            return reduce(operator.or_, (Mux(q_rd[i], Value.cast(e), 0) for i, e in enumerate(entries)))

        m.d.comb += [head_vals.eq(at_head(q_vals)), head_mask.eq(at_head(q_mask)), head_base.eq(at_head(q_base))]
        load = Signal()
        pop = Signal()
        push = Signal()
        fetch = Signal()
        scan_done = Signal()
        m.d.comb += [
            self.bcast_pending.eq(cur_any),
            fire.eq(cur_any & ready),
            cur_free.eq(~cur_any | (fire & cur_last)),
            head_valid.eq(occ != 0),
            head_any.eq(head_mask.any()),
            # A non-zero head row replaces `cur` when `cur` is done; an all-zero one is dropped.
            load.eq(head_valid & head_any & cur_free),
            pop.eq(head_valid & (~head_any | cur_free)),
            push.eq(inflight[-1]),
            fetch.eq((phase == Phase.SCAN) & fetch_more & (pending < Q)),
            # (pending == 0: nothing in flight, the queue empty; `sent`: no broadcast
            # the PEs' idle flags may not show yet)
            scan_done.eq(~fetch_more & (pending == 0) & ~cur_any & ~sent.any()),
        ]
        # The broadcast bus is a register: the decision (fire) stays inside the
        # CCU with the state it updates, and the bus crosses the die to the PEs
        # from flip-flops (at 16 PEs on the ECP5 the placer otherwise pulled the
        # decision towards the PEs, two die crossings per cycle).
        m.d.sync += [
            self.bcast_valid.eq(fire),
            self.bcast.ptr.eq(cur_base + lnzd.index),
            self.bcast.value.eq(lnzd.o_data),
            self.pe_stall.eq(Mux(cur_any, ~room_now, 0)),
        ]

        # all_ready's next value is has_credit's next value, ANDed over the PEs: the
        # same value is computed both ways round, the broadcast taken and not, from
        # registers (has_credit, has_two, the returned credits), and `fire` only
        # picks one of the two ANDs. At 48 PEs on the ECP5 `fire` running through
        # every PE's counter into one 48-input AND was the longest path (14.9 ns).
        has_two = Signal(n, init=(1 << n) - 1)      # credits[k] >= 2 (slots >= 3)
        room_kept = Signal(n)                         # credit_next != 0 if nothing is sent
        room_taken = Signal(n)                        # ... if a broadcast takes one
        credit_left = Signal(n)
        if cfg.credit_bypass:
            m.d.comb += [room_now.eq(room_kept), ready.eq(room_kept.all())]
        else:
            m.d.comb += [room_now.eq(has_credit), ready.eq(all_ready)]
        m.d.comb += [room_kept.eq(has_credit | self.pe_credit),
                     room_taken.eq(has_two | (has_credit & self.pe_credit)),
                     credit_left.eq(Mux(fire, room_taken, room_kept))]
        for k in range(n):
            credit_next = Signal.like(credits[k], name=f"credit_next{k}")
            m.d.comb += credit_next.eq(credits[k] + self.pe_credit[k] - fire)
            m.d.sync += [credits[k].eq(credit_next), has_two[k].eq(credit_next >= 2)]
        m.d.sync += [has_credit.eq(credit_left),
                     all_ready.eq(Mux(fire, room_taken.all(), room_kept.all()))]

        def drop_lowest(mask):
            return mask & (mask - 1)

        head_rest = Signal(n)
        rest_rest = Signal(n)
        m.d.comb += [head_rest.eq(drop_lowest(head_mask)), rest_rest.eq(drop_lowest(cur_rest))]
        with m.If(load):
            m.d.sync += [cur_mask.eq(head_mask), cur_vals.eq(head_vals), cur_base.eq(head_base),
                         cur_any.eq(1), cur_rest.eq(head_rest), cur_last.eq(head_rest == 0)]
        with m.Elif(fire):
            m.d.sync += [cur_mask.eq(cur_rest), cur_any.eq(~cur_last),
                         cur_rest.eq(rest_rest), cur_last.eq(rest_rest == 0)]

        # A pushed row goes into the write pointer's entry (behind the others); a pop
        # passes the head on. Both pointers rotate.
        def rotate(onehot):
            return Cat(onehot[-1], onehot[:-1])

        for i in range(Q):
            with m.If(push & q_wr[i]):
                m.d.sync += [q_vals[i].eq(self.scan_data), q_mask[i].eq(self.scan_nz & in_lim),
                             q_base[i].eq(push_base)]
        with m.If(push):
            m.d.sync += [q_wr.eq(rotate(q_wr)), in_lim.eq(Cat(k < push_rem for k in range(n))),
                         push_base.eq(push_base + n), push_rem.eq(push_rem - n)]
        with m.If(pop):
            m.d.sync += q_rd.eq(rotate(q_rd))
        m.d.sync += [occ.eq(occ + push - pop), pending.eq(pending + fetch - pop),
                     inflight.eq(Cat(fetch, inflight[:-1]))]

        with m.If(fetch):
            m.d.sync += [
                fetch_row.eq(fetch_row + (fetch_rem > n)), fetch_rem.eq(fetch_rem - n),
                fetch_more.eq(fetch_rem > n),
            ]
        m.d.comb += [
            # START reads row 0 of bank layer_idx % 2; SCAN reads fetch_row of src_bank
            # (pushed into the row queue in the next cycle if fetched).
            self.scan_addr.eq(Mux(phase == Phase.START,
                                  Mux(layer_idx[0], cfg.act_depth, 0),
                                  Mux(src_bank, cfg.act_depth + fetch_row, fetch_row))),
        ]

        # -- write-back / clear rows -------------------------------------------------
        wb_row = Signal(range(cfg.act_depth))
        wb_rem = Signal(rem_bits)
        # Accumulators may be non-zero: at power-up (memories are not
        # initialised) and after a reset that interrupted a run. Reset-less, so
        # a reset does not forget it.
        acc_dirty = Signal(init=1, reset_less=True)
        m.d.comb += [
            self.wb_row.eq(wb_row),
            self.wb_rem.eq(wb_rem),
            self.wb_issue.eq(phase == Phase.WB),
            # CLEAR inside a run, or the background clear while idle (below). From
            # registers only (it crosses the die to every PE's accumulator port); in
            # the cycle of a start it zeroes row wb_row once more, which is harmless.
            self.acc_clear.eq((phase == Phase.CLEAR) | (phase == Phase.IDLE) & acc_dirty),
        ]

        # WBLAST lasts writeback_latency cycles: the last row reaches the register files.
        # (Behind fanout_stages registers it reaches them D cycles later, but so does
        # everything the CCU or the host sends the PEs after it: nothing waits for it.)
        wb_tail = Signal(range(cfg.writeback_latency))
        last_wb_cycle = (phase == Phase.WBLAST) & (wb_tail == 0)

        # -- counters ---------------------------------------------------------------
        # (the layer count only needs to reach max_layers: a narrow register, read
        # back zero-extended like every counter)
        cnt = {c: Signal(cfg.counter_bits, name=f"count_{c.name.lower()}") for c in Counter}
        cnt[Counter.LAYERS] = Signal(range(cfg.max_layers + 1), name="count_layers")
        m.d.comb += [self.counters[c].eq(cnt[c]) for c in Counter]
        done = Signal()
        m.d.comb += self.done.eq(done)
        m.d.sync += done.eq(0)
        start = self.start & ~self.running
        # The PEs clear their counters one cycle later (a register: `start` comes
        # from the host's command decoder); they count nothing before LOAD.
        m.d.sync += self.clear.eq(start)
        with m.If(start):
            for c in Counter:
                m.d.sync += cnt[c].eq(0)
        with m.Else():
            with m.If(self.running):
                m.d.sync += cnt[Counter.CYCLES].eq(cnt[Counter.CYCLES] + 1)
            with m.If(fire):
                m.d.sync += cnt[Counter.BROADCASTS].eq(cnt[Counter.BROADCASTS] + 1)
            with m.If(cur_any & ~ready):
                m.d.sync += cnt[Counter.BROADCAST_STALLS].eq(cnt[Counter.BROADCAST_STALLS] + 1)
            with m.If(last_wb_cycle):
                m.d.sync += cnt[Counter.LAYERS].eq(cnt[Counter.LAYERS] + 1)

        # -- phase sequencer ----------------------------------------------------------
        with m.Switch(phase):
            with m.Case(Phase.IDLE):
                with m.If(self.start):
                    m.d.comb += layer_next.eq(0)
                    m.d.sync += [num.eq(self.num_layers), wb_row.eq(0)]
                    with m.If(acc_dirty):
                        m.d.sync += phase.eq(Phase.CLEAR)
                    with m.Else():
                        m.d.sync += phase.eq(Phase.LOAD)
                with m.Elif(acc_dirty):
                    # Zero the accumulators in the background while the host
                    # loads memories (the io port never touches them).
                    m.d.sync += wb_row.eq(wb_row + 1)
                    with m.If(wb_row == cfg.act_depth - 1):
                        m.d.sync += [acc_dirty.eq(0), wb_row.eq(0)]
            with m.Case(Phase.CLEAR):
                m.d.sync += wb_row.eq(wb_row + 1)
                with m.If(wb_row == cfg.act_depth - 1):
                    m.d.sync += phase.eq(Phase.LOAD)
            with m.Case(Phase.LOAD):
                with m.If(layer_idx == num):          # a run of 0 layers
                    m.d.sync += [phase.eq(Phase.IDLE), done.eq(1)]
                with m.Else():
                    m.d.sync += [
                        in_len_q.eq(table_entry["in_len"]),
                        ptr_base_q.eq(table_entry["ptr_base"]),
                        out_len.eq(table_entry["out_len"]),
                        self.codebook.eq(table_entry["codebook"]),
                        self.bias_base.eq(table_entry["bias_base"]),
                        self.shift.eq(table_entry["shift"]),
                        self.relu.eq(table_entry["relu"]),
                        phase.eq(Phase.START),
                    ]
            with m.Case(Phase.START):
                in_len = Signal(rem_bits)
                m.d.comb += in_len.eq(in_len_q)
                m.d.sync += [
                    src_bank.eq(layer_idx[0]),
                    self.dst_bank.eq(~layer_idx[0]),
                    # row 0 is read in this cycle (scan_addr above)
                    inflight.eq(1), pending.eq(1), push_base.eq(ptr_base_q), push_rem.eq(in_len - n),
                    in_lim.eq(Cat(k < in_len for k in range(n))),
                    fetch_row.eq(in_len > n), fetch_rem.eq(in_len - n),
                    fetch_more.eq(in_len > n),
                    acc_dirty.eq(1),
                    phase.eq(Phase.SCAN),
                ]
            with m.Case(Phase.SCAN):
                with m.If(scan_done & all_idle):
                    m.d.sync += [phase.eq(Phase.WB), wb_row.eq(0), wb_rem.eq(out_len)]
            with m.Case(Phase.WB):
                m.d.sync += [wb_row.eq(wb_row + 1), wb_rem.eq(wb_rem - n)]
                with m.If(wb_rem <= n):
                    m.d.sync += [phase.eq(Phase.WBLAST), wb_tail.eq(cfg.writeback_latency - 1)]
            with m.Case(Phase.WBLAST):
                # Until wb_tail runs out the last rows are still in the PEs' pipelines.
                m.d.sync += [acc_dirty.eq(0), wb_tail.eq(wb_tail - 1)]
                with m.If(last_wb_cycle):
                    with m.If(layer_idx + 1 == num):
                        m.d.sync += [phase.eq(Phase.IDLE), done.eq(1)]
                    with m.Else():
                        m.d.comb += layer_next.eq(layer_idx + 1)
                        m.d.sync += phase.eq(Phase.LOAD)

        # -- io read data ----------------------------------------------------------------
        # (with cfg.io_read_stages registers after the block RAM, as in the PEs)
        stages = cfg.io_read_stages
        rd_mem = Signal(3)
        rd_addr = Signal(range(len(Counter)))
        m.d.sync += [rd_mem.eq(self.io_mem), rd_addr.eq(self.io_addr)]
        rd_mem, rd_addr = delayed(m, rd_mem, stages, "rd_mem"), delayed(m, rd_addr, stages, "rd_addr")
        io_layer = delayed(m, tbl_r.data, stages, "io_layer")
        with m.If(rd_mem == Mem.LAYER):
            m.d.sync += self.io_rdata.eq(io_layer)
        with m.Else():
            m.d.sync += self.io_rdata.eq(self.counters[rd_addr])
        return m
