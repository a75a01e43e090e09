"""``eie build --seeds``: place-and-route seeds as tasks (eie.cluster), the best kept, all reported.

The fast tests replace the flow by a stand-in (seconds, in this process); the
slow one runs the real flow of the smallest design (the UART loopback on
the iCEBreaker) with two seeds in two local processes.
"""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from eie import cli
from eie.boards import build as board_build
from eie.boards.cli import parse_seeds

FMAX = {1: 50.0, 2: 61.0, 3: 58.0, 4: 75.0, 5: 40.0}


def _fake_build(board_name, out, *, seed=1, **kw):
    """A stand-in flow: Fmax by seed; seed 4 misses timing (75 MHz, fastest but not met), seed 5 fails."""
    if seed == 5:
        raise board_build.ToolError("the ecp5 flow failed (exit status 3)", log=str(Path(out) / "tool.log"))
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    bit = out / "eie_ulx3s_12f.bit"
    bit.write_bytes(f"bitstream of seed {seed}".encode())
    (out / "design.json").write_text("{}")
    return {"board": board_name, "pes": 1, "fmax_mhz": FMAX[seed], "timing_met": seed != 4, "seed": seed,
            "utilisation": {"LUT": {"used": 1000 + seed, "available": 12000, "percent": 8.3}},
            "bitstream": str(bit), "seconds": 1.0, "config_digest": "x"}


def test_seeds_are_parsed_and_bad_lists_name_the_form():
    assert parse_seeds("1..4") == [1, 2, 3, 4]
    assert parse_seeds("1,4,9") == [1, 4, 9]
    assert parse_seeds("2..3,7") == [2, 3, 7]
    for bad in ("", "a", "3..1", "1,1", "-1"):
        with pytest.raises(ValueError, match="--seeds"):
            parse_seeds(bad)


def test_best_seed_kept_all_reported(tmp_path, monkeypatch, capsys):
    """Seeds 1..5 in this process: seed 2 is best (4 is faster but misses timing, 5
    fails); its bitstream and design.json are in OUT; every seed is reported, the
    failed one with the command that rebuilds it alone; each seed had its own folder."""
    monkeypatch.setattr(board_build, "build", _fake_build)
    out = tmp_path / "out"
    rc = cli.main(["build", "--board", "ulx3s-12f", "--pes", "1", "--seeds", "1..5", "-o", str(out), "--json"])
    assert rc == 0
    res = json.loads(capsys.readouterr().out)
    assert res["best_seed"] == 2 and res["seed"] == 2 and res["fmax_mhz"] == 61.0
    assert [r["seed"] for r in res["seeds"]] == [1, 2, 3, 4, 5]
    assert [r.get("fmax_mhz") for r in res["seeds"]] == [50.0, 61.0, 58.0, 75.0, None]
    failed = res["seeds"][4]
    assert not failed["ok"] and "flow failed" in failed["error"]
    assert shlex.split(failed["command"]) == ["eie", "build", "--board", "ulx3s-12f", "--pes", "1", "--seed", "5",
                                              "-o", str(out / "seeds" / "seed5")]
    assert Path(res["bitstream"]) == out / "eie_ulx3s_12f.bit"
    assert Path(res["bitstream"]).read_bytes() == b"bitstream of seed 2"
    design = json.loads((out / "design.json").read_text())
    assert design["best_seed"] == 2 and len(design["seeds"]) == 5 and "bitstream_b64" not in design
    assert sorted(p.name for p in (out / "seeds").iterdir()) == [f"seed{k}" for k in range(1, 6)]
    for k in range(1, 5):
        assert (out / "seeds" / f"seed{k}" / "eie_ulx3s_12f.bit").read_bytes() == f"bitstream of seed {k}".encode()
    assert res["executor"]["executor"] == "serial" and res["executor"]["failed"] == 1


