"""The sans-IO host protocol (eie/protocol.py) against docs/protocol.md.

``DeviceModel`` is an independent, word-level Python reading of
docs/protocol.md (the hardware's side, written from the document, not from
eie/protocol.py); HostSession must interoperate with it, whatever way the
words are chunked. The same HostSession is tested against the RTL in
tests/hw/test_top.py.
"""

import random

import pytest

from eie.config import EIEConfig, LAYER_FIELDS
from eie.protocol import (ALL_PES, MAGIC, PROTOCOL_VERSION, Counter, HostSession, Mem, Opcode, PECounter,
                          ProtocolError, Status, bytes_to_words, encode_command, encode_read, encode_run,
                          info_words, memory_depth, memory_width, pack_items, pack_layer_entry,
                          unpack_items, unpack_layer_entry, words_per_item, words_to_bytes)

CFG = EIEConfig(pes=3, index_bits=5, zrun_bits=7, spmat_depth=16, entries_per_word=8, ptr_depth=64,
                act_depth=16, bias_depth=64, max_layers=4)


# -- an independent device model, written from docs/protocol.md -------------------

WIDTHS = {  # docs/protocol.md "Memories" table
    0: CFG.entries_per_word * (CFG.index_bits + CFG.zrun_bits), 1: CFG.ptr_bits, 2: CFG.codebook_bits,
    3: CFG.bias_bits, 4: CFG.act_bits, 5: CFG.layer_entry_bits, 6: 64,
}
DEPTHS = {0: CFG.spmat_depth, 1: CFG.ptr_depth, 2: CFG.max_layers * 2 ** CFG.index_bits, 3: CFG.bias_depth,
          4: 2 * CFG.act_depth, 5: CFG.max_layers}


class DeviceModel:
    """Consumes command words, produces response words, as docs/protocol.md says."""

    def __init__(self, cfg, run_cycles=5):
        self.cfg = cfg
        self.mems = {}
        self.running = 0          # "cycles" left of the current run (advanced by tick())
        self.run_cycles = run_cycles
        self.counters = [0, 0, 0, 0]
        self.pe_counters = [[0, 0] for _ in range(cfg.pes)]
        self.out = []
        self._buf = []

    def tick(self):
        if self.running:
            self.running -= 1
            self.counters[0] += 1

    def feed(self, words):
        for w in words:
            self._buf.append(w)
            self._step()

    def _step(self):
        if len(self._buf) < 3:
            return
        w0, addr, count = self._buf[:3]
        op, mem, pe = w0 & 0xFF, (w0 >> 8) & 0xFF, w0 >> 16
        wpi = (WIDTHS[mem] + 31) // 32 if mem in WIDTHS else 1
        if op == 1 and len(self._buf) < 3 + count * wpi:
            return                       # wait for the whole payload
        payload = self._buf[3:3 + count * wpi] if op == 1 else []
        del self._buf[:3 + len(payload)]
        status, data = self._execute(op, mem, pe, addr, count, wpi, payload)
        self.out.append(status | op << 8 | ((mem << 16) if op in (1, 2) else 0))
        if status == 0:
            self.out += data

    def _execute(self, op, mem, pe, addr, count, wpi, payload):
        n = self.cfg.pes
        if op > 5:
            return 1, []
        if op == 0:
            return 0, []
        if op == 5:
            d = int(self.cfg.digest, 16)
            return 0, [0x31454945, 1, d & 0xFFFFFFFF, d >> 32]
        if op == 4:
            return 0, [1 if self.running else 0]
        if op == 3:
            if not 1 <= addr <= self.cfg.max_layers:
                return 6, []
            if self.running:
                return 4, []
            self.counters = [0, 0, 0, 0]
            self.running = self.run_cycles * addr
            if count & 1:               # answer when complete
                while self.running:
                    self.tick()
                self.counters[3] = addr
            return 0, []
        if mem not in WIDTHS:
            return 2, []
        if op == 1 and mem == 6:
            return 5, []
        if mem == 6:
            if not (pe == 0xFFFF or pe < n):
                return 3, []
            depth = 4 if pe == 0xFFFF else 2
        elif mem == 5:
            if pe not in (0, 0xFFFF):
                return 3, []
            depth = DEPTHS[mem]
        else:
            if pe == 0xFFFF and op == 2:
                return 6, []
            if not (pe < n or pe == 0xFFFF):
                return 3, []
            depth = DEPTHS[mem]
        if addr + count > depth:
            return 3, []
        if self.running and mem != 6:
            return 4, []
        mask = (1 << WIDTHS[mem]) - 1
        targets = [0] if mem == 5 else (range(n) if pe == 0xFFFF else [pe])
        if op == 1:
            for i in range(count):
                v = sum(payload[i * wpi + k] << (32 * k) for k in range(wpi)) & mask
                for t in targets:
                    self.mems[mem, t, addr + i] = v
            return 0, []
        data = []
        for i in range(count):
            if mem == 6:
                v = (self.counters if pe == 0xFFFF else self.pe_counters[pe])[addr + i]
            else:
                v = self.mems.get((mem, targets[0], addr + i), 0)
            data += [(v >> (32 * k)) & 0xFFFFFFFF for k in range(wpi)]
        return 0, data


