"""``eie bench``: the JSON fields and the figures' consistency on small layers (cycle model only)."""

import json

import numpy as np
import pytest

from eie.cli import main
from eie.config import preset
from eie.golden.synthetic import PAPER_LAYERS, PaperLayer, make_layer


from eie.sim.bench import H100_BASELINE_US, bench_config, bench_layer

SMALL = PaperLayer("small", 200, 150, 0.1, 0.4, 2.0, 1.5)


def _work_by_hand(codes, x, pes, max_zrun):
    """B, W and max_k W_k of the plain interleave, straight from the definitions (no encoder)."""
    active = np.flatnonzero(x)
    pe_work = np.zeros(pes, np.int64)
    for k in range(pes):
        for j in active:
            run = 0
            for v in codes[k::pes, j]:
                if not v:
                    run += 1
                    continue
                pe_work[k] += 1 + run // (max_zrun + 1)
                run = 0
    w = int(pe_work.sum())
    return len(active), w, int(pe_work.max()), max(len(active), -(-w // pes))


def test_bench_layer_figures_agree_with_definitions():
    cfg = bench_config(pes=4, fifo_depth=2)
    row = bench_layer(SMALL, cfg, seed=3)
    layer, x = make_layer(SMALL, cfg, 3)
    b, w, wmax, bound = _work_by_hand(layer.codes, x, 4, cfg.max_zrun)
    inter = row["interleaved"]
    assert (inter["broadcasts"], inter["work"], inter["max_pe_work"], inter["bound"]) == (b, w, wmax, bound)
    for fig in (inter, row["balanced_figures"]):
        assert fig["cycles"] >= fig["bound"]
        assert fig["efficiency"] == round(fig["bound"] / fig["cycles"], 4)
        assert fig["latency_us"] == round(fig["cycles"] / 800, 3)
    assert row["cycles"] == row["balanced_figures"]["cycles"]
    assert row["balanced_figures"]["broadcasts"] == b          # balancing never changes the broadcasts
    assert row["paper_efficiency"] == round(1.5 / 2.0, 4)
    assert row["pes"] == 4 and row["fifo_depth"] == 2


def test_bench_cli_json_fields(capsys):
    assert main(["bench", "--layer", "NT-LSTM", "--pes", "16", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    (row,) = out["layers"]
    for key in ("layer", "pes", "fifo_depth", "cycles", "bound", "efficiency", "padding", "paper_actual_cycles",
                "paper_efficiency", "interleaved", "balanced_figures", "latency_us", "h100_us"):
        assert key in row, key
    spec = PAPER_LAYERS["NT-LSTM"]
    assert row["paper_actual_cycles"] == round(spec.paper_actual_us * 800)
    assert row["h100_us"] == H100_BASELINE_US["NT-LSTM"]
    assert row["pes"] == 16 and out["config"]["pes"] == 16
    assert out["summary"]["layers"] == 1


def test_no_balance_reports_the_interleave_only(capsys):
    assert main(["bench", "--layer", "NT-We", "--pes", "8", "--no-balance", "--json"]) == 0
    row = json.loads(capsys.readouterr().out)["layers"][0]
    assert row["balanced"] is False and "balanced_figures" not in row
    assert row["cycles"] == row["interleaved"]["cycles"]


def test_unknown_layer_is_refused(capsys):
    assert main(["bench", "--layer", "Alex-9", "--json"]) == 2
    assert "unknown layer" in json.loads(capsys.readouterr().out)["error"]


def test_rtl_is_skipped_with_the_reason_when_the_layer_does_not_fit(tmp_path):
    cfg = preset("tiny")                                  # max_len = 4 * 128 = 512
    big = PaperLayer("big", 600, 40, 0.1, 0.5, 1.0, 1.0)
    row = bench_layer(big, cfg, rtl=True, build_dir=tmp_path)
    assert row["cycles_rtl"] is None
    assert "does not fit" in row["rtl_skipped"] and "in_len=600" in row["rtl_skipped"]


@pytest.mark.slow
def test_rtl_cycles_equal_model_cycles_on_a_small_layer(tmp_path):
    """Shares the Verilator build of the ``tiny`` preset with the simulation tests (~2 min if it is not built)."""
    cfg = preset("tiny")
    row = bench_layer(SMALL, cfg, seed=1, rtl=True, build_dir=tmp_path)
    assert row["rtl_mismatches"] == 0
    assert row["cycles_rtl"] == row["cycles"] == row["cycles_model_run"]
    assert row["rtl_matches_model"] is True
