"""Power and energy of a gate-level netlist from its simulated activity.

:func:`power_report` combines a yosys netlist (``write_json`` of the hierarchical
netlist), its liberty (:class:`eie.asic.liberty.Library`), toggle counts per net
(:mod:`eie.asic.activity`) and SRAM macro access counts into energies grouped by
component:

- switching: each net toggle costs ``0.5 C V^2``, ``V`` the liberty ``nom_voltage`` and
  ``C`` the net's load: the input-pin ``capacitance`` of every cell pin on it, plus a
  wire-load estimate of ``wire_cap_pf_per_fanout`` per connected input pin (default
  2 fF: about 16 um of metal2 at the osu018 LEF's 0.126 fF/um, 0.019 fF/um^2 x 0.3 um
  plus 2 x 0.06 fF/um of edge), plus ``output_load_pf`` on nets that leave the top;
  attributed to the driving cell's group;
- internal: each toggle of a cell output costs that pin's ``internal_power`` energy at
  the net's load (the mean of rise and fall, over the pin's related-pin arcs equally),
  at the related input's slew; a slew is the driving pin's mean transition time at its
  load (``rise/fall_transition`` tables) for an input slew of ``input_slew_ns``, which
  is also the slew of the top-level inputs and of macro outputs. Each toggle of a cell
  input with an ``internal_power`` group (a flip-flop's clock and data) costs that
  energy at the input's slew;
- leakage: ``cell_leakage_power`` of every cell over the whole window
  (``cycles x clock_period_ns``);
- SRAM macros (black-box instances, type not in the liberty): reads and writes times
  the caller's per-access energies, plus the macro leakage over the window; their
  input pins count as wire load only.

Names. Toggle names are ``.``-separated hierarchical bit names (see
:mod:`eie.asic.activity`); they are matched, below the netlist top's instance (found
by itself, or ``scope``), to every alias of a net: each module instance's
``netnames`` (``u0.s[3]``; a one-bit vector with offset ``k`` is ``x[k]``) and each
leaf cell's pins (``u0._29_.Y``); the largest count among a net's aliases is used.
Names inside a leaf cell or macro that are not its pins (a cell model's state) are
ignored; any other unknown name is an error, and so is a driven net without any
count (unless ``allow_missing``), since both mean the names do not match. The
simulated Verilog and the JSON must therefore carry the same names: write both after
yosys ``rename -enumerate`` (``write_verilog`` otherwise renames yosys' private
``$abc$...`` objects to ``_123_`` on its own).

Instance paths given to ``group_of`` and used as keys of ``sram_accesses`` and
``sram_energy`` are ``/``-separated from the top, like
:func:`eie.asic.synth.instance_tree` (``array/pe0/spmat``; the top is ``""``):
``group_of`` receives the path of the module instance that holds a cell (a macro's
own path for a macro).

Energies are in pJ, power in mW (``_pj``, ``_mw`` keys); pJ per ns is mW.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from .liberty import Library

__all__ = ["LeafCell", "FlatNetlist", "flatten", "power_report", "WIRE_CAP_PF_PER_FANOUT", "INPUT_SLEW_NS"]

WIRE_CAP_PF_PER_FANOUT = 0.002
INPUT_SLEW_NS = 0.1


@dataclass
class LeafCell:
    """A standard cell or macro instance: ``path`` of the module instance holding it
    (``/``-separated), its ``name`` there, ``type``, per pin the net ids of its bits
    (``None`` for a constant bit), and for a macro its pin directions (from the
    black-box module's ports)."""
    path: str
    name: str
    type: str
    pins: dict[str, list[int | None]]
    macro: bool
    directions: dict[str, str] = field(default_factory=dict)

    @property
    def instance_path(self) -> str:
        """``/``-separated path of the cell itself."""
        return f"{self.path}/{self.name}" if self.path else self.name


@dataclass
class FlatNetlist:
    """A hierarchical netlist with its nets numbered across the hierarchy.

    ``names`` maps every ``.``-separated bit-level alias below the top instance (module
    netnames and leaf-cell pins) to its net id, ``constants`` holds the aliases of
    constant bits; ``leaf_scopes`` holds the dotted paths of
    leaf cells and macros; ``inputs`` / ``outputs`` the net ids of top-level ports;
    ``module_paths`` the dotted and ``/`` paths of every module instance."""
    top: str
    n_nets: int
    cells: list[LeafCell]
    names: dict[str, int]
    constants: set[str]
    leaf_scopes: set[str]
    inputs: set[int]
    outputs: set[int]
    top_names: set[str] = field(default_factory=set)


def _bit_names(name: str, info: dict) -> list[str]:
    """Bit-level names of a yosys JSON netname, in ``bits`` order (LSB first)."""
    bits = info["bits"]
    offset = int(info.get("offset", 0))
    if len(bits) == 1:
        if name.endswith("]") or offset == 0:
            return [name]
        return [f"{name}[{offset}]"]
    width = len(bits)
    if info.get("upto"):
        return [f"{name}[{offset + width - 1 - i}]" for i in range(width)]
    return [f"{name}[{offset + i}]" for i in range(width)]


def _clean(name: str) -> str:
    return name[1:] if name.startswith("\\") else name


def _flag(attributes: dict, name: str) -> bool:
    """A yosys JSON boolean attribute (written as a binary string such as ``"000...1"``)."""
    value = str(attributes.get(name, "0"))
    return "1" in value if set(value) <= {"0", "1"} else bool(value)


def _top_module(modules: dict, top: str | None) -> str:
    if top is not None:
        if top not in modules:
            raise ValueError(f"module {top!r} is not in the netlist (modules: {', '.join(sorted(modules))})")
        return top
    tops = [m for m, d in modules.items() if _flag(d.get("attributes", {}), "top")]
    if len(tops) != 1:
        raise ValueError(f"the netlist marks {len(tops)} modules as top ({', '.join(tops)}); pass top=")
    return tops[0]


def flatten(netlist_json, lib: Library, *, top: str | None = None) -> FlatNetlist:
    """Number the nets of a yosys JSON netlist (a path, or the loaded dict) across its
    hierarchy. Cell types are liberty cells, netlist modules (descended into) or black
    boxes (modules with the ``blackbox`` attribute, or no contents: macros)."""
    data = netlist_json if isinstance(netlist_json, dict) else json.loads(Path(netlist_json).read_text())
    modules = data["modules"]
    top = _top_module(modules, top)

    def is_blackbox(kind):
        d = modules[kind]
        return _flag(d.get("attributes", {}), "blackbox") or not (d.get("cells") or d.get("netnames"))

    count = 0
    cells: list[LeafCell] = []
    names: dict[str, int] = {}
    constants: set[str] = set()
    leaf_scopes: set[str] = set()

    def fresh():
        nonlocal count
        count += 1
        return count - 1

    stack = [(top, "", "", {})]        # module, / path, dotted path, port bit -> net id
    top_local = None
    while stack:
        module, path, dotted, bound = stack.pop()
        mod = modules[module]
        local: dict[int, int | None] = dict(bound)

        def net(bit):
            if isinstance(bit, str):       # "0", "1", "x", "z"
                return None
            if bit not in local:
                local[bit] = fresh()
            return local[bit]

        for name, info in mod.get("netnames", {}).items():
            if info.get("hide_name"):             # a private $-name: never in a simulation
                continue
            for bit_name, bit in zip(_bit_names(_clean(name), info), info["bits"]):
                gid = net(bit)
                full = f"{dotted}.{bit_name}" if dotted else bit_name
                if gid is None:
                    constants.add(full)
                    continue
                names[full] = gid
                if len(info["bits"]) == 1 and not bit_name.endswith("]"):
                    names.setdefault(full + "[0]", gid)
        for cname, cell in mod.get("cells", {}).items():
            cname = _clean(cname)
            kind = cell["type"]
            if kind == "$scopeinfo":          # yosys' record of a flattened scope: no logic
                continue
            conns = {pin: [net(b) for b in bits] for pin, bits in cell.get("connections", {}).items()}
            cdotted = f"{dotted}.{cname}" if dotted else cname
            cpath = f"{path}/{cname}" if path else cname
            if kind in lib.cells or (kind in modules and is_blackbox(kind)):
                macro = kind not in lib.cells
                directions = {port: p["direction"] for port, p in modules[kind]["ports"].items()} if macro else {}
                cells.append(LeafCell(path, cname, kind, conns, macro, directions))
                leaf_scopes.add(cdotted)
                for pin, gids in conns.items():
                    for i, gid in enumerate(gids):
                        full = f"{cdotted}.{pin}" if len(gids) == 1 else f"{cdotted}.{pin}[{i}]"
                        if gid is None:
                            constants.add(full)
                        else:
                            names[full] = gid
            elif kind in modules:
                sub = modules[kind]
                sub_bound = {}
                for port, pinfo in sub.get("ports", {}).items():
                    for b, gid in zip(pinfo["bits"], conns.get(port, [])):
                        if not isinstance(b, str):
                            sub_bound[b] = gid
                stack.append((kind, cpath, cdotted, sub_bound))
            else:
                raise ValueError(f"cell {cpath} has type {kind!r}, neither a cell of liberty {lib.name} nor a "
                                 f"module of the netlist; synthesise to this library or add the macro's stub")
        if module == top and not path:
            top_local = (mod, local)
    mod, local = top_local
    inputs, outputs = set(), set()
    for port, pinfo in mod.get("ports", {}).items():
        for b in pinfo["bits"]:
            if isinstance(b, str):
                continue
            if pinfo["direction"] in ("input", "inout"):
                inputs.add(local[b])
            if pinfo["direction"] in ("output", "inout"):
                outputs.add(local[b])
    top_names = {n for n in names if "." not in n}
    return FlatNetlist(top, count, cells, names, constants, leaf_scopes, inputs, outputs, top_names)


def _find_scope(flat: FlatNetlist, toggles: dict) -> str:
    """The dotted prefix of the netlist top's instance among the toggle names: the one
    under which most top-level net names appear (deepest on a tie); ``""`` when the
    names are already relative."""
    hits: dict[str, int] = defaultdict(int)
    for key in toggles:
        head, _, last = key.rpartition(".")
        if last in flat.top_names:
            hits[head] += 1
    if not hits:
        raise ValueError("no toggle name ends in a net name of the netlist's top module; the activity does "
                         "not belong to this netlist (or the names differ: write the Verilog and the JSON "
                         "after yosys `rename -enumerate`)")
    return max(hits, key=lambda h: (hits[h], h.count(".") + (h != ""), len(h)))


def _get(obj, key):
    if isinstance(obj, dict):
        return obj[key]
    return getattr(obj, key)


def power_report(netlist_json, lib: Library, toggles: dict, *, cycles: int, clock_period_ns: float,
                 group_of=lambda path: "all", sram_accesses: dict | None = None, sram_energy: dict | None = None,
                 scope: str | None = None, top: str | None = None,
                 wire_cap_pf_per_fanout: float = WIRE_CAP_PF_PER_FANOUT, input_slew_ns: float = INPUT_SLEW_NS,
                 output_load_pf: float = 0.0, allow_missing: bool = False) -> dict:
    """Energy and power of ``netlist_json`` over a simulated window (module docstring).

    ``toggles``: ``{name: toggles}`` of the window; ``cycles`` clock cycles of
    ``clock_period_ns`` long; ``group_of(path)`` names the group of a module instance
    or macro path; ``sram_accesses``: ``{macro path: (reads, writes)}``;
    ``sram_energy``: ``{macro path: figures}`` with ``read_energy_pj``,
    ``write_energy_pj`` and ``leakage_uw`` (attributes or keys); ``scope``: the dotted
    prefix of the top instance in the toggle names (found by itself when ``None``).

    Returns ``energy_pj`` (window), ``energy_per_cycle_pj``, ``power_mw`` (at the
    clock), the same split into ``switching_pj``, ``internal_pj``, ``leakage_pj``,
    ``sram_access_pj``, ``sram_leakage_pj`` (and ``leakage_uw``), ``groups`` (the same
    keys per group, plus ``cells`` and ``macros``), ``activity`` (how the names matched)
    and ``assumptions``.
    """
    if cycles <= 0 or clock_period_ns <= 0:
        raise ValueError(f"cycles ({cycles}) and clock_period_ns ({clock_period_ns}) must be positive")
    flat = flatten(netlist_json, lib, top=top)
    units = lib.units
    cap_lib_per_pf = 1e-12 / units.capacitance_f          # library capacitance units per pF
    slew_lib = input_slew_ns * 1e-9 / units.time_s
    energy_pj = units.energy_j * 1e12                       # pJ per library energy unit
    vdd = lib.nom_voltage * units.voltage_v
    window_ns = cycles * clock_period_ns

    # activity per net
    if scope is None:
        scope = _find_scope(flat, toggles)
    prefix = scope + "." if scope else ""
    net_toggles = [None] * flat.n_nets
    matched = 0
    ignored = 0
    unknown = []
    for key, n in toggles.items():
        if prefix:
            if not key.startswith(prefix):
                continue
            key = key[len(prefix):]
        gid = flat.names.get(key)
        if gid is None:
            if key in flat.constants:
                ignored += 1
                continue
            parts = key.split(".")
            if any(".".join(parts[:k]) in flat.leaf_scopes for k in range(1, len(parts))):
                ignored += 1           # a cell model's or macro model's own signal
            else:
                unknown.append(key)
            continue
        matched += 1
        if net_toggles[gid] is None or n > net_toggles[gid]:
            net_toggles[gid] = n
    if unknown:
        raise ValueError(f"{len(unknown)} toggle names below {scope or 'the top'!r} are not nets of the netlist "
                         f"(e.g. {', '.join(sorted(unknown)[:5])}); the simulated Verilog and the JSON must come "
                         f"from the same netlist with the same names (yosys `rename -enumerate` before both "
                         f"write_verilog and write_json)")

    # loads, drivers
    lib_cells = lib.cells
    load = [0.0] * flat.n_nets          # library capacitance units
    fanout = [0] * flat.n_nets
    driver: list[tuple[LeafCell, str] | None] = [None] * flat.n_nets
    for cell in flat.cells:
        lc = lib_cells.get(cell.type)
        for pin, gids in cell.pins.items():
            if lc is None:
                direction = cell.directions.get(pin)
                if direction is None:
                    raise ValueError(f"macro {cell.instance_path} ({cell.type}) connects pin {pin}, which its "
                                     f"black-box module does not declare")
                lpin = None
            else:
                lpin = lc.pins.get(pin)
                if lpin is None:
                    raise ValueError(f"cell {cell.instance_path} ({cell.type}) connects pin {pin}, which "
                                     f"liberty {lib.name} does not have")
                direction = lpin.direction
            for gid in gids:
                if gid is None:
                    continue
                if direction in ("input", "inout"):
                    fanout[gid] += 1
                    if lpin is not None:
                        load[gid] += lpin.capacitance
                if direction in ("output", "inout"):
                    driver[gid] = (cell, pin)
    for gid in flat.outputs:
        load[gid] += output_load_pf * cap_lib_per_pf
    for gid in range(flat.n_nets):
        load[gid] += wire_cap_pf_per_fanout * cap_lib_per_pf * fanout[gid]

    driven = [gid for gid in range(flat.n_nets) if driver[gid] is not None or gid in flat.inputs]
    missing = [gid for gid in driven if net_toggles[gid] is None]
    if missing and not allow_missing:
        by_id = {}
        for name, gid in flat.names.items():
            by_id.setdefault(gid, name)
        examples = sorted(by_id.get(g, f"<net {g}>") for g in missing[:200])[:5]
        raise ValueError(f"{len(missing)} of {len(driven)} driven nets have no toggle count (e.g. "
                         f"{', '.join(examples)}); trace them (Verilator: --trace-underscore, or "
                         f"--coverage-underscore for coverage) or pass allow_missing=True to count them as 0")

    # slews (library time units)
    slew = [slew_lib] * flat.n_nets
    for gid, d in enumerate(driver):
        if d is None or d[0].macro:
            continue
        cell, pin = d
        t = lib_cells[cell.type].pins[pin].transition(load=load[gid], slew=slew_lib)
        if t is not None:
            slew[gid] = t

    groups: dict[str, dict] = {}
    group_cache: dict[str, str] = {}

    def group(path: str) -> dict:
        name = group_cache.get(path)
        if name is None:
            name = group_cache[path] = str(group_of(path))
        g = groups.get(name)
        if g is None:
            g = groups[name] = {"switching_pj": 0.0, "internal_pj": 0.0, "leakage_pj": 0.0, "sram_access_pj": 0.0,
                                "sram_leakage_pj": 0.0, "leakage_uw": 0.0, "cells": 0, "macros": 0}
        return g

    half_cv2 = 0.5 * vdd * vdd / cap_lib_per_pf           # pJ per toggle per library capacitance unit
    for gid in driven:
        n = net_toggles[gid] or 0
        if not n:
            continue
        d = driver[gid]
        if d is None:                                       # a top-level input
            g = group("")
        else:
            g = group(d[0].instance_path if d[0].macro else d[0].path)
        g["switching_pj"] += n * half_cv2 * load[gid]

    macros = [c for c in flat.cells if c.macro]
    if macros and (sram_accesses is None or sram_energy is None):
        raise ValueError(f"the netlist has {len(macros)} macro instances (e.g. {macros[0].instance_path}, "
                         f"{macros[0].type}); pass sram_accesses and sram_energy for them")
    macro_paths = {c.instance_path for c in macros}
    stray = sorted(set(sram_accesses or {}) - macro_paths)
    if stray:
        raise ValueError(f"sram_accesses names {len(stray)} paths that are not macro instances of the netlist "
                         f"(e.g. {', '.join(stray[:3])}; macros: {', '.join(sorted(macro_paths)[:3])}): "
                         f"paths are /-separated below the top")
    window_s = window_ns * 1e-9
    for cell in flat.cells:
        if cell.macro:
            path = cell.instance_path
            if path not in sram_accesses or path not in sram_energy:
                raise ValueError(f"macro {path} ({cell.type}) has no entry in "
                                 f"{'sram_accesses' if path not in sram_accesses else 'sram_energy'}")
            reads, writes = sram_accesses[path]
            fig = sram_energy[path]
            g = group(path)
            g["macros"] += 1
            g["sram_access_pj"] += reads * _get(fig, "read_energy_pj") + writes * _get(fig, "write_energy_pj")
            g["sram_leakage_pj"] += _get(fig, "leakage_uw") * 1e-6 * window_s * 1e12
            g["leakage_uw"] += _get(fig, "leakage_uw")
            continue
        lc = lib_cells[cell.type]
        g = group(cell.path)
        g["cells"] += 1
        leak_w = lc.leakage_power * units.leakage_power_w
        g["leakage_uw"] += leak_w * 1e6
        g["leakage_pj"] += leak_w * window_s * 1e12
        internal = 0.0
        for pin, gids in cell.pins.items():
            gid = gids[0] if gids else None
            if gid is None or not net_toggles[gid]:
                continue
            lpin = lc.pins[pin]
            if not lpin.internal_power:
                continue
            if lpin.direction == "input":
                e = sum(p.energy(load=0.0, slew=slew[gid]) for p in lpin.internal_power) / len(lpin.internal_power)
            else:
                e = 0.0
                for p in lpin.internal_power:
                    rel = cell.pins.get(p.related_pin) if p.related_pin else None
                    rel_slew = slew[rel[0]] if rel and rel[0] is not None else slew_lib
                    e += p.energy(load=load[gid], slew=rel_slew)
                e /= len(lpin.internal_power)
            internal += net_toggles[gid] * e
        g["internal_pj"] += internal * energy_pj

    def finish(d: dict) -> dict:
        d["energy_pj"] = (d["switching_pj"] + d["internal_pj"] + d["leakage_pj"] + d["sram_access_pj"]
                          + d["sram_leakage_pj"])
        d["energy_per_cycle_pj"] = d["energy_pj"] / cycles
        d["power_mw"] = d["energy_per_cycle_pj"] / clock_period_ns
        return d

    keys = ("switching_pj", "internal_pj", "leakage_pj", "sram_access_pj", "sram_leakage_pj", "leakage_uw",
            "cells", "macros")
    total = {k: sum(g[k] for g in groups.values()) for k in keys}
    report = finish(total)
    report["groups"] = {name: finish(g) for name, g in sorted(groups.items())}
    report.update({
        "cycles": cycles, "clock_period_ns": clock_period_ns, "window_ns": window_ns,
        "activity": {"scope": scope, "names_matched": matched, "names_ignored": ignored,
                     "nets": flat.n_nets, "driven_nets": len(driven), "nets_without_count": len(missing),
                     "toggles": sum(net_toggles[g] or 0 for g in driven)},
        "assumptions": {"vdd_v": vdd, "wire_cap_pf_per_fanout": wire_cap_pf_per_fanout,
                        "input_slew_ns": input_slew_ns, "output_load_pf": output_load_pf,
                        "library": lib.name},
    })
    return report
