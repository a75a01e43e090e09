"""The EIE storage format: quantised layers, interleaved CSC, memory images.

A :class:`QuantLayer` is a pruned, weight-shared, fixed-point layer in dense
form (a matrix of codebook indices plus a codebook, a bias and a write-back
shift). :func:`encode_layer` turns it into the interleaved compressed-sparse-
column format of ``docs/format.md`` for ``N`` PEs (:class:`EncodedLayer`),
:func:`decode_layer` turns it back. :func:`build_image` lays a whole network out
in the memories of every PE (:class:`eie.format.NetworkImage`);
:func:`decode_image` recovers the layers from those memories alone.

The format, in short (EIE, ISCA 2016, section III-C):

* row ``i`` of the weight matrix (and output ``i``) belongs to PE ``i mod N``,
  where it is local row ``i // N``;
* PE ``k`` stores its slice of each column ``j`` as a list of entries ``(v, z)``:
  ``v`` the codebook index, ``z`` the number of zeros of the slice before the
  entry (since the previous entry of the column, or since the column's start);
* a gap of more than ``max_zrun`` zeros is bridged by padding entries
  ``(v=0, z=max_zrun)``; codebook code 0 always holds the value 0, so a padding
  entry adds nothing to its row;
* a pointer array per PE delimits the columns: column ``j`` is entries
  ``ptr[j] .. ptr[j+1]-1``.

Everything is vectorised with numpy: encoding AlexNet's FC6 (9216 x 4096, 9 %)
for 64 PEs takes about a second.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from eie.config import EIEConfig
from eie.format import LayerEntry, NetworkImage

__all__ = ["QuantLayer", "EncodedLayer", "encode_layer", "decode_layer", "build_image", "decode_image",
           "save_layers", "load_layers", "pack_entries", "unpack_entries"]


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def _as_int_array(value, what: str, dtype, ndim: int, lo=None, hi=None) -> np.ndarray:
    """``value`` as an integer array of ``dtype``; never wraps or truncates silently."""
    arr = np.asarray(value)
    if arr.ndim != ndim:
        raise ValueError(f"{what} must be a {ndim}-dimensional array, not shape {arr.shape}")
    if arr.dtype == bool or not (np.issubdtype(arr.dtype, np.integer) or arr.size == 0):
        raise ValueError(f"{what} must hold integers, not {arr.dtype}")
    if arr.size and lo is not None and (int(arr.min()) < lo or int(arr.max()) > hi):
        raise ValueError(f"{what} must be in range {lo}..{hi}, found {int(arr.min())}..{int(arr.max())}")
    return arr.astype(dtype, copy=False)


# -- layers in dense form ------------------------------------------------------

@dataclass(eq=False)
class QuantLayer:
    """One pruned, weight-shared, fixed-point fully-connected layer in dense form.

    The layer computes ``y = relu?(saturate(round(bias + W x, shift)))`` with
    ``W[i, j] = codebook[codes[i, j]]``; see :mod:`eie.golden.reference`.

    Attributes
    ----------
    codes : (out_len, in_len) uint8
        0 = pruned weight, ``1 .. 2**index_bits - 1`` = codebook index.
    codebook : (2**index_bits,) int64
        Signed ``codebook_bits`` integers; ``codebook[0] == 0`` always (padding
        entries use code 0).
    bias : (out_len,) int64
        Signed, in accumulator units (must fit ``bias_bits``); seeds the accumulator.
    shift : int
        Write-back right shift with round-half-up, ``0 .. acc_bits - 1``.
    relu : bool
        Apply ReLU at write-back.
    name, in_frac, out_frac, codebook_frac
        Metadata: fraction bits of the input activations, output activations and
        codebook values. The compressor sets ``shift = in_frac + codebook_frac -
        out_frac``; the hardware uses only ``shift``.

    Arrays are converted to the dtypes above on construction (a value that
    does not fit raises ``ValueError``); :meth:`check` checks against a config.
    """
    codes: np.ndarray
    codebook: np.ndarray
    bias: np.ndarray
    shift: int
    relu: bool
    name: str = ""
    in_frac: int = 0
    out_frac: int = 0
    codebook_frac: int = 0

    def __post_init__(self):
        who = self._who()
        self.codes = _as_int_array(self.codes, f"{who}: codes", np.uint8, 2, 0, 255)
        self.codebook = _as_int_array(self.codebook, f"{who}: codebook", np.int64, 1)
        self.bias = _as_int_array(self.bias, f"{who}: bias", np.int64, 1)
        if self.bias.shape != (self.out_len,):
            raise ValueError(f"{who}: bias must have shape (out_len,) = ({self.out_len},), not {self.bias.shape}")
        if isinstance(self.shift, bool) or not isinstance(self.shift, (int, np.integer)):
            raise ValueError(f"{who}: shift must be an integer, not {self.shift!r}")
        self.shift = int(self.shift)
        if not isinstance(self.relu, (bool, np.bool_)):
            raise ValueError(f"{who}: relu must be a bool, not {self.relu!r}")
        self.relu = bool(self.relu)
        for f in ("in_frac", "out_frac", "codebook_frac"):
            v = getattr(self, f)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
                raise ValueError(f"{who}: {f} must be an integer, not {v!r}")
            setattr(self, f, int(v))

    def _who(self, index=None) -> str:
        """How error messages name this layer: ``layer 2 ('fc3')``."""
        if index is None:
            return f"layer {self.name!r}" if self.name else "layer"
        return f"layer {index} ({self.name!r})" if self.name else f"layer {index}"

    @property
    def in_len(self) -> int:
        return self.codes.shape[1]

    @property
    def out_len(self) -> int:
        return self.codes.shape[0]

    @property
    def nnz(self) -> int:
        """Non-zero weights (non-zero codes)."""
        return int(np.count_nonzero(self.codes))

    @property
    def density(self) -> float:
        return self.nnz / max(1, self.codes.size)

    def weights(self) -> np.ndarray:
        """The integer weight matrix ``codebook[codes]`` (out_len, in_len) int64."""
        return self.codebook[self.codes]

    def check(self, cfg: EIEConfig, index: int | None = None, lengths: bool = True) -> None:
        """Raise ``ValueError`` if the layer does not fit ``cfg``.

        The message names the layer (``index`` and name), the field, the value
        and the config limit. ``lengths=False`` skips the ``max_len`` limit on
        ``in_len``/``out_len`` (for encoding layers larger than one run, e.g.
        work statistics of VGG-6 with the paper's 4K register files).
        """
        who = self._who(index)
        if lengths:
            for f in ("in_len", "out_len"):
                v = getattr(self, f)
                if not 1 <= v <= cfg.max_len:
                    raise ValueError(f"{who}: {f}={v} is out of range 1..{cfg.max_len} (max_len = pes * act_depth "
                                     f"= {cfg.pes} * {cfg.act_depth}); raise EIEConfig.act_depth or pes")
        elif self.in_len < 1 or self.out_len < 1:
            raise ValueError(f"{who}: shape {self.codes.shape} is empty; in_len and out_len must be at least 1")
        if self.codebook.shape != (cfg.codebook_size,):
            raise ValueError(f"{who}: codebook must have {cfg.codebook_size} entries (2**index_bits, "
                             f"index_bits={cfg.index_bits}), not {self.codebook.shape[0]}")
        if self.codes.size and int(self.codes.max()) >= cfg.codebook_size:
            i, j = np.unravel_index(int(np.argmax(self.codes)), self.codes.shape)
            raise ValueError(f"{who}: codes[{i}, {j}]={int(self.codes[i, j])} is out of range "
                             f"0..{cfg.codebook_size - 1} (codebook_size = 2**index_bits, index_bits={cfg.index_bits})")
        if self.codebook[0] != 0:
            raise ValueError(f"{who}: codebook[0]={int(self.codebook[0])} must be 0 (code 0 is the pruned weight "
                             f"and the padding entry)")
        lo, hi = -(1 << (cfg.codebook_bits - 1)), (1 << (cfg.codebook_bits - 1)) - 1
        bad = np.flatnonzero((self.codebook < lo) | (self.codebook > hi))
        if bad.size:
            c = int(bad[0])
            raise ValueError(f"{who}: codebook[{c}]={int(self.codebook[c])} is out of range {lo}..{hi} "
                             f"(codebook_bits={cfg.codebook_bits})")
        lo, hi = -(1 << (cfg.bias_bits - 1)), (1 << (cfg.bias_bits - 1)) - 1
        bad = np.flatnonzero((self.bias < lo) | (self.bias > hi))
        if bad.size:
            r = int(bad[0])
            raise ValueError(f"{who}: bias[{r}]={int(self.bias[r])} is out of range {lo}..{hi} "
                             f"(bias_bits={cfg.bias_bits}; config bias_width={cfg.bias_width})")
        if not 0 <= self.shift <= cfg.acc_bits - 1:
            raise ValueError(f"{who}: shift={self.shift} is out of range 0..{cfg.acc_bits - 1} "
                             f"(acc_bits - 1, acc_bits={cfg.acc_bits})")

    def __eq__(self, other):
        if not isinstance(other, QuantLayer):
            return NotImplemented
        return (self.metadata() == other.metadata() and np.array_equal(self.codes, other.codes)
                and np.array_equal(self.codebook, other.codebook) and np.array_equal(self.bias, other.bias))

    __hash__ = None

    def metadata(self) -> dict:
        return {"name": self.name, "shift": self.shift, "relu": self.relu, "in_frac": self.in_frac,
                "out_frac": self.out_frac, "codebook_frac": self.codebook_frac}


# -- interleaved CSC -----------------------------------------------------------

@dataclass(eq=False)
class EncodedLayer:
    """Interleaved CSC of one layer for ``pes`` PEs (see the module docstring).

    Attributes
    ----------
    v, z : list of ``pes`` uint8 arrays
        PE ``k``'s entries, all columns concatenated in column order.
    ptr : (pes, in_len + 1) int64
        Relative pointers: PE ``k``'s column ``j`` is entries ``ptr[k, j] .. ptr[k, j+1]-1``.
    col_entries : (pes, in_len) int64
        Entries (padding included) of each PE's slice of each column.
    col_padding : (pes, in_len) int64
        Padding entries among ``col_entries``.
    """
    v: list
    z: list
    ptr: np.ndarray
    col_entries: np.ndarray
    col_padding: np.ndarray
    out_len: int
    in_len: int
    pes: int

    @property
    def pe_entries(self) -> np.ndarray:
        """Entries per PE, padding included (``pes``,) int64."""
        return self.ptr[:, -1].copy()

    @property
    def entries(self) -> int:
        """All entries of all PEs, padding included."""
        return int(self.ptr[:, -1].sum())

    @property
    def padding(self) -> int:
        """All padding entries of all PEs."""
        return int(self.col_padding.sum())

    @property
    def nnz(self) -> int:
        """Real (non-padding) entries: the non-zero weights."""
        return self.entries - self.padding

    def local_rows(self, k: int) -> int:
        """Rows of PE ``k``: global rows ``r * pes + k < out_len``."""
        return max(0, _ceil_div(self.out_len - k, self.pes))


def encode_layer(layer: QuantLayer, cfg: EIEConfig) -> EncodedLayer:
    """Encode ``layer`` into interleaved CSC for ``cfg.pes`` PEs with ``cfg.zrun_bits`` zero runs.

    Checks the layer against ``cfg`` except for the ``max_len`` length limit
    (which only matters once the layer is placed in a memory image), so that
    work statistics can be computed for layers larger than one run.
    """
    layer.check(cfg, lengths=False)
    return _encode_codes(layer.codes, cfg.pes, cfg.max_zrun)


def _encode_codes(codes: np.ndarray, pes: int, max_zrun: int) -> EncodedLayer:
    out_len, in_len = codes.shape
    n = pes
    rows_per_pe = _ceil_div(out_len, n)
    # Non-zeros in row-major order, i.e. for every column ascending global row,
    # hence ascending local row within each (PE, column) group.
    i, j = np.nonzero(codes)
    vals = codes[i, j]
    k = i % n
    r = i // n
    group = k * in_len + j                          # (PE, column) group, in storage order
    order = np.argsort(group * rows_per_pe + r, kind="stable")
    group, r, vals = group[order], r[order], vals[order]
    del i, j, k, order
    # Zeros before each non-zero within its group.
    prev = np.empty_like(r)
    if r.size:
        prev[0] = -1
        prev[1:] = np.where(group[1:] == group[:-1], r[:-1], -1)
    gap = r - prev - 1
    # A padding entry stands for max_zrun zeros and one more zero (its own row).
    span = max_zrun + 1
    pads = gap // span
    zlast = gap - pads * span
    per_nz = pads + 1
    ends = np.cumsum(per_nz)                        # one past each real entry, all PEs concatenated
    total = int(ends[-1]) if ends.size else 0
    v_all = np.zeros(total, np.uint8)
    z_all = np.full(total, max_zrun, np.uint8)
    v_all[ends - 1] = vals
    z_all[ends - 1] = zlast
    col_entries = np.bincount(group, weights=per_nz, minlength=n * in_len).astype(np.int64).reshape(n, in_len)
    col_padding = np.bincount(group, weights=pads, minlength=n * in_len).astype(np.int64).reshape(n, in_len)
    ptr = np.zeros((n, in_len + 1), np.int64)
    np.cumsum(col_entries, axis=1, out=ptr[:, 1:])
    bounds = np.concatenate([[0], np.cumsum(ptr[:, -1])])
    v = [v_all[bounds[q]:bounds[q + 1]].copy() for q in range(n)]
    z = [z_all[bounds[q]:bounds[q + 1]].copy() for q in range(n)]
    return EncodedLayer(v=v, z=z, ptr=ptr, col_entries=col_entries, col_padding=col_padding,
                        out_len=out_len, in_len=in_len, pes=n)


def decode_layer(enc: EncodedLayer, cfg: EIEConfig | None = None) -> np.ndarray:
    """The codes matrix (out_len, in_len) uint8 of an encoded layer.

    Raises ``ValueError`` if the encoding is malformed: pointers not starting at
    0, decreasing, or not matching the entry count; a zero run above
    ``cfg.max_zrun``; an entry beyond the PE's last row.
    """
    n, in_len, out_len = enc.pes, enc.in_len, enc.out_len
    if enc.ptr.shape != (n, in_len + 1):
        raise ValueError(f"pointer array must have shape (pes, in_len + 1) = ({n}, {in_len + 1}), not {enc.ptr.shape}")
    codes = np.zeros((out_len, in_len), np.uint8)
    for k in range(n):
        v = np.asarray(enc.v[k]).astype(np.int64)
        z = np.asarray(enc.z[k]).astype(np.int64)
        p = enc.ptr[k]
        if p[0] != 0 or np.any(np.diff(p) < 0) or p[-1] != len(v) or len(z) != len(v):
            raise ValueError(f"PE {k}: pointers must rise from 0 to the entry count {len(v)} "
                             f"(got {int(p[0])}..{int(p[-1])}, {len(z)} zero runs)")
        if cfg is not None and z.size and int(z.max()) > cfg.max_zrun:
            raise ValueError(f"PE {k}: zero run {int(z.max())} exceeds max_zrun={cfg.max_zrun} "
                             f"(zrun_bits={cfg.zrun_bits})")
        if not v.size:
            continue
        counts = np.diff(p)
        col = np.repeat(np.arange(in_len), counts)
        pos = np.cumsum(z + 1)                      # 1 + row of each entry, counted from the PE's first column
        base = np.concatenate([[0], pos])[p[:-1]]   # the count just before each column starts
        row = pos - np.repeat(base, counts) - 1
        rows_k = enc.local_rows(k)
        if int(row.max()) >= rows_k:
            e = int(np.argmax(row))
            raise ValueError(f"PE {k}: entry {e} (column {int(col[e])}) lands on local row {int(row[e])} but the PE "
                             f"has only {rows_k} rows (out_len={out_len}, pes={n})")
        real = v != 0
        codes[row[real] * n + k, col[real]] = v[real]
    return codes


# -- memory images -------------------------------------------------------------

def pack_entries(v: np.ndarray, z: np.ndarray, cfg: EIEConfig) -> np.ndarray:
    """Pack entries into Spmat words (uint64): entry ``e`` in word ``e // E``,
    slot ``e % E`` (slot 0 at the LSBs), entry = ``v | z << index_bits``.
    Unused slots of the last word are 0."""
    if cfg.spmat_word_bits > 64:
        raise ValueError(f"Spmat words of {cfg.spmat_word_bits} bits (entries_per_word * (index_bits + zrun_bits) = "
                         f"{cfg.entries_per_word} * {cfg.entry_bits}) do not fit the image's 64-bit words; "
                         f"lower EIEConfig.entries_per_word")
    e = cfg.entries_per_word
    entry = np.asarray(v, np.uint64) | (np.asarray(z, np.uint64) << np.uint64(cfg.index_bits))
    words = _ceil_div(len(entry), e)
    slots = np.zeros(words * e, np.uint64)
    slots[:len(entry)] = entry
    shifts = (np.arange(e, dtype=np.uint64) * np.uint64(cfg.entry_bits))
    return np.bitwise_or.reduce(slots.reshape(words, e) << shifts, axis=1) if words else np.zeros(0, np.uint64)


def unpack_entries(words: np.ndarray, cfg: EIEConfig) -> tuple[np.ndarray, np.ndarray]:
    """Inverse of :func:`pack_entries`: ``(v, z)`` of every slot of ``words`` (uint8 each)."""
    e = cfg.entries_per_word
    words = np.asarray(words, np.uint64)
    shifts = np.arange(e, dtype=np.uint64) * np.uint64(cfg.entry_bits)
    entry = ((words[:, None] >> shifts) & np.uint64((1 << cfg.entry_bits) - 1)).reshape(-1)
    v = (entry & np.uint64((1 << cfg.index_bits) - 1)).astype(np.uint8)
    z = (entry >> np.uint64(cfg.index_bits)).astype(np.uint8)
    return v, z


def _overflow_details(layers: list, encs: list, cfg: EIEConfig) -> list:
    """One line per overflowing memory, naming the first layer where it overflows (for :func:`build_image`)."""
    n, found = cfg.pes, {}
    if len(layers) > cfg.max_layers:
        found["max_layers"] = (f"network has {len(layers)} layers but EIEConfig.max_layers={cfg.max_layers}; "
                               f"raise max_layers")
    entry_base = np.zeros(n, np.int64)
    ptr_base = bias_base = 0
    for l, (layer, enc) in enumerate(zip(layers, encs)):
        who = layer._who(l)
        for f, v in (("in_len", layer.in_len), ("out_len", layer.out_len)):
            if v > cfg.max_len and "act_depth" not in found:
                found["act_depth"] = (f"{who}: {f}={v} is out of range 1..{cfg.max_len} (max_len = pes * act_depth "
                                      f"= {cfg.pes} * {cfg.act_depth}); raise EIEConfig.act_depth or pes")
        used = entry_base + enc.pe_entries
        worst = int(np.argmax(used))
        if int(used[worst]) > cfg.spmat_entries and "spmat_depth" not in found:
            found["spmat_depth"] = (f"{who}: Spmat overflow: PE {worst} needs {int(used[worst])} entries = "
                                    f"{_ceil_div(int(used[worst]), cfg.entries_per_word)} words through this layer "
                                    f"but EIEConfig.spmat_depth={cfg.spmat_depth} ({cfg.spmat_entries} entries); "
                                    f"raise spmat_depth or use more PEs")
        if ptr_base + layer.in_len + 1 > cfg.ptr_depth and "ptr_depth" not in found:
            found["ptr_depth"] = (f"{who}: pointer overflow: needs pointers {ptr_base}..{ptr_base + layer.in_len} "
                                  f"(in_len + 1 = {layer.in_len + 1}) but EIEConfig.ptr_depth={cfg.ptr_depth}; "
                                  f"raise ptr_depth")
        rows = _ceil_div(layer.out_len, n)
        if bias_base + rows > cfg.bias_depth and "bias_depth" not in found:
            found["bias_depth"] = (f"{who}: bias overflow: needs bias words {bias_base}..{bias_base + rows - 1} "
                                   f"(ceil(out_len / pes) = {rows}) but EIEConfig.bias_depth={cfg.bias_depth}; "
                                   f"raise bias_depth")
        entry_base, ptr_base, bias_base = used, ptr_base + layer.in_len + 1, bias_base + rows
    return [found[f] for f in ("max_layers", "act_depth", "spmat_depth", "ptr_depth", "bias_depth") if f in found]


def build_image(layers: list, cfg: EIEConfig, *, chained: bool = True) -> NetworkImage:
    """Lay ``layers`` out in the memories of ``cfg.pes`` PEs (see ``docs/format.md``).

    Per PE, the entries of all layers are concatenated (layer after layer) and
    packed ``entries_per_word`` per Spmat word; layer ``l`` uses ``in_len + 1``
    pointers (absolute entry addresses) starting at its ``ptr_base``, codebook
    slot ``l``, and bias words from its ``bias_base`` on (local row ``r`` at
    ``bias_base + r``; ``ceil(out_len / pes)`` words per layer). A network
    that does not fit raises one :class:`eie.golden.fit.ConfigFitError` (a
    ``ValueError``) naming every memory that overflows (the layer, the numbers,
    the config field to raise) and the smallest config that fits.
    ``chained=False``: the layers of a program (:mod:`.program`), which need
    not chain (each ``eie`` step runs a few of them).
    """
    from .fit import check, memory_needs

    n = cfg.pes
    if not layers:
        raise ValueError("a network needs at least one layer")
    for l, layer in enumerate(layers):
        layer.check(cfg, index=l, lengths=False)
        if chained and l and layer.in_len != layers[l - 1].out_len:
            raise ValueError(f"{layer._who(l)}: in_len={layer.in_len} does not match the previous layer's "
                             f"out_len={layers[l - 1].out_len}")
    encs = [encode_layer(layer, cfg) for layer in layers]
    check(cfg, memory_needs(layers, cfg, encs), _overflow_details(layers, encs, cfg))   # every overflow at once
    entry_base = np.zeros(n, np.int64)
    ptr_base = bias_base = 0
    ptr_parts, table = [], []
    bias = np.zeros((n, sum(_ceil_div(layer.out_len, n) for layer in layers)), np.int64)
    for l, (layer, enc) in enumerate(zip(layers, encs)):
        used = entry_base + enc.pe_entries
        rows = _ceil_div(layer.out_len, n)
        ptr_parts.append(enc.ptr + entry_base[:, None])
        padded = np.zeros(rows * n, np.int64)
        padded[:layer.out_len] = layer.bias
        bias[:, bias_base:bias_base + rows] = padded.reshape(rows, n).T
        table.append(LayerEntry(in_len=layer.in_len, out_len=layer.out_len, ptr_base=ptr_base, codebook=l,
                                bias_base=bias_base, shift=layer.shift, relu=layer.relu))
        entry_base = used
        ptr_base += layer.in_len + 1
        bias_base += rows
    words = _ceil_div(int(entry_base.max()), cfg.entries_per_word)
    spmat = np.zeros((n, words), np.uint64)
    for k in range(n):
        packed = pack_entries(np.concatenate([e.v[k] for e in encs]), np.concatenate([e.z[k] for e in encs]), cfg)
        spmat[k, :len(packed)] = packed
    ptr = np.concatenate(ptr_parts, axis=1)
    codebook = np.stack([layer.codebook for layer in layers]).astype(np.int64)
    return NetworkImage(config=cfg, layers=table, spmat=spmat, ptr=ptr, codebook=codebook, bias=bias,
                        chained=chained)


def decode_image(image: NetworkImage) -> list:
    """Recover the layers (codes, codebook, bias, shift, relu) from the memories of ``image`` alone.

    Metadata (names, fraction bits) is not part of the memories and comes back
    as defaults.
    """
    cfg = image.config
    n = cfg.pes
    unpacked = [unpack_entries(image.spmat[k], cfg) for k in range(n)]
    layers = []
    for l, entry in enumerate(image.layers):
        in_len, out_len = entry.in_len, entry.out_len
        if entry.ptr_base + in_len + 1 > image.ptr.shape[1]:
            raise ValueError(f"layer {l}: pointers {entry.ptr_base}..{entry.ptr_base + in_len} are beyond the "
                             f"image's {image.ptr.shape[1]} pointers")
        p = image.ptr[:, entry.ptr_base:entry.ptr_base + in_len + 1].astype(np.int64)
        v, z = [], []
        for k in range(n):
            lo, hi = int(p[k, 0]), int(p[k, -1])
            if hi > len(unpacked[k][0]) or lo > hi:
                raise ValueError(f"layer {l}, PE {k}: entries {lo}..{hi - 1} are beyond the image's "
                                 f"{len(unpacked[k][0])} Spmat slots")
            v.append(unpacked[k][0][lo:hi])
            z.append(unpacked[k][1][lo:hi])
        rel = p - p[:, :1]
        col_entries = np.diff(rel, axis=1)
        col_padding = np.stack([np.bincount(np.repeat(np.arange(in_len), col_entries[k])[v[k] == 0],
                                            minlength=in_len) for k in range(n)]).astype(np.int64)
        enc = EncodedLayer(v=v, z=z, ptr=rel, col_entries=col_entries, col_padding=col_padding,
                           out_len=out_len, in_len=in_len, pes=n)
        codes = decode_layer(enc, cfg)
        rows = _ceil_div(out_len, n)
        if entry.bias_base + rows > image.bias.shape[1]:
            raise ValueError(f"layer {l}: bias words {entry.bias_base}..{entry.bias_base + rows - 1} are beyond "
                             f"the image's {image.bias.shape[1]} bias words")
        bias = image.bias[:, entry.bias_base:entry.bias_base + rows].T.reshape(-1)[:out_len]
        if entry.codebook >= image.codebook.shape[0]:
            raise ValueError(f"layer {l}: codebook slot {entry.codebook} is beyond the image's "
                             f"{image.codebook.shape[0]} codebooks")
        layers.append(QuantLayer(codes=codes, codebook=image.codebook[entry.codebook].copy(), bias=bias.copy(),
                                 shift=entry.shift, relu=entry.relu))
    return layers


# -- files ---------------------------------------------------------------------

_LAYERS_FORMAT = "eie-layers"
_LAYERS_VERSION = 1


def save_layers(path, layers: list) -> None:
    """Write ``layers`` (with their metadata) to an ``.npz`` file (``layers.npz`` of docs/format.md)."""
    arrays = {}
    for l, layer in enumerate(layers):
        arrays[f"layer{l}_codes"] = layer.codes
        arrays[f"layer{l}_codebook"] = layer.codebook
        arrays[f"layer{l}_bias"] = layer.bias
    meta = {"format": _LAYERS_FORMAT, "version": _LAYERS_VERSION, "layers": [layer.metadata() for layer in layers]}
    np.savez_compressed(path, meta=np.array(json.dumps(meta)), **arrays)


_LAYER_META = {"name": str, "shift": int, "relu": bool, "in_frac": int, "out_frac": int, "codebook_frac": int}


def load_layers(path, *, fix: str = "re-run `eie compress` to write the folder again", chained: bool = True) -> list:
    """Read layers written by :func:`save_layers`.

    Everything is validated (:mod:`eie.format` readers): a truncated or corrupt
    archive, a missing or unexpected array, a wrong dtype or shape, metadata of
    the wrong type, or layers that do not chain raise
    :class:`eie.format.FormatError` naming ``path``."""
    from eie.format import FormatError, expect_array, expect_keys, read_npz
    data = read_npz(path, what="layers file (layers.npz)", fix=fix)
    if "meta" not in data:
        raise FormatError(path, "is not an eie layers file (no 'meta' record)", fix)
    text = expect_array(path, "meta", data["meta"], "str", 0, fix=fix)
    try:
        meta = json.loads(str(text))
    except ValueError as e:
        raise FormatError(path, f"its 'meta' record is not valid JSON ({' '.join(str(e).split())})", fix) from None
    if not isinstance(meta, dict) or meta.get("format") != _LAYERS_FORMAT or meta.get("version") != _LAYERS_VERSION:
        got = (meta.get("format"), meta.get("version")) if isinstance(meta, dict) else (type(meta).__name__, None)
        raise FormatError(path, f"format {got[0]!r} version {got[1]!r} is not supported (this eie reads "
                                f"{_LAYERS_FORMAT!r} version {_LAYERS_VERSION})", fix)
    metas = meta.get("layers")
    if not isinstance(metas, list) or not metas:
        raise FormatError(path, "its 'meta' record lists no layers", fix)
    for l, m in enumerate(metas):
        if not isinstance(m, dict) or set(m) != set(_LAYER_META) or not all(
                isinstance(m[k], t) and (t is bool or not isinstance(m[k], bool)) for k, t in _LAYER_META.items()):
            raise FormatError(path, f"layer {l}'s metadata must be an object with exactly "
                                    f"{', '.join(f'{k} ({t.__name__})' for k, t in _LAYER_META.items())}", fix)
    expect_keys(path, data, ["meta"] + [f"layer{l}_{part}" for l in range(len(metas))
                                        for part in ("codes", "codebook", "bias")], fix=fix)
    layers = []
    for l, m in enumerate(metas):
        codes = expect_array(path, f"layer{l}_codes", data[f"layer{l}_codes"], "uint8", 2, fix=fix)
        codebook = expect_array(path, f"layer{l}_codebook", data[f"layer{l}_codebook"], "int64", 1, fix=fix)
        bias = expect_array(path, f"layer{l}_bias", data[f"layer{l}_bias"], "int64", 1, fix=fix)
        try:
            layer = QuantLayer(codes=codes, codebook=codebook, bias=bias, **m)
        except ValueError as e:
            raise FormatError(path, f"layer {l}: {e}", fix) from None
        if chained and layers and layer.in_len != layers[-1].out_len:
            raise FormatError(path, f"layer {l}: in_len={layer.in_len} does not match layer {l - 1}'s "
                                    f"out_len={layers[-1].out_len}", fix)
        if not (codebook.size and codebook[0] == 0):
            raise FormatError(path, f"layer {l}: codebook[0] must be 0 (code 0 is the pruned weight)", fix)
        layers.append(layer)
    return layers


# The number format is chosen when compressing; re-encoding keeps it.
NUMBER_FORMAT = ("act_bits", "act_frac_bits", "codebook_bits", "index_bits")


def image_for_config(directory, cfg: EIEConfig | None = None, *, who: str = "this design", progress=None):
    """``(image, manifest, reencoded)`` for the compressed network in ``directory``.

    The stored ``image.npz`` when ``cfg`` is None or the config it was encoded
    for; otherwise ``layers.npz`` (config independent) re-encoded for ``cfg``.
    A ``cfg`` with another number format (:data:`NUMBER_FORMAT`) is refused:
    that is fixed when the network is quantised, so it has to be compressed
    again. ``who`` names the design in the errors; ``progress`` (a callable)
    hears about a re-encoding.
    """
    from eie.format import FormatError, check_network, read_manifest
    directory = Path(directory)
    manifest = read_manifest(directory)
    files = manifest.get("files", {})
    image_path = directory / files.get("image", "image.npz")
    if not image_path.exists():
        raise FormatError(image_path, "is missing", "re-run `eie compress` to write the folder again")
    image = NetworkImage.load(image_path)
    check_network(directory, manifest, image)
    if cfg is None or cfg == image.config:
        return image, manifest, False
    differ = [f for f in NUMBER_FORMAT if getattr(image.config, f) != getattr(cfg, f)]
    if differ:
        have = ", ".join(f"{f}={getattr(image.config, f)}" for f in differ)
        want = ", ".join(f"{f}={getattr(cfg, f)}" for f in differ)
        raise ValueError(f"{directory} was quantised with {have}, but {who} uses {want}; compress it for that "
                         f"number format (`eie compress --board NAME` or `--config` with the design's config)")
    layers_path = directory / files.get("layers", "layers.npz")
    if not layers_path.exists():
        raise ValueError(f"{directory} was compressed for another config (digest {image.config.digest}) and has "
                         f"no {layers_path.name} to re-encode; compress it with --config for {who}")
    layers = load_layers(layers_path, chained=image.chained)
    fix = "re-run `eie compress` to write the folder again"
    for l, layer in enumerate(layers):
        try:
            layer.check(image.config, index=l)      # the config it was quantised for
        except ValueError as e:
            raise FormatError(layers_path, str(e), fix) from None
    # The two files hold the same network: a value changed in one of them is damage.
    try:
        stored = decode_image(image)
    except ValueError as e:
        raise FormatError(image_path, str(e), fix) from None
    if len(stored) != len(layers):
        raise FormatError(layers_path, f"holds {len(layers)} layers but {image_path.name} {len(stored)}", fix)
    for l, (mine, theirs) in enumerate(zip(layers, stored)):
        for what in ("codes", "codebook", "bias", "shift", "relu"):
            if not np.array_equal(getattr(mine, what), getattr(theirs, what)):
                raise FormatError(layers_path, f"layer {l}'s {what} differ from those in {image_path.name}: one "
                                               f"of the files is damaged or they are from different runs", fix)
    if progress:
        progress(f"re-encoding {directory} for {who} ({cfg.pes} PEs, config {cfg.digest})")
    try:
        image = build_image(layers, cfg, chained=image.chained)
    except ValueError as e:
        raise ValueError(f"the network in {directory} does not fit {who}: {e}") from None
    return image, manifest, True
