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
import shutil
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


def _sim_cycles(activity) -> int:
    """Clock cycles a run simulated: its trace's time span over the testbench clock."""
    from eie.sim.tb import CLOCK_NS
    return int(round(activity.span_s / (CLOCK_NS * 1e-9)))


# Verilator options of the activity run: a SAIF file of every net's toggle count
# (`_123_` ones too), per instance. (Toggle coverage, ``--coverage-toggle
# --coverage-underscore --flatten``, gives the same counts, but its instrumentation
# made the 2-PE netlist's C++ too big to compile in half an hour.)
ACTIVITY_ARGS = ["--trace-saif", "--trace-underscore"]


def gate_level_run(cfg, netlist, srams, tech_info, network, out_dir, *, inputs: str = "digits-test",
                   limit: int | None = 20, activity: bool = True, progress=None) -> dict:
    """Run ``network`` on the gate-level ``netlist`` twice (``limit // 2`` and ``limit``
    inferences) with every net's toggle count (a SAIF file) and SRAM access counts.

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

    from eie.sim.runner import SAIF_FILE

    from .activity import saif_toggles
    from .cells import cell_models_verilog
    say = progress or (lambda message: None)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    limit = max(2, limit or 20)
    generator = netlist_generator(netlist, wrapper_verilog(srams, count_accesses=True),
                                  cell_models_verilog(tech_info.library))
    if not activity:            # the proof alone: one run, no tracing
        say(f"gate-level: {limit} inference(s) of {inputs} on the {cfg.pes}-PE netlist")
        res = simulate(network, inputs=inputs, limit=limit, generator=generator, progress=say)
        _check(res)
        summary = _summary(res, res["inferences"], res["mismatches"], None, res["build_s"], res["wall_s"],
                           network, inputs, netlist)
        (out / "gate_level.json").write_text(json.dumps(summary, indent=2) + "\n")
        return {"summary": summary}
    runs = []
    for n in (limit // 2, limit):
        say(f"gate-level: {n} inference(s) of {inputs} on the {cfg.pes}-PE netlist (with toggle counts)")
        res = simulate(network, inputs=inputs, limit=n, generator=generator, extra_args=ACTIVITY_ARGS,
                       keep_job=True, progress=say)
        _check(res)
        job = Path(res["job"])
        log = (job / "sim.log").read_text(errors="replace")
        from .flow import count_accesses
        saif = out / f"activity-{n}.saif"        # kept: any SAIF-reading power tool can use it
        shutil.copyfile(job / SAIF_FILE, saif)
        acts = saif_toggles(saif)
        runs.append({"result": res, "toggles": acts.toggles, "accesses": count_accesses(log),
                     "cycles": _sim_cycles(acts)})
        shutil.rmtree(job, ignore_errors=True)
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
