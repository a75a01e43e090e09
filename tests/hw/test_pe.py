"""One processing element in the Amaranth simulator against Python models.

Covers the pointer read (even/odd banks, odd and even ``ptr_base``), the Spmat
read (1..8 entries per word, columns straddling words, empty columns), the
arithmetic unit (codebook lookup, row accumulation, back-to-back hits on one
accumulator through the bypass, padding entries), the activation queue under
back-pressure, write-back (bias, rounding, saturation, ReLU, rows past
``out_len``), the accumulator zeroing between layers, io reads and writes, the
counters, and the exact cycle of every multiply against the PE timing contract
(docs/hardware.md, "Timing").
"""

import gc
import random

import pytest
from amaranth.sim import Simulator

from eie.config import EIEConfig
from eie.protocol import Mem
from eie.hw.layouts import divide_by_constant
from eie.hw.pe import ProcessingElement


def _round_sat_relu(total, shift, bits, relu):
    if shift:
        total = (total + (1 << (shift - 1))) >> shift
    hi, lo = (1 << (bits - 1)) - 1, -(1 << (bits - 1))
    y = min(hi, max(lo, total))
    return max(0, y) if relu else y


def _random_column(rng, cfg, rows, same_row=False):
    """Entries ``(v, z)`` of one column slice, rows staying below ``rows``."""
    if same_row:
        return [(rng.randrange(1, cfg.codebook_size), 0)]     # always local row 0
    count = rng.choice([0, 0, 1, 1, 2, 3, 5, 9])
    entries, row = [], -1
    for _ in range(count):
        room = rows - 1 - row - 1                  # zeros still possible before the last row
        if room < 0:
            break
        z = rng.randrange(0, min(cfg.max_zrun, room) + 1)
        v = rng.randrange(0, cfg.codebook_size)      # v = 0: a padding-like entry, value 0
        entries.append((v, z))
        row += z + 1
    return entries


def _pe_timing(push, counts, depth, cbuf, mac_latency):
    """Issue cycle of every entry and the idle cycle, from the PE timing contract."""
    never = -10 ** 9
    last_leave, last_move, last_finish = never, never, never
    finishes = []
    issues = []
    for t, n in zip(push, counts):
        q = max(t, last_move)                 # into P1: off the bus past an empty queue, else popped
        m = max(q + 1, last_leave)            # pointers into P2
        last_move = m
        if n == 0:
            last_leave = m + 1
            continue
        i = len(finishes)
        c = max(m + 1, finishes[i - cbuf] if i >= cbuf else never)
        s = max(c + 1, last_finish + 1)
        f = s + n - 1
        issues.extend(range(s, f + 1))
        finishes.append(f)
        last_leave, last_finish = c, f
    idle = max(last_move + 3, last_finish + mac_latency + 2)      # `idle` is a register
    return issues, idle


