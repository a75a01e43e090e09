"""``eie flash`` (against stand-in programmers on PATH, as real subprocesses) and board lookup."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from eie.boards.platforms import BOARDS, board_config, get_board

RECORDER = """#!{python}
import json, os, sys
with open(os.environ["EIE_TEST_RECORD"], "a") as f:
    f.write(json.dumps(sys.argv) + "\\n")
print("stand-in programmer: done")
"""


def _eie(args, env, **kw):
    return subprocess.run([sys.executable, "-m", "eie.cli", *args], env=env, capture_output=True, text=True,
                          timeout=120, **kw)


@pytest.fixture
def programmers(tmp_path):
    """A bin/ folder with stand-in openFPGALoader and iceprog that record their arguments."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    for name in ("openFPGALoader", "iceprog"):
        exe = bindir / name
        exe.write_text(RECORDER.format(python=sys.executable))
        exe.chmod(0o755)
    record = tmp_path / "calls.jsonl"
    env = dict(os.environ)
    env["PATH"] = f"{bindir}{os.pathsep}{env.get('PATH', '')}"
    env["EIE_TEST_RECORD"] = str(record)
    for var in ("OPENFPGALOADER", "ICEPROG"):
        env.pop(var, None)

    def calls():
        if not record.exists():
            return []
        return [json.loads(line) for line in record.read_text().splitlines()]

    return env, calls, bindir


def _fake_build(folder: Path, board: str, suffix: str) -> Path:
    folder.mkdir(parents=True)
    bitstream = folder / f"eie_{board}{suffix}"
    bitstream.write_bytes(b"\xff\x00bitstream")
    (folder / "design.json").write_text(json.dumps({"board": board, "bitstream": str(bitstream)}))
    return bitstream


@pytest.mark.parametrize("board, suffix, programmer, expected", [
    ("icebreaker", ".bin", "openfpgaloader", ["-b", "ice40_generic"]),
    ("icebreaker", ".bin", "iceprog", []),
    ("ulx3s-85f", ".bit", "openfpgaloader", ["-b", "ulx3s", "-f"]),
    ("ulx3s-12f", ".bit", "openfpgaloader", ["-b", "ulx3s", "-f"]),
    ("tang-nano-9k", ".fs", "openfpgaloader", ["-b", "tangnano9k", "-f"]),
])
def test_flash_runs_programmer(tmp_path, programmers, board, suffix, programmer, expected):
    env, calls, bindir = programmers
    bitstream = _fake_build(tmp_path / "out", board, suffix)
    r = _eie(["flash", "--board", board, str(tmp_path / "out"), "--programmer", programmer, "--json"], env)
    assert r.returncode == 0, r.stderr
    (argv,) = calls()
    exe = "iceprog" if programmer == "iceprog" else "openFPGALoader"
    assert argv == [str(bindir / exe), *expected, str(bitstream)]
    result = json.loads(r.stdout)
    assert result["returncode"] == 0 and result["bitstream"] == str(bitstream)
    assert "stand-in programmer: done" in r.stderr       # the tool's output goes to stderr, JSON stays clean


def test_flash_sram_and_bitstream_file(tmp_path, programmers):
    env, calls, bindir = programmers
    bitstream = _fake_build(tmp_path / "out", "ulx3s", ".bit")
    r = _eie(["flash", "--board", "ulx3s", str(bitstream), "--sram"], env)
    assert r.returncode == 0, r.stderr
    assert calls() == [[str(bindir / "openFPGALoader"), "-b", "ulx3s", "-m", str(bitstream)]]


def test_flash_dry_run_runs_nothing(tmp_path, programmers):
    env, calls, bindir = programmers
    bitstream = _fake_build(tmp_path / "out", "icebreaker", ".bin")
    r = _eie(["flash", "--board", "icebreaker", str(tmp_path / "out"), "--dry-run"], env)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == [str(bindir / "openFPGALoader"), "-b", "ice40_generic", str(bitstream)]
    assert calls() == []


def test_flash_missing_programmer_has_install_hint(tmp_path):
    _fake_build(tmp_path / "out", "icebreaker", ".bin")
    env = dict(os.environ)
    env["PATH"] = str(Path(sys.executable).parent)       # python, but no programmer
    env.pop("OPENFPGALOADER", None)
    r = _eie(["flash", "--board", "icebreaker", str(tmp_path / "out"), "--json"], env)
    assert r.returncode == 2
    assert "apt-get install openfpgaloader" in json.loads(r.stdout)["error"]


