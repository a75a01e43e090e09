"""SyncQueue (activation queue, column buffer) against a Python deque."""

import gc
import random
from collections import deque

import pytest
from amaranth.sim import Simulator

from eie.hw.fifo import SyncQueue


@pytest.mark.parametrize("depth", [1, 2, 3, 8])
@pytest.mark.parametrize("ready_when_popping", [False, True])
def test_queue_against_model(depth, ready_when_popping):
    dut = SyncQueue(8, depth, ready_when_popping=ready_when_popping)
    rng = random.Random(depth * 2 + ready_when_popping)

    async def bench(ctx):
        model = deque()
        sent = received = 0
        full_seen = 0
        for cycle in range(400):
            # Bursty producer and consumer, so the queue runs full and empty.
            phase = (cycle // 40) % 3
            want_w = rng.random() < (0.9, 0.2, 0.6)[phase]
            want_r = rng.random() < (0.2, 0.9, 0.6)[phase]
            ctx.set(dut.w.valid, want_w)
            ctx.set(dut.w.payload, sent & 0xFF)
            ctx.set(dut.r.ready, want_r)
            # Combinational outputs of this cycle.
            level = ctx.get(dut.level)
            assert level == len(model)
            assert ctx.get(dut.r.valid) == (len(model) > 0)
            pop = want_r and len(model) > 0
            if pop:
                assert ctx.get(dut.r.payload) == model[0]
            ready = len(model) < depth or (ready_when_popping and pop)
            assert ctx.get(dut.w.ready) == ready
            # ready never depends on valid
            ctx.set(dut.w.valid, not want_w)
            assert ctx.get(dut.w.ready) == ready
            ctx.set(dut.w.valid, want_w)
            full_seen += len(model) == depth
            await ctx.tick()
            if pop:
                model.popleft()
                received += 1
            if want_w and ready:
                model.append(sent & 0xFF)
                sent += 1
        assert full_seen > 10 and received > 50

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()


@pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")
def test_queue_rejects_bad_depth():
    with pytest.raises(ValueError, match="depth must be a positive integer"):
        SyncQueue(8, 0)
    gc.collect()
