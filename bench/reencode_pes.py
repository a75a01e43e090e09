"""Storage of one compressed network re-encoded for other PE counts (BENCHMARKS.md, LeNet-300-100).

Reads the quantised layers of an ``eie compress`` folder (``layers.npz``, as
encoded: at the PE count it was compressed for the rows are load-balanced),
encodes them in interleaved CSC for each PE count with every memory sized to
the network (as ``eie compress --pes N`` does) and prints the compression
ratios: no retraining, no re-balancing (plain row interleave at the other PE
counts), so the weights are the same in every row.

    python bench/reencode_pes.py build/lenet --pes 1 2 4 8 [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path


def reencode(folder: Path, pes: int) -> dict:
    """The ``compression`` report of ``folder``'s layers encoded for ``pes`` PEs (memories fitted)."""
    from eie.config import EIEConfig
    from eie.format import read_manifest
    from eie.golden import fit as fitting
    from eie.golden.encode import encode_layer, load_layers
    from eie.golden.pipeline import storage_report

    manifest = read_manifest(folder)
    layers = load_layers(folder / "layers.npz")
    cfg = replace(EIEConfig.from_dict(manifest["config"]), pes=pes)
    shape = fitting.shape_needs([(layer.in_len, layer.out_len) for layer in layers], pes)
    work = fitting.fitted(cfg, {f: shape[f] for f in ("act_depth", "max_layers")})
    cfg = fitting.fitted(cfg, fitting.memory_needs(layers, work))
    compression, _ = storage_report(layers, [encode_layer(layer, cfg) for layer in layers], cfg)
    return compression


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dir", type=Path, help="output folder of eie compress")
    parser.add_argument("--pes", type=int, nargs="+", default=[1, 2, 4, 8], help="PE counts (default 1 2 4 8)")
    parser.add_argument("--json", action="store_true", help="one JSON object: PE count -> compression report")
    args = parser.parse_args(argv)
    if not (args.dir / "layers.npz").exists():
        print(f"reencode_pes: {args.dir} has no layers.npz; pass an output folder of `eie compress`", file=sys.stderr)
        return 2
    rows = {pes: reencode(args.dir, pes) for pes in args.pes}
    if args.json:
        print(json.dumps(rows))
        return 0
    print("| PEs | EIE format | Huffman | EIE bytes | pointer bytes (bits) | entries (padding) |")
    print("|---:|---:|---:|---:|---:|---:|")
    for pes, c in rows.items():
        print(f"| {pes} | {c['ratio']:.2f}x | {c['huffman_ratio']:.2f}x | {c['eie_bytes']} | "
              f"{c['breakdown_bytes']['pointer']} ({c['ptr_bits']}) | {c['entries']} ({c['padding']}) |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
