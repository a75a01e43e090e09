"""Speed of the RTL simulation: load, run and read back one paper-sized layer.

Issue 4's criterion: loading, running and reading back one Alex-7-sized layer
(4096 x 4096, 9 % weights, 35 % activations) on the ``paper`` preset (64 PEs,
queue depth 8) takes at most 60 s wall on a 2-core machine, build excluded.

The layer is ``eie.golden.synthetic.make_layer(LAYER, cfg, seed)``; the
testbench loads its memory image through the host protocol (fast link: the
harness streams the word file at one word per cycle), runs it, reads the
output and the counters, and checks them against the golden reference and the
cycle model. Prints one JSON object::

    .venv/bin/python bench/sim_speed.py [--layer Alex-7] [--preset paper] [--opt O2] [--seed 0]

``wall_s`` is the simulation's wall time (simulator start, load, run, read
back, checks and exit), the build is reported separately (``build_s``, 0 when
cached).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--layer", default="Alex-7", help="paper layer (eie.golden.synthetic.PAPER_LAYERS)")
    p.add_argument("--preset", default="paper", help="config preset (default paper: 64 PEs, FIFO 8)")
    p.add_argument("--opt", default="O2", choices=("O0", "O1", "O2"), help="C++ optimisation of the model")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--idle", type=float, default=0.0, help="host_in idle probability (default 0: full rate)")
    p.add_argument("--limit-s", type=float, default=60.0, help="pass criterion on wall_s (default 60)")
    args = p.parse_args(argv)

    from eie.config import preset
    from eie.golden.encode import build_image
    from eie.golden.synthetic import make_layer
    from eie.host import image_commands
    from eie.protocol import HostSession
    from eie.sim import driver, runner

    def log(msg):
        print(msg, file=sys.stderr, flush=True)

    cfg = preset(args.preset)
    t0 = time.monotonic()
    layer, x = make_layer(args.layer, cfg, seed=args.seed)
    image = build_image([layer], cfg)
    prep_s = time.monotonic() - t0
    host = HostSession(cfg)
    image_commands(host, image)
    words = len(host.take_outgoing())
    log(f"{args.layer}: {layer.nnz} weights, {int((x != 0).sum())} non-zero inputs, "
        f"about {words} load words ({prep_s:.1f} s to encode)")
    sim = runner.build(cfg, opt=args.opt, log=log)
    with tempfile.TemporaryDirectory(prefix="eie-sim-speed-") as tmp:
        job = Path(tmp)
        driver.write_job(job, cfg, [(args.layer, image, x[None, :])], idle=args.idle, seed=args.seed)
        t1 = time.monotonic()
        res, failed = driver.run_job(sim, job)
        wall = time.monotonic() - t1
    net = res["networks"][0] if res else {}
    inf = net.get("inferences", [{}])[0]
    out = {
        "layer": args.layer, "preset": args.preset, "pes": cfg.pes, "fifo_depth": cfg.fifo_depth,
        "opt": args.opt, "load_words": words, "cycles": inf.get("cycles"), "cycles_model": inf.get("cycles_model"),
        "bound": inf.get("bound"), "mismatches": res["mismatches"] if res else None,
        "load_s": net.get("load_s"), "run_read_check_s": net.get("run_s"), "tb_s": res["wall_s"] if res else None,
        "wall_s": round(wall, 2), "build_s": round(sim.build_s, 1), "build_cached": sim.cached,
        "limit_s": args.limit_s, "pass": bool(res and res["mismatches"] == 0 and wall <= args.limit_s),
        "error": failed,
    }
    print(json.dumps(out))
    return 0 if out["pass"] else 1


if __name__ == "__main__":
    sys.exit(main())
