"""``eie sweep``: design-space sweeps of the paper's layers from the cycle model, with plots.

Figures (numbers as CSV and JSON, plots as PNG, in ``-o DIR``, default ``build/sweep``):

``fig8``   load efficiency (bound / cycles) against activation-queue depth 1..256 at 64 PEs (paper Fig. 8)
``fig11``  speed-up over one PE against PE count 1..256, queue depth 8 (paper Fig. 11)
``fig12``  padding entries (share of all entries) against PE count (paper Fig. 12)
``fig13``  load balance against PE count: bound / cycles, and mean / max per-PE work (paper Fig. 13)
``zrun``   padding and Spmat bits per weight against PE count for 4- and 5-bit zero runs
``cbuf``   load efficiency against the PE's column-buffer depth 1..32 at 64 PEs, queue depth 8

``--rtl`` runs the points of fig8 and fig11 on the RTL instead: each (figure,
layer, mode, point) is a task (:mod:`eie.cluster`; ``--jobs N`` or ``--ray``)
that builds the config with memories sized to the layer
(:func:`rtl_config`; Verilator, cached per node by config digest) and runs
the layer, reporting RTL cycles beside the cycle model's (``rtl.json``,
``rtl.csv``). Use ``--scale`` to keep the layers small.

Every figure is computed for the balanced row assignment (:mod:`eie.golden.balance`)
and for the paper's plain interleave unless ``--mode`` picks one. The sweeps
use the cycle model's per-layer entry point on the encoded columns
(:func:`eie.golden.cycle_model.layer_cycles`), with encodings cached per PE
count, so no memory image is built and the config's memory sizes do not apply
(a model-only config with register files large enough for the longest layer is
used; widths, queue depth and column buffer are the ``paper`` preset's).
"""

from __future__ import annotations

import csv
import json
import math
import sys
import time
from dataclasses import replace
from pathlib import Path

__all__ = ["FIGURES", "add_arguments", "main", "run_sweeps", "Sweeper", "model_config", "DEFAULT_PES",
           "DEFAULT_DEPTHS", "DEFAULT_CBUF"]

FIGURES = ("fig8", "fig11", "fig12", "fig13", "zrun", "cbuf")
DEFAULT_PES = (1, 2, 4, 8, 16, 32, 64, 128, 256)
DEFAULT_DEPTHS = (1, 2, 4, 8, 16, 32, 64, 128, 256)
DEFAULT_CBUF = (1, 2, 4, 8, 16, 32)
MODES = ("balanced", "interleaved")


def add_arguments(parser) -> None:
    parser.add_argument("figure", nargs="*", default=["all"], metavar="FIGURE",
                        help=f"one or more of {', '.join(FIGURES)}, or all (default)")
    parser.add_argument("--layers", nargs="+", default=None, metavar="NAME",
                        help="layers of the paper's table (default: all nine)")
    parser.add_argument("-o", "--output", default="build/sweep", metavar="DIR",
                        help="folder for the PNG, CSV and JSON files (default: build/sweep)")
    parser.add_argument("--mode", choices=("both",) + MODES, default="both",
                        help="row assignment(s) to sweep (default: both)")
    parser.add_argument("--pes-list", default=",".join(map(str, DEFAULT_PES)), metavar="N,N,...",
                        help="PE counts of fig11/fig12/fig13/zrun (default: 1,2,4,...,256)")
    parser.add_argument("--depths", default=",".join(map(str, DEFAULT_DEPTHS)), metavar="D,D,...",
                        help="queue depths of fig8 (default: 1,2,4,...,256)")
    parser.add_argument("--cbuf-list", default=",".join(map(str, DEFAULT_CBUF)), metavar="C,C,...",
                        help="column-buffer depths of cbuf (default: 1,2,4,...,32)")
    parser.add_argument("--pes", type=int, default=64, help="PE count of fig8 and cbuf (default: 64)")
    parser.add_argument("--fifo-depth", type=int, default=8, help="queue depth of the PE sweeps (default: 8)")
    parser.add_argument("--column-buffer-depth", type=int, default=None,
                        help="column buffer depth (default: the paper preset's)")
    parser.add_argument("--credit-bypass", type=int, choices=(0, 1), default=None,
                        help="EIEConfig.credit_bypass: 1 spends a returned credit in the cycle it reaches the CCU "
                             "(default: the paper preset's)")
    parser.add_argument("--zrun-bits", default="4,5", metavar="Z,Z",
                        help="zero-run widths compared by zrun (default: 4,5)")
    parser.add_argument("--scale", type=int, default=1,
                        help="divide every layer's rows and columns by this (quick looks and tests; default 1)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the synthetic layers (default: 0)")
    parser.add_argument("--rtl", action="store_true",
                        help="instead of the cycle model alone: each point of fig8 (queue depths) and fig11 (PE "
                             "counts) is a task that builds the config (memories sized to the layers) and runs "
                             "the layers in the Verilator simulation: RTL cycles beside the model's "
                             "(use --scale; with --jobs N or --ray, docs/cluster.md)")
    parser.add_argument("--fpga", metavar="BOARD",
                        help="instead of the cycle model: each PE count of fig11 is a task that builds a bitstream "
                             "for BOARD (eie build): Fmax and utilisation per point (minutes each; --jobs N or "
                             "--ray)")
    parser.add_argument("--clock", type=float, default=None, metavar="MHZ",
                        help="with --fpga: the design clock (default: the board's)")
    from eie.cluster import add_arguments as add_cluster_arguments
    add_cluster_arguments(parser)


