"""Place and route of one block of the design with qflow, and a picture of it.

qflow (Debian ``qflow``, 1.3.17 on Debian 12) strings together Yosys (synthesis
to the OSU standard cells), GrayWolf (placement), qrouter (detailed routing),
Vesta (static timing with the routed wires' RC delays), Magic (layout database,
DRC, extraction) and Netgen (LVS). It handles blocks of a few thousand cells
(the `tiny` CCU, ~6.9 k cells, in minutes); the whole 47 k-cell design is out of
its reach.

- :func:`extract_block` cuts one module and everything it instantiates out of
  ``eie.v`` and gives every escaped identifier (``\\eie_top.array.ccu``,
  ``\\port$7044$0``) a plain name, which qflow's tools need.
- :func:`place_and_route` runs the flow on that text in its own project folder
  (``source/ synthesis/ layout/ log/``), step by step, with progress lines, and
  parses the results (:func:`parse_results`) into a dict.
- :func:`render_png` draws the routed DEF (rows, cells, wires by metal layer)
  with matplotlib.
- :func:`drc_rules` says which Magic rules the DRC errors break (qflow's
  drc.sh only counts them); :func:`build_calloc_shim` works around a heap
  overrun in qflow's rc2dly (see :func:`place_and_route`).

How qflow is driven: the project folder gets ``source/<top>.v`` and a
``project_vars.sh`` (qflow 1.3's per-project settings: tcsh ``set`` lines, read
after the technology's ``<tech>.sh``; there is no ``project_vars.tcl`` in this
version), then each step runs as ``qflow <step> -T <tech> <top>``, which writes
``qflow_vars.sh`` and ``qflow_exec.sh`` and runs the step's script. Step by
step rather than ``qflow build``, so each one is timed and a failure names its
step. Install: :data:`QFLOW_INSTALL`.

Magic's own ``plot pnm`` is not used for the picture: under ``-dnull`` (no
display) it has no colour styles and writes a white image with black via
squares only; the OSU tech ships no cell GDS either, so the cells are abstract
boxes in Magic as well.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path

__all__ = ["QFLOW_INSTALL", "QFLOW_STEPS", "qflow_available", "qflow_version", "tech_dir", "extract_block",
           "module_names", "project_vars", "build_calloc_shim", "drc_rules", "place_and_route", "parse_results",
           "parse_synth_log", "parse_route_log", "parse_sta_log", "parse_lvs_log", "parse_drc_log", "read_def",
           "read_lef_sizes", "render_png"]

# qflow depends on yosys, berkeley-abc, graywolf, qrouter, magic, netgen-lvs, opensta and
# tcsh; the OSU cells are only a recommendation of it, so they are named.
QFLOW_INSTALL = "apt-get install -y --no-install-recommends qflow qflow-tech-osu018"
# qflow's processes in flow order: synthesis to backannotated timing (`qflow build`),
# then the layout database (migrate), LVS and DRC. LVS runs before DRC because
# drc.sh marks the flow as stopped when it finds errors.
QFLOW_STEPS = ("synthesize", "place", "route", "backanno", "migrate", "lvs", "drc")
# Where each step's own log lands (qflow's, in <out_dir>/log); ours is log/qflow_<step>.log.
_STEP_LOG = {"synthesize": "synth.log", "place": "place.log", "route": "route.log", "backanno": "post_sta.log",
             "migrate": "migrate.log", "drc": "drc.log", "lvs": "lvs.log"}


def qflow_available() -> bool:
    """True when the ``qflow`` command is on PATH (technologies: :func:`tech_dir`)."""
    return shutil.which("qflow") is not None


def qflow_version() -> str:
    """``"1.3.17"`` style version of the installed qflow ('' when not installed)."""
    if not qflow_available():
        return ""
    out = subprocess.run(["qflow", "-v"], capture_output=True, text=True).stdout
    m = re.search(r"version\s+(\d+)\.(\d+)\s+revision\s+(\d+)", out)
    return f"{m.group(1)}.{m.group(2)}.{m.group(3)}" if m else out.strip()


def tech_dir(tech: str) -> Path:
    """qflow's folder of technology ``tech`` (``/usr/share/qflow/tech/<tech>``).

    Raises ``FileNotFoundError`` naming the package to install."""
    d = Path("/usr/share/qflow/tech") / tech
    if not (d / f"{tech}.sh").exists():
        raise FileNotFoundError(f"qflow technology {tech!r} is not installed ({d}/{tech}.sh missing); "
                                f"install it with `apt-get install -y qflow-tech-{tech}`")
    return d


# ---------------------------------------------------------------------------------------------------
# Block extraction
# ---------------------------------------------------------------------------------------------------

# A Verilog identifier: escaped (backslash up to white space) or simple.
_ESCAPED = r"\\\S+"
_SIMPLE = r"[A-Za-z_][A-Za-z0-9_$]*"
_IDENT = rf"(?:{_ESCAPED}|{_SIMPLE})"
_MODULE_RE = re.compile(rf"^module\s+({_IDENT})\s*[(;#]", re.M)
_INSTANCE_RE = re.compile(rf"^\s*({_IDENT})\s+(?:#\s*\(.*?\)\s*)?({_IDENT})\s*\(", re.M | re.S)
# String literals (skipped by the renaming pass), escaped identifiers, simple identifiers.
_TOKEN_RE = re.compile(rf'"(?:[^"\\\n]|\\.)*"|({_ESCAPED})|({_SIMPLE})')


def _plain(name: str) -> str:
    """Identifier ``name`` without a leading backslash (``\\a.b`` -> ``a.b``)."""
    return name[1:] if name.startswith("\\") else name


def _split_modules(text: str) -> dict[str, str]:
    """``{module name (without backslash): full text module ... endmodule}``."""
    modules = {}
    starts = list(_MODULE_RE.finditer(text))
    for m in starts:
        end = text.find("endmodule", m.end())
        if end < 0:
            raise ValueError(f"module {m.group(1)} has no endmodule")
        modules[_plain(m.group(1))] = text[m.start():end + len("endmodule")]
    return modules


def module_names(verilog_text: str) -> list[str]:
    """Names of the modules defined in ``verilog_text`` (escaped ones without the backslash)."""
    return [_plain(m.group(1)) for m in _MODULE_RE.finditer(verilog_text)]


def _children(body: str, known: set[str]) -> list[str]:
    """Modules of ``known`` instantiated in module text ``body``, in order of first use."""
    found = []
    for m in _INSTANCE_RE.finditer(body):
        name = _plain(m.group(1))
        if name in known and name not in found:
            found.append(name)
    return found


# Verilog-2005 reserved words: an escaped one (``\end``) must not become plain.
_KEYWORDS = set("""always and assign automatic begin buf bufif0 bufif1 case casex casez cell cmos config deassign
default defparam design disable edge else end endcase endconfig endfunction endgenerate endmodule endprimitive
endspecify endtable endtask event for force forever fork function generate genvar highz0 highz1 if ifnone incdir
include initial inout input instance integer join large liblist library localparam macromodule medium module nand
negedge nmos nor noshowcancelled not notif0 notif1 or output parameter pmos posedge primitive pull0 pull1 pulldown
pullup pulsestyle_ondetect pulsestyle_onevent rcmos real realtime reg release repeat rnmos rpmos rtran rtranif0
rtranif1 scalared showcancelled signed small specify specparam strong0 strong1 supply0 supply1 table task time tran
tranif0 tranif1 tri tri0 tri1 triand trior trireg unsigned use uwire vectored wait wand weak0 weak1 while wire wor
xnor xor""".split())
_PLAIN_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _legal(name: str) -> str:
    """A simple identifier for escaped identifier text ``name``: every character
    other than letters, digits and ``_`` becomes ``_``; a leading digit gets a ``_``."""
    s = re.sub(r"[^A-Za-z0-9_]", "_", name)
    return s if re.match(r"[A-Za-z_]", s) else "_" + s


def extract_block(eie_v_text: str, top: str, *, prefix: str = "eie_") -> tuple[str, str]:
    """Cut module ``top`` and every module it instantiates (transitively) out of ``eie_v_text``.

    ``top`` is a module name as written in ``eie.v`` with or without the escaping
    backslash (``"eie_top.array.ccu"``), or the unique module whose dotted name
    ends in ``"." + top`` (``"array.ccu"``, ``"ccu"``).

    Returns ``(verilog_text, new_top_name)``: the kept modules (top first, then
    the others in the order they appear in ``eie_v_text``), in which every escaped
    identifier (module, port, wire and instance names) is replaced by a simple
    one, the same for the same text everywhere. Module names lose the path of
    ``top``'s parent and get ``prefix``: ``\\eie_top.array.ccu`` -> ``eie_ccu``,
    ``\\eie_top.array.ccu.lnzd.node_l0_0`` -> ``eie_ccu_lnzd_node_l0_0``; other
    names have their dots, ``$``, brackets and colons turned into ``_``
    (``\\port$7044$0`` -> ``port_7044_0``), with ``_<n>`` added where that would
    clash with a name already in use or a reserved word (``\\end`` ->
    ``end_1``); an escaped plain name (``\\clk``) is that name. String literals
    are left alone.

    Raises ``ValueError`` when ``top`` is not defined (listing the candidates) or
    names more than one module.
    """
    modules = _split_modules(eie_v_text)
    name = _plain(top)
    if name not in modules:
        matches = [m for m in modules if m.endswith("." + name)]
        if len(matches) != 1:
            what = "matches several modules" if matches else "is not a module of the text"
            raise ValueError(f"block {top!r} {what}; modules: {', '.join(matches or modules)}")
        name = matches[0]

    keep, todo = [], [name]
    while todo:
        mod = todo.pop(0)
        if mod in keep:
            continue
        keep.append(mod)
        todo += _children(modules[mod], set(modules))
    order = [name] + [m for m in modules if m in keep and m != name]
    text = "\n\n".join(modules[m] for m in order) + "\n"

    # New module names: the path below top's parent, dots to underscores.
    parent = name.rsplit(".", 1)[0] + "." if "." in name else ""
    mapping: dict[str, str] = {}
    used = {m.group(2) for m in _TOKEN_RE.finditer(text) if m.group(2)} | _KEYWORDS
    # An escaped name that is already a plain identifier (\clk) is that identifier.
    same = {m.group(1)[1:] for m in _TOKEN_RE.finditer(text)
            if m.group(1) and _PLAIN_RE.fullmatch(m.group(1)[1:]) and m.group(1)[1:] not in _KEYWORDS}
    used |= same
    for mod in order:
        rel = mod[len(parent):] if parent and mod.startswith(parent) else mod
        new = _unique(prefix + _legal(rel), used)
        used.add(new)
        mapping[mod] = new

    def rename(m: re.Match) -> str:
        if m.group(1) is None:
            return m.group(0)          # string literal or simple identifier
        old = m.group(1)[1:]
        if old in same:
            return old
        if old not in mapping:
            new = _unique(_legal(old), used)
            used.add(new)
            mapping[old] = new
        return mapping[old]

    return _TOKEN_RE.sub(rename, text), mapping[name]


def _unique(name: str, used: set[str]) -> str:
    if name not in used:
        return name
    n = 1
    while f"{name}_{n}" in used:
        n += 1
    return f"{name}_{n}"


# ---------------------------------------------------------------------------------------------------
# Running qflow
# ---------------------------------------------------------------------------------------------------

def project_vars(*, clock_ns: float, options: dict | None = None) -> str:
    """Text of the project's ``project_vars.sh`` (tcsh ``set`` lines that qflow's
    scripts source after the technology's defaults).

    Sets Vesta's clock period (``--period``, ps) so the post-route timing report
    gives each path's slack against ``clock_ns``, and any ``options``
    (``{"initial_density": 0.6, "qrouter_options": "..."}``: qflow variable -> value)."""
    period_ps = int(round(clock_ns * 1000))
    values = {"vesta_options": f"--period {period_ps} --summary reports --long"}
    values.update(options or {})
    lines = ["#!/usr/bin/tcsh -f", "# written by eie.asic.layout.place_and_route", ""]
    lines += [f'set {k} = "{v}"' for k, v in values.items()]
    return "\n".join(lines) + "\n"


# qflow stdout lines worth showing as progress, per step (plus every error line).
_PROGRESS_RE = re.compile(
    r"^(Running (yosys|blifFanout|blif2cel|GrayWolf|place2def|addspacers|qrouter|rc2dly|vesta|magic|netgen)|"
    r"Progress: Stage|Final:|Failed net routes|"
    r"Design (meets|fails)|ERROR|Computed maximum|Total errors|"
    r"Result:|Netlists |drc = |DRC failure|qrouter failure|Premature exit|Error:)")
_GRAYWOLF_ITER = re.compile(r"^\s*(\d+):\s+\S+")
# Lines only shown in the "still running" heartbeat (the latest one).
_HEARTBEAT_RE = re.compile(r"^Nets remaining: \d+")

# rc2dly (qflow 1.3.17) copies every net and pin name into a calloc(strlen(name))
# block, one byte short for the terminating NUL (valgrind: "Invalid write of size 1
# ... 0 bytes after a block"). On small designs the overrun lands in malloc's
# padding; on the CCU it corrupts the heap: garbage net names in the delay file
# and "Fatal glibc error: malloc assertion failure", no post-route timing. This
# LD_PRELOAD shim pads every calloc by 8 bytes; the backanno step runs with it.
CALLOC_SHIM_C = r"""
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stddef.h>

