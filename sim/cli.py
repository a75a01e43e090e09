"""``eie simulate``: run a compressed network on the RTL (cocotb + Verilator or Icarus Verilog).

::

    eie simulate DIR [--inputs digits-test|mnist-test|FILE.npy|FILE.npz] [--labels FILE.npy] [--limit K]
                     [--config FILE] [--waves FILE.fst] [--link fast|python]
                     [--idle P] [--backpressure P] [--seed S] [--opt O0|O1|O2]
                     [--simulator verilator|icarus] [--json]

``DIR`` is a folder written by ``eie compress`` (``manifest.json``,
``layers.npz``, ``image.npz``). The Verilator model of the design (or, with
``--simulator icarus``, the Icarus Verilog one) is built once per config
(cached under ``build/sim``), the memory image is loaded through the host
protocol, every input is run, and the outputs and the
``CYCLES`` counter are checked against the golden reference and the cycle
model. See ``docs/verification.md``.

Inputs
    ``digits-test`` (default): the 360-image test split of ``digits_split()``,
    quantised with the manifest's ``input_frac`` (labels known).
    ``mnist-test``: the 10000-image MNIST test split of ``mnist_split()`` (for
    ``lenet-300-100``), likewise.
    ``FILE.npy``: a ``(batch, in_len)`` (or ``(in_len,)``) array. Floating-point
    arrays are quantised like the digits (round half up with ``input_frac``
    fraction bits, saturated to ``act_bits``); integer arrays are taken as
    fixed-point activations as they are. Labels only with ``--labels``.
    If the manifest has an ``input_perm`` the inputs are permuted into
    hardware order; its ``output_perm`` maps hardware outputs back to logical
    order before the argmax.

Exit status: 0 when every output and cycle count matched, 1 on a mismatch,
2 on bad input.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from pathlib import Path

__all__ = ["add_arguments", "main", "simulate"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("dir", metavar="DIR", help="compressed network folder (output of `eie compress`)")
    parser.add_argument("--inputs", default="digits-test", metavar="digits-test|mnist-test|FILE.npy|FILE.npz",
                        help="inputs to run: digits-test (the default, the digits test split), mnist-test (the "
                             "MNIST test split, for lenet-300-100), FILE.npy (float "
                             "inputs, or integers already in fixed point) or FILE.npz (X_test, y_test)")
    parser.add_argument("--labels", metavar="FILE.npy", help="integer labels of FILE.npy inputs (for accuracy)")
    parser.add_argument("--limit", type=int, metavar="K", help="run only the first K inputs")
    parser.add_argument("--config", metavar="FILE",
                        help="simulate a design of this config (JSON); the layers are re-encoded for it")
    parser.add_argument("--waves", metavar="FILE.fst", help="write an FST waveform (builds a tracing model)")
    parser.add_argument("--link", choices=("fast", "python"), default="fast",
                        help="how words reach the design: file-fed harness (fast) or Python per cycle")
    parser.add_argument("--idle", type=float, default=0.0, metavar="P",
                        help="probability of an idle cycle between host_in words (default 0)")
    parser.add_argument("--backpressure", type=float, default=0.0, metavar="P",
                        help="probability host_out is not ready in a cycle (default 0)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the idle/back-pressure patterns")
    parser.add_argument("--opt", choices=("O0", "O1", "O2"),
                        help="C++ optimisation of the Verilator model (default O1 up to 16 PEs, O0 above; "
                             "O2 builds slower and simulates fastest)")
    parser.add_argument("--simulator", choices=("verilator", "icarus"), default="verilator",
                        help="Verilog simulator: verilator (default, fast) or icarus (Icarus Verilog, "
                             "a second opinion; much slower, for small configs)")
    parser.add_argument("--netlist", metavar="BOARD",
                        help="simulate the gate-level netlist `eie build` synthesises for BOARD (its core, "
                             "its config, Yosys' cell models) instead of the RTL; the network must be "
                             "compressed for that board's config")


def _progress(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _network(directory: Path, config_file: str | None):
    """``(cfg, image, manifest)``; with ``--config`` the layers are re-encoded for that config."""
    from eie.config import EIEConfig
    from eie.golden.encode import image_for_config
    cfg = None if config_file is None else EIEConfig.load(config_file)
    image, manifest, _ = image_for_config(directory, cfg, who=f"the design of {config_file}", progress=_progress)
    return image.config, image, manifest


def simulate(directory, *, inputs: str = "digits-test", labels: str | None = None, limit: int | None = None,
             config: str | None = None, waves: str | None = None, link: str = "fast", idle: float = 0.0,
             backpressure: float = 0.0, seed: int = 0, opt: str | None = None, progress=_progress,
             generator=None, extra_args=(), keep_job: bool = False, simulator: str = "verilator") -> dict:
    """Run ``eie simulate``; returns the JSON result (see :func:`main`).

    ``simulator`` is ``"verilator"`` or ``"icarus"`` (``opt`` is Verilator's only).

    ``generator`` (:class:`eie.sim.runner.Generator`) replaces the RTL of
    ``eie.hw``, e.g. by a gate-level netlist (:mod:`eie.asic.gatelevel`);
    ``extra_args`` are more options of the simulator's build (Verilator's, or
    iverilog's). The job folder (``job`` in the result: the simulator's log and
    outputs) is deleted after a clean run unless ``keep_job``."""
    import numpy as np
    from eie.golden.balance import permute_input, unpermute_output
    from eie.golden.fidelity import against_float_model
    from eie.golden.quantize import load_inputs
    from eie.sim import driver, runner

    t0 = time.monotonic()
    directory = Path(directory)
    if not directory.is_dir():
        raise FileNotFoundError(f"{directory} is not a folder; pass the output folder of `eie compress`")
    cfg, image, manifest = _network(directory, config)
    if "input_frac" not in manifest:
        from eie.format import FormatError
        raise FormatError(directory / "manifest.json", "has no input_frac",
                          "re-run `eie compress` to write a current manifest")
    program = None
    if manifest.get("program") is not None:
        from eie.golden.program import Program
        program = Program.from_dict(manifest["program"])
    X, y, what = load_inputs(inputs, cfg, int(manifest["input_frac"]),
                             in_len=image.layers[0].in_len if program is None else program.in_len,
                             classes=image.layers[-1].out_len if program is None else program.out_len,
                             labels=labels, limit=limit, sequence=program is not None and program.sequence)
    X_logical = X
    if manifest.get("input_perm") is not None:
        X = permute_input(X, np.asarray(manifest["input_perm"]))
    out_perm = manifest.get("output_perm")
    if waves and not str(waves).endswith(".fst"):
        raise ValueError(f"--waves writes FST; name the file *.fst, not {waves!r}")

    sim = runner.build(cfg, waves=bool(waves), opt=opt, log=progress, generator=generator,
                       extra_args=extra_args, simulator=simulator)
    job = runner.build_root() / "jobs" / f"simulate-{cfg.digest}-{int(time.time() * 1000)}"
    driver.write_job(job, cfg, [("net", image, X) + ((program,) if program is not None else ())], link=link, seed=seed, idle=idle, backpressure=backpressure)
    progress(f"simulating {len(X)} inference(s) of {what} on {cfg.pes} PEs ({link} link, {simulator})")

    failure: list = []

    def work():
        try:
            runner.run(sim, job, waves_file=waves)
        except runner.RunFailed as e:   # mismatches fail the cocotb test; the result file tells
            failure.append(e)

    thread = threading.Thread(target=work, daemon=True)
    t_sim = time.monotonic()
    thread.start()
    seen = 0
    progress_file = job / driver.PROGRESS_FILE
    while thread.is_alive() or seen == 0:
        thread.join(0.25)
        if progress_file.exists():
            lines = progress_file.read_text().splitlines()
            for line in lines[seen:]:
                progress(line)
            seen = len(lines)
        if not thread.is_alive():
            break
    sim_s = time.monotonic() - t_sim
    try:
        res = driver.read_result(job)
    except FileNotFoundError:
        raise RuntimeError(str(failure[0]) if failure else "the simulation produced no result") from None
    rtl, golden = driver.read_outputs(job, "net")
    if out_perm is not None:
        rtl = unpermute_output(rtl, np.asarray(out_perm))
        golden = unpermute_output(golden, np.asarray(out_perm))
    infs = res["networks"][0]["inferences"]
    cycles = [r["cycles"] for r in infs]
    bound = [r["bound"] for r in infs]
    pred_rtl = rtl.argmax(axis=-1)
    pred_golden = golden.argmax(axis=-1)
    out = {
        "dir": str(directory), "inputs": what, "config": cfg.digest, "pes": cfg.pes,
        "inferences": len(infs), "mismatches": res["mismatches"], "first_mismatch": res["first_mismatch"],
        "cycles": cycles, "cycles_model": [r["cycles_model"] for r in infs],
        "cycle_model_checked": res["cycle_model"],
        "bound": bound, "bound_layers": [r["bound_layers"] for r in infs],
        "efficiency": [round(b / c, 4) if c else None for b, c in zip(bound, cycles)],
        "efficiency_total": round(sum(bound) / sum(cycles), 4) if sum(cycles) else None,
        "predictions_rtl": pred_rtl.tolist(), "predictions_golden": pred_golden.tolist(),
        "predictions_equal": bool(np.array_equal(pred_rtl, pred_golden)),
        "accuracy_rtl": None if y is None else float(np.mean(pred_rtl == y)),
        "accuracy_golden": None if y is None else float(np.mean(pred_golden == y)),
        "link": link, "simulator": simulator, "build_s": round(sim.build_s, 2), "build_cached": sim.cached,
        "sim_s": round(sim_s, 2), "wall_s": round(time.monotonic() - t0, 2),
        "waves": str(Path(waves).resolve()) if waves else None, "job": str(job),
        "fidelity": against_float_model(directory, manifest, X_logical, rtl, y),
    }
    if program is not None:
        out["program_calls"] = res["networks"][0]["program_calls"]
        out["eie_calls_per_inference"] = [r["calls"] for r in infs]
    if not res["mismatches"] and not failure and not keep_job:   # keep the job folder to debug a failure
        import shutil
        shutil.rmtree(job, ignore_errors=True)
        out["job"] = None
    return out


def main(args) -> int:
    if getattr(args, "netlist", None):
        other = [f"--{name}" for name in ("config", "labels", "waves", "opt") if getattr(args, name)]
        if other or args.link != "fast" or args.idle or args.backpressure:
            raise ValueError(f"--netlist runs the board's own config on the fast link without idle or "
                             f"back-pressure; drop {', '.join(other) or '--link/--idle/--backpressure'}")
        from eie.boards.netlist import simulate_netlist
        res = simulate_netlist(args.netlist, args.dir, inputs=args.inputs, limit=args.limit,
                               simulator=args.simulator, progress=_progress)
    else:
        res = simulate(args.dir, inputs=args.inputs, labels=args.labels, limit=args.limit, config=args.config,
                       waves=args.waves, link=args.link, idle=args.idle, backpressure=args.backpressure,
                       seed=args.seed, opt=args.opt, simulator=getattr(args, "simulator", "verilator"))
    if args.json:
        print(json.dumps(res))
    else:
        for i, (c, m, b) in enumerate(zip(res["cycles"], res["cycles_model"], res["bound"])):
            model = "" if m is None else f"  model {m}"
            print(f"inference {i}: {c} cycles{model}  bound {b}  efficiency {b / c if c else 0:.1%}"
                  f"  predicted {res['predictions_rtl'][i]}")
        n = res["inferences"]
        mean = sum(res["cycles"]) / n if n else 0
        print(f"{n} inference(s) on {res['pes']} PEs: {mean:.1f} cycles per inference on average, "
              f"load efficiency {res['efficiency_total'] or 0:.1%}")
        if res["accuracy_rtl"] is not None:
            print(f"accuracy: RTL {res['accuracy_rtl']:.2%}, golden {res['accuracy_golden']:.2%}")
        if res.get("fidelity"):
            from eie.golden.fidelity import summary
            print(f"fidelity of the RTL outputs against the float model: {summary(res['fidelity'])}")
        if res["mismatches"]:
            print(f"MISMATCHES: {res['mismatches']}; first: {res['first_mismatch']['message']}")
        else:
            checked = "outputs and cycles" if res["cycle_model_checked"] else "outputs (no cycle model)"
            print(f"RTL matches the golden model ({checked}) bit for bit")
        print(f"wall time {res['wall_s']:.1f} s (build {res['build_s']:.1f} s)")
    return 1 if res["mismatches"] else 0
