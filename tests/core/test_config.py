import json
from dataclasses import fields, replace

import pytest

from eie.config import DEFAULT, PRESETS, EIEConfig, _LIMITS, clog2, preset


def test_clog2():
    assert [clog2(n) for n in (1, 2, 3, 4, 5, 8, 9, 1024, 1025)] == [0, 1, 2, 2, 3, 3, 4, 10, 11]
    with pytest.raises(ValueError, match="positive integer"):
        clog2(0)


@pytest.mark.parametrize("name", sorted(_LIMITS))
def test_every_field_range_is_checked(name):
    lo, hi, _ = _LIMITS[name]
    for bad in (lo - 1, hi + 1):
        with pytest.raises(ValueError, match=rf"EIEConfig\.{name} .*must be in range {lo}\.\.{hi}, not {bad}"):
            replace(DEFAULT, **{name: bad})


@pytest.mark.parametrize("bad", [1.5, "4", True, None])
def test_non_integer_rejected(bad):
    with pytest.raises(ValueError, match=r"EIEConfig\.pes .*must be an integer"):
        replace(DEFAULT, pes=bad)


def test_cross_field_checks():
    with pytest.raises(ValueError, match=r"act_frac_bits must be in range 0\.\.15"):
        replace(DEFAULT, act_frac_bits=16)
    with pytest.raises(ValueError, match=r"bias_depth must be in range 128\.\."):
        replace(DEFAULT, act_depth=128, bias_depth=64)
    with pytest.raises(ValueError, match="64-bit accumulator"):
        replace(DEFAULT, act_bits=32, codebook_bits=32)


def test_derived_widths():
    c = PRESETS["paper"]
    assert c.codebook_size == 16 and c.max_zrun == 15 and c.entry_bits == 8
    assert c.spmat_word_bits == 64                       # the paper's 64-bit Spmat word
    assert c.spmat_entries == 131072                     # 128 KB of 8-bit entries
    assert c.ptr_bits == 18                              # 16-bit pointers cannot address 131 K entries
    assert c.max_len == 4096 and c.len_bits == 13 and c.col_bits == 12
    # the accumulator holds max_len products of two 16-bit values plus the bias, without overflow
    worst = c.max_len * (1 << 30) + (1 << (c.bias_bits - 1))
    assert worst <= (1 << (c.acc_bits - 1))
    # docs/protocol.md: in_len, out_len (len_bits each), ptr_base, codebook slot, bias_base, shift, relu
    assert c.layer_entry_bits == (2 * clog2(c.max_len + 1) + clog2(c.ptr_depth) + clog2(c.max_layers)
                                  + clog2(c.bias_depth) + clog2(c.acc_bits) + 1)
    assert c.layer_entry_bits == 2 * 13 + 14 + 4 + 10 + 6 + 1


def test_json_round_trip(tmp_path):
    for cfg in PRESETS.values():
        assert EIEConfig.from_json(cfg.to_json()) == cfg
        path = tmp_path / "cfg.json"
        cfg.save(path)
        assert EIEConfig.load(path) == cfg
    # an artifact carrying its config under "config" loads too
    (tmp_path / "art.json").write_text(json.dumps({"config": PRESETS["paper"].to_dict(), "other": 1}))
    assert EIEConfig.load(tmp_path / "art.json") == PRESETS["paper"]


def test_unknown_field_and_preset():
    with pytest.raises(ValueError, match="unknown field.*pe_count"):
        EIEConfig.from_dict({"pe_count": 4})
    with pytest.raises(ValueError, match="unknown config preset 'huge'; choose one of paper, tiny"):
        preset("huge")


def test_frozen_and_digest():
    cfg = PRESETS["tiny"]
    with pytest.raises(Exception):
        cfg.pes = 8
    assert cfg.digest == EIEConfig.from_dict(cfg.to_dict()).digest
    assert cfg.digest != replace(cfg, fifo_depth=2).digest
    assert len({f.name for f in fields(cfg)}) == len(_LIMITS)


def test_area_options_round_trip_and_digest():
    from eie.boards.platforms import ICE40_PRESET, ICE40_TARGET
    for cfg in (ICE40_PRESET, ICE40_TARGET):
        assert EIEConfig.from_json(cfg.to_json()) == cfg
    assert ICE40_PRESET.pe_counters == 0 and ICE40_TARGET.merge_codebook_bias == 1 and ICE40_PRESET.host_readback == 0
    # Fields added later leave the digest of a config that keeps their defaults alone
    # (older designs' INFO words and image digests stay valid) and change it otherwise.
    tiny = PRESETS["tiny"]
    assert (tiny.digest, PRESETS["paper"].digest) == ("4555cf3461887865", "3ae361afc099c359")   # as before
    assert len({tiny.digest, tiny.replace(pe_counters=0).digest, tiny.replace(merge_codebook_bias=1).digest,
                tiny.replace(host_readback=0).digest, tiny.replace(bias_width=12).digest}) == 5
    assert tiny.replace(bias_width=12).bias_bits == 12 and tiny.bias_bits == tiny.acc_bits - 1
    for bad in (1, tiny.acc_bits):
        with pytest.raises(ValueError, match=rf"EIEConfig\.bias_width must be 0 \(acc_bits - 1\) or in range "
                                             rf"2\.\.{tiny.acc_bits - 1} \(below acc_bits={tiny.acc_bits}\), not {bad}"):
            tiny.replace(bias_width=bad)
    with pytest.raises(ValueError, match=r"EIEConfig\.pe_counters .*must be in range 0\.\.1, not 2"):
        tiny.replace(pe_counters=2)


def test_index_bits_lower_limit_is_one():
    """docs: index_bits is the codebook address width, 1..8 bits; 1 (a two-entry codebook) is accepted,
    0 (a one-entry codebook holding only the pruned weight) is refused."""
    assert replace(DEFAULT, index_bits=1).codebook_size == 2
    with pytest.raises(ValueError, match=r"EIEConfig\.index_bits .*must be in range 1\.\.8, not 0"):
        replace(DEFAULT, index_bits=0)
    assert replace(DEFAULT, index_bits=8).codebook_size == 256
    with pytest.raises(ValueError, match=r"EIEConfig\.index_bits .*must be in range 1\.\.8, not 9"):
        replace(DEFAULT, index_bits=9)