def exchange(host, device, rng=None):
    """Move words both ways, in random chunks, until every command is answered."""
    rng = rng or random.Random(0)
    words = host.take_outgoing()
    responses = []
    while words:
        k = rng.randint(1, 7)
        device.feed(words[:k])
        words = words[k:]
    out = device.out
    device.out = []
    while out:
        k = rng.randint(0, 5)
        responses += host.receive(out[:k])
        out = out[k:]
    assert host.outstanding == 0
    return responses


def random_values(rng, mem, n):
    width = memory_width(CFG, mem)
    if mem in (Mem.CODEBOOK, Mem.BIAS, Mem.ACT):
        return [rng.randrange(-(1 << (width - 1)), 1 << (width - 1)) for _ in range(n)]
    return [rng.randrange(1 << width) for _ in range(n)]


# -- geometry ------------------------------------------------------------------

def test_geometry_matches_the_document():
    for mem in Mem:
        assert memory_width(CFG, mem) == WIDTHS[mem]
        assert words_per_item(CFG, mem) == -(-WIDTHS[mem] // 32)
        if mem != Mem.COUNTER:
            assert memory_depth(CFG, mem) == DEPTHS[mem]
    assert memory_depth(CFG, Mem.COUNTER, ALL_PES) == len(Counter) == 4
    assert memory_depth(CFG, Mem.COUNTER, 0) == len(PECounter) == 2
    assert words_per_item(CFG, Mem.SPMAT) == 3 and words_per_item(CFG, Mem.LAYER) == 2


def test_info_words():
    d = int(CFG.digest, 16)
    assert info_words(CFG) == [MAGIC, PROTOCOL_VERSION, d & 0xFFFFFFFF, d >> 32]
    assert words_to_bytes([MAGIC])[:4] == b"EIE1"


# -- encoding --------------------------------------------------------------------

def test_command_header_layout():
    assert encode_command(0x02, 0x04, 0x0102, 7, 9) == [0x01020402, 7, 9]
    assert encode_read(Mem.BIAS, 2, 10, 3) == [0x00020302, 10, 3]
    assert encode_run(3, wait=True) == [0x03, 3, 1]
    assert encode_run(3, wait=False) == [0x03, 3, 0]
    for bad in (dict(opcode=256), dict(opcode=0, mem=256), dict(opcode=0, pe=1 << 16),
                dict(opcode=0, arg0=1 << 32), dict(opcode=0, arg1=-1)):
        with pytest.raises(ValueError, match="does not fit"):
            encode_command(**bad)


@pytest.mark.parametrize("width", [1, 8, 31, 32, 33, 38, 64, 96, 128])
def test_pack_unpack_round_trip(width):
    rng = random.Random(width)
    signed = [rng.randrange(-(1 << (width - 1)), 1 << (width - 1)) for _ in range(20)]
    words = pack_items(signed, width)
    assert len(words) == 20 * ((width + 31) // 32)
    assert all(0 <= w < 1 << 32 for w in words)
    assert unpack_items(words, width, signed=True) == signed
    # LSB word first, two's complement in `width` bits.
    first = signed[0] & ((1 << width) - 1)
    assert sum(w << (32 * k) for k, w in enumerate(words[:(width + 31) // 32])) == first
    unsigned = [rng.randrange(1 << width) for _ in range(5)]
    assert unpack_items(pack_items(unsigned, width), width, signed=False) == unsigned


def test_pack_rejects_values_that_do_not_fit():
    with pytest.raises(ValueError, match="does not fit a 8-bit"):
        pack_items([256], 8)
    with pytest.raises(ValueError, match="does not fit"):
        pack_items([-129], 8)
    with pytest.raises(ProtocolError, match="whole number"):
        unpack_items([1, 2, 3], 64, signed=False)


def test_unpack_ignores_unused_upper_bits():
    assert unpack_items([0xFFFF_FF05], 8, signed=False) == [5]
    assert unpack_items([0x0000_0180], 8, signed=True) == [-128]


def test_layer_entry_round_trip_and_limits():
    rng = random.Random(1)
    widths = [(name, w(CFG)) for name, w in LAYER_FIELDS]
    assert sum(w for _, w in widths) == CFG.layer_entry_bits
    for _ in range(20):
        values = {name: rng.randrange(1 << w) for name, w in widths}
        word = pack_layer_entry(CFG, **values)
        assert unpack_layer_entry(CFG, word) == values
        pos = 0
        for name, w in widths:         # LSB first, in LAYER_FIELDS order
            assert (word >> pos) & ((1 << w) - 1) == values[name]
            pos += w
    base = {name: 0 for name, _ in widths}
    with pytest.raises(ValueError, match="in_len"):
        pack_layer_entry(CFG, **{**base, "in_len": 1 << CFG.len_bits})
    with pytest.raises(ValueError, match="unknown layer-table field"):
        pack_layer_entry(CFG, **base, bogus=1)


def test_bytes_words():
    words = [0, 1, 0xFFFFFFFF, MAGIC]
    assert bytes_to_words(words_to_bytes(words)) == words
    with pytest.raises(ProtocolError, match="whole number of 32-bit words"):
        bytes_to_words(b"\x00" * 5)


# -- sessions against the device model -----------------------------------------------

@pytest.mark.parametrize("seed", range(3))
def test_session_round_trip_every_memory(seed):
    rng = random.Random(seed)
    host, dev = HostSession(CFG), DeviceModel(CFG)
    expected = []
    for mem in (Mem.SPMAT, Mem.PTR, Mem.CODEBOOK, Mem.BIAS, Mem.ACT, Mem.LAYER):
        pe = 0 if mem == Mem.LAYER else rng.randrange(CFG.pes)
        n = rng.randint(1, 4)
        addr = rng.randrange(memory_depth(CFG, mem) - n + 1)
        values = random_values(rng, mem, n)
        host.write(mem, pe, addr, values)
        host.read(mem, pe, addr, n)
        expected.append(values)
    responses = exchange(host, dev, rng)
    assert all(r.ok for r in responses)
    assert [r.data for r in responses[1::2]] == expected
    assert [r.opcode for r in responses] == [Opcode.WRITE, Opcode.READ] * 6
    assert [r.mem for r in responses[::2]] == [0, 1, 2, 3, 4, 5]


def test_session_broadcast_write():
    host, dev = HostSession(CFG), DeviceModel(CFG)
    host.write(Mem.CODEBOOK, ALL_PES, 2, [0, -5, 7])
    for k in range(CFG.pes):
        host.read(Mem.CODEBOOK, k, 2, 3)
    r = exchange(host, dev)
    assert [x.data for x in r[1:]] == [[0, -5, 7]] * CFG.pes


def test_session_errors_and_check():
    host, dev = HostSession(CFG), DeviceModel(CFG)
    host.read(Mem.ACT, ALL_PES, 0, 1, check=True)             # allowed by the host, ERR_ARG on the device
    host.read(Mem.ACT, 0, memory_depth(CFG, Mem.ACT) - 1, 2, check=False)
    host.write(Mem.COUNTER, ALL_PES, 0, [1], check=False)
    host.run(0)
    host.run(CFG.max_layers + 1)
    host.raw(encode_command(0x09), 0x09)
    host.raw(encode_command(Opcode.READ, 9, 0, 0, 1), Opcode.READ)
    host.info()
    r = exchange(host, dev)
    assert [x.status for x in r] == [Status.ERR_ARG, Status.ERR_RANGE, Status.ERR_READONLY, Status.ERR_ARG,
                                     Status.ERR_ARG, Status.ERR_OPCODE, Status.ERR_MEM, Status.OK]
    assert r[5].opcode == 0x09 and r[6].mem == 9
    assert r[-1].data == info_words(CFG)
    with pytest.raises(ProtocolError, match="READ mem=4 pe=0 .* answered ERR_RANGE") as e:
        r[1].check()
    assert e.value.status == Status.ERR_RANGE
    with pytest.raises(ProtocolError, match="opcode 0x09"):
        r[5].check()
    assert r[-1].check() is r[-1]


def test_session_checks_targets_before_sending():
    host = HostSession(CFG)
    with pytest.raises(ValueError, match="pe=3 out of range 0..2"):
        host.write(Mem.ACT, CFG.pes, 0, [1])
    with pytest.raises(ValueError, match="out of range"):
        host.read(Mem.ACT, 0, memory_depth(CFG, Mem.ACT), 1)
    with pytest.raises(ValueError, match="does not fit"):
        host.write(Mem.ACT, 0, 0, [1 << CFG.act_bits])
    assert host.take_outgoing() == []


def test_session_run_status_and_counters():
    host, dev = HostSession(CFG), DeviceModel(CFG, run_cycles=10)
    host.run(2, wait=False)
    host.status()
    host.write(Mem.ACT, 0, 0, [1])
    host.read(Mem.COUNTER, ALL_PES, 0, len(Counter))
    r = exchange(host, dev)
    assert [x.status for x in r] == [Status.OK, Status.OK, Status.ERR_BUSY, Status.OK]
    assert r[1].data == [1]
    for _ in range(20):
        dev.tick()
    host.status()
    host.run(3, wait=True)
    host.read(Mem.COUNTER, ALL_PES, 0, len(Counter))
    r = exchange(host, dev)
    assert r[0].data == [0]
    assert r[2].data == [30, 0, 0, 3]


def test_session_expected_words_and_partial_delivery():
    host, dev = HostSession(CFG), DeviceModel(CFG)
    host.read(Mem.SPMAT, 1, 0, 2)
    host.info()
    assert host.expected_words() == 1 + 2 * 3 + 1 + 4
    dev.feed(host.take_outgoing())
    out = dev.out
    assert host.receive(out[:3]) == []
    assert host.outstanding == 2
    assert host.expected_words() == 4 + 5
    (read,) = host.receive(out[3:7])
    assert read.data == [0, 0]
    assert host.expected_words() == 5
    (info,) = host.receive(out[7:])
    assert info.data == info_words(CFG) and host.outstanding == 0


def test_session_rejects_bad_responses():
    host = HostSession(CFG)
    with pytest.raises(ProtocolError, match="no command outstanding"):
        host.receive([0])
    host = HostSession(CFG)            # a session that saw a protocol error is out of step
    host.nop()
    with pytest.raises(ProtocolError, match="does not match command NOP"):
        host.receive([Opcode.INFO << 8])
    host = HostSession(CFG)
    host.nop()
    with pytest.raises(ProtocolError, match="unknown status 99"):
        host.receive([99])