def _run_pe(cfg, k, seed, *, same_row=False, layers=2):
    rng = random.Random(seed)
    n = cfg.pes
    E = cfg.entries_per_word
    in_len = min(12, cfg.max_len)     # the column index is col_bits = clog2(pes * act_depth) wide
    rows = cfg.act_depth
    dut = ProcessingElement(cfg, k)

    # Memory image: `layers` layers, entries concatenated after a random offset
    # so that columns straddle Spmat words; pointer bases odd and even.
    offset = rng.randrange(0, 2 * E + 1)
    entries = [(0, 0)] * offset
    layer_info = []
    ptr = []
    ptr_base = rng.choice([1, 3])                   # odd first base
    ptr.extend(rng.randrange(0, 5) for _ in range(ptr_base))   # unused pointers before it
    for l in range(layers):
        cols = [_random_column(rng, cfg, rows, same_row) for _ in range(in_len)]
        base = len(ptr)
        for col in cols:
            ptr.append(len(entries))
            entries.extend(col)
        ptr.append(len(entries))
        codebook = [0] + [rng.randrange(-(1 << (cfg.codebook_bits - 1)), 1 << (cfg.codebook_bits - 1))
                          for _ in range(cfg.codebook_size - 1)]
        out_len = rng.randrange((rows - 1) * n + 1, rows * n + 1)   # last row partly past out_len
        layer_info.append(dict(cols=cols, ptr_base=base, codebook=codebook, slot=l, bias_base=l * rows + 1,
                               bias=[rng.randrange(-3000, 3000) for _ in range(rows)],
                               shift=rng.choice([0, 1, 5, 9]), relu=rng.random() < 0.5, out_len=out_len))
    words = []
    for w in range(0, len(entries), E):
        word = 0
        for s, (v, z) in enumerate(entries[w:w + E]):
            word |= (v | z << cfg.index_bits) << (s * cfg.entry_bits)
        words.append(word)
    assert len(words) <= cfg.spmat_depth and len(ptr) <= cfg.ptr_depth

    state = {}

    async def bench(ctx):
        async def write(mem, addr, value):
            ctx.set(dut.io_mem, mem)
            ctx.set(dut.io_addr, addr)
            ctx.set(dut.io_wdata, value & ((1 << len(dut.io_wdata)) - 1))
            ctx.set(dut.io_we, 1)
            await ctx.tick()
            ctx.set(dut.io_we, 0)

        async def read(mem, addr):
            ctx.set(dut.io_mem, mem)
            ctx.set(dut.io_addr, addr)
            for _ in range(2):              # memory read, then the PE's output register
                await ctx.tick()
            return ctx.get(dut.io_rdata)

        for a, w in enumerate(words):
            await write(Mem.SPMAT, a, w)
        for a, p in enumerate(ptr):
            await write(Mem.PTR, a, p)
        for info in layer_info:
            for v, value in enumerate(info["codebook"]):
                await write(Mem.CODEBOOK, info["slot"] * cfg.codebook_size + v, value)
            for r, b in enumerate(info["bias"]):
                await write(Mem.BIAS, info["bias_base"] + r, b)
        # io reads return what was written (raw bits, zero-extended)
        for a in rng.sample(range(len(ptr)), min(6, len(ptr))):
            assert await read(Mem.PTR, a) == ptr[a]
        for a in rng.sample(range(len(words)), min(4, len(words))):
            assert await read(Mem.SPMAT, a) == words[a]
        info = layer_info[-1]
        assert await read(Mem.CODEBOOK, info["slot"] * cfg.codebook_size + 1) == \
            info["codebook"][1] & ((1 << cfg.codebook_bits) - 1)
        assert await read(Mem.BIAS, info["bias_base"]) == info["bias"][0] & ((1 << cfg.bias_bits) - 1)

        ctx.set(dut.clear, 1)
        await ctx.tick()
        ctx.set(dut.clear, 0)
        ctx.set(dut.running, 1)
        cycle = 0
        busy_total = stall_total = 0
        for l, info in enumerate(layer_info):
            ctx.set(dut.codebook, info["slot"])
            ctx.set(dut.bias_base, info["bias_base"])
            ctx.set(dut.shift, info["shift"])
            ctx.set(dut.relu, info["relu"])
            ctx.set(dut.dst_bank, l % 2)
            # Broadcasts: columns in random order (with repeats), values incl. extremes.
            seq = [(rng.randrange(in_len), rng.choice([rng.randrange(-300, 300) or 1, 32767, -32768]))
                   for _ in range(rng.randrange(12, 30))]
            start = cycle
            push, b = [], 0
            busy_seen = []
            last_busy = ctx.get(dut.busy_count)
            idle_at = None
            while True:
                offer = b < len(seq) and rng.random() < 0.8
                ready = ctx.get(dut.bcast.ready)
                # the stall input counts what the CCU reports (here: an offer into a full queue)
                ctx.set(dut.stall, offer and not ready)
                ctx.set(dut.bcast.valid, offer and ready)
                if offer and ready:
                    ctx.set(dut.bcast.payload.ptr, info["ptr_base"] + seq[b][0])
                    ctx.set(dut.bcast.payload.value, seq[b][1])
                    push.append(cycle - start)
                    b += 1
                if offer and not ready:
                    stall_total += 1
                idle = ctx.get(dut.idle)
                if b == len(seq) and idle and not (offer and ready) and idle_at is None and push and \
                        cycle - start > push[-1]:
                    idle_at = cycle - start
                    break
                await ctx.tick()
                cycle += 1
                busy = ctx.get(dut.busy_count)
                if busy != last_busy:
                    assert busy == last_busy + 1
                    busy_seen.append(cycle - 1 - start)     # the cycle the accumulator was written
                    last_busy = busy
                assert cycle - start < 2000
            ctx.set(dut.bcast.valid, 0)
            ctx.set(dut.stall, 0)
            counts = [len(info["cols"][j]) for j, _ in seq]
            issues, idle_pred = _pe_timing(push, counts, cfg.fifo_depth, cfg.column_buffer_depth, cfg.mac_latency)
            assert [t - 5 for t in busy_seen] == issues
            assert idle_at == idle_pred
            busy_total += sum(counts)

            # Write-back of every local row; the PE writes 0 where r * N + k >= out_len.
            for r in range(rows):
                ctx.set(dut.wb_issue, 1)
                ctx.set(dut.wb_row, r)
                ctx.set(dut.wb_rem, max(0, info["out_len"] - r * n))
                await ctx.tick()
                cycle += 1
            ctx.set(dut.wb_issue, 0)
            for _ in range(cfg.writeback_latency):      # the last row reaches the register file
                await ctx.tick()
                cycle += 1
            acc = [0] * rows
            for j, value in seq:
                row = -1
                for v, z in info["cols"][j]:
                    row += z + 1
                    acc[row] += value * info["codebook"][v]
            expect = []
            for r in range(rows):
                y = _round_sat_relu(acc[r] + info["bias"][r], info["shift"], cfg.act_bits, info["relu"])
                expect.append(y if r * n + k < info["out_len"] else 0)
            state.setdefault("expect", []).append(expect)
        ctx.set(dut.running, 0)
        await ctx.tick()
        for l in range(layers):
            got = []
            for r in range(rows):
                raw = await read(Mem.ACT, (l % 2) * cfg.act_depth + r)
                got.append(raw - (1 << cfg.act_bits) if raw >> (cfg.act_bits - 1) else raw)
            info = layer_info[l]
            assert got == state["expect"][l], (f"layer {l}: shift={info['shift']} relu={info['relu']} "
                                               f"out_len={info['out_len']} got {got} expected {state['expect'][l]}")
        assert await read(Mem.COUNTER, 0) == busy_total
        assert await read(Mem.COUNTER, 1) == stall_total

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()


