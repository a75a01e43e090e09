"""A projection of a measured ``eie asic`` report to 45 nm, beside the paper's Table II.

Labelled as a projection everywhere it is shown. Rules (one place, stated):

- standard-cell area x (45 / L)² (the square of the node ratio; real 45 nm
  libraries are denser than this rule for flip-flops and less for wires, so
  it is a first-order figure);
- logic delay x (45 / L); an SRAM clk->q on the critical path is replaced by
  CACTI's 45 nm access time of the same shape;
- dynamic logic energy x (45 / L) x (V45 / V)² (capacitance scales with the
  feature size, energy with C V²); logic leakage is not projected (it depends
  on the 45 nm library's threshold-voltage mix) and is left out;
- SRAM macros: CACTI run at 45 nm for each shape (area, energy per access,
  leakage), with the access counts of the measured run.
"""

from __future__ import annotations

__all__ = ["PAPER", "V45", "project"]

# The paper's own figures (EIE, ISCA 2016; shared/EIE.md and the ASIC issue):
# 64 PEs, 45 nm, 800 MHz.
PAPER = {"node_nm": 45, "pes": 64, "clock_mhz": 800, "total_mm2": 40.8, "total_mw": 590,
         "pe_mm2": 0.638, "pe_mw": 9.2, "spmat_share_of_pe": 0.736, "memory_share_of_pe": 0.93}
V45 = 1.0          # assumed nominal supply of a 45 nm process (shared/EIE.md gives none for the paper)


def project(report: dict, *, macros_45: dict, node_nm: int = 45) -> dict:
    """Project ``report`` (of :func:`eie.asic.flow.run_flow`) to ``node_nm``.

    ``macros_45``: ``{module: MacroFigures}`` of every SRAM shape in the report at
    ``node_nm`` (CACTI). Returns per-component areas, per-PE area and SRAM
    share, the projected clock and, when the report has power, energy."""
    L = report["tech"]["node_nm"]
    k_area, k_delay = (node_nm / L) ** 2, node_nm / L
    k_energy = (node_nm / L) * (V45 / report["tech"]["vdd"]) ** 2
    comps = {}
    macro_area = {}
    for name, m in report["macros"].items():
        macro_area[name] = macros_45[name].area_um2
    by_comp_macro = {}
    for mem in report["memories"]:
        if mem["kind"] == "sram":
            from .components import PE_MEMORIES
            comp = PE_MEMORIES.get(mem["name"], "CCU")
            by_comp_macro[comp] = by_comp_macro.get(comp, 0.0) + macro_area[mem["module"]]
    for name, c in report["area"]["components"].items():
        logic = c["logic_um2"] * k_area
        macro = by_comp_macro.get(name, 0.0)
        comps[name] = {"area_um2": round(logic + macro, 1), "logic_um2": round(logic, 1), "macro_um2": round(macro, 1)}
    total = sum(c["area_um2"] for c in comps.values())
    pes = report["pes"]
    pe_comps = [n for n in comps if n not in ("CCU", "LNZD", "top")]
    pe_area = sum(comps[n]["area_um2"] for n in pe_comps) / pes
    pe_macro = sum(comps[n]["macro_um2"] for n in pe_comps) / pes
    path = report["timing"]["critical_path"]
    period = report["timing"]["min_period_ns"]
    first = path["points"][1] if len(path.get("points", [])) > 1 else None
    if first and first["cell"] and first["cell"] in macros_45:
        period = macros_45[first["cell"]].clk_to_q_ns + (period - first["incr_ns"]) * k_delay
    else:
        period *= k_delay
    out = {"label": f"projection from {L} nm to {node_nm} nm (not a synthesis at {node_nm} nm)",
           "node_nm": node_nm, "from_node_nm": L, "pes": pes, "components": comps,
           "total_mm2": round(total / 1e6, 4), "pe_mm2": round(pe_area / 1e6, 4),
           "pe_sram_share": round(pe_macro / pe_area, 4) if pe_area else None,
           "spmat_share_of_pe": round(comps.get("Spmat", {"area_um2": 0})["area_um2"] / pes / pe_area, 4),
           "min_period_ns": round(period, 3), "fmax_mhz": round(1000 / period, 1),
           "rules": {"area": f"x ({node_nm}/{L})^2", "delay": f"x {node_nm}/{L}",
                     "logic_energy": f"x ({node_nm}/{L}) x ({V45}/{report['tech']['vdd']})^2",
                     "sram": f"CACTI at {node_nm} nm", "logic_leakage": "not projected"}}
    power = report.get("power")
    if power:
        logic_pj = sum(g["switching_pj"] + g["internal_pj"] for g in power["groups"].values()) * k_energy
        sram_pj = 0.0
        for path_, (reads, writes) in power.get("sram_accesses", {}).items():
            kind = power["sram_modules"][path_]
            sram_pj += reads * macros_45[kind].read_energy_pj + writes * macros_45[kind].write_energy_pj
        inf = report["gate_level"]["inferences"]
        window = report["gate_level"]["window_cycles"]
        energy = logic_pj + sram_pj
        out["energy_per_inference_nj"] = round(energy / inf / 1000, 4)
        out["power_mw_at_fmax"] = round(energy / (window * period) , 3) if window else None
        out["logic_energy_pj"], out["sram_energy_pj"] = round(logic_pj, 1), round(sram_pj, 1)
    return out
