"""UART and frame-bridge gateware (boards/uart.py) in the Amaranth simulator.

The bridge is checked against the host side of the framing (eie/framing.py),
which is itself checked against binascii and hand-made frames in
tests/core/test_framing.py.
"""

import binascii
import random
import struct

import pytest
from amaranth.hdl import Module
from amaranth.lib import wiring
from amaranth.sim import Simulator

from eie.boards.top import LoopbackCore
from eie.boards.uart import (CRC32_RESIDUE, FrameBridge, UARTReceiver, UARTTransmitter, _SerialCRC,
                             baud_divisor)
from eie.framing import (AckCode, FrameType, HostFraming, NakReason, encode_frame)


def test_baud_divisor():
    assert baud_divisor(24e6, 1_000_000) == 24
    assert baud_divisor(12e6, 115200) == 104           # 0.16 % off
    with pytest.raises(ValueError, match="too fast"):
        baud_divisor(12e6, 4_000_000)
    with pytest.raises(ValueError, match="off"):
        baud_divisor(10e6, 2_200_000)                  # 4.5 clocks per bit: 10 % off
    with pytest.raises(ValueError, match="positive integer"):
        baud_divisor(12e6, 0)


def test_serial_crc_matches_binascii():
    m = Module()
    crc = _SerialCRC(m, "t")
    rng = random.Random(1)
    payload = bytes(rng.randrange(256) for _ in range(40))

    async def bench(ctx):
        ctx.set(crc.init, 1)
        await ctx.tick()
        ctx.set(crc.init, 0)
        for b in payload:
            ctx.set(crc.byte, b)
            ctx.set(crc.start, 1)
            await ctx.tick()
            ctx.set(crc.start, 0)
            await ctx.tick().until(~crc.busy)
        assert ctx.get(crc.value) ^ 0xFFFFFFFF == binascii.crc32(payload)
        # appending the CRC itself leaves the residue the receiver checks for
        for b in struct.pack("<I", binascii.crc32(payload)):
            ctx.set(crc.byte, b)
            ctx.set(crc.start, 1)
            await ctx.tick()
            ctx.set(crc.start, 0)
            await ctx.tick().until(~crc.busy)
        assert ctx.get(crc.value) == CRC32_RESIDUE

    sim = Simulator(m)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()


@pytest.mark.parametrize("divisor", [4, 5, 7])
def test_uart_loopback(divisor):
    """Transmitter -> receiver: every byte arrives once, in order, without framing errors."""
    m = Module()
    m.submodules.tx = tx = UARTTransmitter(divisor)
    m.submodules.rx = rx = UARTReceiver(divisor)
    m.d.comb += rx.rx.eq(tx.tx)
    rng = random.Random(divisor)
    sent = [0x00, 0xFF, 0x55, 0xAA] + [rng.randrange(256) for _ in range(12)]
    got = []

    async def send(ctx):
        for b in sent:
            ctx.set(tx.data.payload, b)
            ctx.set(tx.data.valid, 1)
            await ctx.tick().until(tx.data.ready)
            ctx.set(tx.data.valid, 0)
            # random idle gaps between bytes
            await ctx.tick().repeat(1 + rng.randrange(3))

    async def receive(ctx):
        while len(got) < len(sent):
            _, _, error, valid, payload = await ctx.tick().sample(rx.error, rx.data.valid, rx.data.payload)
            assert not error
            if valid:
                got.append(payload)

    sim = Simulator(m)
    sim.add_clock(1e-6)
    sim.add_testbench(send, background=True)
    sim.add_testbench(receive)
    sim.run()
    assert got == sent


