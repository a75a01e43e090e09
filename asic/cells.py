"""Synthesizable Verilog models of standard cells, generated from their liberty description.

The vendor cell models (``osu018_stdcells.v``) are built from UDPs with ``specify``
blocks, which Verilator cannot run. :func:`cell_models_verilog` writes one plain
Verilog module per liberty cell instead, so that a gate-level netlist
(``write_verilog -noattr -noexpr``) simulates in Verilator and Icarus:

- combinational outputs: ``assign`` of the pin's liberty ``function``
  (:func:`liberty_to_verilog`: ``!`` and postfix ``'`` invert, ``^`` xor, ``*``, ``&``
  and juxtaposition and, ``+`` and ``|`` or, in that order of precedence; ``0``/``1``);
- an output with ``three_state``: ``assign Y = three_state ? 1'bz : function``
  (TBUFX1/2, the pads), exactly the liberty behaviour; synthesis does not use these
  cells, and a tristate net is simulated by Verilator only where it is resolvable;
- ``ff`` groups: one ``always`` block on the ``clocked_on`` edge (``CLK`` posedge,
  ``!CLK`` negedge, an expression through a wire), with the asynchronous ``clear`` /
  ``preset`` in the sensitivity list on their asserting edge; when both are asserted
  ``clear_preset_var1`` decides (``L``, or ``X`` refined to ``L``: clear wins; ``H``: preset
  wins). One behaviour differs from the vendor's level-sensitive UDP: if clear and
  preset are asserted together and one is then released while the other stays
  asserted, the vendor model switches to the remaining one at once, this model at the
  next clock edge. Only DFFSR has both, and only with both asserted at once;
- ``latch`` groups: ``always_latch`` (transparent while ``enable``), with clear/preset;
- cells without pins (the OSU pad fillers) and ``empty_cells`` (``FILL``, which the OSU
  Verilog has and the liberty has not) as empty modules.

The text is ``verilator --lint-only -Wall`` clean; it brackets itself in
``lint_off DECLFILENAME`` / ``lint_on`` since one file holds every cell, and in
``coverage_off`` / ``coverage_on``: toggle coverage of the netlist's own wires
counts every net (:mod:`eie.asic.activity`), the cell pins would only repeat them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .liberty import Cell, Library, Sequential

__all__ = ["parse_function", "liberty_to_verilog", "cell_model_verilog", "cell_models_verilog"]


class FunctionError(ValueError):
    """A liberty boolean expression that cannot be read."""


@dataclass(frozen=True)
class _Var:
    name: str


@dataclass(frozen=True)
class _Const:
    value: int


@dataclass(frozen=True)
class _Not:
    arg: object


@dataclass(frozen=True)
class _Op:
    op: str             # "&", "|", "^"
    args: tuple


_FTOKEN = re.compile(r"\s*(?:(?P<name>[A-Za-z_][A-Za-z0-9_]*)|(?P<const>[01])|(?P<op>[!'^*&+|()]))")


def _ftokens(text: str) -> list[str]:
    out, pos = [], 0
    text = text.strip()
    while pos < len(text):
        m = _FTOKEN.match(text, pos)
        if m is None or m.end() == pos:
            raise FunctionError(f"cannot read liberty function {text!r} at {text[pos:]!r}")
        out.append(m.group().strip())
        pos = m.end()
    return out


def parse_function(text: str):
    """Parse a liberty boolean expression into a small tree (``_Var``, ``_Const``,
    ``_Not``, ``_Op``). Precedence, highest first: ``!`` / ``'``, ``^``, and (``*``, ``&``,
    juxtaposition), or (``+``, ``|``); operators of one level group left to right."""
    toks = _ftokens(text)
    pos = 0

    def peek():
        return toks[pos] if pos < len(toks) else None

    def take():
        nonlocal pos
        if pos == len(toks):
            raise FunctionError(f"liberty function {text!r} ends early")
        pos += 1
        return toks[pos - 1]

    def starts_primary(tok):
        return tok is not None and (tok in ("!", "(") or tok[0].isalnum() or tok[0] == "_")

    def unary():
        tok = peek()
        if tok == "!":
            take()
            return _Not(unary())
        if tok == "(":
            take()
            node = orexpr()
            if take() != ")":
                raise FunctionError(f"missing ')' in liberty function {text!r}")
        elif tok is not None and tok in "01":
            node = _Const(int(take()))
        elif tok is not None and (tok[0].isalpha() or tok[0] == "_"):
            node = _Var(take())
        else:
            raise FunctionError(f"unexpected {tok!r} in liberty function {text!r}")
        while peek() == "'":
            take()
            node = _Not(node)
        return node

    def xorexpr():
        node = unary()
        while peek() == "^":
            take()
            node = _Op("^", (node, unary()))
        return node

    def andexpr():
        node = xorexpr()
        while peek() in ("*", "&") or starts_primary(peek()):
            if peek() in ("*", "&"):
                take()
            node = _Op("&", (node, xorexpr()))
        return node

    def orexpr():
        node = andexpr()
        while peek() in ("+", "|"):
            take()
            node = _Op("|", (node, andexpr()))
        return node

    if not toks:
        raise FunctionError("empty liberty function")
    tree = orexpr()
    if pos != len(toks):
        raise FunctionError(f"unexpected {toks[pos]!r} in liberty function {text!r}")
    return tree


def _verilog(node) -> str:
    if isinstance(node, _Var):
        return node.name
    if isinstance(node, _Const):
        return f"1'b{node.value}"
    if isinstance(node, _Not):
        return f"~{_verilog(node.arg)}"
    return "(" + f" {node.op} ".join(_verilog(a) for a in node.args) + ")"


def _variables(node) -> set[str]:
    if isinstance(node, _Var):
        return {node.name}
    if isinstance(node, _Const):
        return set()
    if isinstance(node, _Not):
        return _variables(node.arg)
    return set().union(*(_variables(a) for a in node.args))


def liberty_to_verilog(text: str) -> str:
    """The Verilog expression of liberty function ``text`` (variables keep their names)."""
    return _verilog(parse_function(text))


def _edge(text: str, cell: str, what: str, wires: list[str], wire_name: str) -> tuple[str, str]:
    """(sensitivity item, Verilog condition true when asserted) of a liberty clock or
    asynchronous-control expression; a compound one goes through a new wire."""
    node = parse_function(text)
    if isinstance(node, _Var):
        return f"posedge {node.name}", node.name
    if isinstance(node, _Not) and isinstance(node.arg, _Var):
        return f"negedge {node.arg.name}", f"!{node.arg.name}"
    wires.append(f"  wire {wire_name} = {_verilog(node)};  // {what} of {cell}: {text}")
    return f"posedge {wire_name}", wire_name


def _clear_first(seq: Sequential, cell: str) -> bool:
    var1 = (seq.clear_preset_var1 or "L").upper()
    if var1 in ("L", "X"):
        return True
    if var1 == "H":
        return False
    raise NotImplementedError(f"cell {cell}: clear_preset_var1 {var1} (state kept or toggled when "
                              f"clear and preset are both asserted) is not modelled")


def _sequential(cell: Cell, seq: Sequential, body: list[str], wires: list[str], need_n: bool) -> None:
    state = seq.state
    controls = []          # (condition, value) in priority order
    sens = []
    if seq.clear and seq.preset:
        clr_edge, clr = _edge(seq.clear, cell.name, "clear", wires, f"{state}_clear")
        pre_edge, pre = _edge(seq.preset, cell.name, "preset", wires, f"{state}_preset")
        order = [(clr, "1'b0"), (pre, "1'b1")]
        controls = order if _clear_first(seq, cell.name) else order[::-1]
        sens = [clr_edge, pre_edge]
    elif seq.clear:
        clr_edge, clr = _edge(seq.clear, cell.name, "clear", wires, f"{state}_clear")
        controls, sens = [(clr, "1'b0")], [clr_edge]
    elif seq.preset:
        pre_edge, pre = _edge(seq.preset, cell.name, "preset", wires, f"{state}_preset")
        controls, sens = [(pre, "1'b1")], [pre_edge]
    body.append(f"  reg {state};")
    if seq.kind == "ff":
        if not (seq.clocked_on and seq.next_state):
            raise ValueError(f"cell {cell.name}: ff group without clocked_on or next_state")
        clk_edge, _ = _edge(seq.clocked_on, cell.name, "clock", wires, f"{state}_clock")
        data = liberty_to_verilog(seq.next_state)
        body.append(f"  always @({' or '.join([clk_edge] + sens)})")
        assign = "<="
        last = f"{state} {assign} {data};"
    else:
        if not (seq.enable and seq.data_in):
            raise ValueError(f"cell {cell.name}: latch group without enable or data_in")
        body.append("  always_latch")
        assign = "="
        last = f"if ({liberty_to_verilog(seq.enable)}) {state} {assign} {liberty_to_verilog(seq.data_in)};"
    if not controls:
        body.append(f"    {last}")
    else:
        for k, (cond, value) in enumerate(controls):
            body.append(f"    {'if' if k == 0 else 'else if'} ({cond}) {state} {assign} {value};")
        body.append(f"    else {last}")
    if not need_n:
        return
    var2 = (seq.clear_preset_var2 or "").upper()
    var1 = (seq.clear_preset_var1 or "L").upper()
    if seq.clear and seq.preset and var2 and var2 != {"L": "H", "H": "L", "X": "X"}.get(var1):
        if var2 not in ("L", "H"):
            raise NotImplementedError(f"cell {cell.name}: clear_preset_var2 {var2} is not modelled")
        both = f"({controls[0][0]} && {controls[1][0]})"
        body.append(f"  wire {seq.state_n} = {both} ? 1'b{int(var2 == 'H')} : ~{state};")
    else:
        body.append(f"  wire {seq.state_n} = ~{state};")


def cell_model_verilog(cell: Cell) -> str:
    """The Verilog module of one liberty cell (see the module docstring)."""
    ports = list(cell.pins.values())
    body: list[str] = []
    wires: list[str] = []
    lines = [f"module {cell.name} ({', '.join(p.name for p in ports)});"]
    for p in ports:
        if p.direction not in ("input", "output", "inout"):
            raise ValueError(f"cell {cell.name}: pin {p.name} has direction {p.direction!r}")
        lines.append(f"  {p.direction} {p.name};")
    used = set()            # variables read anywhere: a state complement only if used (lint)
    for text in [p.function for p in cell.outputs] + [
            t for s in cell.sequential for t in (s.next_state, s.data_in, s.clocked_on, s.enable,
                                                 s.clear, s.preset)]:
        if text:
            used |= _variables(parse_function(text))
    for seq in cell.sequential:
        _sequential(cell, seq, body, wires, need_n=seq.state_n in used)
    for p in cell.outputs:
        if p.function is None:
            if p.direction == "inout":
                continue
            raise ValueError(f"cell {cell.name}: output {p.name} has no function; it cannot be modelled")
        value = liberty_to_verilog(p.function)
        if p.three_state:
            value = f"{liberty_to_verilog(p.three_state)} ? 1'bz : {value}"
        body.append(f"  assign {p.name} = {value};")
    return "\n".join(lines + wires + body + ["endmodule", ""])


def cell_models_verilog(lib: Library, *, empty_cells=("FILL",)) -> str:
    """Verilog models of every cell of ``lib`` (one module each, named as the cell), plus
    an empty module for each name in ``empty_cells`` that the library lacks."""
    out = [f"// Cell models of liberty library {lib.name}, generated by eie.asic.cells from the",
           "// liberty functions (see its docstring): synthesizable, for Verilator and Icarus.",
           "// One file holds every cell, so module names cannot match the file name:",
           "/* verilator lint_off DECLFILENAME */",
           "// A cell's pins are the netlist's nets, whose own wires Verilator's toggle coverage",
           "// counts; counting them again here would only slow the simulation down:",
           "/* verilator coverage_off */", ""]
    for cell in lib.cells.values():
        out.append(cell_model_verilog(cell))
    for name in empty_cells:
        if name not in lib.cells:
            out.append(f"module {name} ();\nendmodule\n")
    out.append("/* verilator coverage_on */")
    out.append("/* verilator lint_on DECLFILENAME */")
    return "\n".join(out) + "\n"
