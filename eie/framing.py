"""UART framing of the host protocol: the host side, sans-IO.

On a board the two 32-bit word streams of the EIE top level (``host_in`` /
``host_out``, ``docs/protocol.md``) travel over a UART byte link. The bytes
are grouped into CRC-checked frames so that a corrupted or truncated frame is
detected and answered with an error frame by the board, and never executed.
The board side is gateware (``eie.boards.uart.FrameBridge``); this module is
the one implementation of the host side, used by the board runtime
(``eie run``) and by the cocotb test of the board top. ``docs/boards.md``
describes the format; in short::

    offset  size  field
    0       1     SOF = 0xA5
    1       1     frame type (FrameType)
    2       1     sequence number
    3       1     payload length in 32-bit words (0 .. MAX_FRAME_WORDS)
    4       4*n   payload words, little endian
    4+4n    4     CRC-32 (binascii.crc32: IEEE 802.3, reflected) of bytes 1 .. 3+4n, little endian

Host -> board frames are ``DATA`` (words for ``host_in``) and ``SYNC`` (start
of a session: clears the board's duplicate detection and resets the EIE core's
command decoder). The link is stop-and-wait: every host frame is answered by
an ``ACK`` (payload: one word, :class:`AckCode`) once its words have entered
``host_in``, or by a ``NAK`` (payload: one word, :class:`NakReason`) if it was
rejected; only then is the next frame sent. A frame that gets a NAK or no
answer is sent again with the same sequence number; the board acknowledges a
repeated sequence number without executing it a second time, so a lost ACK
cannot duplicate a command.

Board -> host ``RESP`` frames carry ``host_out`` words with their own sequence
numbers, counting up from 0 after ``SYNC``; a gap means a response frame was
lost and is reported as an error (responses are not retransmitted).

Truncation: the board aborts a frame when the line stays quiet for its
inter-byte timeout in the middle of a frame and answers ``NAK(TIMEOUT)``; a
length above ``MAX_FRAME_WORDS`` is answered ``NAK(LENGTH)`` after the line
went quiet.
"""

from __future__ import annotations

import binascii
import enum
import struct
import time
from dataclasses import dataclass, field
from typing import Protocol, Sequence

__all__ = [
    "SOF", "MAX_FRAME_WORDS", "HEADER_BYTES", "CRC_BYTES", "FrameType", "AckCode", "NakReason",
    "FramingError", "Frame", "BadFrame", "crc32", "encode_frame", "frame_bytes", "FrameDecoder", "HostFraming",
    "BytePort", "FramedLink",
]

SOF = 0xA5
MAX_FRAME_WORDS = 128     # the board buffers one whole frame (512 bytes: one iCE40 EBR) before executing it
HEADER_BYTES = 4
CRC_BYTES = 4


class FrameType(enum.IntEnum):
    DATA = 0x01   # host -> board: words for host_in
    SYNC = 0x02   # host -> board: new session (sequence tracking and core decoder reset)
    RESP = 0x81   # board -> host: words from host_out
    ACK = 0x82    # board -> host: a host frame was accepted (payload: AckCode)
    NAK = 0x83    # board -> host: a host frame was rejected (payload: NakReason)


class AckCode(enum.IntEnum):
    ACCEPTED = 0    # words were passed to the EIE core
    DUPLICATE = 1   # same sequence number as the last accepted frame: not executed again


class NakReason(enum.IntEnum):
    CRC = 1       # CRC mismatch
    TIMEOUT = 2   # line went quiet in the middle of a frame (truncated)
    LENGTH = 3    # length field above MAX_FRAME_WORDS
    TYPE = 4      # unknown frame type
    UART = 5      # UART framing error (stop bit missing) inside the frame


class FramingError(Exception):
    """The byte link misbehaved: a corrupted or missing frame, or no answer."""


@dataclass(frozen=True)
class Frame:
    type: int
    seq: int
    words: tuple = ()

    @property
    def code(self) -> int:
        """First payload word (the AckCode / NakReason of ACK and NAK frames)."""
        return self.words[0] if self.words else -1


def crc32(data: bytes) -> int:
    """CRC of a frame: ``binascii.crc32`` (IEEE 802.3, reflected, init and final XOR 0xFFFFFFFF)."""
    return binascii.crc32(data) & 0xFFFFFFFF


def encode_frame(ftype: int, seq: int, words: Sequence[int] = (), *, max_words: int = MAX_FRAME_WORDS) -> bytes:
    """Bytes of one frame (header, payload, CRC)."""
    words = [int(w) for w in words]
    if not 0 <= ftype <= 0xFF:
        raise ValueError(f"frame type must be in range 0..255, not {ftype!r}")
    if not 0 <= seq <= 0xFF:
        raise ValueError(f"frame sequence number must be in range 0..255, not {seq!r}")
    if len(words) > max_words:
        raise ValueError(f"frame payload of {len(words)} words exceeds the maximum of {max_words}; "
                         f"split it (HostFraming.data_frames does)")
    for w in words:
        if not 0 <= w <= 0xFFFFFFFF:
            raise ValueError(f"frame payload word {w!r} does not fit 32 bits")
    body = bytes([ftype, seq, len(words)]) + struct.pack(f"<{len(words)}I", *words)
    return bytes([SOF]) + body + struct.pack("<I", crc32(body))


