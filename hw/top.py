"""The generated top level: the host-protocol decoder around the EIE array.

:class:`EIETop` is what ``eie generate`` turns into ``eie.v`` (module
``eie_top``). It implements the device side of ``docs/protocol.md`` on top of
:class:`eie.hw.array.EIEArray`: it parses three header words per command,
validates them, streams ``WRITE`` payloads into the array's io port one item per
``io_we``, streams ``READ`` items back word by word, starts runs and answers
``STATUS`` and ``INFO``.

Every geometry number (memory depths, item widths, words per item, the INFO
words) comes from :mod:`eie.protocol`, the same functions the host uses, so the
two sides cannot disagree.

Throughput: the decoder accepts a header or payload word every cycle and
emits a response word every cycle while the host keeps up; a ``WRITE`` costs
``3 + count * words_per_item`` words plus a constant two cycles (check and
status word); ``READ`` and ``RUN`` take one more (``DECODE``), and a ``READ``
sends one item per ``read_latency`` cycles of the array (3 for ``EIEArray``,
whose read-back path is registered at every stage) at most. The header
checks are computed from the header registers in ``CHECK`` and registered, so
the ``addr + count`` range check (an adder only as wide as the deepest memory's
address) never drives the decoder state or a handshake directly (the 33-bit
version was the iCE40 critical path). Responses leave through
a small FIFO so ``host_out.valid`` never depends on ``host_out.ready``.
"""


from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal
from amaranth.lib import fifo, stream, wiring
from amaranth.lib.wiring import In, Out

from ..config import EIEConfig
from ..protocol import (ALL_PES, HEADER_WORDS, STATUS_RUNNING, Mem, Opcode, Status, info_words,
                        memory_depth, memory_readable, words_per_item)

__all__ = ["EIETop"]


