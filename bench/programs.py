"""Compression, fidelity and RTL figures of the program examples (issue 15: models beyond Linear/ReLU).

Usage::

    python bench/programs.py [--rtl 50] [--json] [-o bench/results/programs.json]

For each example of :mod:`eie.golden.examples` (the residual GELU/LayerNorm
MLP, the digits LSTM and GRU) and each density: train the float model (full
schedule), save it, run ``eie compress --model FILE.pt --data FILE.npz --pes 4
--density D --json`` (one command, memories fitted) and, with ``--rtl N``,
``eie simulate DIR --inputs X.npy --json`` on the first ``N`` test inputs.
Prints one Markdown table (and the JSON with ``--json`` / ``-o``).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

RUNS = [("digits-resmlp", None), ("digits-resmlp", 0.3), ("digits-lstm", 0.3), ("digits-lstm", 0.5),
        ("digits-gru", 0.3), ("digits-gru", 0.5)]


def _eie(*argv) -> dict:
    from eie.cli import main
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main([str(a) for a in argv])
    if code != 0:
        raise RuntimeError(f"eie {' '.join(map(str, argv))} exited with {code}")
    return json.loads(out.getvalue())


def run(name: str, density, rtl: int, work: Path) -> dict:
    import torch

    from eie.golden.examples import example_data, train_example
    folder = work / f"{name}-{density}"
    folder.mkdir(parents=True, exist_ok=True)
    model = train_example(name)
    torch.save(model, folder / "model.pt")
    X_train, y_train, X_test, y_test = example_data(name)
    np.savez(folder / "data.npz", X_train=X_train, y_train=y_train, X_test=X_test, y_test=y_test)
    argv = ["compress", "--model", folder / "model.pt", "--data", folder / "data.npz", "--pes", "4",
            "-o", folder / "net", "--json"] + ([] if density is None else ["--density", density])
    rep = _eie(*argv)
    row = {"model": name, "density_arg": density, "command": "eie " + " ".join(str(a) for a in argv),
           "accuracy": rep["accuracy"], "ratio": rep["compression"]["ratio"],
           "huffman_ratio": rep["compression"]["huffman_ratio"], "density": rep["compression"]["density"],
           "fidelity_fixed_point": rep["fidelity"]["fixed_point"], "eie_share": rep["partition"]["eie_share"],
           "host_ops": rep["partition"]["host_ops"], "layers": len(rep["layers"]),
           "memories": {k: v["chosen"] for k, v in rep["memories"]["fields"].items()}}
    if rtl:
        np.save(folder / "x.npy", X_test[:rtl])
        np.save(folder / "y.npy", y_test[:rtl])
        sim = _eie("simulate", folder / "net", "--inputs", folder / "x.npy", "--labels", folder / "y.npy", "--json")
        row["rtl"] = {"inferences": sim["inferences"], "mismatches": sim["mismatches"],
                      "cycles_equal_model": sim["cycles"] == sim["cycles_model"],
                      "cycles_mean": float(np.mean(sim["cycles"])), "eie_calls": sim["eie_calls_per_inference"][0],
                      "efficiency_total": sim["efficiency_total"], "accuracy_rtl": sim["accuracy_rtl"]}
    return row


def table(rows) -> str:
    lines = ["| model | density | float acc. | fixed-point acc. | rel. L2 vs float | ratio (EIE / Huffman) | "
             "EIE share of MACs | RTL: inputs, mismatches, cycles = model, mean cycles, EIE calls |",
             "|---|---:|---:|---:|---:|---:|---:|---|"]
    for r in rows:
        a, f = r["accuracy"], r["fidelity_fixed_point"]
        rtl = r.get("rtl")
        rtl_text = (f"{rtl['inferences']}, {rtl['mismatches']}, {'yes' if rtl['cycles_equal_model'] else 'NO'}, "
                    f"{rtl['cycles_mean']:.0f}, {rtl['eie_calls']}") if rtl else "–"
        lines.append(f"| {r['model']} | {r['density']:.1%} | {a['float']:.2%} | {a['fixed_point']:.2%} | "
                     f"{f['rel_l2']:.3f} | {r['ratio']:.1f}x / {r['huffman_ratio']:.1f}x | {r['eie_share']:.1%} | "
                     f"{rtl_text} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rtl", type=int, default=50, metavar="N", help="test inputs simulated on the RTL (0: none)")
    parser.add_argument("--json", action="store_true", help="print the JSON rows instead of the table")
    parser.add_argument("-o", "--out", help="also write the JSON rows here")
    args = parser.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for i, (name, density) in enumerate(RUNS):
            print(f"[{i + 1}/{len(RUNS)}] {name} density {density or 'default'}", file=sys.stderr, flush=True)
            rows.append(run(name, density, args.rtl, Path(tmp)))
    if args.out:
        Path(args.out).write_text(json.dumps(rows, indent=1) + "\n")
    print(json.dumps(rows) if args.json else table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
