"""The 45 nm projection rules (asic/projection.py) on a hand-made report."""

import pytest

from eie.asic.projection import project
from eie.asic.sram import MacroFigures


def _fig(area, clk_to_q):
    return MacroFigures(words=64, width=16, tech="nm45", node_nm=45, area_um2=area, width_um=1.0, height_um=1.0,
                        clk_to_q_ns=clk_to_q, setup_ns=0.03, min_period_ns=0.7, read_energy_pj=1.0,
                        write_energy_pj=2.0, leakage_uw=0.1, source="test", ports="1r1w")


def test_area_and_clock_rules():
    report = {
        "tech": {"node_nm": 180, "vdd": 1.8}, "pes": 1,
        "macros": {"eie_sram_64x16": {"instances": 1}},
        "memories": [{"name": "spmat", "module": "eie_sram_64x16", "kind": "sram"}],
        "area": {"components": {"Spmat": {"logic_um2": 0.0}, "arithmetic": {"logic_um2": 1600.0},
                                "CCU": {"logic_um2": 160.0}}},
        "timing": {"min_period_ns": 8.0, "critical_path": {"points": [
            {"cell": None, "incr_ns": 0.0}, {"cell": "eie_sram_64x16", "incr_ns": 4.0}]}},
    }
    p = project(report, macros_45={"eie_sram_64x16": _fig(500.0, 1.0)})
    assert p["components"]["arithmetic"]["area_um2"] == pytest.approx(1600 / 16)     # (45/180)^2 = 1/16
    assert p["components"]["Spmat"]["area_um2"] == pytest.approx(500.0)               # CACTI at 45 nm
    assert p["total_mm2"] == pytest.approx((100 + 10 + 500) / 1e6, abs=1e-4)
    assert p["pe_mm2"] == pytest.approx(600 / 1e6, abs=1e-4)
    assert p["min_period_ns"] == pytest.approx(1.0 + (8.0 - 4.0) / 4)                 # SRAM access + logic / 4
    report["timing"]["critical_path"]["points"][1]["cell"] = "DFFPOSX1"
    assert project(report, macros_45={"eie_sram_64x16": _fig(500.0, 1.0)})["min_period_ns"] == pytest.approx(2.0)
