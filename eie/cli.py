"""The ``eie`` command line.

Each sub-command lives in the subpackage it belongs to, in a module that
defines ``add_arguments(parser)`` and ``main(args) -> int`` and imports nothing
heavy at module level (so ``eie generate`` never pays for torch or cocotb).

Conventions every command follows: progress goes to stderr, results to stdout;
``--json`` prints exactly one JSON document on stdout; bad input raises
``ValueError`` (or ``FileNotFoundError``) with a message that names the problem
and the fix, reported as one line ``eie CMD: error: ...`` on stderr with exit
status 2 (in ``--json`` mode also as ``{"error": "..."}`` on stdout). A damaged
or foreign input file raises :class:`eie.format.FormatError` (a ``ValueError``
naming the file, the problem and the fix), whose JSON object adds ``file``,
``problem`` and ``fix``.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys

# command -> (module, help)
COMMANDS = {
    "compress": ("eie.golden.cli", "prune, share and encode a model into the EIE format"),
    "generate": ("eie.hw.cli", "generate the Verilog of an EIE array"),
    "simulate": ("eie.sim.cli", "run a compressed network on the RTL (cocotb + Verilator)"),
    "bench": ("eie.sim.bench", "cycles and load efficiency on the paper's nine layers"),
    "regress": ("eie.sim.regress", "random networks on random RTL builds, bit- and cycle-exact"),
    "sweep": ("eie.golden.sweep", "design-space sweeps from the cycle model, with plots"),
    "build": ("eie.boards.cli", "build a bitstream for an FPGA board"),
    "flash": ("eie.boards.cli", "program a bitstream onto a board"),
    "run": ("eie.boards.cli", "run inference on a board over USB serial"),
    "asic": ("eie.asic.cli", "standard-cell synthesis, timing, area, gate-level run and power"),
    "prove": ("eie.hw.formal", "prove the blocks' formal properties (SymbiYosys)"),
}


def _add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print one JSON object with the results on stdout")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="eie", description="Generator for EIE sparse-inference accelerators.")
    parser.add_argument("--version", action="version", version=f"eie {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (module, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        _add_common(p)
        try:
            mod = importlib.import_module(module)
        except ModuleNotFoundError as e:  # a subcommand not implemented in this checkout
            if e.name != module:
                raise
            p.set_defaults(_module=None, _missing=module)
            continue
        adder = getattr(mod, f"add_{name}_arguments", None) or mod.add_arguments
        adder(p)
        p.set_defaults(_module=mod, _entry=getattr(mod, f"{name}_main", None) or mod.main)
    return parser


def _version() -> str:
    from . import __version__
    return __version__


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args._module is None:
        parser.error(f"command {args.command!r} is not available ({args._missing} is missing)")
    try:
        return int(args._entry(args) or 0)
    except (ValueError, FileNotFoundError) as e:   # eie.format.FormatError (a damaged file) is a ValueError
        from .format import FormatError
        message = " ".join(str(e).split())          # always one line
        if getattr(args, "json", False):
            print(json.dumps(e.to_dict() if isinstance(e, FormatError) else
                             {**e.to_dict(), "error": message} if callable(getattr(e, "to_dict", None)) else
                             {"error": message}))
        print(f"eie {args.command}: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
