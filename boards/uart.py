"""UART gateware and the framed bridge between a UART and the EIE word streams.

Blocks, from the pins inwards:

* :class:`UARTReceiver` / :class:`UARTTransmitter`: 8N1 UART at
  ``clk_hz / baud`` clocks per bit (:func:`baud_divisor`).
* :class:`FrameBridge`: bytes <-> CRC-checked frames <-> the 32-bit
  ``host_in`` / ``host_out`` streams of :class:`eie.hw.top.EIETop`. It buffers
  a whole host frame and passes its words on only after the CRC matched, so a
  corrupted, truncated or over-long frame is answered with a NAK frame and
  never executed. The frame format and the host side are in
  :mod:`eie.framing` (``docs/boards.md``).
* :class:`UARTBridge`: the three together, with ``rx`` / ``tx`` pins.

Every block is a ``wiring.Component`` in the ``sync`` domain.
"""


from amaranth.hdl import Cat, Const, Module, Mux, Signal, ResetInserter
from amaranth.lib import fifo, stream, wiring
from amaranth.lib.cdc import FFSynchronizer
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from ..framing import MAX_FRAME_WORDS, SOF, AckCode, FrameType, NakReason
from ..hw.memory import RAM, read_port

__all__ = ["baud_divisor", "UARTReceiver", "UARTTransmitter", "FrameBridge", "UARTBridge"]

MIN_DIVISOR = 4         # clocks per bit: mid-bit sampling needs a few samples per bit
MAX_BAUD_ERROR = 0.02   # 8N1 tolerates about 4 % between both ends; keep half of it for the other end

CRC32_POLY = 0xEDB88320  # reflected IEEE 802.3 polynomial (binascii.crc32)


def baud_divisor(clk_hz: float, baud: int) -> int:
    """Clocks per UART bit for ``baud`` at ``clk_hz``; ``ValueError`` if the rate error exceeds 2 %."""
    if not isinstance(baud, int) or baud <= 0:
        raise ValueError(f"UART baud rate must be a positive integer, not {baud!r}")
    if clk_hz <= 0:
        raise ValueError(f"UART clock frequency must be positive, not {clk_hz!r}")
    divisor = round(clk_hz / baud)
    if divisor < MIN_DIVISOR:
        raise ValueError(f"UART baud rate {baud} is too fast for a {clk_hz / 1e6:g} MHz clock: "
                         f"{clk_hz / baud:.2f} clocks per bit, at least {MIN_DIVISOR} are needed; "
                         f"use a baud rate up to {int(clk_hz // MIN_DIVISOR)}")
    error = abs(clk_hz / divisor - baud) / baud
    if error > MAX_BAUD_ERROR:
        raise ValueError(f"UART baud rate {baud} at {clk_hz / 1e6:g} MHz: the nearest divisor {divisor} gives "
                         f"{clk_hz / divisor:.0f} baud ({100 * error:.1f} % off, at most "
                         f"{100 * MAX_BAUD_ERROR:g} % allowed); pick a baud rate that divides the clock")
    return divisor


CRC32_RESIDUE = 0xDEBB20E3  # running CRC after a frame's data and its own (little-endian) CRC


class _SerialCRC:
    """A bit-serial CRC-32 (one bit per cycle, 8 cycles a byte): a sixth of the logic of
    a byte-parallel one. Bytes come from a UART at least ``10 * divisor`` cycles apart,
    so it is always done before the next byte; ``busy`` says when it is not."""

    def __init__(self, m: Module, name: str):
        self.value = Signal(32, name=f"{name}_crc")
        self.byte = Signal(8, name=f"{name}_crc_byte")    # input: the byte to add
        self.start = Signal(name=f"{name}_crc_start")     # strobe: add `byte`
        self.init = Signal(name=f"{name}_crc_init")       # strobe: start a new CRC
        self.busy = Signal(name=f"{name}_crc_busy")
        shreg = Signal(8, name=f"{name}_crc_shreg")
        left = Signal(range(9), name=f"{name}_crc_left")
        m.d.comb += self.busy.eq(left != 0)
        feedback = self.value[0] ^ shreg[0]
        with m.If(self.init):
            m.d.sync += [self.value.eq(0xFFFFFFFF), left.eq(0)]
        with m.Elif(self.start):
            m.d.sync += [shreg.eq(self.byte), left.eq(8)]
        with m.Elif(left != 0):
            m.d.sync += [self.value.eq((self.value >> 1) ^ Mux(feedback, CRC32_POLY, 0)),
                         shreg.eq(shreg >> 1), left.eq(left - 1)]


