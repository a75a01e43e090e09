"""Compress-time load balancing: which PE holds which output row.

EIE's hardware puts output row ``h`` in PE ``h mod N`` (local row ``h // N``)
and broadcasts the non-zero inputs in increasing column order. Both are fixed
in the hardware, but which *logical* row of a layer sits at hardware row ``h``
is free: a row permutation of layer ``l`` (rows of its codes and its bias)
whose inverse is folded into the columns of layer ``l+1`` computes exactly the
same network, and the last layer's permutation is undone by the host when it
reads the outputs. Likewise the order of the network's *input* vector is the
host's choice. So balancing costs nothing at run time.

Conventions (``perm`` arrays are permutations of ``0 .. len-1``):

* ``output_perm[h]`` is the logical output held at hardware output position
  ``h``: ``hw_out = logical_out[..., output_perm]`` and
  ``logical_out = unpermute_output(hw_out, output_perm)``.
* ``input_perm[j]`` is the logical input the host writes at hardware input
  position ``j``: ``hw_in = permute_input(x, input_perm) = x[..., input_perm]``.
* Balanced layer ``l`` has ``codes'[h] = codes[perm_l[h]]``, ``bias'[h] =
  bias[perm_l[h]]`` and its columns in the order of the previous layer's
  permutation (``codes'[:, j] = codes[:, perm_{l-1}[j]]``; ``input_perm`` for
  the first layer). Hence ``forward(balanced, permute_input(x, input_perm))
  == forward(layers, x)[..., output_perm]`` exactly.

What the assignment optimises, per layer (``N`` PEs, ``rows_k`` rows of PE
``k`` fixed by the interleave: ``ceil`` or ``floor`` of ``out_len / N``, so a
PE never needs more register-file rows than the plain interleave):

1. *Per-column balance* (queueing): rows are placed heaviest first, each into
   the PE where it collides least with the rows already there, i.e. the PE
   minimising ``sum_j p_j L_kj [row has column j]`` (``L_kj`` entries PE ``k``
   already has in column ``j``, ``p_j`` the probability that input ``j`` is
   non-zero). This is the greedy for the sum over columns of squared per-PE
   work, which is what the activation queues have to absorb.
2. *Critical path* ``max_k W_k``: pairwise row swaps between the busiest PE and
   the others while the busiest PE's expected work drops.
3. *Zero-run padding*: within each PE the local row order is chosen greedily so
   that the next row covers the columns whose current zero run is longest
   (padding entries are work too).
4. *Broadcast order* (only for inputs the host writes, and only for dense
   inputs, where the order of the broadcasts is known at compress time): the
   input columns are ordered greedily so that a column heavy for a PE follows
   columns that left that PE's queue short (a fluid model of the queues); the
   new order is kept only if the cycle model finds it faster on the
   calibration inputs.

Plain interleave is ``balance=False`` everywhere (``eie bench --no-balance``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from eie.config import EIEConfig
from .encode import QuantLayer, encode_layer

__all__ = ["Balance", "balance", "balance_network", "calibration_inputs", "assign_rows", "order_local_rows", "order_columns",
           "permute_input", "unpermute_output", "identity_balance", "DENSE_INPUT_ACTIVITY"]

# Mean input activity above which the broadcast order is treated as known at
# compress time (NeuralTalk's LSTM and embedding inputs are 100 % non-zero).
DENSE_INPUT_ACTIVITY = 0.9


@dataclass
class Balance:
    """A balanced network and the permutations the host applies around it.

    Attributes
    ----------
    layers : list of QuantLayer
        The permuted layers (same functions, rows and columns reordered).
    input_perm : (in_len,) int64
        ``hw_in = x[..., input_perm]`` (identity if the input order was kept).
    output_perm : (out_len,) int64
        ``hw_out = logical_out[..., output_perm]``.
    row_perms : list of (out_len_l,) int64
        Every layer's row permutation (``row_perms[-1] is output_perm``).
    stats : list of dict
        Per layer: expected critical path before/after, padding before/after.
    """
    layers: list
    input_perm: np.ndarray
    output_perm: np.ndarray
    row_perms: list
    stats: list = field(default_factory=list)


def permute_input(x, input_perm) -> np.ndarray:
    """The input vector(s) in hardware order: ``x[..., input_perm]``."""
    x = np.asarray(x)
    perm = _check_perm(input_perm, x.shape[-1], "input_perm")
    return x[..., perm]


def unpermute_output(hw_out, output_perm) -> np.ndarray:
    """The logical output from the hardware's: ``logical[..., output_perm[h]] = hw_out[..., h]``."""
    hw_out = np.asarray(hw_out)
    perm = _check_perm(output_perm, hw_out.shape[-1], "output_perm")
    out = np.empty_like(hw_out)
    out[..., perm] = hw_out
    return out