def _int_list(text: str, what: str, lo: int, hi: int) -> list:
    try:
        values = [int(v) for v in str(text).split(",") if v.strip()]
    except ValueError:
        raise ValueError(f"{what} must be comma-separated integers, not {text!r}") from None
    if not values or any(not lo <= v <= hi for v in values):
        raise ValueError(f"{what} must be integers in range {lo}..{hi}, not {text!r}")
    return sorted(set(values))


def model_config(base, pes: int, longest: int, **changes):
    """``base`` with ``pes`` PEs and register files large enough for vectors of ``longest`` (model-only sweeps)."""
    act_depth = max(base.act_depth, -(-longest // pes))
    return replace(base, pes=pes, act_depth=act_depth, bias_depth=max(base.bias_depth, act_depth), **changes)


class Sweeper:
    """Encodings and cycle-model runs of a set of layers, cached per (layer, PEs, zero-run bits, mode)."""

    def __init__(self, specs, base, seed: int = 0, log=None):
        self.specs = list(specs)
        self.base = base
        self.seed = seed
        self.log = log or (lambda msg: None)
        self.longest = max(max(s.in_len, s.out_len) for s in self.specs)
        self._layers = {}
        self._enc = {}
        self.timing = {"prepare_s": 0.0, "model_s": 0.0, "model_runs": 0}

    def cfg(self, pes: int, **changes):
        return model_config(self.base, pes, self.longest, **changes)

    def layer(self, spec):
        """The synthetic layer and input (generated with the base widths; independent of the PE count)."""
        if spec.name not in self._layers:
            from .synthetic import make_layer
            self._layers[spec.name] = make_layer(spec, self.base, self.seed)
        return self._layers[spec.name]

    def encoded(self, spec, pes: int, mode: str, zrun_bits: int | None = None):
        """``(EncodedLayer, x in hardware order)`` for ``pes`` PEs under ``mode``."""
        z = self.base.zrun_bits if zrun_bits is None else zrun_bits
        key = (spec.name, pes, z, mode)
        if key not in self._enc:
            from .balance import balance_network, permute_input
            from .encode import encode_layer
            t0 = time.perf_counter()
            layer, x = self.layer(spec)
            cfg = self.cfg(pes, zrun_bits=z)
            if mode == "balanced" and pes > 1:
                calib = _calibration(spec, self.seed)
                b = balance_network([layer], cfg, calib, seed=self.seed)
                layer, x = b.layers[0], permute_input(x, b.input_perm)
            enc = encode_layer(layer, cfg)
            self._enc[key] = (enc, x)
            self.timing["prepare_s"] += time.perf_counter() - t0
            self.log(f"  encoded {spec.name} for {pes} PEs ({mode}, {z}-bit zero runs) "
                     f"in {time.perf_counter() - t0:.1f} s")
        return self._enc[key]

    def run(self, spec, pes: int, mode: str, fifo_depth: int, column_buffer_depth=None) -> dict:
        """Cycle-model cycles and work figures of one point."""
        from .cycle_model import layer_cycles
        from .reference import layer_work
        enc, x = self.encoded(spec, pes, mode)
        changes = {"fifo_depth": fifo_depth}
        if column_buffer_depth is not None:
            changes["column_buffer_depth"] = column_buffer_depth
        cfg = self.cfg(pes, **changes)
        work = layer_work(enc, x, cfg)
        t0 = time.perf_counter()
        cycles = int(layer_cycles(cfg, enc.col_entries, x, enc.out_len).cycles)
        self.timing["model_s"] += time.perf_counter() - t0
        self.timing["model_runs"] += 1
        return {"layer": spec.name, "mode": mode, "pes": pes, "fifo_depth": fifo_depth,
                "column_buffer_depth": cfg.column_buffer_depth, "cycles": cycles, "bound": work.bound,
                "efficiency": round(work.bound / cycles, 4), "broadcasts": work.broadcasts, "work": work.work,
                "max_pe_work": work.max_pe_work,
                "work_balance": round(work.work / pes / work.max_pe_work, 4) if work.max_pe_work else 1.0}


def _calibration(spec, seed):
    from .balance import calibration_inputs
    return calibration_inputs(spec, seed)


# -- the figures -----------------------------------------------------------------

def sweep_fig8(sw: Sweeper, modes, depths, pes: int, cbuf=None) -> list:
    rows = []
    for spec in sw.specs:
        for mode in modes:
            for d in depths:
                rows.append(sw.run(spec, pes, mode, d, cbuf))
            sw.log(f"fig8: {spec.name} {mode}: " + " ".join(f"{r['fifo_depth']}:{r['efficiency']:.3f}"
                                                           for r in rows[-len(depths):]))
    return rows


def sweep_cbuf(sw: Sweeper, modes, cbufs, pes: int, depth: int) -> list:
    rows = []
    for spec in sw.specs:
        for mode in modes:
            pts = [sw.run(spec, pes, mode, depth, c) for c in cbufs]
            rows.extend(pts)
            sw.log(f"cbuf: {spec.name} {mode}: " + " ".join(f"{p['column_buffer_depth']}:{p['efficiency']:.3f}"
                                                           for p in pts))
    return rows


def sweep_pes(sw: Sweeper, modes, pes_list, depth: int, cbuf=None) -> list:
    """Cycle-model points against PE count (fig11 and fig13 share them)."""
    rows = []
    for spec in sw.specs:
        for mode in modes:
            pts = [sw.run(spec, n, mode, depth, cbuf) for n in pes_list]
            base = pts[0]["cycles"] if pts[0]["pes"] == 1 else None
            for p in pts:
                p["speedup"] = round(base / p["cycles"], 3) if base else None
            rows.extend(pts)
            sw.log(f"PE sweep: {spec.name} {mode}: " + " ".join(f"{p['pes']}:{p['cycles']}" for p in pts))
    return rows


def sweep_padding(sw: Sweeper, modes, pes_list, zruns) -> list:
    rows = []
    for spec in sw.specs:
        for mode in modes:
            for z in zruns:
                for n in pes_list:
                    enc, x = sw.encoded(spec, n, mode, z)
                    rows.append({"layer": spec.name, "mode": mode, "pes": n, "zrun_bits": z,
                                 "entries": enc.entries, "padding": enc.padding, "nnz": enc.nnz,
                                 "padding_share": round(enc.padding / max(1, enc.entries), 4),
                                 "spmat_bits_per_weight": round(enc.entries * (sw.base.index_bits + z)
                                                                / max(1, enc.nnz), 3)})
            sw.log(f"padding: {spec.name} {mode} done")
    return rows


# -- output ------------------------------------------------------------------------

def _write_csv(path: Path, rows: list) -> None:
    keys = list(dict.fromkeys(k for r in rows for k in r))
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=keys)
        w.writeheader()
        w.writerows(rows)


def _plt():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def _series(rows, x, y, **match):
    pts = [r for r in rows if all(r.get(k) == v for k, v in match.items()) and r.get(y) is not None]
    pts.sort(key=lambda r: r[x])
    return [r[x] for r in pts], [r[y] for r in pts]


_STYLE = {"balanced": "-", "interleaved": "--"}


def _legend_modes(ax, modes):
    from matplotlib.lines import Line2D
    handles = [Line2D([], [], color="k", ls=_STYLE[m], label=m) for m in modes]
    return ax.legend(handles=handles, loc="lower left", fontsize=8)


def _layer_colors(specs):
    plt = _plt()
    cmap = plt.get_cmap("tab10")
    return {s.name: cmap(i % 10) for i, s in enumerate(specs)}


def _plot_layers(ax, rows, specs, modes, x, y, colors, scale=1.0, label=True, **match):
    """One line per layer and row assignment: ``y`` against ``x`` (balanced solid, interleaved dashed)."""
    for s in specs:
        for m in modes:
            xs, ys = _series(rows, x, y, layer=s.name, mode=m, **match)
            ax.plot(xs, [scale * v for v in ys], _STYLE[m], marker="o", ms=3, color=colors[s.name],
                    label=s.name if label and m == modes[0] else None)


def _finish(fig, path):
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    _plt().close(fig)


def plot_fig8(rows, specs, modes, path, pes):
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    colors = _layer_colors(specs)
    _plot_layers(ax, rows, specs, modes, "fifo_depth", "efficiency", colors)
    ax.set_xscale("log", base=2)
    ax.set_xlabel("activation-queue depth")
    ax.set_ylabel("load efficiency (bound / cycles)")
    ax.set_title(f"Load efficiency vs queue depth, {pes} PEs (cf. EIE Fig. 8)")
    ax.set_ylim(0, 1.02)
    ax.grid(True, alpha=0.3)
    first = ax.legend(loc="lower right", fontsize=8, ncol=2)
    ax.add_artist(first)
    _legend_modes(ax, modes)
    _finish(fig, path)


def plot_cbuf(rows, specs, modes, path, pes, depth):
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    colors = _layer_colors(specs)
    _plot_layers(ax, rows, specs, modes, "column_buffer_depth", "efficiency", colors)
    ax.set_xscale("log", base=2)
    ax.set_xlabel("column-buffer depth (non-empty columns between pointer read and Spmat read)")
    ax.set_ylabel("load efficiency (bound / cycles)")
    ax.set_title(f"Load efficiency vs column-buffer depth, {pes} PEs, queue depth {depth}")
    ax.grid(True, alpha=0.3)
    first = ax.legend(loc="lower right", fontsize=8, ncol=2)
    ax.add_artist(first)
    _legend_modes(ax, modes)
    _finish(fig, path)


def plot_fig11(rows, specs, modes, path, depth):
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    colors = _layer_colors(specs)
    allx = sorted({r["pes"] for r in rows})
    ax.plot(allx, allx, ":", color="gray", label="linear")
    _plot_layers(ax, rows, specs, modes, "pes", "speedup", colors)
    ax.set_xscale("log", base=2)
    ax.set_yscale("log", base=2)
    ax.set_xlabel("PEs")
    ax.set_ylabel("speed-up over 1 PE")
    ax.set_title(f"Speed-up vs PE count, queue depth {depth} (cf. EIE Fig. 11)")
    ax.grid(True, alpha=0.3, which="both")
    first = ax.legend(loc="upper left", fontsize=8, ncol=2)
    ax.add_artist(first)
    _legend_modes(ax, modes).set_loc("lower right")
    _finish(fig, path)


def plot_fig12(rows, specs, modes, path, zrun):
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    colors = _layer_colors(specs)
    _plot_layers(ax, rows, specs, modes, "pes", "padding_share", colors, scale=100, zrun_bits=zrun)
    ax.set_xscale("log", base=2)
    ax.set_xlabel("PEs")
    ax.set_ylabel("padding entries (% of all entries)")
    ax.set_title(f"Padding vs PE count, {zrun}-bit zero runs (cf. EIE Fig. 12)")
    ax.grid(True, alpha=0.3)
    first = ax.legend(loc="upper right", fontsize=8, ncol=2)
    ax.add_artist(first)
    _legend_modes(ax, modes).set_loc("lower left")
    _finish(fig, path)


def plot_fig13(rows, specs, modes, path, depth):
    plt = _plt()
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 4.5), sharey=True)
    colors = _layer_colors(specs)
    _plot_layers(a1, rows, specs, modes, "pes", "efficiency", colors)
    _plot_layers(a2, rows, specs, modes, "pes", "work_balance", colors, label=False)
    for ax in (a1, a2):
        ax.set_xscale("log", base=2)
        ax.set_xlabel("PEs")
        ax.grid(True, alpha=0.3)
    a1.set_ylabel("load balance")
    a1.set_title(f"bound / cycles (queue depth {depth})")
    a2.set_title("mean / max per-PE work (row assignment alone)")
    # Zoom on the data: every curve starts at 1.0 (one PE), the interest is in the drop.
    low = min([r[k] for r in rows for k in ("efficiency", "work_balance") if r.get(k) is not None] or [0.0])
    a1.set_ylim(max(0.0, math.floor((low - 0.02) * 20) / 20), 1.01)
    first = a1.legend(loc="lower left", fontsize=8, ncol=2)
    a1.add_artist(first)
    _legend_modes(a2, modes)
    fig.suptitle("Load balance vs PE count (cf. EIE Fig. 13)")
    _finish(fig, path)