def test_uart_receiver_framing_error():
    """A byte whose stop bit is low raises ``error`` and is not delivered."""
    d = 4
    rx = UARTReceiver(d)

    async def bench(ctx):
        ctx.set(rx.rx, 1)
        await ctx.tick().repeat(5)
        bits = [0] + [1, 0, 1, 0, 0, 1, 1, 0] + [0]     # stop bit 0
        seen_error = seen_valid = False
        for bit in bits + [1] * 3:
            ctx.set(rx.rx, bit)
            for _ in range(d):
                await ctx.tick()
                seen_error |= bool(ctx.get(rx.error))
                seen_valid |= bool(ctx.get(rx.data.valid))
        for _ in range(3 * d):
            await ctx.tick()
            seen_error |= bool(ctx.get(rx.error))
            seen_valid |= bool(ctx.get(rx.data.valid))
        assert seen_error and not seen_valid

    sim = Simulator(rx)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()


class BridgeBench:
    """FrameBridge + an echo core; bytes go straight into rx_data (the UART is tested above)."""

    TIMEOUT = 200
    BYTE_GAP = 10    # cycles between received bytes (a UART byte takes at least 40)

    def __init__(self, max_words=8, core=None, tx_stall=False):
        self.m = m = Module()
        self.bridge = FrameBridge(max_words=max_words, timeout_cycles=self.TIMEOUT, gather_cycles=20)
        self.core = core or LoopbackCore()
        m.submodules.bridge = self.bridge
        m.submodules.core = self.core
        wiring.connect(m, self.bridge.host_in, self.core.host_in)
        wiring.connect(m, self.core.host_out, self.bridge.host_out)
        self.host = HostFraming(max_words)
        self.tx_stall = tx_stall
        self.rx_bytes = bytearray()
        self.core_words = []        # words that reached host_in (executed)
        self.core_resets = 0

    def run(self, script):
        m, bridge = self.m, self.bridge
        rng = random.Random(7)

        async def monitor(ctx):
            while True:
                _, _, valid, ready, payload, reset = await ctx.tick().sample(
                    bridge.host_in.valid, bridge.host_in.ready, bridge.host_in.payload, bridge.core_reset)
                if valid and ready:
                    self.core_words.append(payload)
                if reset:
                    self.core_resets += 1

        async def sink(ctx):
            while True:
                ready = (rng.randrange(4) != 0) if self.tx_stall else True
                ctx.set(bridge.tx_data.ready, ready)
                _, _, valid, payload = await ctx.tick().sample(bridge.tx_data.valid, bridge.tx_data.payload)
                if ready and valid:
                    self.rx_bytes.append(payload)

        async def send(ctx, data, gap=None):
            for b in data:
                ctx.set(bridge.rx_data.payload, b)
                ctx.set(bridge.rx_data.valid, 1)
                await ctx.tick()
                ctx.set(bridge.rx_data.valid, 0)
                await ctx.tick().repeat(self.BYTE_GAP if gap is None else gap)  # gap >= 1

        async def wait_frames(ctx, n_events, max_cycles=20000):
            events = []
            for _ in range(max_cycles):
                await ctx.tick()
                if self.rx_bytes:
                    events += self.host.receive(bytes(self.rx_bytes))
                    self.rx_bytes.clear()
                if len(events) >= n_events:
                    return events
            raise AssertionError(f"only {len(events)} of {n_events} answers arrived")

        async def wait_words(ctx, n, max_cycles=20000):
            for _ in range(max_cycles):
                if len(self.host.words) >= n:
                    return self.host.take_words(n)
                await ctx.tick()
                if self.rx_bytes:
                    assert self.host.receive(bytes(self.rx_bytes)) == []
                    self.rx_bytes.clear()
            raise AssertionError(f"only {len(self.host.words)} of {n} response words arrived")

        sim = Simulator(m)
        sim.add_clock(1e-6)
        sim.add_testbench(monitor, background=True)
        sim.add_testbench(sink, background=True)

        async def main(ctx):
            await script(ctx, send, wait_frames, wait_words)

        sim.add_testbench(main)
        sim.run()


def _ack(events, seq, code=AckCode.ACCEPTED):
    assert [(f.type, f.seq, f.code) for f in events] == [(FrameType.ACK, seq, code)]


def _nak(events, reason):
    assert [(f.type, f.code) for f in events] == [(FrameType.NAK, reason)]


