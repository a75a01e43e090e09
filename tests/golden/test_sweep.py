"""``eie sweep``: the figures' files and the properties their numbers must have."""

import csv
import json

import numpy as np

from eie.config import preset
from eie.golden.synthetic import PaperLayer
from eie.golden.sweep import model_config, run_sweeps

TINY = PaperLayer("tiny", 120, 90, 0.15, 0.5, 1.0, 1.0)
DENSE_IN = PaperLayer("tiny-dense", 64, 50, 0.2, 1.0, 1.0, 1.0)


def _rows(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def test_model_config_ignores_memory_limits_but_keeps_widths():
    base = preset("paper")
    cfg = model_config(base, 1, 25088)
    assert cfg.max_len >= 25088 and cfg.pes == 1
    assert (cfg.act_bits, cfg.zrun_bits, cfg.fifo_depth) == (base.act_bits, base.zrun_bits, base.fifo_depth)


def test_padding_figures_without_cycle_model(tmp_path):
    run_sweeps(["fig12", "zrun"], [TINY], preset("paper"), tmp_path, pes_list=(1, 2, 4), zruns=(2, 4))
    for name in ("fig12", "zrun"):
        for ext in ("png", "csv", "json"):
            assert (tmp_path / f"{name}.{ext}").stat().st_size > 0
    rows = _rows(tmp_path / "zrun.csv")
    assert len(rows) == 2 * 3 * 2            # modes x PE counts x zero-run widths
    for n in ("1", "2", "4"):
        pad = {int(r["zrun_bits"]): int(r["padding"]) for r in rows if r["pes"] == n and r["mode"] == "interleaved"}
        assert pad[2] >= pad[4]               # wider zero runs never need more padding
        nnz = {int(r["nnz"]) for r in rows if r["pes"] == n}
        assert nnz == {int(np.count_nonzero(_tiny_codes()))}   # padding aside, every weight is stored once
    assert json.loads((tmp_path / "sweep.json").read_text())["figures"]["fig12"]["points"] == 2 * 3


def _tiny_codes():
    from eie.golden.synthetic import make_layer
    return make_layer(TINY, preset("paper"), 0)[0].codes


def test_cycle_model_figures(tmp_path):
    res = run_sweeps(["fig8", "fig11", "fig13", "cbuf"], [TINY, DENSE_IN], preset("paper"), tmp_path,
                     pes_list=(1, 2, 4), depths=(1, 2, 8), fig8_pes=4, cbufs=(1, 2, 8))
    for name in ("fig8", "fig11", "fig13", "cbuf"):
        assert (tmp_path / f"{name}.png").stat().st_size > 1000
    f8 = _rows(tmp_path / "fig8.csv")
    assert len(f8) == 2 * 2 * 3
    for r in f8:
        assert int(r["cycles"]) >= int(r["bound"]) > 0          # nothing beats the bound
    for layer in ("tiny", "tiny-dense"):
        for mode in ("balanced", "interleaved"):
            eff = [float(r["efficiency"]) for r in f8 if r["layer"] == layer and r["mode"] == mode]
            assert eff[-1] >= eff[0]                             # a deeper queue never hurts (depth 8 vs 1)
    f11 = _rows(tmp_path / "fig11.csv")
    one = [r for r in f11 if r["pes"] == "1"]
    assert one and all(float(r["speedup"]) == 1.0 for r in one)
    cb = _rows(tmp_path / "cbuf.csv")
    for layer in ("tiny", "tiny-dense"):
        for mode in ("balanced", "interleaved"):
            cyc = [int(r["cycles"]) for r in cb if r["layer"] == layer and r["mode"] == mode]
            assert len(cyc) == 3 and cyc == sorted(cyc, reverse=True)   # more buffering never costs cycles
    assert res["timing"]["model_runs"] == len(f8) + len(f11) + len(cb)
