"""The bit-exact reference: a network computed with exactly the hardware's arithmetic.

For each layer and output row ``i`` (``docs/hardware.md``, "Numbers")::

    acc  = bias[i] + sum_j codebook[codes[i, j]] * x[j]     exact, never overflows
    acc  = (acc + 2**(shift-1)) >> shift                    round half up (arithmetic), if shift > 0
    y[i] = relu?(saturate(acc, act_bits signed))

The products are exact and the accumulator cannot overflow (``acc_bits`` is
chosen so), so the order of accumulation does not matter and the hardware
agrees with this model bit for bit.

Also here: the work figures of a layer on an input (:class:`LayerWork`):
broadcasts ``B``, work ``W`` (entries, padding included, in the columns of
non-zero inputs), the per-PE work ``W_k`` and the bound ``max(B, ceil(W / N))``:
the fewest cycles any EIE of ``N`` PEs could take on that layer and input.

Why int64 is exact here: ``EIEConfig`` guarantees ``acc_bits <= 64``; inputs are
checked to be ``act_bits`` signed and codebook values ``codebook_bits`` signed,
so every partial sum of products is below ``2**(acc_bits - 3)`` in magnitude
and the bias below ``2**(acc_bits - 2)``: no partial sum, in any order, leaves
int64. Rounding is done as ``(acc >> s) + ((acc >> (s - 1)) & 1)``, which equals
``(acc + 2**(s-1)) >> s`` without forming the (possibly 65-bit) sum.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from eie.config import EIEConfig
from eie.format import NetworkImage
from .encode import EncodedLayer, QuantLayer, decode_image, encode_layer

__all__ = ["layer_forward", "accumulate", "write_back", "forward", "forward_all", "image_forward", "round_shift", "saturate",
           "check_input", "LayerWork", "layer_work", "layer_work_batch", "network_work"]

# Columns per block in the matrix product: bounds the int64 temporary of
# codebook[codes[:, block]] to out_len * _BLOCK * 8 bytes.
_BLOCK = 1024


def round_shift(acc: np.ndarray, shift: int) -> np.ndarray:
    """Round half up by ``shift`` bits: ``floor((acc + 2**(shift-1)) / 2**shift)``; identity for ``shift == 0``."""
    acc = np.asarray(acc, np.int64)
    if shift == 0:
        return acc.copy()
    return (acc >> shift) + ((acc >> (shift - 1)) & 1)


def saturate(values: np.ndarray, bits: int) -> np.ndarray:
    """Clamp to the signed ``bits``-bit range."""
    return np.clip(values, -(1 << (bits - 1)), (1 << (bits - 1)) - 1)


def check_input(x, in_len: int, cfg: EIEConfig, who: str = "input") -> np.ndarray:
    """``x`` as int64 of shape ``(in_len,)`` or ``(batch, in_len)``; ``ValueError`` if it does not fit."""
    arr = np.asarray(x)
    if arr.ndim not in (1, 2) or arr.shape[-1] != in_len:
        raise ValueError(f"{who} must have shape ({in_len},) or (batch, {in_len}), not {arr.shape}")
    if arr.dtype == bool or not (np.issubdtype(arr.dtype, np.integer) or arr.size == 0):
        if not (np.issubdtype(arr.dtype, np.floating) and np.all(arr == np.round(arr))):
            raise ValueError(f"{who} must hold integers (fixed-point activations), not {arr.dtype}")
    lo, hi = -(1 << (cfg.act_bits - 1)), (1 << (cfg.act_bits - 1)) - 1
    if arr.size and (arr.min() < lo or arr.max() > hi):
        raise ValueError(f"{who} values must be in range {lo}..{hi} (act_bits={cfg.act_bits} signed), "
                         f"found {arr.min()}..{arr.max()}")
    return arr.astype(np.int64)


def accumulate(layer: QuantLayer, x: np.ndarray) -> np.ndarray:
    """``bias + W x`` for x of shape (batch, in_len): (batch, out_len) int64, exact (see module docstring).

    The first half of :func:`layer_forward`, unchecked: ``layer`` and ``x``
    must already fit the config (``layer.shift`` is not used).
    """
    batch = x.shape[0]
    acc = np.broadcast_to(layer.bias, (batch, layer.out_len)).copy()
    # Only columns with a non-zero input in some sample contribute.
    cols = np.flatnonzero(np.any(x != 0, axis=0))
    for s in range(0, len(cols), _BLOCK):
        block = cols[s:s + _BLOCK]
        w = layer.codebook[layer.codes[:, block]]          # (out_len, block) int64
        acc += x[:, block] @ w.T
    return acc


def layer_forward(layer: QuantLayer, x, cfg: EIEConfig) -> np.ndarray:
    """Output of one layer on ``x`` (``(in_len,)`` or ``(batch, in_len)``), int64, bit-exact.

    Raises ``ValueError`` if the layer does not fit ``cfg`` (lengths aside) or
    ``x`` is not ``act_bits`` signed integers of length ``in_len``.
    """
    layer.check(cfg, lengths=False)
    xs = check_input(x, layer.in_len, cfg, f"input of layer {layer.name!r}" if layer.name else "layer input")
    single = xs.ndim == 1
    y = write_back(accumulate(layer, xs.reshape(-1, layer.in_len)), layer.shift, layer.relu, cfg)
    return y[0] if single else y


def write_back(acc: np.ndarray, shift: int, relu: bool, cfg: EIEConfig) -> np.ndarray:
    """The second half of :func:`layer_forward`: ``relu?(saturate(round_shift(acc, shift), act_bits))``."""
    y = saturate(round_shift(acc, shift), cfg.act_bits)
    if relu:
        y = np.maximum(y, 0)
    return y


def forward_all(layers: list, x, cfg: EIEConfig) -> list:
    """The input of every layer plus the final output (``len(layers) + 1`` arrays)."""
    for l in range(1, len(layers)):
        if layers[l].in_len != layers[l - 1].out_len:
            raise ValueError(f"{layers[l]._who(l)}: in_len={layers[l].in_len} does not match the previous "
                             f"layer's out_len={layers[l - 1].out_len}")
    if not layers:
        raise ValueError("a network needs at least one layer")
    acts = [check_input(x, layers[0].in_len, cfg, "network input")]
    for layer in layers:
        acts.append(layer_forward(layer, acts[-1], cfg))
    return acts


def forward(layers: list, x, cfg: EIEConfig) -> np.ndarray:
    """Output of the network on ``x`` (``(in_len,)`` or ``(batch, in_len)``)."""
    return forward_all(layers, x, cfg)[-1]


def image_forward(image: NetworkImage, x) -> list:
    """:func:`forward_all` of the layers stored in a memory image (decoded from the memories alone)."""
    return forward_all(decode_image(image), x, image.config)


# -- work and bound ------------------------------------------------------------

@dataclass
class LayerWork:
    """Work figures of one layer on one input for ``pes`` PEs.

    Attributes
    ----------
    broadcasts : int
        ``B``: non-zero inputs (each is broadcast once).
    work : int
        ``W``: entries, padding included, in the columns of non-zero inputs, all PEs.
    pe_work : (pes,) int64
        ``W_k``: the same, per PE.
    max_pe_work : int
        ``max_k W_k``: the critical path of the busiest PE.
    bound : int
        ``max(B, ceil(W / N))``: fewest cycles of any EIE with ``N`` PEs (one
        broadcast and ``N`` MACs per cycle); load efficiency = bound / cycles.
    padding_work : int
        Padding entries among ``W``.
    """
    broadcasts: int
    work: int
    pe_work: np.ndarray
    max_pe_work: int
    bound: int
    padding_work: int
    pes: int = 0

    def to_dict(self) -> dict:
        return {"broadcasts": self.broadcasts, "work": self.work, "pe_work": [int(w) for w in self.pe_work],
                "max_pe_work": self.max_pe_work, "bound": self.bound, "padding_work": self.padding_work,
                "pes": self.pes}


def layer_work(enc: EncodedLayer, x, cfg: EIEConfig) -> LayerWork:
    """Work figures of encoded layer ``enc`` on the single input vector ``x``."""
    xs = np.asarray(x)
    if xs.shape != (enc.in_len,):
        raise ValueError(f"input must have shape ({enc.in_len},), not {xs.shape}")
    nz = xs != 0
    n = enc.pes
    b = int(np.count_nonzero(nz))
    pe_work = enc.col_entries[:, nz].sum(axis=1).astype(np.int64)
    w = int(pe_work.sum())
    return LayerWork(broadcasts=b, work=w, pe_work=pe_work, max_pe_work=int(pe_work.max()) if n else 0,
                     bound=max(b, -(-w // n)), padding_work=int(enc.col_padding[:, nz].sum()), pes=n)


def layer_work_batch(enc: EncodedLayer, X, cfg: EIEConfig) -> list:
    """:func:`layer_work` of every row of ``X`` (batch, in_len), vectorised."""
    xs = np.asarray(X)
    if xs.ndim != 2 or xs.shape[1] != enc.in_len:
        raise ValueError(f"inputs must have shape (batch, {enc.in_len}), not {xs.shape}")
    nz = (xs != 0).astype(np.int64)
    n = enc.pes
    b = nz.sum(axis=1)
    pe_work = nz @ enc.col_entries.T                      # (batch, pes)
    w = pe_work.sum(axis=1)
    pad = nz @ enc.col_padding.sum(axis=0)
    return [LayerWork(broadcasts=int(b[s]), work=int(w[s]), pe_work=pe_work[s], max_pe_work=int(pe_work[s].max()),
                      bound=max(int(b[s]), -(-int(w[s]) // n)), padding_work=int(pad[s]), pes=n)
            for s in range(len(xs))]


def network_work(layers: list, x, cfg: EIEConfig) -> list:
    """:class:`LayerWork` of every layer of a network on input ``x`` (the reference's activations)."""
    acts = forward_all(layers, x, cfg)
    if acts[0].ndim != 1:
        raise ValueError("network_work takes a single input vector, not a batch")
    return [layer_work(encode_layer(layer, cfg), a, cfg) for layer, a in zip(layers, acts)]
