"""The components an ASIC report is broken into: the paper's Table II categories.

EIE's Table II splits a PE's area and power into the activation queue, the
pointer read (its SRAM banks), the sparse-matrix read (the Spmat SRAM), the
arithmetic unit and the activation read/write (register files); the
memories are listed separately here since they are macros of their own, and
the CCU (with its LNZD tree) and the host top level sit beside the PEs.

:func:`component_of` maps an instance path of the synthesised netlist
(``array/pe0/spmat``, ``array/ccu/lnzd/node_l0_0``, see
:func:`eie.asic.synth.instance_tree`) to its component; area and power reports
both use it, so they cannot disagree on what a component holds.
"""

from __future__ import annotations

import re

__all__ = ["COMPONENTS", "PE_MEMORIES", "component_of", "pe_index"]

# Component -> what it holds (for the report's legend).
COMPONENTS = {
    "Spmat": "sparse-matrix SRAM (interleaved-CSC entries)",
    "pointers": "even and odd column-pointer SRAM banks",
    "codebook": "codebook memory (16 shared weights per layer); with merge_codebook_bias also the biases",
    "bias": "bias memory",
    "activation RFs": "source and destination activation register files",
    "accumulators": "accumulator memory (one word per local output row)",
    "queue": "activation queue (FIFO of broadcast (j, a_j))",
    "column buffer": "column buffer between the pointer read and the Spmat read",
    "arithmetic": "the rest of a PE: pointer and Spmat read control, codebook/row decode, multiplier, "
                  "adder with bypass, write-back (bias, shift, round, saturate, ReLU), counters, read-back",
    "LNZD": "leading-non-zero-detection tree",
    "CCU": "central control unit without its LNZD tree (layer table, scan, broadcast, credits, counters)",
    "top": "host-protocol decoder, response FIFO and array glue",
}

# PE memory instance names (eie.hw.pe) -> component.
PE_MEMORIES = {
    "spmat": "Spmat", "ptr_even": "pointers", "ptr_odd": "pointers", "codebooks": "codebook",
    "codebook_bias": "codebook", "bias": "bias", "act_rf": "activation RFs", "accumulators": "accumulators",
    "activation_queue": "queue", "column_buffer": "column buffer",
}

_PE = re.compile(r"^array/pe(\d+)(?:/|$)")


def pe_index(path: str) -> int | None:
    """The PE an instance path lies in (``array/pe3/spmat`` -> 3), else None."""
    m = _PE.match(path)
    return int(m[1]) if m else None


def component_of(path: str) -> str:
    """The component (a key of :data:`COMPONENTS`) of the instance at ``path``."""
    parts = path.split("/") if path else []
    if pe_index(path) is not None:
        if len(parts) >= 3:
            if parts[2] not in PE_MEMORIES:
                raise ValueError(f"instance {path!r}: unknown PE block {parts[2]!r}; "
                                 f"add it to eie.asic.components.PE_MEMORIES")
            return PE_MEMORIES[parts[2]]
        return "arithmetic"
    if parts[:3] == ["array", "ccu", "lnzd"]:
        return "LNZD"
    if parts[:2] == ["array", "ccu"]:
        return "CCU"
    return "top"
