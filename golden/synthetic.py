"""Synthetic EIE benchmark layers: the nine layers of the paper's table, seeded.

:data:`PAPER_LAYERS` holds the shapes, weight and activation densities and the
published times (64 PEs, FIFO depth 8, 800 MHz) of the layers of EIE (ISCA
2016) Table IV / ``shared/EIE.md``. :func:`make_layer` builds a reproducible
random layer of that shape and density with an input vector of that
activation density; :func:`random_layer` does the same for any shape.

The layers are random, not the real AlexNet/VGG/NeuralTalk weights: non-zero
positions are uniform (exactly ``round(density * size)`` of them), which is the
load-balance case the paper's theoretical time assumes. Real pruned layers have
structure (some rows and columns denser than others), so these layers give
cycle counts close to, not equal to, the published ones.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from eie.config import EIEConfig
from .encode import QuantLayer

__all__ = ["PaperLayer", "PAPER_LAYERS", "CLOCK_MHZ", "make_layer", "random_layer"]

CLOCK_MHZ = 800  # the paper's clock: one microsecond is 800 cycles


@dataclass(frozen=True)
class PaperLayer:
    """One row of the paper's benchmark table."""
    name: str
    in_len: int
    out_len: int
    weight_density: float
    act_density: float
    paper_actual_us: float
    paper_theoretical_us: float

    @property
    def paper_actual_cycles(self) -> int:
        """Published 'actual' time at 800 MHz in cycles (64 PEs, FIFO depth 8)."""
        return round(self.paper_actual_us * CLOCK_MHZ)

    @property
    def paper_theoretical_cycles(self) -> int:
        """Published 'theoretical' (perfect load balance) time at 800 MHz in cycles."""
        return round(self.paper_theoretical_us * CLOCK_MHZ)

    def to_dict(self) -> dict:
        return {"name": self.name, "in_len": self.in_len, "out_len": self.out_len,
                "weight_density": self.weight_density, "act_density": self.act_density,
                "paper_actual_us": self.paper_actual_us, "paper_theoretical_us": self.paper_theoretical_us,
                "paper_actual_cycles": self.paper_actual_cycles,
                "paper_theoretical_cycles": self.paper_theoretical_cycles}


PAPER_LAYERS = {p.name: p for p in (
    PaperLayer("Alex-6", 9216, 4096, 0.09, 0.351, 30.3, 28.1),
    PaperLayer("Alex-7", 4096, 4096, 0.09, 0.353, 12.2, 11.7),
    PaperLayer("Alex-8", 4096, 1000, 0.25, 0.375, 9.9, 8.9),
    PaperLayer("VGG-6", 25088, 4096, 0.04, 0.183, 34.4, 28.1),
    PaperLayer("VGG-7", 4096, 4096, 0.04, 0.375, 8.7, 7.9),
    PaperLayer("VGG-8", 4096, 1000, 0.23, 0.411, 8.4, 7.3),
    PaperLayer("NT-We", 4096, 600, 0.10, 1.0, 8.0, 5.2),
    PaperLayer("NT-Wd", 600, 8791, 0.11, 1.0, 13.9, 13.0),
    PaperLayer("NT-LSTM", 1201, 2400, 0.10, 1.0, 7.5, 6.5),
)}


def _unique(a: np.ndarray) -> np.ndarray:
    """Sorted distinct values (sort-based; faster than ``np.unique`` on large int arrays)."""
    a = np.sort(a)
    return a[np.concatenate([[True], a[1:] != a[:-1]])] if a.size else a


