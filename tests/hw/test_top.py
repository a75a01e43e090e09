"""EIETop (hw/top.py) against the host protocol (eie/protocol.py) in the Amaranth simulator.

The host side is the real ``HostSession``: commands are encoded by it and the
hardware's answers decoded by it, so both halves of docs/protocol.md are tested
against each other. The array behind the decoder is ``FakeArray``, a small
behavioural model of the ``EIEArray`` port contract (docs/hardware.md) that
also flags any io access the contract forbids (out of range, while running).
Both streams get random idle cycles (valid low on host_in, ready low on
host_out), and every cycle checks the stream rules on host_out.
"""

from __future__ import annotations

import random
from collections import deque
from pathlib import Path

import pytest
from amaranth.hdl import Array, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out
from amaranth.sim import Simulator

import eie.hw
from eie.config import EIEConfig
from eie.hw.pe import pe_rdata_width, pe_wdata_width
from eie.hw.top import EIETop
from eie.protocol import (ALL_PES, MAGIC, PROTOCOL_VERSION, Counter, HostSession, Mem, Opcode, PECounter,
                          Status, encode_command, info_words, memory_depth, memory_signed, memory_width,
                          words_per_item)

# Small, but with 3-word (SPMAT) and 2-word (BIAS, LAYER, COUNTER) items.
CFG = EIEConfig(pes=3, fifo_depth=2, column_buffer_depth=2, index_bits=5, zrun_bits=7, spmat_depth=16,
                entries_per_word=8, ptr_depth=64, act_depth=16, bias_depth=64, max_layers=4)
PER_PE = (Mem.SPMAT, Mem.PTR, Mem.CODEBOOK, Mem.BIAS, Mem.ACT)
RUN_CYCLES_PER_LAYER = 100  # fake run length; long enough to send commands while it runs


def test_config_has_multiword_items():
    assert words_per_item(CFG, Mem.SPMAT) == 3
    assert words_per_item(CFG, Mem.BIAS) == 2
    assert words_per_item(CFG, Mem.LAYER) == 2
    assert words_per_item(CFG, Mem.COUNTER) == 2


def fake_io_width(cfg):
    return max(cfg.spmat_word_bits, cfg.ptr_bits, cfg.codebook_bits, cfg.bias_bits, cfg.act_bits,
               cfg.layer_entry_bits, 64)


# -- behavioural stand-in for EIEArray -------------------------------------------

def fake_counters(cfg, layers):
    """What FakeArray's counters hold after a run of ``layers`` layers (independent Python model)."""
    t = layers * RUN_CYCLES_PER_LAYER
    mask = (1 << 64) - 1
    glob = {Counter.CYCLES: t, Counter.BROADCASTS: (t * 0x1_0000_0003) & mask,
            Counter.BROADCAST_STALLS: t * 5, Counter.LAYERS: layers}
    per_pe = [{PECounter.BUSY: (t * (((k + 1) << 32) | 7)) & mask, PECounter.STALL: t * (k + 2)}
              for k in range(cfg.pes)]
    return [glob[c] for c in Counter], [[p[c] for c in PECounter] for p in per_pe]