@pytest.mark.parametrize("tx_stall", [False, True])
def test_bridge_echo_and_errors(tx_stall):
    """Good frames are executed once and answered ACK; every bad frame is answered NAK and
    none of its words reaches the core."""
    tb = BridgeBench(max_words=8, tx_stall=tx_stall)
    rng = random.Random(3)
    words = [rng.randrange(1 << 32) for _ in range(19)]

    async def script(ctx, send, wait_frames, wait_words):
        await send(ctx, tb.host.sync_frame())
        _ack(await wait_frames(ctx, 1), 0)
        assert tb.core_resets == 1
        frames = tb.host.data_frames(words)
        assert [len(f) for _, f in frames] == [8 + 32, 8 + 32, 8 + 12]
        for seq, data in frames:
            await send(ctx, data)
            _ack(await wait_frames(ctx, 1), seq)
        assert await wait_words(ctx, len(words)) == words
        assert tb.core_words == words

        # corrupted payload byte -> NAK(CRC), nothing executed; the resend is accepted
        (seq, good), = tb.host.data_frames([0x11111111, 0x22222222])
        bad = bytearray(good)
        bad[6] ^= 0x40
        await send(ctx, bytes(bad))
        _nak(await wait_frames(ctx, 1), NakReason.CRC)
        assert tb.core_words == words
        # corrupted CRC byte
        bad = bytearray(good)
        bad[-1] ^= 1
        await send(ctx, bytes(bad))
        _nak(await wait_frames(ctx, 1), NakReason.CRC)
        # truncated frame: the line goes quiet -> NAK(TIMEOUT)
        await send(ctx, good[:7])
        _nak(await wait_frames(ctx, 1), NakReason.TIMEOUT)
        assert tb.core_words == words
        await send(ctx, good)
        _ack(await wait_frames(ctx, 1), seq)
        assert await wait_words(ctx, 2) == [0x11111111, 0x22222222]
        # the same frame again (its ACK was lost): acknowledged, not executed twice
        await send(ctx, good)
        _ack(await wait_frames(ctx, 1), seq, AckCode.DUPLICATE)
        assert tb.core_words == words + [0x11111111, 0x22222222]

        # too long (9 > 8 words): NAK(LENGTH) once the line is quiet
        await send(ctx, encode_frame(FrameType.DATA, 77, list(range(9)), max_words=255))
        _nak(await wait_frames(ctx, 1), NakReason.LENGTH)
        # unknown type
        await send(ctx, encode_frame(0x09, 78, [5]))
        _nak(await wait_frames(ctx, 1), NakReason.TYPE)
        # garbage between frames is skipped; an empty DATA frame is fine
        await send(ctx, bytes([0x00, 0x13, 0x37]))
        seq = 200                            # any number but the last accepted one
        data = encode_frame(FrameType.DATA, seq, [])
        await send(ctx, data)
        _ack(await wait_frames(ctx, 1), seq)
        assert tb.core_words == words + [0x11111111, 0x22222222]

        # SYNC again: core reset, response sequence restarts at 0
        await send(ctx, tb.host.sync_frame())
        _ack(await wait_frames(ctx, 1), 0)
        assert tb.core_resets == 2
        (seq, data), = tb.host.data_frames([0xCAFEF00D])
        await send(ctx, data)
        _ack(await wait_frames(ctx, 1), seq)
        assert await wait_words(ctx, 1) == [0xCAFEF00D]

    tb.run(script)


def test_bridge_response_frames_are_bounded():
    """A burst of more response words than one frame holds leaves in several RESP frames."""
    tb = BridgeBench(max_words=4)
    words = list(range(1, 11))

    async def script(ctx, send, wait_frames, wait_words):
        await send(ctx, tb.host.sync_frame())
        _ack(await wait_frames(ctx, 1), 0)
        for seq, data in tb.host.data_frames(words):
            await send(ctx, data)
            _ack(await wait_frames(ctx, 1), seq)
        assert await wait_words(ctx, len(words)) == words
        assert tb.host._rx_seq >= 3          # at least ceil(10 / 4) RESP frames

    tb.run(script)