def _check_perm(perm, n: int, what: str) -> np.ndarray:
    perm = np.asarray(perm)
    if perm.shape != (n,) or not np.issubdtype(perm.dtype, np.integer) or \
            not np.array_equal(np.sort(perm), np.arange(n)):
        raise ValueError(f"{what} must be a permutation of 0..{n - 1} (shape ({n},)), "
                         f"not an array of shape {perm.shape}")
    return perm.astype(np.int64)


def _pe_row_counts(out_len: int, pes: int) -> np.ndarray:
    """Rows of each PE under the hardware's interleave (row ``h`` -> PE ``h mod N``)."""
    k = np.arange(pes)
    return np.maximum(0, -(-(out_len - k) // pes))


def _perm_from_groups(groups: list, out_len: int, pes: int) -> np.ndarray:
    """Hardware row ``r * N + k`` <- the ``r``-th logical row of group ``k``."""
    perm = np.full(out_len, -1, np.int64)
    for k, rows in enumerate(groups):
        h = np.arange(len(rows)) * pes + k
        perm[h] = rows
    assert np.all(perm >= 0)
    return perm


def assign_rows(mask: np.ndarray, pes: int, activity=None, refine: bool = True) -> list:
    """Split the rows of a layer into ``pes`` groups, one per PE (steps 1 and 2 of the module docstring).

    ``mask`` is the (out_len, in_len) boolean non-zero pattern; ``activity``
    (in_len,) the probability that each input is non-zero (uniform if None).
    Group ``k`` has exactly as many rows as PE ``k`` has under the interleave;
    the rows of a group are returned in ascending order (see :func:`order_local_rows`).
    """
    out_len, in_len = mask.shape
    p = np.ones(in_len, np.float64) if activity is None else np.asarray(activity, np.float64)
    caps = _pe_row_counts(out_len, pes)
    rows_nz, cols_nz = np.nonzero(mask)                     # row-major: each row's columns contiguous
    starts = np.searchsorted(rows_nz, np.arange(out_len + 1))
    row_work = np.bincount(rows_nz, weights=p[cols_nz], minlength=out_len)   # expected entries of each row
    order = np.argsort(-row_work, kind="stable")
    load = np.zeros((in_len, pes), np.float32)              # entries of PE k in column j so far (column-major
    pw = p.astype(np.float32)                               # so that a row's columns gather contiguously)
    count = np.zeros(pes, np.int64)
    total = np.zeros(pes, np.float64)
    groups = [[] for _ in range(pes)]
    full = np.zeros(pes, bool)
    for i in order:
        cols = cols_nz[starts[i]:starts[i + 1]]
        cost = (pw[cols] @ load[cols]).astype(np.float64) if cols.size else np.zeros(pes)
        # Ties (empty PEs, empty rows): the PE with the least expected work.
        cost += total * 1e-9
        cost[full] = np.inf
        k = int(np.argmin(cost))
        groups[k].append(int(i))
        count[k] += 1
        full[k] = count[k] >= caps[k]
        total[k] += row_work[i]
        load[cols, k] += 1
    if refine:
        _refine_critical_path(groups, row_work, total)
    return [sorted(g) for g in groups]


def _refine_critical_path(groups: list, row_work: np.ndarray, total: np.ndarray, max_iter: int = 2000) -> None:
    """Swap rows between the busiest PE and the others while its expected work drops (in place)."""
    for _ in range(max_iter):
        k = int(np.argmax(total))
        a = np.asarray(groups[k])
        if a.size == 0:
            return
        best = None
        for m in np.argsort(total):
            m = int(m)
            gap = total[k] - total[m]
            if m == k or gap <= 1e-9:
                break
            b = np.asarray(groups[m])
            if b.size == 0:
                continue
            d = row_work[a][:, None] - row_work[b][None, :]     # work moved from k to m by swapping
            new_max = np.maximum(total[k] - d, total[m] + d)
            new_max[d <= 0] = np.inf
            i, j = np.unravel_index(int(np.argmin(new_max)), new_max.shape)
            if new_max[i, j] < total[k] - 1e-9:
                best = (m, int(i), int(j), float(d[i, j]))
                break
        if best is None:
            return
        m, i, j, delta = best
        groups[k][i], groups[m][j] = groups[m][j], groups[k][i]
        total[k] -= delta
        total[m] += delta


def order_local_rows(mask: np.ndarray, rows, max_zrun: int, activity=None, candidates: int = 128,
                     seed: int = 0) -> list:
    """Order the rows of one PE to reduce zero-run padding (step 3 of the module docstring).

    Greedy: the next local row is the one covering the live columns (columns
    with entries still to come in this PE) whose current zero run is longest,
    weighted by the square of the run and the column's activity. Long slices
    (more than ``candidates`` rows, i.e. few PEs) pick among ``candidates``
    random remaining rows per step, which keeps the cost linear in the rows.
    Slices of at most ``max_zrun + 1`` rows never need padding and keep their order.
    """
    from scipy.sparse import csr_matrix
    rows = list(rows)
    span = max_zrun + 1
    if len(rows) <= span:
        return rows
    in_len = mask.shape[1]
    p = np.ones(in_len, np.float32) if activity is None else np.asarray(activity, np.float32)
    slice_ = csr_matrix(mask[rows], dtype=np.float32)
    indptr, indices = slice_.indptr, slice_.indices
    remaining = np.bincount(indices, minlength=in_len)
    last = np.full(in_len, -1, np.int64)                    # step of each column's last entry or padding
    left = np.arange(len(rows))                             # local indices not placed yet
    rng = np.random.default_rng(seed)
    out = []
    for step in range(len(rows)):
        run = (step - 1 - last).astype(np.float32)          # zeros since then
        w = run * run * p * (remaining > 0)
        pick = left if len(left) <= candidates else rng.choice(left, candidates, replace=False)
        score = slice_[pick] @ w
        i = int(pick[int(np.argmax(score))])
        out.append(rows[i])
        left = left[left != i]
        c = indices[indptr[i]:indptr[i + 1]]
        remaining[c] -= 1
        last[c] = step
        # A padding entry restarts the run: after span zeros the run counts from there.
        grown = step - last >= span
        last[grown] = step
    return out


def order_columns(col_entries: np.ndarray, active=None, candidates: int = 256, seed: int = 0,
                  slack: float = 0.0) -> np.ndarray:
    """A broadcast order of the columns that keeps the activation queues short (step 4).

    ``col_entries`` (pes, in_len) is each PE's work per column; ``active``
    (in_len,) bool selects the columns to order (the rest keep their places
    after them, in index order). Greedy on a fluid model: every broadcast
    drains one entry of each PE's backlog and adds that PE's work in the
    column; the next column is, among ``candidates`` random remaining ones, the
    one that minimises the sum of squared backlogs beyond ``slack`` entries (a
    backlog the queue holds without stalling anyone costs nothing).
    """
    pes, in_len = col_entries.shape
    act = np.ones(in_len, bool) if active is None else np.asarray(active, bool)
    todo = np.flatnonzero(act)
    rest = np.flatnonzero(~act)
    rng = np.random.default_rng(seed)
    work = col_entries.T.astype(np.float32)                 # (in_len, pes)
    backlog = np.zeros(pes, np.float32)
    order = np.empty(len(todo), np.int64)
    remaining = todo.copy()
    for step in range(len(todo)):
        n = len(remaining)
        pick = rng.choice(n, candidates, replace=False) if n > candidates else np.arange(n)
        nb = np.maximum(backlog - 1.0, 0.0)[None, :] + work[remaining[pick]]
        over = np.maximum(nb - slack, 0.0)
        c = int(np.argmin((over * over).sum(axis=1)))
        order[step] = remaining[pick[c]]
        backlog = nb[c]
        remaining = np.delete(remaining, pick[c])
    return np.concatenate([order, rest])


def identity_balance(layers: list) -> Balance:
    """The plain interleave as a :class:`Balance` (identity permutations)."""
    perms = [np.arange(layer.out_len, dtype=np.int64) for layer in layers]
    return Balance(layers=list(layers), input_perm=np.arange(layers[0].in_len, dtype=np.int64),
                   output_perm=perms[-1], row_perms=perms, stats=[])


def _activities(layers: list, cfg: EIEConfig, x_calib) -> list:
    """Per layer, the fraction of calibration inputs that are non-zero, per input column (None: unknown)."""
    if x_calib is None:
        return [None] * len(layers)
    from .reference import forward_all
    xs = np.asarray(x_calib)
    if xs.ndim == 1:
        xs = xs[None, :]
    # The last layer's output is not needed: its activity weights nothing.
    acts = forward_all(layers[:-1], xs, cfg) if len(layers) > 1 else [xs]
    return [np.mean(a != 0, axis=0) for a in acts[:len(layers)]]


def _order_helps(cfg: EIEConfig, enc, order: np.ndarray, x_calib) -> bool:
    """Whether broadcasting in ``order`` takes fewer cycles than in index order, summed over
    (up to 4 of) the calibration inputs (``x_calib`` in the layer's current column order)."""
    from .cycle_model import layer_cycles
    xs = np.asarray(x_calib)
    xs = xs.reshape(-1, xs.shape[-1])[:4]
    before = sum(layer_cycles(cfg, enc.col_entries, x, enc.out_len).cycles for x in xs)
    after = sum(layer_cycles(cfg, enc.col_entries[:, order], x[order], enc.out_len).cycles for x in xs)
    return after < before


def _permute(layer: QuantLayer, rows: np.ndarray, cols: np.ndarray) -> QuantLayer:
    codes = layer.codes
    if not np.array_equal(rows, np.arange(layer.out_len)):
        codes = codes[rows]
    if not np.array_equal(cols, np.arange(layer.in_len)):
        codes = codes[:, cols]
    return QuantLayer(codes=codes, codebook=layer.codebook.copy(), bias=layer.bias[rows],
                      shift=layer.shift, relu=layer.relu, name=layer.name, in_frac=layer.in_frac,
                      out_frac=layer.out_frac, codebook_frac=layer.codebook_frac)


def _expected_stats(layer: QuantLayer, cfg: EIEConfig, p) -> dict:
    enc = encode_layer(layer, cfg)
    w = enc.col_entries if p is None else enc.col_entries * p[None, :]
    pe = w.sum(axis=1)
    return {"expected_max_pe_work": float(pe.max()), "expected_mean_pe_work": float(pe.mean()),
            "padding": enc.padding, "entries": enc.entries}


def balance_network(layers: list, cfg: EIEConfig, x_calib=None, *, reorder_input: bool = True,
                    pad_order: bool = True, refine: bool = True, seed: int = 0,
                    with_stats: bool = False) -> Balance:
    """Balance every layer of a network for ``cfg.pes`` PEs (see the module docstring).

    ``x_calib``: optional calibration inputs ``(batch, in_len)`` (or one
    vector) of the network, used to weight columns by how often they are
    non-zero; without it every column counts the same. ``reorder_input``
    lets the first layer's input order change (the host applies
    ``input_perm``); it is used only if the first layer's inputs are dense
    (mean calibrated activity >= ``DENSE_INPUT_ACTIVITY``). ``with_stats``
    fills :attr:`Balance.stats` (costs two encodings per layer).
    """
    if not layers:
        raise ValueError("a network needs at least one layer")
    for l in range(1, len(layers)):
        if layers[l].in_len != layers[l - 1].out_len:
            raise ValueError(f"{layers[l]._who(l)}: in_len={layers[l].in_len} does not match the previous "
                             f"layer's out_len={layers[l - 1].out_len}")
    n = cfg.pes
    activity = _activities(layers, cfg, x_calib)
    col_perm = np.arange(layers[0].in_len, dtype=np.int64)
    out_layers, perms, stats = [], [], []
    for l, layer in enumerate(layers):
        # Activity of this layer's inputs, in the (already permuted) column order.
        p = None if activity[l] is None else activity[l][col_perm]
        permuted_cols = _permute(layer, np.arange(layer.out_len), col_perm)
        before = _expected_stats(permuted_cols, cfg, p) if with_stats else None
        mask = permuted_cols.codes != 0
        groups = assign_rows(mask, n, p, refine=refine)
        if pad_order:
            groups = [order_local_rows(mask, g, cfg.max_zrun, p) for g in groups]
        perm = _perm_from_groups(groups, layer.out_len, n)
        new = _permute(permuted_cols, perm, np.arange(layer.in_len))
        if l == 0 and reorder_input and p is not None and float(np.mean(p)) >= DENSE_INPUT_ACTIVITY:
            enc = encode_layer(new, cfg)
            # A backlog about the column buffer's depth is free (measured best on
            # NT-We for depths 2..16); keep the new order only if the cycle model
            # says it is faster on the calibration inputs (dense: exact).
            order = order_columns(enc.col_entries, seed=seed, slack=1.25 * cfg.column_buffer_depth)
            if _order_helps(cfg, enc, order, x_calib):
                new = _permute(new, np.arange(new.out_len), order)
                col_perm = col_perm[order]
        if with_stats:
            after = _expected_stats(new, cfg, None if activity[l] is None else activity[l][col_perm])
            stats.append({"layer": layer.name or str(l), "before": before, "after": after})
        out_layers.append(new)
        perms.append(perm)
        if l == 0:
            input_perm = col_perm.copy()
        col_perm = perm
    return Balance(layers=out_layers, input_perm=input_perm, output_perm=perms[-1], row_perms=perms, stats=stats)


def balance(layers: list, cfg: EIEConfig, x_calib=None) -> tuple:
    """Balanced layers and the output permutation, with the network's input order unchanged.

    Returns ``(layers', output_perm)`` with ``forward(layers', x)[..., h] ==
    forward(layers, x)[..., output_perm[h]]`` for every input ``x``; undo with
    :func:`unpermute_output`. Every PE keeps as many rows as under the plain
    interleave. Use :func:`balance_network` to also reorder the input.
    """
    b = balance_network(layers, cfg, x_calib, reorder_input=False)
    return b.layers, b.output_perm


def calibration_inputs(spec, seed: int = 0, samples: int = 16) -> np.ndarray:
    """Calibration inputs for a synthetic paper layer (:class:`eie.golden.synthetic.PaperLayer`).

    ``samples`` vectors with exactly ``round(act_density * in_len)`` non-zeros
    (value 1) at uniformly random places, from their own random stream: a
    compressor calibrates on training data, never on the benchmark input. Only
    which inputs are non-zero matters to the balancing.
    """
    rng = np.random.default_rng([seed, 0xCA11B, *spec.name.encode()])
    count = int(round(spec.act_density * spec.in_len))
    x = np.zeros((samples, spec.in_len), np.int64)
    for s in range(samples):
        x[s, rng.permutation(spec.in_len)[:count]] = 1
    return x
