"""Compress-time row assignment: same function, fewer cycles' worth of imbalance."""

import numpy as np
import pytest

from eie.config import EIEConfig, preset
from eie.golden.balance import (assign_rows, balance, balance_network, order_columns, order_local_rows,
                                permute_input, unpermute_output)
from eie.golden.encode import QuantLayer, build_image, encode_layer
from eie.golden.reference import forward, layer_work
from eie.golden.synthetic import PaperLayer, random_layer


def _network(cfg, sizes, seed=0, density=0.3):
    rng = np.random.default_rng(seed)
    layers = []
    for l, (i, o) in enumerate(zip(sizes[:-1], sizes[1:])):
        layer, _ = random_layer(rng, i, o, density, 1.0, cfg, relu=l < len(sizes) - 2, name=f"fc{l}")
        layers.append(layer)
    x = rng.integers(-200, 200, (6, sizes[0]))
    x[rng.random(x.shape) < 0.4] = 0
    return layers, x


def _padding_brute_force(codes: np.ndarray, pes: int, max_zrun: int) -> int:
    """Padding entries counted by walking each slice as in EIE.md (independent of the encoder)."""
    pads = 0
    for k in range(pes):
        block = codes[k::pes]
        for j in range(codes.shape[1]):
            run = 0
            for v in block[:, j]:
                if not v:
                    run += 1
                    continue
                while run > max_zrun:           # a padding entry: max_zrun zeros plus its own row
                    pads += 1
                    run -= max_zrun + 1
                run = 0
    return pads


@pytest.mark.parametrize("pes,sizes", [(4, [37, 50, 23, 9]), (3, [20, 64, 7]), (8, [60, 40, 100])])
def test_balanced_network_computes_the_same_function(pes, sizes, monkeypatch):
    cfg = EIEConfig(pes=pes, act_depth=64, bias_depth=512)
    layers, x = _network(cfg, sizes, seed=pes)
    dense_calib = np.random.default_rng(1).integers(1, 100, (4, sizes[0]))   # dense: input reorder kicks in
    # Keep the new input order even where the cycle model would not, to exercise the folding.
    monkeypatch.setattr("eie.golden.balance._order_helps", lambda *a: True)
    b = balance_network(layers, cfg, dense_calib)
    assert not np.array_equal(b.input_perm, np.arange(sizes[0])), "a dense first layer should get an input order"
    ref = forward(layers, x, cfg)
    hw = forward(b.layers, permute_input(x, b.input_perm), cfg)
    assert np.array_equal(hw, ref[..., b.output_perm])
    assert np.array_equal(unpermute_output(hw, b.output_perm), ref)
    # The simple API keeps the input order.
    layers2, out_perm = balance(layers, cfg)
    assert np.array_equal(unpermute_output(forward(layers2, x, cfg), out_perm), ref)


def test_row_counts_per_pe_stay_those_of_the_interleave():
    cfg = EIEConfig(pes=8, act_depth=16, bias_depth=512)
    rng = np.random.default_rng(3)
    layer, _ = random_layer(rng, 30, 8 * 16 - 3, 0.2, 1.0, cfg)      # out_len = 125: PEs hold 16 or 15 rows
    groups = assign_rows(layer.codes != 0, cfg.pes)
    sizes = [len(g) for g in groups]
    assert sizes == [len(range(k, layer.out_len, cfg.pes)) for k in range(cfg.pes)]
    assert max(sizes) <= cfg.act_depth
    assert sorted(r for g in groups for r in g) == list(range(layer.out_len))
    (bal,), perm = balance([layer], cfg)
    assert np.array_equal(np.sort(perm), np.arange(layer.out_len))
    assert bal.out_len == layer.out_len


def test_balance_shortens_the_critical_path_of_a_skewed_layer():
    cfg = EIEConfig(pes=8, act_depth=32, bias_depth=512)
    rng = np.random.default_rng(5)
    out_len, in_len, n = 128, 200, cfg.pes
    # Rows of PE 0 under the interleave are five times as dense as the others.
    dens = np.where(np.arange(out_len) % n == 0, 0.5, 0.1)
    codes = ((rng.random((out_len, in_len)) < dens[:, None]) * rng.integers(1, 16, (out_len, in_len))).astype(np.uint8)
    codebook = np.arange(16) - 8
    codebook[0] = 0
    layer = QuantLayer(codes=codes, codebook=codebook, bias=np.zeros(out_len, np.int64), shift=4, relu=True)
    x = np.ones(in_len, np.int64)
    before = layer_work(encode_layer(layer, cfg), x, cfg)
    (bal,), _ = balance([layer], cfg)
    after = layer_work(encode_layer(bal, cfg), x, cfg)
    assert before.max_pe_work > 2 * before.work / n
    assert after.max_pe_work < before.max_pe_work
    assert after.max_pe_work <= 1.05 * after.work / n, (after.max_pe_work, after.work / n)


