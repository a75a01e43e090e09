"""The ``torch.fx`` frontend: any supported ``nn.Module`` split into EIE calls and host steps.

:func:`partition` traces a model with ``torch.fx`` and makes a
:class:`~eie.golden.program.Program`: every ``nn.Linear`` becomes an EIE
layer (a ReLU that follows it, with no other user of the Linear's output, is
fused into its write-back, and a chain of such layers is one EIE call);
everything else runs on the host between EIE calls in the program's defined
fixed-point arithmetic:

======================================  ==========================================
model                                   program step
======================================  ==========================================
``nn.Linear`` (+ ``ReLU``)              ``eie`` (consecutive layers fused)
``nn.GELU``, ``Sigmoid``, ``Tanh``,     ``lut`` (a table over all input codes)
``SiLU`` and their functions
``nn.LayerNorm`` (1-D, affine)          ``layernorm``
``+``, ``-``, ``*`` of two tensors      ``add``, ``sub``, ``mul``
``torch.cat(..., dim=-1)``              ``concat``
``x[..., a:b]``, ``chunk(k, -1)``       ``slice``
``ReLU`` not after a Linear             ``relu``
``Dropout``, ``Identity``, ``Flatten``  nothing (vectors in, eval mode)
``nn.LSTM``, ``nn.GRU`` (batch_first,   per time step: ``concat(x, h)`` ->
unidirectional, any layer count)        ``eie`` (the stacked gate matrix) ->
                                        ``slice``/``lut``/``mul``/``add``
======================================  ==========================================

An LSTM layer's gate matrix is ``[W_ih | W_hh]`` (``4H x (I+H)``, rows
``i, f, g, o`` as PyTorch orders them, bias ``b_ih + b_hh``); a GRU's is
``4H x (I+H)`` with rows ``r`` and ``z`` (both inputs), ``n_x`` (input
columns only, bias ``b_in``) and ``n_h`` (hidden columns only, bias
``b_hn``), so that ``n = tanh(n_x + r * n_h)``. After the recurrent layer,
``out[:, -1]`` (the last step) makes the following steps run once after the
sequence; the whole ``out`` makes them run every step.

Anything else raises ``ValueError`` naming the node, its operation and what
is supported. :class:`ProgramModel` is the float ``nn.Module`` of a program
(its Linears are what pruning and weight sharing work on).
"""

from __future__ import annotations

import copy
import operator

import numpy as np
import torch.nn as nn

from .program import Program, Step

__all__ = ["partition", "ProgramModel", "is_plain_sequential"]


def is_plain_sequential(model) -> bool:
    """True for an ``nn.Sequential`` of Linear/ReLU only (the original, program-free path)."""
    import torch.nn as nn
    return isinstance(model, nn.Sequential) and all(isinstance(m, (nn.Linear, nn.ReLU)) for m in model)


class ProgramModel(nn.Module):
    """The float model of a :class:`~eie.golden.program.Program`: ``linears`` are the EIE layers (in
    layer-table order), ``relus`` their write-back ReLUs; ``forward`` is :func:`~eie.golden.program.run_float`."""

    def __init__(self, program, linears, relus):
        super().__init__()
        self.program = program
        self.linears = nn.ModuleList(linears)
        self.relus = list(relus)

    def forward(self, x):
        from .program import run_float
        return run_float(self.program, self.linears, x, self.relus)


class _Builder:
    def __init__(self):
        self.steps = []          # Step, with args["linears"] (list of Linear modules) for eie steps
        self.lengths = {}
        self.counter = 0

    def tmp(self, base: str) -> str:
        self.counter += 1
        return f"{base}.{self.counter}"

    def add(self, op, srcs, dst, length, name="", **args):
        self.steps.append(Step(op, tuple(srcs), dst, args, name))
        self.lengths[dst] = int(length)
        return dst


def _unsupported(node, what: str):
    return ValueError(f"node {node.name!r} ({node.op} {what}) is not supported on EIE or the host; supported: "
                      f"Linear (+ReLU) on EIE; GELU/Sigmoid/Tanh/SiLU, LayerNorm, +, -, * of two tensors, "
                      f"cat(dim=-1), slicing the last dimension, ReLU, Dropout/Identity/Flatten and "
                      f"LSTM/GRU (batch_first) on the host (see eie/golden/graph.py)")


def _lut_name(target):
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
    table = {nn.GELU: "gelu", nn.Sigmoid: "sigmoid", nn.Tanh: "tanh", nn.SiLU: "silu",
             F.gelu: "gelu", torch.sigmoid: "sigmoid", torch.tanh: "tanh", F.silu: "silu",
             "sigmoid": "sigmoid", "tanh": "tanh"}
    try:
        return table.get(target)
    except TypeError:
        return None