static void *(*real_calloc)(size_t, size_t);
static char boot[8192];
static size_t boot_used;
static int resolving;

void *calloc(size_t n, size_t size) {
    if (!real_calloc) {
        if (resolving) {            /* dlsym may itself calloc: serve it from a zeroed static buffer */
            size_t want = (n * size + 15) & ~(size_t)15;
            if (boot_used + want > sizeof boot) return NULL;
            void *p = boot + boot_used;
            boot_used += want;
            return p;
        }
        resolving = 1;
        real_calloc = (void *(*)(size_t, size_t))dlsym(RTLD_NEXT, "calloc");
        resolving = 0;
    }
    return real_calloc(1, n * size + 8);
}
"""


def build_calloc_shim(folder) -> Path | None:
    """Compile :data:`CALLOC_SHIM_C` into ``folder/callocpad.so`` with the system C
    compiler; None when there is no ``cc``/``gcc`` or it fails (then rc2dly runs as is)."""
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        return None
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    src, lib = folder / "callocpad.c", folder / "callocpad.so"
    src.write_text(CALLOC_SHIM_C)
    run = subprocess.run([cc, "-shared", "-fPIC", "-O2", "-o", str(lib), str(src), "-ldl"], capture_output=True)
    return lib if run.returncode == 0 and lib.exists() else None


def _step_watch(step: str, layout_dir: Path, top: str) -> str:
    """Extra progress for long silent steps: GrayWolf's annealing iteration."""
    if step != "place":
        return ""
    out = layout_dir / f"{top}.out"
    try:
        with open(out, "rb") as f:
            f.seek(max(0, out.stat().st_size - 4000))
            lines = f.read().decode(errors="replace").splitlines()
    except OSError:
        return ""
    iters = [m.group(1) for m in map(_GRAYWOLF_ITER.match, lines) if m]
    return f", graywolf annealing iteration {iters[-1]}" if iters else ""


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    proc.wait()