def test_local_row_order_reduces_padding_and_encoder_agrees_with_definition():
    cfg = EIEConfig(pes=1, act_depth=256, bias_depth=512)
    rng = np.random.default_rng(7)
    mask = rng.random((96, 300)) < 0.06
    codes = (mask * 3).astype(np.uint8)
    codebook = np.arange(16)
    layer = QuantLayer(codes=codes, codebook=codebook, bias=np.zeros(96, np.int64), shift=0, relu=False)
    pads_before = encode_layer(layer, cfg).padding
    assert pads_before == _padding_brute_force(codes, 1, cfg.max_zrun)
    order = order_local_rows(mask, range(96), cfg.max_zrun)
    assert sorted(order) == list(range(96))
    reordered = codes[order]
    pads_after = _padding_brute_force(reordered, 1, cfg.max_zrun)
    assert pads_after < pads_before


def test_order_columns_is_a_permutation_with_the_active_columns_first():
    rng = np.random.default_rng(9)
    work = rng.integers(0, 3, (6, 50))
    active = rng.random(50) < 0.5
    order = order_columns(work, active, candidates=8)
    assert sorted(order) == list(range(50))
    assert set(order[:active.sum()]) == set(np.flatnonzero(active))


def test_permutation_arguments_are_checked():
    with pytest.raises(ValueError, match="permutation"):
        unpermute_output(np.zeros(4), [0, 1, 1, 3])
    with pytest.raises(ValueError, match="permutation"):
        permute_input(np.zeros(4), [0, 1, 2])


def test_paper_preset_layer_is_fast_and_keeps_rows_within_act_depth():
    import time
    from eie.golden.synthetic import make_layer
    cfg = preset("paper")
    layer, x = make_layer("NT-LSTM", cfg, seed=0)
    t0 = time.perf_counter()
    b = balance_network([layer], cfg, np.ones((1, layer.in_len), np.int64))
    assert time.perf_counter() - t0 < 10
    w0 = layer_work(encode_layer(layer, cfg), x, cfg)
    w1 = layer_work(encode_layer(b.layers[0], cfg), permute_input(x, b.input_perm), cfg)
    assert w1.max_pe_work < w0.max_pe_work
    # the balanced layer keeps the interleave's row count per PE, so it still fits the register files
    assert b.layers[0].out_len == layer.out_len
    groups = assign_rows(layer.codes != 0, cfg.pes)
    assert [len(g) for g in groups] == [len(range(k, layer.out_len, cfg.pes)) for k in range(cfg.pes)]
    assert max(len(g) for g in groups) <= cfg.act_depth
    build_image(b.layers, cfg)     # raises if any memory overflows


def test_input_order_is_kept_only_when_it_saves_cycles():
    from eie.golden.cycle_model import layer_cycles
    from eie.golden.synthetic import make_layer
    cfg = preset("paper").replace(pes=16, column_buffer_depth=2)
    spec = PaperLayer("dense-in", 1024, 150, 0.1, 1.0, 1.0, 1.0)
    layer, x = make_layer(spec, cfg, 0)
    ones = np.ones((1, layer.in_len), np.int64)
    kept = balance_network([layer], cfg, ones)
    rows_only = balance_network([layer], cfg, ones, reorder_input=False)
    def cycles(b):
        enc = encode_layer(b.layers[0], cfg)
        return layer_cycles(cfg, enc.col_entries, permute_input(x, b.input_perm), layer.out_len).cycles
    assert cycles(kept) <= cycles(rows_only)


def test_balance_network_refuses_layers_that_do_not_chain():
    """Layer 1 takes 5 inputs but layer 0 gives 4 outputs: named, with both lengths."""
    cfg = preset("tiny")
    rng = np.random.default_rng(3)
    a = QuantLayer(codes=rng.integers(0, 16, (4, 6)).astype(np.uint8), codebook=np.arange(16) * 3,
                   bias=np.zeros(4, np.int64), shift=0, relu=True, name="a")
    b = QuantLayer(codes=rng.integers(0, 16, (3, 5)).astype(np.uint8), codebook=np.arange(16) * 3,
                   bias=np.zeros(3, np.int64), shift=0, relu=False, name="b")
    with pytest.raises(ValueError, match=r"layer 1 \('b'\): in_len=5 does not match the previous layer's out_len=4"):
        balance_network([a, b], cfg)
