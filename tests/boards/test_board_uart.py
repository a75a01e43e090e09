"""The board top's UART path in cocotb + Verilator, against the golden model.

Builds :class:`eie.boards.top.BoardCore` (UART bridge + the real EIETop) for
a 2-PE config at 4 clocks per UART bit and runs ``uart_tb.py`` in it: the host
runtime's own frames enter ``rx``, a damaged and a truncated frame are
rejected without being executed, a network is loaded and run over the UART,
and the outputs read back through ``tx`` must equal
``eie.golden.reference.forward`` bit for bit.
"""

import hashlib
import json
import os
import re
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from eie.config import DEFAULT

REPO = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
CLK_HZ = 4_000_000
BAUD = 1_000_000            # 4 clocks per bit

# With the iCE40 presets' area options (eie.boards.platforms.ICE40_PRESET): write-only
# weight memories, codebook and biases in one memory, no per-PE counters.
CFG = replace(DEFAULT, pes=2, fifo_depth=4, column_buffer_depth=2, entries_per_word=2, spmat_depth=128,
              ptr_depth=64, act_depth=16, bias_depth=16, max_layers=2,
              pe_counters=0, merge_codebook_bias=1, hold_pointer_read=1, host_readback=0,
              bias_width=30)     # narrower than acc_bits - 1 = 38, as on the iCE40 presets


def _network(seed=5):
    from eie.golden.encode import build_image
    from eie.golden.reference import forward
    from eie.golden.synthetic import random_layer
    rng = np.random.default_rng(seed)
    l1, x1 = random_layer(rng, 24, 20, 0.3, 0.6, CFG, relu=True)
    l2, _ = random_layer(rng, 20, 10, 0.4, 1.0, CFG, relu=False)
    layers = [l1, l2]
    image = build_image(layers, CFG)
    inputs = [x1]
    for _ in range(2):
        _, x = random_layer(rng, 24, 20, 0.3, 0.6, CFG)
        inputs.append(x)
    inputs = np.stack(inputs).astype(np.int64)
    expected = np.stack([forward(layers, x, CFG) for x in inputs]).astype(np.int64)
    return image, inputs, expected


# Only the top-level ports need to be visible to cocotb; everything else stays private so
# Verilator optimises it and the model compiles quickly.
VERILATOR_ARGS = ["--no-public-flat-rw", "-Wno-fatal", "-Wno-lint", "-Wno-style", "-Wno-MULTIDRIVEN",
                  "-Wno-UNOPTFLAT", "--x-assign", "fast", "--x-initial", "fast", "-CFLAGS", "-O1"]
VLT = '`verilator_config\npublic_flat_rw -module "board_core" -var "*"\n'


def _sources_key() -> str:
    h = hashlib.sha256(CFG.to_json().encode() + f"{CLK_HZ} {BAUD} {VERILATOR_ARGS} {VLT}".encode())
    for folder in ("hw", "boards", "eie"):
        for p in sorted((REPO / folder).glob("*.py")):
            h.update(p.name.encode() + p.read_bytes())
    return h.hexdigest()[:16]


def _runner():
    from cocotb_tools.runner import Verilator

    class BoardVerilator(Verilator):
        def _build_command(self):
            cmds = super()._build_command()
            # The PyPI wheel's verilated.mk leaves the precompiled-header flag empty.
            cmds[-1] = list(cmds[-1]) + ["CFG_CXXFLAGS_PCH_I=-include"]
            return cmds

    return BoardVerilator()


def _build(root: Path) -> Path:
    """Verilog of BoardCore + its Verilator model (cached by source hash)."""
    import fcntl
    folder = root / _sources_key()
    stamp = folder / "done"
    if stamp.exists():
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder.with_suffix(".lock"), "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if stamp.exists():
            return folder
        from amaranth.back import verilog
        from eie.boards.top import BoardCore, make_core
        from eie.sim import runner as simrunner
        core = BoardCore(make_core(CFG), clk_hz=CLK_HZ, baud=BAUD, timeout_s=0.0)
        (folder / "board_core.v").write_text(verilog.convert(core, name="board_core"))
        (folder / "board_core.vlt").write_text(VLT)
        for k, v in simrunner.verilator_env().items():
            os.environ[k] = v
        _runner().build(sources=[folder / "board_core.vlt", folder / "board_core.v"], hdl_toplevel="board_core",
                        build_dir=folder / "obj", build_args=VERILATOR_ARGS, log_file=folder / "build.log",
                        timescale=("1ns", "1ps"))
        stamp.write_text("")
    return folder


