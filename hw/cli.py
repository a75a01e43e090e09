"""``eie generate``: write the Verilog of an EIE design and its description.

::

    eie generate --pes 4 -o build/eie4 --lint
    eie generate --preset paper -o build/paper --json
    eie generate --config build/digits/config.json --fifo-depth 16 -o build/digits-hw

The config starts from ``--config FILE`` (any JSON carrying a config, e.g. a
network manifest) or ``--preset`` (default ``tiny`` when only field options are
given); every config field can then be overridden by its own option
(``--fifo-depth``, ``--entries-per-word``, ...). Invalid values are rejected by
:class:`~eie.config.EIEConfig` with the field name and its range.

Writes ``DIR/eie.v`` (module ``eie_top``), ``DIR/config.json``,
``DIR/design.json`` and ``DIR/lint.vlt`` (see :mod:`eie.hw.verilog`).
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import fields



def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_arguments(parser)
    parser.add_argument("--target", choices=("fpga", "asic"), default="fpga",
                        help="fpga: memories inferred (block RAM); asic: memories as SRAM-macro or register-file "
                             "wrapper instances, their models in DIR/memories.v (default: fpga)")
    parser.add_argument("--lint", action="store_true",
                        help="run verilator --lint-only -Wall on the result (waivers in DIR/lint.vlt)")


def add_config_arguments(parser: argparse.ArgumentParser) -> None:
    """``--config``/``--preset``, one option per config field, and ``-o/--out`` (shared
    with ``eie asic``)."""
    from eie import config
    from eie.config import EIEConfig, PRESETS
    limits = getattr(config, "_LIMITS", {})     # (low, high, meaning) per field, for the help text
    src = parser.add_argument_group("configuration (start from --config or --preset, then override fields)")
    base = src.add_mutually_exclusive_group()
    base.add_argument("--config", metavar="FILE", help="JSON file with an EIE config (or an artifact with a "
                                                       "'config' key, such as a network manifest)")
    base.add_argument("--preset", choices=sorted(PRESETS), help="start from a preset (default: tiny)")
    for f in fields(EIEConfig):
        opt = "--" + f.name.replace("_", "-")
        lo, hi, what = limits.get(f.name, (None, None, f"config field {f.name}"))
        src.add_argument(opt, dest=f.name, type=int, metavar="N", default=None,
                         help=what + (f" ({lo}..{hi})" if lo is not None else ""))
    parser.add_argument("-o", "--out", metavar="DIR", default=None,
                        help="output folder (default: build/<command>/<config digest>)")


def config_from_args(args):
    """The EIEConfig the options describe (ValueError naming the field and range if invalid)."""
    from eie.config import EIEConfig, preset
    overrides = {f.name: getattr(args, f.name) for f in fields(EIEConfig) if getattr(args, f.name) is not None}
    if args.config is not None:
        base = EIEConfig.load(args.config)
    elif args.preset is not None or overrides:
        base = preset(args.preset or "tiny")
    else:
        raise ValueError("no configuration given: pass --pes N, --preset NAME or --config FILE")
    return base.replace(**overrides) if overrides else base


def main(args) -> int:
    from pathlib import Path
    from .verilog import generate

    cfg = config_from_args(args)
    out = Path(args.out) if args.out else Path("build") / "generate" / cfg.digest

    def progress(message):
        print(f"eie generate: {message}", file=sys.stderr, flush=True)

    result = generate(cfg, out, run_lint=args.lint, progress=progress, target=args.target)
    lint = result.get("lint")
    if lint is not None and lint["clean"]:
        lint = {k: v for k, v in lint.items() if k != "output"}   # keep --json short when clean
        result["lint"] = lint
    if args.json:
        print(json.dumps(result))
    else:
        print(f"{result['files']['verilog']}: module {result['top']}, {cfg.pes} PEs, config {cfg.digest}, "
              f"{result['verilog_lines']} lines in {result['seconds']:.1f} s")
        if lint is not None:
            print("lint: clean" if lint["clean"] else "lint: " + "\n".join(lint["warnings"][:50]))
    if lint is not None and not lint["clean"]:
        print(f"eie generate: verilator lint failed with {len(lint['warnings'])} warning(s); see above",
              file=sys.stderr)
        return 1
    return 0