def test_no_seed_builds_is_status_1_with_the_command(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(board_build, "build", _fake_build)
    rc = cli.main(["build", "--board", "ulx3s-12f", "--pes", "1", "--seeds", "5", "-o", str(tmp_path), "--json"])
    assert rc == 1
    res = json.loads(capsys.readouterr().out)
    assert res["best_seed"] is None and "eie build --board ulx3s-12f --pes 1 --seed 5" in res["error"]


def test_seed_and_seeds_exclude_each_other(tmp_path, capsys):
    assert cli.main(["build", "--board", "ulx3s-12f", "--seed", "3", "--seeds", "1..2", "-o", str(tmp_path),
                     "--json"]) == 2
    assert "not both" in json.loads(capsys.readouterr().out)["error"]


@pytest.mark.slow
def test_real_seeds_in_two_processes(tmp_path):
    """The UART loopback design on the iCEBreaker, seeds 1 and 2 in two local
    processes: both place and route, the best is kept, its bitstream is an iCE40 one."""
    out = tmp_path / "out"
    r = subprocess.run([sys.executable, "-m", "eie.cli", "build", "--board", "icebreaker", "--loopback",
                        "--seeds", "1..2", "--jobs", "2", "-o", str(out), "--json"],
                       capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    res = json.loads(r.stdout)
    assert [s["seed"] for s in res["seeds"]] == [1, 2] and all(s["ok"] for s in res["seeds"])
    best = max(res["seeds"], key=lambda s: (s["timing_met"], s["fmax_mhz"], -s["seed"]))
    assert res["best_seed"] == best["seed"] and res["fmax_mhz"] == best["fmax_mhz"]
    assert len({s["pid"] if "pid" in s else s["node"] for s in res["seeds"]}) >= 1
    data = Path(res["bitstream"]).read_bytes()
    assert Path(res["bitstream"]).parent == out and len(data) > 10_000
    assert "tasks: 2/2 done, 0 running, 0 failed" in r.stderr


# -- eie sweep fig11 --fpga: a bitstream build per PE count, as tasks -----------------------------------

def _fake_point(board_name, out, *, pes=None, seed=1, **kw):
    """A stand-in flow for sweep points: Fmax falls with the PE count, 3 PEs do not fit."""
    if pes == 3:
        raise board_build.DoesNotFit(board_name, {"LUT": {"used": 13000, "available": 12000}},
                                     {"LUT": {"used": 13000, "available": 12000, "percent": 108.3}})
    return {"board": board_name, "pes": pes, "fmax_mhz": 80.0 - 10 * pes, "timing_met": True, "pll_mhz": 50.0,
            "seed": seed, "seconds": 1.0, "bitstream": str(Path(out) / "x.bit"),
            "utilisation": {"LUT": {"used": 3000 * pes, "available": 12000, "percent": 25.0 * pes}}}


def test_sweep_fpga_points_report_fmax_and_utilisation(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(board_build, "build", _fake_point)
    rc = cli.main(["sweep", "fig11", "--fpga", "ulx3s-12f", "--pes-list", "1,2,3", "-o", str(tmp_path), "--json"])
    assert rc == 0
    res = json.loads(capsys.readouterr().out)
    rows = res["fpga"]
    assert [(r["pes"], r["ok"]) for r in rows] == [(1, True), (2, True), (3, False)]
    assert [r.get("fmax_mhz") for r in rows] == [70.0, 60.0, None]
    assert rows[1]["LUT_used"] == 6000 and rows[1]["LUT_percent"] == 50.0
    assert rows[2]["fits"] is False and "DoesNotFit" in rows[2]["error"]
    assert rows[2]["command"].startswith("eie build --board ulx3s-12f --pes 3 --seed 1")
    assert (tmp_path / "fpga.csv").read_text().splitlines()[0].startswith("pes,ok")
    assert sorted(p.name for p in (tmp_path / "fpga-points").iterdir()) == [
        f"fpga-ulx3s-12f-pes{n}" for n in (1, 2, 3)]


def test_sweep_fpga_takes_fig11_only(tmp_path, capsys):
    assert cli.main(["sweep", "fig8", "--fpga", "ulx3s-12f", "-o", str(tmp_path), "--json"]) == 2
    assert "fig11" in json.loads(capsys.readouterr().out)["error"]