def plot_zrun(rows, specs, path, zruns, mode):
    plt = _plt()
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 4.5))
    colors = _layer_colors(specs)
    styles = ["-", "--", ":", "-."]
    for s in specs:
        for i, z in enumerate(zruns):
            xs, ys = _series(rows, "pes", "padding_share", layer=s.name, mode=mode, zrun_bits=z)
            a1.plot(xs, [100 * y for y in ys], styles[i % 4], marker="o", ms=3, color=colors[s.name],
                    label=s.name if i == 0 else None)
            xs, ys = _series(rows, "pes", "spmat_bits_per_weight", layer=s.name, mode=mode, zrun_bits=z)
            a2.plot(xs, ys, styles[i % 4], marker="o", ms=3, color=colors[s.name])
    for ax in (a1, a2):
        ax.set_xscale("log", base=2)
        ax.set_xlabel("PEs")
        ax.grid(True, alpha=0.3)
    a1.set_ylabel("padding entries (% of all entries)")
    a2.set_ylabel("Spmat bits per non-zero weight")
    a1.legend(fontsize=8, ncol=2)
    from matplotlib.lines import Line2D
    a2.legend(handles=[Line2D([], [], color="k", ls=styles[i % 4], label=f"{z}-bit zero run")
                       for i, z in enumerate(zruns)], fontsize=8)
    fig.suptitle(f"Zero-run width: padding and storage ({mode} rows)")
    _finish(fig, path)


