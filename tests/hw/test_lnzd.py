"""LNZD node and tree against the Python model (lowest non-zero index)."""

import gc
import random

import pytest
from amaranth.hdl import signed
from amaranth.sim import Simulator

from eie.hw.lnzd import LNZDNode, LNZDTree, lnzd_model


def _masks(n, rng, count):
    yield 0
    yield (1 << n) - 1
    for i in range(n):
        yield 1 << i                      # a single non-zero anywhere
    yield 1 << (n - 1)
    for _ in range(count):
        density = rng.choice([0.05, 0.3, 0.7])
        yield sum(1 << i for i in range(n) if rng.random() < density)


def test_lnzd_node_all_inputs():
    dut = LNZDNode(index_bits=3, data_shape=8)

    async def bench(ctx):
        rng = random.Random(1)
        for valid in range(16):
            index = [rng.randrange(8) for _ in range(4)]
            data = [rng.randrange(256) for _ in range(4)]
            ctx.set(dut.valid, valid)
            for c in range(4):
                ctx.set(dut.index[c], index[c])
                ctx.set(dut.data[c], data[c])
            c = lnzd_model([(valid >> i) & 1 for i in range(4)])
            assert ctx.get(dut.o_valid) == (c is not None)
            if c is not None:
                assert ctx.get(dut.o_index) == c * 8 + index[c]
                assert ctx.get(dut.o_data) == data[c]

    sim = Simulator(dut)
    sim.add_testbench(bench)
    sim.run()


def test_lnzd_tree_1_to_70_inputs():
    rng = random.Random(7)
    for n in range(1, 71):
        dut = LNZDTree(n, signed(12))

        async def bench(ctx, n=n, dut=dut):
            values = [rng.randrange(-2048, 2048) for _ in range(n)]
            for i, v in enumerate(values):
                ctx.set(dut.data[i], v)
            for mask in _masks(n, rng, 12):
                ctx.set(dut.mask, mask)
                want = lnzd_model([(mask >> i) & 1 for i in range(n)])
                assert ctx.get(dut.valid) == (want is not None), (n, mask)
                if want is not None:
                    assert ctx.get(dut.index) == want, (n, mask)
                    assert ctx.get(dut.o_data) == values[want], (n, mask)

        sim = Simulator(dut)
        sim.add_testbench(bench)
        sim.run()


@pytest.mark.parametrize("n,levels,nodes", [(1, 0, 0), (4, 1, 1), (5, 2, 3), (16, 2, 5), (64, 3, 21), (70, 4, 26)])
def test_lnzd_tree_shape(n, levels, nodes):
    # 64 inputs -> 16 + 4 + 1 = 21 nodes, as in the paper.
    from amaranth.hdl import Fragment
    tree = LNZDTree(n, 4)
    assert tree.levels == levels
    frag = Fragment.get(tree, None)
    count = sum(1 for sub, name, _ in frag.subfragments if name.startswith("node_"))
    assert count == nodes


@pytest.mark.filterwarnings("ignore::amaranth.hdl.UnusedElaboratable")
def test_lnzd_rejects_bad_parameters():
    with pytest.raises(ValueError, match="positive integer"):
        LNZDTree(0, 4)
    with pytest.raises(ValueError, match="non-negative"):
        LNZDNode(-1, 4)
    gc.collect()