class EIETop(wiring.Component):
    """Host-protocol top level of an EIE design.

    Parameters
    ----------
    cfg : EIEConfig
        The design's configuration; sizes the array and every check.
    array : callable, optional
        ``array(cfg)`` returns the component to drive; it must have the ports
        of ``EIEArray`` (docs/hardware.md). Defaults to
        :class:`eie.hw.array.EIEArray`; tests pass a behavioural stand-in.
    response_fifo_depth : int
        Words buffered between the decoder and ``host_out`` (at least 2 for a
        response word every cycle; 1 sends one every other cycle at most, plenty
        behind a UART bridge that takes a word every fourth cycle).
    image : eie.format.NetworkImage, optional
        A network encoded for ``cfg``, baked into the array's memories as
        initial contents (see :class:`eie.hw.array.EIEArray`): the design boots
        ready to ``RUN`` once the input is written.

    Members
    -------
    host_in : ``In(stream.Signature(32))``
        Command words (header words and ``WRITE`` payloads).
    host_out : ``Out(stream.Signature(32))``
        Response words, one status word per command, in command order.
    running : ``Out(1)``
        A run is in progress.
    error : ``Out(1)``
        The last answered command failed (for an LED).
    """

    host_in: In(stream.Signature(32))
    host_out: Out(stream.Signature(32))
    running: Out(1)
    error: Out(1)

    def __init__(self, cfg: EIEConfig, *, array=None, response_fifo_depth: int = 4, image=None):
        if not isinstance(cfg, EIEConfig):
            raise TypeError(f"EIETop needs an EIEConfig, not {cfg!r}")
        if not isinstance(response_fifo_depth, int) or not 1 <= response_fifo_depth <= 64:
            raise ValueError(f"EIETop response_fifo_depth must be in range 1..64, not {response_fifo_depth!r}")
        from .pe import check_image
        try:
            check_image(cfg, image, "EIETop")
            if image is not None and array is not None:
                raise ValueError("EIETop cannot bake an image into a custom array; pass either image= or array=")
        except (TypeError, ValueError):
            self._MustUse__silence = True     # a rejected object: no "created but never used" warning too
            raise
        self._cfg = cfg
        self._image = image
        self._array_factory = array
        self._response_fifo_depth = response_fifo_depth
        super().__init__()

    @property
    def cfg(self) -> EIEConfig:
        return self._cfg

    def _make_array(self):
        if self._array_factory is not None:
            return self._array_factory(self._cfg)
        from .array import EIEArray
        return EIEArray(self._cfg, image=self._image)

    def elaborate(self, platform):
        cfg = self._cfg
        m = Module()

        array = m.submodules.array = self._make_array()
        io_width = len(array.io_wdata)
        # Cycles from io_re to the item on io_rdata (EIEArray: 3, registered all the way).
        read_latency = getattr(array, "read_latency", 1)
        # 32-bit words of the widest item (the counters are 64-bit items however
        # wide the hardware counters are: their upper bits read as zeros).
        slots = max((io_width + 31) // 32, max(words_per_item(cfg, mm) for mm in Mem))

        m.submodules.response_fifo = rsp = fifo.SyncFIFO(width=32, depth=self._response_fifo_depth)
        m.d.comb += [
            self.host_out.payload.eq(rsp.r_data),
            self.host_out.valid.eq(rsp.r_rdy),
            rsp.r_en.eq(self.host_out.ready),
            self.running.eq(array.running),
        ]

        # -- header registers -------------------------------------------------
        opcode = Signal(8)
        mem = Signal(8)
        pe = Signal(16)
        # Every depth is below 2**addr_bits: only an in-range access (addr + count
        # <= depth) reaches the array, so the item address needs addr_bits.
        addr_bits = max(memory_depth(cfg, mm, pe_index) for mm in Mem for pe_index in (0, ALL_PES)).bit_length()
        # w1, addr (WRITE/READ) or layers (RUN): its low bits are the item address
        # of the next io access (counting up from here), the rest only matter as "any set".
        address = Signal(addr_bits)
        arg0_high = Signal()
        items_left = Signal(32)
        # The third header word (count for WRITE/READ, flags for RUN) goes straight
        # into items_left; arg1_high: a bit at or above addr_bits is set.
        arg1_high = Signal()
        header_index = Signal(range(HEADER_WORDS))

        # -- per-memory constants (from eie.protocol, like the host) -----------
        pe_all = pe == ALL_PES
        mem_known = mem < len(Mem)
        item_words = Signal(range(slots + 1))   # words per item; 1 for an unknown memory id
        depth = Signal(addr_bits)
        pe_ok = Signal()
        readable = Signal()                     # READ allowed (config host_readback)
        m.d.comb += item_words.eq(1)
        with m.Switch(mem):
            for mm in Mem:
                with m.Case(mm):
                    m.d.comb += [
                        item_words.eq(words_per_item(cfg, mm)),
                        readable.eq(memory_readable(cfg, mm)),
                    ]
                    if mm == Mem.COUNTER:
                        m.d.comb += [
                            depth.eq(Mux(pe_all, memory_depth(cfg, mm, ALL_PES), memory_depth(cfg, mm, 0))),
                            pe_ok.eq(pe_all | (pe < cfg.pes)),
                        ]
                    elif mm == Mem.LAYER:
                        m.d.comb += [depth.eq(memory_depth(cfg, mm)), pe_ok.eq(pe_all | (pe == 0))]
                    else:
                        # ALL_PES is a broadcast write; a broadcast read is ERR_ARG (checked below).
                        m.d.comb += [depth.eq(memory_depth(cfg, mm)),
                                     pe_ok.eq((pe < cfg.pes) | (pe_all & (opcode == Opcode.WRITE)))]

        # -- validation (combinational on the header registers, registered in CHECK) --
        # Only `result` (a register) depends on it, so the range check is not on
        # a path into the decoder state or the stream handshakes.
        # When several checks fail the first reported is, in this order (docs/protocol.md):
        # opcode, memory id, read-only, write-only, PE index, addr + count, RUN layers, busy.
        status = Signal(8)
        is_write = opcode == Opcode.WRITE
        is_read = opcode == Opcode.READ
        per_pe_mem = mem < Mem.LAYER             # SPMAT, PTR, CODEBOOK, BIAS, ACT
        # addr + count > depth without 32-bit wrap-around. A field with a bit at or
        # above addr_bits is out of range on its own, and the sum of two narrower
        # ones fits addr_bits + 1 bits: a short adder instead of a 33-bit one
        # (area, and the iCE40 critical path).
        end = Signal(addr_bits + 1)
        too_far = Signal()
        m.d.comb += [
            end.eq(address + items_left[:addr_bits]),    # address and items_left still hold addr and count
            too_far.eq(arg0_high | arg1_high | (end > depth)),
        ]
        m.d.comb += status.eq(Status.OK)
        with m.If(opcode > max(Opcode)):
            m.d.comb += status.eq(Status.ERR_OPCODE)
        with m.Elif(is_write | is_read):
            with m.If(~mem_known):
                m.d.comb += status.eq(Status.ERR_MEM)
            with m.Elif(is_write & (mem == Mem.COUNTER)):
                m.d.comb += status.eq(Status.ERR_READONLY)
            with m.Elif(is_read & ~readable):
                m.d.comb += status.eq(Status.ERR_WRITEONLY)
            with m.Elif(is_read & per_pe_mem & pe_all):
                m.d.comb += status.eq(Status.ERR_ARG)
            with m.Elif(~pe_ok):
                m.d.comb += status.eq(Status.ERR_RANGE)
            with m.Elif(too_far):
                m.d.comb += status.eq(Status.ERR_RANGE)
            with m.Elif(array.running & (mem != Mem.COUNTER)):
                m.d.comb += status.eq(Status.ERR_BUSY)
        with m.Elif(opcode == Opcode.RUN):
            with m.If(arg0_high | (address == 0) | (address > cfg.max_layers)):
                m.d.comb += status.eq(Status.ERR_ARG)
            with m.Elif(array.running):
                m.d.comb += status.eq(Status.ERR_BUSY)

        # -- command state ----------------------------------------------------
        result = Signal(8)                       # status of the command being answered
        result_ok = result == Status.OK
        word_index = Signal(range(max(slots, 4)))   # word within an item; INFO word index
        write_pending = Signal()                 # io_we next cycle (registered write port)
        # Cycles until the item of the last io_re is on io_rdata.
        read_wait = Signal(range(max(2, read_latency)))
        # A WRITE item is assembled in place: payload word k goes into word k (an
        # item of w bits has ceil(w / 32) words, and the bits above w, which may
        # hold an earlier item's, are never read back or used: every memory and
        # every reader of the merged codebook/bias memory take the w low bits). The
        # write (io_we) is in the cycle after the last word, so the next item's
        # first word, taken in that cycle, lands after the array has sampled it.
        write_data = Signal(32 * slots)
        error = Signal()

        m.d.comb += [
            self.error.eq(error),
            array.io_mem.eq(mem[:len(array.io_mem)]),
            array.io_pe.eq(pe),
            array.io_addr.eq(address),
            array.io_wdata.eq(write_data),
            # A WRITE's first item may be taken in CHECK, while its status is
            # computed: the write is gated by the registered status instead.
            array.io_we.eq(write_pending & result_ok),
            array.num_layers.eq(address),         # RUN: the layer count (address does not move)
        ]
        m.d.sync += write_pending.eq(0)
        with m.If(array.io_re):
            m.d.sync += read_wait.eq(read_latency - 1)
        with m.Elif(read_wait != 0):
            m.d.sync += read_wait.eq(read_wait - 1)
        with m.If(write_pending):
            m.d.sync += address.eq(address + 1)

        def take_payload_word(index, items):
            # One payload word of a WRITE, into its word of the item: complete the
            # item (io_we next cycle if the command is OK) or wait for the next word.
            if isinstance(index, int):
                m.d.sync += write_data[32 * index:32 * (index + 1)].eq(self.host_in.payload)
            else:
                with m.Switch(index):
                    for k in range(slots):
                        with m.Case(k):
                            m.d.sync += write_data[32 * k:32 * (k + 1)].eq(self.host_in.payload)
            with m.If(index == item_words - 1):
                m.d.sync += [
                    word_index.eq(0),
                    items_left.eq(items - 1),
                    write_pending.eq(1),
                ]
                with m.If(items == 1):
                    m.next = "RESPOND"
                with m.Else():
                    m.next = "PAYLOAD"
            with m.Else():
                m.d.sync += [word_index.eq(index + 1), items_left.eq(items)]
                m.next = "PAYLOAD"

        # Word `word_index` of the item on io_rdata (zero-extended by the array, the
        # contract in docs/hardware.md: no mask here).
        read_item = Signal(32 * slots)
        m.d.comb += read_item.eq(array.io_rdata)
        read_word = read_item.word_select(word_index, 32)

        info = Array(Const(w, 32) for w in info_words(cfg))
        response_word = Cat(result, opcode, Mux(is_write | is_read, mem, 0), Const(0, 8))

        with m.FSM(name="decoder"):
            with m.State("HEADER"):
                m.d.comb += self.host_in.ready.eq(1)
                m.d.sync += word_index.eq(0)
                with m.If(self.host_in.valid):
                    m.d.sync += header_index.eq(header_index + 1)
                    with m.Switch(header_index):
                        with m.Case(0):
                            m.d.sync += Cat(opcode, mem, pe).eq(self.host_in.payload)
                        with m.Case(1):
                            m.d.sync += [address.eq(self.host_in.payload),
                                         arg0_high.eq(self.host_in.payload[addr_bits:].any())]
                        with m.Case(2):
                            m.d.sync += [items_left.eq(self.host_in.payload), header_index.eq(0),
                                         arg1_high.eq(self.host_in.payload[addr_bits:].any())]
                            m.next = "CHECK"

            with m.State("CHECK"):
                # The checks are registered into `result`; what follows uses only that.
                m.d.sync += [result.eq(status), word_index.eq(0)]
                with m.If(is_write):
                    # A failed WRITE still consumes its payload so the stream stays in step.
                    # The first payload word is taken here already: no bubble after the header
                    # (its write waits for `result`, registered now).
                    with m.If(items_left == 0):
                        m.next = "RESPOND"
                    with m.Else():
                        m.d.comb += self.host_in.ready.eq(1)
                        with m.If(self.host_in.valid):
                            take_payload_word(0, items_left)
                        with m.Else():
                            m.next = "PAYLOAD"
                with m.Elif(is_read | (opcode == Opcode.RUN)):
                    m.next = "DECODE"
                with m.Else():
                    m.next = "RESPOND"

            with m.State("DECODE"):
                # READ and RUN act here, one cycle after CHECK, on the registered status.
                with m.If(is_read & result_ok & (items_left != 0)):
                    # First item: io_rdata holds it from the next cycle on.
                    m.d.comb += array.io_re.eq(1)
                    m.d.sync += address.eq(address + 1)
                    m.next = "RESPOND"
                with m.Elif((opcode == Opcode.RUN) & result_ok):
                    m.d.comb += array.start.eq(1)
                    with m.If(items_left[0]):            # RUN flag bit 0: answer when the run is done
                        m.next = "WAIT_RUN"
                    with m.Else():
                        m.next = "RESPOND"
                with m.Else():
                    m.next = "RESPOND"

            with m.State("PAYLOAD"):
                m.d.comb += self.host_in.ready.eq(1)
                with m.If(self.host_in.valid):
                    take_payload_word(word_index, items_left)

            with m.State("WAIT_RUN"):
                with m.If(array.done):
                    m.next = "RESPOND"

            with m.State("RESPOND"):
                with m.If(rsp.w_rdy):
                    m.d.comb += [rsp.w_en.eq(1), rsp.w_data.eq(response_word)]
                    m.d.sync += error.eq(~result_ok)
                    with m.If(result_ok & ((is_read & (items_left != 0)) |
                                           (opcode == Opcode.STATUS) | (opcode == Opcode.INFO))):
                        m.next = "DATA"
                    with m.Else():
                        m.next = "HEADER"

            with m.State("DATA"):
                with m.If(rsp.w_rdy & ~(is_read & (read_wait != 0))):
                    m.d.comb += rsp.w_en.eq(1)
                    with m.If(is_read):
                        m.d.comb += rsp.w_data.eq(read_word)
                        with m.If(word_index == item_words - 1):
                            m.d.sync += [word_index.eq(0), items_left.eq(items_left - 1)]
                            with m.If(items_left == 1):
                                m.next = "HEADER"
                            with m.Else():
                                # Next item; this cycle's word came from the old io_rdata.
                                m.d.comb += array.io_re.eq(1)
                                m.d.sync += address.eq(address + 1)
                        with m.Else():
                            m.d.sync += word_index.eq(word_index + 1)
                    with m.Elif(opcode == Opcode.STATUS):
                        state = Signal(32)
                        m.d.comb += state.eq(Mux(array.running, STATUS_RUNNING, 0))
                        m.d.comb += rsp.w_data.eq(state)
                        m.next = "HEADER"
                    with m.Else():   # INFO
                        m.d.comb += rsp.w_data.eq(info[word_index])
                        m.d.sync += word_index.eq(word_index + 1)
                        with m.If(word_index == len(info) - 1):
                            m.next = "HEADER"

        return m
