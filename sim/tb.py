"""cocotb testbench of the generated EIE top level (run inside the simulator).

:class:`TB` owns the clock, the reset and the two host streams of the harness
``sim/harness.sv`` (module ``eie_sim`` around ``eie_top``), and is an
:class:`eie.host.Link`: ``transact(words, expect)`` sends a word stream and
returns the response words, so :class:`eie.host.Runtime` and
:class:`eie.protocol.HostSession` do all protocol work. Two ways to move words:

``python``
    cycle by cycle from Python: a word is offered on ``host_in`` after a random
    number of idle cycles (probability ``idle`` per cycle) and ``host_out`` is
    not ready with probability ``backpressure`` per cycle (seeded
    ``random.Random``). Slow (tens of thousands of cycles per second); for
    small cases.
``fast``
    the whole transaction goes to the harness through a file; the harness
    streams it at one word per cycle (LFSR idle / back-pressure at the same
    rates) and captures the responses, so Python only waits for ``fast_done``.

The test :func:`run_job` reads the job folder named by ``$EIE_SIM_JOB``
(:mod:`eie.sim.driver`), runs it and fails on the first mismatch.
"""

from __future__ import annotations

import json
import logging
import os
import random
from pathlib import Path

import cocotb
from cocotb.clock import Clock
from cocotb.task import bridge, resume
from cocotb.triggers import FallingEdge, First, ReadOnly, RisingEdge, Timer

from eie.sim import driver

CLOCK_NS = 10
IN_FILE = "eie_fast_in.hex"
OUT_FILE = "eie_fast_out.hex"


class LinkTimeout(RuntimeError):
    """The design stopped answering."""


class TB:
    """Clock, reset and host-stream drivers/monitors of one ``eie_sim`` instance.

    Parameters
    ----------
    dut : the cocotb handle of ``eie_sim``
    link : ``"fast"`` or ``"python"``
    seed : seeds Python's generator and the harness LFSR
    idle, backpressure : probabilities (0 <= p < 1) of an idle ``host_in``
        cycle between words and of a not-ready ``host_out`` cycle
    timeout_cycles : cycles without any handshake after which a transaction
        gives up and returns the words received so far
    settle_cycles : cycles to wait after reset before the first command. The
        CCU zeroes the accumulators in the background for ``act_depth`` cycles
        after reset (hw/ccu.py); a RUN before that costs extra cycles that the
        cycle model (which describes the steady state) does not count.
    """

    def __init__(self, dut, *, link: str = "fast", seed: int = 0, idle: float = 0.0, backpressure: float = 0.0,
                 timeout_cycles: int = 2_000_000, settle_cycles: int = 0):
        if link not in driver.LINKS:
            raise ValueError(f"link must be one of {', '.join(driver.LINKS)}, not {link!r}")
        self.dut = dut
        self.link = link
        self.rng = random.Random(seed)
        self.seed = seed
        self.idle = idle
        self.backpressure = backpressure
        self.timeout_cycles = timeout_cycles
        self.settle_cycles = settle_cycles
        self.log = logging.getLogger("eie.tb")
        self.cycles_waited = 0
        self.words_sent = 0
        self.words_received = 0

    # -- set-up ------------------------------------------------------------------
    async def start(self) -> None:
        dut = self.dut
        Clock(dut.clk, CLOCK_NS, unit="ns").start(start_high=False)
        for name, value in (("py_in_valid", 0), ("py_in_payload", 0), ("py_out_ready", 0),
                            ("fast_mode", int(self.link == "fast")), ("fast_start", 0), ("fast_keep", 0),
                            ("fast_in_count", 0), ("fast_out_count", 0),
                            ("fast_timeout", min(self.timeout_cycles, 0xFFFFFFFF)),
                            ("fast_idle", min(255, int(round(self.idle * 256)))),
                            ("fast_stall", min(255, int(round(self.backpressure * 256)))),
                            ("fast_seed", self.seed & 0xFFFFFFFF)):
            getattr(dut, name).value = value
        dut.rst.value = 1
        for _ in range(4):
            await FallingEdge(dut.clk)
        dut.rst.value = 0
        for _ in range(1 + self.settle_cycles):
            await FallingEdge(dut.clk)
        self.in_capacity = int(dut.in_capacity.value)
        self.out_capacity = int(dut.out_capacity.value)

    # -- the Link ----------------------------------------------------------------
    def transact(self, words: list[int], expect: int) -> list[int]:
        """Blocking :class:`eie.host.Link` entry (call from a cocotb bridge thread)."""
        return resume(self.transact_async)(list(words), expect)

    async def transact_async(self, words: list[int], expect: int) -> list[int]:
        if self.link == "fast":
            got = await self._fast(words, expect)
        else:
            got = await self._python(words, expect)
        self.words_sent += len(words)
        self.words_received += len(got)
        if not got and expect:
            raise LinkTimeout(f"no response word within {self.timeout_cycles} cycles "
                              f"({len(words)} words sent, {expect} expected)")
        return got

    # Python path: drive just after the falling edge, sample in ReadOnly before
    # the rising edge (independent of how the simulator orders edge callbacks).
    async def _python(self, words: list[int], expect: int) -> list[int]:
        dut, rng = self.dut, self.rng
        got: list[int] = []
        i, offering, quiet = 0, False, 0
        while i < len(words) or len(got) < expect:
            if not offering and i < len(words) and rng.random() >= self.idle:
                offering = True
                dut.py_in_payload.value = words[i]
            dut.py_in_valid.value = int(offering)
            ready = rng.random() >= self.backpressure
            dut.py_out_ready.value = int(ready)
            await ReadOnly()
            in_fire = offering and bool(dut.py_in_ready.value)
            out_valid = bool(dut.py_out_valid.value)
            if ready and out_valid:
                got.append(int(dut.py_out_payload.value))
            await FallingEdge(dut.clk)
            self.cycles_waited += 1
            quiet = 0 if (in_fire or (ready and out_valid)) else quiet + 1
            if in_fire:
                i += 1
                offering = False
            if i == len(words) and len(got) < expect and not bool(dut.py_out_valid.value):
                # Nothing to send and nothing offered: sleep until the design answers.
                dut.py_in_valid.value = 0
                dut.py_out_ready.value = 0
                timer = Timer(CLOCK_NS * self.timeout_cycles, unit="ns")
                if await First(RisingEdge(dut.py_out_valid), timer) is timer:
                    break
                await FallingEdge(dut.clk)
                quiet = 0
            elif quiet > self.timeout_cycles:
                break
        dut.py_in_valid.value = 0
        dut.py_out_ready.value = 0
        return got

    async def _fast(self, words: list[int], expect: int) -> list[int]:
        dut = self.dut
        if expect > self.out_capacity:
            raise ValueError(f"a transaction expecting {expect} response words exceeds the harness capture "
                             f"memory of {self.out_capacity} words; split it")
        chunks = [words[k:k + self.in_capacity] for k in range(0, len(words), self.in_capacity)] or [[]]
        for n, chunk in enumerate(chunks):
            last = n == len(chunks) - 1
            if chunk:
                Path(IN_FILE).write_text("\n".join(map("{:08x}".format, chunk)) + "\n")
            dut.fast_in_count.value = len(chunk)
            dut.fast_out_count.value = expect if last else 0
            dut.fast_keep.value = int(n > 0)
            dut.fast_start.value = 1
            await FallingEdge(dut.clk)
            dut.fast_start.value = 0
            await RisingEdge(dut.fast_done)
            await FallingEdge(dut.clk)
            if bool(dut.fast_timed_out.value):
                break
        captured = int(dut.fast_captured.value)
        if not captured:
            return []
        # One hex word a line; Icarus' $writememh adds "// 0x<address>" comment lines.
        got = [int(w, 16) for line in Path(OUT_FILE).read_text().splitlines() for w in line.split("//")[0].split()]
        if len(got) < captured:
            raise RuntimeError(f"harness reported {captured} captured words but {OUT_FILE} holds {len(got)}")
        return got[:captured]