def frame_bytes(n_words: int) -> int:
    """Length in bytes of a frame with ``n_words`` payload words."""
    return HEADER_BYTES + 4 * n_words + CRC_BYTES


@dataclass(frozen=True)
class BadFrame:
    """A frame the decoder had to drop (CRC mismatch or over-long), with the reason."""
    reason: str


class FrameDecoder:
    """Byte stream -> :class:`Frame` objects (either direction).

    Bytes outside a frame that are not SOF are skipped and counted in
    ``skipped``. A frame whose CRC does not match, or whose length is above
    ``max_words``, comes out as a :class:`BadFrame` (in stream order; decoding
    goes on after it). :meth:`check_idle` raises :class:`FramingError` when a
    frame was started but not finished.
    """

    def __init__(self, max_words: int = MAX_FRAME_WORDS):
        self.max_words = max_words
        self._buf = bytearray()
        self.skipped = 0

    @property
    def in_frame(self) -> bool:
        return bool(self._buf)

    def feed(self, data: bytes) -> list[Frame]:
        frames = []
        for b in data:
            if not self._buf:
                if b == SOF:
                    self._buf.append(b)
                else:
                    self.skipped += 1
                continue
            self._buf.append(b)
            if len(self._buf) == HEADER_BYTES and self._buf[3] > self.max_words:
                n = self._buf[3]
                self._buf.clear()
                frames.append(BadFrame(f"frame announces {n} payload words, more than the maximum "
                                       f"{self.max_words}"))
                continue
            if len(self._buf) >= HEADER_BYTES and len(self._buf) == frame_bytes(self._buf[3]):
                raw, self._buf = bytes(self._buf), bytearray()
                body, (crc,) = raw[1:-CRC_BYTES], struct.unpack("<I", raw[-CRC_BYTES:])
                if crc32(body) != crc:
                    frames.append(BadFrame(f"corrupted frame (CRC {crc:#010x}, computed {crc32(body):#010x}): "
                                           f"{raw[:16].hex()}{'...' if len(raw) > 16 else ''}"))
                    continue
                n = body[2]
                frames.append(Frame(body[0], body[1], struct.unpack(f"<{n}I", body[3:])))
        return frames

    def check_idle(self) -> None:
        """Call when the line has been quiet for a while: a half-received frame is an error."""
        if self._buf:
            n = len(self._buf)
            self._buf.clear()
            raise FramingError(f"truncated frame: {n} bytes received, then nothing")


class HostFraming:
    """Sans-IO host side of the framed link: what to send, and what was received.

    ::

        fr = HostFraming()
        port.write(fr.sync_frame())            # then wait for the ACK
        for seq, data in fr.data_frames(words):
            port.write(data)                   # stop-and-wait: wait for ACK(seq), resend on NAK
        events = fr.receive(port.read())       # ACK/NAK frames; RESP words pile up in fr.words

    ``receive`` returns the ACK and NAK frames in order and appends the words of
    RESP frames to :attr:`words`; it raises :class:`FramingError` for a
    corrupted frame or a gap in the RESP sequence numbers.
    """

    def __init__(self, max_words: int = MAX_FRAME_WORDS):
        if not isinstance(max_words, int) or not 1 <= max_words <= 255:
            raise ValueError(f"max_words must be in range 1..255, not {max_words!r}")
        self.max_words = max_words
        self.decoder = FrameDecoder(max_words=255)
        self.words: list[int] = []
        self._tx_seq = 0
        self._rx_seq = 0
        self._syncing = False

    def sync_frame(self) -> bytes:
        """A SYNC frame (sequence 0); resets both sequence counters.

        Until its ACK arrives, RESP frames and damaged frames are ignored: they are
        left over from before the session (the board may have been mid-frame)."""
        self._tx_seq = 1
        self._rx_seq = 0
        self._syncing = True
        self.words.clear()
        return encode_frame(FrameType.SYNC, 0, ())

    def data_frames(self, words: Sequence[int]) -> list[tuple[int, bytes]]:
        """Split ``words`` into DATA frames with consecutive sequence numbers."""
        out = []
        words = list(words)
        for i in range(0, len(words), self.max_words):
            seq = self._tx_seq
            self._tx_seq = (self._tx_seq + 1) & 0xFF
            out.append((seq, encode_frame(FrameType.DATA, seq, words[i:i + self.max_words],
                                          max_words=self.max_words)))
        return out

    def receive(self, data: bytes) -> list[Frame]:
        events = []
        for f in self.decoder.feed(data):
            if isinstance(f, BadFrame):
                if self._syncing:
                    continue
                raise FramingError(f"{f.reason}; responses cannot be resent, so the session is lost "
                                   f"(run again; if it repeats, lower the baud rate)")
            if self._syncing and f.type != FrameType.ACK:
                continue
            if f.type == FrameType.RESP:
                if f.seq != self._rx_seq:
                    raise FramingError(f"response frame {f.seq} arrived where {self._rx_seq} was due: "
                                       f"{(f.seq - self._rx_seq) & 0xFF} response frame(s) were lost")
                self._rx_seq = (self._rx_seq + 1) & 0xFF
                self.words.extend(f.words)
            elif f.type in (FrameType.ACK, FrameType.NAK):
                if self._syncing and f.seq == 0:
                    self._syncing = False
                events.append(f)
            else:
                raise FramingError(f"unexpected frame type {f.type:#04x} from the board")
        return events

    def take_words(self, n: int | None = None) -> list[int]:
        """Remove and return the first ``n`` (default: all) received response words."""
        n = len(self.words) if n is None else min(n, len(self.words))
        out, self.words[:] = self.words[:n], self.words[n:]
        return out