class FakeArray(wiring.Component):
    """Memories behind the io port and a run of ``RUN_CYCLES_PER_LAYER * num_layers`` cycles.

    Counters advance by fixed amounts per running cycle (``fake_counters``), with
    increments that carry into the upper 32 bits. ``violation`` goes high (sticky)
    on any io access the EIEArray contract lets the array assume never happens.
    """

    def __init__(self, cfg):
        self.cfg = cfg
        width = fake_io_width(cfg)
        super().__init__({
            "start": In(1), "num_layers": In(range(cfg.max_layers + 1)),
            "running": Out(1), "done": Out(1),
            "io_mem": In(3), "io_pe": In(16), "io_addr": In(32), "io_wdata": In(width),
            "io_we": In(1), "io_re": In(1), "io_rdata": Out(width),
            "violation": Out(1),
        })

    def elaborate(self, platform):
        cfg, m = self.cfg, Module()
        sources = []    # (mem, pe, read data) candidates for io_rdata
        for mm in Mem:
            if mm == Mem.COUNTER:
                continue
            pes = range(cfg.pes) if mm in PER_PE else [None]
            for k in pes:
                mem = Memory(shape=memory_width(cfg, mm), depth=memory_depth(cfg, mm), init=[])
                m.submodules[f"{mm.name.lower()}{'' if k is None else k}"] = mem
                wp, rp = mem.write_port(), mem.read_port()
                hit = self.io_mem == mm
                if k is not None:
                    hit &= (self.io_pe == k) | (self.io_pe == ALL_PES)
                m.d.comb += [wp.addr.eq(self.io_addr), wp.data.eq(self.io_wdata), wp.en.eq(self.io_we & hit),
                             rp.addr.eq(self.io_addr), rp.en.eq(self.io_re & hit)]
                sources.append((mm, k, rp.data))

        # Run sequencer and counters.
        running, done = Signal(), Signal()
        remaining = Signal(range(cfg.max_layers * RUN_CYCLES_PER_LAYER + 1))
        layers = Signal(range(cfg.max_layers + 1))
        glob = [Signal(64, name=f"c_{c.name.lower()}") for c in Counter]
        per_pe = [[Signal(64, name=f"pe{k}_{c.name.lower()}") for c in PECounter] for k in range(cfg.pes)]
        m.d.comb += [self.running.eq(running), self.done.eq(done)]
        m.d.sync += done.eq(0)
        with m.If(self.start & ~running):
            m.d.sync += [running.eq(1), layers.eq(self.num_layers),
                         remaining.eq(self.num_layers * RUN_CYCLES_PER_LAYER - 1)]
            m.d.sync += [c.eq(0) for c in glob] + [c.eq(0) for p in per_pe for c in p]
        with m.If(running):
            m.d.sync += [remaining.eq(remaining - 1),
                         glob[Counter.CYCLES].eq(glob[Counter.CYCLES] + 1),
                         glob[Counter.BROADCASTS].eq(glob[Counter.BROADCASTS] + 0x1_0000_0003),
                         glob[Counter.BROADCAST_STALLS].eq(glob[Counter.BROADCAST_STALLS] + 5)]
            for k, p in enumerate(per_pe):
                m.d.sync += [p[PECounter.BUSY].eq(p[PECounter.BUSY] + (((k + 1) << 32) | 7)),
                             p[PECounter.STALL].eq(p[PECounter.STALL] + k + 2)]
            with m.If(remaining == 0):
                m.d.sync += [running.eq(0), done.eq(1), glob[Counter.LAYERS].eq(layers)]

        # Counter reads: a snapshot taken at io_re.
        counter_data = Signal(64)
        is_counter = self.io_mem == Mem.COUNTER
        with m.If(self.io_re & is_counter):
            with m.If(self.io_pe == ALL_PES):
                m.d.sync += counter_data.eq(Array(glob)[self.io_addr[:2]])
            with m.Else():
                m.d.sync += counter_data.eq(Array(Array(p) for p in per_pe)[self.io_pe][self.io_addr[:1]])

        # io_rdata follows the memory/PE of the last io_re.
        sel_mem, sel_pe = Signal(3), Signal(16)
        with m.If(self.io_re):
            m.d.sync += [sel_mem.eq(self.io_mem), sel_pe.eq(self.io_pe)]
        rdata = counter_data
        for mm, k, data in sources:
            hit = sel_mem == mm
            if k is not None:
                hit &= sel_pe == k
            rdata = Mux(hit, data, rdata)
        m.d.comb += self.io_rdata.eq(rdata)

        # Contract checks: one access at a time, valid target, io idle while running (counters excepted).
        access = self.io_we | self.io_re
        depth = Signal(32)
        with m.Switch(self.io_mem):
            for mm in Mem:
                with m.Case(mm):
                    if mm == Mem.COUNTER:
                        m.d.comb += depth.eq(Mux(self.io_pe == ALL_PES, len(Counter), len(PECounter)))
                    else:
                        m.d.comb += depth.eq(memory_depth(cfg, mm))
            with m.Default():
                m.d.comb += depth.eq(0)
        pe_ok = Mux(self.io_mem == Mem.LAYER, 1, (self.io_pe < cfg.pes) | (self.io_pe == ALL_PES))
        bad = (self.io_we & self.io_re) | (self.io_addr >= depth) | ~pe_ok
        bad |= self.io_we & is_counter
        bad |= self.io_re & (self.io_pe == ALL_PES) & (self.io_mem < Mem.LAYER)
        bad |= running & ~is_counter
        with m.If(access & bad):
            m.d.sync += self.violation.eq(1)
        return m


# -- simulation harness ------------------------------------------------------------

