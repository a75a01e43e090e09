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
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .config import EIEConfig
from .protocol import pack_layer_entry

__all__ = ["FORMAT_NAME", "FORMAT_VERSION", "FormatError", "LayerEntry", "NetworkImage", "read_manifest",
           "write_manifest", "check_network", "read_json", "read_npz", "read_npy", "expect_keys", "expect_array",
           "check_finite", "json_default"]

FORMAT_NAME = "eie-network"
FORMAT_VERSION = 1

RECOMPRESS = "re-run `eie compress` to write the folder again"


# -- validation of the files the tools read ----------------------------------------
#
# Every file a command reads goes through one of the readers below; a damaged,
# foreign or out-of-range file raises FormatError (a ValueError, so the CLI
# reports it as one line with exit status 2) naming the file, the problem and
# the fix. docs/format.md, "Validation", lists the rules.

class FormatError(ValueError):
    """A file the tools read is damaged, foreign or out of range.

    ``str()`` is one line: ``PATH: PROBLEM; FIX``. The CLI prints it as
    ``eie CMD: error: ...`` with exit status 2 (and with ``--json`` as
    ``{"error": ..., "file": ..., "problem": ..., "fix": ...}`` on stdout).
    """

    def __init__(self, path, problem: str, fix: str = RECOMPRESS):
        self.path, self.problem, self.fix = str(path), _one_line(problem), _one_line(fix)
        super().__init__(f"{self.path}: {self.problem}" + (f"; {self.fix}" if self.fix else ""))

    def to_dict(self) -> dict:
        return {"error": str(self), "file": self.path, "problem": self.problem, "fix": self.fix}


def _one_line(text) -> str:
    return " ".join(str(text).split())


def _reason(e: BaseException) -> str:
    text = _one_line(e) or "no details"
    return f"{type(e).__name__}: {text}"[:300]


def _reject_constant(name):
    raise ValueError(f"{name} is not a number JSON allows")


def _must_be_file(path: Path, what: str, fix: str) -> None:
    """FormatError unless ``path`` is an existing file (not a folder)."""
    if not path.exists():
        raise FormatError(path, f"no such {what}", fix)
    if path.is_dir():
        raise FormatError(path, f"is a folder, not a {what}", fix)


def read_json(path, *, what: str = "file", fix: str = RECOMPRESS):
    """The JSON document in ``path``; FormatError if it is missing, unreadable or not JSON (NaN and
    Infinity included)."""
    path = Path(path)
    _must_be_file(path, what, fix)
    try:
        text = path.read_bytes().decode("utf-8")
        return json.loads(text, parse_constant=_reject_constant)
    except UnicodeDecodeError as e:
        raise FormatError(path, f"is not UTF-8 text (byte {e.start}), so not a JSON {what}", fix) from None
    except ValueError as e:         # json.JSONDecodeError and the NaN/Infinity refusal
        raise FormatError(path, f"is not valid JSON ({_one_line(e)})", fix) from None
    except OSError as e:
        raise FormatError(path, f"cannot be read ({_reason(e)})", fix) from None


def read_npz(path, *, what: str = "archive", fix: str = RECOMPRESS) -> dict:
    """Every array of the ``.npz`` archive ``path``, read in full.

    FormatError when the file is missing, not a zip archive, truncated, fails
    its CRC-32 check, or holds something other than plain ``.npy`` arrays
    (object arrays would need pickle, which is never allowed)."""
    path = Path(path)
    _must_be_file(path, what, fix)
    try:
        with zipfile.ZipFile(path) as zf:
            bad = zf.testzip()      # reads every member: truncation and the CRC-32 of each
        if bad is not None:
            raise FormatError(path, f"member {bad!r} fails its CRC-32 check: the archive is corrupt", fix)
        arrays = {}
        with np.load(path, allow_pickle=False) as z:
            for key in z.files:
                arrays[key] = np.asarray(z[key])
        return arrays
    except FormatError:
        raise
    except Exception as e:  # zipfile.BadZipFile, EOFError, zlib.error, ValueError from the npy header, ...
        raise FormatError(path, f"is not a readable .npz {what}: truncated, corrupt or holding objects "
                                f"({_reason(e)})", fix) from None