def drc_rules(project, top: str, tech: str = "osu018", *, timeout_s: float = 600) -> dict[str, int]:
    """``{rule text: count}`` of Magic's DRC on the project's layout (``drc listall
    why`` on the database that ``qflow migrate`` wrote), to say what the errors
    that ``qflow drc`` only counts are; ``{}`` when Magic reports none or fails."""
    layout = Path(project) / "layout"
    script = layout / f"drc_why_{top}.tcl"
    lef = tech_dir(tech) / f"{tech}_stdcells.lef"
    script.write_text("\n".join([
        f"lef read {lef}", f"load {top}", "drc on", "select top cell", "expand", "drc check", "drc catchup",
        "foreach {why boxes} [drc listall why] { puts \"DRCWHY\t$why\t[llength $boxes]\" }",
        "quit -noprompt", ""]))
    try:
        run = subprocess.run(["magic", "-dnull", "-noconsole", script.name], cwd=layout, capture_output=True,
                             text=True, errors="replace", timeout=timeout_s)
    except (OSError, subprocess.TimeoutExpired):
        return {}
    rules: dict[str, int] = {}
    for why, n in re.findall(r"^DRCWHY\t(.*)\t(\d+)$", run.stdout, re.M):
        rules[why] = rules.get(why, 0) + int(n)
    return rules


def _run_step(step: str, top: str, tech: str, project: Path, log_path: Path, progress, *,
              heartbeat_s: float, timeout_s: float | None, nice: int, env: dict | None = None) -> tuple[int, float]:
    """Run ``qflow <step> -T tech top`` in ``project``; its output goes to ``log_path``."""
    cmd = ["qflow", step, "-T", tech, top]
    if nice:
        cmd = ["nice", "-n", str(nice)] + cmd
    t0 = time.monotonic()
    done = threading.Event()
    latest = [""]

    def beat():
        while not done.wait(heartbeat_s):
            progress(f"[{step}] still running, {time.monotonic() - t0:.0f} s"
                     f"{_step_watch(step, project / 'layout', top)}{', ' + latest[0] if latest[0] else ''}")

    with open(log_path, "w") as log:
        # Its own process group, so a timeout or an interrupt stops the tools qflow started too.
        proc = subprocess.Popen(cmd, cwd=project, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                errors="replace", start_new_session=True,
                                env={**os.environ, "QFLOW_PROJECT_ROOT": str(project), **(env or {})})
        ticker = None
        if progress:
            ticker = threading.Thread(target=beat, daemon=True)
            ticker.start()
        killer = threading.Timer(timeout_s, _kill_group, (proc,)) if timeout_s else None
        if killer:
            killer.start()
        try:
            recent: list[str] = []
            for line in proc.stdout:
                log.write(line)
                line = line.strip()
                if _HEARTBEAT_RE.match(line):
                    latest[0] = line
                if progress and _PROGRESS_RE.search(line) and line not in recent:
                    progress(f"[{step}] {line}")
                    recent = (recent + [line])[-4:]
            rc = proc.wait()
        finally:
            done.set()
            if killer:
                killer.cancel()
            if proc.poll() is None:
                _kill_group(proc)
    return rc, time.monotonic() - t0


