"""The CCU with behavioural PEs: layer sequencing, scan, broadcast handshake, counters.

The testbench plays the N PEs: register files answering the scan read of
every cycle one cycle later, ``fifo_depth + 2`` column slots each (the activation
queue, the pointer stages P1 and P2) emptied at random (returning the CCU's
credits one cycle later) and random idle signals.
It checks, per layer of a run, that exactly the non-zero inputs ``j < in_len``
are broadcast in increasing order, never into a full queue and in every cycle
in which every PE holds a credit, that write-back visits local rows ``0 .. ceil(out_len/N)-1``
with ``wb_rem = out_len - r * N`` and the layer's fields, that layer ``k`` reads
bank ``k % 2`` and writes bank ``(k + 1) % 2``, and that the counters match
what the testbench saw. With always-ready PEs the broadcasts of a layer
follow each other cycle after cycle across row boundaries.
"""

import random

import pytest
from amaranth.sim import Simulator

from eie.config import EIEConfig
from eie.protocol import Counter, Mem, pack_layer_entry
from eie.hw.ccu import CCU, Phase


def _run_ccu(cfg, layers, rf, *, p_pop=0.7, p_idle=0.6, seed=0):
    """Run ``layers`` (dicts of layer-table fields) on register files ``rf``
    (per PE, ``2 * act_depth`` values; written by nobody: the CCU only scans).
    Returns what the testbench observed."""
    n = cfg.pes
    rng = random.Random(seed)
    dut = CCU(cfg)
    seen = {"bcast": [], "wb": [], "cycles": 0, "stalls": 0, "scan_banks": []}

    async def bench(ctx):
        for l, fields in enumerate(layers):
            ctx.set(dut.io_mem, Mem.LAYER)
            ctx.set(dut.io_addr, l)
            ctx.set(dut.io_wdata, pack_layer_entry(cfg, **fields))
            ctx.set(dut.io_we, 1)
            await ctx.tick()
        ctx.set(dut.io_we, 0)
        # io read of the layer table: the entry of the address two cycles earlier
        ctx.set(dut.io_addr, 0)
        await ctx.tick()
        ctx.set(dut.io_addr, 1)
        await ctx.tick()
        assert ctx.get(dut.io_rdata) == pack_layer_entry(cfg, **layers[0])

        # The background clear of the accumulators after power-up is over
        # (the host's memory loads take longer in practice).
        for _ in range(cfg.act_depth):
            await ctx.tick()
        assert not ctx.get(dut.acc_clear)
        ctx.set(dut.num_layers, len(layers))
        ctx.set(dut.start, 1)
        assert not ctx.get(dut.clear)
        await ctx.tick()
        assert ctx.get(dut.clear)           # registered: the cycle after the start
        ctx.set(dut.start, 0)
        data = [0] * n
        layer = -1
        depth = cfg.fifo_depth + 2          # a column waits in the queue, P1 or P2 of the PE
        level = [0] * n                     # columns in each PE's queue, P1 and P2
        returning = [False] * n             # left P2 last cycle: the credit comes back now
        prev_pending, prev_ready = False, [True] * n
        while True:
            if ctx.get(dut.done):
                assert not ctx.get(dut.running)
                break
            assert ctx.get(dut.running)
            seen["cycles"] += 1
            phase = ctx.get(dut.phase)
            if phase == Phase.LOAD:
                layer += 1
                seen["bcast"].append([])
                seen["wb"].append([])
            pops = [level[k] > 0 and rng.random() < p_pop for k in range(n)]
            # the broadcast register: decided last cycle, pushed into the queues now
            valid = ctx.get(dut.bcast_valid)
            # what the CCU's credit counters must hold now
            ready = [depth - level[k] - returning[k] - valid > 0 for k in range(n)]
            idle = [rng.random() < p_idle for _ in range(n)]
            ctx.set(dut.pe_credit, sum(b << k for k, b in enumerate(returning)))
            ctx.set(dut.pe_idle, sum(b << k for k, b in enumerate(idle)))
            for k in range(n):
                ctx.set(dut.scan_data[k], data[k])
            ctx.set(dut.scan_nz, sum((v != 0) << k for k, v in enumerate(data)))
            pending = ctx.get(dut.bcast_pending)
            # sent exactly when last cycle's broadcast was pending and every PE held a credit
            assert valid == (prev_pending and all(prev_ready)), "broadcast sent without credits, or not sent"
            # each PE's stall flag: last cycle a broadcast waited for its credit
            assert ctx.get(dut.pe_stall) == sum((prev_pending and not r) << k for k, r in enumerate(prev_ready))
            if valid:
                assert max(level) < depth
                # broadcasts carry the pointer index ptr_base + j
                j = ctx.get(dut.bcast.ptr) - layers[layer]["ptr_base"]
                seen["bcast"][layer].append((seen["cycles"], j, ctx.get(dut.bcast.value)))
            level = [level[k] + valid - pops[k] for k in range(n)]
            returning = pops
            prev_pending, prev_ready = pending, ready
            seen["stalls"] += bool(pending and not all(ready))
            if ctx.get(dut.wb_issue):
                fields = layers[layer]
                assert ctx.get(dut.codebook) == fields["codebook"]
                assert ctx.get(dut.bias_base) == fields["bias_base"]
                assert ctx.get(dut.shift) == fields["shift"]
                assert ctx.get(dut.relu) == fields["relu"]
                assert ctx.get(dut.dst_bank) == (layer + 1) % 2
                seen["wb"][layer].append((ctx.get(dut.wb_row), ctx.get(dut.wb_rem)))
            # The register files are read every cycle while running.
            addr = ctx.get(dut.scan_addr)
            if phase in (Phase.START, Phase.SCAN):
                seen["scan_banks"].append((layer, addr // cfg.act_depth))
            await ctx.tick()
            data = [rf[k][addr] for k in range(n)]
            assert seen["cycles"] < 20000
        counters = []
        for c in Counter:
            ctx.set(dut.io_mem, Mem.COUNTER)
            ctx.set(dut.io_addr, c)
            await ctx.tick()
            await ctx.tick()
            counters.append(ctx.get(dut.io_rdata))
        seen["counters"] = counters

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    return seen


def _vector(rf, cfg, bank, length):
    n = cfg.pes
    return [rf[j % n][bank * cfg.act_depth + j // n] for j in range(length)]


@pytest.mark.parametrize("pes", [1, 3, 4, 5])
def test_ccu_runs_layer_sequence(pes):
    cfg = EIEConfig(pes=pes, act_depth=8, max_layers=4, ptr_depth=64, bias_depth=32, spmat_depth=64,
                    fifo_depth={1: 1, 3: 2, 4: 8, 5: 3}[pes])
    rng = random.Random(pes)
    # Register files with zeros, small values, extremes, all-zero rows.
    rf = [[rng.choice([0, 0, 0, 1, -1, 7, 32767, -32768]) for _ in range(2 * cfg.act_depth)] for _ in range(pes)]
    for k in range(pes):
        rf[k][2] = 0                        # row 2 of bank 0 is all zero
    lengths = [rng.randrange(1, cfg.max_len + 1) for _ in range(4)]
    # a layer's in_len + 1 pointers lie in the pointer banks (the broadcast carries ptr_base + j)
    layers = [dict(in_len=lengths[l], out_len=lengths[l + 1], ptr_base=rng.randrange(cfg.ptr_depth - lengths[l]),
                   codebook=l, bias_base=rng.randrange(32), shift=rng.randrange(1 << cfg.shift_bits) % cfg.acc_bits,
                   relu=rng.randrange(2)) for l in range(3)]
    seen = _run_ccu(cfg, layers, rf, seed=pes)
    assert len(seen["bcast"]) == len(layers)
    for l, fields in enumerate(layers):
        x = _vector(rf, cfg, l % 2, fields["in_len"])
        want = [(j, v) for j, v in enumerate(x) if v != 0]
        assert [(j, v) for _, j, v in seen["bcast"][l]] == want, f"layer {l}"
        rows = -(-fields["out_len"] // pes)
        assert seen["wb"][l] == [(r, fields["out_len"] - r * pes) for r in range(rows)]
        assert {bank for layer, bank in seen["scan_banks"] if layer == l} == {l % 2}
    counters = seen["counters"]
    assert counters[Counter.CYCLES] == seen["cycles"]
    assert counters[Counter.BROADCASTS] == sum(len(b) for b in seen["bcast"])
    assert counters[Counter.BROADCAST_STALLS] == seen["stalls"]
    assert counters[Counter.LAYERS] == len(layers)
    if pes > 1:     # (1 PE gets at most 2 broadcasts per layer here, under its 3 credits: it cannot stall)
        assert seen["stalls"] > 0           # the credits did hold broadcasts back


def test_ccu_broadcasts_every_cycle_across_rows():
    """Always-ready PEs: one broadcast per cycle, no bubble at row boundaries,
    even with an all-zero row after a row of two or more non-zeros."""
    cfg = EIEConfig(pes=4, act_depth=8, max_layers=2, ptr_depth=64, bias_depth=32, spmat_depth=64)
    rows = [[1, 0, 2, 0], [0, 0, 0, 3], [4, 5, 0, 0], [0, 0, 0, 0], [6, 0, 0, 7], [8, 9, 1, 2], [0, 0, 3, 0]]
    rf = [[0] * (2 * cfg.act_depth) for _ in range(4)]
    for r, row in enumerate(rows):
        for k, v in enumerate(row):
            rf[k][r] = v
    in_len = len(rows) * 4 - 1               # the last element is beyond in_len
    rf[3][len(rows) - 1] = 99
    layers = [dict(in_len=in_len, out_len=9, ptr_base=0, codebook=0, bias_base=0, shift=0, relu=0)]
    seen = _run_ccu(cfg, layers, rf, p_pop=1.0, p_idle=1.0)
    cycles = [c for c, _, _ in seen["bcast"][0]]
    assert [v for _, _, v in seen["bcast"][0]] == [1, 2, 3, 4, 5, 6, 7, 8, 9, 1, 2, 3]
    # LOAD in cycle 1, START in cycle 2 reads row 0, which enters the row queue
    # in cycle 3 and is broadcast from cycle 5 on (on the bus register from 6).
    assert cycles == list(range(6, 6 + len(cycles)))
    # then: scan done the cycle after the last broadcast, write-back of 3 rows,
    # and the write-back latency for the last row
    assert seen["cycles"] == cycles[-1] + 1 + 3 + cfg.writeback_latency


@pytest.mark.parametrize("start_at", [None, 3])
def test_ccu_clears_accumulators_after_power_up(start_at):
    """Power-up: every accumulator row is zeroed once while idle; a start before
    that finishes runs a CLEAR of all rows first (counted in the cycles)."""
    cfg = EIEConfig(pes=2, act_depth=6, max_layers=2, ptr_depth=16, bias_depth=8, spmat_depth=16)
    dut = CCU(cfg)
    layer = dict(in_len=3, out_len=2, ptr_base=0, codebook=0, bias_base=0, shift=0, relu=0)

    async def bench(ctx):
        cleared = []
        ctx.set(dut.io_mem, Mem.LAYER)
        ctx.set(dut.io_wdata, pack_layer_entry(cfg, **layer))
        ctx.set(dut.io_we, 1)
        ctx.set(dut.pe_credit, 0)
        ctx.set(dut.pe_idle, 3)
        cycle = 0
        while cycle < 30 and not ctx.get(dut.done):
            ctx.set(dut.start, cycle == start_at)
            ctx.set(dut.num_layers, 1)
            if ctx.get(dut.acc_clear):
                cleared.append((cycle, ctx.get(dut.wb_row), ctx.get(dut.running)))
            await ctx.tick()
            ctx.set(dut.io_we, 0)
            cycle += 1
        rows = [r for _, r, _ in cleared]
        if start_at is None:
            assert cleared == [(c, c, 0) for c in range(cfg.act_depth)]
        else:
            # the background clear goes on in the start cycle (from registers only), then CLEAR zeroes every row
            assert rows == list(range(start_at + 1)) + list(range(cfg.act_depth))
            assert all(running for c, _, running in cleared if c > start_at)
            assert ctx.get(dut.done)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()


def test_ccu_reads_num_layers_zero_as_empty_run():
    cfg = EIEConfig(pes=2, act_depth=4, max_layers=2, ptr_depth=16, bias_depth=8, spmat_depth=16)
    dut = CCU(cfg)

    async def bench(ctx):
        for _ in range(cfg.act_depth):            # background clear after power-up
            await ctx.tick()
        ctx.set(dut.num_layers, 0)
        ctx.set(dut.start, 1)
        await ctx.tick()
        ctx.set(dut.start, 0)
        assert ctx.get(dut.running)
        await ctx.tick()
        assert ctx.get(dut.done) and not ctx.get(dut.running)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
