"""Host protocol of the EIE top level: a sans-IO encoder and decoder.

The hardware's host interface is a pair of 32-bit word streams
(``host_in`` / ``host_out``). This module is the one implementation of the host
side; the cocotb testbench, the UART board runtime and the tests all use it.
It does no I/O: callers move the words (or bytes) themselves.

See ``docs/protocol.md`` for the wire format. In short, every command is three
header words, ``WRITE`` is followed by its payload, and every command is
answered by exactly one status word (plus data for ``READ``/``STATUS``/``INFO``).
"""

from __future__ import annotations

import enum
import struct
from collections import deque
from dataclasses import dataclass, field
from typing import Iterable, Sequence


from .config import EIEConfig, LAYER_FIELDS

__all__ = [
    "PROTOCOL_VERSION", "MAGIC", "ALL_PES", "Opcode", "Mem", "Status", "Counter", "PECounter",
    "ProtocolError", "Response", "memory_width", "memory_depth", "memory_signed",
    "memory_readable", "words_per_item", "pack_items", "unpack_items", "pack_layer_entry", "unpack_layer_entry",
    "encode_command", "encode_write", "encode_read", "encode_run", "encode_status",
    "encode_info", "encode_nop", "HostSession", "words_to_bytes", "bytes_to_words",
    "info_words",
]

PROTOCOL_VERSION = 1
MAGIC = 0x31454945        # b"EIE1" little endian
ALL_PES = 0xFFFF          # pe field: every PE (WRITE only)
HEADER_WORDS = 3
STATUS_RUNNING = 1 << 0   # bit of the STATUS data word


class Opcode(enum.IntEnum):
    NOP = 0x00
    WRITE = 0x01
    READ = 0x02
    RUN = 0x03
    STATUS = 0x04
    INFO = 0x05


class Mem(enum.IntEnum):
    SPMAT = 0
    PTR = 1
    CODEBOOK = 2
    BIAS = 3
    ACT = 4
    LAYER = 5
    COUNTER = 6


class Status(enum.IntEnum):
    OK = 0
    ERR_OPCODE = 1     # unknown opcode
    ERR_MEM = 2        # unknown memory id
    ERR_RANGE = 3      # pe, or addr + count, out of range
    ERR_BUSY = 4       # memory access or RUN while a run is in progress
    ERR_READONLY = 5   # WRITE to COUNTER
    ERR_ARG = 6        # RUN with 0 or more than max_layers layers; READ with pe=ALL_PES on a per-PE memory
    ERR_WRITEONLY = 7  # READ of SPMAT/PTR/CODEBOOK/BIAS in a design built with host_readback = 0


class Counter(enum.IntEnum):
    """Global counters (``READ COUNTER`` with ``pe = ALL_PES``); 64-bit items, reset by RUN."""
    CYCLES = 0         # cycles from RUN accepted to run complete
    BROADCASTS = 1     # (column, value) pairs broadcast by the CCU
    BROADCAST_STALLS = 2  # cycles a broadcast was pending but some activation queue was full
    LAYERS = 3         # layers completed


class PECounter(enum.IntEnum):
    """Per-PE counters (``READ COUNTER`` with ``pe = k``); 64-bit items, reset by RUN."""
    BUSY = 0           # cycles the PE's multiplier processed an entry
    STALL = 1          # cycles the PE's activation queue was full while a broadcast was pending


N_COUNTERS = len(Counter)
N_PE_COUNTERS = len(PECounter)
COUNTER_BITS = 64


class ProtocolError(Exception):
    """A response did not match the protocol, or reported an error."""

    def __init__(self, message, status=None):
        super().__init__(message)
        self.status = status


# -- memory geometry (shared with the hardware) ----------------------------

def memory_width(cfg: EIEConfig, mem: Mem) -> int:
    mem = Mem(mem)
    return {
        Mem.SPMAT: cfg.spmat_word_bits,
        Mem.PTR: cfg.ptr_bits,
        Mem.CODEBOOK: cfg.codebook_bits,
        Mem.BIAS: cfg.bias_bits,
        Mem.ACT: cfg.act_bits,
        Mem.LAYER: cfg.layer_entry_bits,
        Mem.COUNTER: COUNTER_BITS,
    }[mem]


