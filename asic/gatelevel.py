"""Simulation sources of an ASIC design for the existing cocotb testbench.

The testbench (:mod:`eie.sim.tb`, driven by :func:`eie.sim.cli.simulate`) runs
whatever Verilog a :class:`eie.sim.runner.Generator` gives it as module
``eie_top``. Two generators stand for the ASIC half:

- :func:`rtl_generator`: ``eie.v`` of the ASIC target (memories as wrapper
  instances) plus the wrappers' behavioural models (``memories.v``): the RTL an
  ASIC flow starts from, which must behave exactly like the FPGA RTL;
- :func:`netlist_generator`: the synthesised gate-level netlist plus Verilog
  models of its standard cells (written from the liberty by
  :mod:`eie.asic.cells`, so Verilator can run them: the vendor models use UDPs)
  and the SRAM macros' behavioural models: what is checked bit- and
  cycle-exact against the golden and cycle models.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from eie.sim.runner import Generator, HwGenerator

__all__ = ["rtl_generator", "netlist_generator"]


def _asic_rtl(cfg) -> str:
    from eie.hw.verilog import asic_verilog
    verilog, models, _ = asic_verilog(cfg)
    return verilog + "\n" + models


def rtl_generator() -> Generator:
    """The ASIC-target RTL of this checkout's ``eie.hw`` with its memory models."""
    return Generator("eie.hw asic-rtl", HwGenerator().key, _asic_rtl)


def netlist_generator(netlist, sram_models: str, cell_models: str) -> Generator:
    """A fixed gate-level ``netlist`` (path) with the SRAM-wrapper models and cell models.

    The key hashes all three texts, so a new netlist builds a new model and
    the same one reuses the cached build."""
    text = "\n".join([Path(netlist).read_text(), sram_models, cell_models])
    key = hashlib.sha256(text.encode()).hexdigest()[:12]
    return Generator("eie.asic netlist", key, lambda cfg: text)


def _sim_cycles(job: Path) -> int:
    """Clock cycles the cocotb run simulated (its ``sim_time_ns`` over the testbench clock)."""
    import xml.etree.ElementTree as ET
    from eie.sim.tb import CLOCK_NS
    root = ET.parse(job / "results.xml").getroot()
    times = [float(tc.get("sim_time_ns", 0)) for tc in root.iter("testcase")]
    return int(round(sum(times) / CLOCK_NS))


# Verilator options of the activity run: count every net (`_123_` ones too), and per
# instance (a module Verilator does not inline would otherwise share one counter set
# across its instances, silently).
COVERAGE_ARGS = ["--coverage-toggle", "--coverage-underscore", "--flatten"]


def gate_level_run(cfg, netlist, srams, tech_info, network, out_dir, *, inputs: str = "digits-test",
                   limit: int | None = 20, activity: bool = True, progress=None) -> dict:
    """Run ``network`` on the gate-level ``netlist`` twice (``limit // 2`` and ``limit``
    inferences) with toggle coverage and SRAM access counts.

    Every inference of both runs is checked bit for bit against the golden model
    and its cycles against the cycle model (a mismatch raises ``RuntimeError``).
    The activity of one inference is the difference of the two runs divided by
    the difference of their inference counts: the network load and reset,
    identical in both runs, cancel. Returns ``summary`` (for the report),
    ``toggles`` (per net), ``accesses`` (per SRAM instance), ``cycles`` (of the
    difference window).
    """
    from eie.hw.memory import wrapper_verilog
    from eie.sim.cli import simulate

    from .activity import coverage_toggles
    from .cells import cell_models_verilog
    say = progress or (lambda message: None)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    limit = max(2, limit or 20)
    generator = netlist_generator(netlist, wrapper_verilog(srams, count_accesses=True),
                                  cell_models_verilog(tech_info.library))
    if not activity:            # the proof alone: one run, no coverage instrumentation
        say(f"gate-level: {limit} inference(s) of {inputs} on the {cfg.pes}-PE netlist")
        res = simulate(network, inputs=inputs, limit=limit, generator=generator, progress=say)
        _check(res)
        summary = _summary(res, res["inferences"], res["mismatches"], None, res["build_s"], res["wall_s"],
                           network, inputs, netlist)
        (out / "gate_level.json").write_text(json.dumps(summary, indent=2) + "\n")
        return {"summary": summary}
    runs = []
    for n in (limit // 2, limit):
        say(f"gate-level: {n} inference(s) of {inputs} on the {cfg.pes}-PE netlist (with toggle coverage)")
        res = simulate(network, inputs=inputs, limit=n, generator=generator, extra_args=COVERAGE_ARGS,
                       keep_job=True, progress=say)
        _check(res)
        job = Path(res["job"])
        log = (job / "sim.log").read_text(errors="replace")
        from .flow import count_accesses
        runs.append({"result": res, "toggles": coverage_toggles(job / "coverage.dat"),
                     "accesses": count_accesses(log), "cycles": _sim_cycles(job)})
    a, b = runs
    n_inf = b["result"]["inferences"] - a["result"]["inferences"]
    toggles = {net: b["toggles"].get(net, 0) - a["toggles"].get(net, 0) for net in b["toggles"]}
    accesses = {path: (rw[0] - a["accesses"].get(path, (0, 0))[0], rw[1] - a["accesses"].get(path, (0, 0))[1])
                for path, rw in b["accesses"].items()}
    res = b["result"]
    summary = _summary(res, a["result"]["inferences"] + res["inferences"],
                       a["result"]["mismatches"] + res["mismatches"], b["cycles"] - a["cycles"],
                       a["result"]["build_s"], round(a["result"]["wall_s"] + res["wall_s"], 2), network, inputs,
                       netlist)
    summary["inferences"] = n_inf
    (out / "gate_level.json").write_text(json.dumps(summary, indent=2) + "\n")
    return {"summary": summary, "toggles": toggles, "accesses": accesses, "cycles": b["cycles"] - a["cycles"]}


def _check(res: dict) -> None:
    if res["mismatches"] or res["cycles"] != res["cycles_model"]:
        raise RuntimeError(f"gate-level netlist disagrees with the golden/cycle model: {res['mismatches']} "
                           f"mismatch(es), first {res['first_mismatch']}; job {res['job']}")


def _summary(res, checked, mismatches, window, build_s, wall_s, network, inputs, netlist) -> dict:
    return {"inferences": res["inferences"], "inferences_checked": checked, "mismatches": mismatches,
            "cycles_equal_model": res["cycles"] == res["cycles_model"], "cycles": res["cycles"],
            "cycles_model": res["cycles_model"], "accuracy_rtl": res["accuracy_rtl"],
            "accuracy_golden": res["accuracy_golden"], "window_cycles": window, "build_s": build_s,
            "wall_s": wall_s, "network": str(network), "inputs": inputs, "simulator": "verilator",
            "netlist": str(netlist)}