PE_CASES = [
    # (pes, index, entries_per_word, fifo_depth, column_buffer_depth, wb_read_stages)
    (3, 1, 1, 1, 1, 0),
    (3, 2, 2, 2, 1, 1),
    (3, 0, 3, 8, 4, 0),
    (4, 3, 5, 2, 2, 0),
    (2, 1, 7, 3, 3, 1),
    (1, 0, 8, 8, 2, 0),
    (5, 4, 8, 1, 6, 0),
]


@pytest.mark.parametrize("pes,index,epw,fifo,cbuf,wb", PE_CASES)
def test_pe_against_model(pes, index, epw, fifo, cbuf, wb):
    cfg = EIEConfig(pes=pes, entries_per_word=epw, fifo_depth=fifo, column_buffer_depth=cbuf,
                    zrun_bits=2, act_depth=6, spmat_depth=128, ptr_depth=64, bias_depth=16, max_layers=2,
                    wb_read_stages=wb)
    _run_pe(cfg, index, seed=pes * 100 + epw * 10 + fifo)


@pytest.mark.parametrize("epw,fifo", [(1, 1), (4, 2), (8, 8)])
def test_pe_bypass_back_to_back_hits(epw, fifo):
    """Every entry hits local row 0: each accumulation depends on the previous one,
    one cycle apart, and is only right through the bypass."""
    cfg = EIEConfig(pes=2, entries_per_word=epw, fifo_depth=fifo, column_buffer_depth=2,
                    act_depth=4, spmat_depth=64, ptr_depth=64, bias_depth=16, max_layers=2)
    _run_pe(cfg, 1, seed=epw, same_row=True)


def test_divide_by_constant():
    rng = random.Random(3)
    for bits in (1, 4, 9, 18, 25):
        for d in range(1, 9):
            mult, shift = divide_by_constant(bits, d)
            xs = range(1 << bits) if bits <= 9 else [rng.randrange(1 << bits) for _ in range(2000)] + [(1 << bits) - 1]
            for x in xs:
                assert (x * mult) >> shift == x // d, (bits, d, x)


@pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")
def test_pe_rejects_bad_index():
    with pytest.raises(ValueError, match="index must be in range 0..3"):
        ProcessingElement(EIEConfig(pes=4), 4)
    gc.collect()


def test_shift_right_summarised_exhaustive():
    """The write-back's folded shifter: low bits of x >> s exactly, and any / all of
    the bits above them (sign extension included), for every 10-bit x and 4-bit s."""
    from amaranth.hdl import Module, Signal, signed
    from amaranth.sim import Simulator
    from eie.hw.pe import shift_right_summarised
    W, SB, K = 10, 4, 4
    m = Module()
    x, s = Signal(signed(W)), Signal(SB)
    low, any_up, all_up = shift_right_summarised(x, s, K)
    got = [Signal(K), Signal(), Signal()]
    m.d.comb += [got[0].eq(low), got[1].eq(any_up), got[2].eq(all_up)]
    bad = []

    async def bench(ctx):
        for v in range(-(1 << (W - 1)), 1 << (W - 1)):
            ctx.set(x, v)
            for sh in range(1 << SB):
                ctx.set(s, sh)
                r = v >> sh
                want = (r & ((1 << K) - 1), int((r >> K) != 0), int((r >> K) == -1))
                if tuple(ctx.get(g) for g in got) != want:
                    bad.append((v, sh))

    sim = Simulator(m)
    sim.add_testbench(bench)
    sim.run()
    assert not bad, bad[:5]