class Bench:
    """Drives EIETop from a HostSession, one word per cycle at most, with random idles."""

    def __init__(self, ctx, dut, host, rng, idle_in, idle_out):
        self.ctx, self.dut, self.host, self.rng = ctx, dut, host, rng
        self.idle_in, self.idle_out = idle_in, idle_out
        self.cycle = 0
        self.accepted_at = []       # cycle of every host_in word accepted
        self.answered_at = []       # cycle of every host_out word received
        self.input_stalls = 0       # cycles host_in was valid but not ready

    async def tick(self, n=1):
        for _ in range(n):
            await self.ctx.tick()
            self.cycle += 1

    async def transact(self, limit=20000):
        """Send everything queued on the host session; return the responses."""
        ctx, dut, host = self.ctx, self.dut, self.host
        words = deque(host.take_outgoing())
        responses = []
        held = None     # (payload) of a host_out word offered but not taken
        start = self.cycle
        while words or host.outstanding:
            assert self.cycle - start < limit, (f"no progress after {limit} cycles: {len(words)} words unsent, "
                                                f"{host.outstanding} responses outstanding")
            send = bool(words) and self.rng.random() >= self.idle_in
            ctx.set(dut.host_in.valid, send)
            if send:
                ctx.set(dut.host_in.payload, words[0])
            # host_out.valid and payload must not depend on host_out.ready.
            ctx.set(dut.host_out.ready, 0)
            valid0, payload0 = ctx.get(dut.host_out.valid), ctx.get(dut.host_out.payload)
            ready = self.rng.random() >= self.idle_out
            ctx.set(dut.host_out.ready, ready)
            valid, payload = ctx.get(dut.host_out.valid), ctx.get(dut.host_out.payload)
            assert (valid, payload) == (valid0, payload0 if valid0 else payload), "host_out depends on ready"
            if held is not None:
                assert valid and payload == held, "host_out dropped or changed a word before it was taken"
            in_ready = ctx.get(dut.host_in.ready)
            if send and not in_ready:
                self.input_stalls += 1
            await self.tick()
            if send and in_ready:
                words.popleft()
                self.accepted_at.append(self.cycle)
            held = payload if valid and not ready else None
            if valid and ready:
                self.answered_at.append(self.cycle)
                responses += host.receive([payload])
        ctx.set(dut.host_in.valid, 0)
        ctx.set(dut.host_out.ready, 0)
        violation = getattr(self.dut.array_probe, "violation", None)   # FakeArray only
        assert violation is None or not ctx.get(violation), "EIETop made an io access the array contract forbids"
        return responses


def simulate(script, *, cfg=CFG, seed=0, idle_in=0.3, idle_out=0.3, array=FakeArray):
    """Run ``async script(bench)`` against a fresh EIETop; returns the bench."""
    arrays = []

    def make_array(c):
        arrays.append(array(c))
        return arrays[-1]

    dut = EIETop(cfg, array=make_array)
    sim = Simulator(dut)
    sim.add_clock(1e-6)
    result = {}

    async def testbench(ctx):
        dut.array_probe = arrays[0]
        bench = Bench(ctx, dut, HostSession(cfg), random.Random(seed), idle_in, idle_out)
        await bench.tick(2)
        await script(bench)
        result["bench"] = bench

    sim.add_testbench(testbench)
    sim.run()
    return result["bench"]


def array_class(name):
    """``FakeArray`` or the real ``EIEArray`` (skipped while hw/array.py does not exist)."""
    if name == "fake":
        return FakeArray
    if not (Path(eie.hw.__file__).parent / "array.py").exists():
        pytest.skip("hw/array.py (EIEArray) is not written yet")
    from eie.hw.array import EIEArray
    return EIEArray


ARRAYS = pytest.mark.parametrize("array", ["fake", "real"])


def random_items(rng, cfg, mem, n):
    width = memory_width(cfg, mem)
    if memory_signed(mem):
        return [rng.randrange(-(1 << (width - 1)), 1 << (width - 1)) for _ in range(n)]
    return [rng.randrange(0, 1 << width) for _ in range(n)]


def statuses(responses):
    return [r.status for r in responses]


# -- tests -----------------------------------------------------------------------

@ARRAYS
def test_info_nop_status(array):
    async def script(b):
        b.host.info()
        b.host.nop()
        b.host.status()
        info, nop, status = await b.transact()
        assert info.ok and info.data == info_words(CFG)
        assert info.data[:2] == [MAGIC, PROTOCOL_VERSION]
        assert info.data[2] | info.data[3] << 32 == int(CFG.digest, 16)
        assert nop.ok and nop.data == [] and nop.opcode == Opcode.NOP
        assert status.ok and status.data == [0]
        assert not b.ctx.get(b.dut.error)
    simulate(script, array=array_class(array))


@pytest.mark.parametrize("array, seed, lean, stages", [("fake", 1, False, 0), ("fake", 2, False, 0),
                                                       ("real", 3, False, 0), ("real", 4, True, 0),
                                                       ("real", 5, False, 1), ("real", 6, True, 2)])