def place_and_route(verilog_text_or_path, top_module: str, *, tech: str = "osu018", out_dir, clock_ns: float,
                    progress=None, steps=QFLOW_STEPS, options: dict | None = None, nice: int = 0,
                    heartbeat_s: float = 30.0, timeout_s: float | None = None, fresh: bool = True) -> dict:
    """Synthesise, place, route and check module ``top_module`` with qflow; return the parsed results.

    ``verilog_text_or_path``: the block's Verilog (text, or a path to a file) with
    plain (not escaped) module names; :func:`extract_block` makes such text from
    ``eie.v``. ``top_module`` must be defined in it. ``out_dir`` becomes the qflow
    project (``source/<top>.v``, ``synthesis/``, ``layout/``, ``log/``, qflow's
    ``project_vars.sh`` from :func:`project_vars`); an earlier run there is
    overwritten. ``clock_ns`` is the clock period the post-route timing report
    checks (synthesis and placement are not timing driven in qflow).

    ``steps`` are qflow processes run in order, each as ``qflow <step> -T <tech>
    <top>`` (default :data:`QFLOW_STEPS`: synthesize, place, route, backanno
    (post-route static timing with Vesta), migrate (Magic database and extracted
    netlist), lvs (Netgen), drc (Magic, on the cells' abstract views)). Each
    step's output is kept in ``log/qflow_<step>.log``; ``progress`` (a callable
    taking one line of text, or None) gets the step starts and ends, the tools'
    milestone lines (qrouter stages, failed nets, timing verdict, LVS result) and
    a "still running" line every ``heartbeat_s`` seconds (with GrayWolf's
    annealing iteration while placing). ``nice`` runs qflow under ``nice -n``;
    ``timeout_s`` kills a step that runs longer. ``options`` are extra qflow
    variables for ``project_vars.sh``. ``fresh=False`` keeps an existing project
    in ``out_dir`` (its ``source/<top>.v`` must match the text) and runs only
    ``steps`` on it, e.g. ``("backanno", "migrate", "lvs", "drc")`` to redo the
    checks after routing; the steps of the earlier run stay in ``steps``.

    Post-route timing: qflow's rc2dly (routed RC trees to Vesta's delay file)
    overruns its heap by one byte per name, which corrupts the delay file or
    crashes it on blocks like the CCU; the backanno step therefore runs with a
    small ``LD_PRELOAD`` shim (:func:`build_calloc_shim`, compiled with the
    system ``cc`` into ``tools/``) that pads ``calloc``; the step's record says
    whether it was used.

    Outcomes of the design are results, not exceptions: failed nets after
    routing (``failed_nets`` > 0; the later steps are then marked skipped, as
    timing and LVS of an open layout mean nothing), LVS mismatches
    (``lvs_errors``, reported as they are, never hidden) and DRC errors
    (``drc_errors``); such steps get status "reported" with a note. Any other
    failure of a step raises ``RuntimeError`` naming the step, its logs and
    their last lines.

    Returns :func:`parse_results`' dict (also written to ``out_dir/results.json``)
    with ``steps`` (per step: status, exit code, seconds, log) and ``runtime_s``.
    Raises ``FileNotFoundError`` naming the apt-get command when qflow or the
    technology is missing, ``ValueError`` when ``top_module`` is not in the text.
    """
    if not qflow_available():
        raise FileNotFoundError(f"qflow is not installed; install it with `{QFLOW_INSTALL}`")
    tech_dir(tech)
    unknown = [s for s in steps if s not in QFLOW_STEPS]
    if unknown:
        raise ValueError(f"unknown qflow steps {unknown}; choose from {', '.join(QFLOW_STEPS)}")
    text = verilog_text_or_path
    if isinstance(text, Path) or (isinstance(text, str) and "\n" not in text and text.endswith((".v", ".sv"))):
        text = Path(text).read_text()
    if top_module not in module_names(text):
        raise ValueError(f"module {top_module!r} is not defined in the Verilog text "
                         f"(modules: {', '.join(module_names(text)) or 'none'}); "
                         "escaped names must be made plain first (extract_block)")
    say = progress or (lambda _line: None)

    project = Path(out_dir).resolve()
    record: dict[str, dict] = {}
    source = project / "source" / f"{top_module}.v"
    if fresh:
        for sub in ("source", "synthesis", "layout", "log"):
            d = project / sub
            if d.exists():
                shutil.rmtree(d)
            d.mkdir(parents=True)
        for f in ("qflow_vars.sh", "qflow_exec.sh", "project_vars.sh", "results.json"):
            (project / f).unlink(missing_ok=True)
        source.write_text(text)
    else:
        if not source.exists() or source.read_text() != text:
            raise ValueError(f"fresh=False needs the same block in {source}; run with fresh=True first")
        if (project / "results.json").exists():
            old = json.loads((project / "results.json").read_text()).get("steps", {})
            record.update({k: v for k, v in old.items() if k not in steps})
    (project / "project_vars.sh").write_text(project_vars(clock_ns=clock_ns, options=options))

    t_all = time.monotonic()
    stopped = None
    for step in steps:
        if stopped:
            record[step] = {"status": "skipped", "reason": stopped}
            continue
        log_path = project / "log" / f"qflow_{step}.log"
        env = None
        if step == "backanno":
            shim = build_calloc_shim(project / "tools")
            shim_note = ("rc2dly run with the calloc padding shim (LD_PRELOAD tools/callocpad.so)" if shim else
                         "no C compiler for the rc2dly calloc shim: rc2dly runs as is and may corrupt its heap "
                         "(apt-get install -y gcc)")
            env = {"LD_PRELOAD": str(shim)} if shim else None
        say(f"[{step}] qflow {step} -T {tech} {top_module}")
        rc, secs = _run_step(step, top_module, tech, project, log_path, progress, heartbeat_s=heartbeat_s,
                             timeout_s=timeout_s, nice=nice, env=env)
        out = log_path.read_text(errors="replace")
        # Outcomes that are results, not failures of the flow: failed nets (qrouter
        # exits 0 with them, router.sh 1 when it finds failed.out), LVS mismatches
        # and DRC errors (lvs.sh and drc.sh exit 1).
        reported = None
        if step == "route":
            failed = parse_route_log(out).get("failed_nets")
            if failed or (rc != 0 and re.search(r"Not all nets were routed", out)):
                reported = f"routing left {failed if failed is not None else 'some'} failed nets"
                stopped = reported
        elif step == "backanno" and not parse_sta_log(out):
            crash = re.search(r"Fatal glibc error.*|^Abort$|ERROR: .*", out, re.M)
            reported = "no post-route timing report" + (f" ({crash.group(0).strip()})" if crash else "")
        elif step == "lvs" and rc != 0 and parse_lvs_log(out).get("errors"):
            reported = f"LVS found {parse_lvs_log(out)['errors']} errors"
        elif step == "drc" and rc != 0 and parse_drc_log(out).get("errors"):
            reported = f"DRC found {parse_drc_log(out)['errors']} errors"
        if rc != 0 and reported is None:
            tail = "\n".join(out.splitlines()[-15:])
            own = project / "log" / _STEP_LOG.get(step, "")
            why = ", killed after the timeout" if timeout_s and secs >= timeout_s else ""
            raise RuntimeError(f"qflow {step} failed for {top_module} (exit {rc}{why}); "
                               f"see {log_path} and {own}. Last lines:\n{tail}")
        status = "ok" if reported is None else "reported"
        record[step] = {"status": status, "rc": rc, "seconds": round(secs, 2), "log": str(log_path)}
        if reported:
            record[step]["note"] = reported
        if step == "backanno":
            record[step]["rc2dly"] = shim_note
        if step == "drc" and reported:
            record[step]["rules"] = drc_rules(project, top_module, tech)
            say(f"[drc] by rule: {record[step]['rules']}")
        say(f"[{step}] {'done' if reported is None else reported} in {secs:.1f} s")
    total = time.monotonic() - t_all

    result = parse_results(project, top_module, tech=tech, clock_ns=clock_ns)
    record = {s: record[s] for s in QFLOW_STEPS if s in record}
    result["steps"] = record
    if record.get("drc", {}).get("rules"):
        result["drc"]["rules"] = record["drc"]["rules"]
    result["runtime_s"] = {s: r["seconds"] for s, r in record.items() if "seconds" in r}
    result["runtime_s"]["total"] = round(total if fresh else sum(result["runtime_s"].values()), 2)
    (project / "results.json").write_text(json.dumps(result, indent=2) + "\n")
    return result


