"""Random regression of the RTL: many seeded random networks on a few random builds.

``eie regress --cases N --seed S [--configs K] [--json]`` draws ``K`` random
configs (:func:`random_config`: PE count, queue, column-buffer and memory
depths, Spmat word, number formats, zero-run width and the optional
hardware stages, every one a valid :class:`EIEConfig` with a small build),
builds each once (Verilator, cached under ``build/sim``) and runs its share of
the ``N`` random networks (:func:`random_network`: 1 to 4 layers, random
shapes, weight and input densities, codebooks, shifts, biases, ReLU, batches
of signed or non-negative, sometimes extreme, inputs) in *one* simulation,
with idle and back-pressure rates on the host link drawn per job. Every
output is checked bit for bit against the golden model and every inference's
``CYCLES`` (and broadcast counters) exactly against the cycle model
(:func:`eie.sim.driver.execute_job`).

Everything is a function of the seed: config ``I`` is ``random_config(S, I)``;
case ``J`` on a config is drawn from its own generator seeded by ``(S, config
digest, J)``, so it does not depend on the other cases, and a failure prints
the one command that reruns that case alone::

    eie regress --seed S --config-index I --case J

(``--config SPEC`` instead of ``--config-index`` for a config that was given,
not drawn). The link's idle/back-pressure rates and harness seed are the
job's, so the rerun sees the same rates (not the same cycle-by-cycle pattern,
which depends on the words sent before; outputs and ``CYCLES`` do not).

This module is also the single owner of the network generators of the RTL
test matrix (``tests/sim``): :func:`adversarial_cases`, :func:`random_cases`
and :func:`images`.
"""

from __future__ import annotations

import hashlib
import json
import shlex
import shutil
import tempfile
import time
from pathlib import Path
from typing import Callable

import numpy as np

from eie.config import DEFAULT, PRESETS, EIEConfig
from eie.golden.encode import QuantLayer, build_image
from eie.golden.synthetic import random_layer

__all__ = ["adversarial_cases", "random_cases", "random_network", "images", "random_config", "case_network",
           "job_rates", "regress", "regress_task", "deterministic", "reproduce_command", "config_spec", "parse_config", "add_arguments", "main"]


# -- networks ----------------------------------------------------------------------------------

def _codebook(cfg: EIEConfig, rng, big: bool = False) -> np.ndarray:
    lo, hi = -(1 << (cfg.codebook_bits - 1)), (1 << (cfg.codebook_bits - 1)) - 1
    if big:
        vals = rng.choice([lo, hi, lo + 1, hi - 1], cfg.codebook_size - 1)
    else:
        m = 1 << max(0, cfg.codebook_bits - 4)
        vals = rng.integers(-m, m, cfg.codebook_size - 1)
    vals[vals == 0] = 1
    return np.concatenate([[0], vals]).astype(np.int64)


def _layer(cfg, codes, rng, *, shift=None, relu=False, bias=None, big=False, name=""):
    codes = np.asarray(codes, np.uint8)
    out_len, in_len = codes.shape
    if bias is None:
        bias = rng.integers(-1000, 1000, out_len)
    if shift is None:
        shift = min(cfg.acc_bits - 1, 8)
    return QuantLayer(codes=codes, codebook=_codebook(cfg, rng, big), bias=np.asarray(bias, np.int64),
                      shift=shift, relu=relu, name=name)


def _inputs(cfg, in_len, rng, batch=2, density=0.5, signed=True):
    hi = 1 << (cfg.act_bits - 2)
    x = rng.integers(-hi if signed else 0, hi, (batch, in_len))
    x[rng.random((batch, in_len)) >= density] = 0
    return x.astype(np.int64)


def _codes(shape, rng, density, cfg):
    c = rng.integers(1, cfg.codebook_size, shape)
    c[rng.random(shape) >= density] = 0
    return c


