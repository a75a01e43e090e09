"""Every damaged input is a clear error (issue #14, item 5).

A compressed folder (``eie compress`` of a small user model, with its
``model.pt``), a config file, inputs, labels and a data file are damaged one
way at a time -- truncated, emptied, deleted, bytes flipped, garbage appended,
keys dropped or added, dtypes, shapes and values changed, ``format_version``
changed, NaN and infinities put in -- and every command that reads the file
runs in-process (``eie.cli.main``). Each run must end with exit status 2 and
one line ``eie CMD: error: ...`` naming the file (with ``--json``, one JSON
error object on stdout), or, when the damage happens to be harmless, get as far
as the work the command exists for. That work is stubbed: the simulator build
(``eie.sim.runner.build``), the Verilog generator, the board elaboration, the
serial link and the training all raise :class:`Reached` instead, so no build
ever starts here, and reaching one counts as "accepted". A traceback (any
other exception) fails the test.

``test_named_damage`` holds the damage each validation rule exists for (each
must be refused); ``test_fuzz`` draws seeded random damage (``FUZZ_SEED``,
``FUZZ_CASES``) and prints the outcome counts; a failing case prints its
seed, case number and damage, which reproduce it.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import zipfile
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import numpy as np
import pytest

from eie.cli import main as eie_main
from eie.config import EIEConfig, preset
from eie.format import NetworkImage, read_manifest

FUZZ_SEED = int(os.environ.get("EIE_FUZZ_SEED", "14"))
FUZZ_CASES = int(os.environ.get("EIE_FUZZ_CASES", "160"))

FILES = ("manifest.json", "image.npz", "layers.npz", "model.pt", "config.json", "inputs.npy", "labels.npy",
         "data.npz")


class Reached(Exception):
    """The command got past its input checks to the work it exists for (stubbed)."""


# -- the pristine inputs -------------------------------------------------------------

@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
    """``root/``: ``net/`` (from `eie compress`), config.json (tiny, 8 PEs: the layers are re-encoded),
    inputs.npy, labels.npy, data.npz, and ``design/design.json`` (what `eie run --design` reads)."""
    import torch
    import torch.nn as nn
    root = tmp_path_factory.mktemp("pristine")
    torch.manual_seed(0)
    torch.save(nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10)), root / "user.pt")
    rc, _, err = run_cli(["compress", "--model", root / "user.pt", "-o", root / "net", "--json"])
    assert rc == 0, err
    preset("tiny").replace(pes=8).save(root / "config.json")
    rng = np.random.default_rng(0)
    np.save(root / "inputs.npy", rng.random((3, 64)) * 16)
    np.save(root / "labels.npy", np.arange(3, dtype=np.int64))
    np.savez(root / "data.npz", X_train=rng.random((8, 64), dtype=np.float32), y_train=np.arange(8) % 10,
             X_test=rng.random((4, 64), dtype=np.float32), y_test=np.arange(4))
    (root / "design").mkdir()
    (root / "design" / "design.json").write_text(json.dumps({"board": "icebreaker",
                                                             "config": preset("tiny").to_dict()}))
    return root


@pytest.fixture
def stubbed(monkeypatch):
    """Stub the work behind every command's input checks (see the module docstring)."""
    import eie.boards.link
    import eie.boards.top
    import eie.golden.models
    import eie.hw.verilog
    import eie.sim.runner

    def reached(*args, **kwargs):
        raise Reached()

    monkeypatch.setattr(eie.sim.runner, "build", reached)            # eie simulate: the simulator build
    monkeypatch.setattr(eie.hw.verilog, "generate", reached)         # eie generate
    monkeypatch.setattr(eie.boards.top, "make_core", reached)        # eie build: elaboration, then synthesis
    monkeypatch.setattr(eie.boards.link, "open_link", reached)       # eie run: the serial port
    monkeypatch.setattr(eie.golden.models, "accuracy", reached)      # eie compress: training starts


