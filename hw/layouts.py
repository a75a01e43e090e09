"""Stream payload layouts shared by the CCU and the processing elements."""

from amaranth.hdl import signed, unsigned
from amaranth.lib import data

from eie.config import EIEConfig, clog2

__all__ = ["broadcast_layout", "column_layout", "divide_by_constant"]


def broadcast_layout(cfg: EIEConfig) -> data.StructLayout:
    """One broadcast of the CCU: ``ptr``, the logical index ``ptr_base + j`` of input
    column ``j``'s first pointer (the CCU adds the layer's ``ptr_base``, so no PE
    has an adder between its queue and its pointer banks), and the non-zero
    activation ``value``."""
    return data.StructLayout({
        "ptr": unsigned(cfg.ptr_addr_bits),
        "value": signed(cfg.act_bits),
    })


def column_layout(cfg: EIEConfig) -> data.StructLayout:
    """A non-empty column slice waiting in a PE's column buffer.

    ``word``/``slot``: Spmat position of its first entry (``start // E``,
    ``start % E``); ``count``: its entries (``end - start``, 1 .. ``act_depth``: at
    most one per local output row, ``eie.format`` checks it) modulo
    ``2**clog2(act_depth)`` (the Spmat read counts it down and compares with 1 and
    2 only, so ``act_depth`` itself may read as 0); ``single``:
    ``count == 1`` (decided when the column is pushed, so that the Spmat read's
    "last entry" is a register, not a compare); ``value``: the activation it is
    multiplied by.
    """
    return data.StructLayout({
        "word": unsigned(cfg.spmat_addr_bits + 1),
        "slot": unsigned(clog2(cfg.entries_per_word)),
        "count": unsigned(max(1, clog2(cfg.act_depth))),
        "single": unsigned(1),
        "value": signed(cfg.act_bits),
    })


def divide_by_constant(bits: int, divisor: int) -> tuple[int, int]:
    """``(multiplier, shift)`` with ``x // divisor == (x * multiplier) >> shift`` for
    every ``0 <= x < 2**bits`` (Granlund & Montgomery 1994, theorem 4.2: with
    ``l = ceil(log2(divisor))`` and ``m = ceil(2**(bits + l) / divisor)`` the error
    ``m * divisor - 2**(bits + l) < divisor <= 2**l``)."""
    if divisor < 1:
        raise ValueError(f"divisor must be a positive integer, not {divisor!r}")
    l = clog2(divisor)
    shift = bits + l
    multiplier = -(-(1 << shift) // divisor)
    return multiplier, shift