def test_round_trip_every_memory(array, seed, lean, stages):
    """Random items into every memory of every PE (first and last addresses included), read back.
    ``lean``: the iCE40 area options (codebook and biases in one memory, no per-PE counters);
    ``stages``: ``io_read_stages`` registers on the read-back path."""
    cfg = CFG.replace(pe_counters=0, merge_codebook_bias=1, hold_pointer_read=1) if lean else CFG
    cfg = cfg.replace(io_read_stages=stages)
    rng = random.Random(seed)
    expected = {}

    async def script(b):
        for mem in PER_PE:
            depth = memory_depth(cfg, mem)
            for k in range(cfg.pes):
                n = rng.randint(1, min(depth, 5))
                for addr in (0, depth - n, rng.randrange(depth - n + 1)):
                    values = random_items(rng, cfg, mem, n)
                    b.host.write(mem, k, addr, values)
                    for i, v in enumerate(values):
                        expected[mem, k, addr + i] = v
        depth = memory_depth(cfg, Mem.LAYER)
        for pe, addr in ((0, 0), (ALL_PES, depth - 2)):
            values = random_items(rng, cfg, Mem.LAYER, 2)
            b.host.write(Mem.LAYER, pe, addr, values)
            for i, v in enumerate(values):
                expected[Mem.LAYER, 0, addr + i] = v
        writes = await b.transact()
        assert all(r.ok for r in writes), statuses(writes)
        keys = sorted(expected)
        for key in keys:
            mem, k, addr = key
            b.host.read(mem, ALL_PES if mem == Mem.LAYER and k == 0 and addr % 2 else k, addr, 1)
        reads = await b.transact()
        assert all(r.ok for r in reads), statuses(reads)
        assert [r.data for r in reads] == [[expected[key]] for key in keys]
        # One multi-item read per memory of PE 1 returns the same items in order.
        for mem in PER_PE:
            b.host.read(mem, 1, 0, memory_depth(cfg, mem))
        for r, mem in zip(await b.transact(), PER_PE):
            assert r.ok
            for a, v in enumerate(r.data):
                if (mem, 1, a) in expected:
                    assert v == expected[mem, 1, a], (mem.name, a)
    simulate(script, cfg=cfg, array=array_class(array), seed=seed)


def test_per_pe_counters_left_out_answer_err_range():
    """With pe_counters=0 a READ of a PE's counters is ERR_RANGE (depth 0); the global ones still read."""
    cfg = CFG.replace(pe_counters=0)
    assert memory_depth(cfg, Mem.COUNTER, 1) == 0 and memory_depth(cfg, Mem.COUNTER, ALL_PES) == len(Counter)

    with pytest.raises(ValueError, match="not built.*pe_counters=0"):
        HostSession(cfg).read(Mem.COUNTER, 1, 0, 1)

    async def script(b):
        b.host.read(Mem.COUNTER, 1, 0, 1, check=False)
        b.host.read(Mem.COUNTER, 0, 0, len(PECounter), check=False)
        b.host.read(Mem.COUNTER, ALL_PES, 0, len(Counter))
        b.host.read(Mem.COUNTER, 2, 0, 0)                 # an empty read is in range
        one, both, glob, empty = await b.transact()
        assert one.status == both.status == Status.ERR_RANGE
        assert glob.ok and glob.data == [0] * len(Counter) and empty.ok and empty.data == []
    simulate(script, cfg=cfg, array=array_class("real"))


def test_host_readback_0_answers_err_writeonly():
    """With host_readback=0 the PE memories other than ACT are write-only: every READ of
    them is ERR_WRITEONLY (before the PE-index checks), writes still land (a run uses them),
    and ACT, LAYER and COUNTER read back as usual."""
    cfg = CFG.replace(host_readback=0, pe_counters=0)
    assert pe_rdata_width(cfg) == cfg.act_bits < pe_rdata_width(cfg.replace(host_readback=1))
    assert pe_wdata_width(cfg) == pe_wdata_width(cfg.replace(host_readback=1))     # every memory is written
    for mem in (Mem.SPMAT, Mem.PTR, Mem.CODEBOOK, Mem.BIAS):
        with pytest.raises(ValueError, match=f"{mem.name} cannot be read back.*host_readback=0.*ERR_WRITEONLY"):
            HostSession(cfg).read(mem, 0, 0, 1)
    rng = random.Random(7)
    acts = random_items(rng, cfg, Mem.ACT, 4)
    layer = random_items(rng, cfg, Mem.LAYER, 1)

    async def script(b):
        for mem in PER_PE:
            b.host.write(mem, 1, 0, random_items(rng, cfg, mem, 2))
        b.host.write(Mem.ACT, 2, 5, acts)
        b.host.write(Mem.LAYER, 0, 1, layer)
        writes = await b.transact()
        assert all(r.ok for r in writes), statuses(writes)
        for mem in (Mem.SPMAT, Mem.PTR, Mem.CODEBOOK, Mem.BIAS):
            b.host.read(mem, 1, 0, 1, check=False)
            b.host.read(mem, ALL_PES, 0, 1, check=False)      # ERR_ARG if it were readable
            b.host.read(mem, cfg.pes, 0, 0, check=False)      # ERR_RANGE if it were readable
        b.host.read(Mem.ACT, 2, 5, len(acts))
        b.host.read(Mem.LAYER, 0, 1, 1)
        b.host.read(Mem.COUNTER, ALL_PES, 0, len(Counter))
        *refused, act, lay, cnt = await b.transact()
        assert [r.status for r in refused] == [Status.ERR_WRITEONLY] * 12
        assert act.ok and act.data == acts and lay.ok and lay.data == layer and cnt.ok
    simulate(script, cfg=cfg, array=array_class("real"))


