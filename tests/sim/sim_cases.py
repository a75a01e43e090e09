"""Networks and builds of the RTL test matrix.

The networks (adversarial layers and seeded random ones, each ``(name, layers,
inputs)``: a chain of :class:`QuantLayer` and integer inputs ``(batch,
in_len)``) come from :mod:`eie.sim.regress`, their one owner; this module adds
the matrix of builds. Cases adapt to the config (PE count, lengths) so that
every build runs the same kinds of layer.
"""

from __future__ import annotations

from eie.config import EIEConfig
from eie.sim.regress import adversarial_cases, images, random_cases

__all__ = ["adversarial_cases", "random_cases", "images", "matrix"]


# The build matrix: every PE count (1, 2, 3, 4, 8, 16, 64), queue depth (1, 2, 8),
# Spmat word width (1 and 8 entries), 8- and 16-bit numbers, 32- and 64-bit
# counters and a fanout tree of one and of two stages (16 PEs: 2 registers;
# 64 PEs: 1 + 8) appear in at least one build.
# "tiny" (4 PEs) is the digits-mlp config, so the digits test shares its build.
def matrix() -> dict:
    from eie.config import preset
    return {
        "pe1": EIEConfig(pes=1, fifo_depth=1, entries_per_word=1, act_depth=256, spmat_depth=16384,
                         ptr_depth=1024, bias_depth=512, column_buffer_depth=1),
        # the iCEBreaker preset's number format: 8-bit activations and codebook, 32-bit counters
        "pe2": EIEConfig(pes=2, fifo_depth=2, entries_per_word=8, act_depth=128, spmat_depth=1024,
                         ptr_depth=1024, bias_depth=256, column_buffer_depth=2, act_bits=8, act_frac_bits=6,
                         codebook_bits=8, counter_bits=32),
        "pe3": EIEConfig(pes=3, fifo_depth=8, entries_per_word=1, act_depth=64, spmat_depth=4096,
                         ptr_depth=1024, bias_depth=128, column_buffer_depth=4),
        "tiny": preset("tiny"),
        "pe8": EIEConfig(pes=8, fifo_depth=2, entries_per_word=4, act_depth=40, spmat_depth=512,
                         ptr_depth=1024, bias_depth=128, column_buffer_depth=2),
        "pe16": EIEConfig(pes=16, fifo_depth=1, entries_per_word=8, act_depth=40, spmat_depth=256,
                          ptr_depth=1024, bias_depth=128, column_buffer_depth=4, fanout_stages=1),
        "pe64": EIEConfig(pes=64, fifo_depth=8, entries_per_word=8, act_depth=34, spmat_depth=256,
                          ptr_depth=1024, bias_depth=64, column_buffer_depth=4, max_layers=4,
                          fanout_stages=2),
    }
