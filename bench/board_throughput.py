"""Inferences per second on the FPGA boards, from exact cycle counts, beside PyTorch on this machine's CPU.

Usage::

    python bench/board_throughput.py [--clock icebreaker=24 --clock ulx3s-85f=75] [--json] [-o FILE]

For each board: ``digits-mlp`` compressed for the board's preset (``eie
compress --board NAME``, the network `eie build --model` bakes in), its cycle
count on every digits test image from :mod:`eie.golden.cycle_model` (equal to
the RTL's ``CYCLES`` counter: ``make test`` checks that on the boards'
configs), and inferences per second ``= clock / cycles`` at the clock the
board's build meets (defaults: the figures of ``docs/boards.md``: iCEBreaker
4 PEs at 24 MHz, ULX3S-85F 16 PEs at 75 MHz: met on seed 3 by the ten-DP16KD
preset, on seed 1 by the board's three-DP16KD preset, which has the same cycle counts). That
is the accelerator's own rate: the 1 Mbaud UART of ``eie run`` moves the
input and output words far slower, which the table also gives (payload words
per inference, 10 bits per byte on the wire, framing not counted: an upper
bound).

Then the paper's nine layers: which fit the board's memories (Spmat, pointer,
bias and register-file depths of the preset) and, for those that do, cycles
and inferences per second; for those that do not, the Spmat entries they need
against the board's.

The CPU figure: PyTorch dense fp32 ``digits-mlp`` at batch 1 on this machine
(median of timed batches, the faster of 1 thread and the default): a ratio,
since the machine is shared and noisy.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time

import numpy as np

DEFAULT_CLOCKS = {"icebreaker": 24.0, "ulx3s-85f": 75.0}


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def digits_cycles(cfg):
    """digits-mlp compressed for ``cfg``: the compression result and the cycle model's
    count (= the RTL's ``CYCLES``) for each of the 360 test digits."""
    from eie.golden.cycle_model import predict
    from eie.golden.models import digits_split
    from eie.golden.pipeline import compress
    from eie.golden.quantize import quantize_input

    result = compress("digits-mlp", cfg, progress=None)
    _, _, X_test, _ = digits_split()
    Xq = quantize_input(X_test, result.input_frac, result.config)
    return result, [predict(result.image, x).cycles for x in Xq]


def digits_figures(board_name: str, clock_mhz: float) -> dict:
    from eie.boards.platforms import get_board

    board = get_board(board_name)
    result, cycles = digits_cycles(board.preset)
    mean = float(np.mean(cycles))
    cfg = result.config
    in_words, out_words = result.layers[0].in_len, result.layers[-1].out_len
    payload_bits = (in_words + out_words) * 4 * 10          # 32-bit words, 8N1 bytes
    return {"board": board.name, "pes": cfg.pes, "clock_mhz": clock_mhz, "config_digest": cfg.digest,
            "accuracy_fixed_point": result.report["accuracy"]["fixed_point"],
            "cycles_mean": mean, "cycles_min": int(min(cycles)), "cycles_max": int(max(cycles)),
            "inferences_per_s": clock_mhz * 1e6 / mean, "latency_us": mean / clock_mhz,
            "uart_baud": board.baud, "uart_inferences_per_s_max": board.baud / payload_bits}


def paper_layers(board_name: str, clock_mhz: float, seed: int = 0) -> list:
    from eie.boards.platforms import get_board
    from eie.golden.cycle_model import layer_cycles
    from eie.golden.encode import encode_layer
    from eie.golden.fit import memory_needs
    from eie.golden.synthetic import PAPER_LAYERS, make_layer

    board = get_board(board_name)
    cfg = board.preset
    bram_bits = board.capacity.get("BRAM", 0) * (18432 if board.family == "ecp5" else 4096) \
        + board.capacity.get("SPRAM", 0) * 256 * 1024
    rows = []
    for name, spec in PAPER_LAYERS.items():
        big = max(spec.in_len, spec.out_len) > cfg.max_len
        if big:
            # the weights alone, as EIE stores them (index + zero run per non-zero, no padding or pointers)
            bits = round(spec.in_len * spec.out_len * spec.weight_density) * (cfg.index_bits + cfg.zrun_bits)
            rows.append({"layer": name, "fits": False, "why": f"length {max(spec.in_len, spec.out_len)} > "
                                                             f"pes * act_depth = {cfg.max_len}",
                         "weight_bits": bits, "board_memory_bits": bram_bits})
            continue
        layer, x = make_layer(spec, cfg, seed)
        needs = memory_needs([layer], cfg)
        over = {f: (needs[f], getattr(cfg, f)) for f in ("spmat_depth", "ptr_depth", "bias_depth")
                if needs[f] > getattr(cfg, f)}
        if over:
            entries_needed = needs["spmat_depth"] * cfg.entries_per_word * cfg.pes
            rows.append({"layer": name, "fits": False,
                         "why": ", ".join(f"{f} needs {n} > {h}" for f, (n, h) in over.items()),
                         "spmat_entries_needed": entries_needed,
                         "spmat_entries_board": cfg.spmat_depth * cfg.entries_per_word * cfg.pes})
            continue
        enc = encode_layer(layer, cfg)
        t = layer_cycles(cfg, enc.col_entries, x, layer.out_len)
        rows.append({"layer": name, "fits": True, "cycles": t.cycles, "efficiency": t.efficiency,
                     "inferences_per_s": clock_mhz * 1e6 / t.cycles})
    return rows


def cpu_digits(seconds: float = 2.0) -> dict:
    import torch

    from eie.golden.models import build_digits_mlp
    model = build_digits_mlp().eval()
    x = torch.rand(1, 64)
    best = None
    for threads in (1, torch.get_num_threads()):
        torch.set_num_threads(threads)
        with torch.no_grad():
            for _ in range(200):
                model(x)
            samples, t_end = [], time.perf_counter() + seconds
            while time.perf_counter() < t_end:
                t0 = time.perf_counter()
                for _ in range(100):
                    model(x)
                samples.append((time.perf_counter() - t0) / 100)
        med = statistics.median(samples)
        if best is None or med < best["seconds_per_inference"]:
            best = {"threads": threads, "seconds_per_inference": med}
    best["inferences_per_s"] = 1.0 / best["seconds_per_inference"]
    best["torch"] = torch.__version__
    return best


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clock", action="append", default=[], metavar="BOARD=MHZ",
                        help="the clock a board's build meets (default: icebreaker=24, ulx3s-85f=75)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("-o", "--out", help="also write the JSON here")
    args = parser.parse_args(argv)
    clocks = dict(DEFAULT_CLOCKS)
    for item in args.clock:
        name, _, mhz = item.partition("=")
        try:
            clocks[name] = float(mhz)
        except ValueError:
            raise SystemExit(f"--clock takes BOARD=MHZ (e.g. ulx3s-85f=75), not {item!r}") from None
    out = {"boards": [], "cpu": None}
    for board, mhz in clocks.items():
        _log(f"{board}: digits-mlp at {mhz} MHz")
        row = digits_figures(board, mhz)
        row["paper_layers"] = paper_layers(board, mhz)
        out["boards"].append(row)
    _log("CPU: PyTorch digits-mlp at batch 1")
    out["cpu"] = cpu_digits()
    for row in out["boards"]:
        row["vs_cpu"] = row["inferences_per_s"] / out["cpu"]["inferences_per_s"]
    if args.out:
        with open(args.out, "w") as f:
            json.dump(out, f, indent=1)
    if args.json:
        print(json.dumps(out))
    else:
        cpu = out["cpu"]
        print("| board | PEs | clock | digits-mlp cycles (mean, min-max) | inferences/s | latency | "
              "vs CPU | UART-bound inferences/s | paper layers that fit |")
        print("|---|---:|---:|---|---:|---:|---:|---:|---|")
        for r in out["boards"]:
            fits = [p["layer"] for p in r["paper_layers"] if p["fits"]] or ["none"]
            print(f"| {r['board']} | {r['pes']} | {r['clock_mhz']:g} MHz | {r['cycles_mean']:.0f} "
                  f"({r['cycles_min']}-{r['cycles_max']}) | {r['inferences_per_s']:,.0f} | "
                  f"{r['latency_us']:.1f} us | {r['vs_cpu']:.2f}x | {r['uart_inferences_per_s_max']:,.0f} | "
                  f"{', '.join(fits)} |")
        print(f"\nCPU: PyTorch {cpu['torch']} dense fp32 digits-mlp, batch 1, {cpu['threads']} thread(s): "
              f"{cpu['inferences_per_s']:,.0f} inferences/s ({cpu['seconds_per_inference'] * 1e6:.1f} us)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