def read_npy(path, *, what: str = "array file", fix: str = "save the array with numpy.save"):
    """The array in the ``.npy`` file ``path`` (no pickle); FormatError when missing or damaged."""
    path = Path(path)
    _must_be_file(path, what, fix)
    try:
        with open(path, "rb") as f:
            if f.read(6) == b"\x93NUMPY":      # a .npy: its header says how many bytes follow
                f.seek(0)
                version = np.lib.format.read_magic(f)
                reader = {(1, 0): np.lib.format.read_array_header_1_0,
                          (2, 0): np.lib.format.read_array_header_2_0}.get(version)
                shape, _, dtype = reader(f) if reader else ((), False, np.dtype(object))
                if not dtype.hasobject:
                    expected = f.tell() + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
                    size = path.stat().st_size
                    if size != expected:
                        raise FormatError(path, f"is {size} bytes but its header describes {expected}: "
                                                f"{'truncated' if size < expected else 'bytes appended'}", fix)
        arr = np.load(path, allow_pickle=False)
    except FormatError:
        raise
    except Exception as e:
        raise FormatError(path, f"is not a readable .npy {what}: truncated, corrupt or holding objects "
                                f"({_reason(e)})", fix) from None
    if not isinstance(arr, np.ndarray):      # np.load opens an .npz it is given as a .npy
        raise FormatError(path, f"is an .npz archive, not a .npy {what}", fix)
    return arr


def expect_keys(path, arrays: dict, required, *, optional=(), fix: str = RECOMPRESS) -> None:
    """FormatError unless ``arrays`` has every key of ``required`` and no key outside
    ``required`` and ``optional``."""
    required = list(required)
    missing = [k for k in required if k not in arrays]
    if missing:
        raise FormatError(path, f"lacks array(s) {', '.join(missing)}", fix)
    extra = sorted(set(arrays) - set(required) - set(optional))
    if extra:
        raise FormatError(path, f"has unexpected array(s) {', '.join(extra)} (a file this eie did not write, "
                                f"or a damaged one)", fix)


_KINDS = {"uint64": ("u", 8), "int64": ("i", 8), "uint8": ("u", 1), "bool": ("b", 1)}


def expect_array(path, name: str, arr, dtype: str, ndim: int, *, fix: str = RECOMPRESS) -> np.ndarray:
    """``arr`` if it has ``dtype`` (``uint64``, ``int64``, ``uint8``, ``str``) and ``ndim`` dimensions."""
    arr = np.asarray(arr)
    if dtype == "str":
        ok = arr.dtype.kind == "U"
    else:
        kind, size = _KINDS[dtype]
        ok = arr.dtype.kind == kind and arr.dtype.itemsize == size
    if not ok:
        raise FormatError(path, f"array {name!r} has dtype {arr.dtype}, not {dtype}", fix)
    if arr.ndim != ndim:
        raise FormatError(path, f"array {name!r} has shape {arr.shape}, not {ndim}-dimensional", fix)
    return arr