# ---------------------------------------------------------------------------------------------------
# Parsing qflow's outputs
# ---------------------------------------------------------------------------------------------------

def parse_synth_log(text: str) -> dict:
    """Yosys' last ``stat`` in qflow's synthesis log: ``{"cells": N, "cell_types": {cell: n}}``
    (before blifFanout's buffers and the placer's fill cells); ``{}`` when absent."""
    blocks = list(re.finditer(r"Number of cells:\s+(\d+)\n((?:\s+\S+\s+\d+\n)*)", text))
    if not blocks:
        return {}
    m = blocks[-1]
    types = {c: int(n) for c, n in re.findall(r"^\s+(\S+)\s+(\d+)$", m.group(2), re.M)}
    return {"cells": int(m.group(1)), "cell_types": types}


def parse_route_log(text: str) -> dict:
    """qrouter's result from the route step's output: ``failed_nets`` (0 after
    "Final: No failed routes!", the count after "Failed net routes:" in the
    final report otherwise, None when there is no final report), ``stages``
    (``[stage, total routes completed]`` as reported, in order), the qrouter
    version and the antenna errors found when reported."""
    out: dict = {}
    m = re.search(r"Running qrouter (\S+)", text)
    if m:
        out["qrouter_version"] = m.group(1)
    stages = re.findall(r"Progress: Stage (\d+) total routes completed: (\d+)", text)
    if stages:     # qrouter may go back to stage 2 after stage 3: a list, in order
        out["stages"] = [[int(s), int(n)] for s, n in stages]
    final = text.rfind("Final:")
    if final >= 0:
        tail = text[final:]
        if re.match(r"Final:\s*No failed routes", tail):
            out["failed_nets"] = 0
        else:
            m = re.search(r"Failed net routes:\s*(\d+)|(\d+) nets failed to route", tail)
            out["failed_nets"] = int(m.group(1) or m.group(2)) if m else None
    elif re.search(r"Not all nets were routed", text):
        found = re.findall(r"Failed net routes:\s*(\d+)", text)
        out["failed_nets"] = int(found[-1]) if found else None
    else:
        out["failed_nets"] = None
    m = re.findall(r"Total number of antenna errors found = (\d+)", text)
    if m:
        out["antenna_errors"] = int(m[-1])
    return out


_PATH_RE = re.compile(r"^Path (.+?) to (.+?) delay ([\d.eE+-]+) ps(?:\s+Slack = ([\d.eE+-]+) ps)?", re.M)


def parse_sta_log(text: str, clock_ns: float | None = None) -> dict:
    """Vesta's post-route report (``qflow backanno`` output).

    Over the paths of every maximum-delay section (register to register, then
    pin to register, register to pin and pin to pin): the worst path
    (``worst_path_ns``: arrival plus the destination's setup time; from / to),
    ``fmax_mhz`` (its inverse; Vesta's own "Computed maximum clock frequency"
    when printed, i.e. when no period was given; for a purely combinational
    block the inverse of the worst pin-to-pin delay), the worst register-to-
    register path, ``slack_ns`` against ``clock_ns`` and Vesta's setup / hold
    verdicts (False when any section fails). ``{}`` when no path is listed."""
    paths = []
    for m in re.finditer(r"maximum delay paths:", text):
        end = text.find("minimum delay paths:", m.end())
        section = text[m.end():end if end >= 0 else len(text)]
        paths += [(a, b, float(d), float(s) if s else None) for a, b, d, s in _PATH_RE.findall(section)]
    paths = list(dict.fromkeys(paths))
    if not paths:
        return {}
    worst = max(paths, key=lambda p: p[2])
    out = {"worst_path_ns": round(worst[2] / 1000, 4), "worst_path_from": worst[0], "worst_path_to": worst[1],
           "paths_reported": len(paths), "fmax_mhz": round(1e6 / worst[2], 2)}
    m = re.search(r"Computed maximum clock frequency \(zero margin\) = ([\d.eE+-]+) MHz", text)
    if m:
        out["fmax_mhz"] = round(float(m.group(1)), 2)
    reg = [p for p in paths if "input pin" not in p[0] and "output pin" not in p[1]]
    if reg:
        w = max(reg, key=lambda p: p[2])
        out["reg_to_reg_worst_ns"] = round(w[2] / 1000, 4)
    if clock_ns is not None:
        out["clock_ns"] = clock_ns
        out["slack_ns"] = round(clock_ns - worst[2] / 1000, 4)
    warnings = re.findall(r"^ERROR:\s*(.*)$", text, re.M)
    if warnings:
        out["vesta_errors"] = warnings[:20]
    if "Design fails timing requirements" in text:
        out["meets_setup"] = False
    elif "Design meets timing requirements" in text:
        out["meets_setup"] = True
    if "Design fails minimum hold timing" in text:
        out["meets_hold"] = False
    elif "Design meets minimum hold timing" in text:
        out["meets_hold"] = True
    return out


def parse_lvs_log(text: str) -> dict:
    """Netgen's result (``qflow lvs`` output): ``errors`` (count_lvs.py's "Total
    errors"), its breakdown when there are errors, netgen's final "Result:" line
    or "Netlists ..." verdict and ``match`` (netgen's verdict, True only for a
    unique match and no counted errors); ``{}`` when LVS did not report."""
    out: dict = {}
    m = re.findall(r"Total errors = (\d+)", text)
    if m:
        out["errors"] = int(m[-1])
    for key, label in (("net_count_difference", "net count difference"),
                       ("device_count_difference", "device count difference"),
                       ("unmatched_nets", "unmatched nets"), ("unmatched_devices", "unmatched devices"),
                       ("unmatched_pins", "unmatched pins"), ("property_failures", "property failures")):
        m = re.findall(rf"{label} = (\d+)", text)
        if m:
            out[key] = int(m[-1])
    verdicts = re.findall(r"^(?:Result: )?(Netlists? .*|Circuits .*)$", text, re.M)
    results = re.findall(r"^Result: (.*)$", text, re.M)
    if results:
        out["result"] = results[-1].strip()
    elif verdicts:
        out["result"] = verdicts[-1].strip()
    if out:
        unique = bool(re.search(r"match uniquely", out.get("result", "")))
        out["match"] = unique and out.get("errors", 0) == 0
    return out


def parse_drc_log(text: str) -> dict:
    """Magic's DRC count (``qflow drc`` output, "drc = N"); ``{}`` when absent."""
    m = re.findall(r"^drc = (\d+)", text, re.M)
    return {"errors": int(m[-1])} if m else {}