# -- the command -------------------------------------------------------------------

def run_sweeps(figures, specs, base, out: Path, *, modes=MODES, pes_list=DEFAULT_PES, depths=DEFAULT_DEPTHS,
               fig8_pes: int = 64, fifo_depth: int = 8, cbuf=None, zruns=(4, 5), cbufs=DEFAULT_CBUF,
               seed: int = 0, log=None) -> dict:
    """Compute, write and plot ``figures``; returns the JSON summary (file names and numbers)."""
    log = log or (lambda msg: None)
    out.mkdir(parents=True, exist_ok=True)
    sw = Sweeper(specs, base, seed, log)
    modes = list(modes)
    result = {"figures": {}, "layers": [s.name for s in specs], "modes": modes, "seed": seed,
              "base_config": base.to_dict()}
    t_start = time.perf_counter()

    def emit(name, rows, plot, **meta):
        _write_csv(out / f"{name}.csv", rows)
        (out / f"{name}.json").write_text(json.dumps({"figure": name, **meta, "rows": rows}, indent=1) + "\n")
        plot(out / f"{name}.png")
        result["figures"][name] = {"png": str(out / f"{name}.png"), "csv": str(out / f"{name}.csv"),
                                   "json": str(out / f"{name}.json"), "points": len(rows), **meta}
        log(f"wrote {out / name}.png/.csv/.json ({len(rows)} points)")

    if "fig8" in figures:
        log(f"fig8: efficiency vs queue depth {depths} at {fig8_pes} PEs")
        rows = sweep_fig8(sw, modes, depths, fig8_pes, cbuf)
        emit("fig8", rows, lambda p: plot_fig8(rows, specs, modes, p, fig8_pes), pes=fig8_pes)
    if "cbuf" in figures:
        log(f"cbuf: efficiency vs column-buffer depth {list(cbufs)} at {fig8_pes} PEs, queue depth {fifo_depth}")
        rows = sweep_cbuf(sw, modes, cbufs, fig8_pes, fifo_depth)
        emit("cbuf", rows, lambda p: plot_cbuf(rows, specs, modes, p, fig8_pes, fifo_depth), pes=fig8_pes,
             fifo_depth=fifo_depth)
    if "fig11" in figures or "fig13" in figures:
        pes_pts = list(pes_list)
        if "fig11" in figures and 1 not in pes_pts:
            pes_pts = [1] + pes_pts
        log(f"PE sweep: {pes_pts} PEs at queue depth {fifo_depth}")
        rows = sweep_pes(sw, modes, pes_pts, fifo_depth, cbuf)
        if "fig11" in figures:
            emit("fig11", rows, lambda p: plot_fig11(rows, specs, modes, p, fifo_depth), fifo_depth=fifo_depth)
        if "fig13" in figures:
            emit("fig13", rows, lambda p: plot_fig13(rows, specs, modes, p, fifo_depth), fifo_depth=fifo_depth)
    if "fig12" in figures or "zrun" in figures:
        z_list = sorted(set(zruns) | {base.zrun_bits}) if "zrun" in figures else [base.zrun_bits]
        log(f"padding sweep: {list(pes_list)} PEs, zero runs of {z_list} bits")
        rows = sweep_padding(sw, modes, pes_list, z_list)
        if "fig12" in figures:
            r12 = [r for r in rows if r["zrun_bits"] == base.zrun_bits]
            emit("fig12", r12, lambda p: plot_fig12(r12, specs, modes, p, base.zrun_bits), zrun_bits=base.zrun_bits)
        if "zrun" in figures:
            zmode = modes[0]
            emit("zrun", rows, lambda p: plot_zrun(rows, specs, p, list(zruns), zmode), zrun_bits=list(zruns))
    result["timing"] = {k: round(v, 3) if isinstance(v, float) else v for k, v in sw.timing.items()}
    result["timing"]["wall_s"] = round(time.perf_counter() - t_start, 2)
    (out / "sweep.json").write_text(json.dumps(result, indent=1) + "\n")
    return result


