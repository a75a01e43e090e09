"""Programs: a network split between EIE calls and host operations, with one defined arithmetic.

EIE computes only sparse matrix-vector products with a ReLU at write-back.
A model with anything else in it (GELU, LayerNorm, residual adds, LSTM gates)
is a :class:`Program`: a list of steps over named fixed-point vectors, each
step either an ``eie`` call (a run of consecutive layers of the network's
layer table) or a host operation. :mod:`.graph` makes programs from PyTorch
modules; this module defines what every step computes, in fixed point (the
specification: the golden model, and what the host does between RTL runs) and
in float (PyTorch, for training and calibration).

Every tensor is a vector per input (a batch of them: ``(batch, length)``
int64) with ``frac`` fraction bits (``Program.fracs``), held in ``act_bits``
signed like the hardware's activations. Fixed-point semantics of the steps
(``sat`` saturates to ``act_bits`` signed; ``rq(v, f, g)`` moves ``v`` from
``f`` to ``g`` fraction bits: a left shift, or a round-half-up right shift as
the hardware's write-back; every intermediate is exact in int64):

``eie`` (``first``, ``count``)
    layers ``first .. first+count-1`` of the layer table on the source, whose
    frac must be the first layer's ``in_frac``; the output has the last
    layer's ``out_frac``. On the RTL: the host writes those layers' table
    entries at positions ``0..count-1`` and sends ``RUN count``.
``requant``
    ``sat(rq(x, fx, f))``.
``add``, ``sub``, ``mul``
    ``add``: both operands aligned to the larger frac (exact), summed,
    ``sat(rq(., F, f))``; ``mul``: the exact product (frac ``fa + fb``),
    ``sat(rq(., fa+fb, f))``.
``concat``
    every source ``rq`` to the output frac, saturated, then concatenated.
``slice`` (``start``, ``stop``)
    the elements ``start..stop-1``, frac unchanged.
``relu``
    ``max(x, 0)``.
``lut`` (``fn`` in :data:`LUT_FUNCTIONS`)
    a table over all ``2**act_bits`` input codes: ``sat(floor(fn(code *
    2**-fx) * 2**f + 1/2))``, ``fn`` evaluated in float64 with Python's
    ``math`` module (the table is data: the same in the golden model and for
    the host of an RTL run).
``layernorm`` (``weight``, ``bias``, ``eps``)
    with ``n`` elements, the exact integer sums ``s1 = sum x``, ``s2 = sum
    x**2`` and ``d = n*x - s1``: ``y = d / sqrt(n*s2 - s1**2 + eps * n**2 *
    4**fx) * weight + bias`` in IEEE float64 elementwise operations (each
    correctly rounded, so the result is defined), then ``sat(floor(y * 2**f +
    1/2))``.

A recurrent program (``sequence=True``) runs its ``steps`` once per time step
of an input ``(batch, T, in_len)``; ``state`` tensors start at zero and take
the value of ``carry[name]`` at the end of every step; ``post`` steps run once
after the last step. The output is the ``output`` tensor of every step
(``output_per_step``, ``(batch, T, out)``) or after ``post`` (``(batch, out)``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numpy as np

__all__ = ["Step", "Program", "LUT_FUNCTIONS", "HOST_OPS", "run_fixed", "run_float", "calibrate",
           "partition_report", "requant", "lut_table"]

HOST_OPS = ("requant", "add", "sub", "mul", "concat", "slice", "relu", "lut", "layernorm")
OPS = ("eie",) + HOST_OPS


def _gelu(v: float) -> float:
    return 0.5 * v * (1.0 + math.erf(v / math.sqrt(2.0)))


def _sigmoid(v: float) -> float:
    return 1.0 / (1.0 + math.exp(-v)) if v >= 0 else math.exp(v) / (1.0 + math.exp(v))


def _silu(v: float) -> float:
    return v * _sigmoid(v)


# name -> (float64 function of the table, torch function of the float model)
LUT_FUNCTIONS = {
    "gelu": (_gelu, "gelu"),
    "sigmoid": (_sigmoid, "sigmoid"),
    "tanh": (math.tanh, "tanh"),
    "silu": (_silu, "silu"),
}


@dataclass(frozen=True)
class Step:
    """One step: ``dst = op(*srcs, **args)``; ``name`` says where it came from (the model's node)."""
    op: str
    srcs: tuple
    dst: str
    args: dict = field(default_factory=dict)
    name: str = ""

    def to_dict(self) -> dict:
        return {"op": self.op, "srcs": list(self.srcs), "dst": self.dst, "args": _jsonable(self.args),
                "name": self.name}

    @classmethod
    def from_dict(cls, d: dict) -> "Step":
        return cls(d["op"], tuple(d["srcs"]), d["dst"], dict(d.get("args", {})), d.get("name", ""))


def _jsonable(args: dict) -> dict:
    return {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in args.items()}


@dataclass
class Program:
    """A network as EIE calls and host steps (see the module docstring)."""
    input: str
    in_len: int
    output: str
    steps: list
    lengths: dict                     # tensor name -> length
    fracs: dict = field(default_factory=dict)  # tensor name -> fraction bits (set by calibrate)
    sequence: bool = False
    state: list = field(default_factory=list)   # recurrent state tensors (start at zero)
    carry: dict = field(default_factory=dict)   # state name -> tensor holding its next value
    post: list = field(default_factory=list)
    output_per_step: bool = False

    @property
    def out_len(self) -> int:
        return self.lengths[self.output]

    def eie_steps(self) -> list:
        return [s for s in self.steps + self.post if s.op == "eie"]

    def to_dict(self) -> dict:
        return {"input": self.input, "in_len": self.in_len, "output": self.output,
                "steps": [s.to_dict() for s in self.steps], "lengths": dict(self.lengths),
                "fracs": dict(self.fracs), "sequence": self.sequence, "state": list(self.state),
                "carry": dict(self.carry), "post": [s.to_dict() for s in self.post],
                "output_per_step": self.output_per_step}

    @classmethod
    def from_dict(cls, d: dict) -> "Program":
        p = cls(input=d["input"], in_len=int(d["in_len"]), output=d["output"],
                steps=[Step.from_dict(s) for s in d["steps"]], lengths={k: int(v) for k, v in d["lengths"].items()},
                fracs={k: int(v) for k, v in d.get("fracs", {}).items()}, sequence=bool(d.get("sequence", False)),
                state=list(d.get("state", [])), carry=dict(d.get("carry", {})),
                post=[Step.from_dict(s) for s in d.get("post", [])],
                output_per_step=bool(d.get("output_per_step", False)))
        p.check()
        return p

    def check(self, n_layers: int | None = None) -> None:
        """``ValueError`` naming the step unless every source is defined before use and every op is known."""
        known = {self.input, *self.state}
        for where, steps in (("steps", self.steps), ("post", self.post)):
            for i, s in enumerate(steps):
                who = f"program {where}[{i}] ({s.op} -> {s.dst!r})"
                if s.op not in OPS:
                    raise ValueError(f"{who}: unknown op {s.op!r}; known: {', '.join(OPS)}")
                for src in s.srcs:
                    if src not in known:
                        raise ValueError(f"{who}: source {src!r} is not defined before this step")
                if s.op == "eie" and n_layers is not None and not (
                        0 <= s.args["first"] and s.args["count"] >= 1 and s.args["first"] + s.args["count"] <= n_layers):
                    raise ValueError(f"{who}: layers {s.args['first']}..+{s.args['count']} are not in the "
                                     f"network's {n_layers} layers")
                if s.op == "lut" and s.args.get("fn") not in LUT_FUNCTIONS:
                    raise ValueError(f"{who}: unknown function {s.args.get('fn')!r}; known: "
                                     f"{', '.join(LUT_FUNCTIONS)}")
                known.add(s.dst)
        if self.output not in known:
            raise ValueError(f"program output {self.output!r} is never computed")
        for name, src in self.carry.items():
            if name not in self.state or src not in known:
                raise ValueError(f"program carry {name!r} <- {src!r}: not a state tensor or not computed")


# -- fixed point -------------------------------------------------------------------

def _sat(v, bits):
    return np.clip(v, -(1 << (bits - 1)), (1 << (bits - 1)) - 1)


def requant(q, frm: int, to: int, bits: int) -> np.ndarray:
    """``q`` (fraction bits ``frm``) with ``to`` fraction bits, rounded half up and saturated to ``bits`` signed."""
    from .reference import round_shift
    q = np.asarray(q, np.int64)
    v = round_shift(q, frm - to) if frm > to else q << (to - frm)
    return _sat(v, bits)


_TABLES: dict = {}


def lut_table(fn: str, in_frac: int, out_frac: int, bits: int) -> np.ndarray:
    """The table of a ``lut`` step: entry ``code + 2**(bits-1)`` for every ``bits``-bit signed input code."""
    key = (fn, in_frac, out_frac, bits)
    if key not in _TABLES:
        f = LUT_FUNCTIONS[fn][0]
        codes = range(-(1 << (bits - 1)), 1 << (bits - 1))
        vals = np.array([math.floor(math.ldexp(f(math.ldexp(c, -in_frac)), out_frac) + 0.5) for c in codes],
                        dtype=np.int64)
        _TABLES[key] = _sat(vals, bits)
    return _TABLES[key]


def _layernorm_fixed(x, fx, f, weight, bias, eps, bits):
    n = x.shape[1]
    s1 = x.sum(axis=1, keepdims=True)
    s2 = (x * x).sum(axis=1, keepdims=True)
    d = (n * x - s1).astype(np.float64)
    var = (n * s2 - s1 * s1).astype(np.float64) + float(eps) * float(n) ** 2 * 4.0 ** fx
    y = d / np.sqrt(var) * np.asarray(weight, np.float64) + np.asarray(bias, np.float64)
    return _sat(np.floor(np.ldexp(y, f) + 0.5).astype(np.int64), bits)


def _host_fixed(s: Step, env: dict, fracs: dict, bits: int) -> np.ndarray:
    f = fracs[s.dst]
    a = [env[n] for n in s.srcs]
    fa = [fracs[n] for n in s.srcs]
    if s.op == "requant":
        return requant(a[0], fa[0], f, bits)
    if s.op in ("add", "sub"):
        big = max(fa)
        x, y = (v << (big - fv) for v, fv in zip(a, fa))
        return requant(x + y if s.op == "add" else x - y, big, f, bits)
    if s.op == "mul":
        return requant(a[0] * a[1], fa[0] + fa[1], f, bits)
    if s.op == "concat":
        return np.concatenate([requant(v, fv, f, bits) for v, fv in zip(a, fa)], axis=1)
    if s.op == "slice":
        return a[0][:, s.args["start"]:s.args["stop"]].copy()
    if s.op == "relu":
        return np.maximum(a[0], 0)
    if s.op == "lut":
        return lut_table(s.args["fn"], fa[0], f, bits)[a[0] + (1 << (bits - 1))]
    if s.op == "layernorm":
        return _layernorm_fixed(a[0], fa[0], f, s.args["weight"], s.args["bias"], s.args["eps"], bits)
    raise ValueError(f"unknown host op {s.op!r}")


def _frac_of(s: Step, fracs: dict, layers) -> int:
    return layers[s.args["first"] + s.args["count"] - 1].out_frac if s.op == "eie" else fracs[s.dst]


def run_fixed(program: Program, layers: list, cfg, X, *, eie=None, trace=None) -> np.ndarray:
    """The program's fixed-point output on fixed-point inputs ``X`` (the golden model).

    ``X`` is ``(batch, in_len)`` int64 (``(batch, T, in_len)`` for a recurrent
    program) with ``program.fracs[program.input]`` fraction bits. ``eie(first,
    count, x)`` computes an ``eie`` step on a batch (default: the bit-exact
    reference on ``layers``; an RTL run passes its own). ``trace(step, x, y)``
    sees every ``eie`` step's input and output.
    """
    from .reference import forward
    if eie is None:
        def eie(first, count, x):
            return forward(layers[first:first + count], x, cfg)
    bits = cfg.act_bits
    X = np.asarray(X, np.int64)
    fracs = dict(program.fracs)
    for s in program.steps + program.post:
        if s.op == "eie" and s.dst not in fracs:
            fracs[s.dst] = _frac_of(s, fracs, layers)

    def execute(steps, env):
        for s in steps:
            if s.op == "eie":
                first, count = s.args["first"], s.args["count"]
                x = env[s.srcs[0]]
                y = np.asarray(eie(first, count, x), np.int64).reshape(len(x), -1)
                if trace is not None:
                    trace(s, x, y)
                env[s.dst] = y
            else:
                env[s.dst] = _host_fixed(s, env, fracs, bits)

    if not program.sequence:
        env = {program.input: X}
        execute(program.steps, env)
        return env[program.output]
    batch, T = X.shape[0], X.shape[1]
    env = {name: np.zeros((batch, program.lengths[name]), np.int64) for name in program.state}
    outs = []
    for t in range(T):
        env[program.input] = X[:, t, :]
        execute(program.steps, env)
        if program.output_per_step:
            outs.append(env[program.output])
        for name, src in program.carry.items():
            env[name] = requant(env[src], fracs[src], fracs[name], bits)
    if program.output_per_step:
        return np.stack(outs, axis=1)
    execute(program.post, env)
    return env[program.output]


# -- float (torch) -------------------------------------------------------------------

def run_float(program: Program, linears, X, relus, *, record=None):
    """The program in float (torch, differentiable): ``linears`` the EIE layers (callables), ``relus`` their flags.

    ``record(name, tensor)`` sees every tensor (calibration).
    """
    import torch
    import torch.nn.functional as F

    def execute(steps, env):
        for s in steps:
            a = [env[n] for n in s.srcs]
            if s.op == "eie":
                y = a[0]
                for k in range(s.args["first"], s.args["first"] + s.args["count"]):
                    y = linears[k](y)
                    if relus[k]:
                        y = F.relu(y)
            elif s.op == "requant":
                y = a[0]
            elif s.op == "add":
                y = a[0] + a[1]
            elif s.op == "sub":
                y = a[0] - a[1]
            elif s.op == "mul":
                y = a[0] * a[1]
            elif s.op == "concat":
                y = torch.cat(a, dim=-1)
            elif s.op == "slice":
                y = a[0][..., s.args["start"]:s.args["stop"]]
            elif s.op == "relu":
                y = F.relu(a[0])
            elif s.op == "lut":
                y = getattr(F if s.args["fn"] in ("gelu", "silu") else torch, LUT_FUNCTIONS[s.args["fn"]][1])(a[0])
            elif s.op == "layernorm":
                w = torch.as_tensor(np.asarray(s.args["weight"]), dtype=a[0].dtype)
                b = torch.as_tensor(np.asarray(s.args["bias"]), dtype=a[0].dtype)
                y = F.layer_norm(a[0], (a[0].shape[-1],), w, b, float(s.args["eps"]))
            else:
                raise ValueError(f"unknown op {s.op!r}")
            env[s.dst] = y
            if record is not None:
                record(s.dst, y)

    X = torch.as_tensor(X) if not isinstance(X, torch.Tensor) else X
    X = X.float()
    if not program.sequence:
        env = {program.input: X}
        if record is not None:
            record(program.input, X)
        execute(program.steps, env)
        return env[program.output]
    batch, T = X.shape[0], X.shape[1]
    env = {name: X.new_zeros((batch, program.lengths[name])) for name in program.state}
    outs = []
    for t in range(T):
        env[program.input] = X[:, t, :]
        if record is not None:
            record(program.input, X[:, t, :])
            for name in program.state:
                record(name, env[name])
        execute(program.steps, env)
        if program.output_per_step:
            outs.append(env[program.output])
        for name, src in program.carry.items():
            env[name] = env[src]
    if program.output_per_step:
        return torch.stack(outs, dim=1)
    execute(program.post, env)
    return env[program.output]


# -- calibration ---------------------------------------------------------------------

def calibrate(program: Program, shared_layers, X_calib, cfg, *, headroom: float | None = None):
    """Fraction bits of every tensor and the fixed-point layers, from float calibration inputs.

    Every host tensor gets the most fraction bits with which ``headroom``
    times its largest magnitude on ``X_calib`` (the float program with the
    shared weights) fits ``act_bits`` (the network input at most
    ``cfg.act_frac_bits``, as :func:`.quantize.quantize_network` does); a
    state tensor is measured over every time step. Each ``eie``
    step's layers are quantised by :func:`.quantize.quantize_network` on
    the float inputs that step saw, with the source tensor's frac as input
    frac. Returns ``(program with fracs, quant layers, calibration rows)``.
    """
    import torch

    from .quantize import HEADROOM, frac_bits_for, quantize_network
    from .share import SharedLinear
    headroom = HEADROOM if headroom is None else headroom
    maxima: dict = {}
    seen: dict = {}

    def record(name, t):
        maxima[name] = max(maxima.get(name, 0.0), float(t.detach().abs().max()) if t.numel() else 0.0)

    linears = [SharedLinear(sl) for sl in shared_layers]
    relus = [sl.relu for sl in shared_layers]

    def record_eie(name, t):
        record(name, t)
        seen.setdefault(name, []).append(t.detach().double().numpy().reshape(-1, t.shape[-1]))

    with torch.no_grad():
        run_float(program, linears, np.asarray(X_calib, np.float32), relus, record=record_eie)
    fracs = {}
    for name, m in maxima.items():
        hi = cfg.act_frac_bits if name == program.input else cfg.act_bits - 1
        fracs[name] = frac_bits_for(m, cfg.act_bits, headroom=headroom, hi=hi)
    layers = [None] * len(shared_layers)
    rows = []
    for s in program.steps + program.post:      # in order: a slice or relu keeps its source's frac
        if s.op in ("slice", "relu"):
            fracs[s.dst] = fracs[s.srcs[0]]
        if s.op != "eie":
            continue
        first, count = s.args["first"], s.args["count"]
        x = np.concatenate(seen[s.srcs[0]], axis=0)
        qs, _, cal = quantize_network(shared_layers[first:first + count], x, cfg, headroom=headroom,
                                      input_frac=fracs[s.srcs[0]])
        layers[first:first + count] = qs
        rows += cal
        fracs[s.dst] = qs[-1].out_frac
    return replace(program, fracs=fracs), layers, rows


# -- partition report ----------------------------------------------------------------

def partition_report(program: Program, layers) -> dict:
    """What runs where: per step its place (EIE or host), shapes and multiply-accumulates.

    ``macs`` of an ``eie`` step are the dense products of its layers (and
    ``nonzero_macs`` the ones EIE performs: non-zero weights); host MACs are
    counted per element for ``mul``/``layernorm`` (2) and lut lookups as 0.
    Per time step for a recurrent program.
    """
    rows = []
    for where, steps in (("step", program.steps), ("post", program.post)):
        for s in steps:
            if s.op == "eie":
                ls = layers[s.args["first"]:s.args["first"] + s.args["count"]]
                macs = sum(l.in_len * l.out_len for l in ls)
                nz = sum(int(l.nnz) for l in ls)
                rows.append({"step": s.name or s.dst, "op": "eie", "on": "eie", "phase": where,
                             "layers": [s.args["first"] + k for k in range(len(ls))],
                             "shape": [[l.in_len, l.out_len] for l in ls], "macs": macs, "nonzero_macs": nz})
            else:
                n = program.lengths.get(s.dst, 0)
                macs = {"mul": n, "layernorm": 2 * n}.get(s.op, 0)
                rows.append({"step": s.name or s.dst, "op": s.op, "on": "host", "phase": where,
                             "length": n, "macs": macs, "nonzero_macs": macs})
    total = sum(r["macs"] for r in rows) or 1
    eie_macs = sum(r["macs"] for r in rows if r["on"] == "eie")
    for r in rows:
        r["share"] = r["macs"] / total
    return {"steps": rows, "eie_macs": eie_macs, "host_macs": total - eie_macs,
            "eie_share": eie_macs / total, "sequence": program.sequence,
            "host_ops": sorted({r["op"] for r in rows if r["on"] == "host"})}
