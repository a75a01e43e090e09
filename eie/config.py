"""The one configuration object of an EIE design.

:class:`EIEConfig` is the single source of truth for every width, depth and count
of the generated hardware. The golden model, the hardware generator, the
simulator driver and the board runtime all take it; widths that follow from
other fields are properties, so they cannot disagree.

Presets are small edits of :data:`DEFAULT`::

    from dataclasses import replace
    cfg = replace(PRESETS["paper"], pes=16)
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

from . import timing

__all__ = ["EIEConfig", "DEFAULT", "PRESETS", "preset", "clog2", "LAYER_FIELDS"]


def clog2(n: int) -> int:
    """Bits needed to hold the values ``0 .. n-1`` (``clog2(1) == 0``)."""
    if n < 1:
        raise ValueError(f"clog2 argument must be a positive integer, not {n!r}")
    return (n - 1).bit_length()


# (field name, lower bound, upper bound, meaning)
_LIMITS = {
    "pes":                  (1, 4096, "number of processing elements"),
    "fifo_depth":           (1, 256, "activation-queue depth per PE"),
    "column_buffer_depth":  (1, 64, "column buffer depth between pointer read and multiplier"),
    "act_bits":             (2, 32, "activation width in bits"),
    "act_frac_bits":        (0, 31, "fraction bits of the network input activations"),
    "index_bits":           (1, 8, "weight-index (codebook address) width in bits"),
    "codebook_bits":        (2, 32, "codebook value width in bits"),
    "zrun_bits":            (1, 8, "zero-run (relative row index) width in bits"),
    "spmat_depth":          (1, 1 << 24, "Spmat words per PE"),
    "entries_per_word":     (1, 8, "(v, z) entries per Spmat word"),
    "ptr_depth":            (2, 1 << 24, "column pointers per PE (all layers together)"),
    "act_depth":            (1, 1 << 16, "activation register-file depth per PE (each of the two banks)"),
    "bias_depth":           (1, 1 << 24, "bias words per PE (all layers together)"),
    "max_layers":           (1, 256, "entries of the layer table"),
    "counter_bits":         (16, 64, "width of the hardware performance counters"),
    "io_read_stages":       (0, 2, "extra registers on each PE memory's host read-back path"),
    "pe_counters":          (0, 1, "per-PE busy/stall counters built (1) or left out (0)"),
    "merge_codebook_bias":  (0, 1, "codebook and bias share one memory per PE (1) or have one each (0)"),
    "hold_pointer_read":    (0, 1, "pointer read ports hold a waiting column's pointers (1) or P1 copies them (0)"),
    "host_readback":        (0, 1, "the host can read back every memory (1) or only ACT, LAYER and COUNTER (0)"),
    "bias_width":           (0, 63, "bias word width in bits (0: acc_bits - 1)"),
    "wb_read_stages":       (0, 1, "registers after the write-back's accumulator and bias reads"),
    "pointer_banks":        (1, 2, "pointer memories per PE: 2 (even/odd banks) or 1 (one memory, two read ports)"),
    "lutram_words":         (0, 1 << 16, "PE memories of at most this many words are LUT RAM (0: none)"),
    "fanout_stages":        (0, 4, "register stages between the CCU and every PE, each way (0: none)"),
    "credit_bypass":        (0, 1, "a returned credit is used in the cycle it reaches the CCU (1) or the next (0)"),
}

# Fields added later, with their defaults: left out of the digest at the default
# (EIEConfig.digest), so older designs and images keep theirs.
_LATE_FIELDS = {"io_read_stages": 0, "pe_counters": 1, "merge_codebook_bias": 0, "hold_pointer_read": 0,
                "host_readback": 1, "bias_width": 0, "wb_read_stages": 0, "pointer_banks": 2, "lutram_words": 0,
                "fanout_stages": 0, "credit_bypass": 0}

# Layer-table entry, packed LSB first in this order (see docs/protocol.md).
# Widths are functions of the config so that hardware and host agree.
LAYER_FIELDS = (
    ("in_len",    lambda c: c.len_bits),
    ("out_len",   lambda c: c.len_bits),
    ("ptr_base",  lambda c: c.ptr_addr_bits),
    ("codebook",  lambda c: c.layer_bits),
    ("bias_base", lambda c: c.bias_addr_bits),
    ("shift",     lambda c: c.shift_bits),
    ("relu",      lambda c: 1),
)


@dataclass(frozen=True)
class EIEConfig:
    """Parameters of one EIE accelerator.

    Parameters
    ----------
    pes : int
        Number of processing elements ``N``. Row ``i`` and activation ``j`` live
        in PE ``i mod N`` / ``j mod N``.
    fifo_depth : int
        Depth of each PE's activation queue of broadcast ``(column, value)``.
        The CCU's credits per PE also count the two pointer stages behind it
        (``credits`` = ``fifo_depth + 2``).
    column_buffer_depth : int
        Depth of the buffer between a PE's pointer read and its Spmat read /
        multiplier; it lets the pointer read of later columns run ahead.
    act_bits, act_frac_bits : int
        Activations are signed ``act_bits``-bit fixed point; the network input
        is quantised with ``act_frac_bits`` fraction bits.
    index_bits : int
        Width of a weight index ``v``; the codebook has ``2**index_bits``
        entries, code 0 is reserved for the value 0.
    codebook_bits : int
        Width of a signed codebook value.
    zrun_bits : int
        Width of a zero run ``z``; runs longer than ``2**zrun_bits - 1`` are
        bridged by padding entries.
    spmat_depth, entries_per_word : int
        Spmat memory of each PE: ``spmat_depth`` words of ``entries_per_word``
        entries each.
    ptr_depth : int
        Column pointers per PE over all layers (a layer of ``n`` inputs uses
        ``ceil``-free ``n + 1`` of them).
    act_depth : int
        Depth of each of the two activation register files of a PE; a layer's
        input and output lengths are limited to ``pes * act_depth``.
    bias_depth : int
        Bias words per PE over all layers.
    max_layers : int
        Entries of the layer table (and codebooks per PE).
    counter_bits : int
        Width of the cycle, broadcast and per-PE counters in the hardware
        (the protocol always reads them as 64-bit items, zero-extended). 32
        bits count 2**32 cycles, 43 s at 100 MHz, per run: what the FPGA
        board presets use to save logic; 64 never wraps.
    io_read_stages : int
        Registers between each PE memory's read data and the host read-back
        multiplexer (each adds a cycle to a host READ item, nothing to a run).
        A block RAM's clock-to-output plus the route to a multiplexer fed by
        six memories limits large arrays on the ECP5 (the ECP5 presets use 1);
        0 saves the flip-flops (about 100 per PE at 16-bit activations), which
        the iCE40 cannot spare. With 1 or more the host io bus into the PEs
        and the CCU (address, data, per-PE write enable) is registered once as
        well (one more cycle on every write and read).
    pe_counters : int
        1: every PE has its ``busy`` and ``stall`` counters
        (:class:`eie.protocol.PECounter`); 0: they are not built (about 130
        iCE40 logic cells per PE) and a ``READ COUNTER`` of a PE is answered
        ``ERR_RANGE`` (the per-PE counter memory has depth 0).
    merge_codebook_bias : int
        1: a PE's codebook and biases live in one memory (biases at
        ``0 .. bias_depth - 1``, the codebook above), read through one port:
        the codebook is read only while the layer's columns are processed and
        the biases only in the write-back, never in the same cycle. Saves a
        block RAM per PE where the bias memory has room to spare (iCE40).
        0: two memories. The host sees the same memories either way.
    hold_pointer_read : int
        1: while the pointer stage P1 holds a column it cannot pass on, the
        pointer banks' read enables are low, so their registered outputs keep
        its pointers (a handshake drives the block-RAM enables: fine on the
        iCE40, a long path on a large ECP5). 0: the banks read the queue head
        every cycle and P1 keeps a copy of its pointers (``2 * ptr_bits``
        flip-flops and a multiplexer per PE).
    host_readback : int
        1: the host can ``READ`` every memory. 0: only what inference needs
        (``ACT``: inputs and results; ``LAYER``: the baked-in check of ``eie
        run``; ``COUNTER``): a ``READ`` of ``SPMAT``, ``PTR``, ``CODEBOOK`` or
        ``BIAS`` is answered ``ERR_WRITEONLY`` and the PEs have no read-back
        multiplexer for them (about 120 iCE40 logic cells per PE). Writes are
        the same either way.
    bias_width : int
        Width of a signed bias word (``bias_bits``); 0 (the default) makes it
        ``acc_bits - 1``, which holds any bias the accumulator can. A narrower
        one (2 .. ``acc_bits - 1``) saves bias memory: the quantiser
        (:mod:`eie.golden.quantize`) then gives a layer whose bias would not fit
        fewer codebook fraction bits, and an image with a bias out of range is
        refused. The iCE40 presets use 16 (one block RAM per PE instead of two).
    wb_read_stages : int
        1: the write-back registers the accumulator and bias words before it
        adds them (a block RAM's clock-to-output and its route into the adder
        was the 16-PE ECP5 critical path); one cycle more per layer
        (``writeback_latency`` 5, the cycle model follows). The ECP5 presets use
        1; 0 saves ``acc_bits + bias_bits`` flip-flops per PE (iCE40).
    pointer_banks : int
        2: a PE's column pointers are split over an even and an odd bank, two
        memories with one read port each (``p[j]`` and ``p[j + 1]`` are always in
        different banks): what an iCE40 EBR or a two-port ASIC macro offers. 1:
        one pointer memory with two read ports, the first shared with the host's
        writes (one address): an ECP5 DP16KD or a Gowin BSRAM in true dual-port
        mode holds ``ptr_depth`` pointers of up to 18 bits alone, one block RAM
        per PE instead of two. Timing is the same. Not for the ASIC target (its
        memory wrappers have one read port) nor the iCE40 (Yosys would build two
        full copies).
    lutram_words : int
        PE memories of at most this many words (accumulators, register files,
        codebook, biases; never the Spmat or the pointers) are built in LUT RAM
        (Yosys ``ram_style = "distributed"``) instead of block RAM; 0 (the
        default) keeps every one in block RAM. The read stays registered, so
        timing is the same. An ECP5 with many PEs has short register files
        (``act_depth`` 16-32) whose block RAMs would be nearly empty: in LUT RAM
        the accumulators and register files (32 x 44 and 64 x 17 bits at 48
        PEs) take 42 TRELLIS_DPR16X4 cells (84 LUT sites) and their read
        multiplexers instead of 3 DP16KDs. FPGA only (the ASIC target has its own rule).
    fanout_stages : int
        Register stages between the CCU and the PEs, each way (0, the default:
        the CCU's output registers drive every PE, and the PEs' registers the
        CCU, across the die in one cycle). With ``D`` stages the CCU's outputs
        reach the PEs through a tree of registers (``eie.hw.array``: the last
        stage one copy per group of :data:`eie.timing.FANOUT_GROUP` PEs, each
        earlier stage one copy per group of such copies) and the PEs' credits,
        idle flags and register-file words come back through ``D`` registers
        each, so no net crosses the die from one register to 48 or 64 PEs.
        Every CCU-PE round trip grows by ``2 D`` cycles: the CCU's row queue
        holds ``3 + 2 D`` rows (``eie.timing.row_queue``), a credit returns
        ``D`` cycles later (shallow activation queues lose broadcast rate) and
        a layer ends ``D`` cycles after its last PE goes idle; the cycle model
        follows (docs/hardware.md, "Timing"). The ULX3S-85F's dense preset uses
        1 above 16 PEs.
    credit_bypass : int
        1: a credit a PE returns is spent in the cycle it reaches the CCU: the
        broadcast decision is an AND over every PE of "holds a credit or
        returns one now", so a credit comes back one cycle sooner (a queue slot
        freed in cycle ``t`` is used from ``t + 1``) and a shallow queue keeps
        more of its broadcast rate (``eie sweep fig8``). The price is that path:
        the PEs' credit registers (or their fan-in registers) run through an
        ``N``-input AND into the broadcast decision and everything it drives.
        0 (the default): the CCU registers that AND first (a credit is spent a
        cycle later), so the decision comes from CCU registers alone. The iCE40
        preset (4 PEs, queues of 2) uses 1, the ECP5 presets 0.
    """

    pes: int = 4
    fifo_depth: int = 8
    column_buffer_depth: int = 4
    act_bits: int = 16
    act_frac_bits: int = 8
    index_bits: int = 4
    codebook_bits: int = 16
    zrun_bits: int = 4
    spmat_depth: int = 2048
    entries_per_word: int = 8
    ptr_depth: int = 1024
    act_depth: int = 128
    bias_depth: int = 512
    max_layers: int = 8
    counter_bits: int = 64
    io_read_stages: int = 0
    pe_counters: int = 1
    merge_codebook_bias: int = 0
    hold_pointer_read: int = 0
    host_readback: int = 1
    bias_width: int = 0
    wb_read_stages: int = 0
    pointer_banks: int = 2
    lutram_words: int = 0
    fanout_stages: int = 0
    credit_bypass: int = 0

    def __post_init__(self):
        for f in fields(self):
            value = getattr(self, f.name)
            lo, hi, what = _LIMITS[f.name]
            if not isinstance(value, int) or isinstance(value, bool):
                raise ValueError(f"EIEConfig.{f.name} ({what}) must be an integer, not {value!r}")
            if not lo <= value <= hi:
                raise ValueError(f"EIEConfig.{f.name} ({what}) must be in range {lo}..{hi}, not {value!r}")
        if self.act_frac_bits >= self.act_bits:
            raise ValueError(f"EIEConfig.act_frac_bits must be in range 0..{self.act_bits - 1} "
                             f"(below act_bits={self.act_bits}), not {self.act_frac_bits!r}")
        if self.ptr_depth < 2:
            raise ValueError(f"EIEConfig.ptr_depth must be at least 2, not {self.ptr_depth!r}")
        if self.bias_depth < self.act_depth:
            raise ValueError(f"EIEConfig.bias_depth must be in range {self.act_depth}..{_LIMITS['bias_depth'][1]} "
                             f"(at least act_depth={self.act_depth}, one layer of bias), not {self.bias_depth!r}")
        if self.acc_bits > 64:
            raise ValueError(f"EIEConfig.act_bits + codebook_bits + clog2(pes * act_depth) + 1 = {self.acc_bits} "
                             f"exceeds the 64-bit accumulator limit; reduce act_bits, codebook_bits, pes or act_depth")
        if self.bias_width and not 2 <= self.bias_width < self.acc_bits:
            raise ValueError(f"EIEConfig.bias_width must be 0 (acc_bits - 1) or in range 2..{self.acc_bits - 1} "
                             f"(below acc_bits={self.acc_bits}), not {self.bias_width!r}")

    # -- derived sizes ---------------------------------------------------
    @property
    def codebook_size(self) -> int:
        """Entries per codebook (``2**index_bits``); code 0 holds the value 0."""
        return 1 << self.index_bits

    @property
    def max_zrun(self) -> int:
        """Longest zero run one entry can express."""
        return (1 << self.zrun_bits) - 1

    @property
    def entry_bits(self) -> int:
        """Bits of one ``(v, z)`` entry: ``v`` in the low ``index_bits``, ``z`` above."""
        return self.index_bits + self.zrun_bits

    @property
    def spmat_word_bits(self) -> int:
        """Width of a Spmat word; entry ``e`` sits in slot ``e % entries_per_word``, slot 0 at the LSBs."""
        return self.entry_bits * self.entries_per_word

    @property
    def spmat_entries(self) -> int:
        """Capacity of one PE's Spmat in entries."""
        return self.spmat_depth * self.entries_per_word

    @property
    def ptr_bits(self) -> int:
        """Width of a column pointer: addresses ``0 .. spmat_entries`` inclusive."""
        return clog2(self.spmat_entries + 1)

    @property
    def ptr_addr_bits(self) -> int:
        return clog2(self.ptr_depth)

    @property
    def spmat_addr_bits(self) -> int:
        return clog2(self.spmat_depth)

    @property
    def act_addr_bits(self) -> int:
        return clog2(self.act_depth)

    @property
    def bias_addr_bits(self) -> int:
        return clog2(self.bias_depth)

    @property
    def layer_bits(self) -> int:
        return clog2(self.max_layers)

    @property
    def max_len(self) -> int:
        """Longest input or output vector of a layer: ``pes * act_depth``."""
        return self.pes * self.act_depth

    @property
    def len_bits(self) -> int:
        """Width of a vector length ``0 .. max_len``."""
        return clog2(self.max_len + 1)

    @property
    def col_bits(self) -> int:
        """Width of a column (input activation) index ``0 .. max_len - 1``."""
        return max(1, clog2(self.max_len))

    @property
    def acc_bits(self) -> int:
        """Accumulator width: no sum of a layer can overflow.

        ``|sum of products| <= max_len * 2**(act_bits + codebook_bits - 2)`` and the
        bias is limited to ``bias_bits`` (at most one less than the accumulator), so
        the total stays within ``acc_bits`` signed bits.
        """
        return self.act_bits + self.codebook_bits + clog2(self.max_len) + 1

    @property
    def bias_bits(self) -> int:
        """Width of a signed bias word: ``bias_width``, or ``acc_bits - 1`` for 0."""
        return self.bias_width or self.acc_bits - 1

    @property
    def shift_bits(self) -> int:
        """Width of a layer's write-back right shift (``0 .. acc_bits - 1``)."""
        return clog2(self.acc_bits)

    @property
    def writeback_latency(self) -> int:
        """Cycles from a write-back row's accumulator read to its register-file write.

        Fixed by the hardware (``eie.hw.pe``): (with ``wb_read_stages``, register
        the words read;) add the bias; shift; round, saturate and ReLU; write the
        register file, one pipeline stage each, so that the write-back is never
        the critical path. The cycle model adds it to every layer. Owned by
        :mod:`eie.timing` (``WRITEBACK_STAGES``).
        """
        return timing.writeback_latency(self.wb_read_stages)

    @property
    def row_queue(self) -> int:
        """Rows the CCU fetches ahead of the row it broadcasts:
        :func:`eie.timing.row_queue` (3, plus 2 per fanout stage)."""
        return timing.row_queue(self.fanout_stages)

    @property
    def credits(self) -> int:
        """Credits the CCU holds per PE after reset: ``fifo_depth`` queue slots plus
        the PE's pointer stages P1 and P2 (:data:`eie.timing.POINTER_STAGES`). A
        broadcast takes one from every PE; a PE returns one (a register) in the
        cycle after a column leaves P2. A broadcast reaching a PE whose queue is
        empty and whose P1 can take it goes straight into P1 (it is never queued),
        and a full queue takes a push in a cycle in which it pops, so ``credits``
        columns in flight always fit (proven: ``eie prove --block pe``)."""
        return self.fifo_depth + len(timing.POINTER_STAGES)

    @property
    def mac_latency(self) -> int:
        """Cycles from a weight entry's Spmat read to its accumulator write.

        Fixed by the hardware (``eie.hw.pe``): entry register; codebook read;
        codebook value register; multiply and accumulator read; product and
        accumulator word registers; add and write. A PE's datapath is empty
        ``mac_latency + 1`` cycles after its last Spmat read and its registered
        ``idle`` rises one cycle later (the cycle model's drain). Owned by
        :mod:`eie.timing` (``MAC_STAGES``).
        """
        return timing.MAC_LATENCY

    @property
    def product_bits(self) -> int:
        return self.act_bits + self.codebook_bits

    @property
    def layer_entry_bits(self) -> int:
        """Width of a packed layer-table entry."""
        return sum(width(self) for _, width in LAYER_FIELDS)

    # -- serialisation ---------------------------------------------------
    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "EIEConfig":
        if not isinstance(data, dict):
            raise ValueError(f"EIE config must be a JSON object, not {type(data).__name__}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"EIE config has unknown field(s) {', '.join(unknown)}; "
                             f"known fields are {', '.join(sorted(known))}")
        return cls(**data)

    def to_json(self, **kwargs) -> str:
        return json.dumps(self.to_dict(), **kwargs)

    @classmethod
    def from_json(cls, text: str) -> "EIEConfig":
        return cls.from_dict(json.loads(text))

    @classmethod
    def load(cls, path) -> "EIEConfig":
        """Read a config from a JSON file: a bare config object, or any artifact
        carrying one under the key ``"config"``.

        Every problem is an :class:`eie.format.FormatError` naming the file and
        saying what ``--config`` expects: a missing file or a folder, text that
        is not JSON, a network manifest of an unknown ``format_version``, a
        field unknown or out of range."""
        from .format import FORMAT_NAME, FormatError, check_envelope, read_json
        path = Path(path)
        if path.is_dir():
            hint = (f"; for the compressed network in it pass {path / 'manifest.json'}"
                    if (path / "manifest.json").exists() else "")
            raise FormatError(path, "is a folder, not a config file", CONFIG_EXPECTS + hint)
        if not path.exists():
            raise FormatError(path, "no such config file", CONFIG_EXPECTS)
        data = read_json(path, what="config file", fix=CONFIG_EXPECTS)
        if not isinstance(data, dict):
            raise FormatError(path, f"is a JSON {type(data).__name__}, not an object", CONFIG_EXPECTS)
        if data.get("format") == FORMAT_NAME or "format_version" in data:
            check_envelope(path, data)          # a network manifest: refuse a format_version this eie does not know
            if "config" not in data:
                raise FormatError(path, "is a network manifest without its 'config' object",
                                  "re-run `eie compress` to write it again, or " + CONFIG_EXPECTS)
        if "config" in data:
            data = data["config"]
            if not isinstance(data, dict):
                raise FormatError(path, f"its 'config' is a JSON {type(data).__name__}, not an object",
                                  CONFIG_EXPECTS)
        try:
            return cls.from_dict(data)
        except (ValueError, TypeError) as e:
            raise FormatError(path, f"not a valid EIE config: {e}", "fix that field, or " + CONFIG_EXPECTS) from None

    def save(self, path) -> None:
        with open(path, "w") as f:
            f.write(self.to_json(indent=2) + "\n")

    @property
    def digest(self) -> str:
        """Short stable hash of the config (names build folders, checked by the host).

        Fields added after the first release (:data:`_LATE_FIELDS`) count only
        when they differ from their default, so a config that leaves them alone
        keeps the digest it had before they existed."""
        data = {k: v for k, v in self.to_dict().items() if _LATE_FIELDS.get(k, object()) != v}
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]

    def replace(self, **changes) -> "EIEConfig":
        return replace(self, **changes)


