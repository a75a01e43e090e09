"""Memories sized to a network, and every overflow of a pinned config at once.

A network of quantised layers on ``cfg.pes`` PEs needs, per PE (see
``docs/format.md``):

``act_depth``
    ``ceil(max(in_len, out_len) / pes)`` over all layers (``max_len = pes *
    act_depth``);
``spmat_depth``
    ``ceil(entries / entries_per_word)`` for the PE holding the most entries
    (padding included) of all layers together;
``ptr_depth``
    ``sum(in_len + 1)``;
``bias_depth``
    ``sum(ceil(out_len / pes))``;
``max_layers``
    the number of layers.

:func:`fitted` chooses for each the smallest value the hardware wants: a power
of two (a memory's address is ``clog2(depth)`` bits, so a depth between two
powers of two saves no address bit, and block RAMs and SRAM macros come in
power-of-two depths), at least the field's minimum (``ptr_depth >= 2``), with
``bias_depth >= act_depth`` (the config's rule). :func:`check` compares the
needs with a pinned config and raises one :class:`ConfigFitError` naming every
field that overflows, how much is needed, the limit, and the smallest config
that fits.
"""

from __future__ import annotations

import json

import numpy as np

__all__ = ["MEMORY_FIELDS", "ConfigFitError", "shape_needs", "memory_needs", "round_depth", "fitted",
           "overflows", "smallest_fitting", "check", "memory_report"]

MEMORY_FIELDS = ("act_depth", "spmat_depth", "ptr_depth", "bias_depth", "max_layers")


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def shape_needs(shapes, pes: int) -> dict:
    """Needs that follow from the layer shapes ``[(in_len, out_len), ...]`` alone (all but ``spmat_depth``)."""
    shapes = [(int(i), int(o)) for i, o in shapes]
    return {"act_depth": max(_ceil_div(max(i, o), pes) for i, o in shapes),
            "ptr_depth": sum(i + 1 for i, _ in shapes),
            "bias_depth": sum(_ceil_div(o, pes) for _, o in shapes),
            "max_layers": len(shapes)}


def memory_needs(layers, cfg, encoded=None) -> dict:
    """What ``layers`` (QuantLayer list) need of each memory field on ``cfg.pes`` PEs (unrounded).

    ``encoded`` (their :class:`~eie.golden.encode.EncodedLayer` for ``cfg``) saves encoding them again."""
    from .encode import _encode_codes
    if encoded is None:
        encoded = [_encode_codes(layer.codes, cfg.pes, cfg.max_zrun) for layer in layers]
    pe_entries = np.zeros(cfg.pes, np.int64)
    for enc in encoded:
        pe_entries += np.asarray(enc.pe_entries, np.int64)
    needs = shape_needs([(layer.in_len, layer.out_len) for layer in layers], cfg.pes)
    needs["spmat_depth"] = _ceil_div(int(pe_entries.max()), cfg.entries_per_word)
    return {f: needs[f] for f in MEMORY_FIELDS}


def round_depth(field: str, need: int) -> int:
    """Smallest power of two ``>= need`` and ``>=`` the field's minimum."""
    from eie.config import _LIMITS
    lo = _LIMITS[field][0]
    return max(lo, 1 << max(0, int(need) - 1).bit_length())


def _with(cfg, values: dict):
    values = dict(values)
    act = values.get("act_depth", cfg.act_depth)
    values["bias_depth"] = max(values.get("bias_depth", cfg.bias_depth), act)   # bias_depth >= act_depth
    return cfg.replace(**values)


def fitted(cfg, needs: dict):
    """``cfg`` with every memory field in ``needs`` set to the smallest allowed value ``>=`` its need."""
    return _with(cfg, {f: round_depth(f, n) for f, n in needs.items()})


def overflows(cfg, needs: dict) -> list:
    """``[{"field", "needed", "limit"}, ...]`` for every field of ``needs`` that ``cfg`` is too small for."""
    return [{"field": f, "needed": int(needs[f]), "limit": int(getattr(cfg, f))}
            for f in MEMORY_FIELDS if f in needs and needs[f] > getattr(cfg, f)]


def smallest_fitting(cfg, needs: dict):
    """``cfg`` with only its overflowing fields raised (each to the smallest allowed value ``>=`` its need)."""
    return _with(cfg, {o["field"]: round_depth(o["field"], o["needed"]) for o in overflows(cfg, needs)})


class ConfigFitError(ValueError):
    """A network that does not fit a pinned config: every overflow, and the smallest config that fits."""

    def __init__(self, cfg, needs: dict, details=(), what: str = "the config"):
        self.overflows = overflows(cfg, needs)
        self.needs = dict(needs)
        try:
            self.fitting = smallest_fitting(cfg, needs)
            changes = {f: getattr(self.fitting, f) for f in MEMORY_FIELDS if getattr(self.fitting, f) != getattr(cfg, f)}
            fix = (f"the smallest config that fits is {what} with {json.dumps(changes)} (put these into the "
                   f"--config file, or compress with --pes N and without --config/--board to size every memory "
                   f"to the network)")
        except ValueError as e:         # beyond a field's range, or the accumulator's 64 bits: no config fits
            self.fitting, changes = None, {}
            fix = f"no config of {cfg.pes} PEs fits ({e}); use more PEs or a smaller network"
        self.changes = changes
        listed = ", ".join(f"{o['field']} needs {o['needed']} (limit {o['limit']})" for o in self.overflows)
        n = len(self.overflows)
        message = f"the network does not fit {what}: {n} memor{'y overflows' if n == 1 else 'ies overflow'}: {listed}"
        if details:
            message += " [" + "; ".join(details) + "]"
        super().__init__(f"{message}; {fix}")

    def to_dict(self) -> dict:
        return {"error": str(self), "overflows": self.overflows, "needs": self.needs,
                "fitting_changes": self.changes,
                "fitting_config": None if self.fitting is None else self.fitting.to_dict()}


def check(cfg, needs: dict, details=(), what: str = "the config") -> None:
    """Raise :class:`ConfigFitError` listing every field of ``needs`` that ``cfg`` is too small for."""
    if overflows(cfg, needs):
        raise ConfigFitError(cfg, needs, details, what)


def memory_report(cfg, needs: dict, fitted_: bool) -> dict:
    """The report's ``memories``: per field what the network needs and what the config has."""
    return {"fitted": bool(fitted_),
            "rule": "smallest power of two >= need (ptr_depth >= 2, bias_depth >= act_depth)" if fitted_ else
                    "pinned by --config/--board (or the default preset)",
            "fields": {f: {"needed": int(needs[f]), "chosen": int(getattr(cfg, f))} for f in MEMORY_FIELDS}}