def _paths(root: Path) -> dict:
    net = root / "net"
    return {"manifest.json": net / "manifest.json", "image.npz": net / "image.npz",
            "layers.npz": net / "layers.npz", "model.pt": net / "model.pt", "config.json": root / "config.json",
            "inputs.npy": root / "inputs.npy", "labels.npy": root / "labels.npy", "data.npz": root / "data.npz"}


def _commands(root: Path, damaged: str) -> dict:
    """The commands that read ``damaged`` (a name of FILES), by name."""
    net, cfg, x, y = root / "net", root / "config.json", root / "inputs.npy", root / "labels.npy"
    simulate = ["simulate", net, "--inputs", x, "--labels", y, "--limit", "2", "--json"]
    simulate_cfg = ["simulate", net, "--inputs", x, "--config", cfg, "--limit", "2", "--json"]
    build = ["build", "--board", "icebreaker", "--config", cfg, "--model", net, "-o", root / "build", "--json"]
    run = ["run", net, "--board", "icebreaker", "--design", root / "design", "--port", "/dev/null",
           "--inputs", x, "--labels", y, "--limit", "2", "--json"]
    compress = ["compress", "--model", net / "model.pt", "--data", root / "data.npz", "--config", cfg,
                "-o", root / "out", "--json"]
    generate = ["generate", "--config", cfg, "-o", root / "gen", "--json"]
    by_file = {
        "manifest.json": {"simulate": simulate, "simulate --config": simulate_cfg, "build": build, "run": run,
                          "generate --config manifest": ["generate", "--config", net / "manifest.json", "--json"],
                          "compress --config manifest": ["compress", "--config", net / "manifest.json",
                                                         "-o", root / "out", "--json"]},
        "image.npz": {"simulate": simulate, "simulate --config": simulate_cfg, "build": build, "run": run},
        "layers.npz": {"simulate --config": simulate_cfg, "build": build},
        "model.pt": {"compress": compress},
        "config.json": {"generate": generate, "simulate --config": simulate_cfg, "build": build,
                        "compress": compress},
        "inputs.npy": {"simulate": simulate, "run": run},
        "labels.npy": {"simulate": simulate, "run": run},
        "data.npz": {"compress": compress,
                     "simulate --inputs data.npz": ["simulate", net, "--inputs", root / "data.npz", "--json"]},
    }
    return by_file[damaged]


def run_cli(argv):
    """``(status or "reached", stdout, stderr)`` of ``eie.cli.main(argv)`` in-process."""
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        try:
            rc = eie_main([str(a) for a in argv])
        except Reached:
            rc = "reached"
    return rc, out.getvalue(), err.getvalue()


def _load(name: str, path: Path, root: Path):
    """Run the loader of ``name`` on ``path`` directly."""
    from eie.golden.encode import load_layers
    from eie.golden.models import load_data, load_model, network_layers
    from eie.golden.quantize import load_inputs
    tiny = preset("tiny")
    if name == "manifest.json":
        return read_manifest(path.parent), EIEConfig.load(path)
    if name == "image.npz":
        return NetworkImage.load(path)
    if name == "layers.npz":
        return load_layers(path)
    if name == "model.pt":
        return network_layers(load_model(str(path)), tiny)
    if name == "config.json":
        return EIEConfig.load(path)
    if name == "inputs.npy":
        return load_inputs(str(path), tiny, 8, in_len=64)
    if name == "labels.npy":
        return load_inputs(str(root / "inputs.npy"), tiny, 8, labels=str(path))
    if name == "data.npz":
        return load_data(path, 64)
    raise AssertionError(name)