# -- RTL points as tasks (eie sweep --rtl; eie.cluster) ------------------------------------------------

def rtl_config(base, spec, pes: int, **changes):
    """``base`` with ``pes`` PEs (and ``changes``) and memories sized to hold ``spec``:
    register files for its longest vector, Spmat and pointer memories for its
    entries per PE with room for padding and imbalance."""
    longest = max(spec.in_len, spec.out_len)
    act_depth = -(-longest // pes)
    cfg = replace(base, pes=pes, act_depth=act_depth, bias_depth=act_depth, max_layers=1, **changes)
    entries = spec.in_len * spec.out_len * spec.weight_density / pes
    words = int(2 * entries + 2 * spec.in_len) // cfg.entries_per_word + 16
    return cfg.replace(spmat_depth=1 << max(4, (words - 1).bit_length()),
                       ptr_depth=1 << max(4, spec.in_len.bit_length()))


def rtl_point_task(params: dict, folder: Path) -> dict:
    """The task of one RTL sweep point: ``eie.sim.bench.bench_layer`` of the layer
    ``params["spec"]`` on ``params["config"]`` with the RTL run (build cached per node)."""
    from eie.config import EIEConfig
    from eie.sim.bench import bench_layer
    from .synthetic import PaperLayer
    spec = PaperLayer(**params["spec"])
    cfg = EIEConfig.from_dict(params["config"])
    row = bench_layer(spec, cfg, seed=int(params["seed"]), balance=params["mode"] == "balanced", rtl=True,
                      build_dir=Path(folder))
    keep = ("layer", "pes", "fifo_depth", "column_buffer_depth", "cycles", "bound", "efficiency", "cycles_rtl",
            "cycles_model_run", "rtl_matches_model", "rtl_mismatches", "rtl_skipped", "rtl_error", "rtl_build_s",
            "rtl_run_s")
    return {"figure": params["figure"], "mode": params["mode"], "config_digest": cfg.digest,
            **{k: row[k] for k in keep if k in row}}


def _point_command(fig: str, spec, mode: str, pes: int, depth: int, seed: int, scale: int) -> str:
    """The ``eie sweep`` command that runs one RTL point alone."""
    where = f"--pes-list {pes} --fifo-depth {depth}" if fig == "fig11" else f"--depths {depth} --pes {pes}"
    return (f"eie sweep {fig} --rtl --layers {spec.name} --scale {scale} --mode {mode} --seed {seed} {where} "
            f"-o build/sweep-{fig}-{spec.name}-{pes}-{depth}")


def run_rtl_points(figures, specs, base, out: Path, *, modes, pes_list, depths, fig8_pes: int, fifo_depth: int,
                   seed: int, scale: int = 1, jobs: int = 1, ray=None, log=None) -> dict:
    """fig8 and fig11 points on the RTL, one task per (figure, layer, mode, point);
    writes ``rtl.json`` and ``rtl.csv`` in ``out``."""
    log = log or (lambda msg: None)
    from eie import cluster
    from dataclasses import asdict
    points = []
    if "fig8" in figures:
        points += [("fig8", fig8_pes, d) for d in depths]
    if "fig11" in figures:
        points += [("fig11", n, fifo_depth) for n in pes_list]
    if not points:
        raise ValueError("--rtl runs the points of fig8 (queue depths) and fig11 (PE counts): name one of them")
    tasks = []
    for fig, pes, depth in points:
        for spec in specs:
            for mode in modes:
                cfg = rtl_config(base, spec, pes, fifo_depth=depth)
                name = f"{fig}-{spec.name}-{mode}-pes{pes}-depth{depth}"
                params = {"figure": fig, "spec": asdict(spec), "config": cfg.to_dict(), "seed": seed, "mode": mode}
                tasks.append(cluster.Task("sweep", name, "eie.golden.sweep:rtl_point_task", params, seed=seed,
                                          config_digest=cfg.digest,
                                          command=_point_command(fig, spec, mode, pes, depth, seed, scale)))
    log(f"{len(tasks)} RTL points as tasks")
    out.mkdir(parents=True, exist_ok=True)
    envelopes, stats = cluster.run_tasks(tasks, out / "rtl-points", jobs=jobs, ray=ray, progress=log)
    rows = [dict(e["result"], task=e["task"], node=e["node"]) if e["ok"] else
            {"task": e["task"], "error": e["error"], "command": e["command"]} for e in envelopes]
    _write_csv(out / "rtl.csv", [{k: v for k, v in r.items() if not isinstance(v, (dict, list))} for r in rows])
    result = {"rtl": rows, "executor": stats.to_dict(), "csv": str(out / "rtl.csv"), "json": str(out / "rtl.json")}
    (out / "rtl.json").write_text(json.dumps(result, indent=1) + "\n")
    return result


def plot_fpga(rows, board: str, path) -> None:
    """Fmax (left) and utilisation in percent per resource (right) against the PE count."""
    plt = _plt()
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 4.5))
    ok = sorted((r for r in rows if r["ok"]), key=lambda r: r["pes"])
    xs = [r["pes"] for r in ok]
    a1.plot(xs, [r["fmax_mhz"] for r in ok], "-o", ms=4, label="Fmax")
    if ok:
        a1.axhline(ok[0]["pll_mhz"], ls=":", color="gray", label=f"clock {ok[0]['pll_mhz']:g} MHz")
    a1.set_xlabel("PEs")
    a1.set_ylabel("MHz")
    a1.set_title(f"Fmax vs PE count on {board}")
    a1.legend(fontsize=8)
    for res in sorted({k[:-len("_percent")] for r in ok for k in r if k.endswith("_percent")} - {"IO", "PLL"}):
        a2.plot(*_series(ok, "pes", f"{res}_percent"), "-o", ms=4, label=res)
    a2.axhline(100, ls=":", color="gray")
    a2.set_xlabel("PEs")
    a2.set_ylabel("% of the device")
    a2.set_title("Utilisation")
    a2.legend(fontsize=8)
    for ax in (a1, a2):
        ax.grid(True, alpha=0.3)
    _finish(fig, path)