def check_finite(path, name: str, arr, fix: str) -> None:
    """FormatError if the float array ``arr`` holds NaN or an infinity."""
    arr = np.asarray(arr)
    if arr.dtype.kind in "fc" and arr.size and not np.all(np.isfinite(arr)):
        bad = np.argwhere(~np.isfinite(arr))[0]
        where = ", ".join(str(int(i)) for i in bad)
        raise FormatError(path, f"{name} holds {int(np.count_nonzero(~np.isfinite(arr)))} NaN or infinite "
                                f"value(s), the first at [{where}] ({arr[tuple(bad)]})", fix)


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
    chained : bool                    the layers run in sequence (``RUN n``); False for a program's
                                      layers (``eie.golden.program``), run a few at a time
    """
    config: EIEConfig
    layers: list
    spmat: np.ndarray
    ptr: np.ndarray
    codebook: np.ndarray
    bias: np.ndarray
    chained: bool = True

    def __post_init__(self):
        self.check()

    def check(self) -> None:
        """Raise ``ValueError`` naming the memory and the limit if anything does not fit.

        Checked: shapes and integer dtypes of every memory, their depths, the
        codebook and bias value ranges, every layer-table field (its range and
        width), that the layers chain (``in_len`` = the previous ``out_len``),
        that each layer's pointers, bias words and codebook slot lie inside the
        image, that pointers never decrease nor run past the Spmat words the
        image holds, and that every entry lands on one of its PE's rows (so the
        hardware never writes past an activation register file)."""
        c = self.config
        n = c.pes
        for name, arr, depth in (("spmat", self.spmat, c.spmat_depth), ("ptr", self.ptr, c.ptr_depth),
                                 ("bias", self.bias, c.bias_depth)):
            if not isinstance(arr, np.ndarray) or arr.ndim != 2 or arr.shape[0] != n:
                raise ValueError(f"memory image {name} must have shape (pes={n}, words), not "
                                 f"{getattr(arr, 'shape', type(arr).__name__)}")
            if arr.dtype.kind not in "iu":
                raise ValueError(f"memory image {name} must hold integers, not {arr.dtype}")
            if arr.shape[1] > depth:
                field_name = {"spmat": "spmat_depth", "ptr": "ptr_depth", "bias": "bias_depth"}[name]
                raise ValueError(f"memory image {name} needs {arr.shape[1]} words per PE but "
                                 f"EIEConfig.{field_name}={depth}; raise {field_name} or use more PEs")
        if self.spmat.dtype.kind == "i" and self.spmat.size and self.spmat.min() < 0:
            raise ValueError("memory image spmat holds negative words; Spmat words are unsigned")
        if c.spmat_word_bits < 64 and self.spmat.size and int(self.spmat.max()) >> c.spmat_word_bits:
            raise ValueError(f"memory image spmat holds a word wider than spmat_word_bits={c.spmat_word_bits} "
                             f"(entries_per_word * (index_bits + zrun_bits))")
        if not isinstance(self.codebook, np.ndarray) or self.codebook.ndim != 2 or \
                self.codebook.shape[1] != c.codebook_size:
            raise ValueError(f"codebook image must have shape (slots, {c.codebook_size}), not "
                             f"{getattr(self.codebook, 'shape', type(self.codebook).__name__)}")
        if self.codebook.dtype.kind not in "iu":
            raise ValueError(f"codebook image must hold integers, not {self.codebook.dtype}")
        if not self.layers:
            raise ValueError("the layer table is empty; a network needs at least one layer")
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
        slots = self.spmat.shape[1] * c.entries_per_word       # entry addresses the image holds per PE
        entries = None
        for k, layer in enumerate(self.layers):
            for name in ("in_len", "out_len"):
                v = getattr(layer, name)
                if not 1 <= v <= c.max_len:
                    raise ValueError(f"layer {k}: {name}={v} out of range 1..{c.max_len} "
                                     f"(pes * act_depth = {c.pes} * {c.act_depth})")
            if self.chained and k and layer.in_len != self.layers[k - 1].out_len:
                raise ValueError(f"layer {k}: in_len={layer.in_len} does not match layer {k - 1}'s "
                                 f"out_len={self.layers[k - 1].out_len} (the layers run in sequence)")
            layer.packed(c)  # every field fits its width
            if layer.ptr_base + layer.in_len + 1 > self.ptr.shape[1]:
                raise ValueError(f"layer {k}: pointers {layer.ptr_base}..{layer.ptr_base + layer.in_len} run past "
                                 f"the image's {self.ptr.shape[1]} pointers per PE")
            rows = (layer.out_len - np.arange(n) + n - 1) // n
            if layer.bias_base + int(rows.max()) > self.bias.shape[1]:
                raise ValueError(f"layer {k}: bias words {layer.bias_base}..{layer.bias_base + int(rows.max()) - 1} "
                                 f"run past the image's {self.bias.shape[1]} bias words per PE")
            if layer.codebook >= self.codebook.shape[0]:
                raise ValueError(f"layer {k}: codebook slot {layer.codebook} is beyond the image's "
                                 f"{self.codebook.shape[0]} codebooks")
            # A column holds at most one entry per local output row (each entry, padding
            # included, moves to a later row): the PEs count a column's entries in
            # clog2(act_depth) bits (modulo; eie.hw.layouts.column_layout).
            cols = self.ptr[:, layer.ptr_base:layer.ptr_base + layer.in_len + 1].astype(np.int64)
            lens = np.diff(cols, axis=1)
            bad = np.argwhere((lens < 0) | (lens > rows[:, None]))
            if bad.size:
                pe, j = (int(v) for v in bad[0])
                raise ValueError(f"layer {k}: PE {pe} column {j} has {int(lens[pe, j])} entries (pointers "
                                 f"{int(cols[pe, j])}..{int(cols[pe, j + 1])}), not 0..{int(rows[pe])}, its "
                                 f"local output rows: pointers must not decrease and a column holds at most "
                                 f"one entry per row; re-encode the layer (eie.golden.encode)")
            if cols.size and cols.min() < 0:
                pe = int(np.argmin(cols.min(axis=1)))
                raise ValueError(f"layer {k}: PE {pe} has a negative pointer ({int(cols[pe].min())})")
            past = np.flatnonzero(cols[:, -1] > slots)
            if past.size:
                pe = int(past[0])
                raise ValueError(f"layer {k}: PE {pe}'s pointers run to entry {int(cols[pe, -1])}, past the "
                                 f"{slots} entries of the image's {self.spmat.shape[1]} Spmat words per PE "
                                 f"(entries_per_word={c.entries_per_word})")
            # Every entry lands on a row of its PE: its row within the column is the running
            # sum of (zero run + 1) since the column's start, minus 1.
            if entries is None:
                entries = _entry_zruns(self.spmat, c)
            for pe in range(n):
                lo_e, hi_e = int(cols[pe, 0]), int(cols[pe, -1])
                if hi_e <= lo_e:
                    continue
                steps = entries[pe, lo_e:hi_e] + 1
                run = np.cumsum(steps)
                starts = np.repeat(cols[pe, :-1] - lo_e, lens[pe])   # each entry's column start
                before = np.concatenate([[0], run])[starts]
                row = run - before - 1
                if int(row.max()) >= int(rows[pe]):
                    e = int(np.argmax(row))
                    raise ValueError(f"layer {k}: PE {pe}'s entry {lo_e + e} lands on local row {int(row[e])} but "
                                     f"the PE has {int(rows[pe])} rows of this layer (zero runs too long)")

    # -- files ---------------------------------------------------------------
    def save(self, path) -> None:
        np.savez_compressed(path, spmat=self.spmat.astype(np.uint64), ptr=self.ptr.astype(np.int64),
                            codebook=self.codebook.astype(np.int64), bias=self.bias.astype(np.int64),
                            layers=np.array([[l.in_len, l.out_len, l.ptr_base, l.codebook, l.bias_base,
                                              l.shift, int(l.relu)] for l in self.layers],
                                            dtype=np.int64).reshape(-1, 7),
                            config=np.array(self.config.to_json()),
                            **({} if self.chained else {"chained": np.array(False)}))

    KEYS = ("config", "spmat", "ptr", "codebook", "bias", "layers")

    @classmethod
    def load(cls, path, *, fix: str = RECOMPRESS) -> "NetworkImage":
        """Read ``image.npz``; FormatError (naming ``path``) for anything damaged or out of range."""
        z = read_npz(path, what="memory image (image.npz)", fix=fix)
        expect_keys(path, z, cls.KEYS, optional=("chained",), fix=fix)
        chained = True
        if "chained" in z:
            chained = expect_array(path, "chained", z["chained"], "bool", 0, fix=fix)
            chained = bool(chained)
        text = str(expect_array(path, "config", z["config"], "str", 0, fix=fix))
        try:
            cfg = EIEConfig.from_json(text)
        except (ValueError, TypeError) as e:
            raise FormatError(path, f"its config is invalid ({_one_line(e)})", fix) from None
        table = expect_array(path, "layers", z["layers"], "int64", 2, fix=fix)
        if table.shape[1] != 7:
            raise FormatError(path, f"array 'layers' has shape {table.shape}, not (layers, 7)", fix)
        if np.any(table[:, :6] < 0) or np.any((table[:, 6] != 0) & (table[:, 6] != 1)):
            raise FormatError(path, "the layer table holds a negative field or a relu flag other than 0 or 1", fix)
        arrays = {"spmat": expect_array(path, "spmat", z["spmat"], "uint64", 2, fix=fix)}
        for name in ("ptr", "codebook", "bias"):
            arrays[name] = expect_array(path, name, z[name], "int64", 2, fix=fix)
        layers = [LayerEntry(*map(int, row[:6]), bool(row[6])) for row in table]
        try:
            return cls(cfg, layers, **arrays, chained=chained)
        except ValueError as e:
            raise FormatError(path, _one_line(e), fix) from None


def write_manifest(directory, config: EIEConfig, **content) -> Path:
    path = Path(directory) / "manifest.json"
    data = {"format": FORMAT_NAME, "format_version": FORMAT_VERSION, "config": config.to_dict(), **content}
    path.write_text(json.dumps(data, indent=2, default=json_default) + "\n")
    return path


def check_envelope(path, data, *, fix: str = RECOMPRESS) -> None:
    """FormatError unless ``data`` (a parsed JSON document) is an ``eie-network`` object of this format version."""
    if not isinstance(data, dict):
        raise FormatError(path, f"is a JSON {type(data).__name__}, not an object", fix)
    if data.get("format") != FORMAT_NAME:
        raise FormatError(path, f"format is {data.get('format')!r}, expected {FORMAT_NAME!r}", fix)
    version = data.get("format_version")
    if version != FORMAT_VERSION or isinstance(version, bool):
        raise FormatError(path, f"format_version {version!r} is not supported (this eie reads version "
                                f"{FORMAT_VERSION})", "re-run `eie compress` with this eie, or use the eie "
                                                      "that wrote the folder")


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def read_manifest(directory) -> dict:
    """The validated ``manifest.json`` of a compressed network folder.

    Checks the envelope (``format``, ``format_version``), the config, the
    ``files`` map, ``input_frac``/``output_frac`` and the permutations'
    types; :func:`check_network` checks it against the image."""
    directory = Path(directory)
    path = directory / "manifest.json"
    if not directory.is_dir():
        raise FormatError(directory, "is not a folder; pass the output folder of `eie compress`",
                          "run `eie compress -o DIR` and pass DIR")
    if not path.exists():
        raise FormatError(path, f"is missing, so {directory} is not a compressed network",
                          "run `eie compress -o DIR` first and pass DIR")
    data = read_json(path, what="manifest")
    check_envelope(path, data)
    if not isinstance(data.get("config"), dict):
        raise FormatError(path, "has no 'config' object")
    try:
        cfg = EIEConfig.from_dict(data["config"])
    except (ValueError, TypeError) as e:
        raise FormatError(path, f"its config is invalid ({_one_line(e)})") from None
    files = data.get("files", {})
    if not isinstance(files, dict) or not all(isinstance(k, str) and isinstance(v, str) and v and
                                              Path(v).name == v for k, v in files.items()):
        raise FormatError(path, "'files' must map names to file names inside the folder")
    for key in ("input_frac", "output_frac"):
        if key in data and not (_is_int(data[key]) and 0 <= data[key] < cfg.act_bits):
            raise FormatError(path, f"{key}={data[key]!r} is not an integer in 0..{cfg.act_bits - 1} (act_bits)")
    for key in ("input_perm", "output_perm"):
        perm = data.get(key)
        if perm is not None and not (isinstance(perm, list) and all(_is_int(v) for v in perm)
                                     and sorted(perm) == list(range(len(perm)))):
            raise FormatError(path, f"{key} is not a permutation of 0..n-1")
    if "layers" in data and not isinstance(data["layers"], list):
        raise FormatError(path, "'layers' must be a list")
    return data


def check_network(directory, manifest: dict, image: "NetworkImage") -> None:
    """FormatError unless the manifest agrees with the image (config, layer count, permutation lengths)."""
    path = Path(directory) / "manifest.json"
    image_name = manifest.get("files", {}).get("image", "image.npz")
    cfg = EIEConfig.from_dict(manifest["config"])
    if cfg != image.config:
        raise FormatError(path, f"its config (digest {cfg.digest}) differs from {image_name}'s "
                                f"(digest {image.config.digest}): the files are from different runs")
    layers = manifest.get("layers")
    if isinstance(layers, list) and len(layers) != len(image.layers):
        raise FormatError(path, f"lists {len(layers)} layers but {image_name} has {len(image.layers)}")
    for key, length, what in (("input_perm", image.layers[0].in_len, "inputs"),
                              ("output_perm", image.layers[-1].out_len, "outputs")):
        perm = manifest.get(key)
        if perm is not None and len(perm) != length:
            raise FormatError(path, f"{key} has {len(perm)} entries but the network has {length} {what}")


def _entry_zruns(spmat: np.ndarray, cfg: EIEConfig) -> np.ndarray:
    """The zero run of every entry slot of every PE: ``(pes, words * entries_per_word)`` int64."""
    e = cfg.entries_per_word
    words = spmat.astype(np.uint64)
    shifts = np.arange(e, dtype=np.uint64) * np.uint64(cfg.entry_bits) + np.uint64(cfg.index_bits)
    z = (words[:, :, None] >> shifts) & np.uint64((1 << cfg.zrun_bits) - 1)
    return z.reshape(spmat.shape[0], -1).astype(np.int64)


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
