"""Tests of the EIE format encoder (golden/encode.py).

The encoder is compared with a plain per-entry model written straight from
the format's definition (``shared/EIE.md``, "Storage format"); memory images
are checked bit by bit against an independent packing.
"""

import time

import numpy as np
import pytest

from eie.config import PRESETS, EIEConfig
from eie.format import NetworkImage
from eie.golden.encode import (EncodedLayer, QuantLayer, build_image, decode_image, decode_layer, encode_layer,
                               load_layers, pack_entries, save_layers, unpack_entries)

TINY = PRESETS["tiny"]


def model_encode(codes, pes, max_zrun):
    """Per-PE, per-column lists of (v, z), straight from the definition."""
    out_len, in_len = codes.shape
    cols = [[[] for _ in range(in_len)] for _ in range(pes)]
    for k in range(pes):
        for j in range(in_len):
            zeros = 0
            for i in range(k, out_len, pes):
                c = int(codes[i, j])
                if c == 0:
                    zeros += 1
                    continue
                while zeros > max_zrun:
                    cols[k][j].append((0, max_zrun))
                    zeros -= max_zrun + 1
                cols[k][j].append((c, zeros))
                zeros = 0
    return cols


def assert_matches_model(codes, cfg):
    enc = encode_layer(layer_of(codes, cfg), cfg)
    cols = model_encode(codes, cfg.pes, cfg.max_zrun)
    assert enc.pes == cfg.pes and enc.in_len == codes.shape[1] and enc.out_len == codes.shape[0]
    total = padding = 0
    for k in range(cfg.pes):
        flat = [e for col in cols[k] for e in col]
        assert enc.v[k].dtype == np.uint8 and enc.z[k].dtype == np.uint8
        assert [int(v) for v in enc.v[k]] == [v for v, _ in flat]
        assert [int(z) for z in enc.z[k]] == [z for _, z in flat]
        assert list(enc.ptr[k]) == list(np.cumsum([0] + [len(c) for c in cols[k]]))
        assert list(enc.col_entries[k]) == [len(c) for c in cols[k]]
        assert list(enc.col_padding[k]) == [sum(1 for v, _ in c if v == 0) for c in cols[k]]
        total += len(flat)
        padding += sum(1 for v, _ in flat if v == 0)
    assert enc.entries == total and enc.padding == padding and enc.nnz == np.count_nonzero(codes)
    assert np.array_equal(decode_layer(enc, cfg), codes)
    return enc


def layer_of(codes, cfg, name="", bias=None, shift=0, relu=False):
    codebook = np.arange(cfg.codebook_size, dtype=np.int64) - cfg.codebook_size // 2
    codebook[0] = 0
    out_len = codes.shape[0]
    bias = np.zeros(out_len, np.int64) if bias is None else bias
    return QuantLayer(codes=codes, codebook=codebook, bias=bias, shift=shift, relu=relu, name=name)


def test_paper_example():
    # Column slice [0,0,1,2,<18 zeros>,3] -> v=[1,2,0,3], z=[2,0,15,2] (EIE paper, Fig. 3 text).
    col = [0, 0, 1, 2] + [0] * 18 + [3]
    for pes in (1, 4):
        codes = np.zeros((len(col) * pes, 1), np.uint8)
        codes[::pes, 0] = col
        enc = encode_layer(layer_of(codes, TINY.replace(pes=pes)), TINY.replace(pes=pes))
        assert list(enc.v[0]) == [1, 2, 0, 3]
        assert list(enc.z[0]) == [2, 0, 15, 2]
        assert list(enc.ptr[0]) == [0, 4]
        assert enc.padding == 1
        for k in range(1, pes):
            assert len(enc.v[k]) == 0 and list(enc.ptr[k]) == [0, 0]


