"""``eie bench``: cycles and load efficiency on the paper's nine layers.

For each synthetic layer of :data:`eie.golden.synthetic.PAPER_LAYERS` (seeded,
uniformly random at the paper's densities) on the ``paper`` preset with the
command line's overrides, this reports

* ``cycles``: the exact cycle count of the generated hardware, from the cycle
  model (:mod:`eie.golden.cycle_model`), always; ``cycles_rtl`` from the
  Verilator simulation of the generated Verilog with ``--rtl`` (layers that fit
  the config's memories only; the others say why not);
* ``bound`` = ``max(B, ceil(W / N))`` (``eie.golden.reference.layer_work``) and
  the load efficiency ``bound / cycles``; ``max_pe_work`` (``max_k W_k``)
  separates the row assignment's share of the loss from the queues' share;
* padding entries, latency in microseconds at 800 MHz, and the paper's actual
  and theoretical figures (``paper_efficiency`` = theoretical / actual) and the
  issue's H100 PyTorch baseline beside ours;
* the layer both with the compress-time row assignment of
  :mod:`eie.golden.balance` (``balanced``, the default design) and with the
  paper's plain interleave (``interleaved``); ``--no-balance`` makes the plain
  interleave the reported design and skips the balancing.

``--json`` prints ``{"config", "layers": [...], "summary"}`` with one object per
layer. Progress goes to stderr.
"""

from __future__ import annotations

import math
import sys
import time
from pathlib import Path

__all__ = ["H100_BASELINE_US", "add_arguments", "main", "bench_layer", "bench_config",
           "summarize", "TARGET_MIN_EFFICIENCY", "TARGET_GEOMEAN_EFFICIENCY"]

# The issue's baseline: an H100 at batch 1 with PyTorch 2.11, median
# microseconds with CUDA-graph replay, best of dense fp16, dense fp32 and CSR
# fp32. Re-measure with bench/baselines.py.
H100_BASELINE_US = {
    "Alex-6": 26.9, "Alex-7": 11.4, "Alex-8": 5.9,
    "VGG-6": 30.1, "VGG-7": 11.4, "VGG-8": 5.6,
    "NT-We": 5.1, "NT-Wd": 6.8, "NT-LSTM": 6.2,
}

# Targets of issue 5 at 64 PEs and queue depth 8.
TARGET_MIN_EFFICIENCY = 0.90
TARGET_GEOMEAN_EFFICIENCY = 0.95


def add_arguments(parser) -> None:
    parser.add_argument("--layer", action="append", default=None, metavar="NAME|all",
                        help="a layer of the paper's table (repeat, or comma-separate; default: all)")
    parser.add_argument("--config", default=None, metavar="FILE",
                        help="base config (JSON, or any artifact carrying one); default: the paper preset")
    parser.add_argument("--pes", type=int, default=None, help="number of PEs (default: 64, the paper's)")
    parser.add_argument("--fifo-depth", type=int, default=None, help="activation-queue depth (default: 8)")
    parser.add_argument("--column-buffer-depth", type=int, default=None,
                        help="column buffer depth between pointer read and Spmat read (default: the config's)")
    parser.add_argument("--balance", dest="balance", action="store_true", default=True,
                        help="report the balanced row assignment (default), beside the plain interleave")
    parser.add_argument("--no-balance", dest="balance", action="store_false",
                        help="report the paper's plain interleave only (row i on PE i mod N)")
    parser.add_argument("--rtl", action="store_true",
                        help="also run the layers that fit the config's memories in the Verilator simulation")
    parser.add_argument("--seed", type=int, default=0, help="seed of the synthetic layers (default: 0)")
    parser.add_argument("--build-dir", default="build/bench", help="job folders of --rtl runs (default: build/bench)")


def bench_config(base=None, pes=None, fifo_depth=None, column_buffer_depth=None):
    """The ``paper`` preset (or ``base``) with the given overrides."""
    from eie.config import preset
    cfg = base or preset("paper")
    changes = {k: v for k, v in (("pes", pes), ("fifo_depth", fifo_depth),
                                 ("column_buffer_depth", column_buffer_depth)) if v is not None}
    return cfg.replace(**changes) if changes else cfg