def adversarial_cases(cfg: EIEConfig, seed: int = 0) -> list:
    """The adversarial layers of the RTL test matrix, sized for ``cfg``: a list of
    ``(name, layers, inputs)`` (a chain of :class:`QuantLayer` and integer inputs
    ``(batch, in_len)``)."""
    rng = np.random.default_rng([seed, cfg.pes, 1])
    n = cfg.pes
    ml = cfg.max_len
    cases = []
    rows = min(ml, 5 * n + 3)                 # not divisible by N (unless N == 1... then any)
    cols = min(ml, 23)

    # Empty columns, all-zero rows and a fully dense column in one layer.
    c = _codes((rows, cols), rng, 0.4, cfg)
    c[:, ::3] = 0                             # empty columns
    c[1::4, :] = 0                            # all-zero rows
    c[:, 1] = rng.integers(1, cfg.codebook_size, rows)   # a fully dense column
    cases.append(("empty_cols_rows_dense_col", [_layer(cfg, c, rng)], _inputs(cfg, cols, rng, 3, 0.8)))

    # Zero runs of 15, 16, 31 and 100 (in PE 0's slice, local rows), and the same
    # runs starting after an entry, across column boundaries.
    for run in (15, 16, 31, 100):
        local = run + 2
        out = min(ml, local * n)
        if (out + n - 1) // n < run + 1:
            continue                          # the config cannot hold that many local rows
        c = np.zeros((out, 4), np.uint8)
        c[run * n, 0] = 3                     # run zeros before the first entry of PE 0, column 0
        c[0, 1] = 5
        if (run + 1) * n < out:
            c[(run + 1) * n, 1] = 7           # run zeros between two entries of PE 0, column 1
        c[out - 1, 2] = 1                     # the last row
        c[:, 3] = 0                           # an empty last column
        cases.append((f"zero_run_{run}", [_layer(cfg, c, rng)], _inputs(cfg, 4, rng, 2, 1.0)))

    # A single non-zero weight; all-zero input vector; fully dense input.
    c = np.zeros((rows, cols), np.uint8)
    c[rows // 2, cols // 2] = 9 % cfg.codebook_size or 1
    x = _inputs(cfg, cols, rng, 2, 1.0)
    cases.append(("single_nonzero", [_layer(cfg, c, rng)], x))
    c = _codes((rows, cols), rng, 0.5, cfg)
    cases.append(("zero_input", [_layer(cfg, c, rng, relu=True)], np.zeros((2, cols), np.int64)))
    cases.append(("dense_input_dense_weights", [_layer(cfg, _codes((rows, cols), rng, 1.0, cfg), rng, shift=12)],
                  _inputs(cfg, cols, rng, 2, 1.0)))

    # Saturation both ways: extreme codebook values, extreme inputs, no shift.
    c = _codes((rows, cols), rng, 0.7, cfg)
    lay = _layer(cfg, c, rng, shift=0, big=True, bias=np.zeros(rows, np.int64))
    hi = (1 << (cfg.act_bits - 1)) - 1
    x = rng.choice([-hi - 1, hi], (2, cols)).astype(np.int64)
    cases.append(("saturate", [lay], x))
    lay = _layer(cfg, c, rng, shift=3, big=True, relu=True)
    cases.append(("saturate_relu", [lay], x))
    # Largest bias magnitudes with the largest shift.
    bmax = (1 << (cfg.bias_bits - 1)) - 1
    bias = rng.choice([-bmax - 1, bmax, 0, 1], rows)
    cases.append(("bias_extremes", [_layer(cfg, c, rng, shift=cfg.acc_bits - 1, bias=bias)], x))
    cases.append(("bias_extremes_noshift", [_layer(cfg, c, rng, shift=0, bias=bias)], x))

    # 1x1 layers, alone and chained.
    one = [_layer(cfg, [[5]], rng, shift=2, relu=bool(k % 2)) for k in range(3)]
    big_in = min(1000, (1 << (cfg.act_bits - 1)) - 1)
    cases.append(("one_by_one", one[:1], np.array([[big_in], [-7], [0]])))
    cases.append(("one_by_one_chain", one, np.array([[big_in], [-7]])))

    # Chains of several layers with and without ReLU, lengths up to max_len.
    for relu in (False, True):
        lens = [min(ml, v) for v in (300, 3 * n + 1, 2 * n + 5, n + 2, 7)]
        depth = min(cfg.max_layers, len(lens) - 1)
        layers = []
        for l in range(depth):
            layers.append(_layer(cfg, _codes((lens[l + 1], lens[l]), rng, 0.3, cfg), rng, shift=9,
                                 relu=relu or l % 2 == 1))
        cases.append((f"chain_relu{int(relu)}", layers, _inputs(cfg, lens[0], rng, 2, 0.6)))

    # Full-length vectors (every register-file row used) with a dense-ish matrix.
    c = _codes((ml, min(ml, 2 * n + 1)), rng, 0.2, cfg)
    cases.append(("full_length_out", [_layer(cfg, c, rng)], _inputs(cfg, c.shape[1], rng, 1, 0.7)))
    return cases


def _draw(cfg: EIEConfig, rng, ml: int, *, max_depth: int, dense_input: bool, wild: bool):
    """One attempt at a random network: ``(layers, inputs)``, or ``None`` when it
    does not fit ``cfg``'s memories. ``wild`` adds the regression's variations
    (lengths at the PE-count edges, empty matrices and inputs, random shifts,
    biases over the whole bias range, extreme codebooks and inputs) after the
    draws of the plain form, which :func:`random_cases` keeps as it was."""
    depth = int(rng.integers(1, min(max_depth, cfg.max_layers) + 1))
    lens = [int(rng.integers(1, ml + 1)) for _ in range(depth + 1)]
    wd = float(rng.choice([0.02, 0.1, 0.3, 0.6, 1.0]))
    ad = 1.0 if dense_input else float(rng.choice([0.0, 0.2, 0.5, 1.0]))
    signed = bool(rng.integers(0, 2))
    if wild:
        n = cfg.pes
        edges = [v for v in (1, n - 1, n, n + 1, 2 * n, ml - 1, ml) if 1 <= v <= ml]
        lens = [int(rng.choice(edges)) if rng.random() < 0.2 else v for v in lens]
        wd = float(rng.choice([0.0, 0.01, wd, wd, wd]))
    layers, x0 = [], None
    gen_cfg = cfg.replace(bias_width=0) if wild else cfg     # biases are clipped to a narrow bias word below
    for l in range(depth):
        layer, x = random_layer(rng, lens[l], lens[l + 1], wd, ad, gen_cfg, relu=bool(rng.integers(0, 2)),
                                signed_input=signed)
        layers.append(layer)
        if x0 is None:
            x0 = x
    if wild:
        bmax = (1 << (cfg.bias_bits - 1)) - 1
        for l, layer in enumerate(layers):
            codebook, bias, shift = layer.codebook, layer.bias, layer.shift
            if rng.random() < 0.15:
                codebook = _codebook(cfg, rng, big=True)
            if rng.random() < 0.2:
                shift = int(rng.integers(0, cfg.acc_bits))
            if rng.random() < 0.15:
                bias = rng.choice([-bmax - 1, -bmax, -1, 0, 1, bmax], layer.out_len)
            elif rng.random() < 0.15:
                bias = rng.integers(-bmax - 1, bmax + 1, layer.out_len, dtype=np.int64)
            layers[l] = QuantLayer(codes=layer.codes, codebook=codebook,
                                   bias=np.clip(bias, -bmax - 1, bmax).astype(np.int64), shift=shift,
                                   relu=layer.relu, name=layer.name)
    try:
        build_image(layers, cfg)
    except ValueError:                        # does not fit this config's memories
        return None
    batch = int(rng.integers(1, 3 if not wild else 4))
    xs = [x0] + [_inputs(cfg, lens[0], rng, 1, ad, signed)[0] for _ in range(batch - 1)]
    x = np.stack(xs)
    if wild and rng.random() < 0.15:          # extreme inputs: the most negative and positive activations
        hi = (1 << (cfg.act_bits - 1)) - 1
        x = rng.choice([-hi - 1, hi, 0, 1, -1], x.shape).astype(np.int64)
    return layers, x


def random_cases(cfg: EIEConfig, count: int, seed: int = 0, max_len: int = 160) -> list:
    """``count`` seeded random networks (1 to 3 layers, random shapes, densities,
    ReLU, signed or non-negative inputs), sized to fit ``cfg``: a list of
    ``(name, layers, inputs)`` drawn from one generator (the test matrix's)."""
    rng = np.random.default_rng([seed, cfg.pes, 2])
    ml = min(cfg.max_len, max_len)
    cases = []
    k = 0
    while len(cases) < count:
        drawn = _draw(cfg, rng, ml, max_depth=3, dense_input=k % 7 == 0, wild=False)
        k += 1
        if drawn is not None:
            cases.append((f"random_{len(cases)}", *drawn))
    return cases


def random_network(cfg: EIEConfig, rng: np.random.Generator, max_len: int = 96, max_depth: int = 4,
                   attempts: int = 1000) -> tuple[list, np.ndarray]:
    """One random network that fits ``cfg``: ``(layers, inputs)``, layer lengths
    up to ``min(cfg.max_len, max_len)``, 1 to ``max_depth`` layers, with the
    regression's variations (see :func:`_draw`). Draws again (from ``rng``)
    while a draw does not fit the memories."""
    ml = min(cfg.max_len, max_len)
    for k in range(attempts):
        drawn = _draw(cfg, rng, ml, max_depth=max_depth, dense_input=rng.random() < 0.15, wild=True)
        if drawn is not None:
            return drawn
    raise ValueError(f"no random network fits config {cfg.digest} in {attempts} draws")


def images(cfg: EIEConfig, cases) -> list:
    """``(name, NetworkImage, inputs)`` of every case (the form :func:`eie.sim.driver.write_job` takes)."""
    return [(name, build_image(layers, cfg), x) for name, layers, x in cases]


# -- configs -------------------------------------------------------------------------------------

def random_config(seed: int, index: int) -> EIEConfig:
    """Random config ``index`` of ``seed``: a valid :class:`EIEConfig` whose
    Verilator build stays small (1 to 8 PEs, register files of 8 to 48 words,
    or 1 to 4 in about one config of seven, Spmat of 512 to 8K entries).

    Drawn: ``pes``, ``fifo_depth`` (1..8, not only powers of two),
    ``column_buffer_depth``, ``act_bits`` (4..16) and ``act_frac_bits``,
    ``index_bits`` (2..5), ``codebook_bits`` (enough for the index),
    ``zrun_bits`` (1..5; short runs mean padding entries), ``entries_per_word``
    (1..8, words of at most 64 bits, which a memory image holds), ``spmat_depth``, ``ptr_depth``, ``act_depth``, ``bias_depth``,
    ``max_layers``, ``counter_bits`` and the optional stages
    (``io_read_stages``, ``pe_counters``, ``merge_codebook_bias``,
    ``hold_pointer_read``, ``host_readback``, ``bias_width``,
    ``wb_read_stages``, ``pointer_banks``, ``lutram_words``, ``credit_bypass``)."""
    rng = np.random.default_rng([int(seed), int(index), 0x7e9])
    pes = int(rng.choice([1, 2, 3, 4, 5, 6, 8]))
    act_bits = int(rng.integers(4, 17))
    index_bits = int(rng.integers(2, 6))
    act_depth = int(rng.integers(8, 49))
    zrun_bits = int(rng.choice([1, 2, 3, 3, 4, 4, 4, 5]))
    epw = int(rng.integers(1, min(8, 64 // (index_bits + zrun_bits)) + 1))   # a Spmat word holds <= 64 bits
    entries = 1 << int(rng.integers(9, 14))
    fields = dict(
        pes=pes,
        fifo_depth=int(rng.integers(1, 9)),
        column_buffer_depth=int(rng.integers(1, 7)),
        act_bits=act_bits,
        act_frac_bits=int(rng.integers(0, act_bits)),
        index_bits=index_bits,
        codebook_bits=int(rng.integers(index_bits + 2, 17)),
        zrun_bits=zrun_bits,
        entries_per_word=epw,
        spmat_depth=-(-entries // epw),
        ptr_depth=int(rng.integers(64, 513)),
        act_depth=act_depth,
        bias_depth=act_depth * int(rng.integers(1, 5)),
        max_layers=int(rng.integers(1, 9)),
        counter_bits=int(rng.choice([32, 48, 64])),
        io_read_stages=int(rng.integers(0, 3)),
        pe_counters=int(rng.integers(0, 2)),
        merge_codebook_bias=int(rng.integers(0, 2)),
        hold_pointer_read=int(rng.integers(0, 2)),
        host_readback=int(rng.integers(0, 2)),
        wb_read_stages=int(rng.integers(0, 2)),
    )
    # The options added later come from a stream of their own, so that the fields above
    # (and every earlier config of a seed) are drawn as before.
    late = np.random.default_rng([int(seed), int(index), 0x7ea])
    fields.update(pointer_banks=int(late.integers(1, 3)), lutram_words=int(late.choice([0, 0, 16, 64])))
    fields.update(credit_bypass=int(np.random.default_rng([int(seed), int(index), 0x7eb]).integers(0, 2)))
    cfg = EIEConfig(**fields)
    if rng.random() < 0.4:                   # a narrow bias word (2 .. acc_bits - 1)
        cfg = cfg.replace(bias_width=int(rng.integers(2, cfg.acc_bits)))
    if rng.random() < 0.15:                  # register files of 1 to 4 words: the count widths' edges
        small = cfg.replace(act_depth=int(rng.integers(1, 5)), bias_width=0)
        cfg = small.replace(bias_width=min(cfg.bias_width, small.acc_bits - 1) if cfg.bias_width else 0)
    return cfg


def config_spec(cfg: EIEConfig) -> str:
    """What ``--config`` takes to name ``cfg``: a preset name, or the JSON of its
    fields that differ from the defaults."""
    for name, p in PRESETS.items():
        if p == cfg:
            return name
    return json.dumps({k: v for k, v in cfg.to_dict().items() if getattr(DEFAULT, k) != v},
                      separators=(",", ":"))


def parse_config(spec: str) -> EIEConfig:
    """``--config SPEC``: a preset name, a JSON object of fields (the others
    default), or a JSON file (:meth:`EIEConfig.load`)."""
    spec = spec.strip()
    if spec.startswith("{"):
        try:
            data = json.loads(spec)
        except json.JSONDecodeError as e:
            raise ValueError(f"--config {spec!r} is not a JSON object ({e}); give a preset name, "
                             f"a JSON object of config fields, or a config file") from None
        return EIEConfig.from_dict(data)
    if spec in PRESETS:
        return PRESETS[spec]
    return EIEConfig.load(spec)


# -- the regression ------------------------------------------------------------------------------

def _key(cfg: EIEConfig) -> int:
    return int(cfg.digest, 16)


def case_network(cfg: EIEConfig, seed: int, case: int, max_len: int = 96) -> tuple[str, list, np.ndarray]:
    """Case ``case`` of ``seed`` on ``cfg``: ``(name, layers, inputs)``, from a
    generator of its own (independent of every other case)."""
    rng = np.random.default_rng([int(seed), _key(cfg), 1, int(case)])
    layers, x = random_network(cfg, rng, max_len=max_len)
    return f"case_{case}", layers, x


def job_rates(cfg: EIEConfig, seed: int) -> tuple[float, float, int]:
    """``(idle, backpressure, link seed)`` of the job of ``cfg`` under ``seed``."""
    rng = np.random.default_rng([int(seed), _key(cfg), 0])
    idle = float(rng.choice([0.0, 0.1, 0.25, 0.5, 0.75]))
    backpressure = float(rng.choice([0.0, 0.1, 0.3, 0.5, 0.8]))
    return idle, backpressure, int(rng.integers(0, 1 << 31))


def reproduce_command(seed: int, case: int, *, config_index: int | None = None,
                      cfg: EIEConfig | None = None) -> str:
    """The command that reruns one case alone."""
    where = f"--config-index {config_index}" if config_index is not None else \
        f"--config {shlex.quote(config_spec(cfg))}"
    return f"eie regress --seed {seed} {where} --case {case}"


def _split(cases: int, parts: int) -> list[range]:
    return [range(p * cases // parts, (p + 1) * cases // parts) for p in range(parts)]


def _case_records(cfg: EIEConfig, result: dict | None, job_dir: Path) -> list[dict]:
    """What each simulated case gave, independent of how the cases were grouped into
    simulations and where they ran: its inferences' counters, a hash of its RTL
    outputs and what (if anything) mismatched. The run's result digest covers these."""
    records = []
    for net in (result or {}).get("networks", []):
        out = job_dir / f"{net['name']}.outputs.npz"
        rtl = hashlib.sha256(np.load(out)["rtl"].astype("<i8").tobytes()).hexdigest()[:16] if out.exists() else None
        infs = net["inferences"]
        records.append({"digest": cfg.digest, "case": int(net["name"].split("_")[1]), "inferences": len(infs),
                        "cycles": [i["cycles"] for i in infs], "broadcasts": [i["broadcasts"] for i in infs],
                        "outputs": rtl, "mismatches": [i["mismatch"]["what"] if i["mismatch"] else None
                                                       for i in infs]})
    return records


def _run_one(cfg: EIEConfig, index: int | None, seed: int, case_ids, job_dir: Path, *, max_len: int,
             env: dict | None, opt: str | None, progress: Callable[[str], None]) -> dict:
    from . import driver, runner
    label = f"config {index}" if index is not None else f"config {cfg.digest}"
    t0 = time.monotonic()
    command = (lambda j: reproduce_command(seed, j, config_index=index, cfg=cfg))
    try:
        sim = runner.build(cfg, opt=opt, log=progress)
    except RuntimeError as e:                   # the generator or Verilator failed on this config
        progress(f"{label}: build failed")
        message = str(e).strip().splitlines()
        return {"config_index": index, "digest": cfg.digest, "config": cfg.to_dict(), "spec": config_spec(cfg),
                "case_records": [], "cases": 0, "first_case": case_ids[0], "inferences": 0, "cycle_model": False,
                "mismatches": 0, "cycle_mismatches": 0,
                "failures": [{"config_index": index, "digest": cfg.digest, "case": case_ids[0], "what": "build",
                              "message": "build failed: " + (message[0] if message else ""),
                              "command": command(case_ids[0])}],
                "build_s": round(time.monotonic() - t0, 2), "build_cached": False,
                "build_wall_s": round(time.monotonic() - t0, 2), "sim_s": 0.0}
    t_build = time.monotonic() - t0
    idle, backpressure, link_seed = job_rates(cfg, seed)
    nets = [case_network(cfg, seed, j, max_len) for j in case_ids]
    driver.write_job(job_dir, cfg, images(cfg, nets), seed=link_seed, idle=idle, backpressure=backpressure)
    progress(f"{label}: {len(nets)} networks ({sum(len(x) for _, _, x in nets)} inferences), "
             f"idle {idle}, back-pressure {backpressure}")
    t1 = time.monotonic()
    result, failure = driver.run_job(sim, job_dir, env=env)
    t_sim = time.monotonic() - t1
    failures = []
    mismatches = cycle_mismatches = 0
    done = set()
    if result is not None:
        for net in result["networks"]:
            done.add(net["name"])
            case = int(net["name"].split("_")[1])
            bad = [inf["mismatch"] for inf in net["inferences"] if inf["mismatch"]]
            mismatches += sum(m["what"] == "output" for m in bad)
            cycle_mismatches += sum(m["what"] != "output" for m in bad)
            if bad:
                failures.append({"config_index": index, "digest": cfg.digest, "case": case,
                                 "what": bad[0]["what"], "message": bad[0]["message"], "command": command(case)})
    if failure is not None and (result is None or not failures):
        # The simulation died (or failed without a mismatch): name the case it was on.
        pending = [j for j in case_ids if f"case_{j}" not in done]
        case = pending[0] if pending else None
        failures.append({"config_index": index, "digest": cfg.digest, "case": case, "what": "run",
                         "message": failure.strip().splitlines()[-1] if failure.strip() else "simulator failed",
                         "log": str(job_dir / "sim.log"),
                         "command": command(case) if case is not None else None})
    checked = result["inferences"] if result else 0
    progress(f"{label}: {len(done)} networks, {checked} inferences checked, {mismatches} output and "
             f"{cycle_mismatches} counter mismatches in {t_sim:.1f} s")
    return {"config_index": index, "digest": cfg.digest, "config": cfg.to_dict(), "spec": config_spec(cfg),
            "case_records": _case_records(cfg, result, job_dir),
            "cases": len(nets), "first_case": case_ids[0] if len(case_ids) else None,
            "inferences": checked, "cycle_model": bool(result and result["cycle_model"]), "idle": idle,
            "backpressure": backpressure, "link_seed": link_seed,
            "mismatches": mismatches, "cycle_mismatches": cycle_mismatches, "failures": failures,
            "build_s": round(sim.build_s, 2), "build_cached": sim.cached, "build_wall_s": round(t_build, 2),
            "sim_s": round(t_sim, 2)}


def regress_task(params: dict, folder: Path) -> dict:
    """The task of a regression (:mod:`eie.cluster`): cases ``params["first"]`` to
    ``params["last"]`` of one config (``config``, a dict; ``config_index``: its
    index among the seed's random configs, or None for a given one), built (or
    taken from this node's build cache) and simulated in one job under ``folder``."""
    cfg = EIEConfig.from_dict(params["config"])
    ids = list(range(int(params["first"]), int(params["last"]) + 1))
    return _run_one(cfg, params["config_index"], int(params["seed"]), ids, Path(folder) / "job",
                    max_len=int(params["max_len"]), env=params.get("env"), opt=params.get("opt"),
                    progress=lambda msg: None)


def _task_command(seed: int, index: int | None, cfg: EIEConfig, ids) -> str:
    """The command that reruns a task's cases (one case: ``--case J``, several: ``--case J-K``)."""
    one = reproduce_command(seed, ids[0], config_index=index, cfg=cfg)
    return one if len(ids) == 1 else f"{one}-{ids[-1]}"


def _chunks(ids: range, chunk: int | None) -> list[range]:
    if chunk is None or chunk >= len(ids):
        return [ids]
    return [ids[k:k + chunk] for k in range(0, len(ids), chunk)]


def _interleave(tasks: list, owner: list[int]) -> tuple[list, list[int]]:
    """The tasks in submission order: the first task of every config, then the
    second of every config, ... So the first wave of parallel tasks builds
    different configs instead of waiting on one build (the results are merged
    per config in case order, whatever the order here)."""
    order = sorted(range(len(tasks)), key=lambda j: (owner[:j].count(owner[j]), owner[j]))
    return [tasks[j] for j in order], [owner[j] for j in order]


def _merge(tasks: list, envelopes: list[dict], index, cfg: EIEConfig, seed: int) -> dict:
    """One config's summary from the results of its tasks (in case order)."""
    parts = []
    for task, env in zip(tasks, envelopes):
        if env["ok"]:
            parts.append(env["result"])
            continue
        first = task.params["first"]
        parts.append({"cases": 0, "first_case": first, "inferences": 0, "cycle_model": False, "mismatches": 0,
                      "cycle_mismatches": 0, "case_records": [], "build_s": 0.0, "build_cached": False,
                      "build_wall_s": 0.0, "sim_s": 0.0,
                      "failures": [{"config_index": index, "digest": cfg.digest, "case": first, "what": "task",
                                    "message": f"task {task.name} failed: {env['error']}",
                                    "command": task.command}]})
    rates = next((p for p in parts if "idle" in p), {})
    return {"config_index": index, "digest": cfg.digest, "config": cfg.to_dict(), "spec": config_spec(cfg),
            "cases": sum(p["cases"] for p in parts), "first_case": parts[0]["first_case"],
            "inferences": sum(p["inferences"] for p in parts),
            "cycle_model": all(p["cycle_model"] for p in parts),
            "idle": rates.get("idle"), "backpressure": rates.get("backpressure"), "link_seed": rates.get("link_seed"),
            "mismatches": sum(p["mismatches"] for p in parts),
            "cycle_mismatches": sum(p["cycle_mismatches"] for p in parts),
            "failures": [f for p in parts for f in p["failures"]],
            "case_records": [r for p in parts for r in p["case_records"]],
            "build_s": round(sum(p["build_s"] for p in parts), 2),
            "build_cached": all(p["build_cached"] for p in parts),
            "build_wall_s": round(sum(p["build_wall_s"] for p in parts), 2),
            "sim_s": round(sum(p["sim_s"] for p in parts), 2), "tasks": len(parts),
            "builds": sum(1 for p in parts if not p["build_cached"] and "idle" in p)}


# What differs between two runs of the same seeds (timings, places, which node had a build cached).
VOLATILE = ("build_s", "build_cached", "build_wall_s", "sim_s", "wall_s", "work_dir", "log", "builds",
            "executor", "tasks")


def deterministic(res: dict) -> dict:
    """``res`` without what may differ between runs of the same seeds (timings, folders,
    nodes, build-cache hits, the task list): equal for a serial and a scale-out run."""
    def strip(v):
        if isinstance(v, dict):
            return {k: strip(x) for k, x in v.items() if k not in VOLATILE}
        if isinstance(v, list):
            return [strip(x) for x in v]
        return v
    return strip(res)


def regress(cases: int = 1000, seed: int = 0, configs=4, *, case: int | range | None = None, max_len: int = 96,
            work_dir=None, keep: bool = False, env: dict | None = None, opt: str | None = None,
            progress: Callable[[str], None] | None = None, jobs: int = 1, ray: str | None = None,
            chunk: int | None = None, max_retries: int | None = None, on_poll=None) -> dict:
    """Run ``cases`` random networks on the RTL, bit- and cycle-exact.

    ``configs`` is a count ``K`` (the random configs ``0 .. K-1`` of ``seed``) or
    a list whose items are config indices (``int``, drawn) or
    :class:`EIEConfig` (given). Each config runs its share of the cases
    (consecutive case numbers), in tasks (:mod:`eie.cluster`) of ``chunk``
    cases each (default: the whole share, one simulation per config), each
    task one simulation on a build of its config (built once per node, then
    taken from the node's cache). ``case`` runs that one case (or that
    ``range`` of cases) alone (exactly one config must be named).
    ``work_dir`` holds the task folders (a temporary folder by default,
    removed unless ``keep`` or a failure). ``env``: extra environment of the
    simulations (fault injection).

    Where the tasks run: ``jobs`` local processes (1: in this process), or
    the Ray cluster at ``ray`` (``"auto"`` or ``HOST:PORT``), where a task
    whose worker dies is retried up to ``max_retries`` times. The result is
    the same wherever they ran (:func:`deterministic`; ``digest`` covers
    every case's counters, outputs and mismatches).

    Returns ``{"seed", "cases", "configs": [per config: config_index, digest,
    config, spec, cases, first_case, inferences, cycle_model (the cycles were
    checked), idle, backpressure, link_seed, mismatches,
    cycle_mismatches, failures, build_s, build_cached, sim_s, tasks], "mismatches",
    "cycle_mismatches", "failures": [{config_index, digest, case, what,
    message, command}], "digest", "case_digests" (``"<config digest>:<case>"``: the
    digest of that case's counters, outputs and mismatches), "builds", "build_s", "wall_s", "work_dir",
    "executor" (how the tasks ran: tasks, done, failed, retries, nodes,
    tasks_per_s...), "tasks": [per task: task, config_index, cases, node,
    attempts, wall_s, ok, error, command]}``.
    """
    from eie import cluster
    progress = progress or (lambda msg: None)
    t0 = time.monotonic()
    if isinstance(configs, (int, np.integer)) and not isinstance(configs, bool):
        if configs < 1:
            raise ValueError(f"configs must be at least 1, not {configs}")
        configs = list(range(int(configs)))
    configs = list(configs)
    if not configs:
        raise ValueError("no config to run")
    if chunk is not None and chunk < 1:
        raise ValueError(f"--chunk must be at least 1 case, not {chunk}")
    chosen = []
    for c in configs:
        if isinstance(c, EIEConfig):
            chosen.append((None, c))
        elif isinstance(c, (int, np.integer)) and not isinstance(c, bool) and c >= 0:
            chosen.append((int(c), random_config(seed, int(c))))
        else:
            raise ValueError(f"a config is an index (a non-negative integer) or an EIEConfig, not {c!r}")
    if case is not None:
        if len(chosen) != 1:
            raise ValueError("--case reruns one case of one config: name the config with --config-index or --config")
        block = case if isinstance(case, range) else range(case, case + 1)
        if len(block) < 1 or block.start < 0:
            raise ValueError(f"case must be non-negative, not {case}")
        blocks = [block]
        cases = len(block)
    else:
        if cases < len(chosen):
            raise ValueError(f"cases ({cases}) must be at least the number of configs ({len(chosen)})")
        blocks = _split(cases, len(chosen))
    own = work_dir is None
    root = Path(tempfile.mkdtemp(prefix="eie-regress-")) if own else Path(work_dir)
    tasks, owner = [], []
    for k, ((index, cfg), block) in enumerate(zip(chosen, blocks)):
        label = f"config{index}" if index is not None else f"config-{cfg.digest}"
        for ids in _chunks(block, chunk):
            params = {"config": cfg.to_dict(), "config_index": index, "seed": int(seed), "first": ids[0],
                      "last": ids[-1], "max_len": int(max_len), "opt": opt, "env": env}
            name = label if len(ids) == len(block) and chunk is None else f"{label}-cases{ids[0]}-{ids[-1]}"
            tasks.append(cluster.Task("regress", name, "eie.sim.regress:regress_task", params, seed=int(seed),
                                      config_digest=cfg.digest, command=_task_command(seed, index, cfg, ids)))
            owner.append(k)
    tasks, owner = _interleave(tasks, owner)
    progress(f"{len(tasks)} tasks ({cases} cases on {len(chosen)} configs), "
             + (f"on the Ray cluster at {ray}" if ray else f"{jobs} local process(es)" if jobs > 1 else "serial"))
    kwargs = {} if max_retries is None else {"max_retries": max_retries}
    envelopes, stats = cluster.run_tasks(tasks, root, jobs=jobs, ray=ray, progress=progress, on_poll=on_poll,
                                         **kwargs)
    per = []
    for k, (index, cfg) in enumerate(chosen):
        mine = [j for j in range(len(tasks)) if owner[j] == k]
        per.append(_merge([tasks[j] for j in mine], [envelopes[j] for j in mine], index, cfg, seed))
    records = [r for p in per for r in p.pop("case_records")]
    failures = [f for p in per for f in p["failures"]]
    digest = cluster.result_digest([records, [{k: v for k, v in f.items() if k != "log"} for f in failures]])
    task_rows = [{"task": t.name, "config_index": t.params["config_index"], "digest": t.config_digest,
                  "cases": [t.params["first"], t.params["last"]], "node": e["node"], "attempts": e["attempts"],
                  "wall_s": e["wall_s"], "ok": e["ok"], "error": e["error"], "command": t.command}
                 for t, e in zip(tasks, envelopes)]
    if own and not keep and not failures:
        shutil.rmtree(root, ignore_errors=True)
    return {"seed": seed, "cases": cases, "case": case if not isinstance(case, range) else [case.start, case.stop - 1],
            "configs": per,
            "inferences": sum(p["inferences"] for p in per),
            "mismatches": sum(p["mismatches"] for p in per),
            "cycle_mismatches": sum(p["cycle_mismatches"] for p in per),
            "failures": failures, "digest": digest,
            "case_digests": {f"{r['digest']}:{r['case']}": cluster.result_digest(r) for r in records},
            "builds": sum(p.pop("builds") for p in per),
            "build_s": round(sum(p["build_s"] for p in per), 2),
            "wall_s": round(time.monotonic() - t0, 2),
            "work_dir": str(root) if root.exists() else None,
            "executor": stats.to_dict(), "tasks": task_rows}


# -- `eie regress` ---------------------------------------------------------------------------------

def add_arguments(parser) -> None:
    parser.add_argument("--cases", type=int, default=1000, metavar="N",
                        help="random networks to run, split over the configs (default 1000)")
    parser.add_argument("--seed", type=int, default=0, metavar="S", help="seed of configs, networks and link rates")
    parser.add_argument("--configs", type=int, default=4, metavar="K",
                        help="random configs (builds) to draw: configs 0 .. K-1 of the seed (default 4)")
    parser.add_argument("--config-index", type=int, metavar="I", help="run only random config I of the seed")
    parser.add_argument("--config", metavar="SPEC",
                        help="run on this config instead of random ones: a preset name, a JSON object of fields, "
                             "or a config file")
    parser.add_argument("--case", type=_case_arg, metavar="J[-K]",
                        help="rerun case J alone, or cases J to K (with --config-index or --config)")
    parser.add_argument("--max-len", type=int, default=96, metavar="L", help="longest layer vector (default 96)")
    parser.add_argument("--work-dir", metavar="DIR", help="keep the job folders here")
    parser.add_argument("--opt", choices=("O0", "O1", "O2"), help="C++ optimisation of the Verilator models")
    parser.add_argument("--chunk", type=int, metavar="C",
                        help="cases per task (one simulation each; default: a config's whole share when serial, "
                             f"{PARALLEL_CHUNK} with --jobs or --ray)")
    parser.add_argument("--retries", type=int, default=None, metavar="R",
                        help="with --ray: times a task whose worker or node died is retried (default 3)")
    from eie import cluster
    cluster.add_arguments(parser)


# Cases per task when the tasks run in parallel: enough tasks to keep the workers busy,
# few enough that a simulation's start-up (a second or two) stays small against its run.
PARALLEL_CHUNK = 25


def _case_arg(text: str):
    """``--case J`` (an int) or ``--case J-K`` (a range, K included)."""
    first, sep, last = text.partition("-")
    try:
        if not sep:
            return int(text)
        j, k = int(first), int(last)
    except ValueError:
        raise ValueError(f"--case takes a case number J or a range J-K, not {text!r}") from None
    if k < j:
        raise ValueError(f"--case {text}: the range J-K needs K >= J")
    return range(j, k + 1)


def _report(res: dict) -> None:
    for p in res["configs"]:
        where = f"config {p['config_index']}" if p["config_index"] is not None else "config"
        cfg = p["config"]
        print(f"{where} {p['digest']}: {cfg['pes']} PEs, queue {cfg['fifo_depth']}, act {cfg['act_bits']} bits, "
              f"{cfg['entries_per_word']} entries/word, zrun {cfg['zrun_bits']} bits: {p['cases']} networks, "
              f"{p['inferences']} inferences, {p['mismatches']} output / {p['cycle_mismatches']} counter "
              f"mismatches (build {p['build_s']:.0f} s{' cached' if p['build_cached'] else ''}, "
              f"sim {p['sim_s']:.0f} s)")
    for f in res["failures"]:
        print(f"FAIL case {f['case']}: {f['message']}")
        if f["command"]:
            print(f"  reproduce: {f['command']}")
    ex = res["executor"]
    where = {"serial": "serial", "jobs": f"{ex['workers']} local processes",
             "ray": f"Ray cluster {ex['address']} ({ex['nodes']} nodes, {ex['workers']} CPUs)"}[ex["executor"]]
    print(f"{ex['tasks']} tasks on {where}: {ex['done']} done, {ex['failed']} failed, {ex['retries']} retried, "
          f"{ex['tasks_per_s']} tasks/s")
    print(f"{res['cases']} networks, {res['inferences']} inferences, {res['mismatches']} output and "
          f"{res['cycle_mismatches']} counter mismatches, {len(res['failures'])} failing, "
          f"result digest {res['digest']}, {res['wall_s']:.0f} s")


def main(args) -> int:
    import sys
    if args.config is not None and args.config_index is not None:
        raise ValueError("give --config or --config-index, not both")
    if args.max_len < 1:
        raise ValueError(f"--max-len must be at least 1, not {args.max_len}")
    if args.config is not None:
        configs = [parse_config(args.config)]
    elif args.config_index is not None:
        if args.config_index < 0:
            raise ValueError(f"--config-index must be non-negative, not {args.config_index}")
        configs = [args.config_index]
    else:
        configs = args.configs
    from eie import cluster
    where = cluster.executor_from_args(args)
    chunk = args.chunk
    if chunk is None and (where["jobs"] > 1 or where["ray"]):
        chunk = PARALLEL_CHUNK
    if args.retries is not None and args.retries < 0:
        raise ValueError(f"--retries must be 0 or more, not {args.retries}")
    res = regress(args.cases, args.seed, configs, case=args.case, max_len=args.max_len, work_dir=args.work_dir,
                  opt=args.opt, progress=lambda msg: print(msg, file=sys.stderr, flush=True), chunk=chunk,
                  max_retries=args.retries, **where)
    if args.json:
        print(json.dumps(res))
    else:
        _report(res)
    return 1 if res["failures"] else 0
