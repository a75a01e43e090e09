"""``eie compress --max-error``: the compression reached within a fidelity target.

digits-mlp (4 PEs, the default schedule) at several targets, both ways:

``labelled``
    Its labelled split: the target is the accuracy drop (float minus fixed
    point, a fraction) on the 360 test images; retraining by cross-entropy.
``unlabelled``
    The same float model given only its 1 437 training images as unlabelled
    ``--inputs`` (a fifth held out): the target is the relative L2 error of the
    outputs (logits) against the float model; retraining by distillation.

For each: the densities chosen, the error achieved, the EIE-format ratio, the
number of verification runs, and the default densities (8 %, 8 %, 25 %) for
comparison. Writes one JSON object (stdout, and ``--out``)::

    .venv/bin/python bench/max_error.py [--quick] [--out bench/results/max_error.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path


def _row(result, metric_of) -> dict:
    r = result.report
    me = r.get("max_error") or {}
    return {"densities": r["densities"], "ratio": r["compression"]["ratio"],
            "achieved": me.get("achieved", metric_of(r)), "met": me.get("met"),
            "runs": len(me.get("attempts", [])) or 1, "accuracy_fixed_point": r["accuracy"]["fixed_point"],
            "rel_l2_fixed_point": r["fidelity"]["fixed_point"]["rel_l2"], "seconds": r["seconds"]["total"]}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="the test schedule (fewer epochs)")
    p.add_argument("--out", metavar="FILE.json", help="also write the JSON here")
    args = p.parse_args(argv)

    from eie.config import preset
    from eie.golden.models import digits_mlp, digits_split, set_threads
    from eie.golden.pipeline import Schedule, compress

    set_threads()
    schedule = Schedule.quick() if args.quick else Schedule()
    cfg = preset("tiny").replace(pes=4)
    t0 = time.perf_counter()
    out = {"command": "bench/max_error.py" + (" --quick" if args.quick else ""), "schedule": schedule.__dict__}

    drop = lambda r: max(0.0, r["accuracy"]["float"] - r["accuracy"]["fixed_point"])     # noqa: E731
    rel = lambda r: r["fidelity"]["fixed_point"]["rel_l2"]                                # noqa: E731
    labelled = {"metric": "accuracy_drop"}
    labelled["default_densities"] = _row(compress("digits-mlp", cfg, fit=True, schedule=schedule, progress=None),
                                         drop)
    for target in (0.005, 0.01, 0.02):
        print(f"digits-mlp labelled --max-error {target}", file=sys.stderr, flush=True)
        labelled[str(target)] = _row(compress("digits-mlp", cfg, fit=True, schedule=schedule, max_error=target,
                                              progress=None), drop)
    out["labelled"] = labelled

    X_train = digits_split()[0]
    model = digits_mlp(0, epochs=schedule.float_epochs)
    unlabelled = {"metric": "rel_l2"}
    unlabelled["default_densities"] = _row(compress(model, cfg, fit=True, schedule=schedule, inputs=X_train,
                                                    progress=None), rel)
    for target in (0.05, 0.1, 0.2):
        print(f"digits-mlp unlabelled --max-error {target}", file=sys.stderr, flush=True)
        unlabelled[str(target)] = _row(compress(model, cfg, fit=True, schedule=schedule, inputs=X_train,
                                                max_error=target, progress=None), rel)
    out["unlabelled"] = unlabelled
    out["seconds"] = round(time.perf_counter() - t0, 1)
    text = json.dumps(out, indent=1)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
