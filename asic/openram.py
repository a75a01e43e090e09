"""A real SRAM macro from OpenRAM 1.2.48 (``scn4m_subm``), for benchmarks, not tests.

:func:`build_macro` compiles one macro (layout, LEF, liberty, Verilog, SPICE) with
OpenRAM's ``sram_compiler.py`` and returns its :class:`eie.asic.sram.MacroFigures`
(``source`` "OpenRAM 1.2.48 scn4m_subm"). It takes minutes (256 x 32 bits: about
8; most of it routing), hence ``bench/asic_openram.py`` rather than a test.

OpenRAM runs in a virtual environment of its own (``build/tools/openram-venv`` of
the checkout by default), created on first use with ``pip install openram==1.2.48
'numpy<2'`` (numpy 2 breaks its layout code). The configuration: ``tech_name
"scn4m_subm"``, one read-write port (``ports="1rw"``; ``"1r1w"`` asks for a read
and a write port, a two-port bitcell), nominal corner only, ``analytical_delay``
(no SPICE simulator needed), ``check_lvsdrc = False`` (no magic/netgen),
``netlist_only = False`` (a layout and its LEF). OpenRAM needs at least 16 rows.

``scn4m_subm`` is MOSIS SCMOS SUBM with lambda = 0.2 um and four metals, the rules
of Debian's ``osu035`` cells (whose magic technology is ``SCN4M_SUBM.20``), which is
the default ``tech`` of the figures; OpenRAM characterises it at 5 V.

From OpenRAM's outputs: area (liberty ``area``, um2) and outline (LEF ``SIZE``);
``clk_to_q_ns`` from the rising clock edge: the ``dout`` ``cell_rise``/``cell_fall``
mean at the table's smallest load and slew, plus, as OpenRAM's ``dout`` follows the
*falling* edge (it precharges while the clock is high), the clock's
``min_pulse_width`` (half the minimum period): the rising-edge access time at the
fastest clock, longer at a slower one; ``setup_ns`` the largest ``setup_rising`` constraint at the smallest
slews; ``min_period_ns`` the clock's ``minimum_period``; leakage
``cell_leakage_power`` (its unit, mW); the energy per access from the clock pins'
``internal_power`` values, which OpenRAM's analytical model fills with one dynamic
power (mW) for reads, writes and idle cycles alike: that of the macro with every
gate switching at the technology's ``default_event_frequency`` (100 MHz), so
energy = power / frequency, the same for a read and a write.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

from .sram import MacroFigures
from .sram import tech as find_tech

__all__ = ["OPENRAM", "build_macro", "openram_config", "openram_python", "parse_openram_lib", "parse_lef_size"]

OPENRAM = "openram==1.2.48"
_REPO = Path(__file__).resolve().parents[1]
_PORTS = {"1rw": (1, 0, 0), "1r1w": (0, 1, 1)}   # -> (num_rw_ports, num_r_ports, num_w_ports)
_MIN_WORDS = 16


def _default_venv() -> Path:
    base = _REPO if (_REPO / "pyproject.toml").exists() else Path.cwd()
    return base / "build" / "tools" / "openram-venv"


def openram_python(venv=None, *, progress=None) -> Path:
    """The Python of OpenRAM's virtual environment ``venv`` (default
    ``build/tools/openram-venv``), created and filled with ``pip install
    openram==1.2.48 'numpy<2'`` the first time. ``RuntimeError`` with pip's output
    when that fails."""
    say = progress or (lambda message: None)
    venv = Path(venv) if venv else _default_venv()
    python = venv / "bin" / "python"
    stamp = venv / ".eie-openram"
    if stamp.is_file() and stamp.read_text().strip() == OPENRAM:
        return python
    if not python.exists():
        say(f"openram: creating the virtual environment {venv}")
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    say(f"openram: pip install {OPENRAM} 'numpy<2' into {venv}")
    proc = subprocess.run([str(python), "-m", "pip", "install", "--quiet", OPENRAM, "numpy<2"],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"installing OpenRAM failed (`{python} -m pip install {OPENRAM} 'numpy<2'`, exit "
                           f"{proc.returncode}):\n{(proc.stdout + proc.stderr)[-3000:]}")
    stamp.write_text(OPENRAM + "\n")
    return python


def openram_config(words: int, width: int, *, out_dir, name: str, ports: str = "1rw") -> str:
    """The OpenRAM configuration (Python) of a ``words`` x ``width``-bit macro written to
    ``out_dir`` as ``name``.*."""
    rw, r, w = _PORTS[ports]
    return "\n".join([
        f"word_size = {width}",
        f"num_words = {words}",
        f"num_rw_ports = {rw}",
        f"num_r_ports = {r}",
        f"num_w_ports = {w}",
        'tech_name = "scn4m_subm"',
        "nominal_corner_only = True",
        "netlist_only = False",
        "check_lvsdrc = False",
        "analytical_delay = True",
        "use_conda = False",
        f"output_path = {str(Path(out_dir).resolve()) + '/'!r}",
        f"output_name = {name!r}",
    ]) + "\n"


def _floats(text: str) -> list[float]:
    return [float(x) for x in re.findall(r"[-+]?\d*\.?\d+(?:[eE][-+]?\d+)?", text)]


def _group(text: str, start: int) -> str:
    """The ``{ ... }`` group whose opening brace is the first at or after ``start``."""
    depth, i = 0, text.index("{", start)
    for j in range(i, len(text)):
        depth += {"{": 1, "}": -1}.get(text[j], 0)
        if depth == 0:
            return text[i:j + 1]
    raise ValueError("unbalanced braces in the liberty")


def _first_value(group: str, table: str) -> float:
    """The first entry of ``table (...) { values ("...") }`` in ``group``."""
    m = re.search(rf"\b{table}\s*\([^)]*\)\s*\{{[^}}]*?values\s*\(\s*\"([^\"]*)\"", group, re.S)
    if m is None:
        raise ValueError(f"no {table} table found")
    return _floats(m[1])[0]


def parse_openram_lib(text: str) -> dict:
    """Figures from an OpenRAM liberty: ``area_um2``, ``clk_to_q_ns`` (from the rising
    edge, see the module docstring), ``dout_edge``, ``setup_ns``, ``min_period_ns``,
    ``leakage_mw`` and ``clock_power_mw`` (mean of the clock pins' ``internal_power``
    values). ``ValueError`` naming what is missing."""
    def attr(name: str) -> float:
        m = re.search(rf"\b{name}\s*:\s*([-+\d.eE]+)\s*;", text)
        if m is None:
            raise ValueError(f"OpenRAM liberty has no {name}")
        return float(m[1])

    for unit, want in (("time_unit", "1ns"), ("leakage_power_unit", "1mW")):
        m = re.search(rf'{unit}\s*:\s*"([^"]+)"', text)
        if m is None or m[1] != want:
            raise ValueError(f"OpenRAM liberty {unit} is {m[1] if m else None!r}, expected {want!r}")
    dout = re.search(r"\bbus\s*\(\s*dout\d*\s*\)", text)
    if dout is None:
        raise ValueError("OpenRAM liberty has no dout bus")
    out_group = _group(text, dout.end())
    delay = (_first_value(out_group, "cell_rise") + _first_value(out_group, "cell_fall")) / 2
    edge = re.search(r"timing_type\s*:\s*\"?(rising_edge|falling_edge)", out_group)
    if edge is None:
        raise ValueError("OpenRAM liberty's dout has no rising_edge or falling_edge timing")
    timings = [_group(text, m.end()) for m in re.finditer(r"\btiming\s*\(\s*\)", text)]
    setups = [max(_first_value(g, "rise_constraint"), _first_value(g, "fall_constraint"))
              for g in timings if re.search(r"timing_type\s*:\s*setup_rising", g)]
    periods = [_first_value(g, "rise_constraint") for g in timings
               if re.search(r'timing_type\s*:\s*"?minimum_period"?', g)]
    high = [_first_value(g, "rise_constraint") for g in timings
            if re.search(r'timing_type\s*:\s*"?min_pulse_width"?', g)]
    if not setups or not periods:
        raise ValueError("OpenRAM liberty has no setup_rising or minimum_period timing")
    if edge[1] == "falling_edge":          # dout follows the falling clock edge: add the high phase
        if not high:
            raise ValueError("OpenRAM liberty's dout follows the falling edge but it has no min_pulse_width")
        delay += max(high)
    powers = []
    for clk in re.finditer(r"\bpin\s*\(\s*clk\d*\s*\)", text):
        clk_group = _group(text, clk.end())
        for m in re.finditer(r"internal_power\s*\(\s*\)", clk_group):
            group = _group(clk_group, m.end())
            powers += [_first_value(group, "rise_power"), _first_value(group, "fall_power")]
    if not powers:
        raise ValueError("OpenRAM liberty has no internal_power on its clock pin")
    return {"area_um2": attr("area"),
            "clk_to_q_ns": delay, "dout_edge": edge[1],
            "setup_ns": max(setups), "min_period_ns": max(periods), "leakage_mw": attr("cell_leakage_power"),
            "clock_power_mw": sum(powers) / len(powers)}


def parse_lef_size(text: str) -> tuple[float, float]:
    """(width, height) in um of the first ``SIZE w BY h`` of a LEF."""
    m = re.search(r"\bSIZE\s+(\S+)\s+BY\s+(\S+)\s*;", text)
    if m is None:
        raise ValueError("LEF has no SIZE")
    return float(m[1]), float(m[2])


def _event_frequency_mhz(python: Path) -> float:
    """OpenRAM's ``spice["default_event_frequency"]`` (MHz) of scn4m_subm."""
    code = ("import openram, pathlib; p = pathlib.Path(openram.__file__).parent / 'technology' / 'scn4m_subm' / "
            "'tech' / 'tech.py'; print(p)")
    tech_py = Path(subprocess.run([str(python), "-c", code], capture_output=True, text=True, check=True).stdout.strip())
    m = re.search(r'spice\["default_event_frequency"\]\s*=\s*([\d.]+)', tech_py.read_text())
    if m is None:
        raise ValueError(f"{tech_py} has no default_event_frequency")
    return float(m[1])


