"""The array's pipeline timing: one owner for the constants the RTL is built to and the cycle model counts.

``eie.hw`` builds its pipelines to these stage lists (the PE checks, when it
is elaborated, that it has exactly one register stage per entry, so changing a
list here without changing the RTL is an error, not a silent desync) and the
CCU and :mod:`eie.golden.cycle_model` read the latencies through
:class:`eie.config.EIEConfig` (``cfg.mac_latency``, ``cfg.writeback_latency``).
docs/hardware.md ("Processing element", "Timing") describes the stages.
Nothing else may define or hard-code these numbers.
"""

from __future__ import annotations

__all__ = ["POINTER_STAGES", "MAC_STAGES", "MAC_LATENCY", "WRITEBACK_STAGES", "writeback_latency", "ROW_QUEUE",
           "row_queue", "FANOUT_GROUP"]

#: The PE's pointer stages between its activation queue and its column
#: buffer, one column each. The CCU's credits count them with the queue's
#: slots (``cfg.credits``): a PE returns a credit when a column leaves P2.
POINTER_STAGES = (
    "P1: column popped (or taken straight off the broadcast bus); its pointers read",
    "P2: the pointers registered; an empty column leaves, a non-empty one enters the column buffer",
)

#: The PE's arithmetic pipeline, one register stage each, from an entry's
#: Spmat read (the cycle it is issued) to its accumulator write.
MAC_STAGES = (
    "A: entry (taken out of the Spmat word, registered)",
    "B: unpack; codebook read; row address",
    "C0: codebook value registered",
    "C: multiply; accumulator read",
    "D: product and accumulator word registered",
    "E: add (bypass); accumulator write",
)

#: Cycles from an entry's Spmat read to its accumulator write (6).
MAC_LATENCY = len(MAC_STAGES)

#: The PE's write-back pipeline after W0 (the accumulator and bias read in the
#: cycle of ``wb_issue``), one register stage each; ``wb_read_stages`` more
#: (W1r) between W1 and W2.
WRITEBACK_STAGES = (
    "W1: acc + bias registered (the words read, with wb_read_stages); accumulator zeroed",
    "W2: shift",
    "W3: round half up, saturate, ReLU",
    "W4: register-file write",
)


def writeback_latency(wb_read_stages: int) -> int:
    """Cycles from a write-back row's accumulator read to its register-file write (4, 5 with a W1r stage)."""
    return len(WRITEBACK_STAGES) + wb_read_stages


#: Rows of activations the CCU fetches ahead of the row being broadcast
#: (registers) when the CCU drives the PEs directly (``fanout_stages`` = 0).
#: Three are enough never to run dry, which the cycle model assumes
#: (tests/golden/test_cycle_model.py's step simulation models the queue).
ROW_QUEUE = 3


def row_queue(fanout_stages: int) -> int:
    """Rows the CCU fetches ahead: a row fetched in cycle ``c`` is on the CCU's
    queue input in ``c + 1 + 2 D`` (``D`` = ``fanout_stages``: its address and
    its words each pass ``D`` registers), so a queue that is never dry holds
    ``ROW_QUEUE + 2 D`` rows."""
    return ROW_QUEUE + 2 * fanout_stages


#: PEs behind one register of a fanout tree's last stage (``fanout_stages`` >= 1);
#: each earlier stage has one register per group of this many of the next.
FANOUT_GROUP = 8