def _recurrent(b: _Builder, mod, node, src: str, in_len: int, linears: list, relus: list):
    """Steps of one time step of an ``nn.LSTM``/``nn.GRU``; returns (output tensor, state names, carry)."""
    import torch
    import torch.nn as nn
    kind = "lstm" if isinstance(mod, nn.LSTM) else "gru"
    if not mod.batch_first:
        raise ValueError(f"node {node.name!r} ({type(mod).__name__}): batch_first=False is not supported; "
                         f"build it with batch_first=True (inputs are (batch, time, features))")
    if mod.bidirectional or getattr(mod, "proj_size", 0):
        raise ValueError(f"node {node.name!r} ({type(mod).__name__}): bidirectional or projected recurrent "
                         f"layers are not supported; use a unidirectional one without proj_size")
    H = mod.hidden_size
    state, carry = [], {}
    x, x_len = src, in_len
    for l in range(mod.num_layers):
        w_ih = getattr(mod, f"weight_ih_l{l}").detach()
        w_hh = getattr(mod, f"weight_hh_l{l}").detach()
        b_ih = getattr(mod, f"bias_ih_l{l}", None)
        b_hh = getattr(mod, f"bias_hh_l{l}", None)
        b_ih = torch.zeros(w_ih.shape[0]) if b_ih is None else b_ih.detach()
        b_hh = torch.zeros(w_hh.shape[0]) if b_hh is None else b_hh.detach()
        lin = nn.Linear(x_len + H, 4 * H)
        with torch.no_grad():
            if kind == "lstm":
                lin.weight.copy_(torch.cat([w_ih, w_hh], dim=1))
                lin.bias.copy_(b_ih + b_hh)
            else:
                w = torch.zeros(4 * H, x_len + H)
                w[:2 * H, :x_len], w[:2 * H, x_len:] = w_ih[:2 * H], w_hh[:2 * H]
                w[2 * H:3 * H, :x_len] = w_ih[2 * H:]
                w[3 * H:, x_len:] = w_hh[2 * H:]
                lin.weight.copy_(w)
                lin.bias.copy_(torch.cat([b_ih[:2 * H] + b_hh[:2 * H], b_ih[2 * H:], b_hh[2 * H:]]))
        name = f"{node.name}.l{l}"
        h = b.tmp(f"{name}.h")
        b.lengths[h] = H
        state.append(h)
        xh = b.add("concat", [x, h], b.tmp(f"{name}.xh"), x_len + H, name=f"{name} concat(x, h)")
        gates = b.add("eie", [xh], b.tmp(f"{name}.gates"), 4 * H, name=f"{name} gates", linears=[lin])
        linears.append(lin)
        relus.append(False)

        def gate(k, fn, tag):
            s = b.add("slice", [gates], b.tmp(f"{name}.{tag}pre"), H, name=f"{name} {tag}", start=k * H,
                      stop=(k + 1) * H)
            return b.add("lut", [s], b.tmp(f"{name}.{tag}"), H, name=f"{name} {fn}({tag})", fn=fn) if fn else s
        if kind == "lstm":
            c = b.tmp(f"{name}.c")
            b.lengths[c] = H
            state.append(c)
            i, f, g, o = gate(0, "sigmoid", "i"), gate(1, "sigmoid", "f"), gate(2, "tanh", "g"), gate(3, "sigmoid", "o")
            fc = b.add("mul", [f, c], b.tmp(f"{name}.fc"), H, name=f"{name} f*c")
            ig = b.add("mul", [i, g], b.tmp(f"{name}.ig"), H, name=f"{name} i*g")
            c_new = b.add("add", [fc, ig], b.tmp(f"{name}.cnew"), H, name=f"{name} c'")
            tc = b.add("lut", [c_new], b.tmp(f"{name}.tanhc"), H, name=f"{name} tanh(c')", fn="tanh")
            h_new = b.add("mul", [o, tc], b.tmp(f"{name}.hnew"), H, name=f"{name} h'")
            carry[c] = c_new
        else:
            r, z = gate(0, "sigmoid", "r"), gate(1, "sigmoid", "z")
            nx, nh = gate(2, None, "nx"), gate(3, None, "nh")
            rn = b.add("mul", [r, nh], b.tmp(f"{name}.rn"), H, name=f"{name} r*n_h")
            npre = b.add("add", [nx, rn], b.tmp(f"{name}.npre"), H, name=f"{name} n_x + r*n_h")
            n = b.add("lut", [npre], b.tmp(f"{name}.n"), H, name=f"{name} tanh(n)", fn="tanh")
            hn = b.add("sub", [h, n], b.tmp(f"{name}.hmn"), H, name=f"{name} h-n")
            zh = b.add("mul", [z, hn], b.tmp(f"{name}.zhmn"), H, name=f"{name} z*(h-n)")
            h_new = b.add("add", [n, zh], b.tmp(f"{name}.hnew"), H, name=f"{name} h'")
        carry[h] = h_new
        x, x_len = h_new, H
    return x, state, carry


