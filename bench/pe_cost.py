"""Per-PE cost across PE counts: one PE synthesised alone, and what N of them leave.

For each PE count, the board's config for it (``eie build --board B --pes N``
builds the same one: on the ULX3S-85F the memories are sized per PE count,
:func:`eie.boards.platforms.ecp5_dense_preset`), PE 0 synthesised alone by
Yosys with the board's synthesis command (:func:`eie.boards.build.synth_pe`,
seconds per point), in LUT4 sites (carry and LUT-RAM cells counted as the two
LUTs each occupies), flip-flops, block RAMs, DSPs and LUT-RAM cells. With
``--overhead design.json`` (the ``design.json`` of a real ``eie build``, which
reports ``pe_cost``: its overhead is the CCU, layer table, UART bridge and
board glue) each row adds ``N x per PE + overhead`` against the board's
capacity: a projection in Yosys' units (nextpnr's logic-cell count was 22 %
higher at 48 PEs: route-through LUTs), not a place-and-route result.

    python bench/pe_cost.py --board ulx3s-85f --pes 4 16 32 48 64 [--overhead OUT/design.json] [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

RESOURCES = ("LUT", "FF", "BRAM", "DSP", "LUTRAM")


def point(board_name: str, pes: int, folder: Path, overhead: dict | None, changes: dict) -> dict:
    from eie.boards.build import synth_pe, yosys_resources
    from eie.boards.platforms import board_config, get_board
    board = get_board(board_name)
    cfg = board_config(board, pes=pes).replace(**changes)
    t0 = time.monotonic()
    per_pe = yosys_resources(board.family, synth_pe(cfg, board.name, folder / f"pe{pes}"))
    row = {"board": board.name, "pes": pes, "act_depth": cfg.act_depth, "config_digest": cfg.digest,
           "per_pe": per_pe, "seconds": round(time.monotonic() - t0, 1)}
    if overhead is not None:
        total = {k: pes * per_pe[k] + overhead.get(k, 0) for k in RESOURCES}
        row["projected"] = total
        row["fits"] = all(total[k] <= board.capacity[k] for k in ("LUT", "BRAM", "DSP") if k in board.capacity)
    print(json.dumps(row), file=sys.stderr, flush=True)
    return row


def markdown(rows: list[dict], capacity: dict) -> str:
    head = "| PEs | act_depth | LUT / PE | FF / PE | DP16KD / PE | DSP / PE | LUT-RAM cells / PE |"
    sep = "|---:|---:|---:|---:|---:|---:|---:|"
    if rows and "projected" in rows[0]:
        head += " projected LUT | projected BRAM | fits |"
        sep += "---:|---:|---|"
    lines = [head, sep]
    for r in rows:
        p = r["per_pe"]
        line = (f"| {r['pes']} | {r['act_depth']} | {p['LUT']} | {p['FF']} | {p['BRAM']} | {p['DSP']} | "
                f"{p['LUTRAM']} |")
        if "projected" in r:
            t = r["projected"]
            line += (f" {t['LUT']} / {capacity.get('LUT', '?')} | {t['BRAM']} / {capacity.get('BRAM', '?')} | "
                     f"{'yes' if r['fits'] else 'no'} |")
        lines.append(line)
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--board", default="ulx3s-85f")
    parser.add_argument("--pes", type=int, nargs="+", default=[4, 16, 32, 48, 64])
    parser.add_argument("--overhead", default=None, metavar="DESIGN_JSON",
                        help="design.json of an eie build whose pe_cost.overhead to add")
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                        help="change a config field of every point (e.g. pe_counters=0)")
    parser.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    args = parser.parse_args(argv)
    from eie.boards.platforms import get_board
    board = get_board(args.board)
    changes = {}
    for item in args.set:
        field, _, value = item.partition("=")
        if not value.lstrip("-").isdigit():
            parser.error(f"--set takes FIELD=INTEGER, not {item!r}")
        changes[field] = int(value)
    overhead = None
    if args.overhead:
        design = json.loads(Path(args.overhead).read_text())
        if not design.get("pe_cost"):
            parser.error(f"{args.overhead} has no pe_cost (a loopback build, or one from before eie reported it)")
        overhead = design["pe_cost"]["overhead"]
    with tempfile.TemporaryDirectory() as tmp:
        rows = [point(board.name, n, Path(tmp), overhead, changes) for n in args.pes]
    command = "python bench/pe_cost.py " + " ".join(argv if argv is not None else sys.argv[1:])
    if args.json:
        print(json.dumps({"board": board.name, "changes": changes, "overhead": overhead, "rows": rows,
                          "command": command}, indent=2))
    else:
        print(markdown(rows, board.capacity))
        print(f"\n`{command}`")
    return 0


if __name__ == "__main__":
    sys.exit(main())
