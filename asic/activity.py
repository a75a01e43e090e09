"""Toggle counts per net from a simulation: a VCD file, a SAIF file or Verilator's toggle coverage.

All three sources give ``{name: toggles}`` with the same naming convention:

- a name is the simulator's hierarchical path, ``.``-separated from the outermost
  scope (``TOP.wrap.dut.u0._12_``, ``tb.dut.cnt.c[3]``), or relative to ``scope``
  when one is given (then names outside it are dropped);
- one entry per bit: a vector ``s[7:0]`` gives ``s[7]`` ... ``s[0]``; an escaped Verilog
  identifier loses its backslash (``\\y[0] `` -> ``y[0]``, the same spelling as bit 0 of
  a vector ``y``, as yosys' ``splitnets`` intends);
- a toggle is a 0 -> 1 or 1 -> 0 change of one bit. x and z are not values: a bit's
  toggles are the changes between its consecutive known (0/1) values, so 0 -> x -> 1
  counts one toggle, 0 -> x -> 0 none, and the initial value none. Glitches inside
  one time step are invisible to both sources (zero-delay simulation).

:func:`vcd_toggles` streams a VCD file of any size (chunks of :data:`CHUNK` bytes, one
small state per signal; lines as Verilator and Icarus write them are counted with
numpy a chunk at a time, anything else token by token; a vector's value and code must
share a line) and also returns the simulated time span.

:func:`saif_toggles` reads a SAIF file (Switching Activity Interchange Format, IEEE
1801 annex; the ``TC`` toggle count of every net, per instance), e.g. the one a
Verilator model built with ``--trace-saif --trace-underscore`` writes: like coverage
its size does not grow with the run, and Verilator's trace code is far smaller than
its coverage instrumentation (the 2-PE osu018 netlist: the model builds in about
5 minutes, against more than 30 with ``--coverage-toggle``). Verilator counts a bit's
first value as a toggle when it is 1, so the difference of two runs is what equals
the VCD's counts.

:func:`coverage_toggles` reads the ``coverage.dat`` that a Verilator model built with
``--coverage-toggle --coverage-underscore`` writes; it is much cheaper for long runs
(no waveform at all, and its size does not grow with the run). Three conditions for
its counts to be per net:

- ``--coverage-underscore``: without it Verilator leaves out every signal whose name
  starts with ``_``, i.e. all of yosys' ``_123_`` nets;
- per-instance counts: by default Verilator's coverage writer adds up the points of
  all instances of a module into one line with a wildcard hierarchy (``u*``). Run the
  model with ``--coverage-per-instance`` (an argument of cocotb's Verilator main) or
  call ``contextp->coveragep()->forcePerInstance(true)`` before writing;
  :func:`coverage_toggles` refuses a file with collapsed hierarchies;
- ``--flatten`` (inline every module) when a module has several instances: the
  counters of a module Verilator keeps as a separate class are shared by all its
  instances (seen with 5.048: the first instance gets the sum, the others 0).

Verilator's toggle coverage starts every bit from 0 and also sees the changes while the
model settles at time 0, so a bit can read one or two toggles more than in the VCD of
the same run (one if its first value is 1); the difference of two runs of different
lengths is exactly the VCD's. A VCD from Verilator needs ``--trace-underscore`` to
include the ``_123_`` nets.

Coverage names are decoded from Verilator's encoding (``__05b`` -> ``[``, ``__024`` -> ``$``).
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["VcdActivity", "vcd_toggles", "saif_toggles", "coverage_toggles", "VcdError", "SaifError",
           "CoverageError"]


class VcdError(ValueError):
    """A VCD file that cannot be read; the message says where."""


class SaifError(ValueError):
    """A SAIF file that cannot be read; the message says where."""


class CoverageError(ValueError):
    """A coverage.dat that cannot give per-net toggle counts; the message says the fix."""


@dataclass
class VcdActivity:
    """Toggles per bit-level name (module docstring), and the simulated time span:
    ``start`` / ``end`` are the first and last time stamps in units of ``timescale_s``
    seconds (``None`` for a file without time stamps)."""
    toggles: dict[str, int]
    start: int | None
    end: int | None
    timescale_s: float

    @property
    def span_s(self) -> float:
        """Simulated time from the first to the last time stamp, in seconds."""
        if self.start is None:
            return 0.0
        return (self.end - self.start) * self.timescale_s


_TIME_UNITS = {"s": 1.0, "ms": 1e-3, "us": 1e-6, "ns": 1e-9, "ps": 1e-12, "fs": 1e-15}
CHUNK = 1 << 21          # bytes (VCD) or characters (coverage) read at a time


def _timescale(text: str) -> float:
    m = re.fullmatch(r"\s*(\d+)\s*([munpf]?s)\s*", text)
    if m is None:
        raise VcdError(f"cannot read $timescale {text!r}")
    return int(m[1]) * _TIME_UNITS[m[2]]


def _bit_names(ref: str, index: str | None, width: int) -> list[str]:
    """Bit-level names of a ``$var``, most significant first (in VCD value order)."""
    if ref.startswith("\\"):
        ref = ref[1:]
    if index is None:
        if width == 1:
            return [ref]
        return [f"{ref}[{i}]" for i in range(width - 1, -1, -1)]
    m = re.fullmatch(r"\[\s*(-?\d+)\s*(?::\s*(-?\d+)\s*)?\]", index)
    if m is None:
        raise VcdError(f"cannot read the range {index!r} of $var {ref}")
    msb = int(m[1])
    lsb = int(m[2]) if m[2] is not None else msb
    step = -1 if msb >= lsb else 1
    bits = list(range(msb, lsb + step, step))
    if len(bits) != width:
        raise VcdError(f"$var {ref} {index} has width {width}, not {len(bits)}")
    return [f"{ref}[{i}]" for i in bits]


_END_DEFS = re.compile(rb"\$enddefinitions\s+\$end")


def _header(f):
    """Read the VCD header from binary file ``f``: ({code: [bit names of each $var]},
    {code: width}, timescale in seconds, the bytes of the body read with it)."""
    buf = b""
    while (m := _END_DEFS.search(buf)) is None:
        more = f.read(1 << 20)
        if not more:
            raise VcdError("the VCD file ends inside its header (no $enddefinitions $end)")
        buf += more
    tokens = iter(buf[:m.start()].split())
    vars_: dict[bytes, list[list[str]]] = defaultdict(list)
    widths: dict[bytes, int] = {}
    scopes: list[str] = []
    timescale = 1e-9

    def until_end():
        words = []
        for w in tokens:
            if w == b"$end":
                return words
            words.append(w.decode())
        raise VcdError(f"the VCD header ends inside {' '.join(words[:5])}")

    for tok in tokens:
        if tok == b"$scope":
            words = until_end()
            if len(words) < 2:
                raise VcdError(f"bad $scope {' '.join(words)}")
            scopes.append(words[1][1:] if words[1].startswith("\\") else words[1])
        elif tok == b"$upscope":
            until_end()
            if not scopes:
                raise VcdError("$upscope without $scope")
            scopes.pop()
        elif tok == b"$var":
            words = until_end()
            if len(words) < 4:
                raise VcdError(f"bad $var {' '.join(words)}")
            width, code, ref = int(words[1]), words[2].encode(), words[3]
            index = "".join(words[4:]) or None
            if ref.endswith("]") and "[" in ref and index is None and not ref.startswith("\\"):
                ref, index = ref[:ref.index("[")], ref[ref.index("["):]      # "y[3:0]" written together
            if code in widths and widths[code] != width:
                raise VcdError(f"VCD code {code!r} declared with widths {widths[code]} and {width}")
            widths[code] = width
            prefix = ".".join(scopes)
            vars_[code].append([f"{prefix}.{n}" if prefix else n for n in _bit_names(ref, index, width)])
        elif tok == b"$timescale":
            timescale = _timescale(" ".join(until_end()))
        elif tok.startswith(b"$"):
            until_end()
        else:
            raise VcdError(f"unexpected {tok!r} in the VCD header")
    return vars_, widths, timescale, buf[m.end():]


_KNOWN = bytes.maketrans(b"01xzXZ", b"110000")
_VALUE = bytes.maketrans(b"01xzXZ", b"010000")


def vcd_toggles(path, *, scope: str | None = None) -> VcdActivity:
    """Toggle counts per bit of every ``$var`` in the VCD file at ``path`` (module
    docstring), streamed in chunks; ``scope`` (``.``-separated) keeps only names under
    it, made relative to it."""
    path = Path(path)
    with open(path, "rb") as f:
        vars_, widths, timescale, data = _header(f)
        counter = _Counter(widths)
        while True:
            more = f.read(CHUNK)
            cut = more.rfind(b"\n")
            if more and cut < 0:
                data += more
                continue
            chunk, data = (data + more[:cut + 1], more[cut + 1:]) if more else (data, b"")
            try:
                counter.feed(chunk)
            except KeyError as e:
                raise VcdError(f"{path}: value change of undeclared code {e.args[0]!r}") from None
            except ValueError as e:
                raise VcdError(f"{path}: {e}") from None
            if not more:
                break
    counts = counter.counts()
    toggles = {}
    prefix = scope + "." if scope else None
    for code, groups in vars_.items():
        for names in groups:
            for name, n in zip(names, counts[code]):
                if prefix is not None:
                    if not name.startswith(prefix):
                        continue
                    name = name[len(prefix):]
                toggles[name] = n
    return VcdActivity(toggles, counter.start, counter.end, timescale)


def _pack(code: bytes) -> int:
    """A VCD code of up to 8 bytes as one integer (little-endian)."""
    return int.from_bytes(code, "little")


class _Counter:
    """Toggle counting state of a VCD body.

    Scalar codes are numbered; ``last`` holds each one's last known value (-1 before
    the first) and ``count`` its toggles. A vector code keeps its last known value and
    known-bit mask, the masks of its toggled bits since the last flush, and per-bit
    counts (numpy, updated from the masks at the end of every chunk). :meth:`feed`
    takes whole lines: with numpy when every line is a plain one-token scalar change,
    time stamp or keyword, or a two-token vector / real change (what Verilator and
    Icarus write), else token by token."""

    def __init__(self, widths: dict[bytes, int]):
        self.widths = widths
        self.index = {c: k for k, c in enumerate(c for c, w in widths.items() if w == 1)}
        n = len(self.index)
        self.last = np.full(n, -1, np.int8)
        self.count = np.zeros(n, np.int64)
        self.vec_state = {c: [0, 0] for c, w in widths.items() if w > 1}
        self.vec_masks: dict[bytes, list[int]] = {c: [] for c in self.vec_state}
        self.vec_count = {c: np.zeros(widths[c], np.int64) for c in self.vec_state}
        self.sort_type = np.uint16 if n <= 1 << 16 else np.int64   # uint16: numpy's radix sort
        self.start = self.end = None
        self.in_comment = False
        packable = all(len(c) <= 8 for c in self.index)
        if packable and n:
            keys = np.array([_pack(c) for c in self.index], np.uint64)
            self.order = np.argsort(keys)
            self.sorted_keys = keys[self.order]
        else:
            self.sorted_keys = None

    def feed(self, chunk: bytes) -> None:
        """Apply a chunk of whole body lines."""
        if b"\r" in chunk:
            chunk = chunk.replace(b"\r", b"")
        if not chunk.endswith(b"\n"):          # the file's last line
            chunk += b"\n"
        if self.in_comment or self.sorted_keys is None or b"$comment" in chunk or not self._fast(chunk):
            self._tokens(chunk.split())
        for code, masks in self.vec_masks.items():
            if masks:
                width = self.widths[code]
                nbytes = (width + 7) // 8
                bits = np.unpackbits(np.frombuffer(b"".join(m.to_bytes(nbytes, "little") for m in masks), np.uint8),
                                     bitorder="little").reshape(len(masks), nbytes * 8)
                self.vec_count[code] += bits[:, :width].sum(axis=0, dtype=np.int64)
                masks.clear()

    def _fast(self, chunk: bytes) -> bool:
        """The numpy path; False (nothing applied) when a line does not fit it."""
        arr = np.frombuffer(chunk, np.uint8)
        ends = np.flatnonzero(arr == 10)
        if len(ends) == 0:
            return True
        starts = np.empty_like(ends)
        starts[0] = 0
        starts[1:] = ends[:-1] + 1
        keep = ends > starts
        starts, ends = starts[keep], ends[keep]
        first = arr[starts]
        spaces = np.flatnonzero((arr == 32) | (arr == 9))
        if len(spaces):
            line_of = np.searchsorted(ends, spaces)
            two = np.isin(first, np.frombuffer(b"bBrRsS", np.uint8))
            per_line = np.bincount(line_of, minlength=len(starts))
            if np.any(per_line[~two] != 0) or np.any(per_line[two] != 1):
                return False
        elif np.any(np.isin(first, np.frombuffer(b"bBrRsS", np.uint8))):
            return False
        known = np.frombuffer(b"01#$xXzZbBrRsS", np.uint8)
        if not np.all(np.isin(first, known)):
            bad = int(starts[~np.isin(first, known)][0])
            raise ValueError(f"cannot read {chunk[bad:bad + 40]!r}")
        vec = np.flatnonzero((first == 98) | (first == 66))
        vec_lines = [chunk[starts[k] + 1:ends[k]].split() for k in vec]
        if any(self.widths.get(code) == 1 for _, code in vec_lines):
            return False                     # a one-bit vector change: order with scalars matters
        # scalar 0/1 changes: code index and value per line, in file order
        sc = np.flatnonzero((first == 48) | (first == 49))
        s_start, s_len = starts[sc] + 1, ends[sc] - starts[sc] - 1
        if len(sc) and s_len.max() > 8:
            return False
        keys = np.zeros(len(sc), np.uint64)
        for k in range(int(s_len.max()) if len(sc) else 0):
            has = s_len > k
            keys[has] |= arr[s_start[has] + k].astype(np.uint64) << np.uint64(8 * k)
        pos = np.searchsorted(self.sorted_keys, keys)
        pos[pos == len(self.sorted_keys)] = 0
        if len(sc) and np.any(self.sorted_keys[pos] != keys):
            bad = int(s_start[self.sorted_keys[pos] != keys][0])
            raise KeyError(chunk[bad:chunk.index(b"\n", bad)])
        idx = self.order[pos]
        val = (first[sc] - 48).astype(np.int8)
        # x/z lines keep the last known value, real and string values are not counted
        times = np.flatnonzero(first == 35)
        if len(times):
            t0 = int(chunk[starts[times[0]] + 1:ends[times[0]]])
            if self.start is None:
                self.start = t0
            self.end = int(chunk[starts[times[-1]] + 1:ends[times[-1]]])
        if len(sc):
            order = np.argsort(idx.astype(self.sort_type), kind="stable")
            sidx, sval = idx[order], val[order]
            same = sidx[1:] == sidx[:-1]
            changed = same & (sval[1:] != sval[:-1])
            self.count += np.bincount(sidx[1:][changed], minlength=len(self.count))
            head = np.concatenate(([True], ~same))
            hidx, hval = sidx[head], sval[head]
            prev = self.last[hidx]
            np.add.at(self.count, hidx[(prev >= 0) & (prev != hval)], 1)
            tail = np.concatenate((~same, [True]))
            self.last[sidx[tail]] = sval[tail]
        for value, code in vec_lines:
            self.vector(value, code)
        return True

    def _tokens(self, tokens: list[bytes]) -> None:
        """The general path: token by token."""
        index, vector = self.index, self.vector
        last, count = self.last.tolist(), self.count.tolist()
        in_comment = self.in_comment
        it = iter(tokens)
        for tok in it:
            c = tok[0]
            if in_comment:
                in_comment = tok != b"$end"
            elif c == 48 or c == 49:                            # 0 1: scalar change
                k = index[tok[1:]]
                v = c - 48
                old = last[k]
                if old != v:
                    if old >= 0:
                        count[k] += 1
                    last[k] = v
            elif c == 35:                                       # #: time stamp
                t = int(tok[1:])
                if self.start is None:
                    self.start = t
                self.end = t
            elif c == 98 or c == 66:                            # b B: vector change
                code = next(it, None)
                if code is None:
                    raise ValueError(f"vector change {tok[:40]!r} without a code")
                if self.widths[code] == 1:
                    k = index[code]
                    v = tok[-1] - 48
                    if v in (0, 1) and last[k] != v:
                        if last[k] >= 0:
                            count[k] += 1
                        last[k] = v
                else:
                    vector(tok[1:], code)
            elif c in b"xXzZ":                                  # unknown: keeps the last known value
                index[tok[1:]]
            elif c == 36:                                       # $dumpvars, $end, $comment ...
                in_comment = tok == b"$comment"
            elif c in b"rRsS":                                  # real and string values
                next(it, None)
            else:
                raise ValueError(f"cannot read {tok[:40]!r}")
        self.in_comment = in_comment
        self.last[:] = last
        self.count[:] = count

    def vector(self, value: bytes, code: bytes) -> None:
        """Apply one change ``b<value> <code>`` of a vector code."""
        width = self.widths[code]
        known = int(value.translate(_KNOWN), 2)
        val = int(value.translate(_VALUE), 2) if known else 0
        if len(value) < width and value[0] in (48, 49):       # left-extended with 0
            known |= ((1 << width) - 1) ^ ((1 << len(value)) - 1)
        state = self.vec_state[code]
        old_val, old_known = state
        toggled = (old_val ^ val) & known & old_known
        state[0] = (old_val & ~known) | (val & known)
        state[1] = old_known | known
        if toggled:
            self.vec_masks[code].append(toggled)

    def counts(self) -> dict[bytes, list[int]]:
        """Toggles per code, one count per bit, most significant bit first."""
        count = self.count.tolist()
        out = {code: [count[k]] for code, k in self.index.items()}
        for code, bits in self.vec_count.items():
            out[code] = bits[::-1].tolist()
        return out


# A SAIF token: a parenthesis, a quoted string, or an identifier (backslash escapes any character).
_SAIF_TOKEN = re.compile(rb'\(|\)|"[^"]*"|(?:\\.|[^\s()\\"])+')
_SAIF_ESCAPE = re.compile(rb"\\(.)")


def _saif_tree(data: bytes, path) -> list:
    """The nested lists of a SAIF text (atoms as bytes; comments dropped)."""
    data = re.sub(rb"//[^\n]*|/\*.*?\*/", b" ", data, flags=re.S)
    root: list = []
    stack = [root]
    for tok in _SAIF_TOKEN.findall(data):
        if tok == b"(":
            node: list = []
            stack[-1].append(node)
            stack.append(node)
        elif tok == b")":
            if len(stack) == 1:
                raise SaifError(f"{path}: unbalanced ')'")
            stack.pop()
        else:
            stack[-1].append(tok)
    if len(stack) != 1:
        raise SaifError(f"{path}: {len(stack) - 1} unclosed '(' (a truncated file?)")
    return root


def saif_toggles(path, *, scope: str | None = None) -> VcdActivity:
    """Toggle counts per bit (``TC``) from the SAIF file at ``path``, named as in the
    module docstring (instances ``.``-separated from the outermost ``INSTANCE``; a name
    with the file's ``DIVIDER`` in it is a path too), and ``DURATION`` as the time span.
    ``scope`` keeps only names under it, made relative to it. ``PORT`` and ``NET``
    entries both count (the same bit in both keeps the larger count). Raises
    :class:`SaifError` for a file that is not SAIF or has no toggle counts."""
    path = Path(path)
    tree = _saif_tree(path.read_bytes(), path)
    if not tree or not isinstance(tree[0], list) or not tree[0] or tree[0][0] != b"SAIFILE":
        raise SaifError(f"{path} is not a SAIF file (no (SAIFILE ...) at the top)")
    body = tree[0][1:]
    header = {item[0].decode(): item[1:] for item in body if isinstance(item, list) and item
              and item[0] != b"INSTANCE"}
    divider = (header.get("DIVIDER") or [b"/"])[0].decode() if header.get("DIVIDER") else "/"
    scale = 1e-9
    if "TIMESCALE" in header:
        text = b" ".join(header["TIMESCALE"]).decode()
        try:
            scale = _timescale(text)
        except VcdError:
            raise SaifError(f"{path}: cannot read (TIMESCALE {text})") from None
    duration = None
    if header.get("DURATION"):
        try:
            duration = int(float(header["DURATION"][0]))
        except ValueError:
            raise SaifError(f"{path}: cannot read (DURATION {header['DURATION'][0]!r})") from None
    prefix = scope + "." if scope else None
    toggles: dict[str, int] = {}
    seen = 0

    split = re.compile(rb"(?<!\\)" + re.escape(divider.encode()))

    def unescape(atom: bytes) -> list[str]:
        """An identifier's parts: split at an unescaped divider, escapes removed."""
        return [_SAIF_ESCAPE.sub(rb"\1", part).decode() for part in split.split(atom) if part]

    def walk(node: list, where: list[str]) -> None:
        nonlocal seen
        for item in node:
            if not isinstance(item, list) or not item:
                continue
            key = item[0]
            if key == b"INSTANCE":
                names = [a for a in item[1:] if not isinstance(a, list)]
                if not names:
                    raise SaifError(f"{path}: an INSTANCE without a name below {'.'.join(where) or 'the top'}")
                walk(item, where + unescape(names[-1]))         # (INSTANCE ["design"] name ...)
            elif key in (b"NET", b"PORT"):
                for entry in item[1:]:
                    if not isinstance(entry, list) or not entry or isinstance(entry[0], list):
                        continue
                    count = None
                    for field in entry[1:]:
                        if isinstance(field, list) and len(field) == 2 and field[0] == b"TC":
                            try:
                                count = int(field[1])
                            except ValueError:
                                raise SaifError(f"{path}: (TC {field[1]!r}) of {entry[0]!r} is not a count") \
                                    from None
                    if count is None:
                        continue
                    seen += 1
                    name = ".".join(where + unescape(entry[0]))
                    if prefix is not None:
                        if not name.startswith(prefix):
                            continue
                        name = name[len(prefix):]
                    if count > toggles.get(name, -1):
                        toggles[name] = count

    walk(body, [])
    if not seen:
        raise SaifError(f"{path} has no toggle counts (TC); build the Verilator model with "
                        f"--trace-saif --trace-underscore and run it with --trace")
    return VcdActivity(toggles, 0 if duration is not None else None, duration, scale)


_ENCODED = re.compile(r"__0([0-9a-fA-F]{2})")


def _decode(name: str) -> str:
    return _ENCODED.sub(lambda m: chr(int(m[1], 16)), name)


# A toggle point as Verilator 5 writes it: ... page v_toggle/<module>, o <signal>:<dir>, h <hier>' <count>
_TOGGLE_POINT = re.compile("\x01page\x02v_toggle[^\x01']*\x01o\x02([^\x01']*)\x01h\x02([^\x01']*)' (\\d+)")


def _field(line: str, key: str) -> str:
    """The value of one ``\\x01key\\x02value`` field of a coverage line ("" if absent)."""
    end = line.rindex("' ")
    i = line.find(key)
    if i < 0:
        return ""
    i += len(key)
    j = line.find("\x01", i, end)
    return line[i:j if j >= 0 else end]


def coverage_toggles(path, *, scope: str | None = None) -> dict[str, int]:
    """Toggle counts per bit from Verilator's ``coverage.dat`` at ``path`` (0->1 plus
    1->0 points of every ``v_toggle`` item), named as in the module docstring; ``scope``
    keeps only names under it, made relative to it. Raises :class:`CoverageError` when
    the file holds no toggle points or instances were added up (see the module
    docstring for the simulation options that avoid both)."""
    path = Path(path)
    toggles: dict[str, int] = defaultdict(int)
    prefix = scope + "." if scope else None
    seen = 0
    with open(path, encoding="utf-8", errors="replace") as f:
        first = f.readline()
        if not first.startswith("# SystemC::Coverage"):
            raise CoverageError(f"{path} is not a Verilator coverage file (first line {first[:40]!r})")
        rest = ""
        while True:
            more = f.read(CHUNK)
            text = rest + more
            cut = text.rfind("\n") + 1 if more else len(text)
            text, rest = text[:cut], text[cut:]
            points = _TOGGLE_POINT.findall(text)
            if len(points) != text.count("\x01page\x02v_toggle"):     # other key order: line by line
                points = [(_field(line, "\x01o\x02"), _field(line, "\x01h\x02"), line[line.rindex("' ") + 2:])
                          for line in text.splitlines()
                          if "\x01page\x02v_toggle" in line and line.startswith("C '")]
            seen += len(points)
            for comment, hier, count in points:
                if "*" in hier:
                    raise CoverageError(f"{path}: coverage of several instances was added up into one "
                                        f"({hier!r}); run the simulation with --coverage-per-instance "
                                        f"(cocotb's Verilator main) or forcePerInstance(true)")
                signal, _, direction = comment.rpartition(":")
                if direction not in ("0->1", "1->0"):
                    raise CoverageError(f"{path}: toggle point {comment!r} has no :0->1 / :1->0 suffix")
                name = f"{hier}.{signal}" if hier else signal
                if "__0" in name:
                    name = _decode(name)
                if prefix is not None:
                    if not name.startswith(prefix):
                        continue
                    name = name[len(prefix):]
                toggles[name] += int(count)
            if not more:
                break
    if not seen:
        raise CoverageError(f"{path} has no toggle coverage points; build the model with "
                            f"--coverage-toggle --coverage-underscore")
    return dict(toggles)
