"""Place and route one block of an EIE design with qflow and draw it.

Generates the design of a config preset with ``eie`` (the default, non-ASIC
target: the block's small memories are inline and become flip-flops), cuts the
block out of ``eie.v`` with :func:`eie.asic.layout.extract_block` (plain module
names), runs :func:`eie.asic.layout.place_and_route` (qflow: Yosys, GrayWolf,
qrouter, Vesta post-route timing, Magic, Netgen LVS, DRC) and
:func:`eie.asic.layout.render_png`. Progress goes to stderr; with ``--json`` one
JSON document (the parsed results, the block, the picture) goes to stdout::

    nice -n 10 .venv/bin/python bench/asic_layout.py --preset tiny --block ccu --tech osu018 \\
        --out build/asic_ccu_osu018 --png docs/img/asic_ccu_osu018.png --json

Blocks: ``ccu`` (the central control unit with its leading-non-zero detector,
~7 k cells for ``tiny``, minutes) and ``lnzd`` (the detector alone, seconds).
Needs qflow: ``apt-get install -y --no-install-recommends qflow qflow-tech-osu018``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

# Block name -> module of eie.v (without the escaping backslash).
BLOCKS = {"ccu": "eie_top.array.ccu", "lnzd": "eie_top.array.ccu.lnzd"}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--preset", default="tiny", help="config preset (default tiny)")
    p.add_argument("--block", default="ccu", choices=sorted(BLOCKS), help="block to place and route")
    p.add_argument("--tech", default="osu018", help="qflow technology (default osu018)")
    p.add_argument("--clock-ns", type=float, default=10.0, help="clock period the post-route timing checks")
    p.add_argument("--out", default=None, help="qflow project folder (default build/asic_<block>_<tech>)")
    p.add_argument("--png", default=None, help="write the routed layout picture here")
    p.add_argument("--steps", default=None, help="comma-separated qflow steps (default all: "
                   "synthesize,place,route,backanno,migrate,lvs,drc)")
    p.add_argument("--keep", action="store_true", help="keep the project in --out and run only --steps on it "
                   "(e.g. --steps backanno,migrate,lvs,drc --keep to redo the checks after routing)")
    p.add_argument("--json", action="store_true", help="print the results as one JSON document on stdout")
    args = p.parse_args(argv)

    from eie.asic import layout
    from eie.config import preset
    from eie.hw.verilog import convert

    def log(msg):
        print(msg, file=sys.stderr, flush=True)

    if not layout.qflow_available():
        log(f"qflow is not installed; install it with `{layout.QFLOW_INSTALL}`")
        return 2
    out = Path(args.out or f"build/asic_{args.block}_{args.tech}")
    t0 = time.monotonic()
    log(f"generating the {args.preset} design ...")
    text = convert(preset(args.preset))
    gen_s = time.monotonic() - t0
    block_text, top = layout.extract_block(text, BLOCKS[args.block])
    out.mkdir(parents=True, exist_ok=True)
    log(f"{args.block}: module {top} with {', '.join(layout.module_names(block_text)[1:]) or 'no submodules'} "
        f"({len(block_text.splitlines())} lines), eie.v in {gen_s:.1f} s; qflow project {out}")
    steps = tuple(args.steps.split(",")) if args.steps else layout.QFLOW_STEPS
    result = layout.place_and_route(block_text, top, tech=args.tech, out_dir=out, clock_ns=args.clock_ns,
                                    progress=log, steps=steps, fresh=not args.keep)
    result["preset"] = args.preset
    result["block_name"] = args.block
    result["generate_s"] = round(gen_s, 2)
    if args.png:
        pic = layout.render_png(out, args.png,
                                title=f"EIE {args.preset} {args.block.upper()} ({top}): {args.tech} "
                                      f"({layout._TECH_NAMES.get(args.tech, args.tech)}), "
                                      f"qflow {result['qflow_version']}")
        result["png"] = pic
        log(f"picture {pic['png']}: {pic['width_px']} x {pic['height_px']} px, {pic['bytes'] / 1000:.0f} kB")
    (out / "results.json").write_text(json.dumps(result, indent=2) + "\n")
    log(f"{top}: {result['cells']} cells, die {result['die_width_um']} x {result['die_height_um']} um, "
        f"utilisation {result['core_utilisation']}, failed nets {result['failed_nets']}, "
        f"post-route {result['worst_path_ns']} ns = {result['fmax_mhz']} MHz, LVS errors {result['lvs_errors']}, "
        f"DRC errors {result['drc_errors']}, {result['runtime_s']['total']:.0f} s")
    if args.json:
        print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