DEFAULT = EIEConfig()

CONFIG_EXPECTS = ("--config expects a JSON file holding an EIE config: a bare config object (config.json of "
                  "`eie generate`) or a file carrying one under 'config' (manifest.json of `eie compress`, "
                  "design.json of `eie generate` or `eie build`)")

PRESETS = {
    # Small enough for fast simulation and the iCEBreaker.
    "tiny": replace(DEFAULT, pes=4, fifo_depth=8, spmat_depth=2048, entries_per_word=8,
                    ptr_depth=1024, act_depth=128, bias_depth=512, max_layers=8),
    # The paper: 64 PEs, queue depth 8, 16-bit activations and codebook values,
    # 4-bit (v, z), 128 KB Spmat per PE as 16K x 64-bit words, 64-entry register files.
    # The column buffer (16 x 52 bits per PE, beside a 1 Mbit Spmat) lets the pointer
    # read run far enough ahead that even the plain row interleave keeps >= 0.93 load
    # efficiency on all nine paper layers (BENCHMARKS.md).
    "paper": replace(DEFAULT, pes=64, fifo_depth=8, column_buffer_depth=16, spmat_depth=16384,
                     entries_per_word=8, ptr_depth=16384, act_depth=64, bias_depth=1024, max_layers=16),
}


def preset(name: str) -> EIEConfig:
    try:
        return PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown config preset {name!r}; choose one of {', '.join(sorted(PRESETS))}") from None