def run_fpga_points(board: str, pes_list, out: Path, *, clock_mhz=None, seed: int = 1, jobs: int = 1, ray=None,
                    log=None) -> dict:
    """One bitstream build per PE count on ``board`` (``eie.boards.build.build_task``
    as tasks): Fmax, timing and utilisation per point; ``fpga.json``, ``fpga.csv`` and the plot
    ``fpga.png`` in ``out``.
    A point that does not fit is reported as such (its error names the overflow)."""
    from eie import cluster
    from eie.boards.platforms import board_config, get_board
    b = get_board(board)
    tasks = []
    for n in pes_list:
        cfg = board_config(b, pes=n)
        clock = f" --clock {clock_mhz:g}" if clock_mhz else ""
        params = {"board": b.name, "pes": n, "clock_mhz": clock_mhz, "config": None, "model": None, "baud": None,
                  "loopback": False, "seed": seed, "bitstream": False}
        tasks.append(cluster.Task("fpga", f"fpga-{b.name.replace(':', '_')}-pes{n}", "eie.boards.build:build_task",
                                  params, seed=seed, config_digest=cfg.digest,
                                  command=f"eie build --board {b.name} --pes {n}{clock} --seed {seed} "
                                          f"-o build/board-{n}pes"))
    (log or (lambda m: None))(f"{len(tasks)} bitstream builds of {b.name} as tasks")
    out.mkdir(parents=True, exist_ok=True)
    envelopes, stats = cluster.run_tasks(tasks, out / "fpga-points", jobs=jobs, ray=ray, progress=log)
    rows = []
    for n, e in zip(pes_list, envelopes):
        if e["ok"]:
            r = e["result"]
            rows.append({"pes": n, "ok": True, "fmax_mhz": r["fmax_mhz"], "timing_met": r["timing_met"],
                         "pll_mhz": r["pll_mhz"], "seconds": r["seconds"], "node": e["node"],
                         **{f"{k}_used": u["used"] for k, u in r["utilisation"].items()},
                         **{f"{k}_percent": u["percent"] for k, u in r["utilisation"].items()}})
        else:
            rows.append({"pes": n, "ok": False, "fits": "DoesNotFit" not in (e["error"] or ""), "error": e["error"],
                         "command": e["command"], "node": e["node"]})
    _write_csv(out / "fpga.csv", rows)
    plot_fpga(rows, b.name, out / "fpga.png")
    result = {"board": b.name, "fpga": rows, "executor": stats.to_dict(), "csv": str(out / "fpga.csv"),
              "json": str(out / "fpga.json"), "plot": str(out / "fpga.png")}
    (out / "fpga.json").write_text(json.dumps(result, indent=1) + "\n")
    return result


