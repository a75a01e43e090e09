"""``eie compress``: Deep Compression of a model into the EIE format.

Writes ``DIR/manifest.json`` (config, per-layer metadata, accuracy, storage),
``DIR/layers.npz`` (the quantised layers), ``DIR/image.npz`` (per-PE memory
images) and ``DIR/model.pt`` (the compressed float model as a plain
``nn.Sequential``); prints the Deep-Compression-style table, or with
``--json`` one JSON object (the report). Progress goes to stderr.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace

from eie.format import json_default

__all__ = ["add_arguments", "main"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default="digits-mlp",
                        help="'digits-mlp' or 'lenet-300-100' (built in: trained here on the 8x8 digits or on "
                             "MNIST, with their data), a file saved with torch.save(nn.Sequential) of Linear/ReLU "
                             "(loaded with weights_only=False: trusted files only), or module:function returning "
                             "one (default: digits-mlp)")
    parser.add_argument("--data", metavar="FILE.npz",
                        help="training/test data for a user model: arrays X_train, y_train, X_test, y_test. "
                             "Without it a user model is compressed without retraining or accuracy")
    parser.add_argument("--inputs", metavar="X.npy",
                        help="real inputs of a user model, unlabelled (batch, in_len): a fifth is held out to "
                             "measure the fidelity against the float model, the rest calibrates the fixed point "
                             "(instead of --data) and is the training set of retraining by distillation (MSE "
                             "between the compressed and the float model's outputs)")
    parser.add_argument("--max-error", type=float, metavar="E",
                        help="fidelity target instead of --density: per-layer densities chosen by sensitivity "
                             "(each layer pruned alone to candidate densities), verified on the whole compressed "
                             "network and backed off until its error on the held-out inputs is <= E: relative L2 "
                             "of the outputs vs the float model without labels (--inputs, or random inputs), the "
                             "accuracy drop as a fraction with labelled data (0.01 = one point)")
    parser.add_argument("--share-init", default="auto", choices=("auto", "linear", "density", "quantile", "kmeans++"),
                        help="k-means initialisation of weight sharing: linear (Deep Compression's), density (CDF), "
                             "quantile, kmeans++, or auto: per layer the one of least weight reconstruction MSE "
                             "(default: auto)")
    parser.add_argument("--density", type=_densities, metavar="D[,D...]",
                        help="fraction of weights kept in every layer, in (0, 1], or one per layer separated by "
                             "commas (default: 8%% hidden, "
                             "25%% output layer; lenet-300-100: Deep Compression's 8%%, 9%%, 26%%)")
    parser.add_argument("--pes", type=int, metavar="N",
                        help="number of PEs (overrides the config); without --config/--board every memory is "
                             "sized to the network, as with --preset")
    from eie.config import PRESETS
    parser.add_argument("--config", metavar="FILE",
                        help="EIEConfig JSON (or any artifact carrying one, such as a network's manifest.json) "
                             "or a preset name, pinned: a network that does not fit is refused with every "
                             "overflow listed; default: preset 'tiny'")
    parser.add_argument("--preset", choices=sorted(PRESETS),
                        help="start from a config preset (default: tiny), as `eie generate --preset` does, with "
                             "every memory (act_depth, spmat_depth, ptr_depth, bias_depth, max_layers) sized to "
                             "the network")
    parser.add_argument("--board", metavar="NAME",
                        help="use the config preset of an FPGA board (see `eie build --help`), so that "
                             "`eie build --board NAME --model DIR` bakes this network in as it is")
    parser.add_argument("--seed", type=int, default=0, help="training seed (default: 0)")
    parser.add_argument("-o", "--out", required=True, metavar="DIR", help="output folder")
    parser.add_argument("--no-balance", action="store_true",
                        help="keep the plain row interleave (row i in PE i mod N): no load-balancing permutation")
    parser.add_argument("--no-cache", action="store_true",
                        help="retrain a built-in model instead of using build/cache ($EIE_CACHE)")
    # For tests: far fewer epochs (lower accuracy).
    parser.add_argument("--quick", action="store_true", help=argparse.SUPPRESS)


def _densities(text: str):
    """``--density D`` (every layer) or ``D1,D2,...`` (one per layer): a float or a list of floats."""
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"--density must be a number or numbers separated by commas, not {text!r}")
    return values[0] if len(values) == 1 else values


def _config(args):
    from eie.config import EIEConfig, preset
    chosen = [opt for opt, value in (("--board", args.board), ("--config", args.config),
                                     ("--preset", getattr(args, "preset", None))) if value is not None]
    if len(chosen) > 1:
        raise ValueError(f"{' and '.join(chosen)} {'both' if len(chosen) == 2 else 'all'} choose the config; "
                         f"give one of them")
    if args.board is not None:
        from eie.boards.platforms import get_board
        cfg = get_board(args.board).preset
    elif args.config is not None:
        from pathlib import Path

        from eie.config import PRESETS
        cfg = (PRESETS[args.config] if args.config in PRESETS and not Path(args.config).exists()
               else EIEConfig.load(args.config))
    else:
        cfg = preset(getattr(args, "preset", None) or "tiny")
    if args.pes is not None:
        cfg = replace(cfg, pes=args.pes)  # re-runs the config's checks
    return cfg


def main(args) -> int:
    from .pipeline import Schedule, compress, format_report, write_output

    for d in args.density if isinstance(args.density, list) else [args.density]:
        if d is not None and not 0.0 < d <= 1.0:
            raise ValueError(f"--density must be in range (0, 1] (fraction of weights kept), not {d!r}")
    cfg = _config(args)
    # --pes or --preset without a pinned config (--config, --board): every memory sized to the network.
    fit = (args.config is None and args.board is None
           and (args.pes is not None or getattr(args, "preset", None) is not None))
    from .models import BUILTIN
    builtin_schedule = (BUILTIN[args.model].schedule if args.model in BUILTIN else None) or {}
    if args.model not in BUILTIN and args.data is None and getattr(args, "inputs", None) is None:
        print("eie compress: no --data given (nor --inputs): compressing without retraining and without accuracy "
              "(calibration and fidelity on random inputs)", file=sys.stderr)
    result = compress(args.model, cfg, density=args.density, seed=args.seed, data=args.data,
                      schedule=Schedule.quick() if args.quick else Schedule(**builtin_schedule),
                      cache=not args.no_cache,
                      balance=not args.no_balance, fit=fit, inputs=getattr(args, "inputs", None),
                      share_init=getattr(args, "share_init", "auto"), max_error=getattr(args, "max_error", None))
    cfg = result.config
    files = write_output(result, args.out)
    report = {**result.report, "config": cfg.to_dict(), "files": files}
    if args.json:
        print(json.dumps(report, default=json_default))
    else:
        print(format_report(result.report))
        print(f"wrote {', '.join(files.values())}")
    return 0