def memory_depth(cfg: EIEConfig, mem: Mem, pe: int = 0) -> int:
    """Number of items of ``mem``; for COUNTER it depends on ``pe`` (global or per PE)."""
    mem = Mem(mem)
    if mem == Mem.COUNTER:
        # Per-PE counters left out of the hardware (cfg.pe_counters = 0): depth 0, so
        # a READ of them is ERR_RANGE.
        return N_COUNTERS if pe == ALL_PES else N_PE_COUNTERS * cfg.pe_counters
    return {
        Mem.SPMAT: cfg.spmat_depth,
        Mem.PTR: cfg.ptr_depth,
        Mem.CODEBOOK: cfg.max_layers * cfg.codebook_size,
        Mem.BIAS: cfg.bias_depth,
        Mem.ACT: 2 * cfg.act_depth,
        Mem.LAYER: cfg.max_layers,
    }[mem]


def memory_readable(cfg: EIEConfig, mem: Mem) -> bool:
    """Whether the host can ``READ`` ``mem`` (config ``host_readback = 0`` keeps
    only the memories inference needs readable: ACT, LAYER, COUNTER)."""
    return bool(cfg.host_readback) or Mem(mem) in (Mem.ACT, Mem.LAYER, Mem.COUNTER)


def memory_signed(mem: Mem) -> bool:
    return Mem(mem) in (Mem.CODEBOOK, Mem.BIAS, Mem.ACT)


def words_per_item(cfg: EIEConfig, mem: Mem) -> int:
    return (memory_width(cfg, mem) + 31) // 32


def pack_items(values: Iterable[int], width: int) -> list[int]:
    """Items of ``width`` bits (two's complement if negative) -> 32-bit words, LSB word first."""
    n = (width + 31) // 32
    mask = (1 << width) - 1
    words = []
    for v in values:
        v = int(v)
        lo = -(1 << (width - 1))
        if not lo <= v < (1 << width):
            raise ValueError(f"value {v} does not fit a {width}-bit memory word")
        v &= mask
        for k in range(n):
            words.append((v >> (32 * k)) & 0xFFFFFFFF)
    return words


def unpack_items(words: Sequence[int], width: int, signed: bool) -> list[int]:
    n = (width + 31) // 32
    if len(words) % n:
        raise ProtocolError(f"{len(words)} words are not a whole number of {width}-bit items")
    mask = (1 << width) - 1
    out = []
    for i in range(0, len(words), n):
        v = 0
        for k in range(n):
            v |= int(words[i + k]) << (32 * k)
        v &= mask
        if signed and v >> (width - 1):
            v -= 1 << width
        out.append(v)
    return out


def pack_layer_entry(cfg: EIEConfig, **values) -> int:
    """Pack one layer-table entry (fields of :data:`eie.config.LAYER_FIELDS`, LSB first)."""
    word, pos = 0, 0
    for name, width_of in LAYER_FIELDS:
        width = width_of(cfg)
        v = int(values.pop(name))
        if not 0 <= v < (1 << width):
            raise ValueError(f"layer-table field {name}={v} does not fit {width} bits "
                             f"(config limit {(1 << width) - 1})")
        word |= v << pos
        pos += width
    if values:
        raise ValueError(f"unknown layer-table field(s): {', '.join(sorted(values))}")
    return word


def unpack_layer_entry(cfg: EIEConfig, word: int) -> dict:
    out, pos = {}, 0
    for name, width_of in LAYER_FIELDS:
        width = width_of(cfg)
        out[name] = (word >> pos) & ((1 << width) - 1)
        pos += width
    return out


def info_words(cfg: EIEConfig) -> list[int]:
    """Payload of the INFO response for a design built from ``cfg``."""
    digest = int(cfg.digest, 16)
    return [MAGIC, PROTOCOL_VERSION, digest & 0xFFFFFFFF, digest >> 32]


# -- command encoders ----------------------------------------------------------