def _run_cocotb(testcase: str, job: dict, tmp_path: Path) -> None:
    from cocotb_tools.runner import get_results, get_runner
    from eie.sim import runner as simrunner

    folder = _build(REPO / "build" / "boards" / "sim")
    (tmp_path / "job.json").write_text(json.dumps(job))
    for k, v in simrunner.verilator_env().items():
        os.environ[k] = v
    runner = get_runner("verilator")
    saved = os.environ.pop("PYTEST_CURRENT_TEST", None)
    sys.path.insert(0, str(HERE))        # the runner passes sys.path on as PYTHONPATH: finds uart_tb
    try:
        runner.test(test_module="uart_tb", testcase=testcase, hdl_toplevel="board_core",
                    hdl_toplevel_lang="verilog", build_dir=folder / "obj", test_dir=tmp_path,
                    results_xml=str(tmp_path / "results.xml"), log_file=tmp_path / "sim.log",
                    extra_env={"EIE_BOARD_JOB": str(tmp_path / "job.json")})
    finally:
        sys.path.remove(str(HERE))
        if saved is not None:
            os.environ["PYTEST_CURRENT_TEST"] = saved
    n_tests, n_failed = get_results(tmp_path / "results.xml")
    log = (tmp_path / "sim.log").read_text(errors="replace") if (tmp_path / "sim.log").exists() else ""
    assert n_tests == 1 and n_failed == 0, log[-6000:]


@pytest.mark.slow
def test_board_uart_against_golden(tmp_path):
    pytest.importorskip("cocotb_tools")
    image, inputs, expected = _network()
    image.save(tmp_path / "image.npz")
    np.save(tmp_path / "inputs.npy", inputs)
    np.save(tmp_path / "expected.npy", expected)
    job = {"config": CFG.to_dict(), "image": str(tmp_path / "image.npz"), "inputs": str(tmp_path / "inputs.npy"),
           "expected": str(tmp_path / "expected.npy"), "divisor": CLK_HZ // BAUD,
           "report": str(tmp_path / "report.json")}
    _run_cocotb("uart_session", job, tmp_path)
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["outputs"] == expected.tolist()
    assert all(c > 0 for c in report["cycles"])


@pytest.mark.slow
def test_eie_run_over_serial(tmp_path):
    """`eie run` (pyserial on a pseudo-terminal) against the simulated board: it loads the
    network, runs the inputs and finds every output equal to the golden model."""
    pytest.importorskip("cocotb_tools")
    from eie.format import write_manifest
    from eie.golden.encode import save_layers
    from eie.golden.reference import forward
    from eie.golden.synthetic import random_layer

    rng = np.random.default_rng(11)
    l1, _ = random_layer(rng, 24, 20, 0.3, 0.6, CFG, relu=True)
    l2, _ = random_layer(rng, 20, 10, 0.4, 1.0, CFG, relu=False)
    layers = [l1, l2]
    from eie.golden.encode import build_image
    image = build_image(layers, CFG)
    model = tmp_path / "model"
    model.mkdir()
    frac = CFG.act_frac_bits
    write_manifest(model, CFG, name="synthetic", input_frac=frac, output_perm=None)
    image.save(model / "image.npz")
    save_layers(model / "layers.npz", layers)
    ints = np.stack([random_layer(rng, 24, 20, 0.3, 0.6, CFG)[1] for _ in range(3)]).astype(np.int64)
    np.save(tmp_path / "inputs.npy", ints / float(1 << frac))      # exact in fixed point
    design = tmp_path / "design"
    design.mkdir()
    (design / "design.json").write_text(json.dumps({"board": "icebreaker", "config": CFG.to_dict(),
                                                    "baud": 115200, "model": None, "pll_mhz": CLK_HZ / 1e6}))
    job = {"divisor": CLK_HZ // BAUD, "model": str(model), "design": str(design),
           "inputs_npy": str(tmp_path / "inputs.npy"), "stdout": str(tmp_path / "run.json"),
           "stderr": str(tmp_path / "run.err")}
    _run_cocotb("eie_run_over_pty", job, tmp_path)
    result = json.loads((tmp_path / "run.json").read_text())
    expected = [int(np.argmax(forward(layers, x, CFG))) for x in ints]
    assert result["count"] == 3 and result["golden_mismatches"] == 0
    assert result["predictions"] == expected
    assert result["baked"] is False and result["link"]["retransmissions"] == 0
    assert all(c > 0 for c in (result["cycles_min"], result["cycles_max"]))