def _job_dir() -> Path:
    try:
        return Path(os.environ["EIE_SIM_JOB"])
    except KeyError:
        raise RuntimeError("EIE_SIM_JOB is not set: run this testbench through eie.sim.runner.run") from None


@cocotb.test()
async def run_job(dut):
    """Load, run and check every network of the job in ``$EIE_SIM_JOB``."""
    job_dir = _job_dir()
    spec = json.loads((job_dir / driver.JOB_FILE).read_text())
    tb = TB(dut, link=spec["link"], seed=spec["seed"], idle=spec["idle"], backpressure=spec["backpressure"],
            timeout_cycles=spec["timeout_cycles"], settle_cycles=spec["config"]["act_depth"] + 8)
    await tb.start()
    result = await bridge(driver.execute_job)(tb, job_dir, out_capacity=tb.out_capacity,
                                                     log=tb.log.info)
    tb.log.info("moved %d words in, %d words out", tb.words_sent, tb.words_received)
    assert result["mismatches"] == 0, f"{result['mismatches']} mismatching inference(s); first: " \
                                      f"{result['first_mismatch']['message']}"


@cocotb.test()
async def roundtrip(dut):
    """Random WRITE/READ of every memory (job from ``$EIE_SIM_JOB``, :func:`driver.write_roundtrip_job`)."""
    job_dir = _job_dir()
    spec = json.loads((job_dir / driver.JOB_FILE).read_text())
    tb = TB(dut, link=spec["link"], seed=spec["seed"], idle=spec["idle"], backpressure=spec["backpressure"],
            timeout_cycles=spec["timeout_cycles"])
    await tb.start()
    result = await bridge(driver.execute_roundtrip)(tb, job_dir, log=tb.log.info)
    assert not result["errors"], "; ".join(result["errors"][:5])
