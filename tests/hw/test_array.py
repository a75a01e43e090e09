"""Whole-array tests: EIEArray in the Amaranth simulator against the golden model.

Each case builds small random layers with ``eie.golden``, loads the memory
image through the io port, runs all layers with one start pulse, reads the
output register file back through the io port and checks

* the output bit for bit against ``eie.golden.reference.forward_all``;
* the ``cycles`` counter exactly against ``eie.golden.cycle_model.predict``;
* the other counters against the model (broadcasts, stalls, layers, per-PE
  busy = work and per-PE stall cycles).
"""

import zlib

import numpy as np
import pytest
from amaranth.sim import Simulator

from eie.config import EIEConfig
from eie.protocol import ALL_PES, Counter, Mem, PECounter, memory_readable
from eie.golden.encode import build_image
from eie.golden.reference import forward_all
from eie.golden.synthetic import random_layer
from eie.golden import cycle_model
from eie.hw.array import EIEArray, io_width


# The area options the iCE40 presets switch on (eie.boards.platforms); tested here
# with small memories.
ICE40_OPTIONS = dict(pe_counters=0, merge_codebook_bias=1, hold_pointer_read=1, host_readback=0, bias_width=16,
                     credit_bypass=1)


def _to_unsigned(value, width):
    return int(value) & ((1 << width) - 1)


def _signed(value, width):
    value &= (1 << width) - 1
    return value - (1 << width) if value >> (width - 1) else value


