"""``make demo``: the whole flow on the built-in ``digits-mlp`` model.

Each step is the ``eie`` command a user would type, printed before it runs:
compress the model for 4 PEs, generate the Verilog, run a batch of test digits
through the RTL simulation, and show the commands that build and flash the
design for an iCEBreaker.
"""

from __future__ import annotations

import argparse
import shlex
import shutil
import subprocess
import sys
from pathlib import Path


def _eie() -> list[str]:
    exe = Path(sys.executable).with_name("eie")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "eie.cli"]


def step(title: str, args: list[str]) -> None:
    print(f"\n=== {title}\n$ eie {shlex.join(args)}", flush=True)
    rc = subprocess.call(_eie() + args)
    if rc:
        print(f"demo: step '{title}' failed with exit status {rc}", file=sys.stderr)
        sys.exit(rc)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m eie.demo", description=__doc__)
    parser.add_argument("--out", default="build/demo", help="output folder (default: build/demo)")
    parser.add_argument("--pes", type=int, default=4)
    parser.add_argument("--limit", type=int, default=64, help="test digits to run through the RTL")
    args = parser.parse_args(argv)
    out = Path(args.out)
    model, rtl, board = out / "digits-mlp", out / "rtl", out / "icebreaker"

    step("1. Deep Compression of digits-mlp (prune, share, quantise, encode)",
         ["compress", "--model", "digits-mlp", "--pes", str(args.pes), "-o", str(model)])
    step("2. Verilog for the compressed network's EIE array",
         ["generate", "--config", str(model / "manifest.json"), "-o", str(rtl), "--lint"])
    step(f"3. RTL simulation (Verilator) of {args.limit} test digits, checked against the golden model",
         ["simulate", str(model), "--inputs", "digits-test", "--limit", str(args.limit)])
    print("\n=== 4. On an iCEBreaker (not run by the demo: the FPGA build takes minutes and needs the board)")
    # The board preset uses 8-bit activations and codebook values: compress for it.
    board_model = out / "digits-mlp-icebreaker"
    print(f"$ eie compress --board icebreaker -o {board_model}")
    print(f"$ eie build --board icebreaker --model {board_model} -o {board}")
    print(f"$ eie flash --board icebreaker {board}")
    print(f"$ eie run --board icebreaker --port /dev/ttyUSB1 {board_model} --design {board} --inputs digits-test")
    if shutil.which("openFPGALoader") is None:
        print("(openFPGALoader is not installed here: `apt-get install openfpgaloader`)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
