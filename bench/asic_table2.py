"""The ASIC figures beside the paper's Table II: measured (an ``eie asic`` report at
180 nm) and projected to 45 nm (``eie.asic.projection``), plus a paper-shaped PE:
the measured PE logic projected to 45 nm with the ``paper`` preset's memories
(16K x 64 Spmat, ...) from CACTI at 45 nm, times 64 PEs.

    python bench/asic_table2.py build/asic/small/report.json [--json]

Everything at 45 nm is a projection, labelled so; see docs/asic.md for the rules.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def main(argv=None) -> int:
    from eie.asic import sram
    from eie.asic.projection import PAPER, project
    from eie.config import preset
    from eie.hw.verilog import asic_verilog
    from eie.hw.memory import ASICTarget

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("report", help="report.json of eie asic")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    say = lambda m: print(m, file=sys.stderr, flush=True)   # noqa: E731
    report = json.loads(Path(args.report).read_text())
    macros_45 = {name: sram.macro_figures(m["words"], m["width"], "nm45", ports=m.get("ports", "1r1w"), progress=say)
                 for name, m in report["macros"].items()}
    proj = project(report, macros_45=macros_45)
    # a paper-shaped PE: the measured per-PE logic (projected) + the paper preset's memories at 45 nm
    paper = preset("paper")
    target = ASICTarget()
    say("elaborating the paper preset for its memory shapes")
    _, _, memories = asic_verilog(paper.replace(pes=1), target)
    pe_mems = [s for n, s in memories if n != "layer_table"]
    pe_macro_um2 = {}
    for shape in pe_mems:
        fig = (sram.macro_figures(shape.depth, shape.width, "nm45", ports=shape.ports, progress=say)
               if shape.kind == "sram" else None)
        pe_macro_um2[shape.module] = pe_macro_um2.get(shape.module, 0.0) + (fig.area_um2 if fig else 0.0)
    spmat = next(s for n, s in memories if n == "spmat")
    spmat_um2 = sram.macro_figures(spmat.depth, spmat.width, "nm45", ports=spmat.ports).area_um2
    pes = report["pes"]
    logic_pe = sum(c["logic_um2"] for n, c in proj["components"].items() if n not in ("CCU", "LNZD", "top")) / pes
    macro_pe = sum(pe_macro_um2.values())
    shared = sum(proj["components"][n]["area_um2"] for n in ("CCU", "LNZD", "top") if n in proj["components"])
    paper_pe = {"pe_mm2": round((logic_pe + macro_pe) / 1e6, 4), "logic_mm2": round(logic_pe / 1e6, 4),
                "sram_mm2": round(macro_pe / 1e6, 4), "sram_share": round(macro_pe / (logic_pe + macro_pe), 4),
                "spmat_share": round(spmat_um2 / (logic_pe + macro_pe), 4),
                "total_64_mm2": round((64 * (logic_pe + macro_pe) + shared) / 1e6, 3),
                "memories": {k: round(v / 1e6, 4) for k, v in pe_macro_um2.items()}}
    out = {"measured": {"node_nm": report["tech"]["node_nm"], "pes": pes, "total_mm2": report["area"]["total_mm2"],
                        "pe_mm2": round(report["area"]["pe_mean_um2"] / 1e6, 4),
                        "sram_share": report["area"]["sram_share"], "fmax_mhz": report["timing"]["fmax_mhz"]},
           "projected_45nm": proj, "paper_shaped_pe_45nm": paper_pe, "paper": PAPER}
    if args.json:
        print(json.dumps(out))
    else:
        print(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
