"""Host runtime: load a network, run inferences, read counters, over any link.

A *link* moves 32-bit words to and from the EIE top level. It needs one method::

    transact(words: list[int], expect: int) -> list[int]

which sends ``words`` and returns exactly ``expect`` response words (more may
arrive later for commands that fail; :class:`Runtime` checks every status).
The cocotb testbench and the UART board runtime both provide one; all protocol
logic lives here and in :mod:`eie.protocol`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from .config import EIEConfig
from .format import NetworkImage
from .protocol import ALL_PES, Counter, HostSession, Mem, PECounter, ProtocolError, Response, info_words

__all__ = ["Link", "RunResult", "Runtime", "image_commands", "distribute", "gather"]


class Link(Protocol):
    def transact(self, words: list[int], expect: int) -> list[int]: ...


@dataclass
class RunResult:
    output: np.ndarray            # int64 activations (the last layer's outputs, hardware row order)
    cycles: int
    broadcasts: int
    broadcast_stalls: int
    layers: int
    pe_busy: np.ndarray | None = None
    pe_stall: np.ndarray | None = None


def distribute(cfg: EIEConfig, vector) -> list[list[int]]:
    """Split a vector into per-PE slices: element ``j`` -> PE ``j mod N``, index ``j // N``."""
    vector = np.asarray(vector, dtype=np.int64)
    return [vector[k::cfg.pes].tolist() for k in range(cfg.pes)]


def gather(cfg: EIEConfig, slices, length: int) -> np.ndarray:
    out = np.zeros(length, dtype=np.int64)
    for k, s in enumerate(slices):
        out[k::cfg.pes] = np.asarray(s[: len(range(k, length, cfg.pes))], dtype=np.int64)
    return out


def image_commands(host: HostSession, image: NetworkImage, *, broadcast_codebook: bool = True) -> None:
    """Queue the writes that load ``image`` into every memory."""
    cfg = image.config
    for k in range(cfg.pes):
        if image.spmat.shape[1]:
            host.write(Mem.SPMAT, k, 0, image.spmat[k].tolist())
        if image.ptr.shape[1]:
            host.write(Mem.PTR, k, 0, image.ptr[k].tolist())
        if image.bias.shape[1]:
            host.write(Mem.BIAS, k, 0, image.bias[k].tolist())
    codebook = image.codebook.reshape(-1).tolist()
    if codebook:
        if broadcast_codebook:
            host.write(Mem.CODEBOOK, ALL_PES, 0, codebook)
        else:
            for k in range(cfg.pes):
                host.write(Mem.CODEBOOK, k, 0, codebook)
    host.write(Mem.LAYER, ALL_PES, 0, [l.packed(cfg) for l in image.layers])


class Runtime:
    """Drive an EIE design through a :class:`Link`."""

    def __init__(self, cfg: EIEConfig, link: Link):
        self.cfg = cfg
        self.link = link
        self.host = HostSession(cfg)

    def flush(self) -> list[Response]:
        words = self.host.take_outgoing()
        expect = self.host.expected_words()
        responses = self.host.receive(self.link.transact(words, expect))
        # A failed READ sends fewer words than expected; collect whatever is still owed.
        while self.host.outstanding:
            responses += self.host.receive(self.link.transact([], self.host.expected_words()))
        return responses

    def load_layer_table(self, table) -> None:
        """Write the layer-table entries ``table`` at positions ``0..len-1`` of every PE
        (one program step's layers) and check the acknowledgements."""
        self.host.write(Mem.LAYER, ALL_PES, 0, [e.packed(self.cfg) for e in table])
        for r in self.flush():
            r.check()

    def check_info(self) -> None:
        self.host.info()
        (resp,) = self.flush()
        resp.check()
        if resp.data != info_words(self.cfg):
            raise ProtocolError(f"design reports INFO {[hex(w) for w in resp.data]}, expected "
                                f"{[hex(w) for w in info_words(self.cfg)]}: the bitstream or model was "
                                f"built from another config")

    def load(self, image: NetworkImage) -> None:
        if image.config != self.cfg:
            raise ValueError("network image was encoded for another config than this design's "
                             f"(image digest {image.config.digest}, design {self.cfg.digest})")
        image_commands(self.host, image)
        for r in self.flush():
            r.check()

    def write_input(self, vector) -> None:
        vector = np.asarray(vector, dtype=np.int64)
        if len(vector) > self.cfg.max_len:
            raise ValueError(f"input of length {len(vector)} exceeds pes * act_depth = {self.cfg.max_len}")
        for k, s in enumerate(distribute(self.cfg, vector)):
            if s:
                self.host.write(Mem.ACT, k, 0, s)

    def read_vector(self, bank: int, length: int) -> np.ndarray:
        per_pe = [len(range(k, length, self.cfg.pes)) for k in range(self.cfg.pes)]
        for k, n in enumerate(per_pe):
            if n:
                self.host.read(Mem.ACT, k, bank * self.cfg.act_depth, n)
        responses = [r.check() for r in self.flush()]
        slices = [r.data for r in responses]
        slices += [[] for _ in range(self.cfg.pes - len(slices))]
        return gather(self.cfg, slices, length)

    def read_counters(self, per_pe: bool = False) -> dict:
        if per_pe and not self.cfg.pe_counters:
            raise ValueError("per-PE counters are not built in this design (config pe_counters=0); "
                             "read the global counters only (per_pe=False)")
        self.host.read(Mem.COUNTER, ALL_PES, 0, len(Counter))
        if per_pe:
            for k in range(self.cfg.pes):
                self.host.read(Mem.COUNTER, k, 0, len(PECounter))
        responses = [r.check() for r in self.flush()]
        glob = responses[0].data
        out = {c.name.lower(): glob[c] for c in Counter}
        if per_pe:
            out["pe_busy"] = np.array([r.data[PECounter.BUSY] for r in responses[1:]])
            out["pe_stall"] = np.array([r.data[PECounter.STALL] for r in responses[1:]])
        return out

    def infer(self, vector, layers: list, *, per_pe: bool = False) -> RunResult:
        """Write ``vector`` to bank 0, run ``len(layers)`` layers, read the output and counters.

        ``layers`` is the image's layer table (for the output length)."""
        self.write_input(vector)
        self.host.run(len(layers), wait=True)
        for r in self.flush():
            r.check()
        out = self.read_vector(len(layers) % 2, layers[-1].out_len)
        c = self.read_counters(per_pe)
        return RunResult(out, c["cycles"], c["broadcasts"], c["broadcast_stalls"], c["layers"],
                         c.get("pe_busy"), c.get("pe_stall"))