@ARRAYS
def test_broadcast_write_reaches_every_pe(array):
    rng = random.Random(5)

    async def script(b):
        values = {mem: random_items(rng, CFG, mem, 3) for mem in PER_PE}
        for mem in PER_PE:
            b.host.write(mem, ALL_PES, 1, values[mem])
        # A later single-PE write overrides one PE only.
        b.host.write(Mem.ACT, 2, 2, [-7])
        assert all(r.ok for r in await b.transact())
        for mem in PER_PE:
            for k in range(CFG.pes):
                b.host.read(mem, k, 1, 3)
        reads = await b.transact()
        got = iter(reads)
        for mem in PER_PE:
            for k in range(CFG.pes):
                want = list(values[mem])
                if mem == Mem.ACT and k == 2:
                    want[1] = -7
                assert next(got).data == want, (mem.name, k)
    simulate(script, array=array_class(array))


@ARRAYS
def test_write_streams_one_word_per_cycle(array):
    """An SPMAT payload with host_in always valid is accepted without a single stall; its
    read-back stalls only for the array's read latency between items."""
    n = memory_depth(CFG, Mem.SPMAT)
    rng = random.Random(3)
    values = random_items(rng, CFG, Mem.SPMAT, n)

    async def script(b):
        b.host.write(Mem.SPMAT, 0, 0, values)
        (r,) = await b.transact()
        assert r.ok
        words = 3 + n * words_per_item(CFG, Mem.SPMAT)
        assert len(b.accepted_at) == words
        assert b.accepted_at[-1] - b.accepted_at[0] == words - 1, "payload stalled"
        assert b.input_stalls == 0
        assert b.answered_at[-1] - b.accepted_at[-1] <= 3     # decode + status word + fifo
        b.host.read(Mem.SPMAT, 0, 0, n)
        (r,) = await b.transact()
        assert r.data == values
        # READ data leaves one word per cycle within an item; between items the
        # decoder waits for the array's read latency (3 cycles, registered at every stage).
        w = words_per_item(CFG, Mem.SPMAT)
        latency = getattr(b.dut.array_probe, "read_latency", 1)
        tail = b.answered_at[-n * w:]
        assert tail[-1] - tail[0] == n * w - 1 + (n - 1) * (latency - 1), "read data stalled"
    simulate(script, array=array_class(array), idle_in=0.0, idle_out=0.0)