def read_lef_sizes(lef_path) -> dict[str, tuple[float, float]]:
    """``{macro: (width_um, height_um)}`` from a LEF file's ``MACRO ... SIZE w BY h``."""
    sizes = {}
    for m in re.finditer(r"^MACRO\s+(\S+)(.*?)^END\s+\1\b", Path(lef_path).read_text(), re.M | re.S):
        s = re.search(r"SIZE\s+([\d.]+)\s+BY\s+([\d.]+)", m.group(2))
        if s:
            sizes[m.group(1)] = (float(s.group(1)), float(s.group(2)))
    return sizes


def _section(text: str, name: str) -> str:
    m = re.search(rf"^{name}\s+\d+\s*;(.*?)^END {name}", text, re.M | re.S)
    return m.group(1) if m else ""


def _routes(tokens: list[str], scale: float, wires: dict, vias: list, special: bool) -> None:
    """Walk the tokens of one DEF net statement, adding wire segments (by layer) and vias."""
    i, n = 0, len(tokens)
    layer, width, cur = None, None, None
    while i < n:
        t = tokens[i]
        if t == "+":
            key = tokens[i + 1] if i + 1 < n else ""
            i += 2
            if key in ("ROUTED", "FIXED", "COVER", "NOSHIELD"):
                layer, cur = tokens[i], None
                i += 1
                if special and i < n and re.fullmatch(r"[\d.]+", tokens[i]):
                    width = float(tokens[i]) / scale
                    i += 1
            elif key == "SHAPE":
                i += 1
            else:
                layer = None
            continue
        if layer is None:
            i += 1
            continue
        if t == "NEW":
            layer, cur = tokens[i + 1], None
            i += 2
            if special and i < n and re.fullmatch(r"[\d.]+", tokens[i]):
                width = float(tokens[i]) / scale
                i += 1
            continue
        if t == "(":
            j = tokens.index(")", i)
            vals = tokens[i + 1:j]
            x = cur[0] if vals[0] == "*" else float(vals[0]) / scale
            y = cur[1] if vals[1] == "*" else float(vals[1]) / scale
            if cur is not None and (x, y) != cur:
                wires.setdefault(layer, []).append((cur[0], cur[1], x, y, width))
            cur = (x, y)
            i = j + 1
            continue
        if cur is not None:
            vias.append((cur[0], cur[1], t))
        i += 1


def read_def(def_path) -> dict:
    """The parts of a (routed) DEF file the report and the picture need, in um.

    ``{"design", "units", "die": (x0, y0, x1, y1), "components": [(name, macro, x,
    y, orient)], "pins": [(name, x, y)], "wires": {layer: [(x0, y0, x1, y1, width
    or None)]}, "vias": [(x, y, via)], "power": {layer: [...]}, "power_vias": [...],
    "nets": N}``: ``wires``/``vias`` from NETS (signal routing), ``power``/
    ``power_vias`` from SPECIALNETS (stripes, rails and the router's short
    patches)."""
    text = Path(def_path).read_text()
    m = re.search(r"UNITS DISTANCE MICRONS (\d+)", text)
    scale = float(m.group(1)) if m else 100.0
    m = re.search(r"DIEAREA\s*\(\s*(-?[\d.]+)\s+(-?[\d.]+)\s*\)\s*\(\s*(-?[\d.]+)\s+(-?[\d.]+)\s*\)", text)
    die = tuple(float(v) / scale for v in m.groups()) if m else None
    design = re.search(r"^DESIGN\s+(\S+)", text, re.M)
    comps = [(n, mac, float(x) / scale, float(y) / scale, o) for n, mac, x, y, o in re.findall(
        r"-\s+(\S+)\s+(\S+)\s+\+\s+(?:PLACED|FIXED)\s+\(\s*(-?[\d.]+)\s+(-?[\d.]+)\s*\)\s+(\S+)",
        _section(text, "COMPONENTS"))]
    pins = [(n, float(x) / scale, float(y) / scale) for n, x, y in re.findall(
        r"-\s+(\S+)\s+\+\s+NET.*?PLACED\s+\(\s*(-?[\d.]+)\s+(-?[\d.]+)\s*\)", _section(text, "PINS"), re.S)]
    out = {"design": design.group(1) if design else None, "units": scale, "die": die, "components": comps,
           "pins": pins, "wires": {}, "vias": [], "power": {}, "power_vias": [], "nets": 0}
    for sec, wires, vias, special in (("NETS", out["wires"], out["vias"], False),
                                      ("SPECIALNETS", out["power"], out["power_vias"], True)):
        body = _section(text, sec).replace("(", " ( ").replace(")", " ) ")
        for stmt in body.split(";"):
            tokens = stmt.split()
            if not tokens or tokens[0] != "-":
                continue
            if not special:
                out["nets"] += 1
            _routes(tokens[2:], scale, wires, vias, special)
    return out


def _def_path(project: Path, top: str) -> Path | None:
    """The routed DEF (qflow moves <top>_route.def to <top>.def when routing succeeds)."""
    layout = project / "layout"
    for name in (f"{top}_route.def", f"{top}.def", f"{top}_unroute.def"):
        if (layout / name).exists():
            return layout / name
    return None


def _layout_figures(layout: dict, sizes: dict, fill_re: str = r"^FILL") -> dict:
    cells = [c for c in layout["components"] if not re.match(fill_re, c[1])]
    fills = [c for c in layout["components"] if re.match(fill_re, c[1])]
    area = sum(sizes.get(c[1], (0, 0))[0] * sizes.get(c[1], (0, 0))[1] for c in cells)
    out: dict = {"cells": len(cells), "fill_cells": len(fills), "cell_area_um2": round(area, 1)}
    if layout["die"]:
        x0, y0, x1, y1 = layout["die"]
        out.update(die_width_um=round(x1 - x0, 2), die_height_um=round(y1 - y0, 2),
                   die_area_mm2=round((x1 - x0) * (y1 - y0) / 1e6, 4))
    if layout["components"]:
        xs0 = min(c[2] for c in layout["components"])
        ys0 = min(c[3] for c in layout["components"])
        xs1 = max(c[2] + sizes.get(c[1], (0, 0))[0] for c in layout["components"])
        ys1 = max(c[3] + sizes.get(c[1], (0, 0))[1] for c in layout["components"])
        core = (xs1 - xs0) * (ys1 - ys0)
        rows = {round(c[3], 2) for c in layout["components"]}
        out.update(core_width_um=round(xs1 - xs0, 2), core_height_um=round(ys1 - ys0, 2), rows=len(rows),
                   core_utilisation=round(area / core, 4) if core else None)
    by_layer = {l: sum(abs(a - c) + abs(b - d) for a, b, c, d, _ in segs) for l, segs in layout["wires"].items()}
    out["wire_length_um"] = round(sum(by_layer.values()), 2)
    out["wire_length_by_layer_um"] = {l: round(v, 2) for l, v in sorted(by_layer.items())}
    out["vias"] = len(layout["vias"])
    out["nets"] = layout["nets"]
    return out