def build_macro(words: int, width: int, *, out_dir, progress=None, ports: str = "1rw", tech: str = "osu035",
                venv=None, timeout: float = 3600) -> MacroFigures:
    """Compile a ``words`` x ``width``-bit macro with OpenRAM in ``out_dir``; its figures.

    ``progress`` gets OpenRAM's ``**`` stage lines with the elapsed time; the full log
    is ``out_dir/openram.log``. ``tech`` names the standard cells the figures go with
    (the module docstring says why ``osu035``). ``ValueError`` for a bad shape or
    ports, ``RuntimeError`` with the log's tail when OpenRAM fails or times out.
    """
    say = progress or (lambda message: None)
    t = find_tech(tech)
    for field_name, value in (("words", words), ("width", width)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"OpenRAM {field_name} must be a positive integer, not {value!r}")
    if words < _MIN_WORDS:
        raise ValueError(f"OpenRAM words must be at least {_MIN_WORDS} (it needs 16 rows), not {words}")
    if ports not in _PORTS:
        raise ValueError(f"OpenRAM ports must be one of {', '.join(_PORTS)}, not {ports!r}")
    python = openram_python(venv, progress=say)
    out = Path(out_dir).resolve()
    out.mkdir(parents=True, exist_ok=True)
    name = f"sram_{words}x{width}"
    config = out / "openram_config.py"
    config.write_text(openram_config(words, width, out_dir=out, name=name, ports=ports))
    compiler = subprocess.run([str(python), "-c", "import openram, pathlib; "
                               "print(pathlib.Path(openram.__file__).parent / 'sram_compiler.py')"],
                              capture_output=True, text=True, check=True).stdout.strip()
    log_path = out / "openram.log"
    say(f"openram: compiling {words} x {width} bits ({ports}, scn4m_subm) in {out}")
    start = time.monotonic()
    with open(log_path, "w") as log, subprocess.Popen([str(python), compiler, config.name], cwd=out, text=True,
                                                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT) as proc:
        for line in proc.stdout:
            log.write(line)
            log.flush()
            if line.startswith("**") or "ERROR" in line:
                say(f"openram: {line.strip()} ({time.monotonic() - start:.0f} s)")
            if time.monotonic() - start > timeout:
                proc.kill()
                break
        proc.wait()
    seconds = time.monotonic() - start
    libs = sorted(out.glob(f"{name}_*.lib"))
    lef = out / f"{name}.lef"
    if proc.returncode != 0 or not libs or not lef.is_file():
        tail = log_path.read_text(errors="replace")[-3000:]
        raise RuntimeError(f"OpenRAM failed for {words} x {width} bits (exit {proc.returncode}, "
                           f"{seconds:.0f} s, timeout {timeout:.0f} s); log {log_path}:\n{tail}")
    say(f"openram: done in {seconds:.0f} s")
    lib = parse_openram_lib(libs[0].read_text())
    w_um, h_um = parse_lef_size(lef.read_text())
    pj_per_mw = 1e-3 / (_event_frequency_mhz(python) * 1e6) * 1e12
    energy = lib["clock_power_mw"] * pj_per_mw
    return MacroFigures(words=words, width=width, tech=t.name, node_nm=t.node_nm, area_um2=lib["area_um2"],
                        width_um=w_um, height_um=h_um, clk_to_q_ns=lib["clk_to_q_ns"], setup_ns=lib["setup_ns"],
                        min_period_ns=lib["min_period_ns"], read_energy_pj=energy, write_energy_pj=energy,
                        leakage_uw=lib["leakage_mw"] * 1e3, source="OpenRAM 1.2.48 scn4m_subm", ports=ports)
