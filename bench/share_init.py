"""Weight-sharing initialisation: linear (Deep Compression's) vs density, quantile, kmeans++ and auto.

Two networks, each compressed once per ``--share-init`` by the whole
``eie compress`` pipeline (:func:`eie.golden.pipeline.compress`):

``digits-mlp``
    The built-in 64-300-100-10 MLP with its labelled split (cross-entropy
    retraining), the default densities (8 %, 8 %, 25 %), 4 PEs.
``ffn-outlier-sharing-only``
    The FFN below, not pruned (density 100 %) and not retrained: the effect of
    the initialisation alone.
``ffn-outlier``
    A transformer-like feed-forward block 384-1536-384 (ReLU) with heavy-tailed
    weights (Student t, 3 degrees of freedom, scaled to a standard deviation of
    0.06) and one outlier weight 7.9 in the first layer (the issue's case),
    compressed with 2 000 unlabelled standard-normal ``--inputs`` (distillation
    retraining, a fifth held out), density 25 %, 16 PEs.

Per init and layer: codes in use (of 15), of them with a negative value, weight reconstruction MSE of k-means
over the surviving weights (before fine-tuning), and per network the output
relative L2 error against the float model on the held-out inputs after sharing
(fine-tuned) and in fixed point, with the accuracies for digits-mlp. Writes one
JSON object (stdout, and ``--out``)::

    .venv/bin/python bench/share_init.py [--quick] [--out bench/results/share_init.json]

``--quick``: the test schedule (fewer epochs), 1 000 FFN inputs.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

INITS = ("linear", "density", "quantile", "kmeans++", "auto")


def ffn_outlier(seed: int = 0, d: int = 384, hidden: int = 1536):
    """The synthetic FFN (see the module docstring) as an ``nn.Sequential``."""
    import numpy as np
    import torch
    import torch.nn as nn
    rng = np.random.default_rng(seed)
    model = nn.Sequential(nn.Linear(d, hidden), nn.ReLU(), nn.Linear(hidden, d))
    with torch.no_grad():
        for lin in (model[0], model[2]):
            t = rng.standard_t(3, lin.weight.shape)
            lin.weight.copy_(torch.tensor(0.06 * t / t.std(), dtype=torch.float32))
            lin.bias.copy_(torch.tensor(0.01 * rng.standard_normal(lin.out_features), dtype=torch.float32))
        model[0].weight[7, 11] = 7.9
    return model.eval()


def _row(result) -> dict:
    import numpy as np
    r = result.report
    fid = r["fidelity"]
    negative = [int(len(np.unique(q.codes[(q.codes != 0) & (q.codebook[q.codes] < 0)]))) for q in result.layers]
    return {
        "layers": [{"name": l["name"], "share_init": l["share_init"], "codes_used": l["codebook_used"],
                    "negative_codes": n, "weight_mse": l["share_init_mse"][l["share_init"]]}
                   for l, n in zip(r["layers"], negative)],
        "rel_l2_pruned": fid["pruned"]["rel_l2"], "rel_l2_shared": fid["shared"]["rel_l2"], "rel_l2_fixed_point": fid["fixed_point"]["rel_l2"],
        "accuracy_shared": r["accuracy"]["shared"], "accuracy_fixed_point": r["accuracy"]["fixed_point"],
        "accuracy_float": r["accuracy"]["float"], "ratio": r["compression"]["ratio"],
        "objective": r["objective"]["loss"], "seconds": r["seconds"]["total"],
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="test schedule, 1000 FFN inputs")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", metavar="FILE.json", help="also write the JSON here")
    args = p.parse_args(argv)

    import numpy as np

    from eie.config import preset
    from eie.golden.models import set_threads
    from eie.golden.pipeline import Schedule, compress

    set_threads()
    schedule = Schedule.quick() if args.quick else Schedule()
    n_inputs = 1000 if args.quick else 2000
    t0 = time.perf_counter()
    out = {"command": "bench/share_init.py" + (" --quick" if args.quick else ""), "seed": args.seed,
           "schedule": schedule.__dict__, "networks": {}}
    digits = {}
    for init in INITS:
        print(f"digits-mlp --share-init {init}", file=sys.stderr, flush=True)
        digits[init] = _row(compress("digits-mlp", preset("tiny").replace(pes=4), fit=True, seed=args.seed,
                                     schedule=schedule, share_init=init, progress=None))
    out["networks"]["digits-mlp"] = {"densities": [0.08, 0.08, 0.25], "pes": 4, "by_init": digits}
    X = np.random.default_rng([args.seed, 7]).standard_normal((n_inputs, 384)).astype(np.float32)
    ffn = {}
    for init in INITS:
        print(f"ffn-outlier --share-init {init}", file=sys.stderr, flush=True)
        ffn[init] = _row(compress(ffn_outlier(args.seed), preset("tiny").replace(pes=16), fit=True, seed=args.seed,
                                  density=0.25, inputs=X, schedule=schedule, share_init=init, progress=None))
    share_only = {}
    for init in INITS:
        print(f"ffn-outlier, sharing only --share-init {init}", file=sys.stderr, flush=True)
        share_only[init] = _row(compress(ffn_outlier(args.seed), preset("tiny").replace(pes=16), fit=True,
                                         seed=args.seed, density=1.0, inputs=X, share_init=init, progress=None,
                                         schedule=Schedule(float_epochs=0, prune_steps=1, prune_epochs=0,
                                                           share_epochs=0)))
    out["networks"]["ffn-outlier-sharing-only"] = {
        "shape": [384, 1536, 384], "densities": [1.0, 1.0], "pes": 16, "retraining": "none (0 epochs)",
        "inputs": f"{n_inputs} seeded standard-normal (unlabelled)", "by_init": share_only}
    out["networks"]["ffn-outlier"] = {"shape": [384, 1536, 384], "densities": [0.25, 0.25], "pes": 16,
                                      "inputs": f"{n_inputs} seeded standard-normal (unlabelled)", "by_init": ffn}
    out["seconds"] = round(time.perf_counter() - t0, 1)
    text = json.dumps(out, indent=1)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