def _read(path: Path) -> str:
    return path.read_text(errors="replace") if path.exists() else ""


def parse_results(out_dir, top: str, *, tech: str = "osu018", clock_ns: float | None = None) -> dict:
    """Parse a qflow project folder (made by :func:`place_and_route`) into one dict.

    Flat keys (None where the step did not run or its report is missing):
    ``cells`` (placed standard cells, without fill), ``fill_cells``,
    ``cell_area_um2``, ``die_width_um``, ``die_height_um``, ``die_area_mm2``,
    ``core_utilisation`` (cell area / area of the placed rows), ``wire_length_um``
    (signal routing, all layers) and ``wire_length_by_layer_um``, ``vias``,
    ``failed_nets``, ``worst_path_ns`` (post-route, Vesta, setup included),
    ``fmax_mhz``, ``slack_ns``, ``lvs_errors``, ``lvs_match``, ``drc_errors``;
    and the details per stage under ``synthesis``, ``placement``, ``routing``,
    ``timing``, ``lvs``, ``drc``.
    """
    project = Path(out_dir)
    logs = project / "log"
    synth = parse_synth_log(_read(logs / "synth.log"))
    route = parse_route_log(_read(logs / "qflow_route.log") + _read(logs / "route.log"))
    timing = parse_sta_log(_read(logs / "qflow_backanno.log") or _read(logs / "post_sta.log"), clock_ns)
    lvs = parse_lvs_log(_read(logs / "qflow_lvs.log"))
    drc = parse_drc_log(_read(logs / "qflow_drc.log"))
    placement: dict = {}
    def_path = _def_path(project, top)
    if def_path is not None:
        lef = tech_dir(tech) / f"{tech}_stdcells.lef"
        placement = _layout_figures(read_def(def_path), read_lef_sizes(lef))
        placement["def"] = str(def_path)
    result = {
        "block": top, "tech": tech, "qflow_version": qflow_version(), "out_dir": str(project), "clock_ns": clock_ns,
        "cells": placement.get("cells"), "fill_cells": placement.get("fill_cells"),
        "cell_area_um2": placement.get("cell_area_um2"),
        "die_width_um": placement.get("die_width_um"), "die_height_um": placement.get("die_height_um"),
        "die_area_mm2": placement.get("die_area_mm2"), "core_utilisation": placement.get("core_utilisation"),
        "wire_length_um": placement.get("wire_length_um"),
        "wire_length_by_layer_um": placement.get("wire_length_by_layer_um"), "vias": placement.get("vias"),
        "failed_nets": route.get("failed_nets"),
        "worst_path_ns": timing.get("worst_path_ns"), "fmax_mhz": timing.get("fmax_mhz"),
        "slack_ns": timing.get("slack_ns"),
        "lvs_errors": lvs.get("errors"), "lvs_match": lvs.get("match"), "drc_errors": drc.get("errors"),
        "synthesis": synth, "placement": placement, "routing": route, "timing": timing, "lvs": lvs, "drc": drc,
    }
    return result


# ---------------------------------------------------------------------------------------------------
# Picture
# ---------------------------------------------------------------------------------------------------

_LAYER_COLOURS = {"metal1": "#1f5fd6", "metal2": "#d62728", "metal3": "#2ca02c", "metal4": "#ff8c00",
                  "metal5": "#9467bd", "metal6": "#8c564b"}
_TECH_NAMES = {"osu018": "OSU 0.18 um", "osu035": "OSU 0.35 um", "osu050": "OSU 0.5 um"}


def _find_def(out_dir: Path, top: str | None) -> tuple[Path, str]:
    layout = out_dir / "layout"
    if top is None:
        results = out_dir / "results.json"
        if results.exists():
            top = json.loads(results.read_text()).get("block")
    if top is None:
        names = sorted(p.stem for p in layout.glob("*.def") if not p.stem.endswith(("_unroute", "_route")))
        if len(names) != 1:
            raise FileNotFoundError(f"cannot tell which DEF in {layout} to draw ({names or 'none'}); pass top=")
        top = names[0]
    path = _def_path(out_dir, top)
    if path is None:
        raise FileNotFoundError(f"no DEF of {top} in {layout}: run place_and_route (its place and route steps) first")
    return path, top