def check_damage(root: Path, name: str, what: str) -> dict:
    """Run the loader and every command that reads ``name`` on the damaged ``root``; assert the
    contract; return ``{command: 2 | "reached"}``."""
    path = _paths(root)[name]
    try:
        _load(name, path, root)
    except (ValueError, FileNotFoundError) as e:
        assert "\n" not in str(e), f"{what}: the loader's message is not one line: {e!r}"
    outcomes = {}
    for cmd, argv in _commands(root, name).items():
        rc, out, err = run_cli(argv)
        where = f"{what}: `eie {' '.join(map(str, argv))}`"
        assert "Traceback" not in err, f"{where} printed a traceback:\n{err}"
        if rc == "reached":
            outcomes[cmd] = rc
            continue
        assert rc == 2, f"{where} exited {rc}, not 2:\n{err}"
        errors = [line for line in err.splitlines() if ": error: " in line]
        assert len(errors) == 1 and err.rstrip("\n").splitlines()[-1] == errors[0], \
            f"{where}: not exactly one error line, last on stderr:\n{err}"
        assert errors[0].startswith(f"eie {argv[0]}: error: "), f"{where}: {errors[0]}"
        assert name in errors[0] or str(path) in errors[0] or path.name in errors[0], \
            f"{where}: the error does not name {name}: {errors[0]}"
        doc = json.loads(out)           # --json: exactly one JSON document on stdout
        assert set(doc) >= {"error"} and doc["error"] in errors[0], f"{where}: {out!r}"
        outcomes[cmd] = rc
    return outcomes


# -- damage ------------------------------------------------------------------------

