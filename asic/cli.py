"""``eie asic``: synthesis, static timing, area, gate-level proof and power of a design.

::

    eie asic --preset tiny --tech osu018 -o build/asic/tiny --json
    eie asic --pes 2 --act-depth 64 --clock 8 -o build/asic/small
    eie asic --config build/digits/manifest.json --model build/digits -o build/asic/digits

The configuration options are those of ``eie generate`` (``--preset``,
``--config``, ``--pes`` and every config field). ``--model DIR`` (a folder of
``eie compress``) is the gate-level workload; by default digits-mlp is
compressed for the configuration. Prints a summary (or with ``--json`` the
report, also written to ``DIR/report.json`` beside ``DIR/report.png``).
"""

from __future__ import annotations

import argparse
import json
import sys

TECH_CHOICES = ("osu018", "osu035", "osu050")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from eie.hw.cli import add_config_arguments
    add_config_arguments(parser)
    parser.add_argument("--tech", choices=TECH_CHOICES, default="osu018",
                        help="standard-cell library (Debian qflow-tech-osu0XX; default osu018, 180 nm)")
    parser.add_argument("--clock", type=float, default=10.0, metavar="NS",
                        help="clock period for synthesis and STA in ns (default 10)")
    parser.add_argument("--model", metavar="DIR", default=None,
                        help="compressed network (eie compress output) for the gate-level run and power "
                             "(default: digits-mlp compressed for the configuration)")
    parser.add_argument("--inputs", default="digits-test", help="inputs of the gate-level run (default digits-test)")
    parser.add_argument("--limit", type=int, default=20, metavar="K",
                        help="inferences of the gate-level run (two runs of K/2 and K; default 20)")
    parser.add_argument("--no-gate-level", dest="gate_level", action="store_false",
                        help="skip the gate-level run and the power report")
    parser.add_argument("--no-power", dest="power", action="store_false",
                        help="gate-level proof only (one run, no toggle coverage, no power report)")


def _progress(message: str) -> None:
    print(f"eie asic: {message}", file=sys.stderr, flush=True)


def main(args) -> int:
    from pathlib import Path

    from eie.hw.cli import config_from_args

    from .flow import run_flow
    if args.clock <= 0:
        raise ValueError(f"--clock must be a positive period in ns, not {args.clock}")
    if args.limit < 2:
        raise ValueError(f"--limit must be at least 2 (the gate-level power runs K/2 and K inferences), not {args.limit}")
    cfg = config_from_args(args)
    out = Path(args.out) if args.out else Path("build") / "asic" / f"{cfg.digest}-{args.tech}"
    if args.model and args.gate_level:
        # a damaged or unfitting network is refused now, not after minutes of synthesis
        from eie.golden.encode import image_for_config
        image_for_config(args.model, cfg, who=f"the {cfg.pes}-PE ASIC design")
    report = run_flow(cfg, tech=args.tech, clock_ns=args.clock, out_dir=out, network=args.model,
                      inputs=args.inputs, limit=args.limit, gate_level=args.gate_level, power=args.power,
                      progress=_progress)
    if args.json:
        print(json.dumps(report))
        return 0
    area, timing = report["area"], report["timing"]
    print(f"{cfg.pes} PEs on {args.tech}: {area['total_mm2']:.3f} mm2 ({area['cells']} cells, "
          f"SRAM {100 * area['sram_share']:.1f} %), Fmax {timing['fmax_mhz']} MHz "
          f"(worst slack {timing['worst_slack_ns']} ns at {args.clock} ns)")
    for name, comp in area["components"].items():
        print(f"  {name:15s} {comp['area_um2'] / 1e6:8.4f} mm2  {100 * comp['share']:5.1f} %")
    gl, power = report["gate_level"], report["power"]
    if gl:
        print(f"gate level: {gl['inferences_checked']} inferences, {gl['mismatches']} mismatches, "
              f"cycles equal to the model: {gl['cycles_equal_model']}")
    if power:
        print(f"energy {power['energy_per_inference_nj']} nJ per inference, {power['power_mw']} mW "
              f"at {power['at_fmax_mhz']} MHz")
    print(f"report: {report['files']['report']}, picture: {report['files']['picture']}")
    return 0
