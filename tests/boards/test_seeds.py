"""``eie build --seeds``: place-and-route seeds as tasks (eie.cluster), the best kept, all reported.

The fast tests replace the flow by a stand-in (seconds, in this process); the
slow one runs the real flow of the smallest design (the UART loopback on
the iCEBreaker) with two seeds in two local processes.
"""

from __future__ import annotations

import json
import os
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
    processes: both place and route, the best is kept, its bitstream is an iCE40 one;
    Yosys runs once (the netlist cache's lock makes the second seed wait for it)."""
    out = tmp_path / "out"
    env = {**os.environ, "EIE_FPGA_CACHE": str(tmp_path / "netlists")}
    r = subprocess.run([sys.executable, "-m", "eie.cli", "build", "--board", "icebreaker", "--loopback",
                        "--seeds", "1..2", "--jobs", "2", "-o", str(out), "--json"],
                       capture_output=True, text=True, timeout=900, env=env)
    assert r.returncode == 0, r.stderr[-3000:]
    res = json.loads(r.stdout)
    assert [s["seed"] for s in res["seeds"]] == [1, 2] and all(s["ok"] for s in res["seeds"])
    best = max(res["seeds"], key=lambda s: (s["timing_met"], s["fmax_mhz"], -s["seed"]))
    assert res["best_seed"] == best["seed"] and res["fmax_mhz"] == best["fmax_mhz"]
    assert len({s["pid"] if "pid" in s else s["node"] for s in res["seeds"]}) >= 1
    data = Path(res["bitstream"]).read_bytes()
    assert Path(res["bitstream"]).parent == out and len(data) > 10_000
    assert "tasks: 2/2 done, 0 running, 0 failed" in r.stderr
    # one seed synthesised the design, the other placed and routed its cached netlist
    assert sorted(s["netlist_cached"] for s in res["seeds"]) == [False, True]


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
    assert (tmp_path / "fpga.png").read_bytes()[:4] == b"\x89PNG" and res["plot"] == str(tmp_path / "fpga.png")
    assert sorted(p.name for p in (tmp_path / "fpga-points").iterdir()) == [
        f"fpga-ulx3s-12f-pes{n}" for n in (1, 2, 3)]


def test_sweep_fpga_takes_fig11_only(tmp_path, capsys):
    assert cli.main(["sweep", "fig8", "--fpga", "ulx3s-12f", "-o", str(tmp_path), "--json"]) == 2
    assert "fig11" in json.loads(capsys.readouterr().out)["error"]


# -- the synthesised netlist, cached per node (seeds and repeated builds run nextpnr alone) -------------

@pytest.mark.parametrize("board", ["icebreaker", "ulx3s-85f", "tang-nano-9k"])
def test_split_script_and_netlist_of_each_family(board):
    """amaranth's own build script of each family splits into a Yosys-only script and
    one with every other tool (the preamble in both), and its netlist file is found."""
    from eie.boards.platforms import board_config, get_board
    from eie.boards.top import BoardTop, make_core, pll_settings
    b = get_board(board)
    cfg = board_config(b, pes=1)
    pll = pll_settings(b.family, b.input_clock_hz() / 1e6, b.clock_mhz, device=b.pll_device())
    top = BoardTop(b, make_core(cfg, None, loopback=True), pll=pll, baud=b.baud)
    plan = b.make_platform().prepare(top, name="top", nextpnr_opts="--seed 7",
                                     **board_build.synth_overrides(b, cfg, loopback=True))
    script = plan.files[f"{plan.script}.sh"]
    synth, pnr = board_build.split_script(script)
    tools = [line for line in script.splitlines() if line.startswith('"$')]
    assert len(tools) == 3 and tools[0].startswith('"$YOSYS"')
    assert [line for line in synth.splitlines() if line.startswith('"$')] == tools[:1]
    assert [line for line in pnr.splitlines() if line.startswith('"$')] == tools[1:]
    assert "--seed 7" in pnr and "set -e" in synth and "set -e" in pnr
    netlist = board_build.netlist_files(plan.files["top.ys"])
    assert netlist == [{"gowin": "top.syn.json"}.get(b.family, "top.json")]
    assert f"--json {netlist[0]}" in tools[1]          # what nextpnr reads is what is cached


class _Plan:
    """A build plan whose Yosys is a stand-in that counts its runs."""
    def __init__(self, rtlil: str):
        self.script = "build_top"
        self.files = {"top.il": rtlil, "top.ys": "read_rtlil top.il\nsynth_ice40 -top top\nwrite_json top.json\n",
                      "build_top.sh": 'set -e\n: ${YOSYS:=yosys}\n"$YOSYS" -q -l top.rpt top.ys\n"$NEXT" x\n'}


def _fake_yosys(tmp_path, ok: bool = True) -> dict:
    runs = tmp_path / "yosys-runs"
    tool = tmp_path / "fake-yosys"
    tool.write_text("#!/bin/sh\n" f"echo run >> {runs}\n"
                    + ("echo netlist > top.json\necho 'Number of cells: 5' > top.rpt\n" if ok else "exit 1\n"))
    tool.chmod(0o755)
    return {**os.environ, "YOSYS": str(tool)}


def _synthesise(plan, folder, env):
    synth, _ = board_build.split_script(plan.files[f"{plan.script}.sh"])
    return board_build._synthesise(plan, synth, folder, "top", env, board_build._Progress(quiet=True))


def test_netlist_cache_synthesises_a_design_once(tmp_path, monkeypatch):
    monkeypatch.setenv("EIE_FPGA_CACHE", str(tmp_path / "cache"))
    env = _fake_yosys(tmp_path)
    results = []
    for k, rtlil in enumerate(["module a", "module a", "module b"]):
        d = tmp_path / f"b{k}"
        d.mkdir()
        results.append(_synthesise(_Plan(rtlil), d, env)[:2])
        assert (d / "top.json").read_text() == "netlist\n" and (d / "top.rpt").exists()
    # the second build of the same design comes from the cache; another design is synthesised
    assert results == [(0, False), (0, True), (0, False)]
    assert (tmp_path / "yosys-runs").read_text().count("run") == 2
    assert len([p for p in (tmp_path / "cache").iterdir() if p.is_dir()]) == 2


def test_failed_synthesis_is_not_cached(tmp_path, monkeypatch):
    monkeypatch.setenv("EIE_FPGA_CACHE", str(tmp_path / "cache"))
    env = _fake_yosys(tmp_path, ok=False)
    for k in range(2):
        d = tmp_path / f"b{k}"
        d.mkdir()
        assert _synthesise(_Plan("module a"), d, env)[:2] == (1, False)
    assert (tmp_path / "yosys-runs").read_text().count("run") == 2
    assert not [p for p in (tmp_path / "cache").iterdir() if p.is_dir()]
