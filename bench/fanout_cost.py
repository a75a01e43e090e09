"""What a fanout tree (``fanout_stages``) costs in cycles: NT-We at 64 PEs against queue
depth (paper preset, plain interleave) and digits-mlp on the ULX3S-85F dense preset at
48 and 64 PEs, for 0, 1 and 2 stages. Exact cycle counts from the cycle model (= the RTL's).

    python bench/fanout_cost.py [--json]
"""

import argparse
import json
import sys

import numpy as np


def _log(msg):
    print(msg, file=sys.stderr, flush=True)


def nt_we(depths=(1, 2, 3, 4, 8), stages=(0, 1)):
    from eie.config import PRESETS
    from eie.golden import cycle_model
    from eie.golden.encode import encode_layer
    from eie.golden.synthetic import make_layer
    base = PRESETS["paper"]
    layer, x = make_layer("NT-We", base, seed=0)
    enc = encode_layer(layer, base)
    rows = []
    for d in stages:
        for depth in depths:
            t = cycle_model.layer_cycles(base.replace(fifo_depth=depth, fanout_stages=d), enc.col_entries, x,
                                         layer.out_len)
            rows.append({"fanout_stages": d, "fifo_depth": depth, "cycles": t.cycles, "efficiency": t.efficiency})
            _log(f"NT-We fanout_stages={d} depth={depth}: {t.cycles} cycles, efficiency {t.efficiency:.3f}")
    return rows


def digits(pes_list=(48, 64), stages=(0, 1, 2)):
    from board_throughput import digits_cycles      # (bench/ is on the path when run as a script)
    from eie.boards.platforms import ecp5_dense_preset
    rows = []
    for pes in pes_list:
        for d in stages:
            _, cycles = digits_cycles(ecp5_dense_preset(pes).replace(fanout_stages=d))
            rows.append({"pes": pes, "fanout_stages": d, "cycles_mean": float(np.mean(cycles)),
                         "cycles_min": int(min(cycles)), "cycles_max": int(max(cycles))})
            _log(f"digits-mlp {pes} PEs fanout_stages={d}: {np.mean(cycles):.1f} cycles per inference")
    return rows


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    args = ap.parse_args(argv)
    result = {"nt_we_64_pes": nt_we(), "digits_mlp_ulx3s_85f": digits()}
    if args.json:
        print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