class _UARTPort(wiring.Component):
    """Common part of the receiver and the transmitter: the bit period in clocks."""

    def __init__(self, divisor: int):
        if not isinstance(divisor, int) or divisor < MIN_DIVISOR:
            raise ValueError(f"UART divisor must be an integer of at least {MIN_DIVISOR}, not {divisor!r}")
        self._divisor = divisor
        super().__init__()

    @property
    def divisor(self) -> int:
        return self._divisor


class UARTReceiver(_UARTPort):
    """8N1 UART receiver, sampling each bit in its middle.

    Parameters
    ----------
    divisor : int
        Clocks per bit (at least 4), see :func:`baud_divisor`.

    Members
    -------
    rx : ``In(1)``
        The line (idle high); synchronised inside.
    data : ``Out(stream.Signature(8))``
        One received byte per ``valid`` pulse. There is no back-pressure: the
        consumer must take the byte in the cycle ``valid`` is high.
    error : ``Out(1)``
        Pulse: a byte ended without its stop bit (framing error; the byte is dropped).
    """

    rx: In(1, init=1)
    data: Out(stream.Signature(8))
    error: Out(1)

    def elaborate(self, platform):
        m = Module()
        d = self._divisor
        rx = Signal(init=1)
        m.submodules.rx_sync = FFSynchronizer(self.rx, rx, init=1)

        timer = Signal(range(d))
        bit = Signal(range(8))
        shreg = Signal(8)
        m.d.sync += [self.data.valid.eq(0), self.error.eq(0)]
        m.d.comb += self.data.payload.eq(shreg)

        with m.If(timer != 0):
            m.d.sync += timer.eq(timer - 1)

        with m.FSM():
            with m.State("IDLE"):
                with m.If(~rx):
                    m.d.sync += timer.eq(d // 2 - 1)
                    m.next = "START"
            with m.State("START"):
                with m.If(timer == 0):
                    with m.If(rx):
                        m.next = "IDLE"          # a glitch, not a start bit
                    with m.Else():
                        m.d.sync += [timer.eq(d - 1), bit.eq(0)]
                        m.next = "DATA"
            with m.State("DATA"):
                with m.If(timer == 0):
                    m.d.sync += [shreg.eq(Cat(shreg[1:], rx)), timer.eq(d - 1), bit.eq(bit + 1)]
                    with m.If(bit == 7):
                        m.next = "STOP"
            with m.State("STOP"):
                with m.If(timer == 0):
                    with m.If(rx):
                        m.d.sync += self.data.valid.eq(1)
                        m.next = "IDLE"
                    with m.Else():
                        m.d.sync += self.error.eq(1)
                        m.next = "BREAK"
            with m.State("BREAK"):
                # Wait for the line to go idle before looking for the next start bit.
                with m.If(rx):
                    m.next = "IDLE"
        return m


class UARTTransmitter(_UARTPort):
    """8N1 UART transmitter.

    Members
    -------
    data : ``In(stream.Signature(8))``
        Bytes to send; ``ready`` is high while the transmitter is idle.
    tx : ``Out(1)``
        The line (idle high), driven from a register.
    """

    data: In(stream.Signature(8))
    tx: Out(1, init=1)

    def elaborate(self, platform):
        m = Module()
        d = self._divisor
        timer = Signal(range(d))
        bits_left = Signal(range(11))
        shreg = Signal(10, init=0x3FF)
        m.d.comb += self.data.ready.eq(bits_left == 0)
        m.d.comb += self.tx.eq(shreg[0])
        with m.If(bits_left == 0):
            with m.If(self.data.valid):
                # stop bit, data LSB first, start bit
                m.d.sync += [shreg.eq(Cat(Const(0, 1), self.data.payload, Const(1, 1))),
                             bits_left.eq(10), timer.eq(d - 1)]
        with m.Elif(timer == 0):
            m.d.sync += [shreg.eq(Cat(shreg[1:], Const(1, 1))), bits_left.eq(bits_left - 1), timer.eq(d - 1)]
        with m.Else():
            m.d.sync += timer.eq(timer - 1)
        return m


class FrameBridge(wiring.Component):
    """Frames <-> the EIE host word streams (the board side of :mod:`eie.framing`).

    Receive path: bytes are parsed into a frame whose payload is stored in a
    one-frame buffer. When the frame is complete and its CRC matches, a
    ``DATA`` frame's words are passed to ``host_in`` and the frame is answered
    ``ACK(ACCEPTED)`` once the last word was taken (``ACK(DUPLICATE)`` without
    passing anything if it repeats the last accepted sequence number). A
    ``SYNC`` frame pulses ``core_reset`` (once the transmitter is between
    frames), restarts the response sequence numbers and is answered with an
    ACK. Anything else is answered with a ``NAK``: a CRC mismatch, a frame
    cut short (the line quiet for ``timeout_cycles`` within a frame), a
    length above ``max_words`` (answered once the line went quiet), an unknown
    type, or a UART framing error within the frame. A rejected frame's
    words never reach ``host_in``. Bytes that arrive while a frame is being
    passed on or answered are dropped (the host waits for the answer).

    Transmit path: ``host_out`` words are queued (``4 * max_words`` bytes) and
    sent in ``RESP`` frames of up to ``max_words`` words once the queue holds
    ``max_words`` words or no word arrived for ``gather_cycles`` cycles. ACK/NAK
    frames go out between RESP frames.

    Parameters
    ----------
    max_words : int
        Largest payload of a frame, both directions (the host must agree:
        :data:`eie.framing.MAX_FRAME_WORDS`).
    timeout_cycles : int
        Inter-byte timeout within a frame (make it several byte times).
    gather_cycles : int
        How long the transmitter waits for more response words before it sends
        a shorter RESP frame.

    Members
    -------
    rx_data : ``In(stream.Signature(8))``, rx_error : ``In(1)``
        From :class:`UARTReceiver` (always ready).
    tx_data : ``Out(stream.Signature(8))``
        To :class:`UARTTransmitter`.
    host_in : ``Out(stream.Signature(32))``, host_out : ``In(stream.Signature(32))``
        To / from ``EIETop.host_in`` / ``EIETop.host_out``.
    core_reset : ``Out(1)``
        One-cycle pulse on ``SYNC``: reset the EIE core's command decoder.
    frame_ok, frame_error : ``Out(1)``
        Pulses when a host frame was accepted / rejected (status LEDs).
    """

    rx_data: In(stream.Signature(8))
    rx_error: In(1)
    tx_data: Out(stream.Signature(8))
    host_in: Out(stream.Signature(32))
    host_out: In(stream.Signature(32))
    core_reset: Out(1)
    frame_ok: Out(1)
    frame_error: Out(1)

    def __init__(self, *, max_words: int = MAX_FRAME_WORDS, timeout_cycles: int, gather_cycles: int):
        if not isinstance(max_words, int) or not 1 <= max_words <= 255:
            raise ValueError(f"FrameBridge max_words must be in range 1..255, not {max_words!r}")
        if not isinstance(timeout_cycles, int) or timeout_cycles < 16:
            raise ValueError(f"FrameBridge timeout_cycles must be an integer of at least 16, not {timeout_cycles!r}")
        if not isinstance(gather_cycles, int) or gather_cycles < 1:
            raise ValueError(f"FrameBridge gather_cycles must be a positive integer, not {gather_cycles!r}")
        self._max_words = max_words
        self._timeout_cycles = timeout_cycles
        self._gather_cycles = gather_cycles
        super().__init__()

    @property
    def max_words(self) -> int:
        return self._max_words

    def elaborate(self, platform):
        m = Module()
        max_bytes = 4 * self._max_words

        # ---------------- control answers: RX side -> TX side -----------------
        ctl_pending = Signal()
        ctl_type = Signal(8)
        ctl_seq = Signal(8)
        ctl_code = Signal(8)
        ctl_take = Signal()        # TX latched the answer this cycle
        sync_request = Signal()    # RX wants a core reset; TX grants it between frames
        sync_grant = Signal()
        tx_idle = Signal()

        # ---------------- receive path ---------------------------------------
        # Written while a frame arrives, read while it is forwarded: never both.
        m.submodules.rx_buffer = rx_buffer = Memory(shape=8, depth=max_bytes, init=[], attrs=RAM)
        wr = rx_buffer.write_port()
        rd = read_port(m, rx_buffer, "rx_buffer")

        got = self.rx_data.valid
        byte = self.rx_data.payload
        m.d.comb += self.rx_data.ready.eq(1)

        f_type = Signal(8)
        f_seq = Signal(8)
        f_len = Signal(8)
        f_bytes = Signal(range(max_bytes + 1))     # payload bytes of the frame
        f_last = Signal(range(max_bytes + 1))      # index of its last payload byte (f_bytes - 1)
        f_uart_error = Signal()
        index = Signal(range(max_bytes + 1))
        rx_crc = _SerialCRC(m, "rx")
        m.d.comb += rx_crc.byte.eq(byte)
        last_seq = Signal(8)
        last_valid = Signal()

        quiet = Signal(range(self._timeout_cycles + 1))
        timed_out = Signal()
        with m.If(got):
            m.d.sync += quiet.eq(0)
        with m.Elif(~timed_out):
            m.d.sync += quiet.eq(quiet + 1)
        m.d.comb += timed_out.eq(quiet == self._timeout_cycles)

        with m.If(self.rx_error):
            m.d.sync += f_uart_error.eq(1)

        answer_type = Signal(8)
        answer_code = Signal(8)

        def answer(m, ftype, code):
            m.d.sync += [answer_type.eq(ftype), answer_code.eq(code)]
            m.next = "ANSWER"

        # forwarding state
        word = Signal(32)
        byte_in_word = Signal(range(4))
        read_pending = Signal()
        fwd_addr = Signal(range(max_bytes + 1))

        m.d.comb += [wr.addr.eq(index), wr.data.eq(byte), rd.addr.eq(fwd_addr),
                     self.host_in.payload.eq(word)]

        m.d.sync += [self.frame_ok.eq(0), self.frame_error.eq(0)]   # pulses; set in ANSWER
        with m.FSM(name="rx_fsm"):
            with m.State("IDLE"):
                with m.If(got & (byte == SOF)):
                    m.d.comb += rx_crc.init.eq(1)
                    m.d.sync += [index.eq(0), f_uart_error.eq(0)]
                    m.next = "TYPE"
            with m.State("TYPE"):
                with m.If(got):
                    m.d.comb += rx_crc.start.eq(1)
                    m.d.sync += f_type.eq(byte)
                    m.next = "SEQ"
                with m.Elif(timed_out):
                    answer(m, FrameType.NAK, NakReason.TIMEOUT)
            with m.State("SEQ"):
                with m.If(got):
                    m.d.comb += rx_crc.start.eq(1)
                    m.d.sync += f_seq.eq(byte)
                    m.next = "LEN"
                with m.Elif(timed_out):
                    answer(m, FrameType.NAK, NakReason.TIMEOUT)
            with m.State("LEN"):
                with m.If(got):
                    m.d.comb += rx_crc.start.eq(1)
                    m.d.sync += [f_len.eq(byte), f_bytes.eq(byte << 2), f_last.eq((byte << 2) - 1), index.eq(0)]
                    with m.If(byte > self._max_words):
                        m.next = "DISCARD"
                    with m.Elif(byte == 0):
                        m.next = "CRC"
                    with m.Else():
                        m.next = "PAYLOAD"
                with m.Elif(timed_out):
                    answer(m, FrameType.NAK, NakReason.TIMEOUT)
            with m.State("PAYLOAD"):
                with m.If(got):
                    m.d.comb += [wr.en.eq(1), rx_crc.start.eq(1)]
                    m.d.sync += index.eq(index + 1)
                    with m.If(index == f_last):
                        m.d.sync += index.eq(0)
                        m.next = "CRC"
                with m.Elif(timed_out):
                    answer(m, FrameType.NAK, NakReason.TIMEOUT)
            with m.State("CRC"):
                with m.If(got):
                    # The CRC over data and CRC bytes leaves a fixed residue when they match.
                    m.d.comb += rx_crc.start.eq(1)
                    m.d.sync += index.eq(index + 1)
                    with m.If(index == 3):
                        m.next = "CHECK"
                with m.Elif(timed_out):
                    answer(m, FrameType.NAK, NakReason.TIMEOUT)
            with m.State("CHECK"):
                with m.If(rx_crc.busy):
                    pass
                with m.Elif(f_uart_error):
                    answer(m, FrameType.NAK, NakReason.UART)
                with m.Elif(rx_crc.value != CRC32_RESIDUE):
                    answer(m, FrameType.NAK, NakReason.CRC)
                with m.Elif(f_type == FrameType.SYNC):
                    m.next = "SYNC"
                with m.Elif(f_type != FrameType.DATA):
                    answer(m, FrameType.NAK, NakReason.TYPE)
                with m.Elif(last_valid & (f_seq == last_seq)):
                    answer(m, FrameType.ACK, AckCode.DUPLICATE)
                with m.Elif(f_len == 0):
                    m.d.sync += [last_seq.eq(f_seq), last_valid.eq(1)]
                    answer(m, FrameType.ACK, AckCode.ACCEPTED)
                with m.Else():
                    m.d.sync += [fwd_addr.eq(0), byte_in_word.eq(0), read_pending.eq(0)]
                    m.next = "FORWARD"
            with m.State("DISCARD"):
                # Over-long frame: skip its bytes until the line goes quiet.
                with m.If(timed_out):
                    answer(m, FrameType.NAK, NakReason.LENGTH)
            with m.State("SYNC"):
                m.d.comb += sync_request.eq(1)
                with m.If(sync_grant):
                    m.d.sync += last_valid.eq(0)
                    answer(m, FrameType.ACK, AckCode.ACCEPTED)
            with m.State("FORWARD"):
                # Read the buffer a byte at a time (one cycle latency), little endian.
                with m.If(read_pending):
                    m.d.sync += [word.eq(Cat(word[8:], rd.data)), byte_in_word.eq(byte_in_word + 1),
                                 read_pending.eq(0)]
                    with m.If(byte_in_word == 3):
                        m.next = "PUSH"
                with m.Else():
                    m.d.sync += [fwd_addr.eq(fwd_addr + 1), read_pending.eq(1)]
            with m.State("PUSH"):
                m.d.comb += self.host_in.valid.eq(1)
                with m.If(self.host_in.ready):
                    with m.If(fwd_addr == f_bytes):
                        m.d.sync += [last_seq.eq(f_seq), last_valid.eq(1)]
                        answer(m, FrameType.ACK, AckCode.ACCEPTED)
                    with m.Else():
                        m.next = "FORWARD"
            with m.State("ANSWER"):
                with m.If(~ctl_pending):
                    m.d.sync += [ctl_pending.eq(1), ctl_type.eq(answer_type), ctl_seq.eq(f_seq),
                                 ctl_code.eq(answer_code)]
                    with m.If(answer_type == FrameType.ACK):
                        m.d.sync += self.frame_ok.eq(1)
                    with m.Else():
                        m.d.sync += self.frame_error.eq(1)
                    m.next = "IDLE"

        with m.If(ctl_take):
            m.d.sync += ctl_pending.eq(0)

        # ---------------- transmit path --------------------------------------
        # host_out words -> byte queue (little endian); SYNC empties it with the core.
        queue_reset = Signal()
        queue = fifo.SyncFIFOBuffered(width=8, depth=max_bytes)
        m.submodules.tx_queue = ResetInserter(queue_reset)(queue)

        # The word is split in place (a stream's payload holds until it is taken):
        # its bytes go into the queue one per cycle, and the word is taken with the last.
        split_byte = Signal(2)
        since_push = Signal(range(self._gather_cycles + 1))
        m.d.comb += [self.host_out.ready.eq((split_byte == 3) & queue.w_rdy),
                     queue.w_data.eq(self.host_out.payload.word_select(split_byte, 8)),
                     queue.w_en.eq(self.host_out.valid)]
        with m.If(self.host_out.valid & queue.w_rdy):
            m.d.sync += [split_byte.eq(split_byte + 1), since_push.eq(0)]
        with m.Elif(since_push != self._gather_cycles):
            m.d.sync += since_push.eq(since_push + 1)
        with m.If(queue_reset):
            m.d.sync += split_byte.eq(0)

        queued_words = Signal(range(self._max_words * 4 + 1))
        m.d.comb += queued_words.eq(queue.level >> 2)
        flush = (queued_words >= self._max_words) | ((queued_words != 0) & (since_push == self._gather_cycles))

        t_type = Signal(8)
        t_seq = Signal(8)
        t_len = Signal(8)
        t_from_queue = Signal()
        t_ctl_byte = Signal(8)
        t_index = Signal(range(max_bytes + 1))
        t_crc = _SerialCRC(m, "tx")
        resp_seq = Signal(8)
        t_byte = Signal(8)
        t_valid = Signal()     # a byte is ready in this state (sent once the CRC engine is idle)

        m.d.comb += [self.tx_data.payload.eq(t_byte), self.tx_data.valid.eq(t_valid & ~t_crc.busy),
                     t_crc.byte.eq(t_byte), queue.r_en.eq(0)]
        sent = self.tx_data.valid & self.tx_data.ready
        with m.FSM(name="tx_fsm"):
            with m.State("IDLE"):
                m.d.comb += tx_idle.eq(1)
                with m.If(sync_request):
                    m.d.comb += [sync_grant.eq(1), queue_reset.eq(1), self.core_reset.eq(1)]
                    m.d.sync += resp_seq.eq(0)
                with m.Elif(ctl_pending):
                    m.d.comb += ctl_take.eq(1)
                    m.d.sync += [t_type.eq(ctl_type), t_seq.eq(ctl_seq), t_len.eq(1), t_from_queue.eq(0),
                                 t_ctl_byte.eq(ctl_code)]
                    m.next = "SOF"
                with m.Elif(flush):
                    m.d.sync += [t_type.eq(FrameType.RESP), t_seq.eq(resp_seq), t_from_queue.eq(1),
                                 t_len.eq(Mux(queued_words >= self._max_words, self._max_words, queued_words)),
                                 resp_seq.eq(resp_seq + 1)]
                    m.next = "SOF"
            with m.State("SOF"):
                m.d.comb += [t_byte.eq(SOF), t_valid.eq(1)]
                with m.If(sent):
                    m.d.comb += t_crc.init.eq(1)
                    m.d.sync += t_index.eq(0)
                    m.next = "TYPE"
            for state, value, nxt in (("TYPE", t_type, "SEQ"), ("SEQ", t_seq, "LEN"), ("LEN", t_len, "PAYLOAD")):
                with m.State(state):
                    m.d.comb += [t_byte.eq(value), t_valid.eq(1)]
                    with m.If(sent):
                        m.d.comb += t_crc.start.eq(1)
                        m.next = nxt
            with m.State("PAYLOAD"):
                with m.If(t_index == (t_len << 2)):
                    m.d.sync += t_index.eq(0)
                    m.next = "CRC"
                with m.Else():
                    # ACK/NAK payload: the code in the low byte, zeros above.
                    m.d.comb += [t_byte.eq(Mux(t_from_queue, queue.r_data, Mux(t_index == 0, t_ctl_byte, 0))),
                                 t_valid.eq(Mux(t_from_queue, queue.r_rdy, 1))]
                    with m.If(sent):
                        m.d.comb += [queue.r_en.eq(t_from_queue), t_crc.start.eq(1)]
                        m.d.sync += t_index.eq(t_index + 1)
            with m.State("CRC"):
                m.d.comb += [t_byte.eq((~t_crc.value).word_select(t_index[:2], 8)), t_valid.eq(1)]
                with m.If(sent):
                    m.d.sync += t_index.eq(t_index + 1)
                    with m.If(t_index == 3):
                        m.next = "IDLE"
        return m


class UARTBridge(wiring.Component):
    """UART pins <-> EIE host word streams: :class:`UARTReceiver`, :class:`UARTTransmitter`
    and :class:`FrameBridge` with their timing derived from the clock.

    Parameters
    ----------
    clk_hz : float
        Frequency of the ``sync`` domain.
    baud : int
        UART bit rate (``clk_hz / baud`` clocks per bit, within 2 %).
    timeout_s : float
        Inter-byte timeout within a frame, in seconds; at least 20 byte times are used.
    max_words : int
        Largest frame payload (:data:`eie.framing.MAX_FRAME_WORDS`).

    Members
    -------
    rx : ``In(1)``, tx : ``Out(1)``
        The UART pins (idle high).
    host_in, host_out, core_reset, frame_ok, frame_error
        As :class:`FrameBridge`.
    """

    rx: In(1, init=1)
    tx: Out(1, init=1)
    host_in: Out(stream.Signature(32))
    host_out: In(stream.Signature(32))
    core_reset: Out(1)
    frame_ok: Out(1)
    frame_error: Out(1)

    def __init__(self, *, clk_hz: float, baud: int, timeout_s: float = 0.01, max_words: int = MAX_FRAME_WORDS):
        self._divisor = baud_divisor(clk_hz, baud)
        byte_cycles = 10 * self._divisor
        self._timeout_cycles = max(20 * byte_cycles, int(timeout_s * clk_hz))
        self._gather_cycles = 2 * byte_cycles
        self._max_words = max_words
        self.clk_hz = clk_hz
        self.baud = baud
        super().__init__()

    @property
    def divisor(self) -> int:
        return self._divisor

    @property
    def timeout_cycles(self) -> int:
        return self._timeout_cycles

    def elaborate(self, platform):
        m = Module()
        m.submodules.receiver = rx = UARTReceiver(self._divisor)
        m.submodules.transmitter = tx = UARTTransmitter(self._divisor)
        m.submodules.frames = bridge = FrameBridge(max_words=self._max_words, timeout_cycles=self._timeout_cycles,
                                                   gather_cycles=self._gather_cycles)
        wiring.connect(m, rx.data, bridge.rx_data)
        wiring.connect(m, bridge.tx_data, tx.data)
        wiring.connect(m, bridge.host_in, wiring.flipped(self.host_in))
        wiring.connect(m, wiring.flipped(self.host_out), bridge.host_out)
        m.d.comb += [
            rx.rx.eq(self.rx),
            self.tx.eq(tx.tx),
            bridge.rx_error.eq(rx.error),
            self.core_reset.eq(bridge.core_reset),
            self.frame_ok.eq(bridge.frame_ok),
            self.frame_error.eq(bridge.frame_error),
        ]
        return m
