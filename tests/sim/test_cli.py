"""``eie simulate`` (sim/cli.py): the compressed digits-mlp through the RTL.

The done criterion of issue 4: on the compressed ``digits-mlp`` (4 PEs, the
``tiny`` preset) ``eie simulate DIR --inputs digits-test --json`` reports 0
mismatches, ``accuracy_rtl == accuracy_golden`` and ``cycles ==
cycles_model`` for all 360 test images; and the RTL predictions equal the
fixed-point accuracy the compressor measured with the golden model.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from eie.cli import main as eie_main


@pytest.fixture(scope="module")
def digits_dir(tmp_path_factory):
    from eie.config import preset
    from eie.golden.pipeline import compress, write_output
    out = tmp_path_factory.mktemp("digits")
    write_output(compress("digits-mlp", preset("tiny"), progress=None), out, save_model=False)
    return out


def _simulate(capsys, *argv):
    code = eie_main(["simulate", *map(str, argv), "--json"])
    out = capsys.readouterr().out
    return code, json.loads(out)


@pytest.mark.slow
@pytest.mark.xdist_group("sim_tiny")
def test_digits_test_split(digits_dir, capsys):
    code, res = _simulate(capsys, digits_dir, "--inputs", "digits-test")
    assert code == 0
    assert res["inferences"] == 360
    assert res["mismatches"] == 0, res["first_mismatch"]
    assert res["cycle_model_checked"]
    assert res["cycles"] == res["cycles_model"]
    assert res["predictions_rtl"] == res["predictions_golden"]
    assert res["accuracy_rtl"] == res["accuracy_golden"]
    manifest = json.loads((digits_dir / "manifest.json").read_text())
    assert res["accuracy_rtl"] == pytest.approx(manifest["accuracy"]["fixed_point"], abs=1e-12)
    assert all(0 < e <= 1 for e in res["efficiency"])
    assert len(res["bound"]) == 360 and res["wall_s"] > 0


@pytest.mark.xdist_group("sim_tiny")
def test_npy_inputs_python_link(digits_dir, tmp_path, capsys):
    """Float .npy inputs are quantised like the digits; integer ones are taken as they are;
    labels give an accuracy; the Python per-cycle link with idle/back-pressure agrees."""
    from eie.golden.models import digits_split
    from eie.golden.quantize import quantize_input
    _, _, X, y = digits_split()
    np.save(tmp_path / "x.npy", X[:5])
    np.save(tmp_path / "y.npy", y[:5])
    code, res = _simulate(capsys, digits_dir, "--inputs", tmp_path / "x.npy", "--labels", tmp_path / "y.npy",
                          "--link", "python", "--idle", "0.3", "--backpressure", "0.3", "--seed", "5")
    assert code == 0 and res["mismatches"] == 0 and res["inferences"] == 5
    assert res["accuracy_rtl"] == res["accuracy_golden"] is not None
    from eie.config import preset
    frac = json.loads((digits_dir / "manifest.json").read_text())["input_frac"]
    np.save(tmp_path / "xq.npy", quantize_input(X[:5], frac, preset("tiny")))
    code, res2 = _simulate(capsys, digits_dir, "--inputs", tmp_path / "xq.npy", "--limit", "3")
    assert code == 0 and res2["inferences"] == 3 and res2["accuracy_rtl"] is None
    assert res2["cycles"] == res["cycles"][:3] and res2["predictions_rtl"] == res["predictions_rtl"][:3]


def test_bad_input_is_reported(tmp_path, capsys):
    code = eie_main(["simulate", str(tmp_path / "missing"), "--json"])
    assert code == 2
    assert "eie compress" in json.loads(capsys.readouterr().out)["error"]
    (tmp_path / "x.txt").write_text("1 2 3")
    code = eie_main(["simulate", str(tmp_path), "--inputs", str(tmp_path / "x.txt"), "--json"])
    assert code == 2


def _fst_blocks(data: bytes) -> list:
    """``(block type, payload)`` of an FST file (type byte, big-endian 64-bit length incl. itself)."""
    import struct
    pos, blocks = 0, []
    while pos < len(data):
        length = struct.unpack(">Q", data[pos + 1:pos + 9])[0]
        blocks.append((data[pos], data[pos + 9:pos + 1 + length]))
        pos += 1 + length
    assert pos == len(data), "FST blocks do not chain to the end of the file"
    return blocks


@pytest.mark.slow
@pytest.mark.xdist_group("sim_tiny")
def test_waves(digits_dir, tmp_path, capsys):
    """--waves builds the tracing model and writes a well-formed FST (header,
    value changes, hierarchy naming the harness and the design's host ports)."""
    fst = tmp_path / "run.fst"
    code, res = _simulate(capsys, digits_dir, "--limit", "1", "--waves", fst)
    assert code == 0 and res["mismatches"] == 0 and res["waves"] == str(fst.resolve())
    blocks = _fst_blocks(fst.read_bytes())
    kinds = [k for k, _ in blocks]
    assert kinds[0] == 0                                   # FST_BL_HDR
    hierarchy = [p for k, p in blocks if k == 6]           # FST_BL_HIER_LZ4 (literal-only LZ4 here)
    assert hierarchy and b"host_in__payload" in hierarchy[0] and b"fast_done" in hierarchy[0]
    assert any(k in (1, 5, 8) for k in kinds)              # value-change blocks