def render_png(out_dir, png_path, *, top: str | None = None, tech: str | None = None, title: str | None = None,
               width_px: int = 1600, max_bytes: int = 1_000_000) -> dict:
    """Draw the routed layout of the qflow project ``out_dir`` into the PNG ``png_path``.

    Reads the routed DEF (``layout/<top>.def``; ``top`` and ``tech`` default to
    those of ``out_dir/results.json``, written by :func:`place_and_route`) and the
    technology's LEF for the cell sizes, and draws with matplotlib (headless,
    Agg): the die outline, the cells as boxes (flip-flops blue, other logic
    grey, fill cells faint), the power stripes, the signal wires coloured by
    metal layer (legend with each layer's wire length) and the I/O pins. The
    title names the block, the technology, the die size and the cell count, and
    when ``results.json`` has them the utilisation, post-route Fmax, failed
    nets and LVS errors (``title`` replaces the first line). The image is about
    ``width_px`` wide, with a detail of the middle of the die beside a large
    one; it is reduced to a 256-colour palette (and, if needed, scaled down)
    when it would not fit in ``max_bytes``.

    Returns ``{"png", "width_px", "height_px", "bytes", "def"}``. Raises
    ``FileNotFoundError`` when the project has no DEF to draw.
    """
    import io

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.collections import LineCollection, PatchCollection
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch, Rectangle
    from PIL import Image

    out_dir = Path(out_dir)
    def_path, top = _find_def(out_dir, top)
    results_path = out_dir / "results.json"
    res = json.loads(results_path.read_text()) if results_path.exists() else {}
    tech = tech or res.get("tech") or "osu018"
    layout = read_def(def_path)
    sizes = read_lef_sizes(tech_dir(tech) / f"{tech}_stdcells.lef")
    figures = _layout_figures(layout, sizes)

    x0, y0, x1, y1 = layout["die"] or (0, 0, 1, 1)
    w_um, h_um = x1 - x0, y1 - y0
    fig_w = width_px / 100
    plot_w = fig_w * 0.70
    plot_h = plot_w * h_um / w_um
    top_in, bottom_in = 1.0, 0.45
    fig_h = max(plot_h, 5.5) + top_in + bottom_in
    fig = plt.figure(figsize=(fig_w, fig_h), dpi=100)
    ax = fig.add_axes([0.04, bottom_in / fig_h, plot_w / fig_w, plot_h / fig_h])

    cells = {"flop": [], "logic": [], "fill": []}
    for _name, macro, x, y, orient in layout["components"]:
        w, h = sizes.get(macro, (0.8, 10.0))
        if orient in ("E", "W", "FE", "FW"):
            w, h = h, w
        kind = "fill" if macro.startswith("FILL") else "flop" if macro.startswith(("DFF", "LATCH")) else "logic"
        cells[kind].append((x, y, w, h))
    cell_style = {"fill": dict(facecolor="#f0f0f0", edgecolor="none"),
                  "logic": dict(facecolor="#d9d9d9", edgecolor="#9a9a9a"),
                  "flop": dict(facecolor="#b9d3ee", edgecolor="#6c8ebf")}
    stripes = []
    for segs in layout["power"].values():
        for a, b, c, d, wd in segs:
            if wd and wd >= 1.0:       # stripes and rails, not the router's short patches
                stripes.append((min(a, c) - wd / 2, min(b, d) - wd / 2, abs(c - a) + wd, abs(d - b) + wd))

    def draw(axes, box, wire_lw, edge_lw, pin_ms):
        bx0, by0, bx1, by1 = box
        axes.set_xlim(bx0, bx1)
        axes.set_ylim(by0, by1)
        axes.set_aspect("equal")
        axes.tick_params(labelsize=8)
        axes.set_facecolor("#fafafa")

        def inside(x, y, w, h):
            return x + w >= bx0 and x <= bx1 and y + h >= by0 and y <= by1

        for kind, rects in cells.items():
            patches = [Rectangle((x, y), w, h) for x, y, w, h in rects if inside(x, y, w, h)]
            if patches:
                axes.add_collection(PatchCollection(patches, lw=edge_lw, zorder=1, **cell_style[kind]))
        patches = [Rectangle((x, y), w, h) for x, y, w, h in stripes if inside(x, y, w, h)]
        if patches:
            axes.add_collection(PatchCollection(patches, facecolor="#c8a400", edgecolor="none", alpha=0.4, zorder=2))
        for layer in sorted(layout["wires"]):
            lines = [((a, b), (c, d)) for a, b, c, d, _ in layout["wires"][layer]
                     if inside(min(a, c), min(b, d), abs(c - a), abs(d - b))]
            axes.add_collection(LineCollection(lines, colors=_LAYER_COLOURS.get(layer, "black"),
                                               linewidths=wire_lw, alpha=0.85, zorder=3))
        if layout["pins"]:
            axes.plot([p[1] for p in layout["pins"]], [p[2] for p in layout["pins"]], "k^", ms=pin_ms, zorder=4)

    px_per_um = plot_w * 100 / w_um
    draw(ax, (x0, y0, x1, y1), max(0.2, min(0.8, 0.25 * px_per_um)), 0.2, 2.5)
    ax.set_xlabel("um", fontsize=8, labelpad=1)

    # A detail of the middle of the die when the whole is too dense to see cells and wires.
    if w_um > 150:
        side = max(30.0, round(w_um / 16, -1))
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
        zoom = (cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2)
        zoom_in = min(fig_w - plot_w - 0.9, 3.4)
        left = (0.04 * fig_w + plot_w + 0.55) / fig_w
        axz = fig.add_axes([left, bottom_in / fig_h, zoom_in / fig_w, zoom_in / fig_h])
        draw(axz, zoom, 1.2, 0.5, 5)
        axz.set_title(f"detail: {side:.0f} x {side:.0f} um in the middle", fontsize=9)
        ax.add_patch(Rectangle(zoom[:2], side, side, fill=False, edgecolor="black", lw=1.2, zorder=5))
        legend_y = (bottom_in + zoom_in + 0.35) / fig_h
        legend_loc = "lower left"
    else:
        legend_y, legend_loc = 0.5, "center left"

    node = _TECH_NAMES.get(tech, tech)
    first = title or f"{top}: {tech} ({node}), qflow {res.get('qflow_version') or qflow_version()}"
    facts = [f"{w_um:.0f} x {h_um:.0f} um die", f"{figures['cells']:,} cells"]
    if figures.get("core_utilisation"):
        facts.append(f"{figures['core_utilisation']:.0%} row utilisation")
    facts.append(f"{figures['wire_length_um'] / 1000:.1f} mm wire")
    second = []
    if res.get("fmax_mhz"):
        second.append(f"post-route {res['worst_path_ns']:.2f} ns worst path = {res['fmax_mhz']:.0f} MHz (Vesta)")
    if res.get("failed_nets") is not None:
        second.append(f"{res['failed_nets']} failed nets")
    if res.get("lvs_errors") is not None:
        second.append(f"LVS {res['lvs_errors']} errors" if res["lvs_errors"] else "LVS clean")
    if res.get("drc_errors") is not None:
        second.append(f"DRC {res['drc_errors']} errors (Magic, abstract cells)")
    fig.suptitle(first + "\n" + ", ".join(facts) + ("\n" + ", ".join(second) if second else ""),
                 fontsize=12, x=0.04 + plot_w / fig_w / 2, y=1 - 0.1 / fig_h, va="top")

    by_layer = figures["wire_length_by_layer_um"]

    def length(um: float) -> str:
        return f"{um / 1000:.1f} mm" if um >= 1000 else f"{um:.0f} um"

    handles = [Line2D([], [], color=_LAYER_COLOURS.get(l, "black"), lw=2.5, label=f"{l}: {length(by_layer[l])}")
               for l in by_layer]
    handles += [Patch(facecolor="#c8a400", alpha=0.4, label="power stripes"),
                Patch(facecolor="#b9d3ee", edgecolor="#6c8ebf", label="flip-flops"),
                Patch(facecolor="#d9d9d9", edgecolor="#9a9a9a", label="logic cells"),
                Patch(facecolor="#f0f0f0", edgecolor="#cccccc", label="fill cells"),
                Line2D([], [], color="k", marker="^", ls="none", ms=5, label="I/O pins")]
    fig.legend(handles=handles, loc=legend_loc, bbox_to_anchor=((0.04 * fig_w + plot_w + 0.45) / fig_w, legend_y),
               fontsize=9, frameon=False, title="signal routing (wire length)", title_fontsize=10, ncol=2)

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    img = Image.open(io.BytesIO(buf.getvalue())).convert("RGB")
    png_path = Path(png_path)
    png_path.parent.mkdir(parents=True, exist_ok=True)
    while True:
        out = io.BytesIO()
        img.save(out, format="PNG", optimize=True)
        if out.tell() > max_bytes:          # a 256-colour palette keeps the layer colours close
            out = io.BytesIO()
            img.quantize(colors=256, method=Image.Quantize.MEDIANCUT).save(out, format="PNG", optimize=True)
        if out.tell() <= max_bytes or img.width < 600:
            break
        img = img.resize((int(img.width * 0.85), int(img.height * 0.85)), Image.LANCZOS)
    png_path.write_bytes(out.getvalue())
    return {"png": str(png_path), "width_px": img.width, "height_px": img.height, "bytes": out.tell(),
            "def": str(def_path)}