@ARRAYS
def test_error_codes_and_stream_stays_in_step(array):
    depth_act = memory_depth(CFG, Mem.ACT)
    cases = [
        # (description, words, expected opcode in answer, expected status)
        ("unknown opcode", encode_command(0x06, 3, 1, 5, 7), 0x06, Status.ERR_OPCODE),
        ("unknown opcode 0xff", encode_command(0xFF, 0, 0, 0xFFFFFFFF, 0xFFFFFFFF), 0xFF, Status.ERR_OPCODE),
        ("read unknown mem", encode_command(Opcode.READ, 7, 0, 0, 1), Opcode.READ, Status.ERR_MEM),
        ("write unknown mem, 1 word/item", encode_command(Opcode.WRITE, 0xFF, 0, 0, 2) + [11, 12],
         Opcode.WRITE, Status.ERR_MEM),
        ("read pe out of range", encode_command(Opcode.READ, Mem.ACT, CFG.pes, 0, 1), Opcode.READ,
         Status.ERR_RANGE),
        ("write pe out of range", encode_command(Opcode.WRITE, Mem.BIAS, 0xFFFE, 0, 1) + [1, 2],
         Opcode.WRITE, Status.ERR_RANGE),
        ("layer pe 1", encode_command(Opcode.READ, Mem.LAYER, 1, 0, 1), Opcode.READ, Status.ERR_RANGE),
        ("counter pe out of range", encode_command(Opcode.READ, Mem.COUNTER, CFG.pes, 0, 1), Opcode.READ,
         Status.ERR_RANGE),
        ("broadcast read", encode_command(Opcode.READ, Mem.ACT, ALL_PES, 0, 1), Opcode.READ, Status.ERR_ARG),
        ("addr+count beyond depth", encode_command(Opcode.READ, Mem.ACT, 0, depth_act - 1, 2), Opcode.READ,
         Status.ERR_RANGE),
        ("addr beyond depth, count 0", encode_command(Opcode.READ, Mem.ACT, 0, depth_act + 1, 0), Opcode.READ,
         Status.ERR_RANGE),
        ("addr+count wraps 32 bits", encode_command(Opcode.READ, Mem.ACT, 0, 0xFFFFFFFF, 2), Opcode.READ,
         Status.ERR_RANGE),
        ("huge count", encode_command(Opcode.READ, Mem.PTR, 0, 1, 0xFFFFFFFF), Opcode.READ, Status.ERR_RANGE),
        # In range in their low bits, out of range only through a high bit (any bit 8..31 of either field).
        ("addr high bit", encode_command(Opcode.READ, Mem.ACT, 0, 1 << 8, 1), Opcode.READ, Status.ERR_RANGE),
        ("addr bit 31", encode_command(Opcode.READ, Mem.ACT, 0, 1 << 31, 0), Opcode.READ, Status.ERR_RANGE),
        ("count high bit", encode_command(Opcode.WRITE, Mem.LAYER, 0, 0, 1 << 9) + [0] * (2 << 9),
         Opcode.WRITE, Status.ERR_RANGE),
        ("write beyond depth consumes payload",
         encode_command(Opcode.WRITE, Mem.ACT, 1, depth_act - 1, 2) + [0x1234, 0x5678],
         Opcode.WRITE, Status.ERR_RANGE),
        ("global counter 4 items", encode_command(Opcode.READ, Mem.COUNTER, ALL_PES, 1, len(Counter)),
         Opcode.READ, Status.ERR_RANGE),
        ("per-PE counter 2 items", encode_command(Opcode.READ, Mem.COUNTER, 0, 1, 2), Opcode.READ,
         Status.ERR_RANGE),
        ("write counter", encode_command(Opcode.WRITE, Mem.COUNTER, ALL_PES, 0, 2) + [1, 2, 3, 4],
         Opcode.WRITE, Status.ERR_READONLY),
        ("run 0 layers", encode_command(Opcode.RUN, 0, 0, 0, 1), Opcode.RUN, Status.ERR_ARG),
        ("run too many layers", encode_command(Opcode.RUN, 0, 0, CFG.max_layers + 1, 1), Opcode.RUN,
         Status.ERR_ARG),
        ("run 2**32-1 layers", encode_command(Opcode.RUN, 0, 0, 0xFFFFFFFF, 0), Opcode.RUN, Status.ERR_ARG),
        ("run 2**8 + 1 layers", encode_command(Opcode.RUN, 0, 0, (1 << 8) + 1, 0), Opcode.RUN, Status.ERR_ARG),
    ]

    async def script(b):
        b.host.write(Mem.ACT, 1, 0, list(range(depth_act)))
        assert (await b.transact())[0].ok
        for what, words, opcode, status in cases:
            b.host.raw(words, opcode)
            b.host.info()   # answered correctly only if the bad command consumed exactly its words
        responses = await b.transact()
        for i, (what, words, opcode, status) in enumerate(cases):
            bad, info = responses[2 * i], responses[2 * i + 1]
            assert (bad.opcode, bad.status) == (opcode, status), what
            assert bad.mem == ((words[0] >> 8) & 0xFF if opcode in (Opcode.READ, Opcode.WRITE) else 0), what
            assert info.ok and info.data == info_words(CFG), what
        # The failed write changed nothing.
        b.host.read(Mem.ACT, 1, 0, depth_act)
        (r,) = await b.transact()
        assert r.data == list(range(depth_act))
        # `error` is the last command's outcome.
        b.host.raw(encode_command(0x77), 0x77)
        await b.transact()
        assert b.ctx.get(b.dut.error)
        b.host.nop()
        await b.transact()
        assert not b.ctx.get(b.dut.error)
    simulate(script, array=array_class(array))


def test_run_busy_status_and_counters():
    layers = 2

    async def script(b):
        b.host.run(layers, wait=False)
        b.host.status()
        b.host.write(Mem.ACT, 0, 0, [1, 2])             # ERR_BUSY, payload still consumed
        b.host.read(Mem.SPMAT, 1, 0, 1)
        b.host.write(Mem.LAYER, ALL_PES, 0, [5])
        b.host.read(Mem.LAYER, 0, 0, 1)
        b.host.write(Mem.CODEBOOK, ALL_PES, 0, [3])
        b.host.run(1, wait=True)
        b.host.read(Mem.COUNTER, ALL_PES, 0, len(Counter))   # allowed while running
        b.host.info()
        b.host.nop()
        b.host.status()
        r = await b.transact()
        assert statuses(r) == [Status.OK, Status.OK] + [Status.ERR_BUSY] * 6 + [Status.OK] * 4
        assert r[1].data == [1] and r[-1].data == [1], "STATUS must report the run in progress"
        assert b.ctx.get(b.dut.running)
        # Poll STATUS until the run is over.
        for _ in range(200):
            b.host.status()
            (s,) = await b.transact()
            if s.data == [0]:
                break
        else:
            pytest.fail("run never completed")
        assert not b.ctx.get(b.dut.running)
        glob, per_pe = fake_counters(CFG, layers)
        b.host.read(Mem.COUNTER, ALL_PES, 0, len(Counter))
        for k in range(CFG.pes):
            b.host.read(Mem.COUNTER, k, 0, len(PECounter))
        r = await b.transact()
        assert r[0].data == glob
        assert [x.data for x in r[1:]] == per_pe
        # A waiting RUN answers only when the run is complete.
        b.host.run(3, wait=True)
        b.host.status()
        run, status = await b.transact()
        assert run.ok and status.data == [0]
        assert b.answered_at[-2] - b.accepted_at[-4] >= 3 * RUN_CYCLES_PER_LAYER   # the RUN's answer waited for the run
        b.host.read(Mem.COUNTER, ALL_PES, Counter.CYCLES, 1)
        (c,) = await b.transact()
        assert c.data == [fake_counters(CFG, 3)[0][Counter.CYCLES]]
    simulate(script)


