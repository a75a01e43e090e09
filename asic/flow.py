"""``eie asic``: one EIE configuration through the standard-cell flow.

:func:`run_flow` does, in ``out_dir``:

1. ``rtl/``: the ASIC-target Verilog (:func:`eie.hw.verilog.asic_verilog`):
   every memory an SRAM-macro or register-file wrapper instance;
2. ``macros/``: figures of every SRAM shape (:mod:`eie.asic.sram`: CACTI, or
   an OpenRAM macro where one was built) and their liberty, LEF and black-box
   views;
3. ``synth/``: Yosys synthesis to the OSU cells (:mod:`eie.asic.synth`);
4. ``sta/``: OpenSTA on the netlist with the cells' and the macros' liberties
   (:mod:`eie.asic.sta`): critical path, Fmax;
5. area by component (:mod:`eie.asic.components`): standard cells per instance
   from Yosys' statistics, macros from their figures;
6. ``gatelevel/``: the netlist, with Verilog models of its cells and the SRAM
   behavioural models, in the cocotb testbench on a compressed network
   (digits-mlp by default), bit- and cycle-exact against the golden and cycle
   models, with Verilator's toggle coverage and every macro's access count;
7. power and energy per inference from that run (:mod:`eie.asic.power`);
8. ``report.json`` and ``report.png``.
"""

from __future__ import annotations

import json
import re
import time
from collections import defaultdict
from pathlib import Path

from eie.config import EIEConfig

from .components import COMPONENTS, component_of, pe_index

__all__ = ["run_flow", "area_report", "count_accesses"]

_ACCESS = re.compile(r"EIE_MEMORY_ACCESSES (\S+) (\d+) (\d+)")


def count_accesses(log_text: str, prefix: str = "eie_sim.dut.") -> dict:
    """``{instance path: (reads, writes)}`` from the ``EIE_MEMORY_ACCESSES`` lines of a
    simulation log (paths ``/``-separated below ``eie_top``, like
    :func:`eie.asic.synth.instance_tree`)."""
    out = {}
    for m in _ACCESS.finditer(log_text):
        path = m[1]
        if path.startswith(prefix):
            path = path[len(prefix):]
        out[path.replace(".", "/")] = (int(m[2]), int(m[3]))
    return out


def area_report(instances, modules: dict, macros: dict) -> dict:
    """Area by component, per PE and in total.

    ``instances``: :func:`eie.asic.synth.instance_tree`; ``modules``:
    :func:`eie.asic.synth.module_areas`; ``macros``: ``{module name: MacroFigures}``
    of the SRAM shapes. Standard-cell area counts each instance's own cells
    (a module instantiated once per path), macro area each macro instance.
    """
    by_comp = defaultdict(lambda: {"logic_um2": 0.0, "macro_um2": 0.0, "cells": 0, "macros": 0,
                                   "sequential_um2": 0.0})
    per_pe = defaultdict(float)
    for path, kind in instances:
        comp = component_of(path)
        entry = by_comp[comp]
        if kind in macros:
            entry["macro_um2"] += macros[kind].area_um2
            entry["macros"] += 1
            area = macros[kind].area_um2
        else:
            own = modules[kind]
            entry["logic_um2"] += own["area_um2"]
            entry["sequential_um2"] += own["sequential_area_um2"]
            entry["cells"] += own["cells"]
            area = own["area_um2"]
        if pe_index(path) is not None:
            per_pe[pe_index(path)] += area
    total = sum(e["logic_um2"] + e["macro_um2"] for e in by_comp.values())
    comps = {}
    for name in COMPONENTS:
        if name not in by_comp:
            continue
        e = by_comp[name]
        area = e["logic_um2"] + e["macro_um2"]
        comps[name] = {"area_um2": round(area, 1), "share": round(area / total, 4) if total else 0.0,
                       "logic_um2": round(e["logic_um2"], 1), "sequential_um2": round(e["sequential_um2"], 1),
                       "macro_um2": round(e["macro_um2"], 1), "cells": e["cells"], "macros": e["macros"]}
    macro_total = sum(e["macro_um2"] for e in by_comp.values())
    pes = sorted(per_pe)
    pe_area = [round(per_pe[k], 1) for k in pes]
    return {"total_um2": round(total, 1), "total_mm2": round(total / 1e6, 4),
            "logic_um2": round(total - macro_total, 1), "macro_um2": round(macro_total, 1),
            "sram_share": round(macro_total / total, 4) if total else 0.0,
            "cells": sum(e["cells"] for e in by_comp.values()),
            "components": comps, "per_pe_um2": pe_area,
            "pe_mean_um2": round(sum(pe_area) / len(pe_area), 1) if pe_area else None}