class BytePort(Protocol):
    """What :class:`FramedLink` needs from a serial port."""

    def write(self, data: bytes) -> None: ...

    def read(self, timeout: float) -> bytes:
        """Bytes received so far, waiting up to ``timeout`` seconds for the first; ``b''`` if none."""
        ...


@dataclass
class LinkStats:
    frames_sent: int = 0
    retransmissions: int = 0
    naks: dict = field(default_factory=dict)
    duplicates: int = 0


class FramedLink:
    """An :class:`eie.host.Link` over a :class:`BytePort` (pyserial, or a simulated UART).

    Sends words in DATA frames, stop-and-wait, resending a frame up to
    ``retries`` times after a NAK or when no ACK arrives within ``ack_timeout``
    seconds. ``transact(words, expect)`` returns once ``expect`` response words
    have arrived, or fewer when the line stayed quiet for ``response_timeout``
    seconds (a failed command answers fewer words than a successful one; the
    runtime asks for the rest). ``clock`` is the time source (tests pass a
    simulated one).
    """

    def __init__(self, port: BytePort, *, max_words: int = MAX_FRAME_WORDS, ack_timeout: float = 2.0,
                 response_timeout: float = 2.0, retries: int = 3, clock=time.monotonic, log=None):
        self.port = port
        self.framing = HostFraming(max_words)
        self.ack_timeout = ack_timeout
        self.response_timeout = response_timeout
        self.retries = retries
        self.clock = clock
        self.log = log
        self.stats = LinkStats()

    def _poll(self, timeout: float) -> list[Frame]:
        data = self.port.read(timeout)
        if not data:
            return []
        return self.framing.receive(data)

    def _send_reliably(self, seq: int, data: bytes, what: str) -> None:
        for attempt in range(self.retries + 1):
            if attempt:
                self.stats.retransmissions += 1
            self.port.write(data)
            self.stats.frames_sent += 1
            deadline = self.clock() + self.ack_timeout
            answered = None
            while answered is None:
                left = deadline - self.clock()
                if left <= 0:
                    break
                for f in self._poll(left):
                    if f.seq != seq:
                        continue   # a late answer to an earlier attempt
                    answered = f
                    break
            if answered is None:
                if self.log:
                    self.log(f"no answer to {what} frame {seq}; resending")
                continue
            if answered.type == FrameType.ACK:
                if answered.code == AckCode.DUPLICATE:
                    self.stats.duplicates += 1
                return
            reason = NakReason(answered.code).name if answered.code in NakReason._value2member_map_ \
                else str(answered.code)
            self.stats.naks[reason] = self.stats.naks.get(reason, 0) + 1
            if self.log:
                self.log(f"board rejected {what} frame {seq} ({reason}); resending")
        raise FramingError(f"the board did not accept {what} frame {seq} after {self.retries + 1} attempts "
                           f"(NAKs: {self.stats.naks or 'none'}); check the port, the baud rate and that "
                           f"the board runs an eie bitstream")

    def send_raw(self, data: bytes, seq: int, timeout: float | None = None) -> Frame | None:
        """Send ``data`` as it is (a deliberately damaged frame, in tests and diagnostics) and
        return the board's answer for sequence number ``seq`` (ACK or NAK), or None."""
        self.port.write(data)
        deadline = self.clock() + (self.ack_timeout if timeout is None else timeout)
        while (left := deadline - self.clock()) > 0:
            for f in self._poll(left):
                if f.seq == seq:
                    return f
        return None

    def open(self) -> None:
        """Start a session: SYNC, answered by ACK."""
        self.port.read(0)       # drop stale bytes
        self.framing = HostFraming(self.framing.max_words)
        self._send_reliably(0, self.framing.sync_frame(), "SYNC")

    def transact(self, words: list[int], expect: int) -> list[int]:
        for seq, data in self.framing.data_frames(words):
            self._send_reliably(seq, data, "DATA")
        last = self.clock()
        while len(self.framing.words) < expect:
            before = len(self.framing.words)
            self._poll(min(0.05, self.response_timeout))
            now = self.clock()
            if len(self.framing.words) != before:
                last = now
            elif now - last >= self.response_timeout:
                self.framing.decoder.check_idle()
                if not self.framing.words and expect:
                    raise FramingError(f"no response from the board within {self.response_timeout} s "
                                       f"({expect} words expected)")
                break
        return self.framing.take_words(expect)