def main(args) -> int:
    from eie.config import preset
    from .synthetic import PAPER_LAYERS

    def log(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    figures = []
    for f in args.figure:
        if f == "all":
            figures.extend(FIGURES)
        elif f in FIGURES:
            figures.append(f)
        else:
            raise ValueError(f"unknown figure {f!r}; choose from {', '.join(FIGURES)} or all")
    names = args.layers or list(PAPER_LAYERS)
    for n in names:
        if n not in PAPER_LAYERS:
            raise ValueError(f"unknown layer {n!r}; choose from {', '.join(PAPER_LAYERS)}")
    if args.scale < 1:
        raise ValueError(f"--scale must be a positive integer, not {args.scale}")
    specs = [PAPER_LAYERS[n] for n in names]
    if args.scale > 1:
        specs = [replace(s, in_len=max(1, s.in_len // args.scale), out_len=max(1, s.out_len // args.scale))
                 for s in specs]
    base = preset("paper")
    if args.column_buffer_depth is not None:
        base = base.replace(column_buffer_depth=args.column_buffer_depth)
    base = base.replace(fifo_depth=args.fifo_depth)
    if args.credit_bypass is not None:
        base = base.replace(credit_bypass=args.credit_bypass)
    modes = MODES if args.mode == "both" else (args.mode,)
    if args.fpga:
        from eie.cluster import executor_from_args
        if args.rtl or figures != ["fig11"]:
            raise ValueError("--fpga sweeps the PE counts of fig11 on a board: give `eie sweep fig11 --fpga BOARD "
                             "--pes-list N,N,...` (without --rtl)")
        res = run_fpga_points(args.fpga, _int_list(args.pes_list, "--pes-list", 1, 4096), Path(args.output),
                              clock_mhz=args.clock, log=log, **executor_from_args(args))
        if args.json:
            print(json.dumps(res))
        else:
            for r in res["fpga"]:
                print(f"{r['pes']:>4} PEs: " + (f"Fmax {r['fmax_mhz']} MHz ({'met' if r['timing_met'] else 'NOT met'})"
                                                 if r["ok"] else f"FAILED {r['error']}\n    reproduce: {r['command']}"))
        return 0 if all(r["ok"] or not r["fits"] for r in res["fpga"]) else 1
    if args.rtl:
        from eie.cluster import executor_from_args
        where = executor_from_args(args)
        res = run_rtl_points(list(dict.fromkeys(figures)), specs, base, Path(args.output), modes=modes,
                             pes_list=_int_list(args.pes_list, "--pes-list", 1, 4096),
                             depths=_int_list(args.depths, "--depths", 1, 256), fig8_pes=args.pes,
                             fifo_depth=args.fifo_depth, seed=args.seed, scale=args.scale, log=log, **where)
        if args.json:
            print(json.dumps(res))
        else:
            for r in res["rtl"]:
                if "error" in r:
                    print(f"{r['task']}: FAILED {r['error']}")
                else:
                    print(f"{r['task']}: model {r['cycles']} cycles, RTL {r.get('cycles_rtl')} "
                          f"({'equal' if r.get('rtl_matches_model') else r.get('rtl_skipped') or 'DIFFERENT'})")
        bad = [r for r in res["rtl"] if "error" in r or not r.get("rtl_matches_model")]
        return 1 if bad else 0
    result = run_sweeps(list(dict.fromkeys(figures)), specs, base, Path(args.output), modes=modes,
                        pes_list=_int_list(args.pes_list, "--pes-list", 1, 4096),
                        depths=_int_list(args.depths, "--depths", 1, 256), fig8_pes=args.pes,
                        fifo_depth=args.fifo_depth, cbuf=args.column_buffer_depth,
                        zruns=_int_list(args.zrun_bits, "--zrun-bits", 1, 8),
                        cbufs=_int_list(args.cbuf_list, "--cbuf-list", 1, 64), seed=args.seed, log=log)
    if args.json:
        print(json.dumps(result))
    else:
        for name, f in result["figures"].items():
            print(f"{name}: {f['png']} ({f['points']} points; numbers in {f['csv']})")
        t = result["timing"]
        print(f"cycle model {t['model_s']:.1f} s over {t['model_runs']} runs; encoding and balancing "
              f"{t['prepare_s']:.1f} s; wall {t['wall_s']:.1f} s")
    return 0