def _random_positions(rng: np.random.Generator, size: int, count: int) -> np.ndarray:
    """``count`` distinct uniformly random integers in ``0 .. size-1``, sorted."""
    if count >= size:
        return np.arange(size)
    if count * 4 > size:
        return np.sort(rng.permutation(size)[:count])
    # Sparse: draw with replacement, drop duplicates, top up. The set drawn is
    # exchangeable, so a random subset of it of the right size is uniform.
    picked = _unique(rng.integers(0, size, count + count // 8 + 16))
    while len(picked) < count:
        picked = _unique(np.concatenate([picked, rng.integers(0, size, count - len(picked) + 16)]))
    return np.sort(rng.permutation(picked)[:count])


def _random_distinct(rng: np.random.Generator, hi: int, count: int) -> np.ndarray:
    """``count`` random values in ``1 .. hi``, distinct while ``hi`` allows it."""
    if count <= hi:
        return rng.choice(np.arange(1, hi + 1), count, replace=False)
    return rng.integers(1, hi + 1, count)


def random_layer(rng: np.random.Generator, in_len: int, out_len: int, weight_density: float,
                 act_density: float, cfg: EIEConfig, relu: bool = True, name: str = "",
                 signed_input: bool = False) -> tuple[QuantLayer, np.ndarray]:
    """A random quantised layer and an input vector.

    * exactly ``round(weight_density * out_len * in_len)`` non-zero weights at
      uniformly random positions, codes uniform in ``1 .. codebook_size - 1``;
    * a codebook (code 0 = 0) of pairs ``+-m`` with distinct magnitudes ``m``
      in ``1 .. 2**(codebook_bits - 3)`` plus one small value (15 codes);
    * an input with exactly ``round(act_density * in_len)`` non-zeros at random
      positions, magnitudes in ``1 .. 2**(act_bits - 3)`` (non-negative, like
      ReLU outputs, unless ``signed_input``);
    * a shift that puts the typical output at about ``2**(act_bits - 4)``
      (a few standard deviations inside the saturation range) and a small bias.

    The lengths are not checked against ``cfg.max_len``, so layers larger than
    one run (VGG-6 with the paper's 4K register files) can be made for work
    statistics and cycle models.
    """
    for f, v in (("in_len", in_len), ("out_len", out_len)):
        if not isinstance(v, (int, np.integer)) or v < 1:
            raise ValueError(f"{f} must be a positive integer, not {v!r}")
    for f, v in (("weight_density", weight_density), ("act_density", act_density)):
        if not 0.0 <= v <= 1.0:
            raise ValueError(f"{f} must be in range 0..1, not {v!r}")
    size = out_len * in_len
    nnz = int(round(weight_density * size))
    pos = _random_positions(rng, size, nnz)
    codes = np.zeros(size, np.uint8)
    codes[pos] = rng.integers(1, cfg.codebook_size, len(pos), dtype=np.uint8)
    codes = codes.reshape(out_len, in_len)

    # A symmetric codebook (pairs +-m, plus one small value when the count is
    # odd): with non-negative inputs the outputs are then centred on zero,
    # about half survive ReLU.
    cb_hi = max(1, 1 << max(0, cfg.codebook_bits - 3))
    pairs = (cfg.codebook_size - 1) // 2
    mags = _random_distinct(rng, cb_hi, pairs)
    values = np.concatenate([-mags, mags])
    if (cfg.codebook_size - 1) % 2:
        small = max(1, cb_hi // 8)
        values = np.append(values, rng.integers(-small, small + 1))
    codebook = np.zeros(cfg.codebook_size, np.int64)
    codebook[1:] = np.sort(values)

    x_hi = max(1, 1 << max(0, cfg.act_bits - 3))
    x = np.zeros(in_len, np.int64)
    nz = _random_positions(rng, in_len, int(round(act_density * in_len)))
    mags_x = rng.integers(1, x_hi + 1, len(nz))
    x[nz] = mags_x * (rng.choice([-1, 1], len(nz)) if signed_input else 1)

    # Typical |acc|: the random part sqrt(terms) * rms(w) * rms(x) plus the
    # mean part terms * |mean(w)| * mean(x).
    terms = max(1.0, in_len * weight_density * act_density)
    w = codebook[1:].astype(float)
    xm = mags_x.astype(float) if len(mags_x) else np.ones(1)
    typical = (math.sqrt(terms) * math.sqrt(np.mean(w ** 2)) * math.sqrt(np.mean(xm ** 2))
               + terms * abs(np.mean(w)) * (0.0 if signed_input else np.mean(xm)))
    target = 1 << max(0, cfg.act_bits - 4)
    shift = min(cfg.acc_bits - 1, max(0, math.ceil(math.log2(max(1.0, typical / target)))))
    bias_hi = max(1, int(typical // 4))
    bias = rng.integers(-bias_hi, bias_hi + 1, out_len).astype(np.int64)
    layer = QuantLayer(codes=codes, codebook=codebook, bias=bias, shift=shift, relu=relu, name=name)
    layer.check(cfg, lengths=False)
    return layer, x


def make_layer(name_or_spec, cfg: EIEConfig, seed: int = 0, relu: bool = True) -> tuple[QuantLayer, np.ndarray]:
    """The seeded synthetic layer and input of one of :data:`PAPER_LAYERS` (by name) or of a :class:`PaperLayer`.

    The same name, config widths and seed give the same layer and input on
    every machine (numpy's PCG64 stream). NeuralTalk layers (activation density
    1.0) get signed inputs, the ReLU-fed AlexNet/VGG layers non-negative ones.
    """
    if isinstance(name_or_spec, PaperLayer):
        spec = name_or_spec
    else:
        try:
            spec = PAPER_LAYERS[name_or_spec]
        except (KeyError, TypeError):
            raise ValueError(f"unknown paper layer {name_or_spec!r}; choose one of "
                             f"{', '.join(PAPER_LAYERS)}") from None
    # Seed from the layer name too, so that layers of one seed are independent.
    key = [seed] + list(spec.name.encode())
    rng = np.random.default_rng(key)
    return random_layer(rng, spec.in_len, spec.out_len, spec.weight_density, spec.act_density, cfg,
                        relu=relu, name=spec.name, signed_input=spec.act_density >= 1.0)