def _model_figures(cfg, enc, x, layer_cycles) -> dict:
    """Cycle-model cycles and the work figures of one encoded layer on input ``x`` (hardware order)."""
    from eie.golden.reference import layer_work
    from eie.golden.synthetic import CLOCK_MHZ
    work = layer_work(enc, x, cfg)
    t0 = time.perf_counter()
    timing = layer_cycles(cfg, enc.col_entries, x, enc.out_len)
    model_s = time.perf_counter() - t0
    cycles = int(timing.cycles)
    return {"cycles": cycles, "bound": work.bound, "efficiency": round(work.bound / cycles, 4),
            "broadcasts": work.broadcasts, "work": work.work, "max_pe_work": work.max_pe_work,
            "mean_pe_work": round(work.work / cfg.pes, 1),
            "padding": enc.padding, "padding_work": work.padding_work, "entries": enc.entries,
            "latency_us": round(cycles / CLOCK_MHZ, 3), "model_s": round(model_s, 3)}


def bench_layer(name, cfg, *, seed: int = 0, balance: bool = True, rtl: bool = False,
                build_dir="build/bench", log=None) -> dict:
    """All figures of one paper layer (see the module docstring); ``log`` gets progress lines.

    ``name`` is a key of ``PAPER_LAYERS`` or a :class:`~eie.golden.synthetic.PaperLayer`
    (any shape and densities, e.g. a small one for tests).
    """
    import numpy as np
    from eie.golden.balance import balance_network, calibration_inputs, permute_input
    from eie.golden.cycle_model import layer_cycles
    from eie.golden.encode import encode_layer
    from eie.golden.synthetic import PAPER_LAYERS, PaperLayer, make_layer

    log = log or (lambda msg: None)
    if isinstance(name, PaperLayer):
        spec, name = name, name.name
    elif name in PAPER_LAYERS:
        spec = PAPER_LAYERS[name]
    else:
        raise ValueError(f"unknown layer {name!r}; choose one of {', '.join(PAPER_LAYERS)}")
    times = {}
    t0 = time.perf_counter()
    layer, x = make_layer(spec, cfg, seed)
    times["generate_s"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    enc_i = encode_layer(layer, cfg)
    times["encode_s"] = time.perf_counter() - t0
    inter = _model_figures(cfg, enc_i, x, layer_cycles)
    modes = {"interleaved": inter}
    design = {"layer": layer, "x": x}
    if balance:
        t0 = time.perf_counter()
        b = balance_network([layer], cfg, calibration_inputs(spec, seed), seed=seed)
        times["balance_s"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        enc_b = encode_layer(b.layers[0], cfg)
        times["encode_s"] += time.perf_counter() - t0
        xb = permute_input(x, b.input_perm)
        bal = _model_figures(cfg, enc_b, xb, layer_cycles)
        bal["input_reordered"] = bool(not np.array_equal(b.input_perm, np.arange(layer.in_len)))
        modes["balanced"] = bal
        design = {"layer": b.layers[0], "x": xb}
    primary = modes["balanced" if balance else "interleaved"]
    times["model_s"] = sum(m["model_s"] for m in modes.values())
    paper_eff = spec.paper_theoretical_us / spec.paper_actual_us
    row = {"layer": name, "in_len": spec.in_len, "out_len": spec.out_len,
           "weight_density": spec.weight_density, "act_density": spec.act_density,
           "pes": cfg.pes, "fifo_depth": cfg.fifo_depth, "column_buffer_depth": cfg.column_buffer_depth,
           "zrun_bits": cfg.zrun_bits, "balanced": balance,
           **{k: primary[k] for k in ("cycles", "bound", "efficiency", "broadcasts", "work", "max_pe_work",
                                      "padding", "padding_work", "entries", "latency_us")},
           "paper_actual_us": spec.paper_actual_us, "paper_theoretical_us": spec.paper_theoretical_us,
           "paper_actual_cycles": spec.paper_actual_cycles,
           "paper_theoretical_cycles": spec.paper_theoretical_cycles,
           "paper_efficiency": round(paper_eff, 4),
           "h100_us": H100_BASELINE_US.get(name),
           "interleaved": inter}
    if balance:
        row["balanced_figures"] = modes["balanced"]
        row["speedup_vs_interleaved"] = round(inter["cycles"] / modes["balanced"]["cycles"], 4)
    log(f"{name}: {'balanced' if balance else 'interleaved'} {primary['cycles']} cycles, bound {primary['bound']}, "
        f"efficiency {primary['efficiency']:.3f} (paper {paper_eff:.3f})"
        + (f"; interleaved {inter['cycles']} cycles, {inter['efficiency']:.3f}" if balance else ""))
    if rtl:
        row.update(_run_rtl(name, cfg, design["layer"], design["x"], Path(build_dir), log))
        if row.get("cycles_rtl") is not None:
            row["rtl_matches_model"] = row["cycles_rtl"] == row.get("cycles_model_run", row["cycles"])
    row["times"] = {k: round(v, 3) for k, v in times.items()}
    return row


def _run_rtl(name: str, cfg, layer, x, build_dir: Path, log) -> dict:
    """Run one layer in the Verilator simulation; ``cycles_rtl`` or ``rtl_skipped`` (why not)."""
    import numpy as np
    from eie.golden.encode import build_image
    try:
        image = build_image([layer], cfg)
    except ValueError as e:
        log(f"{name}: not run in RTL: {e}")
        return {"cycles_rtl": None, "rtl_skipped": f"does not fit the config's memories: {e}"}
    from eie.golden.cycle_model import predict
    from eie.sim import driver, runner
    t0 = time.perf_counter()
    sim = runner.build(cfg, log=log)
    t_build = time.perf_counter() - t0
    job = build_dir / f"{name}-{cfg.digest}"
    driver.write_job(job, cfg, [(name, image, np.asarray(x)[None, :])], locate=False)
    t0 = time.perf_counter()
    log(f"{name}: running in RTL (Verilator)")
    res, failure = driver.run_job(sim, job)
    t_run = time.perf_counter() - t0
    out = {"rtl_build_s": round(t_build, 2), "rtl_run_s": round(t_run, 2),
           "cycles_model_run": int(predict(image, x).cycles)}
    try:
        if res is None:
            raise FileNotFoundError(driver.RESULT_FILE)
        inf = res["networks"][0]["inferences"][0]
        out.update(cycles_rtl=int(inf["cycles"]), rtl_mismatches=int(res["mismatches"]))
        log(f"{name}: RTL {inf['cycles']} cycles (model {out['cycles_model_run']}), "
            f"{res['mismatches']} mismatches, {t_run:.1f} s")
    except (FileNotFoundError, KeyError, IndexError):
        out.update(cycles_rtl=None, rtl_error=failure or "no result from the testbench")
        log(f"{name}: RTL run failed: {out['rtl_error'][-300:]}")
    if failure and "rtl_error" not in out:
        out["rtl_error"] = failure
    return out


def _layer_names(values) -> list:
    from eie.golden.synthetic import PAPER_LAYERS
    names = []
    for v in values or ["all"]:
        for n in v.split(","):
            n = n.strip()
            if n == "all":
                names.extend(PAPER_LAYERS)
            elif n in PAPER_LAYERS:
                names.append(n)
            else:
                raise ValueError(f"unknown layer {n!r}; choose 'all' or one of {', '.join(PAPER_LAYERS)}")
    return list(dict.fromkeys(names))


def _geomean(values) -> float:
    return math.exp(sum(math.log(v) for v in values) / len(values)) if values else float("nan")


def summarize(rows: list, cfg) -> dict:
    eff = [r["efficiency"] for r in rows]
    s = {"layers": len(rows), "geomean_efficiency": round(_geomean(eff), 4), "min_efficiency": min(eff),
         "geomean_paper_efficiency": round(_geomean([r["paper_efficiency"] for r in rows]), 4),
         "above_paper_on_every_layer": all(r["efficiency"] > r["paper_efficiency"] for r in rows),
         "below_paper": [r["layer"] for r in rows if r["efficiency"] <= r["paper_efficiency"]],
         "geomean_efficiency_interleaved": round(_geomean([r["interleaved"]["efficiency"] for r in rows]), 4),
         "model_s": round(sum(r["times"]["model_s"] for r in rows), 3),
         "prepare_s": round(sum(r["times"].get("generate_s", 0) + r["times"].get("encode_s", 0)
                                + r["times"].get("balance_s", 0) for r in rows), 3)}
    if all("speedup_vs_interleaved" in r for r in rows):
        s["geomean_speedup_vs_interleaved"] = round(_geomean([r["speedup_vs_interleaved"] for r in rows]), 4)
    s["targets_met"] = (s["above_paper_on_every_layer"] and s["min_efficiency"] >= TARGET_MIN_EFFICIENCY
                        and s["geomean_efficiency"] >= TARGET_GEOMEAN_EFFICIENCY)
    rtl = [r for r in rows if r.get("cycles_rtl") is not None]
    if rtl:
        s["rtl_layers"] = [r["layer"] for r in rtl]
        s["rtl_equals_model"] = all(r["rtl_matches_model"] for r in rtl)
    return s


def _print_table(rows: list, summary: dict, cfg, balance: bool) -> None:
    mode = "balanced" if balance else "interleaved"
    print(f"EIE bench: {cfg.pes} PEs, queue depth {cfg.fifo_depth}, column buffer {cfg.column_buffer_depth}, "
          f"{cfg.zrun_bits}-bit zero runs, {mode} rows, 800 MHz")
    head = (f"{'layer':8s} {'cycles':>7s} {'bound':>7s} {'eff':>6s} {'paper':>6s} {'maxWk':>7s} {'padding':>8s} "
            f"{'us':>7s} {'paper us':>8s} {'theo us':>7s} {'H100 us':>7s}")
    if balance:
        head += f" {'interl.':>7s} {'eff':>6s}"
    head += f" {'RTL':>7s}"
    print(head)
    for r in rows:
        line = (f"{r['layer']:8s} {r['cycles']:7d} {r['bound']:7d} {r['efficiency']:6.3f} {r['paper_efficiency']:6.3f} "
                f"{r['max_pe_work']:7d} {r['padding']:8d} {r['latency_us']:7.2f} {r['paper_actual_us']:8.1f} "
                f"{r['paper_theoretical_us']:7.1f} {r['h100_us'] or float('nan'):7.1f}")
        if balance:
            line += f" {r['interleaved']['cycles']:7d} {r['interleaved']['efficiency']:6.3f}"
        if r.get("cycles_rtl") is not None:
            line += f" {r['cycles_rtl']:7d}" + ("" if r["rtl_matches_model"] else " (!= model)")
        elif "rtl_skipped" in r:
            line += f" {'n/a':>7s}"
        else:
            line += f" {'-':>7s}"
        print(line)
    print(f"geomean efficiency {summary['geomean_efficiency']:.3f} (paper {summary['geomean_paper_efficiency']:.3f}"
          + (f", interleaved {summary['geomean_efficiency_interleaved']:.3f}" if balance else "")
          + f"); min {summary['min_efficiency']:.3f}; targets met: {summary['targets_met']}")
    print(f"cycle model {summary['model_s']:.2f} s; generation + encoding + balancing {summary['prepare_s']:.2f} s")


def main(args) -> int:
    import json
    from eie.config import EIEConfig

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    base = EIEConfig.load(args.config) if args.config else None
    cfg = bench_config(base, args.pes, args.fifo_depth, args.column_buffer_depth)
    names = _layer_names(args.layer)
    t0 = time.perf_counter()
    rows = [bench_layer(n, cfg, seed=args.seed, balance=args.balance, rtl=args.rtl, build_dir=args.build_dir,
                        log=log) for n in names]
    summary = summarize(rows, cfg)
    summary["wall_s"] = round(time.perf_counter() - t0, 2)
    if args.json:
        print(json.dumps({"config": cfg.to_dict(), "seed": args.seed, "layers": rows, "summary": summary}))
    else:
        _print_table(rows, summary, cfg, args.balance)
    return 0
