"""On-disk format of a compressed network and of its memory image.

A compressed network is a folder (written by ``eie compress``)::

    manifest.json   format name and version, the EIEConfig, per-layer metadata
    layers.npz      the encoded layers in dense form (codes, codebooks, bias)
    image.npz       the per-PE memory images in the hardware's word layout

``docs/format.md`` is the normative description; this module reads and writes
the memory image (:class:`NetworkImage`) and the manifest envelope. The golden
model (``eie.golden``) produces both.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .config import EIEConfig
from .protocol import pack_layer_entry

__all__ = ["FORMAT_NAME", "FORMAT_VERSION", "LayerEntry", "NetworkImage", "read_manifest", "write_manifest", "json_default"]

FORMAT_NAME = "eie-network"
FORMAT_VERSION = 1


@dataclass(frozen=True)
class LayerEntry:
    """One layer-table entry, as the CCU sees it."""
    in_len: int
    out_len: int
    ptr_base: int
    codebook: int
    bias_base: int
    shift: int
    relu: bool

    def packed(self, cfg: EIEConfig) -> int:
        return pack_layer_entry(cfg, in_len=self.in_len, out_len=self.out_len, ptr_base=self.ptr_base,
                                codebook=self.codebook, bias_base=self.bias_base, shift=self.shift,
                                relu=int(self.relu))


@dataclass
class NetworkImage:
    """Contents of every memory of an EIE array, for one network.

    Arrays hold only the used prefix of each memory; the rest is don't-care.

    Attributes
    ----------
    spmat : (pes, words) uint64      Spmat words (entries packed LSB first)
    ptr : (pes, pointers) int64       column pointers, logical index order
    codebook : (slots, 2**index_bits) int64   signed codebook values, same for every PE
    bias : (pes, words) int64         signed bias words
    layers : list of LayerEntry       the layer table
    """
    config: EIEConfig
    layers: list
    spmat: np.ndarray
    ptr: np.ndarray
    codebook: np.ndarray
    bias: np.ndarray

    def __post_init__(self):
        self.check()

    def check(self) -> None:
        """Raise ``ValueError`` naming the memory and the limit if anything does not fit."""
        c = self.config
        n = c.pes
        for name, arr, depth in (("spmat", self.spmat, c.spmat_depth), ("ptr", self.ptr, c.ptr_depth),
                                 ("bias", self.bias, c.bias_depth)):
            if arr.ndim != 2 or arr.shape[0] != n:
                raise ValueError(f"memory image {name} must have shape (pes={n}, words), not {arr.shape}")
            if arr.shape[1] > depth:
                field_name = {"spmat": "spmat_depth", "ptr": "ptr_depth", "bias": "bias_depth"}[name]
                raise ValueError(f"memory image {name} needs {arr.shape[1]} words per PE but "
                                 f"EIEConfig.{field_name}={depth}; raise {field_name} or use more PEs")
        if self.codebook.ndim != 2 or self.codebook.shape[1] != c.codebook_size:
            raise ValueError(f"codebook image must have shape (slots, {c.codebook_size}), not {self.codebook.shape}")
        if self.codebook.shape[0] > c.max_layers or len(self.layers) > c.max_layers:
            raise ValueError(f"network has {max(len(self.layers), self.codebook.shape[0])} layers but "
                             f"EIEConfig.max_layers={c.max_layers}; raise max_layers")
        if len(self.codebook) and np.any(self.codebook[:, 0] != 0):
            raise ValueError("codebook code 0 must hold the value 0 in every slot (padding entries use it)")
        lo, hi = -(1 << (c.codebook_bits - 1)), (1 << (c.codebook_bits - 1)) - 1
        if self.codebook.size and (self.codebook.min() < lo or self.codebook.max() > hi):
            raise ValueError(f"codebook values must be in range {lo}..{hi} (codebook_bits={c.codebook_bits})")
        lo, hi = -(1 << (c.bias_bits - 1)), (1 << (c.bias_bits - 1)) - 1
        if self.bias.size and (self.bias.min() < lo or self.bias.max() > hi):
            raise ValueError(f"bias values must be in range {lo}..{hi} (bias_bits={c.bias_bits})")
        for k, layer in enumerate(self.layers):
            for name in ("in_len", "out_len"):
                v = getattr(layer, name)
                if not 1 <= v <= c.max_len:
                    raise ValueError(f"layer {k}: {name}={v} out of range 1..{c.max_len} "
                                     f"(pes * act_depth = {c.pes} * {c.act_depth})")
            layer.packed(c)  # every field fits its width
            # A column holds at most one entry per local output row (each entry, padding
            # included, moves to a later row): the PEs count a column's entries in
            # clog2(act_depth) bits (modulo; eie.hw.layouts.column_layout).
            cols = self.ptr[:, layer.ptr_base:layer.ptr_base + layer.in_len + 1].astype(np.int64)
            if cols.shape[1] == layer.in_len + 1:
                lens = np.diff(cols, axis=1)
                rows = (layer.out_len - np.arange(n) + n - 1) // n
                bad = np.argwhere((lens < 0) | (lens > rows[:, None]))
                if bad.size:
                    pe, j = (int(v) for v in bad[0])
                    raise ValueError(f"layer {k}: PE {pe} column {j} has {int(lens[pe, j])} entries (pointers "
                                     f"{int(cols[pe, j])}..{int(cols[pe, j + 1])}), not 0..{int(rows[pe])}, its "
                                     f"local output rows: pointers must not decrease and a column holds at most "
                                     f"one entry per row; re-encode the layer (eie.golden.encode)")

    # -- files ---------------------------------------------------------------
    def save(self, path) -> None:
        np.savez_compressed(path, spmat=self.spmat.astype(np.uint64), ptr=self.ptr.astype(np.int64),
                            codebook=self.codebook.astype(np.int64), bias=self.bias.astype(np.int64),
                            layers=np.array([[l.in_len, l.out_len, l.ptr_base, l.codebook, l.bias_base,
                                              l.shift, int(l.relu)] for l in self.layers],
                                            dtype=np.int64).reshape(-1, 7),
                            config=np.array(self.config.to_json()))

    @classmethod
    def load(cls, path) -> "NetworkImage":
        with np.load(path) as z:
            cfg = EIEConfig.from_json(str(z["config"]))
            layers = [LayerEntry(*map(int, row[:6]), bool(row[6])) for row in z["layers"]]
            return cls(cfg, layers, z["spmat"], z["ptr"], z["codebook"], z["bias"])


def write_manifest(directory, config: EIEConfig, **content) -> Path:
    path = Path(directory) / "manifest.json"
    data = {"format": FORMAT_NAME, "format_version": FORMAT_VERSION, "config": config.to_dict(), **content}
    path.write_text(json.dumps(data, indent=2, default=json_default) + "\n")
    return path


def read_manifest(directory) -> dict:
    path = Path(directory) / "manifest.json"
    if not path.exists():
        raise ValueError(f"{directory} is not a compressed network: {path} is missing (run `eie compress` first)")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{path} is not valid JSON ({e}); re-run `eie compress`") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path} is not a JSON object; re-run `eie compress`")
    if data.get("format") != FORMAT_NAME:
        raise ValueError(f"{path}: format is {data.get('format')!r}, expected {FORMAT_NAME!r}")
    if data.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"{path}: format_version {data.get('format_version')} is not supported "
                         f"(this eie reads version {FORMAT_VERSION})")
    return data


def json_default(o):
    """``json.dumps(default=...)`` for numpy scalars and arrays and objects with ``to_dict()``."""
    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.floating):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    if hasattr(o, "to_dict"):
        return o.to_dict()
    raise TypeError(f"cannot serialise {type(o).__name__}")