def encode_command(opcode: int, mem: int = 0, pe: int = 0, arg0: int = 0, arg1: int = 0) -> list[int]:
    """The three header words of any command (unknown opcodes included, for tests)."""
    for name, v, bits in (("opcode", opcode, 8), ("mem", mem, 8), ("pe", pe, 16),
                          ("addr", arg0, 32), ("count", arg1, 32)):
        if not 0 <= v < (1 << bits):
            raise ValueError(f"command field {name}={v} does not fit {bits} bits")
    return [opcode | (mem << 8) | (pe << 16), arg0, arg1]


def encode_write(cfg: EIEConfig, mem: Mem, pe: int, addr: int, values: Sequence[int]) -> list[int]:
    values = list(values)
    return encode_command(Opcode.WRITE, mem, pe, addr, len(values)) + pack_items(values, memory_width(cfg, mem))


def encode_read(mem: Mem, pe: int, addr: int, count: int) -> list[int]:
    return encode_command(Opcode.READ, mem, pe, addr, count)


def encode_run(layers: int, wait: bool = True) -> list[int]:
    return encode_command(Opcode.RUN, 0, 0, layers, 1 if wait else 0)


def encode_status() -> list[int]:
    return encode_command(Opcode.STATUS)


def encode_info() -> list[int]:
    return encode_command(Opcode.INFO)


def encode_nop() -> list[int]:
    return encode_command(Opcode.NOP)


def words_to_bytes(words: Iterable[int]) -> bytes:
    words = list(words)
    return struct.pack(f"<{len(words)}I", *words)


def bytes_to_words(data: bytes) -> list[int]:
    if len(data) % 4:
        raise ProtocolError(f"{len(data)} bytes are not a whole number of 32-bit words")
    return list(struct.unpack(f"<{len(data) // 4}I", data))


# -- response decoding -------------------------------------------------------

def _opcode(value: int):
    """``Opcode(value)``, or the plain int for an unknown opcode (sent with ``HostSession.raw``)."""
    try:
        return Opcode(value)
    except ValueError:
        return int(value)


def _opcode_name(value: int) -> str:
    op = _opcode(value)
    return op.name if isinstance(op, Opcode) else f"opcode {value:#04x}"


@dataclass
class Response:
    opcode: Opcode
    status: Status
    mem: int = 0
    data: list = field(default_factory=list)   # decoded items (READ), state word (STATUS), info (INFO)
    request: tuple = ()                        # (opcode, mem, pe, addr, count) as sent

    @property
    def ok(self) -> bool:
        return self.status == Status.OK

    def check(self) -> "Response":
        if not self.ok:
            op, mem, pe, addr, count = self.request or (self.opcode, self.mem, 0, 0, 0)
            raise ProtocolError(f"{_opcode_name(op)} mem={mem} pe={pe} addr={addr} count={count} "
                                f"answered {self.status.name}", self.status)
        return self


@dataclass
class _Pending:
    opcode: int
    mem: int
    pe: int
    addr: int
    count: int
    ok_words: int       # payload words after an OK status word
    width: int = 0
    signed: bool = False


