"""cocotb test of the board top's UART path (run inside the simulator by test_board_uart.py).

The DUT is :class:`eie.boards.top.BoardCore` (UART bridge + EIETop) with
``rx`` / ``tx`` pins. The host side is the real board runtime code:
:class:`eie.framing.FramedLink` and :class:`eie.host.Runtime`, run in a
thread (``cocotb.task.bridge``) whose serial port drives ``rx`` bit by bit and
reads the bytes a UART monitor decodes from ``tx``. The job (config, network
image, inputs, expected golden outputs) comes from ``$EIE_BOARD_JOB``.
"""

import json
import os
from pathlib import Path

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.task import bridge, resume
from cocotb.triggers import ClockCycles, FallingEdge

from eie.config import EIEConfig
from eie.format import NetworkImage
from eie.framing import AckCode, FramedLink, FrameType, NakReason
from eie.host import Runtime
from eie.protocol import Mem, Opcode, Status, encode_write

CLOCK_NS = 250          # 4 MHz: with 1 Mbaud, 4 clocks per bit


class UARTPort:
    """The host's serial port, in the simulator: ``write`` drives ``rx``, ``read`` returns
    bytes decoded from ``tx``. Both are blocking calls for the host thread."""

    def __init__(self, dut, divisor: int):
        self.dut = dut
        self.divisor = divisor
        self.received = bytearray()
        self.framing_errors = 0
        self.now = 0.0          # simulated seconds, the FramedLink's clock
        self.bytes_in = 0

    def clock(self) -> float:
        return self.now

    def _tick_time(self):
        self.now = cocotb.utils.get_sim_time("ns") * 1e-9

    async def monitor(self):
        d, tx = self.divisor, self.dut.tx
        while True:
            await FallingEdge(tx)
            await ClockCycles(self.dut.clk, d // 2)
            if int(tx.value) != 0:
                continue                                  # a glitch, not a start bit
            value = 0
            for i in range(8):
                await ClockCycles(self.dut.clk, d)
                value |= int(tx.value) << i
            await ClockCycles(self.dut.clk, d)
            if int(tx.value) != 1:
                self.framing_errors += 1
                continue
            self.received.append(value)

    @resume
    async def _write(self, data: bytes):
        d, rx = self.divisor, self.dut.rx
        for b in data:
            for bit in [0] + [(b >> i) & 1 for i in range(8)] + [1]:
                rx.value = bit
                await ClockCycles(self.dut.clk, d)
        self.bytes_in += len(data)
        self._tick_time()

    @resume
    async def _read(self, timeout: float):
        cycles = max(1, int(timeout / (CLOCK_NS * 1e-9)))
        step = 10 * self.divisor                     # one byte time
        waited = 0
        while not self.received and waited < cycles:
            await ClockCycles(self.dut.clk, step)
            waited += step
        # let a frame in flight finish so callers see whole frames more often
        data, self.received = bytes(self.received), bytearray()
        self._tick_time()
        return data

    # BytePort interface (called from the host thread)
    def write(self, data: bytes) -> None:
        self._write(bytes(data))

    def read(self, timeout: float) -> bytes:
        return self._read(timeout)


@cocotb.test()
async def uart_session(dut):
    job = json.loads(Path(os.environ["EIE_BOARD_JOB"]).read_text())
    cfg = EIEConfig.from_dict(job["config"])
    image = NetworkImage.load(job["image"])
    inputs = np.load(job["inputs"])
    expected = np.load(job["expected"])
    divisor = job["divisor"]

    dut.rx.value = 1
    dut.pll_locked.value = 1
    cocotb.start_soon(Clock(dut.clk, CLOCK_NS, "ns").start())
    dut.rst.value = 1
    await ClockCycles(dut.clk, 5)
    dut.rst.value = 0
    await ClockCycles(dut.clk, 5)

    port = UARTPort(dut, divisor)
    cocotb.start_soon(port.monitor())
    report = {}

    def host():
        link = FramedLink(port, clock=port.clock, ack_timeout=0.02, response_timeout=0.004, retries=2,
                          log=dut._log.info)
        link.open()
        rt = Runtime(cfg, link)
        rt.check_info()

        # A known value in PE 0's activation bank 0, address 3.
        rt.host.write(Mem.ACT, 0, 3, [0x42])
        [r.check() for r in rt.flush()]

        def read_act3():
            rt.host.read(Mem.ACT, 0, 3, 1)
            (r,) = rt.flush()
            return r.check().data[0]

        # The same WRITE of a new value, framed by the host code, then damaged on the way.
        (seq, good), = link.framing.data_frames(encode_write(cfg, Mem.ACT, 0, 3, [0x1234]))
        bad = bytearray(good)
        bad[-7] ^= 0x10                                  # a payload bit: the CRC no longer matches
        answer = link.send_raw(bytes(bad), seq)
        report["corrupt_answer"] = None if answer is None else [answer.type, answer.code]
        report["after_corrupt"] = read_act3()            # must still be 0x42: not executed
        answer = link.send_raw(good[:9], seq)             # truncated: the line goes quiet
        report["truncated_answer"] = None if answer is None else [answer.type, answer.code]
        report["after_truncated"] = read_act3()
        answer = link.send_raw(good, seq)                 # intact: executed once
        report["good_answer"] = None if answer is None else [answer.type, answer.code]
        answer = link.send_raw(good, seq)                 # repeated (as after a lost ACK): not executed again
        report["repeat_answer"] = None if answer is None else [answer.type, answer.code]
        report["status_words"] = link.transact([], 2)     # one WRITE status word, not two
        report["after_good"] = read_act3()

        rt.load(image)
        outputs, cycles = [], []
        for x in inputs:
            res = rt.infer(x, image.layers)
            outputs.append(np.asarray(res.output, dtype=np.int64).tolist())
            cycles.append(int(res.cycles))
        report["outputs"] = outputs
        report["cycles"] = cycles
        report["link"] = {"frames": link.stats.frames_sent, "retransmissions": link.stats.retransmissions,
                          "naks": link.stats.naks}

    def guarded():
        try:
            host()
        except Exception:
            import traceback
            report["error"] = traceback.format_exc()

    await bridge(guarded)()
    report["uart_framing_errors"] = port.framing_errors
    report["bytes_to_board"] = port.bytes_in
    Path(job["report"]).write_text(json.dumps(report))

    assert "error" not in report, report["error"]
    assert report["uart_framing_errors"] == 0
    assert report["corrupt_answer"] == [FrameType.NAK, NakReason.CRC]
    assert report["after_corrupt"] == 0x42
    assert report["truncated_answer"] == [FrameType.NAK, NakReason.TIMEOUT]
    assert report["after_truncated"] == 0x42
    assert report["good_answer"] == [FrameType.ACK, AckCode.ACCEPTED]
    assert report["status_words"] == [Status.OK | (Opcode.WRITE << 8) | (Mem.ACT << 16)]
    assert report["after_good"] == 0x1234
    assert report["repeat_answer"] == [FrameType.ACK, AckCode.DUPLICATE]
    assert report["outputs"] == expected.tolist()


@cocotb.test()
async def eie_run_over_pty(dut):
    """`eie run` as a real subprocess, talking pyserial to a pseudo-terminal whose other
    end this test connects to the simulated UART pins."""
    import fcntl
    import pty
    import subprocess
    import sys
    import tty

    job = json.loads(Path(os.environ["EIE_BOARD_JOB"]).read_text())
    divisor = job["divisor"]
    dut.rx.value = 1
    dut.pll_locked.value = 1
    cocotb.start_soon(Clock(dut.clk, CLOCK_NS, "ns").start())
    dut.rst.value = 1
    await ClockCycles(dut.clk, 5)
    dut.rst.value = 0
    port = UARTPort(dut, divisor)
    cocotb.start_soon(port.monitor())

    master, slave = pty.openpty()
    tty.setraw(slave)
    fcntl.fcntl(master, fcntl.F_SETFL, fcntl.fcntl(master, fcntl.F_GETFL) | os.O_NONBLOCK)
    slave_path = os.ttyname(slave)
    with open(job["stdout"], "w") as out, open(job["stderr"], "w") as err:
        proc = subprocess.Popen([sys.executable, "-m", "eie.cli", "run", "--board", "icebreaker",
                                 "--port", slave_path, job["model"], "--design", job["design"],
                                 "--inputs", job["inputs_npy"], "--timeout", "60", "--json"],
                                stdout=out, stderr=err)
        d = divisor
        while proc.poll() is None:
            try:
                data = os.read(master, 4096)
            except BlockingIOError:
                data = b""
            for b in data:
                for bit in [0] + [(b >> i) & 1 for i in range(8)] + [1]:
                    dut.rx.value = bit
                    await ClockCycles(dut.clk, d)
            if port.received:
                os.write(master, bytes(port.received))
                port.received.clear()
            if not data:
                await ClockCycles(dut.clk, 10 * d)
        os.close(master)
        os.close(slave)
    assert proc.returncode == 0, Path(job["stderr"]).read_text()[-3000:]
