"""Compile one real SRAM macro with OpenRAM 1.2.48 (scn4m_subm) and report its figures.

Runs :func:`eie.asic.openram.build_macro` (its own virtual environment under
``build/tools/openram-venv``, created on first use; minutes per macro) and, for
comparison, :func:`eie.asic.sram.macro_figures` of the same shape from CACTI.
Progress goes to stderr; with ``--json`` one JSON document (both sets of figures,
the run time, the output folder) goes to stdout::

    nice -n 10 .venv/bin/python bench/asic_openram.py --words 16 --width 8 --out build/openram/16x8 --json

OpenRAM's smallest macro is 16 words (16 rows); 16 x 8 bits is the default.
CACTI's is 32 words and 64 bytes: below that the comparison is left out.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--words", type=int, default=16, help="words (default 16, OpenRAM's smallest)")
    p.add_argument("--width", type=int, default=8, help="bits per word (default 8)")
    p.add_argument("--ports", default="1rw", choices=("1rw", "1r1w"), help="one read-write port (default) or a "
                   "read and a write port")
    p.add_argument("--tech", default="osu035", help="standard cells the figures go with (default osu035: "
                   "scn4m_subm's rules)")
    p.add_argument("--out", default=None, help="OpenRAM output folder (default build/openram/<words>x<width>)")
    p.add_argument("--timeout-s", type=float, default=3600.0, help="give OpenRAM up to this long (default 3600)")
    p.add_argument("--json", action="store_true", help="print the results as one JSON document on stdout")
    args = p.parse_args(argv)

    from eie.asic import openram, sram

    def log(msg):
        print(msg, file=sys.stderr, flush=True)

    out = Path(args.out or f"build/openram/{args.words}x{args.width}")
    t0 = time.monotonic()
    figs = openram.build_macro(args.words, args.width, out_dir=out, progress=log, ports=args.ports, tech=args.tech,
                               timeout=args.timeout_s)
    seconds = round(time.monotonic() - t0, 1)
    result = {"openram": figs.to_dict(), "seconds": seconds, "out_dir": str(out.resolve()),
              "files": sorted(p.name for p in out.iterdir() if p.is_file())}
    try:
        result["cacti"] = sram.macro_figures(args.words, args.width, args.tech, ports=args.ports,
                                             progress=log).to_dict()
    except sram.ShapeTooSmall as e:
        result["cacti"] = None
        log(f"no CACTI comparison: {e}")
    (out / "results.json").write_text(json.dumps(result, indent=2) + "\n")
    log(f"{figs.name}: {figs.area_um2:.0f} um2 ({figs.width_um:.0f} x {figs.height_um:.0f} um), clk->q "
        f"{figs.clk_to_q_ns:.3f} ns, min period {figs.min_period_ns:.3f} ns, {figs.read_energy_pj:.2f} pJ/access, "
        f"leakage {figs.leakage_uw:.3f} uW; {seconds:.0f} s")
    if args.json:
        print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