class HostSession:
    """Sans-IO host side: queue commands, hand out the words to send, feed back
    the words received, collect :class:`Response` objects in order.

    ::

        host = HostSession(cfg)
        host.write(Mem.ACT, pe=0, addr=0, values=[1, 2, 3])
        host.read(Mem.ACT, pe=0, addr=0, count=3)
        link.send(host.take_outgoing())
        responses = host.receive(link.recv())
    """

    def __init__(self, cfg: EIEConfig):
        self.cfg = cfg
        self._out: list[int] = []
        self._pending: deque[_Pending] = deque()
        self._rx: deque[int] = deque()
        self._current: _Pending | None = None
        self._status: int | None = None
        self._mem: int = 0

    # commands
    def _check_target(self, mem, pe, addr, count, write):
        depth = memory_depth(self.cfg, mem, pe)
        if not write and not memory_readable(self.cfg, mem):
            raise ValueError(f"{Mem(mem).name} cannot be read back from this design (config host_readback=0: "
                             f"only ACT, LAYER and COUNTER); the hardware answers ERR_WRITEONLY")
        if not (pe == ALL_PES or 0 <= pe < self.cfg.pes):
            raise ValueError(f"pe={pe} out of range 0..{self.cfg.pes - 1} (or ALL_PES)")
        if depth == 0 and count > 0:
            raise ValueError(f"{Mem(mem).name} of PE {pe} is not built in this design (config pe_counters=0); "
                             f"the hardware answers ERR_RANGE")
        if addr < 0 or count < 0 or addr + count > depth:
            raise ValueError(f"{Mem(mem).name} addresses {addr}..{addr + count - 1} out of range 0..{depth - 1}")

    def write(self, mem: Mem, pe: int, addr: int, values: Sequence[int], *, check: bool = True):
        values = list(values)
        if check:
            self._check_target(mem, pe, addr, len(values), True)
        self._out += encode_write(self.cfg, mem, pe, addr, values)
        self._pending.append(_Pending(Opcode.WRITE, mem, pe, addr, len(values), 0))

    def read(self, mem: Mem, pe: int, addr: int, count: int, *, check: bool = True):
        if check:
            self._check_target(mem, pe, addr, count, False)
        width = memory_width(self.cfg, mem)
        self._out += encode_read(mem, pe, addr, count)
        self._pending.append(_Pending(Opcode.READ, mem, pe, addr, count,
                                      count * words_per_item(self.cfg, mem), width, memory_signed(mem)))

    def run(self, layers: int, wait: bool = True):
        self._out += encode_run(layers, wait)
        self._pending.append(_Pending(Opcode.RUN, 0, 0, layers, int(wait), 0))

    def status(self):
        self._out += encode_status()
        self._pending.append(_Pending(Opcode.STATUS, 0, 0, 0, 0, 1))

    def info(self):
        self._out += encode_info()
        self._pending.append(_Pending(Opcode.INFO, 0, 0, 0, 0, len(info_words(self.cfg))))

    def nop(self):
        self._out += encode_nop()
        self._pending.append(_Pending(Opcode.NOP, 0, 0, 0, 0, 0))

    def raw(self, words: Sequence[int], expect_opcode: int, ok_words: int = 0):
        """Send arbitrary words (error-path tests); expect one response."""
        self._out += list(words)
        self._pending.append(_Pending(expect_opcode, 0, 0, 0, 0, ok_words))

    # I/O hand-off
    def take_outgoing(self) -> list[int]:
        out, self._out = self._out, []
        return out

    @property
    def outstanding(self) -> int:
        """Commands whose response has not been fully received."""
        return len(self._pending) + (self._current is not None)

    def expected_words(self) -> int:
        """Words still to come if every outstanding command answers OK."""
        n = sum(1 + p.ok_words for p in self._pending)
        if self._current is not None:
            n += self._current.ok_words - len(self._rx)
        return n

    def receive(self, words: Iterable[int]) -> list[Response]:
        self._rx.extend(int(w) for w in words)
        done = []
        while self._rx or self._current is not None:
            if self._current is None:
                if not self._pending:
                    raise ProtocolError(f"unexpected word {self._rx[0]:#010x} with no command outstanding")
                word = self._rx.popleft()
                p = self._pending.popleft()
                status, opcode, mem = word & 0xFF, (word >> 8) & 0xFF, (word >> 16) & 0xFF
                if opcode != p.opcode:
                    raise ProtocolError(f"response opcode {opcode:#x} does not match command "
                                        f"{_opcode_name(p.opcode)} (word {word:#010x})")
                try:
                    status = Status(status)
                except ValueError:
                    raise ProtocolError(f"unknown status {status} in response word {word:#010x}") from None
                if status != Status.OK:
                    p.ok_words = 0
                self._current, self._status, self._mem = p, status, mem
            p = self._current
            if len(self._rx) < p.ok_words:
                break
            payload = [self._rx.popleft() for _ in range(p.ok_words)]
            if p.opcode == Opcode.READ and p.ok_words and p.width:   # raw() READs stay words
                data = unpack_items(payload, p.width, p.signed)
            else:
                data = payload
            done.append(Response(_opcode(p.opcode), self._status, self._mem, data,
                                 (p.opcode, p.mem, p.pe, p.addr, p.count)))
            self._current = None
        return done