def _first_in_len(gm, model):
    import torch.nn as nn
    mods = dict(gm.named_modules())
    for node in gm.graph.nodes:
        if node.op == "call_module":
            m = mods[node.target]
            if isinstance(m, nn.Linear):
                return m.in_features
            if isinstance(m, nn.LayerNorm):
                return int(m.normalized_shape[0])
            if isinstance(m, (nn.LSTM, nn.GRU)):
                return m.input_size
    raise ValueError(f"{type(model).__name__} has no Linear, LayerNorm, LSTM or GRU to run; EIE needs a Linear layer")


def partition(model):
    """``(ProgramModel, Program)`` of ``model`` (see the module docstring); the model itself is not changed.

    The program's ``fracs`` are empty (set by :func:`.program.calibrate`);
    its ``eie`` steps index the ProgramModel's ``linears``.
    """
    import torch
    import torch.fx as fx
    import torch.nn as nn
    import torch.nn.functional as F

    model = copy.deepcopy(model).eval()
    try:
        gm = fx.symbolic_trace(model)
    except Exception as e:
        raise ValueError(f"torch.fx cannot trace {type(model).__name__}: {type(e).__name__}: {e}; EIE takes "
                         f"models whose forward has no data-dependent control flow") from None
    mods = dict(gm.named_modules())
    b = _Builder()
    linears, relus = [], []
    names = {}            # fx node -> tensor name (or a marker tuple for recurrent outputs)
    placeholders = [n for n in gm.graph.nodes if n.op == "placeholder"]
    if len(placeholders) != 1:
        raise ValueError(f"{type(model).__name__}.forward takes {len(placeholders)} inputs; EIE programs take one "
                         f"input vector (or sequence)")
    in_len = _first_in_len(gm, model)
    inp = placeholders[0].name
    b.lengths[inp] = in_len
    names[placeholders[0]] = inp
    sequence = False
    state, carry = [], {}
    post_from = None          # index in b.steps where post steps start (last-step mode)
    seq_node = rec_node = None
    per_step = False
    output = None

    def src(node, arg):
        if not isinstance(arg, fx.Node):
            raise _unsupported(node, f"with a constant operand {arg!r}")
        v = names.get(arg)
        if isinstance(v, tuple):
            raise _unsupported(node, f"on the {v[0]} output of a recurrent layer other than out or out[:, -1]")
        return v

    for node in gm.graph.nodes:
        if node.op == "placeholder":
            continue
        if node.op == "output":
            out = node.args[0]
            if not isinstance(out, fx.Node):
                raise ValueError("the model must return one tensor")
            output = src(node, out)
            continue
        if not node.users:           # dead code (e.g. the unused h_n of `out, _ = rnn(x)`)
            continue
        if node.op == "get_attr":
            raise _unsupported(node, f"{node.target} (a parameter used as a value)")
        target = node.target
        mod = mods.get(target) if node.op == "call_module" else None
        args = list(node.args)
        # Identity-like
        if (isinstance(mod, (nn.Dropout, nn.Identity, nn.Flatten))
                or (node.op == "call_function" and target in (torch.flatten, F.dropout))
                or (node.op == "call_method" and target in ("flatten", "contiguous", "view", "reshape")
                    and (target in ("flatten", "contiguous") or len(args) == 3 and args[2] == -1))):
            names[node] = src(node, args[0])
            continue
        if isinstance(mod, (nn.LSTM, nn.GRU)):
            if sequence:
                raise _unsupported(node, "(a second recurrent module: stack layers with num_layers instead)")
            if args[0] is not placeholders[0] or b.steps:
                raise _unsupported(node, "(a recurrent layer must take the model's input directly)")
            sequence = True
            h_out, st, cr = _recurrent(b, mod, node, inp, in_len, linears, relus)
            state, carry = st, cr
            names[node] = ("recurrent", h_out)
            rec_node = node
            continue
        if node.op == "call_function" and target is operator.getitem:
            base, idx = args
            marker = names.get(base)
            if base is rec_node:
                if idx != 0:
                    raise _unsupported(node, "(the (h_n, c_n) output; use out[:, -1] for the last step)")
                last_users = [u for u in node.users if _is_last_step(u, node)]
                if last_users and len(last_users) != len(node.users):
                    raise _unsupported(node, "(the output sequence used both per step and as out[:, -1])")
                names[node] = marker[1]
                seq_node, per_step = node, not last_users
                continue
            if base is seq_node and seq_node is not None and _is_last_step(node, seq_node):
                post_from = len(b.steps) if post_from is None else post_from
                names[node] = names[seq_node]
                continue
            if isinstance(marker, tuple) and marker[0] == "chunks":
                if not isinstance(idx, int) or not -len(marker[1]) <= idx < len(marker[1]):
                    raise _unsupported(node, f"(chunk index {idx!r})")
                x, start, stop = marker[1][idx]
                names[node] = b.add("slice", [x], node.name, stop - start, name=node.name, start=start, stop=stop)
                continue
            x = src(node, base)
            sl = idx[-1] if isinstance(idx, tuple) else None
            lead_ok = isinstance(idx, tuple) and all(i in (slice(None), Ellipsis) for i in idx[:-1])
            if not isinstance(sl, slice) or sl.step not in (None, 1) or not lead_ok:
                raise _unsupported(node, f"(indexing with {idx!r}; only x[..., a:b] or x[:, a:b])")
            n = b.lengths[x]
            start, stop, _ = sl.indices(n)
            names[node] = b.add("slice", [x], node.name, max(0, stop - start), name=node.name, start=start, stop=stop)
            continue
        if isinstance(mod, nn.Linear):
            x = src(node, args[0])
            names[node] = b.add("eie", [x], node.name, mod.out_features, name=node.name, linears=[mod])
            if b.lengths[x] != mod.in_features:
                raise ValueError(f"node {node.name!r} (Linear {mod.in_features}->{mod.out_features}) gets a vector "
                                 f"of {b.lengths[x]}")
            continue
        relu = (isinstance(mod, nn.ReLU) or (node.op == "call_function" and target in (torch.relu, F.relu))
                or (node.op == "call_method" and target == "relu"))
        if relu:
            names[node] = b.add("relu", [src(node, args[0])], node.name, b.lengths[src(node, args[0])], name=node.name)
            continue
        fn = _lut_name(type(mod)) if mod is not None else _lut_name(target)
        if fn is not None:
            if fn == "gelu" and (getattr(mod, "approximate", "none") != "none"
                                 or node.kwargs.get("approximate", "none") != "none"):
                raise _unsupported(node, "(GELU with approximate='tanh'; use the exact GELU)")
            x = src(node, args[0])
            names[node] = b.add("lut", [x], node.name, b.lengths[x], name=node.name, fn=fn)
            continue
        if isinstance(mod, nn.LayerNorm):
            if len(mod.normalized_shape) != 1:
                raise _unsupported(node, f"(LayerNorm over {tuple(mod.normalized_shape)}: only the last dimension)")
            x = src(node, args[0])
            n = b.lengths[x]
            w = mod.weight.detach().double().numpy() if mod.weight is not None else np.ones(n)
            bb = mod.bias.detach().double().numpy() if mod.bias is not None else np.zeros(n)
            names[node] = b.add("layernorm", [x], node.name, n, name=node.name, weight=w, bias=bb, eps=float(mod.eps))
            continue
        arith = {operator.add: "add", torch.add: "add", "add": "add", operator.sub: "sub", torch.sub: "sub",
                 "sub": "sub", operator.mul: "mul", torch.mul: "mul", "mul": "mul"}
        op = arith.get(target) if node.op in ("call_function", "call_method") else None
        if op is not None:
            if len(args) != 2 or node.kwargs:
                raise _unsupported(node, f"{target} with arguments {args} {node.kwargs}")
            a, c = src(node, args[0]), src(node, args[1])
            if b.lengths[a] != b.lengths[c]:
                raise ValueError(f"node {node.name!r} ({op}): operands of {b.lengths[a]} and {b.lengths[c]} "
                                 f"elements (no broadcasting on EIE's host)")
            names[node] = b.add(op, [a, c], node.name, b.lengths[a], name=node.name)
            continue
        if node.op == "call_function" and target is torch.cat:
            parts = args[0]
            dim = node.kwargs.get("dim", args[1] if len(args) > 1 else 0)
            if dim not in (-1, 1):
                raise _unsupported(node, f"(cat along dim {dim}; only the last dimension)")
            xs = [src(node, p) for p in parts]
            names[node] = b.add("concat", xs, node.name, sum(b.lengths[x] for x in xs), name=node.name)
            continue
        if node.op == "call_method" and target == "chunk":
            x = src(node, args[0])
            k = args[1]
            dim = node.kwargs.get("dim", args[2] if len(args) > 2 else 0)
            n = b.lengths[x]
            if dim not in (-1, 1) or n % k:
                raise _unsupported(node, f"(chunk({k}, dim={dim}) of {n}: only equal chunks of the last dimension)")
            names[node] = ("chunks", [(x, i * n // k, (i + 1) * n // k) for i in range(k)])
            continue
        if node.op == "call_function" and target is operator.getitem and isinstance(names.get(args[0]), tuple):
            raise _unsupported(node, "")
        what = type(mod).__name__ if mod is not None else getattr(target, "__name__", str(target))
        raise _unsupported(node, what)

    # getitem of chunk results were not handled above (chunks are markers): handled by a second look
    if output is None:
        raise ValueError("the model returns nothing")
    steps = _fuse(b.steps, output, set(carry.values()))
    # layer indices in order of the eie steps
    layer_mods, layer_relus, final = [], [], []
    for s in steps:
        if s.op == "eie":
            first = len(layer_mods)
            layer_mods += s.args["linears"]
            layer_relus += s.args["relus"]
            final.append(Step("eie", s.srcs, s.dst, {"first": first, "count": len(s.args["linears"])}, s.name))
        else:
            final.append(s)
    lengths = {inp: in_len, **b.lengths}
    if sequence and seq_node is None:
        raise ValueError(f"{type(model).__name__}: use the recurrent layer's output sequence (out, _ = rnn(x)) "
                         f"as out (every step) or out[:, -1] (the last step)")
    if sequence and not per_step:
        body_names = {s.dst for s in b.steps[:post_from]} if post_from is not None else set()
        n_body = sum(1 for s in final if s.dst in body_names)
        body, post = final[:n_body], final[n_body:]
    else:
        body, post = final, []
    prog = Program(input=inp, in_len=in_len, output=output, steps=body, lengths=lengths, sequence=sequence,
                   state=state, carry=carry, post=post, output_per_step=per_step)
    prog.check(len(layer_mods))
    if not layer_mods:
        raise ValueError(f"{type(model).__name__} has no Linear layer (nothing would run on EIE)")
    pm = ProgramModel(prog, [copy.deepcopy(m) for m in layer_mods], layer_relus)
    return pm.eval(), prog


def _is_last_step(node, seq) -> bool:
    """``node`` is ``seq[:, -1]`` (or ``seq[:, -1, :]``)."""
    import torch.fx as fx
    if node.op != "call_function" or node.target is not operator.getitem or node.args[0] is not seq:
        return False
    idx = node.args[1]
    return (isinstance(idx, tuple) and len(idx) in (2, 3) and idx[0] == slice(None) and idx[1] == -1
            and all(i == slice(None) for i in idx[2:])) and isinstance(node, fx.Node)


def _fuse(steps, output: str, carried: set) -> list:
    """Fuse ReLUs into the Linear before them and chains of Linears into one eie step.

    A ReLU (or the next Linear) is fused when the tensor it reads is used by it
    alone (and is not the output or carried)."""
    uses: dict = {}
    for s in steps:
        for x in s.srcs:
            uses[x] = uses.get(x, 0) + 1
    keep = {output} | carried
    out = []
    by_dst = {}
    for s in steps:
        if s.op == "eie":
            s = Step("eie", s.srcs, s.dst, {"linears": list(s.args["linears"]), "relus": [False]}, s.name)
        prev = by_dst.get(s.srcs[0]) if s.srcs else None
        alone = prev is not None and uses.get(s.srcs[0], 0) == 1 and s.srcs[0] not in keep and out and out[-1] is prev
        if s.op == "relu" and alone and prev.op == "eie" and not prev.args["relus"][-1]:
            prev.args["relus"][-1] = True
            merged = Step("eie", prev.srcs, s.dst, prev.args, prev.name)
            out[-1] = merged
            by_dst[s.dst] = merged
            continue
        if s.op == "eie" and alone and prev.op == "eie":
            merged = Step("eie", prev.srcs, s.dst, {"linears": prev.args["linears"] + s.args["linears"],
                                                    "relus": prev.args["relus"] + s.args["relus"]},
                          f"{prev.name}+{s.name}")
            out[-1] = merged
            by_dst[s.dst] = merged
            continue
        out.append(s)
        by_dst[s.dst] = s
    return out