def test_flash_refuses_wrong_bitstream(tmp_path, programmers):
    env, calls, _ = programmers
    bitstream = _fake_build(tmp_path / "out", "ulx3s", ".bit")
    r = _eie(["flash", "--board", "icebreaker", str(bitstream)], env)
    assert r.returncode == 2 and "not a ice40 bitstream" in r.stderr.replace("an ice40", "a ice40")
    r = _eie(["flash", "--board", "icebreaker", str(tmp_path / "out")], env)
    assert r.returncode == 2 and "built for board 'ulx3s'" in r.stderr
    r = _eie(["flash", "--board", "ulx3s", str(bitstream), "--programmer", "iceprog"], env)
    assert r.returncode == 2 and "iceprog cannot program" in r.stderr
    assert calls() == []


def test_unknown_board_lists_known_ones():
    with pytest.raises(ValueError) as e:
        get_board("de0-nano-9000")
    for name in ("icebreaker", "ulx3s-85f", "ulx3s-12f"):
        assert name in str(e.value)


def test_board_registry():
    assert get_board("ICEBreaker") is BOARDS["icebreaker"]
    assert get_board("ulx3s").platform.endswith("ULX3S_85F_Platform")
    for board in BOARDS.values():
        cls = board.platform_class()                      # every entry imports
        assert board.uart[0] in {r.name for r in cls.resources}
        assert board_config(board, pes=2).pes == 2
    with pytest.raises(ValueError, match="--pes"):
        board_config(BOARDS["icebreaker"], pes=0)


def test_gowin_board_and_preset():
    """The Tang Nano 9K entry: its preset fits the GW1NR-9 and the compressed digits-mlp."""
    from eie.boards.platforms import GOWIN_PRESET
    board = get_board("tang-nano-9k")
    assert board.family == "gowin" and board.bitstream_suffix == ".fs" and board.pll_device() == "GW1NR-9C"
    assert board.input_clock_hz() == 27e6 and board.openfpgaloader == ("-b", "tangnano9k") and not board.iceprog
    cfg = board.preset
    assert cfg == GOWIN_PRESET
    # digits-mlp (64-300-100-10): layers up to 300 long, about 4300 Spmat entries, 3 layers
    assert cfg.pes * cfg.act_depth >= 300 and cfg.pes * cfg.bias_depth >= 300
    assert cfg.pes * cfg.spmat_entries >= 4300 and cfg.max_layers >= 3
    platform = board.make_platform()
    assert "nextpnr-himbaechel" in platform.required_tools and "nextpnr-gowin" not in platform.required_tools
    names = {r.name for r in platform.resources.values()} if isinstance(platform.resources, dict) else set()
    assert not names or "uart" in names


def test_board_from_amaranth_boards_platform():
    from eie.boards.platforms import ICE40_EBR_PRESET, ICE40_PRESET
    board = get_board("amaranth_boards.icesugar:ICESugarPlatform")
    assert board.family == "ice40" and board.input_clock_hz() == 12e6
    assert board.preset == ICE40_PRESET and "-spram" in board.synth_opts       # an UltraPlus part: SPRAMs
    # no SPRAM on an HX part: the 2-PE preset with a Spmat in EBRs
    hx = get_board("amaranth_boards.ice40_hx8k_b_evn:ICE40HX8KBEVNPlatform")
    assert hx.preset == ICE40_EBR_PRESET and hx.preset.spmat_depth == 1024 and "-spram" not in hx.synth_opts
    # Gowin: the GW2A-18 of the Tang Primer 20K needs synth_gowin -family gw2a
    primer = get_board("amaranth_boards.tang_primer_20k:TangPrimer20kDockPlatform")
    assert primer.family == "gowin" and primer.input_clock_hz() == 27e6 and primer.bitstream_suffix == ".fs"
    assert primer.synth_opts == ("-family", "gw2a") and primer.pll_device() == "GW2A-18C"
    with pytest.raises(ValueError, match="not an iCE40, ECP5 or Gowin"):
        get_board("amaranth_boards.arty_a7:ArtyA7_35Platform")
    with pytest.raises(ValueError, match="no platform class"):
        get_board("amaranth_boards.icebreaker:Nope")


def test_build_reports_a_failing_tool(tmp_path):
    """A tool that fails for another reason than fit: one clean error naming the log, and --json says so."""
    fake = tmp_path / "yosys"
    fake.write_text(f"#!{sys.executable}\nimport sys\nprint('ERROR: stand-in yosys gives up')\nsys.exit(3)\n")
    fake.chmod(0o755)
    env = dict(os.environ, YOSYS=str(fake))
    out = tmp_path / "out"
    r = _eie(["build", "--board", "ulx3s-12f", "--pes", "1", "-o", str(out), "--json"], env)
    assert r.returncode == 1, r.stderr
    assert "Traceback" not in r.stderr
    assert "eie build: error: the ecp5 flow failed (exit status 3)" in r.stderr
    assert "stand-in yosys gives up" in r.stderr
    result = json.loads(r.stdout)
    assert result["board"] == "ulx3s-12f" and result["log"] == str(out / "build" / "tool.log")
    assert "flow failed" in result["error"]
