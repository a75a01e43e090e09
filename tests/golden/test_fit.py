"""golden/fit.py and `eie compress`: memories sized to the network, every overflow of a pinned config at once."""

import json

import numpy as np
import pytest
import torch
import torch.nn as nn

from eie.cli import main
from eie.config import EIEConfig, preset
from eie.format import NetworkImage, read_manifest
from eie.golden.encode import QuantLayer, build_image, load_layers
from eie.golden.fit import ConfigFitError
from eie.golden.models import set_threads

set_threads()

TINY = preset("tiny")


def _dense(out_len, in_len, cfg, name):
    return QuantLayer(codes=np.ones((out_len, in_len), np.uint8), codebook=np.arange(cfg.codebook_size),
                      bias=np.zeros(out_len, np.int64), shift=0, relu=True, name=name)


def test_three_overflows_in_one_error():
    """Two dense layers (8 x 6, 4 x 8) on 2 PEs, 2 entries per word: Spmat 4 * 6 + 2 * 8 = 40 entries
    = 20 words per PE, pointers 7 + 9 = 16, bias words 4 + 2 = 6; the config has 8, 8 and 4 of them."""
    cfg = TINY.replace(pes=2, entries_per_word=2, spmat_depth=8, ptr_depth=8, act_depth=4, bias_depth=4,
                       max_layers=2)
    layers = [_dense(8, 6, cfg, "a"), _dense(4, 8, cfg, "b")]
    with pytest.raises(ConfigFitError) as info:
        build_image(layers, cfg)
    e = info.value
    assert e.overflows == [{"field": "spmat_depth", "needed": 20, "limit": 8},
                           {"field": "ptr_depth", "needed": 16, "limit": 8},
                           {"field": "bias_depth", "needed": 6, "limit": 4}]
    msg = str(e)
    assert "3 memories overflow" in msg
    for text in ("spmat_depth needs 20 (limit 8)", "ptr_depth needs 16 (limit 8)", "bias_depth needs 6 (limit 4)",
                 "Spmat overflow", "pointer overflow", "bias overflow"):
        assert text in msg
    assert e.changes == {"spmat_depth": 32, "ptr_depth": 16, "bias_depth": 8}
    assert json.dumps(e.changes) in msg
    build_image(layers, e.fitting)            # the suggested config fits


def _model(tmp_path):
    torch.manual_seed(0)
    path = tmp_path / "m.pt"
    torch.save(nn.Sequential(nn.Linear(40, 300), nn.ReLU(), nn.Linear(300, 70), nn.ReLU(), nn.Linear(70, 10)), path)
    return path


def run_json(capsys, *argv):
    rc = main(["compress", *argv, "--json"])
    return rc, json.loads(capsys.readouterr().out)


def test_pinned_config_lists_every_overflow(tmp_path, capsys):
    cfg_path = tmp_path / "cfg.json"
    TINY.replace(pes=2, act_depth=16, bias_depth=16, ptr_depth=64, spmat_depth=16).save(cfg_path)
    rc, report = run_json(capsys, "--model", str(_model(tmp_path)), "--config", str(cfg_path),
                          "--density", "0.5", "-o", str(tmp_path / "o"))
    assert rc == 2
    fields = [o["field"] for o in report["overflows"]]
    assert fields == ["act_depth", "spmat_depth", "ptr_depth", "bias_depth"]
    assert report["needs"]["act_depth"] == 150 and report["needs"]["ptr_depth"] == 41 + 301 + 71
    assert report["needs"]["bias_depth"] == 150 + 35 + 5
    for f in fields:
        assert f"{f} needs {report['needs'][f]}" in report["error"]
    assert report["fitting_changes"]["act_depth"] == 256 and report["fitting_changes"]["ptr_depth"] == 512
    assert not (tmp_path / "o" / "image.npz").exists()


def test_pes_sizes_every_memory(tmp_path, capsys):
    """--pes 3 without --config: each memory is the smallest power of two >= what the network needs,
    computed here from the shapes (and, for the Spmat, from the saved layers' codes: per PE and column,
    one entry per nonzero plus one padding entry per max_zrun + 1 zeros before it)."""
    pes = 3
    rc, report = run_json(capsys, "--model", str(_model(tmp_path)), "--pes", str(pes), "--density", "0.3",
                          "-o", str(tmp_path / "o"))
    assert rc == 0
    cfg = EIEConfig.from_dict(report["config"])
    shapes = [(40, 300), (300, 70), (70, 10)]
    layers = load_layers(tmp_path / "o" / "layers.npz")
    entries = np.zeros(pes, np.int64)
    for layer in layers:
        for k in range(pes):
            rows = layer.codes[k::pes]
            for col in rows.T:                 # entries of a column: its nonzeros plus a padding entry
                nz = np.flatnonzero(col)       # per run of more than max_zrun zeros before one
                prev = -1
                for r in nz:
                    entries[k] += 1 + (r - prev - 1) // (cfg.max_zrun + 1)
                    prev = r
    need = {"act_depth": -(-300 // pes), "ptr_depth": sum(i + 1 for i, _ in shapes),
            "bias_depth": sum(-(-o // pes) for _, o in shapes), "max_layers": 3,
            "spmat_depth": -(-int(entries.max()) // cfg.entries_per_word)}

    def smallest_pow2(n):
        p = 1
        while p < n:
            p *= 2
        return p
    for field, n in need.items():
        want = smallest_pow2(n)
        if field == "bias_depth":
            want = max(want, cfg.act_depth)
        assert getattr(cfg, field) == want, field
        assert report["memories"]["fields"][field] == {"needed": n, "chosen": want}
    assert cfg.act_depth == 128 and cfg.ptr_depth == 512 and cfg.max_layers == 4 and cfg.pes == pes
    assert report["memories"]["fitted"] is True
    assert NetworkImage.load(tmp_path / "o" / "image.npz").config == cfg
    assert EIEConfig.from_dict(read_manifest(tmp_path / "o")["config"]) == cfg


def test_inputs_measure_fidelity(tmp_path, capsys):
    X = np.random.default_rng(0).standard_normal((50, 40)).astype(np.float32)
    np.save(tmp_path / "x.npy", X)
    rc = main(["compress", "--model", str(_model(tmp_path)), "--inputs", str(tmp_path / "x.npy"), "--pes", "4",
               "-o", str(tmp_path / "o")])
    out = capsys.readouterr().out
    assert rc == 0 and "fidelity against the float model on --inputs: 10 held-out inputs" in out
    assert "fixed point: rel. L2 error" in out and "memories sized to the network" in out
    manifest = read_manifest(tmp_path / "o")
    fid = manifest["fidelity"]
    for stage in ("pruned", "shared", "fixed_point"):
        f = fid[stage]
        assert f["samples"] == 10 and f["accuracy"] is None
        assert 0 < f["rel_l2"] < 2 and f["sqnr_db"] is not None and -1 <= f["cosine"] <= 1
        assert f["max_abs_error"] > 0 and 0 <= f["argmax_agreement"] <= 1
