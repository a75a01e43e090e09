"""Cycle model of the EIE array: the exact cycle count of a run, fast.

This is a model of the RTL's *timing* (``eie.hw``), written from its
cycle-level contract (docs/hardware.md, "Timing"), not from the RTL source; it
must agree with the RTL's ``cycles`` counter exactly (the whole-array tests
check it). It never simulates a cycle: the RTL was designed so that every
event time is a max-plus recurrence over the broadcasts, vectorised over the
PEs with numpy.

Notation for one layer (cycle 0 = the layer's LOAD cycle), broadcast ``b`` of
column ``j_b`` (non-zero inputs ``j < in_len`` in increasing order), ``n_kb``
entries (padding included) of PE ``k`` in that column, ``S = cfg.credits``
(``fifo_depth`` + 2: the queue's slots and the pointer stages P1, P2),
column-buffer depth ``C``, ``D = cfg.fanout_stages`` (registers between the CCU
and the PEs, each way):

CCU (row ``r`` holds ``j = r N .. r N + N - 1``)
    ``F_r``: cycle row ``r`` enters the row queue (its data on the read ports;
    the queue of ``cfg.row_queue`` = ``3 + 2 D`` rows never runs dry, so this is also the
    cycle before the row can be examined); ``F_0 = 2 + 2 D`` (LOAD registers the
    layer-table entry, START reads row 0, whose address and words each pass ``D``
    registers); after an all-zero row
    ``F_{r+1} = F_r + 1``; after a non-zero row ``F_{r+1} = X_r``, where
    ``X_r = max(F_r + 1, t_last(previous non-zero row))`` is the cycle row
    ``r`` replaces the row being broadcast.
    ``a_b = X_r + 1`` for the first broadcast of row ``r``, else ``t_{b-1} + 1``.
    ``t_b = max(a_b, max_k l_k(b - S) + 2 + D - Y)``   (fires when every PE holds a credit:
    column ``b - S`` leaving P2 in ``l`` returns its credit in ``l + 1``, seen by the
    CCU in ``l + 1 + D`` and spent from ``l + 2 + D``, or with ``Y = cfg.credit_bypass`` = 1
    in that cycle; the broadcast bus is a register, so the PEs take it in ``t_b + 1 + D``)
PE ``k`` (``i`` = index among the PE's non-empty columns)
    ``q_b = max(t_b + 1 + D, m_{b-1})``        (into P1: off the bus when the queue is
    empty and P1 free, else popped from the queue; P1 reads the pointers)
    ``m_b = max(q_b + 1, l_{b-1})``            (pointers into the P2 registers)
    empty column: ``l_b = m_b + 1``
    else ``c_i = max(m_b + 1, f_{i-C})``, ``l_b = c_i``   (into the column buffer)
    ``s_i = max(c_i + 1, f_{i-1} + 1)``, ``f_i = s_i + n_i - 1``   (Spmat reads)
    idle (a register) from ``d_k = max(m_{B-1} + 3, f_last + M + 2)``, ``M = cfg.mac_latency`` (6)
End of layer
    ``scan_done = max(F_{R_in - 1} + 2, t_{B-1} + 2 + 2 D)`` (a PE's idle flag shows a
    broadcast ``2 D + 2`` cycles after it fires)
    ``E = max(scan_done, max_k d_k + D)``; layer cycles ``= E + ceil(out_len / N) + L + 1``
    (write-back of one row per cycle, ``L = cfg.writeback_latency`` cycles for
    the last row to reach the register files, and the LOAD cycle; behind ``D``
    fanout registers a row reaches its PE ``D`` cycles later, and so does
    everything sent after it, so nothing waits for it).

A run's ``cycles`` is the sum over its layers.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from eie.config import EIEConfig
from eie.format import NetworkImage

__all__ = ["LayerTiming", "CycleReport", "layer_cycles", "predict", "image_col_entries"]

_NEVER = np.int64(-(1 << 40))       # "minus infinity" for max-plus recurrences


@dataclass
class LayerTiming:
    """Timing of one layer on one input.

    Attributes
    ----------
    cycles : int
        Cycles from the layer's first cycle (LOAD) to the next layer's first
        cycle (or the end of the run).
    broadcasts : int
        ``B``: non-zero inputs broadcast.
    broadcast_stalls : int
        Cycles a broadcast waited for credits (some PE's queue and pointer
        stages full, or a column's leaving P2 not yet reported).
    work : int
        ``W``: entries (padding included) processed by all PEs.
    bound : int
        ``max(B, ceil(W / N))``.
    busy, stalls : (pes,) int64
        Per PE: entries processed (busy cycles) and cycles a broadcast waited
        for this PE's credit.
    compute_cycles : int
        Cycles of LOAD + SCAN (up to the last PE going idle).
    writeback_cycles : int
        ``ceil(out_len / N) + cfg.writeback_latency``.
    """
    cycles: int
    broadcasts: int
    broadcast_stalls: int
    work: int
    bound: int
    busy: np.ndarray
    stalls: np.ndarray
    compute_cycles: int
    writeback_cycles: int
    pes: int

    @property
    def efficiency(self) -> float:
        """Load efficiency ``bound / cycles``."""
        return self.bound / self.cycles if self.cycles else 1.0

    def to_dict(self) -> dict:
        return {"cycles": self.cycles, "broadcasts": self.broadcasts, "broadcast_stalls": self.broadcast_stalls,
                "work": self.work, "bound": self.bound, "efficiency": self.efficiency,
                "busy": [int(v) for v in self.busy], "stalls": [int(v) for v in self.stalls],
                "compute_cycles": self.compute_cycles, "writeback_cycles": self.writeback_cycles,
                "pes": self.pes}


@dataclass
class CycleReport:
    """Timing of a whole run (all layers of an image): what the RTL's counters read."""
    cycles: int
    layers: list = field(default_factory=list)

    @property
    def broadcasts(self) -> int:
        return sum(l.broadcasts for l in self.layers)

    @property
    def broadcast_stalls(self) -> int:
        return sum(l.broadcast_stalls for l in self.layers)

    @property
    def busy(self) -> np.ndarray:
        return np.sum([l.busy for l in self.layers], axis=0).astype(np.int64)

    @property
    def stalls(self) -> np.ndarray:
        return np.sum([l.stalls for l in self.layers], axis=0).astype(np.int64)

    @property
    def bound(self) -> int:
        return sum(l.bound for l in self.layers)

    def to_dict(self) -> dict:
        return {"cycles": self.cycles, "broadcasts": self.broadcasts, "broadcast_stalls": self.broadcast_stalls,
                "bound": self.bound, "layers": [l.to_dict() for l in self.layers]}


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def layer_cycles(cfg: EIEConfig, col_entries, x, out_len: int) -> LayerTiming:
    """Timing of one layer.

    Parameters
    ----------
    cfg : EIEConfig
        Uses ``pes``, ``credits`` (``fifo_depth`` + 2), ``column_buffer_depth``,
        ``fanout_stages``, ``credit_bypass``, ``mac_latency`` and ``writeback_latency``.
    col_entries : (pes, in_len) array
        Entries (padding included) of each PE's slice of each column, e.g.
        ``EncodedLayer.col_entries`` or differences of the pointers.
    x : (in_len,) array
        The layer's input activations (only which are non-zero matters).
    out_len : int
        Output length (write-back rows).
    """
    n = cfg.pes
    ce = np.asarray(col_entries)
    xs = np.asarray(x)
    if ce.ndim != 2 or ce.shape[0] != n:
        raise ValueError(f"col_entries must have shape (pes={n}, in_len), not {ce.shape}")
    in_len = ce.shape[1]
    if xs.shape != (in_len,):
        raise ValueError(f"x must have shape ({in_len},) to match col_entries, not {xs.shape}")
    if in_len < 1 or out_len < 1:
        raise ValueError(f"in_len and out_len must be at least 1, not {in_len} and {out_len}")
    slots = cfg.credits
    cbuf = cfg.column_buffer_depth
    D = cfg.fanout_stages
    credit_lag = 2 + D - cfg.credit_bypass              # l(b - S) + credit_lag: its credit is spent

    cols = np.flatnonzero(xs)
    nb = len(cols)
    work = ce[:, cols].astype(np.int64)                  # (n, B)
    busy = work.sum(axis=1)
    total_work = int(busy.sum())
    rows_in = _ceil_div(in_len, n)
    rows_out = _ceil_div(out_len, n)

    # Per-PE state (vectors over PEs). The loop body is a handful of numpy
    # calls per broadcast: every index it needs is precomputed, and per-PE
    # stalls are summed after the loop.
    last_leave = np.full(n, _NEVER)                     # l of the previous column
    last_move = np.full(n, _NEVER)                      # m of the previous column
    last_finish = np.full(n, _NEVER)                    # f of the previous non-empty column
    l_hist = np.empty((max(nb, 1), n), np.int64)        # l_k(b)
    l_max = np.empty(max(nb, 1), np.int64)
    avail = np.empty(max(nb, 1), np.int64)              # a_b
    work_t = np.ascontiguousarray(work.T)               # (B, n): n_kb
    nonempty_t = work_t > 0
    # f of every PE's i-th non-empty column lives in finish[k * width + 2 + i];
    # slot 0 is "never" (for f_{i-C} with i < C), slot 1 takes the empty columns' writes.
    index = np.cumsum(nonempty_t, axis=0) - nonempty_t  # i of column b in PE k
    width = (int(index[-1].max()) + 3) if nb else 3
    base = np.arange(n, dtype=np.int64) * width
    write_at = base + np.where(nonempty_t, index + 2, 1)
    read_at = base + np.where(index >= cbuf, index - cbuf + 2, 0)
    finish = np.full(n * width, _NEVER)
    broadcast_stalls = 0

    row_of = (cols // n).tolist()
    prev_row = -1
    x_prev = 2 + 2 * D  # X of the previous non-zero row (stands for "row 0 enters the row queue at F_0")
    t_prev = int(_NEVER)
    for b in range(nb):
        r = row_of[b]
        if r != prev_row:
            f_row = x_prev + (r - prev_row - 1)
            x_row = max(f_row + 1, t_prev)
            a = x_row + 1
            prev_row, x_prev = r, x_row
        else:
            a = t_prev + 1
        avail[b] = a
        t = a
        if b >= slots:
            t = max(a, int(l_max[b - slots]) + credit_lag)
        broadcast_stalls += t - a
        t_prev = t

        q = np.maximum(last_move, t + 1 + D)
        last_move = np.maximum(q + 1, last_leave)
        m1 = last_move + 1
        c = np.maximum(m1, finish.take(read_at[b]))     # into the column buffer
        f = np.maximum(c, last_finish)                  # f = max(c + 1, f_prev + 1) + n - 1
        f += work_t[b]
        ne = nonempty_t[b]
        last_leave = np.where(ne, c, m1)
        l_hist[b] = last_leave
        l_max[b] = last_leave.max()
        np.copyto(last_finish, f, where=ne)
        finish.put(write_at[b], f)

    stalls = np.zeros(n, np.int64)
    if nb > slots:
        stalls = np.maximum(l_hist[:nb - slots] + credit_lag - avail[slots:nb, None], 0).sum(axis=0)

    if nb:
        if prev_row < rows_in - 1:
            f_last_row = x_prev + (rows_in - 1 - prev_row - 1)
        else:
            f_last_row = int(_NEVER)
        scan_done = max(f_last_row + 2, t_prev + 2 + 2 * D)
        idle = np.maximum(last_move + 3, last_finish + cfg.mac_latency + 2)
        end = max(scan_done, int(idle.max()) + D)
    else:
        end = (rows_in - 1) + 4 + 2 * D
    compute = end + 1
    writeback = rows_out + cfg.writeback_latency
    return LayerTiming(cycles=compute + writeback, broadcasts=nb, broadcast_stalls=int(broadcast_stalls),
                       work=total_work, bound=max(nb, _ceil_div(total_work, n)), busy=busy, stalls=stalls,
                       compute_cycles=compute, writeback_cycles=writeback, pes=n)


def image_col_entries(image: NetworkImage, layer: int) -> np.ndarray:
    """``(pes, in_len)`` entries per PE and column of layer ``layer``, from the pointers of ``image``."""
    entry = image.layers[layer]
    p = np.asarray(image.ptr, np.int64)[:, entry.ptr_base:entry.ptr_base + entry.in_len + 1]
    if p.shape[1] != entry.in_len + 1:
        raise ValueError(f"layer {layer}: the image holds {p.shape[1]} of its {entry.in_len + 1} pointers")
    return np.diff(p, axis=1)


def predict(image: NetworkImage, x) -> CycleReport:
    """Timing of a run of every layer of ``image`` on input ``x``: ``cycles`` equals
    the RTL's ``cycles`` counter; the per-layer inputs come from the bit-exact
    reference (``eie.golden.reference.image_forward``)."""
    from .reference import image_forward

    if np.ndim(x) != 1:
        raise ValueError(f"predict takes one input vector (shape (in_len,)), not shape {np.shape(x)}; "
                         f"run it once per input of a batch")
    acts = image_forward(image, x)
    layers = []
    for l, entry in enumerate(image.layers):
        layers.append(layer_cycles(image.config, image_col_entries(image, l), np.asarray(acts[l]), entry.out_len))
    return CycleReport(cycles=sum(t.cycles for t in layers), layers=layers)
