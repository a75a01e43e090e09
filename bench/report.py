"""Markdown tables for BENCHMARKS.md from the JSON of ``eie bench`` and ``bench/baselines.py``.

Usage::

    eie bench --layer all --pes 64 --json > build/bench/bench64.json
    python bench/baselines.py --json -o bench/results/baselines_cpu.json
    python bench/report.py build/bench/bench64.json [--baselines bench/results/baselines_cpu.json]

Prints the nine-layer table (ours balanced and interleaved beside the paper's
actual and theoretical figures), the summary against the issue's targets, and
the baseline table (our latency at 800 MHz beside the H100 and the measured
CPU numbers).
"""

from __future__ import annotations

import argparse
import json
import sys


def _f(v, fmt):
    return "–" if v is None else format(v, fmt)


def layer_table(bench: dict) -> str:
    cfg = bench["config"]
    lines = [f"{cfg['pes']} PEs, queue depth {cfg['fifo_depth']}, column buffer {cfg['column_buffer_depth']}, "
             f"{cfg['zrun_bits']}-bit zero runs, seed {bench.get('seed', 0)}; cycles from the cycle model"
             + (", RTL cycles from Verilator" if any(r.get("cycles_rtl") is not None for r in bench["layers"])
                else "") + ".",
             "",
             "| layer | cycles | bound | max W_k | efficiency | interleaved cycles | interleaved eff. | "
             "paper actual cycles | paper theor. cycles | paper eff. | padding entries in W (bal. / int.) | RTL cycles |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in bench["layers"]:
        i = r["interleaved"]
        if r.get("cycles_rtl") is not None:
            rtl = f"{r['cycles_rtl']}" + ("" if r.get("rtl_matches_model") else " (≠ model)")
        elif r.get("rtl_skipped"):
            rtl = "does not fit"
        else:
            rtl = "–"
        lines.append(f"| {r['layer']} | {r['cycles']} | {r['bound']} | {r['max_pe_work']} | **{r['efficiency']:.3f}** | "
                     f"{i['cycles']} | {i['efficiency']:.3f} | {r['paper_actual_cycles']} | "
                     f"{r['paper_theoretical_cycles']} | {r['paper_efficiency']:.3f} | "
                     f"{r['padding_work']} / {i['padding_work']} | {rtl} |")
    s = bench["summary"]
    lines += ["",
              f"Geometric mean efficiency: **{s['geomean_efficiency']:.3f}** balanced, "
              f"{s['geomean_efficiency_interleaved']:.3f} interleaved, {s['geomean_paper_efficiency']:.3f} paper; "
              f"minimum {s['min_efficiency']:.3f}; above the paper on every layer: "
              f"{'yes' if s['above_paper_on_every_layer'] else 'no (' + ', '.join(s['below_paper']) + ')'}; "
              f"targets (> paper everywhere, >= 0.90 everywhere, geomean >= 0.95) met: "
              f"{'yes' if s['targets_met'] else 'no'}."]
    if "geomean_speedup_vs_interleaved" in s:
        lines.append(f"Balanced rows are {100 * (s['geomean_speedup_vs_interleaved'] - 1):.1f} % faster than the "
                     f"plain interleave (geometric mean of cycles).")
    lines.append(f"Cycle model: {s['model_s']:.2f} s for all runs above; generation, encoding and balancing: "
                 f"{s['prepare_s']:.1f} s.")
    return "\n".join(lines)


def baseline_table(bench: dict, baselines: dict | None) -> str:
    head = "| layer | EIE (ours) us @ 800 MHz | EIE paper actual us | H100 PyTorch (issue) us |"
    sep = "|---|---:|---:|---:|"
    if baselines:
        head += f" {baselines['device']} dense fp32 us | CSR fp32 us | best us |"
        sep += "---:|---:|---:|"
    lines = [head, sep]
    base = {r["layer"]: r for r in (baselines or {}).get("layers", [])}
    for r in bench["layers"]:
        line = f"| {r['layer']} | {r['latency_us']:.2f} | {r['paper_actual_us']:.1f} | {_f(r.get('h100_us'), '.1f')} |"
        if baselines:
            b = base.get(r["layer"], {})
            line += (f" {_f(b.get('dense_fp32_us'), '.0f')} | {_f(b.get('csr_fp32_us'), '.0f')} | "
                     f"{_f(b.get('best_us'), '.0f')} |")
        lines.append(line)
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python bench/report.py", description=__doc__.split("\n\n")[0])
    p.add_argument("bench_json", help="output of `eie bench --json`")
    p.add_argument("--baselines", default=None, help="output of bench/baselines.py --json")
    args = p.parse_args(argv)
    with open(args.bench_json) as f:
        bench = json.load(f)
    baselines = None
    if args.baselines:
        with open(args.baselines) as f:
            baselines = json.load(f)
    print(layer_table(bench))
    print()
    print(baseline_table(bench, baselines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