def _default_network(cfg: EIEConfig, root: Path, progress) -> Path:
    """digits-mlp compressed for ``cfg``, cached under ``root`` by config digest."""
    from eie.golden.pipeline import compress, write_output
    folder = root / f"digits-{cfg.digest}"
    if not (folder / "manifest.json").exists():
        progress(f"compressing digits-mlp for config {cfg.digest} (the gate-level workload)")
        write_output(compress("digits-mlp", cfg, progress=progress), folder, save_model=False)
    return folder


def run_flow(cfg: EIEConfig, *, tech: str = "osu018", clock_ns: float = 10.0, out_dir, network=None,
             inputs: str = "digits-test", limit: int | None = 20, gate_level: bool = True, power: bool = True,
             progress=None) -> dict:
    """Synthesis, STA, area, gate-level run and power of ``cfg``; the report as a dict
    (also written to ``out_dir/report.json``, with ``report.png``).

    ``gate_level=False`` stops after the area; ``power=False`` runs the
    gate-level proof once, without the toggle-coverage runs power needs."""
    from eie.hw.memory import ASICTarget, wrapper_verilog
    from eie.hw.verilog import asic_verilog

    from . import sram, synth
    from .sta import run_sta
    say = progress or (lambda message: None)
    out = Path(out_dir).resolve()
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    steps = {}
    tech_info = sram.tech(tech)

    # 1. RTL
    say(f"[1/7] ASIC-target Verilog of {cfg.pes} PEs (config {cfg.digest})")
    target = ASICTarget()
    verilog, _, memories = asic_verilog(cfg, target)
    rtl = out / "rtl"
    rtl.mkdir(exist_ok=True)
    (rtl / "eie.v").write_text(verilog)
    (rtl / "memories.v").write_text(wrapper_verilog(target.shapes))
    srams = [s for s in target.shapes if s.kind == "sram"]
    rfs = [s for s in target.shapes if s.kind == "rf"]
    steps["rtl_s"] = round(time.monotonic() - t0, 2)

    # 2. macros
    say(f"[2/7] SRAM macro figures for {len(srams)} shape(s) ({tech})")
    t = time.monotonic()
    figures = {s.module: sram.macro_figures(s.depth, s.width, tech, ports=s.ports, progress=say) for s in srams}
    views = out / "macros"
    views.mkdir(exist_ok=True)
    macro_lib = views / "macros.lib"
    macro_lib.write_text(sram.liberty_text(list(figures.values()), tech))
    (views / "macros.lef").write_text(sram.lef_text(list(figures.values()), tech))
    steps["macros_s"] = round(time.monotonic() - t, 2)

    # 3. synthesis
    say(f"[3/7] synthesis to {tech}")
    result = synth.synthesize(verilog, wrapper_verilog(srams), wrapper_verilog(rfs), tech_info.liberty,
                              out_dir=out / "synth", clock_ns=clock_ns, progress=say)
    steps["synth_s"] = result.seconds
    instances = synth.instance_tree(result.netlist_json)

    # 4. timing
    say("[4/7] static timing (OpenSTA)")
    timing = run_sta(result.netlist, [tech_info.liberty, macro_lib], out_dir=out / "sta", clock_ns=clock_ns,
                     progress=say)
    steps["sta_s"] = timing["seconds"]

    # 5. area
    say("[5/7] area by component")
    area = area_report(instances, result.modules, figures)

    report = {
        "config": cfg.to_dict(), "config_digest": cfg.digest, "pes": cfg.pes,
        "tech": {"name": tech, "node_nm": tech_info.node_nm, "vdd": tech_info.vdd, "liberty": str(tech_info.liberty)},
        "clock_ns": clock_ns, "area": area,
        "cells": {"total": area["cells"],
                  "by_type": _cells_by_type(instances, result.modules)},
        "timing": timing,
        "macros": {name: {"instances": sum(1 for _, k in instances if k == name), **fig.to_dict()}
                   for name, fig in figures.items()},
        "register_files": [s.module for s in rfs],
        "memories": [{"name": name, "module": shape.module, "kind": shape.kind} for name, shape in memories],
        "gate_level": None, "power": None,
    }

    # 6. + 7. gate-level run and power
    if gate_level:
        say("[6/7] gate-level simulation of the netlist in the cocotb testbench")
        from .gatelevel import gate_level_run
        network = Path(network) if network else _default_network(cfg, out.parent / "networks", say)
        gl = gate_level_run(cfg, result.netlist, srams, tech_info, network, out / "gatelevel", inputs=inputs,
                            limit=limit, activity=power, progress=say)
        report["gate_level"] = gl["summary"]
        steps["gate_level_s"] = gl["summary"]["wall_s"]
    if gate_level and power:
        say("[7/7] power and energy from the gate-level activity")
        from .power import power_report
        fmax = timing["fmax_mhz"]
        power = power_report(result.netlist_json, tech_info.library, gl["toggles"], cycles=gl["cycles"],
                             clock_period_ns=1000.0 / fmax if fmax else clock_ns, group_of=component_of,
                             sram_accesses=gl["accesses"],
                             sram_energy={path: figures[kind] for path, kind in instances if kind in figures})
        inferences = gl["summary"]["inferences"]
        power["energy_per_inference_nj"] = round(power["energy_pj"] / inferences / 1000.0, 4) if inferences else None
        power["at_fmax_mhz"] = fmax
        modules = dict(instances)
        power["sram_accesses"] = {path: list(rw) for path, rw in gl["accesses"].items() if path in figures_of(modules)}
        power["sram_modules"] = {path: modules[path] for path in power["sram_accesses"]}
        report["power"] = power
    report["steps"] = steps
    report["wall_s"] = round(time.monotonic() - t0, 2)
    (out / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    _plot(report, out / "report.png")
    report["files"] = {"report": str(out / "report.json"), "picture": str(out / "report.png"),
                       "netlist": str(result.netlist), "macro_liberty": str(macro_lib)}
    return report


def figures_of(modules: dict) -> set:
    """Instance paths of SRAM macros among ``{path: module}``."""
    return {path for path, kind in modules.items() if kind.startswith("eie_sram")}


def _cells_by_type(instances, modules) -> dict:
    counts = defaultdict(int)
    for _, kind in instances:
        for cell, n in modules.get(kind, {}).get("cells_by_type", {}).items():
            counts[cell] += n
    return dict(sorted(counts.items(), key=lambda kv: -kv[1]))


def _plot(report: dict, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    comps = report["area"]["components"]
    names = list(comps)
    fig, axes = plt.subplots(1, 2 if report.get("power") else 1, figsize=(12 if report.get("power") else 7, 4.5),
                             squeeze=False)
    ax = axes[0][0]
    logic = [comps[n]["logic_um2"] / 1e6 for n in names]
    macro = [comps[n]["macro_um2"] / 1e6 for n in names]
    ax.barh(names, macro, label="SRAM macros", color="tab:blue")
    ax.barh(names, logic, left=macro, label="standard cells", color="tab:orange")
    ax.invert_yaxis()
    ax.set_xlabel("area (mm²)")
    ax.set_title(f"{report['pes']} PEs, {report['tech']['name']}: {report['area']['total_mm2']:.2f} mm², "
                 f"Fmax {report['timing']['fmax_mhz']} MHz")
    ax.legend(loc="lower right")
    if report.get("power"):
        ax = axes[0][1]
        groups = report["power"]["groups"]
        pnames = [n for n in names if n in groups]
        ax.barh(pnames, [groups[n]["energy_pj"] / max(1, report["gate_level"]["inferences"]) / 1000.0
                         for n in pnames], color="tab:green")
        ax.invert_yaxis()
        ax.set_xlabel("energy per inference (nJ)")
        ax.set_title(f"{report['power']['energy_per_inference_nj']:.2f} nJ per inference, "
                     f"{report['power']['power_mw']:.1f} mW at {report['power']['at_fmax_mhz']} MHz")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