@pytest.mark.parametrize("run", [0, 1, 14, 15, 16, 17, 30, 31, 32, 33, 47, 48, 100])
@pytest.mark.parametrize("pes", [1, 3, 4])
def test_zero_runs(run, pes):
    cfg = TINY.replace(pes=pes)
    # In PE 0's slice: a non-zero, `run` zeros, a non-zero, then trailing zeros; other PEs leading runs.
    rows = run + 5
    codes = np.zeros((rows * pes, 3), np.uint8)
    codes[0, 0] = 5
    codes[(run + 1) * pes, 0] = 7
    codes[run * pes, 1] = 3            # leading run in column 1
    codes[rows * pes - 1, 2] = 9       # last row of the last PE
    enc = assert_matches_model(codes, cfg)
    span = cfg.max_zrun + 1
    assert enc.col_padding[0, 0] == run // span
    assert enc.z[0][enc.ptr[0, 0] + run // span + 1] == run % span


@pytest.mark.parametrize("zrun_bits", [1, 2, 3, 4, 8])
def test_zrun_widths(zrun_bits):
    cfg = TINY.replace(zrun_bits=zrun_bits, pes=2)
    rng = np.random.default_rng(zrun_bits)
    codes = ((rng.random((301, 7)) < 0.05) * rng.integers(1, 16, (301, 7))).astype(np.uint8)
    assert_matches_model(codes, cfg)


def test_adversarial_matrices():
    cfg = TINY.replace(pes=4)
    out_len, in_len = 70, 9                      # 70 rows: not divisible by 4
    codes = np.zeros((out_len, in_len), np.uint8)
    codes[:, 1] = 15                             # a full column
    codes[37, 3] = 1                             # a single non-zero
    codes[::17, 5] = 2                           # runs of 16 zeros in some slices
    codes[out_len - 1, 7] = 4                    # the very last row
    # columns 0, 2, 4, 6, 8 empty
    enc = assert_matches_model(codes, cfg)
    assert enc.col_entries[:, [0, 2, 4, 6, 8]].sum() == 0
    # Hand count: column 5 in PE 0 (rows 0 and 68 = local 0 and 17: 16 zeros) and
    # column 7 in PE 1 (row 69 = local 17: 17 leading zeros) need one padding entry each.
    assert enc.col_padding[0, 5] == 1 and enc.col_padding[1, 7] == 1 and enc.padding == 2
    assert_matches_model(np.zeros((5, 3), np.uint8), cfg)        # empty matrix
    assert_matches_model(np.full((1, 1), 3, np.uint8), cfg)     # one row, fewer rows than PEs
    assert_matches_model(np.full((5, 200), 3, np.uint8), TINY.replace(pes=64))  # N > rows


@pytest.mark.parametrize("pes", [1, 2, 3, 4, 8, 64])
def test_random_round_trip(pes):
    cfg = TINY.replace(pes=pes)
    rng = np.random.default_rng(pes)
    for _ in range(12):
        out_len, in_len = int(rng.integers(1, 300)), int(rng.integers(1, 40))
        density = float(rng.choice([0.0, 0.01, 0.05, 0.2, 0.7, 1.0]))
        codes = ((rng.random((out_len, in_len)) < density) * rng.integers(1, 16, (out_len, in_len))).astype(np.uint8)
        assert_matches_model(codes, cfg)


def test_decode_rejects_malformed():
    cfg = TINY.replace(pes=2)
    codes = np.zeros((6, 2), np.uint8)
    codes[4, 0] = 3
    enc = encode_layer(layer_of(codes, cfg), cfg)
    bad = EncodedLayer(v=[np.array([3], np.uint8), enc.v[1]], z=[np.array([3], np.uint8), enc.z[1]],
                       ptr=enc.ptr, col_entries=enc.col_entries, col_padding=enc.col_padding,
                       out_len=6, in_len=2, pes=2)
    with pytest.raises(ValueError, match="local row 3 but the PE has only 3 rows"):
        decode_layer(bad, cfg)
    bad.ptr = np.array([[0, 2, 2], [0, 0, 0]])
    with pytest.raises(ValueError, match="pointers must rise"):
        decode_layer(bad, cfg)
    bad = EncodedLayer(v=[np.array([3], np.uint8), enc.v[1]], z=[np.array([16], np.uint8), enc.z[1]],
                       ptr=enc.ptr, col_entries=enc.col_entries, col_padding=enc.col_padding,
                       out_len=40, in_len=2, pes=2)
    with pytest.raises(ValueError, match="zero run 16 exceeds max_zrun=15"):
        decode_layer(bad, cfg)


# -- memory images ---------------------------------------------------------------

def random_network(rng, cfg, sizes, density=0.2):
    layers = []
    for l, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        codes = ((rng.random((n_out, n_in)) < density) *
                 rng.integers(1, cfg.codebook_size, (n_out, n_in))).astype(np.uint8)
        lim = 1 << (cfg.codebook_bits - 1)
        codebook = rng.integers(-lim, lim, cfg.codebook_size)
        codebook[0] = 0
        blim = 1 << (cfg.bias_bits - 1)
        bias = rng.integers(-blim, blim, n_out)
        layers.append(QuantLayer(codes=codes, codebook=codebook, bias=bias, shift=int(rng.integers(0, cfg.acc_bits)),
                                 relu=bool(rng.integers(0, 2)), name=f"fc{l}", in_frac=3, out_frac=2,
                                 codebook_frac=5))
    return layers


def model_word(entries, cfg):
    """Independent packing of one Spmat word: Python ints, slot 0 at the LSBs."""
    word = 0
    for slot, (v, z) in enumerate(entries):
        word |= (v | (z << cfg.index_bits)) << (slot * cfg.entry_bits)
    return word


@pytest.mark.parametrize("epw", range(1, 9))
def test_image_round_trip(epw):
    cfg = TINY.replace(pes=3, entries_per_word=epw, spmat_depth=4096)
    rng = np.random.default_rng(epw)
    layers = random_network(rng, cfg, [37, 50, 11, 4], density=0.15)
    image = build_image(layers, cfg)
    assert isinstance(image, NetworkImage)
    back = decode_image(image)
    assert len(back) == len(layers)
    for a, b in zip(layers, back):
        assert np.array_equal(a.codes, b.codes) and np.array_equal(a.codebook, b.codebook)
        assert np.array_equal(a.bias, b.bias) and a.shift == b.shift and a.relu == b.relu

    # Placement, checked against the definition in docs/format.md.
    n = cfg.pes
    base = [0] * n
    ptr_base = bias_base = 0
    all_entries = [[] for _ in range(n)]
    for l, layer in enumerate(layers):
        t = image.layers[l]
        assert (t.in_len, t.out_len, t.ptr_base, t.codebook, t.bias_base, t.shift, t.relu) == \
            (layer.in_len, layer.out_len, ptr_base, l, bias_base, layer.shift, layer.relu)
        cols = model_encode(layer.codes, n, cfg.max_zrun)
        for k in range(n):
            ptrs = base[k] + np.cumsum([0] + [len(c) for c in cols[k]])
            assert list(image.ptr[k, ptr_base:ptr_base + layer.in_len + 1]) == list(ptrs)
            for e in (e for c in cols[k] for e in c):
                all_entries[k].append(e)
            base[k] = int(ptrs[-1])
            for r in range(-(-layer.out_len // n)):
                i = r * n + k
                assert image.bias[k, bias_base + r] == (layer.bias[i] if i < layer.out_len else 0)
        assert np.array_equal(image.codebook[l], layer.codebook)
        ptr_base += layer.in_len + 1
        bias_base += -(-layer.out_len // n)
    assert image.ptr.shape == (n, ptr_base) and image.bias.shape == (n, bias_base)
    assert image.spmat.shape == (n, -(-max(base) // epw))
    for k in range(n):
        for w in range(image.spmat.shape[1]):
            assert int(image.spmat[k, w]) == model_word(all_entries[k][w * epw:(w + 1) * epw], cfg)


def test_image_save_load(tmp_path):
    cfg = TINY
    layers = random_network(np.random.default_rng(0), cfg, [20, 30, 10])
    image = build_image(layers, cfg)
    image.save(tmp_path / "image.npz")
    again = NetworkImage.load(tmp_path / "image.npz")
    for a, b in zip(layers, decode_image(again)):
        assert np.array_equal(a.codes, b.codes) and np.array_equal(a.bias, b.bias)


def test_image_check_bounds_column_lengths():
    """A column holds at most one entry per local output row (the PEs count entries
    modulo 2**clog2(act_depth)): a dense column has exactly that many, a column with one
    more, or decreasing pointers, is refused naming the layer, PE and column."""
    cfg = TINY
    codes = np.ones((2 * cfg.pes + 1, 3), np.uint8)            # local rows: 3, 2, 2, ...
    image = build_image([layer_of(codes, cfg)], cfg)
    lens = np.diff(image.ptr[:, :4], axis=1)
    assert lens[0].tolist() == [3, 3, 3] and lens[1].tolist() == [2, 2, 2]
    for pe, col, delta, got in ((1, 2, +1, 3), (0, 0, -4, -1)):
        ptr = image.ptr.copy()
        ptr[pe, col + 1:] += delta
        with pytest.raises(ValueError, match=rf"layer 0: PE {pe} column {col} has {got} entries .*not "
                                             rf"0\.\.{lens[pe][0]}, its local output rows"):
            NetworkImage(cfg, image.layers, image.spmat, ptr, image.codebook, image.bias)


def test_pack_unpack_entries():
    cfg = TINY.replace(index_bits=3, zrun_bits=5, entries_per_word=7)
    rng = np.random.default_rng(1)
    v = rng.integers(0, 8, 30).astype(np.uint8)
    z = rng.integers(0, 32, 30).astype(np.uint8)
    words = pack_entries(v, z, cfg)
    assert len(words) == 5
    for w in range(5):
        assert int(words[w]) == model_word(list(zip(v[w * 7:w * 7 + 7].tolist(), z[w * 7:w * 7 + 7].tolist())), cfg)
    uv, uz = unpack_entries(words, cfg)
    assert np.array_equal(uv[:30], v) and np.array_equal(uz[:30], z) and not uv[30:].any() and not uz[30:].any()


def test_save_load_layers(tmp_path):
    layers = random_network(np.random.default_rng(2), TINY, [9, 8, 7])
    save_layers(tmp_path / "layers.npz", layers)
    back = load_layers(tmp_path / "layers.npz")
    for a, b in zip(layers, back):
        assert np.array_equal(a.codes, b.codes) and np.array_equal(a.codebook, b.codebook)
        assert np.array_equal(a.bias, b.bias)
        assert a.metadata() == b.metadata()
        assert b.codes.dtype == np.uint8 and b.bias.dtype == np.int64
        assert a == b
    assert back[0] != back[1] and with_(back[0], name="renamed") != back[0]
    np.savez(tmp_path / "other.npz", x=np.zeros(3))
    with pytest.raises(ValueError, match="not an eie layers file"):
        load_layers(tmp_path / "other.npz")


# -- errors ------------------------------------------------------------------------

def good_layer(cfg=TINY, out_len=8, in_len=6, name="fc1"):
    codes = np.ones((out_len, in_len), np.uint8)
    return layer_of(codes, cfg, name=name)


def with_(layer, **changes):
    fields = dict(codes=layer.codes, codebook=layer.codebook, bias=layer.bias, shift=layer.shift, relu=layer.relu,
                  name=layer.name)
    fields.update(changes)
    return QuantLayer(**fields)


@pytest.mark.parametrize("changes, message", [
    (dict(codes=np.ones((TINY.max_len + 1, 2), np.uint8), bias=np.zeros(TINY.max_len + 1, np.int64)),
     r"layer 'fc1': out_len=513 is out of range 1..512 .*act_depth"),
    (dict(codes=np.ones((2, TINY.max_len + 1), np.uint8), bias=np.zeros(2, np.int64)),
     r"in_len=513 is out of range 1..512"),
    (dict(codebook=np.zeros(8, np.int64)), r"codebook must have 16 entries .*index_bits=4.*not 8"),
    (dict(codes=np.full((8, 6), 16, np.uint8)), r"codes\[0, 0\]=16 is out of range 0..15"),
    (dict(codebook=np.array([5] + [0] * 15)), r"layer 'fc1': codebook\[0\]=5 must be 0"),
    (dict(codebook=np.array([0] * 15 + [1 << 15])), r"codebook\[15\]=32768 is out of range -32768..32767 "
                                                     r"\(codebook_bits=16\)"),
    (dict(codebook=np.array([0, -(1 << 15) - 1] + [0] * 14)), r"codebook\[1\]=-32769 is out of range"),
    (dict(bias=np.array([0] * 7 + [1 << (TINY.bias_bits - 1)])), rf"bias\[7\]={1 << (TINY.bias_bits - 1)} is out "
                                                                 rf"of range .*bias_bits"),
    (dict(shift=-1), r"shift=-1 is out of range 0..%d" % (TINY.acc_bits - 1)),
    (dict(shift=TINY.acc_bits), r"shift=%d is out of range" % TINY.acc_bits),
])
def test_check_errors(changes, message):
    layer = with_(good_layer(), **changes)
    with pytest.raises(ValueError, match=message):
        layer.check(TINY)
    good_layer().check(TINY)


def test_check_names_index():
    layer = with_(good_layer(), shift=-1)
    with pytest.raises(ValueError, match=r"layer 3 \('fc1'\): shift"):
        layer.check(TINY, index=3)
    with pytest.raises(ValueError, match=r"layer 3: shift"):
        with_(layer, name="").check(TINY, index=3)


@pytest.mark.parametrize("changes, message", [
    (dict(bias=np.zeros(7, np.int64)), r"bias must have shape \(out_len,\) = \(8,\)"),
    (dict(codes=np.ones((8, 6)) * 0.5), r"codes must hold integers"),
    (dict(codes=np.full((8, 6), -1)), r"codes must be in range 0..255"),
    (dict(codes=np.full((8, 6), 256)), r"codes must be in range 0..255"),
    (dict(codes=np.ones(8, np.uint8)), r"codes must be a 2-dimensional array"),
    (dict(codebook=np.zeros(16, float)), r"codebook must hold integers"),
    (dict(shift=1.5), r"shift must be an integer"),
    (dict(relu=1), r"relu must be a bool"),
])
def test_construction_errors(changes, message):
    with pytest.raises(ValueError, match=message):
        with_(good_layer(), **changes)


def test_build_image_errors():
    cfg = TINY.replace(pes=2, spmat_depth=4, entries_per_word=2, ptr_depth=20, act_depth=16, bias_depth=16,
                       max_layers=2)
    a = good_layer(cfg, out_len=4, in_len=3, name="a")
    with pytest.raises(ValueError, match=r"layer 0 \('a'\): Spmat overflow: PE 0 needs 6 entries = 3 words"):
        build_image([a], cfg.replace(spmat_depth=2))
    with pytest.raises(ValueError, match=r"layer 1 \('b'\): Spmat overflow: PE 0 needs 14 entries = 7 words .*"
                                         r"EIEConfig.spmat_depth=4 \(8 entries\); raise spmat_depth"):
        build_image([a, good_layer(cfg, out_len=4, in_len=4, name="b")], cfg)
    with pytest.raises(ValueError, match=r"layer 1 \('b'\): pointer overflow: needs pointers 4..20 "
                                         r"\(in_len \+ 1 = 17\) but EIEConfig.ptr_depth=20; raise ptr_depth"):
        build_image([with_(a, codes=np.zeros((16, 3), np.uint8), bias=np.zeros(16, np.int64)),
                     with_(a, codes=np.zeros((2, 16), np.uint8), bias=np.zeros(2, np.int64), name="b")],
                    cfg.replace(spmat_depth=64))
    with pytest.raises(ValueError, match=r"layer 1 \('b'\): bias overflow: needs bias words 10..15 "
                                         r"\(ceil\(out_len / pes\) = 6\) but EIEConfig.bias_depth=15"):
        build_image([with_(a, codes=np.zeros((20, 3), np.uint8), bias=np.zeros(20, np.int64)),
                     with_(a, codes=np.zeros((12, 20), np.uint8), bias=np.zeros(12, np.int64), name="b")],
                    cfg.replace(spmat_depth=64, ptr_depth=64, bias_depth=15, act_depth=15))
    with pytest.raises(ValueError, match=r"network has 3 layers but EIEConfig.max_layers=2; raise max_layers"):
        build_image([with_(a, codes=np.zeros((3, 3), np.uint8), bias=np.zeros(3, np.int64))] * 3, cfg)
    with pytest.raises(ValueError, match=r"layer 1 \('b'\): in_len=5 does not match the previous layer's out_len=4"):
        build_image([a, good_layer(cfg, out_len=2, in_len=5, name="b")], cfg.replace(spmat_depth=64))
    with pytest.raises(ValueError, match=r"layer 0 \('a'\): out_len=40 is out of range 1..32 .*act_depth"):
        build_image([with_(a, codes=np.zeros((40, 3), np.uint8), bias=np.zeros(40, np.int64))], cfg)
    with pytest.raises(ValueError, match="at least one layer"):
        build_image([], cfg)
    wide = cfg.replace(index_bits=8, zrun_bits=8, entries_per_word=5)
    with pytest.raises(ValueError, match=r"Spmat words of 80 bits .*lower EIEConfig.entries_per_word"):
        build_image([QuantLayer(codes=np.ones((2, 2), np.uint8), codebook=np.zeros(256, np.int64),
                                bias=np.zeros(2, np.int64), shift=0, relu=False)], wide)


def test_memories_filled_exactly_fit_and_one_word_more_is_refused():
    """Every memory filled to its last word fits; one word more is a clear error.

    Two dense layers (4 x 3 and 4 x 4, every code 1) on 2 PEs with 2 entries per
    Spmat word. Counted by hand from docs/format.md: PE k holds rows k and k + 2 of
    each layer, so each column holds 2 entries per PE: 3 * 2 + 4 * 2 = 14 entries =
    7 Spmat words; pointers (in_len + 1 per layer) 4 + 5 = 9; bias words
    (ceil(out_len / pes) per layer) 2 + 2 = 4; 2 layer-table entries; out_len 4 =
    pes * act_depth. So the config below is an exact fit of every memory.
    """
    cfg = TINY.replace(pes=2, entries_per_word=2, spmat_depth=7, ptr_depth=9, bias_depth=4, act_depth=2,
                       max_layers=2)
    lo, hi = -(1 << (cfg.bias_bits - 1)), (1 << (cfg.bias_bits - 1)) - 1
    a = layer_of(np.ones((4, 3), np.uint8), cfg, name="a", bias=np.array([hi, lo, 0, 1]))
    b = layer_of(np.ones((4, 4), np.uint8), cfg, name="b", bias=np.array([lo, hi, -1, 0]))
    image = build_image([a, b], cfg)
    assert image.spmat.shape == (2, 7) and image.ptr.shape == (2, 9) and image.bias.shape == (2, 4)
    assert image.ptr[:, -1].tolist() == [14, 14]               # 14 entries: the last slot of word 6
    assert image.bias.max() == hi and image.bias.min() == lo    # the bias range's both ends are accepted
    NetworkImage(cfg, image.layers, image.spmat, image.ptr, image.codebook, image.bias)
    # One word (one pointer, one bias word) short: build_image names the memory and the numbers ...
    with pytest.raises(ValueError, match=r"layer 1 \('b'\): Spmat overflow: PE 0 needs 14 entries = 7 words "
                                         r"through this layer but EIEConfig.spmat_depth=6 \(12 entries\)"):
        build_image([a, b], cfg.replace(spmat_depth=6))
    with pytest.raises(ValueError, match=r"layer 1 \('b'\): pointer overflow: needs pointers 4..8 .*ptr_depth=8"):
        build_image([a, b], cfg.replace(ptr_depth=8))
    with pytest.raises(ValueError, match=r"layer 1 \('b'\): bias overflow: needs bias words 2..3 .*bias_depth=3"):
        build_image([a, b], cfg.replace(bias_depth=3))
    # ... and so does the image check, for an image made elsewhere (e.g. read from a file).
    for field, name, words in (("spmat_depth", "spmat", 7), ("ptr_depth", "ptr", 9), ("bias_depth", "bias", 4)):
        with pytest.raises(ValueError, match=rf"memory image {name} needs {words} words per PE but "
                                             rf"EIEConfig\.{field}={words - 1}; raise {field}"):
            NetworkImage(cfg.replace(**{field: words - 1}), image.layers, image.spmat, image.ptr, image.codebook,
                         image.bias)
    # A bias word one past either end of bias_bits is refused by the image check.
    for value in (hi + 1, lo - 1):
        bias = image.bias.copy()
        bias[1, 3] = value
        with pytest.raises(ValueError, match=rf"bias values must be in range {lo}..{hi} "
                                             rf"\(bias_bits={cfg.bias_bits}\)"):
            NetworkImage(cfg, image.layers, image.spmat, image.ptr, image.codebook, bias)


def test_encode_rejects_codes_beyond_codebook():
    cfg = TINY.replace(index_bits=2)
    layer = QuantLayer(codes=np.full((3, 3), 4, np.uint8), codebook=np.array([0, 1, 2, 3]),
                       bias=np.zeros(3, np.int64), shift=0, relu=False)
    with pytest.raises(ValueError, match=r"codes\[0, 0\]=4 is out of range 0..3"):
        encode_layer(layer, cfg)


def test_encode_speed_alex6():
    """Alex-6 (9216 x 4096 at 9 %) for 64 PEs encodes in a few seconds."""
    cfg = PRESETS["paper"]
    rng = np.random.default_rng(0)
    codes = ((rng.random((4096, 9216), np.float32) < 0.09) * rng.integers(1, 16, (4096, 9216), np.uint8))
    layer = layer_of(codes.astype(np.uint8), cfg)
    t = time.perf_counter()
    enc = encode_layer(layer, cfg)
    elapsed = time.perf_counter() - t
    assert enc.nnz == np.count_nonzero(codes)
    assert elapsed < 10, f"encoding Alex-6 took {elapsed:.1f} s"


def test_docs_worked_example():
    """The worked example of docs/format.md (words and pointers computed by hand there)."""
    cfg = EIEConfig(pes=2, zrun_bits=2, index_bits=4, entries_per_word=4, act_depth=8, bias_depth=8,
                    spmat_depth=16, ptr_depth=16, max_layers=2)
    codes = np.zeros((10, 3), np.uint8)
    codes[0, 0], codes[3, 0], codes[8, 0], codes[9, 2] = 1, 2, 3, 4
    codebook = np.zeros(16, np.int64)
    codebook[1:5] = [-3, 5, 7, -2]
    first = QuantLayer(codes=codes, codebook=codebook, bias=np.arange(10) * 10, shift=2, relu=True)
    second = QuantLayer(codes=np.ones((2, 10), np.uint8), codebook=codebook, bias=np.array([100, -100]), shift=0,
                        relu=False)
    enc = encode_layer(first, cfg)
    assert [enc.v[0].tolist(), enc.z[0].tolist(), enc.ptr[0].tolist()] == [[1, 3], [0, 3], [0, 2, 2, 2]]
    assert [enc.v[1].tolist(), enc.z[1].tolist(), enc.ptr[1].tolist()] == [[2, 0, 4], [1, 3, 0], [0, 1, 1, 3]]
    image = build_image([first, second], cfg)
    assert int(image.spmat[0, 0]) == 0x41cc1 and int(image.spmat[0, 1]) == 0x41041
    assert int(image.spmat[1, 0]) == 0x44c12
    assert image.ptr[0].tolist() == [0, 2, 2, 2] + list(range(2, 13))
    assert image.ptr[1].tolist() == [0, 1, 1, 3] + list(range(3, 14))
    assert image.bias.tolist() == [[0, 20, 40, 60, 80, 100], [10, 30, 50, 70, 90, -100]]
    assert [(t.ptr_base, t.codebook, t.bias_base) for t in image.layers] == [(0, 0, 0), (4, 1, 5)]


def test_bias_range_edges_are_exact():
    """tiny: acc_bits = 16 + 16 + clog2(512) + 1 = 42, bias_bits = acc_bits - 1 = 41, so a bias word
    holds -2**40 .. 2**40 - 1: both ends accepted, one beyond either refused."""
    lo, hi = -(2 ** 40), 2 ** 40 - 1
    for ok in (lo, hi):
        with_(good_layer(), bias=np.array([0] * 7 + [ok])).check(TINY)
    for bad in (lo - 1, hi + 1):
        with pytest.raises(ValueError, match=rf"bias\[7\]={bad} is out of range {lo}\.\.{hi} \(bias_bits=41"):
            with_(good_layer(), bias=np.array([0] * 7 + [bad])).check(TINY)


def _image(cfg=TINY):
    return build_image(random_network(np.random.default_rng(4), cfg, [20, 30, 10]), cfg)


def test_image_refuses_negative_and_too_wide_spmat_words():
    import dataclasses
    image = _image()
    signed = image.spmat.astype(np.int64)
    signed[0, 0] = -1
    with pytest.raises(ValueError, match=r"memory image spmat holds negative words; Spmat words are unsigned"):
        dataclasses.replace(image, spmat=signed)
    # entries_per_word=2, index_bits=4, zrun_bits=4: a word is 2 * (4 + 4) = 16 bits.
    cfg = TINY.replace(entries_per_word=2)
    image = _image(cfg)
    wide = image.spmat.copy()
    wide[0, 0] = 1 << 16
    with pytest.raises(ValueError, match=r"memory image spmat holds a word wider than spmat_word_bits=16"):
        dataclasses.replace(image, spmat=wide)


def test_image_codebook_shape_and_range_edges():
    """codebook_bits=16: values -32768..32767 (docs/format.md: signed codebook_bits values)."""
    import dataclasses
    image = _image()
    with pytest.raises(ValueError, match=r"codebook image must have shape \(slots, 16\), not \(2, 8\)"):
        dataclasses.replace(image, codebook=image.codebook[:, :8])
    for ok in (-32768, 32767):
        cb = image.codebook.copy()
        cb[1, 3] = ok
        dataclasses.replace(image, codebook=cb)
    for bad in (-32769, 32768):
        cb = image.codebook.copy()
        cb[1, 3] = bad
        with pytest.raises(ValueError, match=r"codebook values must be in range -32768\.\.32767 \(codebook_bits=16\)"):
            dataclasses.replace(image, codebook=cb)


@pytest.mark.parametrize("field, value", [(0, -1), (5, -1), (6, 2), (6, -1)])
def test_load_refuses_negative_layer_fields_and_bad_relu_flags(tmp_path, field, value):
    from eie.format import FormatError
    image = _image()
    image.save(tmp_path / "image.npz")
    with np.load(tmp_path / "image.npz") as z:
        arrays = dict(z)
    arrays["layers"][0, field] = value
    np.savez(tmp_path / "image.npz", **arrays)
    with pytest.raises(FormatError, match=r"the layer table holds a negative field or a relu flag other than 0 or 1"):
        NetworkImage.load(tmp_path / "image.npz")


def test_read_npy_names_an_npz_given_as_npy(tmp_path):
    from eie.format import FormatError, read_npy
    with open(tmp_path / "x.npy", "wb") as f:           # an .npz archive under a .npy name
        np.savez(f, a=np.zeros(3))
    with pytest.raises(FormatError, match=r"is an \.npz archive, not a \.npy inputs file"):
        read_npy(tmp_path / "x.npy", what="inputs file")
