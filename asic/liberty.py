"""Liberty (.lib) reader: the parts of a standard-cell library that the ASIC flow uses.

:func:`read_liberty` (a path) and :func:`parse_liberty` (the text) return a
:class:`Library`: the library units, ``nom_voltage`` and, per cell, area,
``cell_leakage_power``, pins (direction, capacitance, ``function``,
``three_state``, ``internal_power`` and ``timing`` groups with their NLDM tables)
and the ``ff`` / ``latch`` groups. Values stay in the library's own units;
:attr:`Library.units` gives the SI factor of each kind of value (an internal-power
table holds energy in ``capacitive_load_unit x voltage_unit^2``, as the Liberty
reference defines it: 1 pJ for the OSU libraries).

The parser is a small one of our own (tokeniser + recursive descent over groups,
simple and complex attributes, ``/* */`` comments and backslash line
continuations). The PyPI ``liberty-parser`` reads the OSU files too, but it is
GPL-3.0 and this project is BSD-2-Clause. ``bus`` and ``bundle`` groups are
refused with an error (the OSU libraries have none); any other group or attribute
is kept in the generic tree (:attr:`Group.groups`, :attr:`Group.attributes`) and
otherwise ignored.

Tables (:class:`Table`) interpolate bilinearly on their index grid and extrapolate
linearly beyond its edges, as static-timing tools do with NLDM tables.
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["Group", "Table", "InternalPower", "Timing", "Pin", "Sequential", "Cell", "Library",
           "LibertyError", "parse_groups", "parse_liberty", "read_liberty"]


class LibertyError(ValueError):
    """A liberty file that cannot be read: the message names the line and the problem."""


# ---------------------------------------------------------------------------------------------
# Generic syntax tree


@dataclass
class Group:
    """One liberty group ``kind (args) { ... }``.

    ``attributes`` keeps every simple (``name : value ;``, value a string) and complex
    (``name (a, b) ;``, value a list of strings) attribute in file order; quotes are
    removed. ``groups`` holds the nested groups in file order.
    """
    kind: str
    args: list[str]
    attributes: list[tuple[str, object]] = field(default_factory=list)
    groups: list["Group"] = field(default_factory=list)
    line: int = 0

    def attr(self, name: str, default=None):
        """The last value of attribute ``name``, or ``default``."""
        for key, value in reversed(self.attributes):
            if key == name:
                return value
        return default

    def subgroups(self, kind: str) -> list["Group"]:
        """The nested groups of one kind, in file order."""
        return [g for g in self.groups if g.kind == kind]


_TOKEN = re.compile(r"""
    (?P<space>[ \t\r\f\v]+|\\[ \t]*\r?\n)        # blanks and backslash line continuations
  | (?P<newline>\n)
  | (?P<comment>/\*.*?\*/|//[^\n]*)
  | (?P<string>"(?:[^"\\\n]|\\.|\\\r?\n)*")
  | (?P<punct>[(){}:;,])
  | (?P<word>[^\s(){}:;,"]+)
""", re.S | re.X)


def _tokens(text: str):
    """(kind, value, line) for every token; kind is 'string', 'punct' or 'word'."""
    line = 1
    pos = 0
    end = len(text)
    match = _TOKEN.match
    while pos < end:
        m = match(text, pos)
        if m is None:
            raise LibertyError(f"line {line}: cannot read {text[pos:pos + 20]!r}")
        kind = m.lastgroup
        lexeme = m.group()
        if kind == "string":
            yield kind, re.sub(r"\\\r?\n", "", lexeme[1:-1]), line
        elif kind in ("punct", "word"):
            yield kind, lexeme, line
        if kind not in ("punct", "word"):
            line += lexeme.count("\n")
        pos = m.end()
    yield "eof", "", line


class _Parser:
    def __init__(self, text: str):
        self.toks = list(_tokens(text))
        self.i = 0

    def peek(self):
        return self.toks[min(self.i, len(self.toks) - 1)]

    def next(self):
        tok = self.toks[self.i]
        self.i += 1
        return tok

    def statements(self, group: Group, top: bool):
        """Read statements into ``group`` up to its closing brace (or the end of file at top)."""
        while True:
            kind, value, line = self.peek()
            if kind == "eof":
                if top:
                    return
                raise LibertyError(f"line {line}: end of file inside group {group.kind} "
                                   f"({', '.join(group.args)}) opened on line {group.line}")
            if value == "}" and kind == "punct":
                if top:
                    raise LibertyError(f"line {line}: unmatched '}}'")
                self.next()
                return
            if value == ";" and kind == "punct":      # stray semicolon
                self.next()
                continue
            if kind not in ("word", "string"):
                raise LibertyError(f"line {line}: expected an attribute or group name, found {value!r}")
            self.next()
            name = value
            kind2, v2, line2 = self.peek()
            if v2 == ":" and kind2 == "punct":
                self.next()
                parts = []
                while True:
                    k, v, ln = self.peek()
                    if k == "eof" or (k == "punct" and v in ";}") or (parts and ln != line2):
                        break
                    if k == "punct" and v not in ",:":
                        raise LibertyError(f"line {ln}: unexpected {v!r} in the value of {name}")
                    self.next()
                    parts.append(v)
                if not parts:
                    raise LibertyError(f"line {line2}: attribute {name} has no value")
                if self.peek()[1] == ";" and self.peek()[0] == "punct":
                    self.next()
                group.attributes.append((name, " ".join(parts)))
            elif v2 == "(" and kind2 == "punct":
                self.next()
                args = self.arguments(name, line)
                k3, v3, _ = self.peek()
                if v3 == "{" and k3 == "punct":
                    self.next()
                    if name in ("bus", "bundle"):
                        raise LibertyError(f"line {line}: {name} groups are not supported "
                                           f"(only scalar pins; the OSU libraries have none)")
                    sub = Group(name, args, line=line)
                    self.statements(sub, top=False)
                    group.groups.append(sub)
                else:
                    if v3 == ";" and k3 == "punct":
                        self.next()
                    group.attributes.append((name, args))
            else:
                raise LibertyError(f"line {line2}: expected ':' or '(' after {name!r}, found {v2!r}")

    def arguments(self, name: str, line: int) -> list[str]:
        args: list[str] = []
        current: list[str] = []
        while True:
            kind, value, ln = self.next()
            if kind == "eof":
                raise LibertyError(f"line {line}: end of file in the arguments of {name}")
            if kind == "punct" and value == ")":
                if current or args:
                    args.append(" ".join(current))
                return args
            if kind == "punct" and value == ",":
                args.append(" ".join(current))
                current = []
            elif kind == "punct" and value in "{};":
                raise LibertyError(f"line {ln}: unexpected {value!r} in the arguments of {name}")
            else:
                current.append(value)


def parse_groups(text: str) -> Group:
    """The generic syntax tree of a liberty text: its single top-level group (``library``)."""
    root = Group("<file>", [])
    _Parser(text).statements(root, top=True)
    if len(root.groups) != 1 or root.attributes:
        raise LibertyError(f"expected exactly one top-level group, found {len(root.groups)} groups "
                           f"and {len(root.attributes)} attributes")
    return root.groups[0]


# ---------------------------------------------------------------------------------------------
# Typed view


def _floats(text: str) -> list[float]:
    return [float(x) for x in re.split(r"[\s,]+", text.strip()) if x]


def _interp_axis(index: tuple[float, ...], x: float) -> tuple[int, float]:
    """Lower grid position and weight of ``x`` on ``index`` (weight outside [0, 1] extrapolates)."""
    if len(index) == 1:
        return 0, 0.0
    k = bisect.bisect_right(index, x) - 1
    k = min(max(k, 0), len(index) - 2)
    return k, (x - index[k]) / (index[k + 1] - index[k])


# Template variables that a caller gives as ``load`` or ``slew``.
_LOAD_VARIABLES = ("total_output_net_capacitance", "constrained_pin_transition_load")
_SLEW_VARIABLES = ("input_transition_time", "input_net_transition", "related_pin_transition",
                   "constrained_pin_transition")


@dataclass
class Table:
    """An NLDM look-up table: ``values[i][j]`` at ``index_1[i]``, ``index_2[j]``.

    ``variables`` are the template's ``variable_1`` / ``variable_2`` names (empty for a
    ``scalar`` table). One-dimensional tables have ``index_2 == ()`` and one value per row.
    """
    template: str
    variables: tuple[str, ...]
    index_1: tuple[float, ...]
    index_2: tuple[float, ...]
    values: tuple[tuple[float, ...], ...]

    def lookup(self, x1: float = 0.0, x2: float = 0.0) -> float:
        """The table value at (``x1``, ``x2``) on (``index_1``, ``index_2``), bilinear."""
        if not self.index_1:
            return self.values[0][0]
        i, u = _interp_axis(self.index_1, x1)
        if not self.index_2:
            row = [r[0] for r in self.values]
            if len(row) == 1:
                return row[0]
            return row[i] + u * (row[i + 1] - row[i])
        j, v = _interp_axis(self.index_2, x2)
        ii = min(i + 1, len(self.index_1) - 1)
        jj = min(j + 1, len(self.index_2) - 1)
        a, b = self.values[i][j], self.values[i][jj]
        c, d = self.values[ii][j], self.values[ii][jj]
        low = a + v * (b - a)
        high = c + v * (d - c)
        return low + u * (high - low)

    def at(self, *, load: float = 0.0, slew: float = 0.0) -> float:
        """The value at an output ``load`` and an input ``slew`` (library units), whatever
        the template's variable order; a variable the table does not have is ignored."""
        xs = []
        for var in self.variables:
            if var in _LOAD_VARIABLES:
                xs.append(load)
            elif var in _SLEW_VARIABLES:
                xs.append(slew)
            else:
                raise LibertyError(f"table of template {self.template}: variable {var} is neither "
                                   f"a load nor a slew; use Table.lookup with explicit coordinates")
        return self.lookup(*xs)


@dataclass
class InternalPower:
    """An ``internal_power`` group: energy per rising / falling transition of the pin it
    belongs to (an output: of that output, caused by ``related_pin``; an input without
    ``related_pin``: of that input itself), in the library's energy unit."""
    related_pin: str | None
    when: str | None
    rise: Table | None
    fall: Table | None

    def energy(self, *, load: float, slew: float) -> float:
        """Mean of the rise and fall energies at ``load`` and ``slew`` (a missing one counts
        as the other): the average energy of one transition when rises and falls alternate."""
        tables = [t for t in (self.rise, self.fall) if t is not None]
        if not tables:
            return 0.0
        return sum(t.at(load=load, slew=slew) for t in tables) / len(tables)


@dataclass
class Timing:
    """A ``timing`` group of a pin: arc from ``related_pin``, its type and its tables by
    name (``cell_rise``, ``rise_transition``, ``rise_constraint``, ...)."""
    related_pin: str | None
    timing_type: str | None
    timing_sense: str | None
    when: str | None
    tables: dict[str, Table]


@dataclass
class Pin:
    """A cell pin. ``capacitance`` is in the library's capacitance unit; ``function`` and
    ``three_state`` are liberty boolean expressions (or ``None``)."""
    name: str
    direction: str
    capacitance: float
    rise_capacitance: float | None
    fall_capacitance: float | None
    function: str | None
    three_state: str | None
    clock: bool
    internal_power: list[InternalPower]
    timing: list[Timing]

    def internal_energy(self, *, load: float, slew: float) -> float:
        """Average internal energy of one transition of this pin (library energy unit).

        For an output: the mean over its ``internal_power`` groups (one per related pin and
        ``when`` state, equally weighted, since which input caused a transition is not known
        from toggle counts) of the rise/fall mean at ``load`` and the related input's
        ``slew``. For an input: its own (passive) internal power at ``slew``. 0 when the
        pin has no ``internal_power`` group.
        """
        if not self.internal_power:
            return 0.0
        return sum(p.energy(load=load, slew=slew) for p in self.internal_power) / len(self.internal_power)

    def transition(self, *, load: float, slew: float) -> float | None:
        """Mean output transition time (library time unit) over the combinational and
        clock-edge arcs' ``rise_transition`` / ``fall_transition`` tables at ``load`` and
        input ``slew``; ``None`` for a pin without such tables (inputs)."""
        found = [t.tables[name].at(load=load, slew=slew)
                 for t in self.timing
                 if t.timing_type in (None, "combinational", "rising_edge", "falling_edge",
                                      "preset", "clear", "three_state_enable")
                 for name in ("rise_transition", "fall_transition") if name in t.tables]
        return sum(found) / len(found) if found else None


@dataclass
class Sequential:
    """An ``ff`` or ``latch`` group. ``state`` / ``state_n`` are its two internal variable
    names (``ff (IQ, IQN)``). A flip-flop has ``clocked_on`` and ``next_state``; a latch
    ``enable`` and ``data_in``. ``clear`` / ``preset`` are asynchronous (expressions true
    when asserted); ``clear_preset_var1/2`` give ``state`` / ``state_n`` when both are
    asserted (``L``, ``H``, ``N``, ``T``, ``X``)."""
    kind: str
    state: str
    state_n: str
    clocked_on: str | None = None
    next_state: str | None = None
    enable: str | None = None
    data_in: str | None = None
    clear: str | None = None
    preset: str | None = None
    clear_preset_var1: str | None = None
    clear_preset_var2: str | None = None


@dataclass
class Cell:
    """A library cell: ``area`` (library area unit, um^2 for the OSU libraries),
    ``leakage_power`` (``cell_leakage_power``, library leakage unit), pins by name in
    file order, and its ``ff`` / ``latch`` groups."""
    name: str
    area: float
    leakage_power: float
    pins: dict[str, Pin]
    sequential: list[Sequential]
    dont_use: bool = False

    @property
    def outputs(self) -> list[Pin]:
        """Pins that drive: ``output`` and ``inout``."""
        return [p for p in self.pins.values() if p.direction in ("output", "inout")]


_UNIT_PREFIX = {"f": 1e-15, "p": 1e-12, "n": 1e-9, "u": 1e-6, "m": 1e-3, "": 1.0}


def _unit(text: str, base: str, what: str) -> float:
    """SI factor of a unit string such as ``"1ns"``, ``"10ps"``, ``"1nW"``, ``"pf"``."""
    m = re.fullmatch(r"\s*([0-9.eE+-]*)\s*([fpnum]?)" + base + r"\s*", text, re.I)
    if m is None:
        raise LibertyError(f"cannot read the {what} {text!r}: expected a number, a prefix and {base}")
    scale = float(m.group(1)) if m.group(1) else 1.0
    return scale * _UNIT_PREFIX[m.group(2).lower()]


@dataclass
class Units:
    """SI factors: a library value times the factor gives seconds, farads, volts, amperes,
    watts (leakage) or joules (internal-power table values)."""
    time_s: float
    capacitance_f: float
    voltage_v: float
    current_a: float
    leakage_power_w: float

    @property
    def energy_j(self) -> float:
        """Unit of internal-power table values: capacitance unit x voltage unit^2."""
        return self.capacitance_f * self.voltage_v ** 2


@dataclass
class Library:
    """A parsed liberty library. ``nom_voltage`` is in the voltage unit."""
    name: str
    units: Units
    nom_voltage: float
    cells: dict[str, Cell]
    tree: Group

    def cell(self, name: str) -> Cell:
        """The cell ``name``; ``KeyError`` naming the library and the known cells otherwise."""
        try:
            return self.cells[name]
        except KeyError:
            raise KeyError(f"cell {name!r} is not in liberty library {self.name} "
                           f"(it has {', '.join(sorted(self.cells))})") from None


def _table(group: Group, templates: dict[str, Group]) -> Table:
    template_name = group.args[0] if group.args else "scalar"
    template = templates.get(template_name)
    if template is None and template_name != "scalar":
        raise LibertyError(f"line {group.line}: table template {template_name} is not defined")
    variables = tuple(template.attr(f"variable_{k}") for k in (1, 2, 3)
                      if template is not None and template.attr(f"variable_{k}") is not None)
    if len(variables) > 2:
        raise LibertyError(f"line {group.line}: 3-D table {template_name} is not supported")

    def index(k):
        value = group.attr(f"index_{k}")
        if value is None and template is not None:
            value = template.attr(f"index_{k}")
        return tuple(_floats(value[0])) if value else ()

    index_1, index_2 = index(1), index(2)
    raw = group.attr("values")
    if raw is None:
        raise LibertyError(f"line {group.line}: table {group.kind} has no values")
    rows = [tuple(_floats(r)) for r in raw]
    if len(variables) == 1 and len(rows) == 1 and len(rows[0]) == len(index_1) > 1:
        rows = [(x,) for x in rows[0]]                    # 1-D tables are written as one row
    if index_1 and len(rows) != len(index_1):
        raise LibertyError(f"line {group.line}: table {group.kind} has {len(rows)} rows for "
                           f"{len(index_1)} index_1 entries")
    if index_2 and any(len(r) != len(index_2) for r in rows):
        raise LibertyError(f"line {group.line}: table {group.kind} rows do not match index_2")
    return Table(template_name, variables, index_1, index_2, tuple(rows))


def _unquote(value):
    return value if value is None else str(value).strip()


def _pin(group: Group, templates: dict[str, Group]) -> Pin:
    powers = []
    for g in group.subgroups("internal_power"):
        rise = [_table(t, templates) for t in g.subgroups("rise_power")]
        fall = [_table(t, templates) for t in g.subgroups("fall_power")]
        power = g.subgroups("power")                      # a single table for both directions
        if power and not rise and not fall:
            rise = fall = [_table(power[0], templates)]
        powers.append(InternalPower(_unquote(g.attr("related_pin")), _unquote(g.attr("when")),
                                    rise[0] if rise else None, fall[0] if fall else None))
    timings = []
    for g in group.subgroups("timing"):
        timings.append(Timing(_unquote(g.attr("related_pin")), g.attr("timing_type"),
                              g.attr("timing_sense"), _unquote(g.attr("when")),
                              {t.kind: _table(t, templates) for t in g.groups
                               if t.attr("values") is not None}))

    def number(name):
        value = group.attr(name)
        return None if value is None else float(value)

    direction = group.attr("direction")
    if direction is None:
        raise LibertyError(f"line {group.line}: pin {group.args[0]} has no direction")
    return Pin(name=group.args[0], direction=direction,
               capacitance=number("capacitance") or 0.0,
               rise_capacitance=number("rise_capacitance"), fall_capacitance=number("fall_capacitance"),
               function=_unquote(group.attr("function")), three_state=_unquote(group.attr("three_state")),
               clock=group.attr("clock") == "true", internal_power=powers, timing=timings)


def _cell(group: Group, templates: dict[str, Group]) -> Cell:
    pins: dict[str, Pin] = {}
    for g in group.subgroups("pin"):
        for name in g.args:                               # pin (A, B) { ... } declares several
            pin = _pin(Group(g.kind, [name], g.attributes, g.groups, g.line), templates)
            pins[name] = pin
    sequential = []
    for kind in ("ff", "latch"):
        for g in group.subgroups(kind):
            if len(g.args) != 2:
                raise LibertyError(f"line {g.line}: {kind} group of cell {group.args[0]} needs two "
                                   f"state names, found {g.args}")
            sequential.append(Sequential(
                kind, g.args[0].strip(), g.args[1].strip(),
                clocked_on=_unquote(g.attr("clocked_on")), next_state=_unquote(g.attr("next_state")),
                enable=_unquote(g.attr("enable")), data_in=_unquote(g.attr("data_in")),
                clear=_unquote(g.attr("clear")), preset=_unquote(g.attr("preset")),
                clear_preset_var1=g.attr("clear_preset_var1"), clear_preset_var2=g.attr("clear_preset_var2")))
    for kind in ("ff_bank", "latch_bank", "statetable"):
        if group.subgroups(kind):
            raise LibertyError(f"line {group.line}: cell {group.args[0]} has a {kind} group, which "
                               f"is not supported")
    return Cell(name=group.args[0], area=float(group.attr("area", 0.0)),
                leakage_power=float(group.attr("cell_leakage_power", 0.0)),
                pins=pins, sequential=sequential, dont_use=group.attr("dont_use") == "true")


def parse_liberty(text: str) -> Library:
    """Parse liberty ``text`` into a :class:`Library` (see the module docstring)."""
    tree = parse_groups(text)
    if tree.kind != "library":
        raise LibertyError(f"the top-level group is {tree.kind!r}, expected 'library'")
    templates = {g.args[0]: g for g in tree.groups
                 if g.kind in ("lu_table_template", "power_lut_template") and g.args}
    cap = tree.attr("capacitive_load_unit")
    if cap is None:
        raise LibertyError("the library has no capacitive_load_unit")
    units = Units(
        time_s=_unit(tree.attr("time_unit", "1ns"), "s", "time_unit"),
        capacitance_f=float(cap[0]) * _unit(cap[1], "f", "capacitive_load_unit"),
        voltage_v=_unit(tree.attr("voltage_unit", "1V"), "v", "voltage_unit"),
        current_a=_unit(tree.attr("current_unit", "1mA"), "a", "current_unit"),
        leakage_power_w=_unit(tree.attr("leakage_power_unit", "1nW"), "w", "leakage_power_unit"))
    nominal = tree.attr("nom_voltage")
    if nominal is None:
        raise LibertyError("the library has no nom_voltage")
    cells = {}
    for g in tree.subgroups("cell"):
        cell = _cell(g, templates)
        cells[cell.name] = cell
    return Library(name=tree.args[0] if tree.args else "", units=units, nom_voltage=float(nominal),
                   cells=cells, tree=tree)


def read_liberty(path) -> Library:
    """Read and parse the liberty file at ``path``."""
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise FileNotFoundError(f"liberty file {path} does not exist; the OSU libraries come with "
                                f"`apt-get install qflow-tech-osu018` (osu035, osu050)") from None
    try:
        return parse_liberty(text)
    except LibertyError as e:
        raise LibertyError(f"{path}: {e}") from None