@pytest.mark.slow
def test_eie_run_program_over_serial(tmp_path):
    """A program (Linear, GELU on the host, Linear: docs/programs.md) through `eie run` on the simulated
    board: each EIE call rewrites the layer table over the UART; outputs equal the golden program run."""
    pytest.importorskip("cocotb_tools")
    import torch
    import torch.nn as nn
    from eie.golden.pipeline import compress, write_output
    from eie.golden.program import run_fixed
    from eie.golden.quantize import quantize_input

    torch.manual_seed(2)
    model = nn.Sequential(nn.Linear(24, 20), nn.GELU(), nn.Linear(20, 10)).eval()
    result = compress(model, CFG, density=0.5, progress=None)
    assert result.report["partition"]["host_ops"] == ["lut"]
    model_dir = tmp_path / "model"
    write_output(result, model_dir)
    X = np.random.default_rng(4).standard_normal((3, 24)).astype(np.float32)
    np.save(tmp_path / "inputs.npy", X)
    design = tmp_path / "design"
    design.mkdir()
    (design / "design.json").write_text(json.dumps({"board": "icebreaker", "config": CFG.to_dict(),
                                                    "baud": 115200, "model": None, "pll_mhz": CLK_HZ / 1e6}))
    job = {"divisor": CLK_HZ // BAUD, "model": str(model_dir), "design": str(design),
           "inputs_npy": str(tmp_path / "inputs.npy"), "stdout": str(tmp_path / "run.json"),
           "stderr": str(tmp_path / "run.err")}
    _run_cocotb("eie_run_over_pty", job, tmp_path)
    out = json.loads((tmp_path / "run.json").read_text())
    # the golden program, computed here from the compressed layers (the board ran its own copy)
    program = result.report["program"]
    from eie.golden.program import Program
    golden = run_fixed(Program.from_dict(program), result.layers, CFG,
                       quantize_input(X, result.input_frac, CFG))
    assert out["golden_mismatches"] == 0 and out["eie_calls"] == 2
    assert out["predictions"] == [int(v) for v in golden.argmax(axis=1)]
    assert all(c > 0 for c in (out["cycles_min"], out["cycles_max"]))



def _rtlil_modules(text):
    """``{name: body}`` of every module of an RTLIL text."""
    return {m.group(1): m.group(2) for m in re.finditer(r"^module \\(\S+)\n(.*?)^end$", text, re.M | re.S)}


def _connections(body, cell_type):
    """``{port: signal}`` of the one cell of ``cell_type`` in a module body."""
    cells = re.findall(rf"^  cell \\{re.escape(cell_type)} \S+\n(.*?)^  end$", body, re.M | re.S)
    assert len(cells) == 1, f"{len(cells)} cells of type {cell_type}"
    return {port: sig.removesuffix(" [0]") for port, sig in re.findall(r"connect \\(\S+) (.+)", cells[0])}


@pytest.mark.parametrize("buffered", [False, True])
def test_core_reset_is_one_register_and_on_the_ecp5_a_global(buffered):
    """The core's only reset is one flip-flop (set by the sync reset or a SYNC frame), not the
    frame FSM's decode, and on the ECP5 that flip-flop reaches the core through a DCCA
    (48 PEs: the decoded reset across the die was the critical path, 17.1 ns)."""
    from amaranth.back import rtlil
    from eie.boards.top import BoardCore, LoopbackCore, ecp5_global_buffer
    core = BoardCore(LoopbackCore(), clk_hz=12e6, baud=1_000_000,
                     reset_buffer=ecp5_global_buffer if buffered else None)
    modules = _rtlil_modules(rtlil.convert(core, name="top"))
    top = modules["top"]
    assert not re.search(r"wire width 1 input \d+ \\rst\n", modules["top.core"])   # no sync reset of its own
    reset_in = _connections(top, "top.core")["core_rst"]
    registers = {q.removesuffix(" [0]") for q in re.findall(r"connect \\Q (.+)", top)}
    if buffered:
        dcca = _connections(top, "DCCA")
        assert dcca["CE"] == "1'1" and dcca["CLKI"] in registers and reset_in == dcca["CLKO"]
    else:
        assert "DCCA" not in top and reset_in in registers
