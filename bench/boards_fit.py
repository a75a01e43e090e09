"""Largest EIE design per board: build PE counts until the design stops fitting.

For each board, builds the board preset with increasing PE counts (``--pes``
list, or doubling from 1 with ``--search``, then bisecting between the last
fit and the first overflow) at the requested clock, and records for each
build whether it fits, the utilisation, the achieved Fmax and whether timing
was met. Prints a Markdown table (the "Largest design per board" section of
docs/boards.md) and writes every result to ``OUT/results.json``.

    python bench/boards_fit.py --board icebreaker --clock 24 --search
    python bench/boards_fit.py --board ulx3s-85f --clock 75 --pes 8 16 32 64

Each point is one ``eie build``; the same command reproduces it, e.g.
``eie build --board ulx3s-85f --pes 16 --clock 75 -o OUT --json``. Builds of
tens of PEs take tens of minutes each (nextpnr placement dominates).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path


def build_point(board: str, pes: int, clock: float, out: Path, seed: int) -> dict:
    from eie.boards.build import DoesNotFit, ToolError, build
    t0 = time.monotonic()
    try:
        s = build(board, out / f"{board}-{pes}pe", pes=pes, clock_mhz=clock, seed=seed, quiet=True)
        row = {"board": board, "pes": pes, "clock_mhz": clock, "fits": True, "fmax_mhz": s["fmax_mhz"],
               "timing_met": s["timing_met"], "utilisation": s["utilisation"]}
    except DoesNotFit as e:
        row = {"board": board, "pes": pes, "clock_mhz": clock, "fits": False, "fmax_mhz": None,
               "timing_met": False, "utilisation": e.utilisation, "overflow": e.overflow}
    except ToolError as e:      # a tool crashed: recorded, the sweep goes on
        row = {"board": board, "pes": pes, "clock_mhz": clock, "fits": None, "fmax_mhz": None,
               "timing_met": False, "utilisation": {}, "error": str(e).splitlines()[0], "log": e.log}
    row["seconds"] = round(time.monotonic() - t0, 1)
    row["command"] = f"eie build --board {board} --pes {pes} --clock {clock:g} -o OUT --json"
    print(json.dumps(row), file=sys.stderr, flush=True)
    return row


def search(board: str, clock: float, out: Path, seed: int, limit: int) -> list[dict]:
    rows, fit, over = [], 0, None
    pes = 1
    while pes <= limit:
        row = build_point(board, pes, clock, out, seed)
        rows.append(row)
        if row["fits"] is None:
            break
        if not row["fits"]:
            over = pes
            break
        fit = pes
        pes *= 2
    while over is not None and over - fit > 1:
        mid = (fit + over) // 2
        row = build_point(board, mid, clock, out, seed)
        rows.append(row)
        if row["fits"] is None:
            break                    # a tool failure says nothing about the fit
        fit, over = (mid, over) if row["fits"] else (fit, mid)
    return rows


def markdown(rows: list[dict]) -> str:
    lines = ["| board | PEs | clock MHz | fits | Fmax MHz | timing | LUT | FF | BRAM | DSP | SPRAM | overflow |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in sorted(rows, key=lambda r: (r["board"], r["pes"])):
        u = r["utilisation"]

        def cell(name):
            v = u.get(name)
            return f"{v['used']}/{v['available']}" if v else "-"
        over = "; ".join(f"{k} +{v['used'] - v['available']}" for k, v in r.get("overflow", {}).items())
        if r["fits"] is None:
            over = f"tool failed: {r['error']}"
        fits = {True: "yes", False: "no", None: "error"}[r["fits"]]
        lines.append(f"| {r['board']} | {r['pes']} | {r['clock_mhz']:g} | {fits} | "
                     f"{r['fmax_mhz'] if r['fmax_mhz'] is not None else '-'} | "
                     f"{'met' if r['timing_met'] else ('missed' if r['fits'] else '-')} | "
                     f"{cell('LUT') if 'LUT' in u else cell('LC')} | {cell('FF')} | {cell('BRAM')} | {cell('DSP')} | "
                     f"{cell('SPRAM')} | {over or '-'} |")
    best = {}
    for r in rows:
        if r["fits"] and r["pes"] > best.get(r["board"], {"pes": 0})["pes"]:
            best[r["board"]] = r
    lines.append("")
    for board, r in sorted(best.items()):
        lines.append(f"- **{board}**: largest fitting design {r['pes']} PEs, Fmax {r['fmax_mhz']} MHz "
                     f"({'meets' if r['timing_met'] else 'misses'} {r['clock_mhz']:g} MHz): `{r['command']}`")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--board", action="append", required=True, help="board (repeatable)")
    parser.add_argument("--clock", type=float, default=None, help="MHz (default: the board's)")
    parser.add_argument("--pes", type=int, nargs="*", default=None, help="PE counts to build")
    parser.add_argument("--search", action="store_true", help="double from 1 PE, then bisect")
    parser.add_argument("--limit", type=int, default=256, help="largest PE count --search tries")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("-o", "--out", default="build/bench-boards")
    args = parser.parse_args(argv)
    from eie.boards.platforms import get_board
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for name in args.board:
        board = get_board(name)
        clock = args.clock or board.clock_mhz
        if args.search:
            rows += search(board.name, clock, out, args.seed, args.limit)
        else:
            for pes in args.pes or [board.preset.pes]:
                rows.append(build_point(board.name, pes, clock, out, args.seed))
    (out / "results.json").write_text(json.dumps(rows, indent=2) + "\n")
    print(markdown(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
