"""Mutation testing of ``golden/`` and ``eie/`` (issue #14, item 6): does the suite kill planted bugs?

Usage::

    python bench/mutation.py [--sample N] [--seed S] [--jobs J] [--timeout-factor F] [--json]
                             [--files golden/quantize.py,eie/format.py] [--list]

Each mutant is one small change to one line of a source file, made on the
syntax tree's source positions (so strings, comments and docstrings are never
touched):

* comparison swaps: ``<`` ``<=`` ``>`` ``>=`` among themselves (the boundary
  and the direction), ``==`` <-> ``!=``, ``in`` <-> ``not in``, ``is`` <-> ``is not``;
* arithmetic swaps: ``+`` <-> ``-``, ``*`` -> ``//``, ``//`` -> ``*``, ``<<`` <-> ``>>``,
  ``&`` <-> ``|``;
* ``and`` <-> ``or``; ``not x`` -> ``x``;
* integer constants ``n`` -> ``n + 1`` and ``n - 1`` (not ``True``/``False``);
* a dropped check: an ``if`` whose body raises gets the condition ``False``;
  a ``raise`` becomes ``pass``.

A mutant is *killed* when the fast tests of its file fail, *survives* when
they pass, *timeout* when they take longer than ``timeout-factor`` x the
unmutated run (at least 20 s); a mutant that does not compile is not counted.
The fast tests of a file: its own ``test_<name>.py`` (and ``MORE_TESTS``;
a file with neither gets every test file in ``tests/golden``, ``tests/core``
and ``tests/test_damaged_input.py`` that imports it by name), without the slow ones (``-m "not slow"``, and those over
``SLOW_S`` seconds in the unmutated run) and never the RTL/Verilator suites
(``tests/hw``, ``tests/sim``, ``tests/boards``, ``tests/asic``). ``pytest -x``
stops at the first failure.

Mutants run on a copy of the packages in a temporary folder (first on
``PYTHONPATH``, ahead of the editable install), never on the checkout. The
sample is drawn with ``--seed`` from all mutants of the files; ``--list``
prints the mutants without running them. Progress goes to stderr; ``--json``
prints ``{"killed", "survived", "timeout", "score", "mutants": [...]}``.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SOURCES = ("golden", "eie")
SKIP_FILES = {"__init__.py", "__main__.py"}
TEST_DIRS = ("tests/golden", "tests/core")
EXTRA_TESTS = ("tests/test_damaged_input.py",)
SLOW_S = 4.0          # a test slower than this in the unmutated run is left out (keeps a mutant to seconds)
# How the installed package names the source folders (pyproject.toml, package-dir).
PACKAGE_DIRS = {"eie": "eie", "eie/hw": "hw", "eie/golden": "golden", "eie/sim": "sim", "eie/boards": "boards",
                "eie/asic": "asic"}

_CMP = {ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">=", ast.Eq: "==", ast.NotEq: "!=",
        ast.In: "in", ast.NotIn: "not in", ast.Is: "is", ast.IsNot: "is not"}
_CMP_SWAPS = {"<": ("<=", ">="), "<=": ("<", ">"), ">": (">=", "<="), ">=": (">", "<"), "==": ("!=",),
              "!=": ("==",), "in": ("not in",), "not in": ("in",), "is": ("is not",), "is not": ("is",)}
_BIN = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.FloorDiv: "//", ast.LShift: "<<", ast.RShift: ">>",
        ast.BitAnd: "&", ast.BitOr: "|"}
_BIN_SWAPS = {"+": "-", "-": "+", "*": "//", "//": "*", "<<": ">>", ">>": "<<", "&": "|", "|": "&"}


@dataclass
class Mutant:
    file: str          # relative to the repository root
    line: int
    kind: str
    original: str      # the source text replaced
    replacement: str
    start: int         # byte offsets in the file
    end: int
    status: str = ""
    seconds: float = 0.0

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line}"

    def describe(self) -> str:
        return f"{self.where} [{self.kind}] {self.original!r} -> {self.replacement!r}"


def _offsets(source: bytes) -> list[int]:
    starts, pos = [0], 0
    for line in source.split(b"\n")[:-1]:
        pos += len(line) + 1
        starts.append(pos)
    return starts


def _docstring_nodes(tree) -> set[int]:
    ids = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                ids.add(id(first.value))
    return ids


def mutants_of(path: Path, copy: Path | None = None) -> list[Mutant]:
    """Every mutant of one file (see the module docstring); read from ``copy`` (a :func:`make_copy`
    folder) when given, so that edits to the checkout while the benchmark runs do not matter."""
    rel = str(path.relative_to(ROOT))
    source = (copy / _package_path(rel) if copy else path).read_bytes()
    starts = _offsets(source)
    tree = ast.parse(source)
    skip = _docstring_nodes(tree)
    # Nodes inside f-strings, __all__ and annotations are not mutated.
    for node in ast.walk(tree):
        if isinstance(node, ast.JoinedStr) or (isinstance(node, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets)):
            skip.update(id(n) for n in ast.walk(node))
        for ann in ("annotation", "returns"):
            if getattr(node, ann, None) is not None:
                skip.update(id(n) for n in ast.walk(getattr(node, ann)))
    out: list[Mutant] = []

    def pos(lineno, col):
        return starts[lineno - 1] + col

    def seg(a, b):
        return source[a:b].decode()

    def between(left, right, op, kind, replacements):
        """Replace operator text ``op`` in the gap between nodes ``left`` and ``right``."""
        a, b = pos(left.end_lineno, left.end_col_offset), pos(right.lineno, right.col_offset)
        gap = seg(a, b)
        pattern = r"(?<![\w<>=!])" + re.escape(op) + r"(?![\w<>=])" if op.isalpha() or " " in op else \
            r"(?<![<>=!*/&|+\-])" + re.escape(op) + r"(?![<>=*/&|])"
        found = [m for m in re.finditer(pattern, gap)]
        if len(found) != 1:
            return
        m = found[0]
        for rep in replacements:
            out.append(Mutant(rel, left.end_lineno, kind, op, rep, a + len(gap[:m.start()].encode()),
                              a + len(gap[:m.end()].encode())))

    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Compare):
            items = [node.left] + node.comparators
            for op, left, right in zip(node.ops, items[:-1], items[1:]):
                text = _CMP[type(op)]
                between(left, right, text, "compare", _CMP_SWAPS[text])
        elif isinstance(node, ast.BinOp) and type(node.op) in _BIN:
            text = _BIN[type(node.op)]
            between(node.left, node.right, text, "arith", (_BIN_SWAPS[text],))
        elif isinstance(node, ast.AugAssign) and type(node.op) in _BIN:
            text = _BIN[type(node.op)] + "="
            between(node.target, node.value, text, "arith", (_BIN_SWAPS[text[:-1]] + "=",))
        elif isinstance(node, ast.BoolOp):
            text = "and" if isinstance(node.op, ast.And) else "or"
            for left, right in zip(node.values[:-1], node.values[1:]):
                between(left, right, text, "bool", ("or" if text == "and" else "and",))
        elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
            a, b = pos(node.lineno, node.col_offset), pos(node.operand.lineno, node.operand.col_offset)
            if seg(a, b).strip() == "not":
                out.append(Mutant(rel, node.lineno, "not", seg(a, b), "", a, b))
        elif isinstance(node, ast.Constant) and type(node.value) is int:
            a, b = pos(node.lineno, node.col_offset), pos(node.end_lineno, node.end_col_offset)
            for delta in (1, -1):
                out.append(Mutant(rel, node.lineno, "constant", seg(a, b), str(node.value + delta), a, b))
        elif isinstance(node, ast.If) and any(isinstance(s, ast.Raise) for s in node.body):
            t = node.test
            a, b = pos(t.lineno, t.col_offset), pos(t.end_lineno, t.end_col_offset)
            out.append(Mutant(rel, node.lineno, "drop-check", seg(a, b).split("\n")[0][:60], "False", a, b))
        elif isinstance(node, ast.Raise):
            a, b = pos(node.lineno, node.col_offset), pos(node.end_lineno, node.end_col_offset)
            out.append(Mutant(rel, node.lineno, "drop-raise", seg(a, b).split("\n")[0][:60], "pass", a, b))
    # Only mutants that still compile.
    good = []
    for m in out:
        text = source[:m.start] + m.replacement.encode() + source[m.end:]
        try:
            compile(text, rel, "exec")
        except SyntaxError:
            continue
        good.append(m)
    good.sort(key=lambda m: (m.line, m.start, m.replacement))
    return good


def source_files(only=None) -> list[Path]:
    if only:
        return [ROOT / f for f in only]
    return sorted(p for d in SOURCES for p in (ROOT / d).glob("*.py") if p.name not in SKIP_FILES)


# Files whose own test file is not the whole story (or that have none).
MORE_TESTS = {"eie/format.py": ("tests/golden/test_encode.py", "tests/test_damaged_input.py"),
              "eie/cli.py": ("tests/golden/test_cli_compress.py",),
              "golden/cli.py": ("tests/golden/test_cli_compress.py",),
              "eie/config.py": ("tests/golden/test_encode.py",),
              "golden/fit.py": ("tests/golden/test_fit.py",),
              "golden/fidelity.py": ("tests/golden/test_fidelity.py",),
              "golden/pipeline.py": ("tests/golden/test_sensitivity.py",)}


def tests_for(path: Path) -> list[str]:
    """The fast test files of one source file: its own ``test_<name>.py`` and ``MORE_TESTS``; a file
    with neither gets every fast test file that imports it by name."""
    rel = str(path.relative_to(ROOT))
    stem = path.stem
    found = {t for d in TEST_DIRS + ("tests",) for t in (ROOT / d).glob(f"test_{stem}.py")}
    found |= {ROOT / t for t in MORE_TESTS.get(rel, ())}
    if not found:
        if path.parent.name == "golden":
            pats = [rf"golden\.{stem}\b", rf"from eie\.golden import [^\n]*\b{stem}\b"]
        else:
            pats = [rf"eie\.{stem}\b", rf"from eie import [^\n]*\b{stem}\b"]
        rx = re.compile("|".join(pats))
        for t in [p for d in TEST_DIRS for p in (ROOT / d).glob("test_*.py")] + [ROOT / e for e in EXTRA_TESTS]:
            if t.exists() and rx.search(t.read_text()):
                found.add(t)
    return sorted(str(t.relative_to(ROOT)) for t in found)


def _package_path(rel: str) -> str:
    """Where repository file ``rel`` (e.g. ``golden/quantize.py``) sits in the installed package."""
    folder, name = rel.rsplit("/", 1)
    pkg = next(p for p, d in PACKAGE_DIRS.items() if d == folder)
    return f"{pkg}/{name}"


def make_copy() -> Path:
    """The packages (as installed: eie/, eie/golden/, ...) copied into a temporary folder."""
    tmp = Path(tempfile.mkdtemp(prefix="eie-mutation-"))
    for pkg, src in sorted(PACKAGE_DIRS.items()):
        shutil.copytree(ROOT / src, tmp / pkg, dirs_exist_ok=True,
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    env = dict(os.environ, PYTHONPATH=str(tmp))
    where = subprocess.run([sys.executable, "-P", "-c", "import eie.golden.encode as m; print(m.__file__)"],
                           cwd=ROOT, env=env, capture_output=True, text=True).stdout.strip()
    if not where.startswith(str(tmp)):
        raise SystemExit(f"the tests would import eie from {where!r}, not from the copy in {tmp}")
    return tmp


def _pytest(tmp: Path, tests: list[str], timeout: float, extra=()) -> tuple[str, float, str]:
    env = dict(os.environ, PYTHONPATH=str(tmp) + os.pathsep + os.environ.get("PYTHONPATH", ""),
               PYTHONDONTWRITEBYTECODE="1")
    # -P: the working directory (the checkout, whose eie/ would shadow the copy) is not put on sys.path.
    cmd = [sys.executable, "-P", "-m", "pytest", "-q", "-x", "-m", "not slow", "-p", "no:cacheprovider",
           "-p", "no:randomly", *extra, *tests]
    t0 = time.perf_counter()
    try:
        p = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return "timeout", time.perf_counter() - t0, ""
    dt = time.perf_counter() - t0
    if p.returncode == 0:
        return "survived", dt, p.stdout
    if p.returncode in (1, 3):      # tests failed, or an error during collection/import
        return "killed", dt, p.stdout
    return f"error {p.returncode}", dt, p.stdout + p.stderr


def baseline(tmp: Path, tests: list[str], log) -> tuple[float, list[str]]:
    """Run the unmutated tests once: their time, and the slow tests to leave out."""
    status, dt, out = _pytest(tmp, tests, 1800, ("--durations=0", "--durations-min", str(SLOW_S)))
    if status != "survived":
        raise SystemExit(f"the unmutated tests do not pass ({status}): {' '.join(tests)}\n{out[-3000:]}")
    slow = sorted({m.group(1) for m in re.finditer(r"^\s*[\d.]+s (?:call|setup)\s+(\S+)", out, re.M)})
    return dt, slow


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sample", type=int, default=None, help="run a seeded random sample of N mutants")
    ap.add_argument("--seed", type=int, default=14)
    ap.add_argument("--jobs", type=int, default=1, help="mutants run at once (each in its own copy)")
    ap.add_argument("--timeout-factor", type=float, default=3.0)
    ap.add_argument("--files", default=None, help="comma-separated source files (default: golden/*.py, eie/*.py)")
    ap.add_argument("--list", action="store_true", help="print the mutants and stop")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)

    def log(msg):
        print(msg, file=sys.stderr, flush=True)

    files = source_files(args.files.split(",") if args.files else None)
    copies = [make_copy() for _ in range(max(1, args.jobs))]
    every = [m for f in files for m in mutants_of(f, copies[0])]
    chosen = every
    if args.sample is not None and args.sample < len(every):
        chosen = random.Random(args.seed).sample(every, args.sample)
        chosen.sort(key=lambda m: (m.file, m.line, m.start))
    log(f"{len(every)} mutants in {len(files)} files; running {len(chosen)}")
    if args.list:
        for c in copies:
            shutil.rmtree(c, ignore_errors=True)
        for m in chosen:
            print(m.describe())
        return 0

    try:
        plan = {}
        for rel in sorted({m.file for m in chosen}):
            tests = tests_for(ROOT / rel)
            if not tests:
                plan[rel] = None
                log(f"{rel}: no fast tests import it")
                continue
            base, slow = baseline(copies[0], tests, log)
            deselect = [a for s in slow for a in ("--deselect", s)]
            log(f"{rel}: {len(tests)} test files, unmutated {base:.1f} s; left out as slow: {len(slow)}")
            plan[rel] = (tests, deselect, max(20.0, args.timeout_factor * base))

        free = list(copies)
        t_start = time.perf_counter()
        done = [0]

        def run_one(m: Mutant):
            tmp = free.pop()
            try:
                target = tmp / _package_path(m.file)
                original = target.read_bytes()        # the file as it was when the copies were made
                target.write_bytes(original[:m.start] + m.replacement.encode() + original[m.end:])
                try:
                    if plan[m.file] is None:
                        m.status, m.seconds = "untested", 0.0
                    else:
                        tests, deselect, timeout = plan[m.file]
                        m.status, m.seconds, _ = _pytest(tmp, tests, timeout, deselect)
                finally:
                    target.write_bytes(original)
            finally:
                free.append(tmp)
            done[0] += 1
            log(f"[{done[0]}/{len(chosen)}] {m.status:8s} {m.seconds:5.1f} s  {m.describe()}")
            return m

        with ThreadPoolExecutor(max_workers=len(copies)) as pool:
            list(pool.map(run_one, chosen))
        wall = time.perf_counter() - t_start
    finally:
        for c in copies:
            shutil.rmtree(c, ignore_errors=True)

    counts = {s: sum(1 for m in chosen if m.status == s) for s in ("killed", "survived", "timeout", "untested")}
    errors = [m for m in chosen if m.status.startswith("error")]
    scored = counts["killed"] + counts["survived"] + counts["timeout"] + counts["untested"]   # untested: survived
    score = (counts["killed"] + counts["timeout"]) / scored if scored else 0.0
    survivors = [m for m in chosen if m.status in ("survived", "untested")]
    if args.json:
        print(json.dumps({**counts, "errors": len(errors), "mutants_total": len(every), "run": len(chosen),
                          "seed": args.seed, "score": round(score, 4), "wall_s": round(wall, 1),
                          "survivors": [m.describe() for m in survivors],
                          "mutants": [asdict(m) for m in chosen]}, indent=1))
    else:
        print(f"{len(chosen)} of {len(every)} mutants (seed {args.seed}): killed {counts['killed']}, "
              f"survived {counts['survived']}, timeout {counts['timeout']}, untested {counts['untested']}, "
              f"errors {len(errors)}; score (killed + timeout) / run = {score:.1%}; {wall:.0f} s")
        for m in survivors:
            print(f"  {m.status}: {m.describe()}")
        for m in errors:
            print(f"  {m.status}: {m.describe()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
