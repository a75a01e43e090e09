"""Simulator-independent glue of the RTL checks: jobs, batched inference, checking.

A *job* is a folder that tells the cocotb testbench (:mod:`eie.sim.tb`) what to
do and receives what it found:

``job.json``
    the design's config, the link to use (``fast`` or ``python``), idle and
    back-pressure rates, the seed, and the list of networks, each a memory
    image (``<name>.image.npz``, :class:`eie.format.NetworkImage`) with a batch
    of integer inputs (``<name>.inputs.npy``, ``(batch, in_len)`` int64).
``result.json``
    per network and inference: RTL cycles, cycle-model cycles, the bound, and
    every mismatch (the first one of each inference, located to layer, PE and
    row); a summary.
``<name>.outputs.npz``
    ``rtl`` and ``golden`` outputs, ``(batch, out_len)`` int64, hardware row order.
``progress.txt``
    one line per step, for the CLI's progress display.

:func:`execute_job` does the work over any :class:`eie.host.Link`; the
testbench calls it from a cocotb bridge thread with its own link, so all
protocol work is done by :class:`eie.host.Runtime` and
:class:`eie.protocol.HostSession`. Outputs are checked bit for bit against
:mod:`eie.golden.reference` and the ``CYCLES`` counter exactly against
:mod:`eie.golden.cycle_model`.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from eie.config import EIEConfig
from eie.format import NetworkImage
from eie.host import Runtime, gather
from eie.protocol import ALL_PES, Counter, Mem, PECounter

__all__ = ["write_job", "read_result", "execute_job", "NetworkJob", "Mismatch", "first_mismatch",
           "LINKS", "infer_batch"]

LINKS = ("fast", "python")
JOB_FILE = "job.json"
RESULT_FILE = "result.json"
PROGRESS_FILE = "progress.txt"


@dataclass
class NetworkJob:
    """One network and its batch of inputs, as a job lists it."""
    name: str
    image: NetworkImage
    inputs: np.ndarray
    program: dict | None = None      # eie.golden.program.Program.to_dict(): run as a program


def write_job(job_dir, cfg: EIEConfig, networks, *, link: str = "fast", seed: int = 0, idle: float = 0.0,
              backpressure: float = 0.0, per_pe: bool = False, check_cycles: bool = True,
              locate: bool = True, timeout_cycles: int = 2_000_000, batch: int = 64) -> Path:
    """Write a job folder for the testbench.

    ``networks`` is a list of ``(name, NetworkImage, inputs)`` with ``inputs``
    integer activations of shape ``(batch, in_len)`` (or ``(in_len,)``), or
    ``(name, NetworkImage, inputs, program)`` with a
    :class:`eie.golden.program.Program` run with host steps between EIE calls
    (inputs ``(batch, in_len)`` or, recurrent, ``(batch, T, in_len)``).
    ``idle`` and ``backpressure`` are the probabilities of an idle cycle on
    ``host_in`` and of a not-ready cycle on ``host_out``. ``locate`` re-runs
    layer prefixes after an output mismatch to name the first wrong layer.
    """
    if link not in LINKS:
        raise ValueError(f"link must be one of {', '.join(LINKS)}, not {link!r}")
    for what, p in (("idle", idle), ("backpressure", backpressure)):
        if not 0.0 <= p < 1.0:
            raise ValueError(f"{what} probability must be in range 0 <= p < 1, not {p!r}")
    if per_pe and not cfg.pe_counters:
        raise ValueError("per_pe needs the per-PE counters, which this config leaves out (pe_counters=0)")
    job_dir = Path(job_dir)
    job_dir.mkdir(parents=True, exist_ok=True)
    entries = []
    names = set()
    for name, image, inputs, *rest in networks:
        program = rest[0] if rest else None
        if name in names or not name.replace("_", "").replace("-", "").isalnum():
            raise ValueError(f"network name {name!r} must be unique and alphanumeric (with - and _)")
        names.add(name)
        if image.config != cfg:
            raise ValueError(f"network {name!r} was encoded for config {image.config.digest}, "
                             f"not the design's {cfg.digest}")
        x = np.asarray(inputs)
        if x.ndim == 1:
            x = x[None, :]
        in_len = image.layers[0].in_len if program is None else program.in_len
        ndim = 3 if program is not None and program.sequence else 2
        if x.ndim != ndim or x.shape[-1] != in_len:
            shape = f"(batch, T, {in_len})" if ndim == 3 else f"(batch, {in_len})"
            raise ValueError(f"network {name!r}: inputs must have shape {shape}, not {np.shape(inputs)}")
        if not np.issubdtype(x.dtype, np.integer):
            raise ValueError(f"network {name!r}: inputs must be integer activations, not {x.dtype}")
        image.save(job_dir / f"{name}.image.npz")
        np.save(job_dir / f"{name}.inputs.npy", x.astype(np.int64))
        entries.append({"name": name, **({} if program is None else {"program": program.to_dict()})})
    (job_dir / JOB_FILE).write_text(json.dumps({
        "config": cfg.to_dict(), "link": link, "seed": int(seed), "idle": float(idle),
        "backpressure": float(backpressure), "per_pe": bool(per_pe), "check_cycles": bool(check_cycles),
        "locate": bool(locate), "timeout_cycles": int(timeout_cycles), "batch": int(batch),
        "networks": entries}, indent=2) + "\n")
    for stale in (RESULT_FILE, PROGRESS_FILE):
        (job_dir / stale).unlink(missing_ok=True)
    return job_dir


def read_job(job_dir) -> tuple[dict, list[NetworkJob]]:
    job_dir = Path(job_dir)
    spec = json.loads((job_dir / JOB_FILE).read_text())
    nets = [NetworkJob(e["name"], NetworkImage.load(job_dir / f"{e['name']}.image.npz"),
                       np.load(job_dir / f"{e['name']}.inputs.npy"), e.get("program")) for e in spec["networks"]]
    return spec, nets


def read_result(job_dir) -> dict:
    path = Path(job_dir) / RESULT_FILE
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: the testbench did not finish (see sim.log next to it)")
    return json.loads(path.read_text())


def read_outputs(job_dir, name: str) -> tuple[np.ndarray, np.ndarray]:
    """``(rtl, golden)`` outputs of network ``name`` of a finished job."""
    with np.load(Path(job_dir) / f"{name}.outputs.npz") as z:
        return z["rtl"], z["golden"]


# -- checking --------------------------------------------------------------------

@dataclass
class Mismatch:
    """The first difference between the RTL and the golden model in one inference."""
    network: str
    inference: int
    what: str                    # "output", or the counter: "cycles", "broadcasts", "layers", ...
    expected: int
    got: int
    layer: int | None = None     # first layer whose output differs (None if not located)
    row: int | None = None       # global output row
    pe: int | None = None
    local_row: int | None = None
    rows_wrong: int = 0

    def __str__(self) -> str:
        if self.what != "output":
            pe = f" of PE {self.pe}" if self.pe is not None else ""
            return (f"network {self.network!r} inference {self.inference}: {self.what} counter{pe} {self.got} != "
                    f"{self.expected} (cycle model / layer table)")
        where = f"layer {self.layer}" if self.layer is not None else "final output (layer not located)"
        return (f"network {self.network!r} inference {self.inference}: {where}, row {self.row} "
                f"(PE {self.pe}, local row {self.local_row}): expected {self.expected}, got {self.got} "
                f"({self.rows_wrong} rows differ)")

    def to_dict(self) -> dict:
        return {**self.__dict__, "message": str(self)}


def first_mismatch(expected: np.ndarray, got: np.ndarray, pes: int) -> tuple[int, int, int, int] | None:
    """``(row, expected, got, rows_wrong)`` of the first differing row, or ``None``."""
    expected = np.asarray(expected, np.int64)
    got = np.asarray(got, np.int64)
    if expected.shape != got.shape:
        raise ValueError(f"output shapes differ: expected {expected.shape}, got {got.shape}")
    bad = np.flatnonzero(expected != got)
    if not bad.size:
        return None
    r = int(bad[0])
    return r, int(expected[r]), int(got[r]), int(bad.size)


# -- batched inference -------------------------------------------------------------

def infer_batch(rt: Runtime, inputs: np.ndarray, layers: list, *, per_pe: bool = False) -> list[dict]:
    """Run ``layers`` (a prefix of the loaded layer table) on every row of ``inputs``
    in one host transaction per batch: write input, RUN (answer on completion),
    read the output vector and the counters. Returns per inference
    ``{"output", "cycles", "broadcasts", "broadcast_stalls", "layers"[, "pe_busy", "pe_stall"]}``.
    """
    cfg = rt.cfg
    host = rt.host
    out_len = layers[-1].out_len
    bank = len(layers) % 2
    groups = []
    for x in inputs:
        n0 = host.outstanding
        rt.write_input(x)
        n_write = host.outstanding - n0
        host.run(len(layers), wait=True)
        per_pe_len = [len(range(k, out_len, cfg.pes)) for k in range(cfg.pes)]
        for k, n in enumerate(per_pe_len):
            if n:
                host.read(Mem.ACT, k, bank * cfg.act_depth, n)
        host.read(Mem.COUNTER, ALL_PES, 0, len(Counter))
        if per_pe:
            for k in range(cfg.pes):
                host.read(Mem.COUNTER, k, 0, len(PECounter))
        groups.append((n_write, sum(1 for n in per_pe_len if n)))
    responses = [r.check() for r in rt.flush()]
    results, pos = [], 0
    for n_write, n_read in groups:
        pos += n_write + 1                       # writes and the RUN
        slices = [r.data for r in responses[pos:pos + n_read]]
        pos += n_read
        glob = responses[pos].data
        pos += 1
        res = {"output": gather(cfg, slices + [[]] * (cfg.pes - len(slices)), out_len)}
        res.update({c.name.lower(): int(glob[c]) for c in Counter})
        if per_pe:
            pe = [responses[pos + k].data for k in range(cfg.pes)]
            pos += cfg.pes
            res["pe_busy"] = [int(d[PECounter.BUSY]) for d in pe]
            res["pe_stall"] = [int(d[PECounter.STALL]) for d in pe]
        results.append(res)
    return results


def _batch_size(cfg: EIEConfig, table: list, limit: int, per_pe: bool, out_capacity: int) -> int:
    """Inferences per transaction so that the responses fit the capture memory (half of it)."""
    in_len, out_len = table[0].in_len, table[-1].out_len
    words = (min(cfg.pes, in_len) + 1 + min(cfg.pes, out_len) + out_len + 1 + 2 * len(Counter)
             + (cfg.pes * (1 + 2 * len(PECounter)) if per_pe else 0))
    return max(1, min(limit, (out_capacity // 2) // words))


# -- the job --------------------------------------------------------------------------

def _cycle_model():
    """``layer_cycles`` and ``image_col_entries`` of the golden cycle model, or ``None``."""
    try:
        from eie.golden.cycle_model import image_col_entries, layer_cycles
    except ImportError:
        return None
    return layer_cycles, image_col_entries


def execute_job(link, job_dir, *, out_capacity: int = 1 << 16, log=print) -> dict:
    """Run every network of the job in ``job_dir`` over ``link`` and check it.

    Blocking; call it from a thread that may block on the simulator (a cocotb
    bridge). Writes ``result.json`` and the outputs, appends progress lines,
    and returns the result dictionary. Never raises on a mismatch: the caller
    decides (the testbench fails its test when ``mismatches`` is not 0).
    """
    from eie.golden.encode import decode_image, encode_layer
    from eie.golden.reference import forward_all, layer_work

    job_dir = Path(job_dir)
    spec, nets = read_job(job_dir)
    spec["_dir"] = str(job_dir)
    cfg = EIEConfig.from_dict(spec["config"])
    progress_path = job_dir / PROGRESS_FILE
    model = _cycle_model() if spec["check_cycles"] else None

    def progress(msg: str) -> None:
        with open(progress_path, "a") as f:
            f.write(msg + "\n")
        if log:
            log(msg)

    t_start = time.monotonic()
    rt = Runtime(cfg, link)
    rt.check_info()
    result = {"config": cfg.to_dict(), "digest": cfg.digest, "networks": [], "mismatches": 0,
              "first_mismatch": None, "cycle_model": model is not None, "inferences": 0}
    for net in nets:
        image, X = net.image, net.inputs
        t0 = time.monotonic()
        rt.load(image)
        _tamper(rt)
        t_load = time.monotonic() - t0
        progress(f"{net.name}: loaded {len(image.layers)} layer(s) in {t_load:.2f} s")
        if net.program is not None:
            t1 = time.monotonic()
            rec = _execute_program(rt, net, spec, cfg, model, out_capacity, progress)
            rec["load_s"], rec["run_s"] = round(t_load, 3), round(time.monotonic() - t1, 3)
            result["networks"].append(rec)
            result["inferences"] += len(rec["inferences"])
            for inf in rec["inferences"]:
                if inf["mismatch"] is not None:
                    result["mismatches"] += 1
                    if result["first_mismatch"] is None:
                        result["first_mismatch"] = inf["mismatch"]
                        progress(f"MISMATCH {inf['mismatch']['message']}")
            continue
        layers_q = decode_image(image)
        acts = forward_all(layers_q, X, cfg)               # golden, batched: list of (batch, len)
        encs = [encode_layer(l, cfg) for l in layers_q]
        col_entries = [model[1](image, l) for l in range(len(image.layers))] if model else None
        size = _batch_size(cfg, image.layers, spec.get("batch", 64), spec["per_pe"], out_capacity)
        rtl_out = np.zeros((len(X), image.layers[-1].out_len), np.int64)
        infs = []
        t1 = time.monotonic()
        for b0 in range(0, len(X), size):
            batch = infer_batch(rt, X[b0:b0 + size], image.layers, per_pe=spec["per_pe"])
            for i, res in enumerate(batch, start=b0):
                rtl_out[i] = res["output"]
                work = [layer_work(enc, a[i], cfg) for enc, a in zip(encs, acts[:-1])]
                rec = {"index": i, "cycles": res["cycles"], "broadcasts": res["broadcasts"],
                       "broadcast_stalls": res["broadcast_stalls"], "layers": res["layers"],
                       "bound_layers": [w.bound for w in work], "bound": sum(w.bound for w in work),
                       "cycles_model": None, "mismatch": None}
                if "pe_busy" in res:
                    rec["pe_busy"], rec["pe_stall"] = res["pe_busy"], res["pe_stall"]
                mm = None
                hit = first_mismatch(acts[-1][i], res["output"], cfg.pes)
                if hit is not None:
                    row, exp, got, n_bad = hit
                    mm = Mismatch(net.name, i, "output", exp, got, None, row, row % cfg.pes, row // cfg.pes,
                                  n_bad)
                    if spec["locate"]:
                        mm = _locate(rt, image, X[i], acts, i, net.name) or mm
                if model is not None:
                    timing = [model[0](cfg, ce, a[i], entry.out_len)
                              for ce, a, entry in zip(col_entries, acts[:-1], image.layers)]
                    expect = {"cycles": sum(t.cycles for t in timing),
                              "broadcasts": sum(t.broadcasts for t in timing),
                              "broadcast_stalls": sum(t.broadcast_stalls for t in timing)}
                    rec["cycles_model"] = expect["cycles"]
                    rec["broadcast_stalls_model"] = expect["broadcast_stalls"]
                    if "pe_busy" in res:
                        expect["pe_busy"] = [int(v) for v in sum(t.busy for t in timing)]
                        expect["pe_stall"] = [int(v) for v in sum(t.stalls for t in timing)]
                    for what, value in expect.items():
                        if mm is None and value != res[what]:
                            mm = _counter_mismatch(net.name, i, what, value, res[what])
                if res["layers"] != len(image.layers) and mm is None:
                    mm = Mismatch(net.name, i, "layers", len(image.layers), res["layers"])
                if mm is not None:
                    rec["mismatch"] = mm.to_dict()
                    result["mismatches"] += 1
                    if result["first_mismatch"] is None:
                        result["first_mismatch"] = mm.to_dict()
                        progress(f"MISMATCH {mm}")
                infs.append(rec)
            progress(f"{net.name}: {min(b0 + size, len(X))}/{len(X)} inferences")
        t_run = time.monotonic() - t1
        np.savez(job_dir / f"{net.name}.outputs.npz", rtl=rtl_out, golden=acts[-1])
        result["networks"].append({"name": net.name, "layers": len(image.layers), "inferences": infs,
                                   "load_s": round(t_load, 3), "run_s": round(t_run, 3),
                                   "mismatches": sum(r["mismatch"] is not None for r in infs)})
        result["inferences"] += len(infs)
    result["wall_s"] = round(time.monotonic() - t_start, 3)
    (job_dir / RESULT_FILE).write_text(json.dumps(result, indent=1) + "\n")
    progress(f"done: {result['inferences']} inferences, {result['mismatches']} mismatches")
    return result


def _execute_program(rt: Runtime, net: NetworkJob, spec: dict, cfg: EIEConfig, model, out_capacity: int,
                     progress) -> dict:
    """Run a program (:mod:`eie.golden.program`) on the design: host steps here, ``eie`` steps on the RTL.

    Each ``eie`` step rewrites the layer table's first entries with the
    step's layers and runs them for the whole batch (one transaction per
    batch slice); its outputs are checked bit for bit against the reference
    on the same inputs and its cycles against the cycle model. The RTL's
    outputs feed the next host steps, so the final output is the RTL's; it is
    also checked against the golden program run (reference EIE calls).
    """
    from eie.golden.encode import decode_image, encode_layer
    from eie.golden.program import Program, run_fixed
    from eie.golden.reference import forward_all, layer_work

    image, X = net.image, net.inputs
    prog = Program.from_dict(net.program)
    layers_q = decode_image(image)
    encs = [encode_layer(l, cfg) for l in layers_q]
    col_entries = [model[1](image, l) for l in range(len(image.layers))] if model else None
    n = len(X)
    recs = [{"index": i, "cycles": 0, "broadcasts": 0, "broadcast_stalls": 0, "layers": 0, "calls": 0,
             "bound_layers": [], "bound": 0, "cycles_model": 0 if model else None, "mismatch": None}
            for i in range(n)]
    calls = [0]

    def eie(first, count, x):
        table = image.layers[first:first + count]
        rt.load_layer_table(table)
        size = _batch_size(cfg, table, spec.get("batch", 64), spec["per_pe"], out_capacity)
        acts = forward_all(layers_q[first:first + count], x, cfg)
        y = np.zeros((len(x), table[-1].out_len), np.int64)
        for b0 in range(0, len(x), size):
            for i, res in enumerate(infer_batch(rt, x[b0:b0 + size], table, per_pe=spec["per_pe"]), start=b0):
                y[i] = res["output"]
                rec = recs[i]
                work = [layer_work(encs[first + k], a[i], cfg) for k, a in enumerate(acts[:-1])]
                for what in ("cycles", "broadcasts", "broadcast_stalls", "layers"):
                    rec[what] += res[what]
                rec["calls"] += 1
                rec["bound_layers"] += [w.bound for w in work]
                rec["bound"] += sum(w.bound for w in work)
                if rec["mismatch"] is not None:
                    continue
                mm = None
                hit = first_mismatch(acts[-1][i], res["output"], cfg.pes)
                if hit is not None:
                    row, exp, got, n_bad = hit
                    mm = Mismatch(net.name, i, "output", exp, got, None, row, row % cfg.pes, row // cfg.pes, n_bad)
                if model is not None:
                    timing = [model[0](cfg, col_entries[first + k], a[i], entry.out_len)
                              for k, (a, entry) in enumerate(zip(acts[:-1], table))]
                    expect = {"cycles": sum(t.cycles for t in timing),
                              "broadcast_stalls": sum(t.broadcast_stalls for t in timing),
                              "broadcasts": sum(t.broadcasts for t in timing)}
                    rec["cycles_model"] += expect["cycles"]
                    for what, value in expect.items():
                        if mm is None and value != res[what]:
                            mm = _counter_mismatch(net.name, i, what, value, res[what])
                if mm is None and res["layers"] != count:
                    mm = Mismatch(net.name, i, "layers", count, res["layers"])
                if mm is not None:
                    d = mm.to_dict()
                    d["call"], d["layers_of_call"] = calls[0], list(range(first, first + count))
                    rec["mismatch"] = d
        calls[0] += 1
        if calls[0] % 8 == 0:
            progress(f"{net.name}: {calls[0]} EIE calls")
        return y

    rtl = run_fixed(prog, layers_q, cfg, X, eie=eie)
    golden = run_fixed(prog, layers_q, cfg, X)
    for i in range(n):
        hit = first_mismatch(golden[i].reshape(-1), rtl[i].reshape(-1), cfg.pes)
        if hit is not None and recs[i]["mismatch"] is None:
            row, exp, got, n_bad = hit
            recs[i]["mismatch"] = Mismatch(net.name, i, "output", exp, got, None, row, None, None, n_bad).to_dict()
    progress(f"{net.name}: {n} program runs, {calls[0]} EIE calls")
    np.savez(Path(spec["_dir"]) / f"{net.name}.outputs.npz", rtl=rtl, golden=golden)
    return {"name": net.name, "layers": len(image.layers), "inferences": recs, "program_calls": calls[0],
            "mismatches": sum(r["mismatch"] is not None for r in recs)}


def _counter_mismatch(name: str, i: int, what: str, expected, got) -> Mismatch:
    if isinstance(expected, list):             # per-PE counters: name the first PE that differs
        k = next(k for k, (e, g) in enumerate(zip(expected, got)) if e != g)
        return Mismatch(name, i, what, expected[k], got[k], pe=k)
    return Mismatch(name, i, what, expected, got)


def _tamper(rt: Runtime) -> None:
    """Fault injection for the testbench's own tests: ``$EIE_SIM_TAMPER_BIAS``
    names a ``(pes, words)`` bias array written over the loaded one, so the
    hardware computes something the golden model (decoded from the job's
    image) does not."""
    path = os.environ.get("EIE_SIM_TAMPER_BIAS")
    if not path:
        return
    bias = np.load(path)
    for k in range(rt.cfg.pes):
        rt.host.write(Mem.BIAS, k, 0, bias[k].tolist())
    for r in rt.flush():
        r.check()


def _locate(rt: Runtime, image: NetworkImage, x, acts, i: int, name: str) -> Mismatch | None:
    """Re-run layer prefixes ``0..k`` to find the first layer whose output differs."""
    cfg = rt.cfg
    for k in range(1, len(image.layers) + 1):
        res = infer_batch(rt, np.asarray(x)[None, :], image.layers[:k])[0]
        hit = first_mismatch(acts[k][i], res["output"], cfg.pes)
        if hit is not None:
            row, exp, got, n_bad = hit
            return Mismatch(name, i, "output", exp, got, k - 1, row, row % cfg.pes, row // cfg.pes, n_bad)
    return None


# -- memory round trip (no arithmetic involved) ----------------------------------------

def write_roundtrip_job(job_dir, cfg: EIEConfig, *, link: str = "fast", seed: int = 0, idle: float = 0.0,
                        backpressure: float = 0.0, items: int = 16, broadcast: bool = True,
                        timeout_cycles: int = 100_000) -> Path:
    """A job for the ``roundtrip`` test: random WRITE/READ of every memory of every PE."""
    job_dir = Path(job_dir)
    job_dir.mkdir(parents=True, exist_ok=True)
    (job_dir / JOB_FILE).write_text(json.dumps({
        "config": cfg.to_dict(), "link": link, "seed": int(seed), "idle": float(idle),
        "backpressure": float(backpressure), "items": int(items), "broadcast": bool(broadcast),
        "timeout_cycles": int(timeout_cycles),
        "networks": []}, indent=2) + "\n")
    (job_dir / RESULT_FILE).unlink(missing_ok=True)
    return job_dir


def execute_roundtrip(link, job_dir, *, log=print) -> dict:
    """Write random items to every per-PE memory of every PE and to the layer
    table (plus a broadcast codebook write), read them back, compare.
    Returns ``{"checked": items, "errors": [messages]}`` and writes ``result.json``."""
    from eie.protocol import memory_depth, memory_signed, memory_width
    job_dir = Path(job_dir)
    spec = json.loads((job_dir / JOB_FILE).read_text())
    cfg = EIEConfig.from_dict(spec["config"])
    rng = np.random.default_rng(spec["seed"])
    rt = Runtime(cfg, link)
    rt.check_info()
    expected = []
    for mem in (Mem.SPMAT, Mem.PTR, Mem.CODEBOOK, Mem.BIAS, Mem.ACT, Mem.LAYER):
        width, depth = memory_width(cfg, mem), memory_depth(cfg, mem)
        lo, hi = (-(1 << (width - 1)), 1 << (width - 1)) if memory_signed(mem) else (0, 1 << width)
        targets = [ALL_PES] if mem == Mem.LAYER else range(cfg.pes)
        for pe in targets:
            n = int(min(depth, spec["items"]))
            addr = int(rng.integers(0, depth - n + 1))
            vals = [int(v) for v in rng.integers(lo, hi, n, dtype=np.int64)] if width < 63 else \
                [int(rng.integers(0, 1 << 62)) for _ in range(n)]
            rt.host.write(mem, pe, addr, vals)
            expected.append((mem, 0 if pe == ALL_PES else pe, addr, vals))
    if spec.get("broadcast", True):
        # A broadcast write must land in every PE.
        width = memory_width(cfg, Mem.CODEBOOK)
        vals = [int(v) for v in rng.integers(-(1 << (width - 1)), 1 << (width - 1), cfg.codebook_size)]
        rt.host.write(Mem.CODEBOOK, ALL_PES, 0, vals)
        expected = [e for e in expected if not (e[0] == Mem.CODEBOOK and e[2] < cfg.codebook_size)]
        expected += [(Mem.CODEBOOK, k, 0, vals) for k in range(cfg.pes)]
    for r in rt.flush():
        r.check()
    for mem, pe, addr, vals in expected:
        rt.host.read(mem, pe, addr, len(vals))
    responses = [r.check() for r in rt.flush()]
    errors = []
    for (mem, pe, addr, vals), r in zip(expected, responses):
        for a, (e, g) in enumerate(zip(vals, r.data)):
            if e != g:
                errors.append(f"{Mem(mem).name} PE {pe} addr {addr + a}: wrote {e}, read {g}")
                break
    result = {"checked": sum(len(e[3]) for e in expected), "errors": errors}
    (job_dir / RESULT_FILE).write_text(json.dumps(result, indent=1) + "\n")
    if log:
        log(f"round trip: {result['checked']} items, {len(errors)} errors")
    return result


def run_job(sim, job_dir, **run_kwargs) -> tuple[dict | None, str | None]:
    """Run a written job on a build: ``(result, failure)``.

    ``result`` is the testbench's result (None when it wrote none); ``failure``
    the tail of the runner's error when the cocotb test failed (mismatches fail
    it too, and the result then says where), else None."""
    from . import runner
    failure = None
    try:
        runner.run(sim, job_dir, **run_kwargs)
    except runner.RunFailed as e:
        failure = str(e)[-2000:]
    result = read_result(job_dir) if (Path(job_dir) / RESULT_FILE).exists() else None
    return result, failure
