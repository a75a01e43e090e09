"""``eie build``, ``eie flash`` and ``eie run``: the board commands.

Heavy imports (amaranth, numpy models, pyserial) happen inside the ``*_main``
functions, so ``eie --help`` stays fast.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

__all__ = ["add_build_arguments", "build_main", "add_flash_arguments", "flash_main", "add_run_arguments",
           "run_main", "programmer_command", "PROGRAMMERS"]


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _board_help() -> str:
    from .platforms import board_names
    return f"board: {', '.join(board_names())}, or an amaranth-boards platform as module:Class"


# -- build --------------------------------------------------------------------------

def add_build_arguments(parser) -> None:
    parser.add_argument("--board", required=True, help=_board_help())
    parser.add_argument("--pes", type=int, default=None, help="processing elements (default: the board preset's)")
    parser.add_argument("--clock", type=float, default=None, metavar="MHZ",
                        help="design clock in MHz, made by the PLL (default: the board's)")
    parser.add_argument("--config", default=None, metavar="FILE",
                        help="EIEConfig JSON (or any file with a 'config' object) instead of the board preset")
    parser.add_argument("--model", default=None, metavar="DIR",
                        help="compressed network (from `eie compress`) to bake into the memories")
    parser.add_argument("-o", "--out", default=None, metavar="OUT",
                        help="output folder (default: build/board-<board>)")
    parser.add_argument("--baud", type=int, default=None, help="UART baud rate (default: the board's)")
    parser.add_argument("--loopback", action="store_true",
                        help="build a UART link test that echoes every word instead of the accelerator")
    parser.add_argument("--seed", type=int, default=None, help="nextpnr placement seed (default 1)")
    parser.add_argument("--seeds", default=None, metavar="LIST",
                        help="place and route with each of these seeds (e.g. 1..8 or 1,4,9) as tasks, keep the "
                             "best (timing met, then highest Fmax) in OUT, report all; with --jobs N or --ray")
    parser.add_argument("-v", "--verbose", action="store_true", help="stream the full tool logs to stderr")
    from ..cluster import add_arguments as add_cluster_arguments
    add_cluster_arguments(parser)


def parse_seeds(text: str) -> list[int]:
    """``--seeds``: comma-separated seeds and ranges ``A..B`` (B included), e.g. ``1..4,9``."""
    seeds = []
    for part in text.split(","):
        part = part.strip()
        try:
            if ".." in part:
                a, b = (int(v) for v in part.split("..", 1))
                if b < a:
                    raise ValueError
                seeds.extend(range(a, b + 1))
            elif part:
                seeds.append(int(part))
        except ValueError:
            raise ValueError(f"--seeds takes seeds and ranges like 1..8 or 1,4,9, not {text!r}") from None
    if not seeds or len(set(seeds)) != len(seeds) or min(seeds) < 0:
        raise ValueError(f"--seeds needs distinct non-negative seeds (like 1..8 or 1,4,9), not {text!r}")
    return seeds


def build_main(args) -> int:
    from ..config import EIEConfig
    from .build import DoesNotFit, ToolError, build
    from .platforms import get_board

    board = get_board(args.board)
    config = None
    if args.config:
        config = EIEConfig.load(args.config)     # says what --config expects when the file is missing or wrong
    out = args.out or f"build/board-{board.name.replace(':', '_')}"
    if args.seeds is not None:
        return _build_seeds(args, board, config, Path(out))
    try:
        summary = build(board.name, out, pes=args.pes, clock_mhz=args.clock, config=config, model=args.model,
                        baud=args.baud, loopback=args.loopback, seed=1 if args.seed is None else args.seed,
                        verbose=args.verbose)
    except DoesNotFit as e:
        if args.json:
            print(json.dumps({"error": str(e), "board": board.name, "fits": False, "overflow": e.overflow,
                              "utilisation": e.utilisation}))
        _stderr(f"eie build: error: {e}")
        return 1
    except ToolError as e:
        if args.json:
            print(json.dumps({"error": str(e), "board": board.name, "log": e.log}))
        _stderr(f"eie build: error: {e}")
        return 1
    if args.json:
        print(json.dumps(summary))
        return 0
    print(f"board      {summary['board']}  ({summary['pes']} PEs, config {summary['config_digest']})")
    print(f"clock      {summary['clock_mhz']:g} MHz requested, PLL {summary['pll_mhz']:.3f} MHz, "
          f"Fmax {summary['fmax_mhz']} MHz: timing {'met' if summary['timing_met'] else 'NOT met'}")
    for name, u in summary["utilisation"].items():
        print(f"  {name:<6} {u['used']:>6} / {u['available']:<6} {u['percent']:5.1f} %")
    if summary["model"]:
        print(f"model      {summary['model']['path']} baked in (image {summary['model']['image_digest']})")
    print(f"bitstream  {summary['bitstream']}")
    return 0 if summary["timing_met"] else 1


def _seed_command(args, board, seed: int, out: Path) -> str:
    """The ``eie build`` command that builds one seed alone, locally."""
    words = ["eie", "build", "--board", board.name]
    for flag, value in (("--pes", args.pes), ("--clock", args.clock), ("--config", args.config),
                        ("--model", args.model), ("--baud", args.baud)):
        if value is not None:
            words += [flag, str(value)]
    if args.loopback:
        words.append("--loopback")
    return shlex.join(words + ["--seed", str(seed), "-o", str(out)])


def _build_seeds(args, board, config, out: Path) -> int:
    """``eie build --seeds``: one task per seed (eie.cluster), the best kept in ``out``."""
    import base64
    from .. import cluster
    from .build import DESIGN_FILE, best_seed
    from .platforms import board_config
    if args.seed is not None:
        raise ValueError("give --seed or --seeds, not both")
    seeds = parse_seeds(args.seeds)
    where = cluster.executor_from_args(args)
    cfg = board_config(board, pes=args.pes, config=config)
    root = out / "seeds"
    params = {"board": board.name, "pes": args.pes, "clock_mhz": args.clock,
              "config": config.to_dict() if config is not None else None,
              "model": str(Path(args.model).resolve()) if args.model else None, "baud": args.baud,
              "loopback": bool(args.loopback)}
    tasks = [cluster.Task("build", f"seed{k}", "eie.boards.build:build_task", {**params, "seed": k}, seed=k,
                          config_digest=cfg.digest, command=_seed_command(args, board, k, root / f"seed{k}"))
             for k in seeds]
    _stderr(f"eie build: {len(seeds)} seeds of {board.name} (config {cfg.digest}) as tasks, "
            + (f"on the Ray cluster at {where['ray']}" if where["ray"] else
               f"{where['jobs']} local process(es)" if where["jobs"] > 1 else "serial"))
    envelopes, stats = cluster.run_tasks(tasks, root, progress=_stderr, **where)
    rows, results = [], []
    for k, env in zip(seeds, envelopes):
        r = env["result"] if env["ok"] else None
        results.append(r)
        rows.append({"seed": k, "ok": env["ok"], "error": env["error"], "node": env["node"],
                     "attempts": env["attempts"], "wall_s": env["wall_s"], "command": env["command"],
                     **({"fmax_mhz": r["fmax_mhz"], "timing_met": r["timing_met"], "seconds": r["seconds"],
                         "netlist_cached": r.get("netlist_cached"), "utilisation": {n: u["used"] for n, u in r["utilisation"].items()}} if r else {})})
    best = best_seed(results)
    report = {"board": board.name, "seeds": rows, "executor": stats.to_dict(),
              "best_seed": best["seed"] if best else None}
    if best is None:
        report["error"] = f"no seed built: {rows[0]['error']}; reproduce one with: {rows[0]['command']}"
        if args.json:
            print(json.dumps(report))
        _stderr(f"eie build: error: {report['error']}")
        return 1
    bitstream = out / Path(best["bitstream"]).name
    bitstream.write_bytes(base64.b64decode(best.pop("bitstream_b64")))
    for r in results:
        if r is not None:
            r.pop("bitstream_b64", None)
    summary = {**best, "bitstream": str(bitstream), **report}
    (out / DESIGN_FILE).write_text(json.dumps(summary, indent=2) + "\n")
    if args.json:
        print(json.dumps(summary))
    else:
        for row in rows:
            what = (f"Fmax {row['fmax_mhz']} MHz, timing {'met' if row['timing_met'] else 'NOT met'}, "
                    f"{row['seconds']:.0f} s" if row["ok"] else f"FAILED: {row['error']}\n    reproduce: "
                    f"{row['command']}")
            print(f"seed {row['seed']:>4}  {what}{'  <- best' if row['seed'] == best['seed'] else ''}")
        print(f"best seed  {best['seed']}: Fmax {best['fmax_mhz']} MHz "
              f"({'met' if best['timing_met'] else 'NOT met'}); bitstream {bitstream}")
    return 0 if best["timing_met"] else 1


# -- flash --------------------------------------------------------------------------

PROGRAMMERS = {
    # name: (executable, environment override (amaranth's convention), install hint)
    "openfpgaloader": ("openFPGALoader", "OPENFPGALOADER",
                       "install it with `apt-get install openfpgaloader` (Debian/Ubuntu) or see "
                       "https://github.com/trabucayre/openFPGALoader"),
    "iceprog": ("iceprog", "ICEPROG", "install it with `apt-get install fpga-icestorm` (Debian/Ubuntu)"),
}


def add_flash_arguments(parser) -> None:
    parser.add_argument("--board", required=True, help=_board_help())
    parser.add_argument("out", metavar="OUT", help="build folder from `eie build` (or the bitstream file)")
    parser.add_argument("--programmer", choices=sorted(PROGRAMMERS), default="openfpgaloader",
                        help="programming tool (default: openfpgaloader)")
    parser.add_argument("--sram", action="store_true",
                        help="load into the FPGA's configuration RAM only (lost at power-off) instead of flash")
    parser.add_argument("--dry-run", action="store_true", help="print the command instead of running it")


def _read_design(path: Path) -> dict:
    """``design.json`` of a build folder, validated (FormatError naming the file when damaged)."""
    from ..format import FormatError, read_json
    data = read_json(path, what="design file", fix="re-run `eie build` to write it again")
    if not isinstance(data, dict):
        raise FormatError(path, f"is a JSON {type(data).__name__}, not an object", "re-run `eie build` to write it again")
    return data


def _find_bitstream(board, out: str) -> Path:
    path = Path(out)
    if path.is_dir():
        design = path / "design.json"
        if design.exists():
            data = _read_design(design)
            if data.get("board") not in (board.name, None) and data.get("board") != board.name:
                raise ValueError(f"{path} was built for board {data.get('board')!r}, not {board.name!r}; "
                                 f"pass --board {data.get('board')}")
            if isinstance(data.get("bitstream"), str) and data["bitstream"]:
                candidate = Path(data["bitstream"])
                if not candidate.is_absolute() and not candidate.exists():
                    candidate = path / candidate.name
                if candidate.exists():
                    return candidate
        found = sorted(path.glob(f"*{board.bitstream_suffix}"))
        if not found:
            raise FileNotFoundError(f"no {board.bitstream_suffix} bitstream in {path}; run `eie build --board "
                                    f"{board.name} -o {path}` first")
        return found[0]
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist; give the folder `eie build` wrote or a bitstream file")
    if path.suffix != board.bitstream_suffix:
        raise ValueError(f"{path} is not a {board.family} bitstream (expected a {board.bitstream_suffix} file "
                         f"for {board.name})")
    return path


def programmer_command(board, bitstream: Path, programmer: str, *, sram: bool = False) -> list[str]:
    """The command that programs ``bitstream`` onto ``board`` (the executable resolved on PATH)."""
    exe, env_var, hint = PROGRAMMERS[programmer]
    tool = os.environ.get(env_var, exe)
    resolved = shutil.which(tool)
    if resolved is None:
        raise FileNotFoundError(f"the programmer {tool} was not found on PATH; {hint}")
    if programmer == "iceprog":
        if not board.iceprog:
            raise ValueError(f"iceprog cannot program {board.name} (an {board.family} board); "
                             f"use --programmer openfpgaloader")
        return [resolved, *(["-S"] if sram else []), str(bitstream)]
    if not board.openfpgaloader:
        raise ValueError(f"no openFPGALoader board options are known for {board.name}; add them to its "
                         f"Board entry (openfpgaloader=(\"-b\", NAME)) in boards/platforms.py")
    mode = ["-m"] if sram else (["-f"] if board.family in ("ecp5", "gowin") else [])
    return [resolved, *board.openfpgaloader, *mode, str(bitstream)]


def flash_main(args) -> int:
    from .platforms import get_board

    board = get_board(args.board)
    bitstream = _find_bitstream(board, args.out)
    if args.dry_run:
        try:
            cmd = programmer_command(board, bitstream, args.programmer, sram=args.sram)
            missing = None
        except FileNotFoundError as e:
            # A dry run still shows what would run.
            exe = os.environ.get(PROGRAMMERS[args.programmer][1], PROGRAMMERS[args.programmer][0])
            cmd, missing = [exe] + ([] if args.programmer == "iceprog" else list(board.openfpgaloader)) \
                + [str(bitstream)], str(e)
        if args.json:
            print(json.dumps({"board": board.name, "bitstream": str(bitstream), "programmer": args.programmer,
                              "command": cmd, "dry_run": True, "programmer_missing": missing}))
        else:
            print(shlex.join(cmd))
            if missing:
                _stderr(f"note: {missing}")
        return 0
    cmd = programmer_command(board, bitstream, args.programmer, sram=args.sram)
    _stderr(f"$ {shlex.join(cmd)}")
    t0 = time.monotonic()
    proc = subprocess.run(cmd, stdout=sys.stderr, stderr=sys.stderr)
    seconds = time.monotonic() - t0
    if args.json:
        print(json.dumps({"board": board.name, "bitstream": str(bitstream), "programmer": args.programmer,
                          "command": cmd, "dry_run": False, "returncode": proc.returncode,
                          "seconds": round(seconds, 2)}))
    if proc.returncode:
        _stderr(f"eie flash: error: {cmd[0]} failed with exit status {proc.returncode}; is the board plugged "
                f"in and not used by another program?")
        return 1
    if not args.json:
        print(f"programmed {bitstream} onto {board.name} in {seconds:.1f} s")
    return 0


# -- run ----------------------------------------------------------------------------

def add_run_arguments(parser) -> None:
    parser.add_argument("--board", required=True, help=_board_help())
    parser.add_argument("--port", required=True, help="serial port of the board's UART, e.g. /dev/ttyUSB1")
    parser.add_argument("model", metavar="DIR", help="compressed network from `eie compress`")
    parser.add_argument("--design", default=None, metavar="OUT",
                        help="the folder `eie build` wrote (its design.json gives config and baud rate; "
                             "default: the board preset)")
    parser.add_argument("--pes", type=int, default=None, help="PEs of the design (without --design)")
    parser.add_argument("--baud", type=int, default=None, help="UART baud rate (default: the design's)")
    parser.add_argument("--inputs", default="digits-test",
                        help="digits-test, FILE.npy (float inputs, or integers already in fixed point) or "
                             "FILE.npz (X_test, y_test)")
    parser.add_argument("--labels", default=None, metavar="FILE.npy",
                        help="integer labels for FILE.npy inputs (prints the accuracy)")
    parser.add_argument("--limit", type=int, default=None, metavar="K", help="run the first K inputs only")
    parser.add_argument("--reload", action="store_true", help="load the network even if it is baked in")
    parser.add_argument("--timeout", type=float, default=2.0, metavar="S",
                        help="seconds to wait for an answer before resending a frame (default 2)")


def _run_network(rt, image, Q, perm):
    """Run a plain network once per input; ``(predictions, cycles, mismatches against the golden model)``."""
    import numpy as np

    from ..golden.balance import unpermute_output
    from ..golden.reference import image_forward
    last = image.layers[-1]
    # The golden outputs of every input at once (decoding the image once).
    expected_all = np.asarray(image_forward(image, Q)[-1], dtype=np.int64).reshape(len(Q), -1)[:, :last.out_len]
    predictions, cycles, mismatches = [], [], 0
    for i, q in enumerate(Q):
        res = rt.infer(q, image.layers)
        out = np.asarray(res.output, dtype=np.int64)
        if not np.array_equal(out, expected_all[i]):
            mismatches += 1
        logical = out if perm is None else unpermute_output(out, perm)
        predictions.append(int(np.argmax(logical)))
        cycles.append(int(res.cycles))
        if (i + 1) % 16 == 0 or i + 1 == len(Q):
            _stderr(f"  {i + 1}/{len(Q)} inferences")
    return predictions, cycles, mismatches


def _run_program(rt, program, image, Q):
    """Run a program over the link: host steps here, each ``eie`` step on the board (its layer-table entries
    written at positions ``0..count-1``, then one ``RUN`` per input). Returns ``(predictions, cycles per
    input, mismatches against the golden program run, EIE calls)``."""
    import numpy as np

    from ..golden.encode import decode_image
    from ..golden.program import run_fixed
    cfg = rt.cfg
    layers = decode_image(image)
    cycles = np.zeros(len(Q), np.int64)
    calls = [0]

    def eie(first, count, x):
        table = image.layers[first:first + count]
        rt.load_layer_table(table)
        out = np.zeros((len(x), table[-1].out_len), np.int64)
        for i, q in enumerate(x):
            res = rt.infer(q, table)
            out[i] = res.output
            cycles[i] += res.cycles
        calls[0] += 1
        _stderr(f"  EIE call {calls[0]} (layers {first}..{first + count - 1}) for {len(x)} input(s)")
        return out

    got = run_fixed(program, layers, cfg, Q, eie=eie)
    expected = run_fixed(program, layers, cfg, Q)
    mismatches = int(sum(not np.array_equal(g, e) for g, e in zip(got, expected)))
    predictions = [int(v) for v in np.asarray(got).argmax(axis=-1).reshape(len(Q), -1)[:, -1]]
    return predictions, [int(c) for c in cycles], mismatches, calls[0]


def run_main(args) -> int:
    import numpy as np

    from ..config import EIEConfig
    from ..format import read_manifest
    from ..golden.quantize import load_inputs
    from ..golden.balance import permute_input
    from ..host import Runtime
    from ..protocol import Mem, ProtocolError
    from .build import DESIGN_FILE, load_model_image
    from .link import open_link
    from .platforms import board_config, get_board

    board = get_board(args.board)
    design = {}
    if args.design:
        path = Path(args.design) / DESIGN_FILE
        if not path.exists():
            raise FileNotFoundError(f"{path} does not exist; pass the folder `eie build -o` wrote")
        design = _read_design(path)
        if design.get("board") != board.name:
            raise ValueError(f"{args.design} was built for {design.get('board')!r}, not {board.name!r}")
        if design.get("loopback"):
            raise ValueError(f"{args.design} is a loopback link test, not an accelerator")
        if "config" not in design:
            raise ValueError(f"{args.design} has no 'config'; re-run `eie build` to write it")
        try:
            cfg = EIEConfig.from_dict(design["config"])
        except (ValueError, TypeError) as e:
            from ..format import FormatError
            raise FormatError(path, f"its config is invalid ({e})", "re-run `eie build` to write it again") from None
    else:
        cfg = board_config(board, pes=args.pes)
    baud = args.baud or design.get("baud") or board.baud
    manifest = read_manifest(args.model)
    program = None
    if manifest.get("program") is not None:        # host steps between EIE calls (docs/programs.md)
        from ..golden.program import Program
        program = Program.from_dict(manifest["program"])
    image, model_info = load_model_image(args.model, cfg, _stderr)
    first, last = image.layers[0], image.layers[-1]
    frac = manifest.get("input_frac", cfg.act_frac_bits)
    Q, y, _ = load_inputs(args.inputs, cfg, frac, in_len=first.in_len if program is None else program.in_len,
                          labels=args.labels, limit=args.limit,
                          classes=last.out_len if program is None else program.out_len,
                          sequence=program is not None and program.sequence)
    if manifest.get("input_perm") is not None:       # hardware input order, as `eie simulate` does
        Q = permute_input(Q, np.asarray(manifest["input_perm"]))
    perm = manifest.get("output_perm")

    _stderr(f"opening {args.port} at {baud} baud")
    if args.timeout <= 0:
        raise ValueError(f"--timeout must be positive, not {args.timeout}")
    link, port = open_link(args.port, baud, log=_stderr, timeout=args.timeout)
    try:
        rt = Runtime(cfg, link)
        try:
            rt.check_info()
        except ProtocolError as e:
            raise ValueError(f"{e} (build with the same --pes/--config, or pass --design)") from None
        baked = (not args.reload and (design.get("model") or {}).get("image_digest") == model_info["image_digest"])
        if baked:
            rt.host.read(Mem.LAYER, 0xFFFF, 0, len(image.layers))
            (resp,) = rt.flush()
            baked = resp.ok and resp.data == [l.packed(cfg) for l in image.layers]
        if baked:
            missing = (design.get("model") or {}).get("not_baked", [])
            _stderr("network is baked into the bitstream" + (f"; loading {', '.join(missing)}" if missing else ""))
            if "spmat" in missing:
                for k in range(cfg.pes):
                    if image.spmat.shape[1]:
                        rt.host.write(Mem.SPMAT, k, 0, image.spmat[k].tolist())
                for r in rt.flush():
                    r.check()
        else:
            t0 = time.monotonic()
            _stderr("loading the network over the UART ...")
            rt.load(image)
            _stderr(f"loaded in {time.monotonic() - t0:.1f} s")
        t0 = time.monotonic()
        if program is not None:
            predictions, cycles, mismatches, calls = _run_program(rt, program, image, Q)
        else:
            predictions, cycles, mismatches = _run_network(rt, image, Q, perm)
        seconds = time.monotonic() - t0
    finally:
        port.close()

    accuracy = float(np.mean(np.asarray(predictions) == y)) if y is not None else None
    summary = {
        "board": board.name, "port": args.port, "baud": baud, "pes": cfg.pes, "inputs": args.inputs,
        "count": len(predictions), "predictions": predictions, "accuracy": accuracy,
        "golden_mismatches": mismatches, "baked": bool(baked),
        **({"eie_calls": calls} if program is not None else {}),
        "cycles_mean": float(np.mean(cycles)) if cycles else None,
        "cycles_min": min(cycles) if cycles else None, "cycles_max": max(cycles) if cycles else None,
        "clock_mhz": design.get("pll_mhz"), "seconds": round(seconds, 2),
        "link": {"frames_sent": link.stats.frames_sent, "retransmissions": link.stats.retransmissions,
                 "naks": link.stats.naks},
    }
    if summary["clock_mhz"] and cycles:
        summary["latency_us_mean"] = summary["cycles_mean"] / summary["clock_mhz"]
    if args.json:
        print(json.dumps(summary))
    else:
        print(f"predictions {predictions[:32]}{' ...' if len(predictions) > 32 else ''}")
        if accuracy is not None:
            print(f"accuracy    {100 * accuracy:.2f} % on {len(predictions)} inputs")
        print(f"golden      {len(predictions) - mismatches}/{len(predictions)} outputs bit-exact")
        print(f"cycles      mean {summary['cycles_mean']:.0f} (min {summary['cycles_min']}, "
              f"max {summary['cycles_max']}) per inference")
    return 0 if mismatches == 0 else 1