@ARRAYS
def test_random_command_soup_never_hangs(array):
    """Random header words (valid and not) interleaved with INFO: every command is answered, in step."""
    rng = random.Random(11)

    async def script(b):
        expect = []
        for _ in range(40):
            op = rng.choice([Opcode.NOP, Opcode.READ, Opcode.WRITE, Opcode.STATUS, Opcode.INFO,
                             rng.randrange(6, 256)])
            mem = rng.choice([rng.randrange(8), rng.randrange(256)])
            pe = rng.choice([0, 1, CFG.pes, ALL_PES, rng.randrange(1 << 16)])
            addr = rng.choice([0, 3, 15, rng.randrange(1 << 32)])
            count = rng.choice([0, 1, 2, 5])
            words = encode_command(op, mem, pe, addr, count)
            if op == Opcode.WRITE:
                wpi = words_per_item(CFG, mem) if mem < len(Mem) else 1
                words += [rng.randrange(1 << 32) for _ in range(count * wpi)]
            ok_words = {Opcode.READ: count * (words_per_item(CFG, mem) if mem < len(Mem) else 1),
                        Opcode.STATUS: 1, Opcode.INFO: 4}.get(op, 0)
            b.host.raw(words, op, ok_words)
            b.host.info()
            expect.append(op)
        r = await b.transact()
        assert [x.opcode for x in r[::2]] == expect
        assert all(x.ok and x.data == info_words(CFG) for x in r[1::2])
    simulate(script, array=array_class(array), seed=4)


def test_network_runs_through_the_protocol_on_the_real_array():
    """Load a 2-layer network with HostSession, RUN, poll STATUS, read the output: bit-exact vs the golden model."""
    array_cls = array_class("real")
    np = pytest.importorskip("numpy")
    from eie.golden.encode import build_image
    from eie.golden.reference import forward_all
    from eie.golden.synthetic import random_layer
    from eie.host import distribute, gather, image_commands

    cfg = CFG.replace(entries_per_word=5)     # network images hold Spmat words of at most 64 bits
    rng = np.random.default_rng(7)
    first, x = random_layer(rng, 10, 9, 0.4, 0.7, cfg, relu=True)
    second, _ = random_layer(rng, 9, 7, 0.5, 1.0, cfg, relu=False, signed_input=True)
    layers = [first, second]
    image = build_image(layers, cfg)
    want = forward_all(layers, x, cfg)[-1]

    async def read_output(b):
        bank = len(layers) % 2
        n = [len(range(k, second.out_len, cfg.pes)) for k in range(cfg.pes)]
        for k in range(cfg.pes):
            b.host.read(Mem.ACT, k, bank * cfg.act_depth, n[k])
        return gather(cfg, [r.check().data for r in await b.transact()], second.out_len)

    async def script(b):
        image_commands(b.host, image)
        for k, s in enumerate(distribute(cfg, x)):
            b.host.write(Mem.ACT, k, 0, s)
        assert all(r.ok for r in await b.transact())
        b.host.run(len(layers), wait=False)
        b.host.status()
        b.host.read(Mem.COUNTER, ALL_PES, 0, len(Counter))     # served while running
        b.host.read(Mem.ACT, 0, 0, 1)                           # not served while running
        run, status, counters, busy = await b.transact()
        assert run.ok and status.data == [1] and counters.ok and busy.status == Status.ERR_BUSY
        seen = [counters.data[Counter.CYCLES]]       # the cycle counter as read while running
        for _ in range(500):
            b.host.read(Mem.COUNTER, ALL_PES, Counter.CYCLES, 1)
            b.host.status()
            c, s = await b.transact()
            seen.append(c.data[0])
            if s.data == [0]:
                break
        else:
            pytest.fail("the run never completed")
        assert list(await read_output(b)) == list(want)
        b.host.read(Mem.COUNTER, ALL_PES, 0, len(Counter))
        (c,) = await b.transact()
        cycles, broadcasts, _, done_layers = c.data
        assert done_layers == len(layers) and cycles > 0
        assert seen == sorted(seen) and seen[-1] <= cycles and len(set(seen)) > 1, seen
        acts = forward_all(layers, x, cfg)      # [input, output of layer 0, output of layer 1]
        assert broadcasts == np.count_nonzero(acts[0]) + np.count_nonzero(acts[1])
        # Again with RUN waiting for the end: same result, answered no earlier than the run's end.
        # (The output of a 2-layer run overwrote the input in bank 0: write it again.)
        for k, s in enumerate(distribute(cfg, x)):
            b.host.write(Mem.ACT, k, 0, s)
        b.host.run(len(layers), wait=True)
        r = (await b.transact())[-1]
        assert r.ok and r.opcode == Opcode.RUN
        waited = b.answered_at[-1] - b.accepted_at[-1]
        assert cycles <= waited <= cycles + 6
        assert list(await read_output(b)) == list(want)
        b.host.read(Mem.COUNTER, ALL_PES, Counter.CYCLES, 1)
        (c,) = await b.transact()
        assert c.data == [cycles]
    simulate(script, cfg=cfg, array=array_cls, idle_out=0.0)