def _rewrite_npz(path: Path, change) -> None:
    with np.load(path, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    change(arrays)
    np.savez_compressed(path, **arrays)


def _rewrite_json(path: Path, change) -> None:
    data = json.loads(path.read_text())
    data = change(data) or data
    path.write_text(json.dumps(data))


def _set_array(path, key, change):
    def edit(arrays):
        arrays[key] = change(arrays[key].copy())
    _rewrite_npz(path, edit)


def _poke(arr, index, value):
    arr[index] = value
    return arr


def _damage_config_string(path, key, change):
    """Change the JSON text stored as the 0-d string array ``key`` of an npz."""
    _set_array(path, key, lambda a: np.array(json.dumps(change(json.loads(str(a))))))


NAMED = {
    # name: (file, damage(path), what the refusal names)
    "manifest truncated": ("manifest.json", lambda p: p.write_bytes(p.read_bytes()[:100]), "not valid JSON"),
    "manifest not UTF-8": ("manifest.json", lambda p: p.write_bytes(b"\xff" + p.read_bytes()), "UTF-8"),
    "manifest format_version 2": ("manifest.json", lambda p: _rewrite_json(
        p, lambda d: d.__setitem__("format_version", 2)), "format_version 2 is not supported"),
    "manifest NaN": ("manifest.json", lambda p: p.write_text(p.read_text().replace(
        '"input_frac": 8', '"input_frac": NaN')), "not valid JSON"),
    "manifest input_frac out of range": ("manifest.json", lambda p: _rewrite_json(
        p, lambda d: d.__setitem__("input_frac", 99)), "input_frac"),
    "manifest output_perm not a permutation": ("manifest.json", lambda p: _rewrite_json(
        p, lambda d: d.__setitem__("output_perm", [0] * 10)), "output_perm"),
    "manifest output_perm too short": ("manifest.json", lambda p: _rewrite_json(
        p, lambda d: d.__setitem__("output_perm", [0, 1])), "output_perm"),
    "manifest config differs from the image's": ("manifest.json", lambda p: _rewrite_json(
        p, lambda d: d["config"].__setitem__("fifo_depth", 16)), "differs"),
    "manifest files outside the folder": ("manifest.json", lambda p: _rewrite_json(
        p, lambda d: d["files"].__setitem__("image", "../image.npz")), "files"),
    "image truncated": ("image.npz", lambda p: p.write_bytes(p.read_bytes()[:-40]), "truncated"),
    "image byte flipped (CRC)": ("image.npz", lambda p: _flip_member_byte(p, "ptr.npy"), "CRC-32"),
    "image without ptr": ("image.npz", lambda p: _rewrite_npz(p, lambda a: a.pop("ptr")), "lacks array"),
    "image with an extra array": ("image.npz", lambda p: _rewrite_npz(
        p, lambda a: a.__setitem__("extra", np.zeros(2))), "unexpected"),
    "image ptr as float": ("image.npz", lambda p: _set_array(p, "ptr", lambda a: a.astype(float)), "dtype"),
    "image spmat as int64": ("image.npz", lambda p: _set_array(p, "spmat", lambda a: a.astype(np.int64)), "dtype"),
    "image pointers decrease": ("image.npz", lambda p: _set_array(
        p, "ptr", lambda a: _poke(a, (1, 3), a[1, 2] - 1)), "must not decrease"),
    "image pointers past the Spmat": ("image.npz", lambda p: _set_array(
        p, "spmat", lambda a: a[:, :1]), "past the"),
    "image pointers past the pointer memory": ("image.npz", lambda p: _set_array(
        p, "ptr", lambda a: a[:, :-3]), "pointers per PE"),
    "image negative pointer": ("image.npz", lambda p: _set_array(
        p, "ptr", lambda a: a - a[:, :1] - 1), "negative pointer"),
    "image zero runs past the rows": ("image.npz", lambda p: _set_array(
        p, "spmat", lambda a: a | np.uint64(0xF0)), "lands on local row"),
    "image bias out of range": ("image.npz", lambda p: _set_array(
        p, "bias", lambda a: _poke(a, (0, 0), 1 << 62)), "bias values"),
    "image bias words missing": ("image.npz", lambda p: _set_array(p, "bias", lambda a: a[:, :2]), "bias words"),
    "image codebook slot missing": ("image.npz", lambda p: _set_array(p, "codebook", lambda a: a[:1]),
                                    "codebook slot"),
    "image layers do not chain": ("image.npz", lambda p: _set_array(
        p, "layers", lambda a: _poke(a, (1, 0), 31)), "does not match"),
    "image relu flag 2": ("image.npz", lambda p: _set_array(p, "layers", lambda a: _poke(a, (0, 6), 2)), "relu"),
    "image spmat_depth below its words": ("image.npz", lambda p: _damage_config_string(
        p, "config", lambda c: {**c, "spmat_depth": 1}), "spmat"),
    "image config of another format": ("image.npz", lambda p: _set_array(
        p, "config", lambda a: np.array("{\"pes\": 4, \"colour\": 1}")), "config"),
    "layers truncated": ("layers.npz", lambda p: p.write_bytes(p.read_bytes()[:300]), "truncated"),
    "layers without meta": ("layers.npz", lambda p: _rewrite_npz(p, lambda a: a.pop("meta")), "meta"),
    "layers without codes": ("layers.npz", lambda p: _rewrite_npz(p, lambda a: a.pop("layer1_codes")),
                             "lacks array"),
    "layers codes as float": ("layers.npz", lambda p: _set_array(
        p, "layer0_codes", lambda a: a.astype(np.float32)), "dtype"),
    "layers code out of range": ("layers.npz", lambda p: _set_array(
        p, "layer0_codes", lambda a: _poke(a, (0, 0), 200)), "codes"),
    "layers bias shape": ("layers.npz", lambda p: _set_array(p, "layer1_bias", lambda a: a[:-1]), "bias"),
    "layers meta version 9": ("layers.npz", lambda p: _damage_config_string(
        p, "meta", lambda m: {**m, "version": 9}), "version 9"),
    "layers meta shift as text": ("layers.npz", lambda p: _damage_config_string(
        p, "meta", lambda m: {**m, "layers": [{**l, "shift": "3"} for l in m["layers"]]}), "metadata"),
    "model truncated": ("model.pt", lambda p: p.write_bytes(p.read_bytes()[:500]), "model file"),
    "model with NaN weights": ("model.pt", lambda p: _nan_model(p), "NaN"),
    "config missing": ("config.json", lambda p: p.unlink(), "--config expects"),
    "config a folder": ("config.json", lambda p: (p.unlink(), p.mkdir()), "--config expects"),
    "config unknown field": ("config.json", lambda p: _rewrite_json(
        p, lambda d: d.__setitem__("colour", 3)), "unknown field"),
    "config pes out of range": ("config.json", lambda p: _rewrite_json(
        p, lambda d: d.__setitem__("pes", 0)), "pes"),
    "config manifest of format_version 7": ("config.json", lambda p: _rewrite_json(
        p, lambda d: {"format": "eie-network", "format_version": 7, "config": d}), "format_version 7"),
    "inputs NaN": ("inputs.npy", lambda p: np.save(p, _poke(np.load(p), (1, 5), np.nan)), "NaN"),
    "inputs infinite": ("inputs.npy", lambda p: np.save(p, _poke(np.load(p), (0, 0), -np.inf)), "infinite"),
    "inputs truncated": ("inputs.npy", lambda p: p.write_bytes(p.read_bytes()[:-7]), "truncated"),
    "inputs object array": ("inputs.npy", lambda p: np.save(p, np.array([[1, "a"]], dtype=object),
                                                            allow_pickle=True), "holding objects"),
    "inputs wrong length": ("inputs.npy", lambda p: np.save(p, np.load(p)[:, :60]), "values each"),
    "inputs integers out of range": ("inputs.npy", lambda p: np.save(p, np.full((2, 64), 1 << 20)), "fixed-point"),
    "labels float": ("labels.npy", lambda p: np.save(p, np.load(p).astype(float)), "labels"),
    "labels out of range": ("labels.npy", lambda p: np.save(p, np.array([0, 1, 10])), "not all outputs"),
    "inputs with bytes appended": ("inputs.npy", lambda p: p.write_bytes(p.read_bytes() + b"\0" * 8),
                                   "bytes appended"),
    "layers codebook value changed": ("layers.npz", lambda p: _set_array(
        p, "layer1_codebook", lambda a: _poke(a, 3, a[3] + 1)), "differ from those in image.npz"),
    "layers bias value changed": ("layers.npz", lambda p: _set_array(
        p, "layer0_bias", lambda a: _poke(a, 5, a[5] - 1)), "differ from those in image.npz"),
    "model byte flipped (CRC)": ("model.pt", lambda p: _flip_last_member_byte(p), "CRC-32"),
    "data labels out of range": ("data.npz", lambda p: _set_array(p, "y_test", lambda a: _poke(a, 0, 10)),
                                 "labels"),
    "data NaN": ("data.npz", lambda p: _set_array(p, "X_test", lambda a: _poke(a, (0, 0), np.nan)), "NaN"),
    "data without y_test": ("data.npz", lambda p: _rewrite_npz(p, lambda a: a.pop("y_test")), "lacks array"),
    "data truncated": ("data.npz", lambda p: p.write_bytes(p.read_bytes()[:200]), "truncated"),
}


def _flip_member_byte(path: Path, member: str) -> None:
    """Store the archive uncompressed, then flip one byte of ``member``'s array data: the archive
    stays readable, only the member's CRC-32 no longer matches."""
    with np.load(path, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    np.savez(path, **arrays)
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as zf:
        info = zf.getinfo(member)
    name_len = int.from_bytes(data[info.header_offset + 26:info.header_offset + 28], "little")
    extra_len = int.from_bytes(data[info.header_offset + 28:info.header_offset + 30], "little")
    start = info.header_offset + 30 + name_len + extra_len
    data[start + info.compress_size - 3] ^= 0x5A       # the last bytes: array data, past the .npy header
    path.write_bytes(bytes(data))


def _flip_last_member_byte(path: Path) -> None:
    """Flip a byte in the middle of the zip's largest member (a torch.save file stores its tensors
    uncompressed): the file still opens, the member's CRC-32 no longer matches."""
    with zipfile.ZipFile(path) as zf:
        info = max(zf.infolist(), key=lambda i: i.compress_size)
    data = bytearray(path.read_bytes())
    with open(path, "rb") as f:
        f.seek(info.header_offset + 26)
        name_len, extra_len = (int.from_bytes(f.read(2), "little") for _ in range(2))
    data[info.header_offset + 30 + name_len + extra_len + info.compress_size // 2] ^= 0x40
    path.write_bytes(bytes(data))


def _nan_model(path: Path) -> None:
    import torch
    model = torch.load(path, weights_only=False)
    with torch.no_grad():
        model[0].weight[0, 0] = float("nan")
    torch.save(model, path)


def _fresh(pristine: Path, work: Path) -> Path:
    root = work / "case"
    if root.exists():
        shutil.rmtree(root)
    shutil.copytree(pristine, root, ignore=shutil.ignore_patterns("build", "out", "gen"))
    return root


# Damage to what only a network folder's readers use (not its config): `generate --config
# manifest.json` and `compress --config manifest.json` rightly take the config and go on.
_CONFIG_ONLY = {"generate --config manifest", "compress --config manifest"}
_FOLDER_ONLY = {"manifest input_frac out of range", "manifest output_perm not a permutation",
                "manifest output_perm too short", "manifest config differs from the image's",
                "manifest files outside the folder"}


@pytest.mark.parametrize("case", sorted(NAMED))
def test_named_damage(case, pristine, stubbed, tmp_path):
    """Each rule's own damage is refused by every command that reads the file, naming the problem."""
    name, damage, says = NAMED[case]
    root = _fresh(pristine, tmp_path)
    damage(_paths(root)[name])
    outcomes = check_damage(root, name, case)
    may_accept = _CONFIG_ONLY if case in _FOLDER_ONLY else set()
    accepted = [c for c, o in outcomes.items() if o != 2 and c not in may_accept]
    assert not accepted, f"{case}: accepted by {accepted}"
    rc, _, err = run_cli(next(iter(_commands(root, name).values())))
    assert rc == 2 and says in err, f"{case}: the error does not say {says!r}: {err}"


def test_pristine_inputs_are_accepted(pristine, stubbed, tmp_path):
    """Undamaged, every command gets past its checks (so the refusals above are the damage's)."""
    root = _fresh(pristine, tmp_path)
    for name in FILES:
        _load(name, _paths(root)[name], root)
        assert set(check_damage(root, name, "pristine").values()) == {"reached"}, name


# -- seeded random damage ----------------------------------------------------------------

def _bytes_damage(rng, path: Path) -> str:
    data = path.read_bytes()
    op = rng.choice(["truncate", "flip", "flip3", "append", "empty", "delete", "zero-run"])
    if op == "truncate":
        cut = int(rng.integers(0, max(1, len(data))))
        path.write_bytes(data[:cut])
        return f"truncated to {cut} of {len(data)} bytes"
    if op in ("flip", "flip3"):
        b = bytearray(data)
        where = sorted(int(i) for i in rng.integers(0, len(b), 1 if op == "flip" else 3))
        for i in where:
            b[i] ^= int(rng.integers(1, 256))
        path.write_bytes(bytes(b))
        return f"bytes flipped at {where}"
    if op == "append":
        path.write_bytes(data + rng.bytes(int(rng.integers(1, 64))))
        return "garbage appended"
    if op == "empty":
        path.write_bytes(b"")
        return "emptied"
    if op == "delete":
        path.unlink()
        return "deleted"
    start = int(rng.integers(0, len(data)))
    n = int(rng.integers(1, 32))
    path.write_bytes(data[:start] + bytes(n) + data[start + n:])
    return f"{n} bytes zeroed at {start}"


_DTYPES = ["float64", "float32", "int32", "int16", "uint8", "uint64", "int64", "bool", "<U4"]
_VALUES = [-1, 0, 1, 2, 255, 1 << 16, 1 << 31, 1 << 40, -(1 << 62), (1 << 63) - 1]


def _array_damage(rng, arr: np.ndarray):
    """``(new array, description)`` of one random change to ``arr``."""
    op = rng.choice(["dtype", "value", "value", "shape"])
    if arr.dtype.kind == "U":       # JSON text: damage the text
        text = str(arr)
        i = int(rng.integers(0, max(1, len(text))))
        choice = rng.choice(["cut", "char", "digit"])
        if choice == "cut":
            return np.array(text[:i]), f"text cut at {i}"
        if choice == "digit":
            digits = [k for k, c in enumerate(text) if c.isdigit()]
            if digits:
                i = int(rng.choice(digits))
                return np.array(text[:i] + str(int(rng.integers(0, 10))) + text[i + 1:]), f"digit {i} changed"
        return np.array(text[:i] + chr(int(rng.integers(32, 127))) + text[i + 1:]), f"char {i} changed"
    if op == "dtype":
        dt = str(rng.choice([d for d in _DTYPES if np.dtype(d) != arr.dtype]))
        try:
            return arr.astype(dt), f"dtype {arr.dtype} -> {dt}"
        except (ValueError, OverflowError):
            return np.zeros(arr.shape, dt), f"dtype {arr.dtype} -> {dt} (zeros)"
    if op == "shape" or arr.size == 0:
        kind = rng.choice(["ravel", "transpose", "axis", "slice", "empty"])
        if kind == "ravel":
            return arr.ravel(), "raveled"
        if kind == "transpose":
            return arr.T.copy(), "transposed"
        if kind == "axis":
            return arr[None], "axis added"
        if kind == "empty":
            return arr[:0], "emptied"
        return (arr[..., :-1] if arr.ndim else arr), "last column cut"
    new = arr.copy()
    i = tuple(int(rng.integers(0, s)) for s in arr.shape)
    if arr.dtype.kind == "f":
        v = rng.choice([np.nan, np.inf, -np.inf, 1e30, -1.0])
    elif arr.dtype.kind == "b":
        v = not bool(arr[i])
    else:
        v = int(rng.choice(_VALUES + [int(arr[i]) + 1, int(arr[i]) - 1]))
        info = np.iinfo(arr.dtype)
        v = min(max(v, info.min), info.max)
    new[i] = v
    return new, f"value at {list(i)} -> {v}"


def _npz_damage(rng, path: Path) -> str:
    with np.load(path, allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}
    op = rng.choice(["drop", "add", "array", "array", "array"])
    key = str(rng.choice(sorted(arrays)))
    if op == "drop":
        del arrays[key]
        what = f"array {key} dropped"
    elif op == "add":
        arrays[f"extra{int(rng.integers(0, 9))}"] = rng.integers(0, 9, int(rng.integers(0, 5)))
        what = "an array added"
    else:
        arrays[key], change = _array_damage(rng, arrays[key])
        what = f"array {key}: {change}"
    np.savez_compressed(path, **arrays)
    return what


def _json_items(node, path=()):
    if isinstance(node, dict):
        for k, v in node.items():
            yield node, k, path + (k,)
            yield from _json_items(v, path + (k,))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield node, i, path + (i,)
            yield from _json_items(v, path + (i,))


def _json_damage(rng, path: Path) -> str:
    data = json.loads(path.read_text())
    items = list(_json_items(data))
    op = rng.choice(["drop", "add", "retype", "number", "number", "version"])
    if op == "version" and isinstance(data, dict):
        data["format_version"] = int(rng.choice([0, 2, -1, 99]))
        what = f"format_version -> {data['format_version']}"
    elif op == "add":
        parents = [data] + [p[k] for p, k, _ in items if isinstance(p[k], dict)]
        parent = parents[int(rng.integers(0, len(parents)))]
        parent[f"extra{int(rng.integers(0, 9))}"] = 1
        what = "a key added"
    else:
        parent, key, where = items[int(rng.integers(0, len(items)))]
        if op == "drop":
            del parent[key]
            what = f"{list(where)} dropped"
        elif op == "retype":
            parent[key] = [None, "x", 1.5, [], {}, True][int(rng.integers(0, 6))]
            what = f"{list(where)} -> {parent[key]!r}"
        else:
            old = parent[key]
            base = old if isinstance(old, (int, float)) and not isinstance(old, bool) else 1
            parent[key] = [base + 1, base - 1, -base, base * 1000, 2 ** 70, float("nan"), float("inf")][
                int(rng.integers(0, 7))]
            what = f"{list(where)} -> {parent[key]!r}"
    path.write_text(json.dumps(data))      # NaN and Infinity as JSON extensions: refused
    return what


def _npy_damage(rng, path: Path) -> str:
    arr = np.load(path)
    new, change = _array_damage(rng, arr)
    np.save(path, new)
    return change


def _random_damage(rng, name: str, path: Path) -> str:
    if rng.random() < 0.4:
        return _bytes_damage(rng, path)
    if name.endswith(".npz"):
        return _npz_damage(rng, path)
    if name.endswith(".json"):
        return _json_damage(rng, path)
    if name.endswith(".npy"):
        return _npy_damage(rng, path)
    return _bytes_damage(rng, path)


def test_fuzz(pristine, stubbed, tmp_path, capsys):
    """FUZZ_CASES seeded random damages, spread over every file: no traceback, ever; status 2 with one
    line naming the file, or (harmless damage) the command's work is reached. An archive accepted
    after byte-level damage holds exactly the pristine arrays (the CRC-32 checks caught the rest)."""
    cases = {"refused": 0, "mixed": 0, "harmless": 0}
    runs = {2: 0, "reached": 0}
    per_file = {name: {"refused": 0, "mixed": 0, "harmless": 0} for name in FILES}
    for case in range(FUZZ_CASES):
        rng = np.random.default_rng([FUZZ_SEED, case])
        name = FILES[case % len(FILES)]
        root = _fresh(pristine, tmp_path)
        path = _paths(root)[name]
        damage = _random_damage(rng, name, path)
        what = f"seed {FUZZ_SEED} case {case}: {name} {damage}"
        outcomes = check_damage(root, name, what)
        for o in outcomes.values():
            runs[o] += 1
        kind = ("refused" if all(o == 2 for o in outcomes.values()) else
                "harmless" if all(o == "reached" for o in outcomes.values()) else "mixed")
        cases[kind] += 1
        per_file[name][kind] += 1
        if kind != "refused" and name.endswith(".npz") and damage.startswith(("bytes", "garbage")):
            with np.load(path) as a, np.load(_paths(pristine)[name]) as b:
                assert sorted(a.files) == sorted(b.files), what
                for k in a.files:
                    assert np.array_equal(a[k], b[k]), f"{what}: accepted with array {k} changed"
    with capsys.disabled():
        print(f"\nfuzz (seed {FUZZ_SEED}): {FUZZ_CASES} damaged inputs, {sum(runs.values())} command runs "
              f"({runs[2]} status 2, {runs['reached']} reached the work); cases refused by every command "
              f"{cases['refused']}, by some {cases['mixed']}, harmless {cases['harmless']}; per file: "
              + ", ".join(f"{n} {c['refused']}/{c['mixed']}/{c['harmless']}" for n, c in per_file.items()))
    assert sum(cases.values()) == FUZZ_CASES
    assert cases["refused"] >= FUZZ_CASES // 2


def test_unknown_config_path_says_what_config_expects(tmp_path, stubbed):
    rc, out, err = run_cli(["generate", "--config", tmp_path / "nope.json", "--json"])
    doc = json.loads(out)
    assert rc == 2 and doc["file"] == str(tmp_path / "nope.json") and doc["problem"] == "no such config file"
    assert "--config expects a JSON file holding an EIE config" in doc["fix"] and doc["error"] in err
    (tmp_path / "net").mkdir()
    (tmp_path / "net" / "manifest.json").write_text("{}")
    rc, _, err = run_cli(["compress", "--config", tmp_path / "net", "-o", tmp_path / "o"])
    assert rc == 2 and "is a folder" in err and "pass " + str(tmp_path / "net" / "manifest.json") in err


def test_compress_preset(pristine, tmp_path):
    """`eie compress --preset tiny|paper`, as `eie generate --preset`; one config source at a time."""
    rc, out, err = run_cli(["compress", "--model", pristine / "user.pt", "--preset", "paper", "-o", tmp_path / "p",
                            "--json"])
    assert rc == 0, err
    cfg = EIEConfig.from_dict(json.loads(out)["config"])       # the paper preset, memories sized to the network
    memories = ("act_depth", "spmat_depth", "ptr_depth", "bias_depth", "max_layers")
    assert cfg.replace(**{f: getattr(preset("paper"), f) for f in memories}) == preset("paper")
    assert NetworkImage.load(tmp_path / "p" / "image.npz").config == cfg
    rc, _, err = run_cli(["compress", "--preset", "tiny", "--board", "icebreaker", "-o", tmp_path / "q"])
    assert rc == 2 and "--board and --preset both choose the config" in err