def simulate_image(image, x, *, check_io=True, runs=1):
    """Load ``image`` and input ``x`` through the io port of an EIEArray, run all
    layers, and return a dict with ``out`` (the output vector), ``counters``
    (global), ``pe`` (per-PE counters) and ``waited`` (cycles until ``done``).
    With ``runs > 1`` the input is written and the network run again, and
    every run must give the same results."""
    cfg = image.config
    n = cfg.pes
    dut = EIEArray(cfg)
    width = io_width(cfg)
    out_len = image.layers[-1].out_len
    num_layers = len(image.layers)
    result = {}
    garbage = np.random.default_rng(1)

    async def bench(ctx):
        async def write(mem, pe, addr, value):
            ctx.set(dut.io_mem, mem)
            ctx.set(dut.io_pe, pe)
            ctx.set(dut.io_addr, addr)
            ctx.set(dut.io_wdata, _to_unsigned(value, width))
            ctx.set(dut.io_we, 1)
            await ctx.tick()
            ctx.set(dut.io_we, 0)

        async def read(mem, pe, addr):
            ctx.set(dut.io_mem, mem)
            ctx.set(dut.io_pe, pe)
            ctx.set(dut.io_addr, addr)
            ctx.set(dut.io_re, 1)
            await ctx.tick()
            ctx.set(dut.io_re, 0)
            for _ in range(dut.read_latency - 1):
                await ctx.tick()
            return ctx.get(dut.io_rdata)

        written = {}
        for k in range(n):
            for a, w in enumerate(image.spmat[k]):
                await write(Mem.SPMAT, k, a, int(w))
            for a, p in enumerate(image.ptr[k]):
                await write(Mem.PTR, k, a, int(p))
            for a, b in enumerate(image.bias[k]):
                await write(Mem.BIAS, k, a, int(b))
            for r in range(2 * cfg.act_depth):
                # Beyond the input (and in the other bank): garbage the scan must ignore.
                j = r * n + k
                value = int(x[j]) if j < len(x) else int(garbage.integers(-50, 50))
                await write(Mem.ACT, k, r, value)
                written[k, r] = value
        for slot, book in enumerate(image.codebook):
            for v, value in enumerate(book):
                await write(Mem.CODEBOOK, ALL_PES, slot * cfg.codebook_size + v, int(value))
        for l, entry in enumerate(image.layers):
            await write(Mem.LAYER, ALL_PES, l, entry.packed(cfg))

        if check_io:
            # A read holds its data until the next read.
            # (the pointers where the host can read them back, else an activation)
            k = n - 1
            if memory_readable(cfg, Mem.PTR):
                mem, addr, want = Mem.PTR, 1, int(image.ptr[k][1])
            else:
                mem, addr, want = Mem.ACT, 1, _to_unsigned(written[k, 1], cfg.act_bits)
            got = await read(mem, k, addr)
            await ctx.tick()
            assert ctx.get(dut.io_rdata) == want
            assert got == want

        for run in range(runs):
            if run:
                for j, value in enumerate(x):
                    await write(Mem.ACT, j % n, j // n, int(value))
            ctx.set(dut.num_layers, num_layers)
            ctx.set(dut.start, 1)
            await ctx.tick()
            ctx.set(dut.start, 0)
            waited = 0
            while True:
                assert ctx.get(dut.running)
                ctx.set(dut.start, waited == 3)          # ignored while running
                await ctx.tick()
                waited += 1
                if ctx.get(dut.done):
                    assert not ctx.get(dut.running)
                    break
                assert waited < 200_000, "run does not finish"
            ctx.set(dut.start, 0)
            bank = num_layers % 2
            out = []
            for j in range(out_len):
                raw = await read(Mem.ACT, j % n, bank * cfg.act_depth + j // n)
                out.append(_signed(raw, cfg.act_bits))
            this = {
                "out": np.array(out, np.int64),
                "counters": {c: await read(Mem.COUNTER, ALL_PES, c) for c in Counter},
                "pe": [{c: await read(Mem.COUNTER, k, c) for c in PECounter} for k in range(n)]
                      if cfg.pe_counters else None,
                "waited": waited,
            }
            if run:
                np.testing.assert_array_equal(this["out"], result["out"])
                assert this["counters"] == result["counters"] and this["pe"] == result["pe"]
            else:
                result.update(this)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    return result


def _chain(cfg, rng, sizes, weight_density, act_density, relu=True, saturate=False):
    layers = []
    x = None
    for l, (i, o) in enumerate(zip(sizes[:-1], sizes[1:])):
        layer, xl = random_layer(rng, i, o, weight_density, act_density, cfg, relu=relu if l < len(sizes) - 2 else False,
                                 signed_input=not relu)
        if saturate:
            layer.shift = max(0, layer.shift - 3)
        layers.append(layer)
        if x is None:
            x = xl
    return layers, x


CASES = [
    # sparse input: all-zero register-file rows; and a second run on the same array
    ("pes4-sparse-2runs", dict(pes=4, fifo_depth=2, column_buffer_depth=1, act_depth=16), (57, 30), 0.3, 0.08, True, False),
    ("pes3-zero-input", dict(pes=3, fifo_depth=4), (11, 15, 8), 0.4, 0.0, True, False),
    ("pes16-e4-fifo2", dict(pes=16, entries_per_word=4, fifo_depth=2, act_depth=8), (70, 90), 0.08, 0.6, True, False),
    # (id, config changes, layer sizes, weight density, activation density, relu, saturate)
    ("pes4-e8-fifo8-io2-wb1", dict(pes=4, io_read_stages=2, wb_read_stages=1), (19, 23), 0.3, 0.6, True, False),
    ("pes1-e1-fifo1", dict(pes=1, entries_per_word=1, fifo_depth=1, column_buffer_depth=1), (9, 7), 0.5, 0.7, True, False),
    ("pes3-e3-fifo2-chain-io1-wb1", dict(pes=3, entries_per_word=3, fifo_depth=2, column_buffer_depth=2,
                                         io_read_stages=1, wb_read_stages=1),
     (14, 17, 10), 0.35, 0.7, True, False),
    ("pes8-e8-fifo2-sat", dict(pes=8, fifo_depth=2, act_depth=8, zrun_bits=2), (40, 33), 0.4, 0.5, False, True),
    ("pes4-e5-fifo1-chain3", dict(pes=4, entries_per_word=5, fifo_depth=1, column_buffer_depth=3, zrun_bits=2), (12, 21, 16, 9), 0.25, 0.8, False, False),
    ("pes2-e1-dense", dict(pes=2, entries_per_word=1, fifo_depth=3, column_buffer_depth=1, act_depth=16), (20, 12), 0.9, 1.0, True, True),
    ("pes3-e3-hold-chain", dict(pes=3, entries_per_word=3, fifo_depth=3, column_buffer_depth=2, hold_pointer_read=1),
     (14, 17, 10), 0.35, 0.7, True, False),
    # dense columns as long as a PE's register file (count = act_depth = 2**3: 0 in the 3-bit count field)
    ("pes2-e3-full-columns", dict(pes=2, entries_per_word=3, fifo_depth=2, act_depth=8), (10, 16, 16), 1.0, 1.0,
     True, False),
    # register files of 1, 2 and 3 rows with dense columns: the Spmat read's entry count at
    # its narrowest (act_depth = 2 once had a 1-bit count, and a 2-entry column never ended)
    ("pes4-act-depth1-dense", dict(pes=4, entries_per_word=2, fifo_depth=2, column_buffer_depth=1, act_depth=1),
     (4, 4, 3), 1.0, 1.0, True, False),
    ("pes3-act-depth2-dense", dict(pes=3, entries_per_word=2, fifo_depth=2, column_buffer_depth=2, act_depth=2),
     (6, 6, 5), 1.0, 1.0, True, False),
    ("pes2-act-depth3-dense", dict(pes=2, entries_per_word=3, fifo_depth=1, column_buffer_depth=1, act_depth=3),
     (6, 6, 5), 0.9, 1.0, True, False),
    # one pointer memory with two read ports (ECP5/Gowin true dual port), small memories in LUT RAM
    ("pes3-e3-ptr1-lutram-chain", dict(pes=3, entries_per_word=3, fifo_depth=2, column_buffer_depth=2,
                                       pointer_banks=1, lutram_words=64, io_read_stages=1, wb_read_stages=1),
     (14, 17, 10), 0.35, 0.7, True, False),
    ("pes4-ptr1-hold-merged", dict(pes=4, fifo_depth=1, column_buffer_depth=1, pointer_banks=1, hold_pointer_read=1,
                                   merge_codebook_bias=1, bias_width=30, act_depth=16),
     (33, 40, 20), 0.3, 0.6, True, True),
    # a fanout tree between the CCU and the PEs (fanout_stages): 9 PEs = a full group of 8 and a group of 1;
    # 17 PEs behind two stages (one register, then 3); a second run on the same array; shallow queues
    ("pes9-fanout1-fifo1-2runs", dict(pes=9, fifo_depth=1, column_buffer_depth=2, fanout_stages=1, act_depth=8),
     (50, 41, 30), 0.3, 0.5, True, False),
    # mostly all-zero rows, dropped one a cycle: the row queue (3 + 2 D rows) must never run dry
    ("pes3-fanout2-sparse", dict(pes=3, fifo_depth=2, fanout_stages=2, act_depth=40), (120, 20), 0.4, 0.04, True,
     False),
    ("pes17-fanout2-ptr1-lutram-io1-wb1", dict(pes=17, entries_per_word=4, fifo_depth=2, fanout_stages=2, act_depth=8,
                                               pointer_banks=1, lutram_words=64, io_read_stages=1, wb_read_stages=1),
     (70, 60), 0.15, 0.6, True, False),
    # credits spent in the cycle they come back (credit_bypass): queues of 1 (the credit loop
    # binds), with and without a fanout stage, a second run on the same array
    ("pes5-bypass-fifo1-2runs", dict(pes=5, fifo_depth=1, column_buffer_depth=1, credit_bypass=1, act_depth=16),
     (40, 33, 20), 0.4, 0.7, True, False),
    ("pes10-fanout1-bypass-fifo2", dict(pes=10, fifo_depth=2, column_buffer_depth=2, fanout_stages=1, credit_bypass=1,
                                        act_depth=8), (60, 45), 0.3, 0.6, True, False),
    # the iCE40 presets' area options (eie.boards.platforms.ICE40_PRESET)
    ("pes4-ice40-lean-chain", dict(pes=4, fifo_depth=2, column_buffer_depth=1, act_bits=8, act_frac_bits=6,
                                   codebook_bits=8, entries_per_word=2, act_depth=16, **ICE40_OPTIONS),
     (40, 37, 21), 0.3, 0.6, True, True),
]


def _check(layers, x, cfg, runs=1):
    """Simulate ``layers`` on input ``x``; outputs must equal the golden reference and
    every counter the cycle model. Returns the golden output."""
    image = build_image(layers, cfg)
    expect = forward_all(layers, x, cfg)[-1]
    got = simulate_image(image, x, runs=runs)
    np.testing.assert_array_equal(got["out"], expect)
    report = cycle_model.predict(image, x)
    counters = got["counters"]
    assert counters[Counter.LAYERS] == len(layers)
    assert counters[Counter.CYCLES] == got["waited"]
    assert counters[Counter.CYCLES] == report.cycles
    assert counters[Counter.BROADCASTS] == report.broadcasts
    assert counters[Counter.BROADCAST_STALLS] == report.broadcast_stalls
    if cfg.pe_counters:
        assert [p[PECounter.BUSY] for p in got["pe"]] == list(report.busy)
        assert [p[PECounter.STALL] for p in got["pe"]] == list(report.stalls)
    return expect


@pytest.mark.parametrize("name,changes,sizes,wd,ad,relu,saturate", CASES, ids=[c[0] for c in CASES])
def test_array_matches_golden_and_cycle_model(name, changes, sizes, wd, ad, relu, saturate):
    base = dict(spmat_depth=256, ptr_depth=128, act_depth=32, bias_depth=64, max_layers=4)
    base.update(changes)
    cfg = EIEConfig(**base)
    rng = np.random.default_rng(zlib.crc32(name.encode()))
    layers, x = _chain(cfg, rng, sizes, wd, ad, relu, saturate)
    _check(layers, x, cfg, runs=2 if "2runs" in name else 1)


@pytest.mark.parametrize("lean", [False, True, "ecp5"], ids=["plain", "ice40-options", "ecp5-stages"])
@pytest.mark.parametrize("shift", [0, 1, 5, 9])
def test_writeback_rounding_and_saturation_edges(shift, lean):
    """Totals exactly at the rounding ties and the saturation edges of the write-back
    (random layers almost never land on them): the input is zero, so each row's
    total is its bias."""
    cfg = EIEConfig(pes=4, act_bits=8, act_frac_bits=6, codebook_bits=8, spmat_depth=64, ptr_depth=32,
                    act_depth=16, bias_depth=16, max_layers=1,
                    # (narrow biases sign-extended into the adder; 18 bits hold the totals at shift 9)
                    **(dict(io_read_stages=1, wb_read_stages=1) if lean == "ecp5" else
                       dict(ICE40_OPTIONS, bias_width=18) if lean else {}))
    hi, lo = (1 << (cfg.act_bits - 1)) - 1, -(1 << (cfg.act_bits - 1))
    half = (1 << shift) >> 1
    totals = sorted({(e << shift) + off for e in (hi, hi + 1, lo, lo - 1, 0, -1, 5)
                     for off in (-half - 1, -half, -half + 1, -1, 0, 1, half - 1, half)})[:cfg.max_len]
    layer, _ = random_layer(np.random.default_rng(shift), 6, len(totals), 0.5, 0.0, cfg, relu=False)
    layer.bias = np.array(totals, np.int64)
    layer.shift = shift
    expect = _check([layer], np.zeros(6, np.int64), cfg)
    assert hi in expect and lo in expect            # both saturation edges were reached


def test_last_broadcast_after_idle_pes():
    """The only non-zero input is the last one, after many all-zero rows: every PE is
    empty when it is broadcast, and the layer must not end before its entries are in."""
    cfg = EIEConfig(pes=4, fifo_depth=2, column_buffer_depth=1, spmat_depth=256, ptr_depth=128, act_depth=16,
                    bias_depth=16, max_layers=1)
    layer, x = random_layer(np.random.default_rng(7), 60, 16, 0.9, 0.0, cfg, relu=False, signed_input=True)
    x[-1] = 9
    expect = _check([layer], x, cfg)
    assert np.any(expect != forward_all([layer], np.zeros_like(x), cfg)[-1])     # the last input counts


@pytest.mark.parametrize("wb_read_stages,fanout_stages", [(0, 0), (1, 0), (0, 1), (1, 2)])
def test_write_back_lands_on_the_documented_cycle(wb_read_stages, fanout_stages):
    """The array's cycle count of a one-entry layer equals the count worked by hand from the
    pipeline stages that docs/hardware.md lists (tests/golden/test_cycle_model.py,
    ``one_entry_layer_cycles``: 23 cycles, 24 with wb_read_stages, 4 more per fanout stage), not from the
    ``writeback_latency`` constant the CCU and the cycle model share; and the output is right,
    so the CCU does not end the layer before the last row is in the register file."""
    from eie.golden.encode import QuantLayer
    cfg = EIEConfig(pes=4, fifo_depth=2, column_buffer_depth=1, spmat_depth=16, ptr_depth=16, act_depth=2,
                    bias_depth=16, max_layers=1, wb_read_stages=wb_read_stages, fanout_stages=fanout_stages)
    codes = np.zeros((8, 4), np.uint8)
    codes[1, 2] = 3
    codebook = np.zeros(cfg.codebook_size, np.int64)
    codebook[3] = -7
    layer = QuantLayer(codes=codes, codebook=codebook, bias=np.arange(8, dtype=np.int64) - 3, shift=0, relu=False)
    x = np.array([0, 0, 5, 0])
    got = simulate_image(build_image([layer], cfg), x, check_io=False)
    expect = np.arange(8) - 3
    expect[1] += -7 * 5
    np.testing.assert_array_equal(got["out"], expect)
    assert got["counters"][Counter.CYCLES] == got["waited"] == 23 + wb_read_stages + 4 * fanout_stages