def test_network_baked_into_the_memories_runs_without_loading():
    """EIETop(cfg, image=...) boots with the network in its memories: write only the input, RUN, read the output.

    Bit-exact against the golden reference; the baked memories read back as the image through the protocol.
    """
    np = pytest.importorskip("numpy")
    from eie.golden.encode import build_image
    from eie.golden.reference import forward_all
    from eie.golden.synthetic import random_layer
    from eie.host import distribute, gather

    cfg = CFG.replace(entries_per_word=5)     # network images hold Spmat words of at most 64 bits
    rng = np.random.default_rng(11)
    first, x = random_layer(rng, 11, 8, 0.5, 0.8, cfg, relu=True)
    second, _ = random_layer(rng, 8, 6, 0.6, 1.0, cfg, relu=False, signed_input=True)
    layers = [first, second]
    image = build_image(layers, cfg)
    want = forward_all(layers, x, cfg)[-1]
    assert np.any(want != 0)

    dut = EIETop(cfg, image=image)
    dut.array_probe = None
    sim = Simulator(dut)
    sim.add_clock(1e-6)
    done = []

    async def testbench(ctx):
        b = Bench(ctx, dut, HostSession(cfg), random.Random(5), 0.2, 0.2)
        await b.tick(2)
        for k, s in enumerate(distribute(cfg, x)):
            b.host.write(Mem.ACT, k, 0, s)
        b.host.run(len(layers), wait=True)
        assert all(r.ok for r in await b.transact())
        bank = len(layers) % 2
        for k in range(cfg.pes):
            b.host.read(Mem.ACT, k, bank * cfg.act_depth, len(range(k, second.out_len, cfg.pes)))
        got = gather(cfg, [r.check().data for r in await b.transact()], second.out_len)
        assert list(got) == list(want)
        # The baked contents read back through the io port as the image holds them.
        for k in range(cfg.pes):
            b.host.read(Mem.SPMAT, k, 0, image.spmat.shape[1])
            b.host.read(Mem.PTR, k, 0, image.ptr.shape[1])
            b.host.read(Mem.BIAS, k, 0, image.bias.shape[1])
        b.host.read(Mem.CODEBOOK, 0, 0, image.codebook.size)
        b.host.read(Mem.LAYER, ALL_PES, 0, len(layers))
        r = [x.check().data for x in await b.transact()]
        for k in range(cfg.pes):
            assert r[3 * k] == image.spmat[k].tolist()
            assert r[3 * k + 1] == image.ptr[k].tolist()
            assert r[3 * k + 2] == image.bias[k].tolist()
        assert r[-2] == image.codebook.reshape(-1).tolist()
        assert r[-1] == [layer.packed(cfg) for layer in image.layers]
        done.append(True)

    sim.add_testbench(testbench)
    sim.run()
    assert done


def test_image_must_match_the_config():
    np = pytest.importorskip("numpy")
    from eie.golden.encode import build_image
    from eie.golden.synthetic import random_layer

    cfg = CFG.replace(entries_per_word=5)
    layer, _ = random_layer(np.random.default_rng(1), 6, 6, 0.5, 1.0, cfg, relu=True)
    image = build_image([layer], cfg)
    with pytest.raises(ValueError, match="re-encode"):
        EIETop(cfg.replace(bias_depth=32), image=image)
    with pytest.raises(TypeError, match="NetworkImage"):
        EIETop(cfg, image={"spmat": []})
    with pytest.raises(ValueError, match="custom array"):
        EIETop(cfg, image=image, array=FakeArray)
