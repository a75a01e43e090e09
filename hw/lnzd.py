"""Leading-non-zero detection (LNZD): pick the lowest-indexed non-zero input.

The CCU finds the next non-zero activation of a register-file row with a
quadtree of fan-in-4 :class:`LNZDNode` s, as in the EIE paper (64 PEs ->
16 + 4 + 1 nodes). :class:`LNZDTree` composes the nodes for any number of
inputs (not only powers of 4): missing children of the last node of a level
are tied off as "zero", so the index of a valid leaf is simply its position.
Each node carries the chosen child's data along, so the root delivers the
value of the leading non-zero together with its index (no separate mux).
"""

from amaranth.hdl import Cat, Const, Module, Mux, Signal, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["LNZDNode", "LNZDTree", "lnzd_model"]


def lnzd_model(mask):
    """Python model: index of the lowest set element of ``mask`` (a sequence of
    truth values), or ``None`` if there is none."""
    for i, bit in enumerate(mask):
        if bit:
            return i
    return None


class LNZDNode(wiring.Component):
    """One fan-in-4 node of the LNZD tree.

    Parameters
    ----------
    index_bits : int
        Width of the children's indices (0 for leaves).
    data_shape : shape-castable
        Shape of the data carried with each child.

    Members
    -------
    valid : In(4)
        Child ``c`` holds a non-zero.
    index : In(ArrayLayout(index_bits, 4))
        Index of the non-zero within child ``c``'s subtree.
    data : In(ArrayLayout(data_shape, 4))
        Data of child ``c``'s non-zero.
    o_valid : Out(1)
        Some child holds a non-zero.
    o_index : Out(index_bits + 2)
        ``c * 4**level + index[c]`` of the lowest valid child ``c``, i.e.
        ``Cat(index[c], c)``; don't-care when ``o_valid`` is low.
    o_data : Out(data_shape)
        ``data[c]`` of that child.
    """

    def __init__(self, index_bits: int, data_shape):
        if not isinstance(index_bits, int) or index_bits < 0:
            raise ValueError(f"LNZDNode index_bits must be a non-negative integer, not {index_bits!r}")
        self._index_bits = index_bits
        self._data_shape = data_shape
        super().__init__({
            "valid": In(4),
            "index": In(data.ArrayLayout(unsigned(index_bits), 4)),
            "data": In(data.ArrayLayout(data_shape, 4)),
            "o_valid": Out(1),
            "o_index": Out(index_bits + 2),
            "o_data": Out(data_shape),
        })

    def elaborate(self, platform):
        m = Module()
        # Priority from the lowest child: the chain of Muxes is built from the
        # highest child down, so the lowest valid child wins.
        chain = Const(3, 2)
        for c in (2, 1, 0):
            chain = Mux(self.valid[c], c, chain)
        sel = Signal(2)
        m.d.comb += [
            sel.eq(chain),
            self.o_valid.eq(self.valid.any()),
            # Leaves have no index of their own (0 bits): the index is just c.
            self.o_index.eq(Cat(self.index[sel], sel) if self._index_bits else sel),
            self.o_data.eq(self.data[sel]),
        ]
        return m


class LNZDTree(wiring.Component):
    """Leading non-zero of ``n`` inputs, a quadtree of :class:`LNZDNode` s.

    Parameters
    ----------
    n : int
        Number of inputs, ``1 ..``.
    data_shape : shape-castable
        Shape of the data carried with each input.

    Members
    -------
    mask : In(n)
        Input ``i`` is a non-zero.
    data : In(ArrayLayout(data_shape, n))
        Data of input ``i``.
    valid : Out(1)
        Some input is non-zero.
    index : Out(range(n))
        Lowest ``i`` with ``mask[i]`` set (don't-care when ``valid`` is low).
    o_data : Out(data_shape)
        ``data[index]``.
    """

    def __init__(self, n: int, data_shape):
        if not isinstance(n, int) or n < 1:
            raise ValueError(f"LNZDTree input count must be a positive integer, not {n!r}")
        self._n = n
        self._data_shape = data_shape
        super().__init__({
            "mask": In(n),
            "data": In(data.ArrayLayout(data_shape, n)),
            "valid": Out(1),
            "index": Out(range(n)),
            "o_data": Out(data_shape),
        })

    @property
    def n(self) -> int:
        return self._n

    @property
    def levels(self) -> int:
        """Levels of nodes (0 for a single input)."""
        levels, width = 0, 1
        while width < self._n:
            width *= 4
            levels += 1
        return levels

    def elaborate(self, platform):
        m = Module()
        # Items of the current level: (valid, index, data) value triples.
        items = [(self.mask[i], Const(0, 0), self.data[i]) for i in range(self._n)]
        level, index_bits = 0, 0
        while len(items) > 1:
            nxt = []
            for g in range(0, len(items), 4):
                node = LNZDNode(index_bits, self._data_shape)
                m.submodules[f"node_l{level}_{g // 4}"] = node
                for c, (valid, index, value) in enumerate(items[g:g + 4]):
                    m.d.comb += [
                        node.valid[c].eq(valid),
                        node.index[c].eq(index),
                        node.data[c].eq(value),
                    ]
                # Missing children (last group of a level) stay 0: never chosen.
                nxt.append((node.o_valid, node.o_index, node.o_data))
            items = nxt
            level += 1
            index_bits += 2
        valid, index, value = items[0]
        m.d.comb += [
            self.valid.eq(valid),
            self.index.eq(index),
            self.o_data.eq(value),
        ]
        return m
