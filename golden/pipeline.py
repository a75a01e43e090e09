"""The whole Deep Compression of a model into EIE layers, and its report.

:func:`compress` runs, in order:

1. load the model (a built-in one of :data:`.models.BUILTIN`, such as
   ``digits-mlp`` or ``lenet-300-100``, trained or cached; a user file or
   ``module:function``) and check it fits the config (:mod:`.models`);
2. prune to the target densities with retraining (:mod:`.prune`);
3. share weights per layer by k-means and fine-tune the centroids (:mod:`.share`);
4. convert to fixed point, calibrated on the training data (:mod:`.quantize`);
5. **balance hook**: a load-balancing row permutation (``golden/balance.py``,
   ``balance(layers, cfg) -> (layers, output_perm)``) when that module exists;
6. encode every layer in interleaved CSC and lay out the memory image (:mod:`.encode`);
7. measure the fixed-point accuracy with the bit-exact reference on the test
   split (:mod:`.reference`) and the storage at each stage, Huffman included
   (:mod:`.huffman`).

:func:`write_output` writes the folder of ``docs/format.md``; :func:`format_report`
renders the Deep-Compression-style table.

Storage accounting (``compression`` in the report, all in bytes):

``dense_bytes``
    float32 weights and biases of the original model.
``pruned_bytes``
    After pruning only: every stored entry (padding included) as a float32
    value plus a ``zrun_bits`` zero run, plus the pointers.
``eie_bytes``
    The format the hardware reads: ``index_bits + zrun_bits`` per entry
    (padding included), ``N * (in_len + 1)`` pointers of ``cfg.ptr_bits`` per
    layer, and the codebooks (``2**index_bits * codebook_bits``). Biases are
    not included (as in Deep Compression's weight-storage figures); they are
    reported separately as ``bias_bytes`` (``bias_bits`` each).
``huffman_bytes``
    As ``eie_bytes`` with the index and zero-run streams Huffman coded (one
    code per stream and layer, code tables included).
``ratio``
    ``dense_bytes / eie_bytes``; ``huffman_ratio`` = ``dense_bytes / huffman_bytes``.

The manifest (``manifest.json``, besides ``format``, ``format_version`` and
``config``) holds ``model``, ``seed``, ``densities`` (targets per layer),
``input_frac`` (quantise the network input with
:func:`eie.golden.quantize.quantize_input`), ``output_frac``,
``output_perm`` (``output_perm[h]`` = logical output at hardware output
``h``), ``balanced``, ``layers`` (per layer: ``name, shift, relu, in_frac,
out_frac, codebook_frac, in_len, out_len, weights, nonzeros, density,
entries, padding, pe_entries, codebook_used, share_init, share_init_mse, bytes, huffman,
calibration``; ``share_init`` is the k-means initialisation weight sharing
used, ``share_init_mse`` the weight reconstruction MSE of each one tried),
``objective`` (what retraining optimised, see :func:`_objective`),
``accuracy`` (``float, pruned, shared, fixed_point``; ``null`` without
data), ``compression`` (above), ``data``, ``notes`` and ``files``.
"""

from __future__ import annotations

import copy
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["Schedule", "Compressed", "compress", "storage_report", "write_output", "format_report"]

# Inputs drawn for calibration when a user model comes without data.
_NO_DATA_CALIBRATION_SAMPLES = 1024
# ... and, drawn apart from them, for measuring the fidelity.
_NO_DATA_EVAL_SAMPLES = 256


def _load_inputs(inputs, in_len: int, seq: bool = False) -> np.ndarray:
    """``--inputs``: float inputs (batch, in_len) from an array or a ``.npy`` file."""
    from eie.format import FormatError, check_finite, read_npy
    fix = "save the float inputs as one array of shape (batch, in_len) with numpy.save"
    what = "--inputs"
    if isinstance(inputs, (str, Path)):
        what = str(inputs)
        if Path(inputs).suffix != ".npy":
            raise ValueError(f"--inputs must be a .npy file of float inputs (batch, in_len), not {str(inputs)!r}")
        if not Path(inputs).exists():
            raise FileNotFoundError(f"--inputs {inputs}: no such file")
        inputs = read_npy(inputs, what="inputs file", fix=fix)
    X = np.asarray(inputs)
    if X.ndim == 1 and not seq:
        X = X[None, :]
    if X.ndim != 2 + seq or X.shape[0] == 0 or X.shape[-1] != in_len:
        shape = f"(batch >= 1, time, in_len = {in_len})" if seq else f"(batch >= 1, in_len = {in_len})"
        raise FormatError(what, f"inputs must have shape {shape}, not {X.shape}", fix)
    if not (np.issubdtype(X.dtype, np.floating) or np.issubdtype(X.dtype, np.integer)):
        raise FormatError(what, f"inputs must be numbers, not {X.dtype}", fix)
    X = X.astype(np.float64)
    check_finite(what, "the inputs", X, "replace NaN and infinite inputs by numbers")
    return X


@dataclass(frozen=True)
class Schedule:
    """Training effort of each stage (epochs over the training data)."""
    float_epochs: int = 40       # built-in models only; user models come trained
    prune_steps: int = 4         # pruning rounds, density falling geometrically to the target
    prune_epochs: int = 12       # retraining after each round
    share_epochs: int = 10       # centroid fine-tuning

    @classmethod
    def quick(cls) -> "Schedule":
        """Few epochs, for tests (accuracy a little lower)."""
        return cls(float_epochs=15, prune_steps=2, prune_epochs=3, share_epochs=2)


@dataclass
class Compressed:
    """Result of :func:`compress`."""
    config: object
    layers: list                 # QuantLayer, after balancing, as encoded
    output_perm: list            # output_perm[i] = logical output at hardware output i
    input_frac: int
    encoded: list                # EncodedLayer per layer
    image: object                # eie.format.NetworkImage
    report: dict
    float_model: object = None   # the original float model
    compressed_model: object = None  # float nn.Sequential with the pruned, shared weights
    test_data: tuple = None      # (X_test, y_test) or None


def _stderr(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _dense_sequential(shared_layers):
    """A plain ``nn.Sequential`` of Linear/ReLU with the shared float weights (saved as model.pt)."""
    import torch
    import torch.nn as nn
    modules = []
    for sl in shared_layers:
        lin = nn.Linear(sl.codes.shape[1], sl.codes.shape[0])
        with torch.no_grad():
            lin.weight.copy_(torch.tensor(sl.weight, dtype=torch.float32))
            lin.bias.copy_(torch.tensor(sl.bias, dtype=torch.float32))
        modules.append(lin)
        if sl.relu:
            modules.append(nn.ReLU())
    return nn.Sequential(*modules).eval()


def _is_program(model) -> bool:
    """A model that is not a plain Sequential of Linear/ReLU goes through :mod:`.graph`."""
    import torch.nn as nn

    from .graph import is_plain_sequential
    return isinstance(model, nn.Module) and not is_plain_sequential(model)


def _program_specs(program_model) -> list:
    from .models import LinearSpec
    return [LinearSpec(k, lin, bool(relu)) for k, (lin, relu) in
            enumerate(zip(program_model.linears, program_model.relus))]


def _class_outputs(model, X) -> bool:
    """Whether ``model`` gives one score vector per input (so that labels can train it)."""
    import torch
    with torch.no_grad():
        return model(torch.as_tensor(np.asarray(X, dtype=np.float32))).ndim == 2


def _random_shape(n: int, specs, program, steps: int = 8) -> tuple:
    """Seeded random inputs' shape: ``(n, in_len)``, or ``(n, steps, in_len)`` for a recurrent program."""
    in_len = specs[0].in_len if program is None else program.in_len
    return (n, steps, in_len) if program is not None and program.sequence else (n, in_len)


def _program_share(program, shared_layers, X, y, epochs: int, seed: int, progress, loss: str = "cross_entropy"):
    """Fine-tune a program's centroids and biases through the whole program (with labels); return its
    float model with the shared weights as dense Linears (``model.pt``)."""
    import torch
    import torch.nn as nn

    from .graph import ProgramModel
    from .share import SharedLinear
    relus = [sl.relu for sl in shared_layers]
    if X is not None and epochs > 0:
        from .models import train_classifier
        tuned = ProgramModel(program, [SharedLinear(sl) for sl in shared_layers], relus)
        train_classifier(tuned, X, y, epochs=epochs, lr=2e-4, seed=seed, progress=progress,
                         label="centroid fine-tuning", loss=loss)
        for sl, mod in zip(shared_layers, tuned.linears):
            sl.codebook[1:] = mod.centroids.detach().numpy().astype(np.float64)
            sl.bias = mod.bias.detach().numpy().astype(np.float64)
    dense = []
    for sl in shared_layers:
        lin = nn.Linear(sl.codes.shape[1], sl.codes.shape[0])
        with torch.no_grad():
            lin.weight.copy_(torch.tensor(sl.weight, dtype=torch.float32))
            lin.bias.copy_(torch.tensor(sl.bias, dtype=torch.float32))
        dense.append(lin)
    return ProgramModel(program, dense, relus).eval()


def _fixed_outputs(layers, program, X, cfg, input_frac: int, output_perm) -> np.ndarray:
    """Float outputs (batch, ...) of the fixed-point network or program (bit-exact reference)."""
    from . import quantize
    if program is None:
        return quantize.fixed_point_outputs(layers, X, cfg, input_frac, output_perm)
    from .program import run_fixed
    y = run_fixed(program, layers, cfg, quantize.quantize_input(X, input_frac, cfg))
    return quantize.dequantize(y, program.fracs[program.output])


def _balance(layers, cfg, x_calib, enabled: bool = True):
    """HOOK (step 5): load balancing by row permutation, after quantisation, before encoding.

    When ``golden/balance.py`` exists (and ``enabled``), its ``balance(layers,
    cfg, x_calib) -> (layers, output_perm)`` is applied: it may permute the
    rows of any layer (and the next layer's columns to match) and keeps the
    network's function, except that the final outputs come out in the order
    ``output_perm`` (``output_perm[h]`` = logical output held at hardware
    output ``h``). Otherwise the outputs stay in order (identity).
    ``x_calib`` are fixed-point calibration inputs (which columns are active).
    Returns ``(layers, output_perm, applied)``.
    """
    identity = list(range(layers[-1].out_len))
    if not enabled:
        return layers, identity, False
    try:
        from .balance import balance
    except ModuleNotFoundError as e:
        if e.name != f"{__package__}.balance":
            raise
        return layers, identity, False
    layers, perm = balance(layers, cfg, x_calib)
    return layers, [int(p) for p in perm], True


def _objective(float_model, X_train, y_train, X_inputs, doomed: bool, data_source: str):
    """What retraining (pruning rounds and centroid fine-tuning) optimises: ``(objective, X_fit, y_fit)``.

    ``objective`` is the report's ``{"loss", "source"}``:

    * labelled data: ``cross_entropy`` on the labels (``y_train``);
    * ``--inputs`` (unlabelled): ``mse_distillation``, the compressed network's
      outputs matched to the float model's on the inputs not held out;
    * no data, or a model refused at the end (a pinned config too small):
      ``none``, no retraining (``X_fit`` is ``None``).
    """
    from .fidelity import float_outputs
    if doomed:
        return {"loss": "none", "source": "no retraining: the model does not fit the pinned config"}, None, None
    if X_train is not None:
        return ({"loss": "cross_entropy", "source": f"{data_source} labels ({len(X_train)} training inputs)"},
                X_train, y_train)
    if X_inputs is not None:
        X = np.asarray(X_inputs, dtype=np.float32)
        return ({"loss": "mse_distillation",
                 "source": f"--inputs: the float model's outputs on {len(X)} inputs (the held-out ones excluded)"},
                X, float_outputs(float_model, X).astype(np.float32))
    return {"loss": "none", "source": "no --data or --inputs: no retraining"}, None, None


def compress(model="digits-mlp", cfg=None, *, density=None, seed: int = 0, data=None,
             schedule: Schedule = Schedule(), cache: bool = True, balance: bool = True,
             progress=_stderr, fit: bool = False, inputs=None, share_init: str = "auto",
             max_error=None) -> Compressed:
    """Compress ``model`` for the EIE of config ``cfg`` (default preset ``tiny``).

    ``max_error`` (instead of ``density``) is a fidelity target: the per-layer
    densities are chosen by sensitivity so that the fixed-point network's error
    on the held-out inputs stays within it (relative L2 of the outputs without
    labels; accuracy drop as a fraction with labelled data), verified on the
    whole pipeline with back-off (:mod:`.sensitivity`); the report's
    ``max_error`` says what was reached. The other arguments: :func:`_compress`.
    """
    if max_error is None:
        return _compress(model, cfg, density=density, seed=seed, data=data, schedule=schedule, cache=cache,
                         balance=balance, progress=progress, fit=fit, inputs=inputs, share_init=share_init)
    from .sensitivity import check_max_error, compress_within
    check_max_error(max_error)
    if density is not None:
        raise ValueError("--max-error chooses every layer's density; give it or --density, not both")
    return compress_within(
        lambda choose: _compress(model, cfg, seed=seed, data=data, schedule=schedule, cache=cache, balance=balance,
                                 progress=progress, fit=fit, inputs=inputs, share_init=share_init,
                                 choose_densities=choose),
        max_error, progress=progress)


def _compress(model="digits-mlp", cfg=None, *, density=None, seed: int = 0, data=None,
              schedule: Schedule = Schedule(), cache: bool = True, balance: bool = True,
              progress=_stderr, fit: bool = False, inputs=None, share_init: str = "auto",
              choose_densities=None) -> Compressed:
    """One run of the pipeline (:func:`compress` without a fidelity target).

    ``model`` is a built-in name (``"digits-mlp"``, ``"lenet-300-100"``: see
    :data:`.models.BUILTIN`), a path, ``"module:function"`` or an
    ``nn.Sequential``. ``density`` (0, 1] replaces the default per-layer target
    densities (a built-in model's own, else :func:`.prune.default_densities`).
    ``data`` is a ``.npz`` path or a tuple ``(X_train, y_train, X_test,
    y_test)``; for a built-in model it defaults to its own split.
    Without data the model is pruned and shared without retraining, calibrated
    on seeded standard-normal inputs, and no accuracy is measured (the report's
    ``notes`` say so). ``balance=False`` keeps the plain row interleave (no
    load balancing). ``progress(str)`` gets progress lines (default: stderr).

    ``fit=True`` sizes every memory of ``cfg`` (``act_depth``, ``spmat_depth``,
    ``ptr_depth``, ``bias_depth``, ``max_layers``) to the network
    (:func:`eie.golden.fit.fitted`); otherwise ``cfg`` is pinned and a network
    that does not fit raises one :class:`eie.golden.fit.ConfigFitError` naming
    every overflow. ``inputs`` (array or ``.npy`` path, unlabelled, without
    ``data``) are real inputs: a seeded fifth of them (at least one) is held
    out to measure the fidelity, the rest calibrates the fixed point and is
    the training set of distillation: pruning retraining and centroid
    fine-tuning match the float model's outputs by MSE. The report's
    ``objective`` names the loss retraining optimised and its data
    (:func:`_objective`). The report's ``fidelity`` compares the pruned, shared
    and fixed-point networks with the float model on the held-out inputs
    (:mod:`.fidelity`). ``share_init`` is the k-means initialisation of weight
    sharing (:data:`eie.golden.share.INITS` or ``"auto"``, chosen per layer).
    ``choose_densities`` (the hook of :func:`eie.golden.sensitivity.compress_within`)
    replaces the default densities: it gets the float model and the data and
    returns one density per layer.
    """
    import torch

    from eie.config import preset
    from . import fit as fitting, models, prune, share, quantize
    from .encode import build_image, encode_layer
    from .fidelity import fidelity, float_outputs

    progress = progress or (lambda msg: None)
    cfg = cfg or preset("tiny")
    share.check_init(share_init)
    models.set_threads()
    torch.manual_seed(seed)
    notes, timings = [], {}
    t0 = time.perf_counter()

    # 1. model and data
    builtin = models.BUILTIN.get(model) if isinstance(model, str) else None
    if builtin is not None:
        name = model
        models.network_layers(builtin.build(), cfg, limits=False)  # refuse a bad model before training
        if data is None:
            data = builtin.data()
        float_model = builtin.train(seed, epochs=schedule.float_epochs, cache=cache, progress=progress)
    elif isinstance(model, str):
        name = model
        float_model = models.load_model(model)
    else:
        name = type(model).__name__
        float_model = model
    program = None
    try:
        if _is_program(float_model):                  # anything but Linear/ReLU: torch.fx partition
            from .graph import partition
            program_model, program = partition(float_model)
            specs = _program_specs(program_model)
        else:
            specs = models.network_layers(float_model, cfg, limits=False)   # sizes: fit.check, below
    except ValueError as e:
        if isinstance(model, str) and builtin is None:
            raise ValueError(f"--model {model}: {e}") from None     # name the file (or module) in the error
        raise
    in_len = specs[0].in_len if program is None else program.in_len
    out_len = specs[-1].out_len if program is None else program.out_len
    seq = program is not None and program.sequence
    # The memories: sized to the network (fit) or pinned. act_depth and max_layers follow from the shapes
    # and must be known before the fixed point (acc_bits); a pinned config too small for them is worked
    # on with them raised, so that the one error at the end can name every overflow with its exact need.
    shape_needs = fitting.shape_needs([(s.in_len, s.out_len) for s in specs], cfg.pes)
    shape_fields = {f: shape_needs[f] for f in ("act_depth", "max_layers")}
    work_cfg = fitting.fitted(cfg, shape_fields) if fit else fitting.smallest_fitting(cfg, shape_fields)
    doomed = not fit and work_cfg != cfg      # refused at the end; no retraining spent on it
    if doomed:
        over = ", ".join(o["field"] for o in fitting.overflows(cfg, shape_fields))
        progress(f"the model does not fit the config ({over}); pruning without retraining to report every memory it needs")
    if isinstance(data, (str, Path)):
        data = models.load_data(data, in_len, classes=out_len)
    X_train = y_train = X_test = y_test = None
    X_eval = X_calib_given = None
    if data is not None:
        if inputs is not None:
            raise ValueError("--inputs and --data both give data; --data brings held-out inputs (X_test)")
        X_train, y_train, X_test, y_test = data
        if X_train.shape[-1] != in_len:
            raise ValueError(f"data has {X_train.shape[-1]} features but the model's first layer takes "
                             f"{in_len}")
        X_eval, eval_source = X_test, "the test split" if builtin is not None else "--data X_test"
    elif inputs is not None:
        X_in = _load_inputs(inputs, in_len, seq)
        order = np.random.default_rng(seed).permutation(len(X_in))
        held = max(1, len(X_in) // 5)
        X_eval = X_in[order[:held]]
        X_calib_given = X_in[order[held:]] if len(X_in) > 1 else X_in
        eval_source = f"--inputs: {held} held-out inputs (the other {len(X_in) - held} calibrate)"
        if len(X_in) == 1:
            notes.append("--inputs holds one input: it both calibrates and measures the fidelity")
    else:
        notes.append("no --data given: pruning and weight sharing ran without retraining, calibration used "
                     f"{_NO_DATA_CALIBRATION_SAMPLES} seeded standard-normal inputs, and no accuracy was measured")
        X_eval = np.random.default_rng([seed, 1]).standard_normal(_random_shape(_NO_DATA_EVAL_SAMPLES, specs, program))
        eval_source = (f"{_NO_DATA_EVAL_SAMPLES} seeded standard-normal inputs (no --data or --inputs: "
                       f"not representative of real inputs)")
    X_eval = np.asarray(X_eval, dtype=np.float32)
    y_eval = y_test if X_test is not None else None
    ref_eval = float_outputs(float_model, X_eval)
    acc = {"float": None, "pruned": None, "shared": None, "fixed_point": None}
    if X_test is not None:
        acc["float"] = models.accuracy(float_model, X_test, y_test)
    timings["model"] = time.perf_counter() - t0

    # 2. pruning (on a copy: the float model stays intact for comparison)
    t = time.perf_counter()
    base_model = float_model if program is None else program_model
    if choose_densities is not None:
        densities = [prune.check_density(d) for d in choose_densities(
            base_model, specs, X_train, y_train, X_calib_given, _random_shape(1, specs, program)[1:], seed,
            cfg.index_bits, share_init)]
    else:
        densities = (list(builtin.densities) if builtin is not None and builtin.densities and density is None
                     else prune.default_densities(len(specs), density))
    work = copy.deepcopy(base_model)
    specs = models.network_layers(work, cfg, limits=False) if program is None else _program_specs(work)
    progress(f"pruning to densities {', '.join(f'{d:.0%}' for d in densities)}")
    objective, X_fit, y_fit = _objective(float_model, X_train, y_train, X_calib_given, doomed,
                                         builtin.data.__name__ if builtin is not None else "--data")
    if (program is not None and objective["loss"] == "cross_entropy"
            and not _class_outputs(work, X_train[:2])):
        notes.append("the program's output is not one class-score vector per input: no retraining with labels")
        objective = {"loss": "none", "source": "labels, but the program gives a vector per time step"}
        X_fit = y_fit = None
    if objective["loss"] != "none":
        progress(f"retraining objective: {objective['loss']} ({objective['source']})")
    masks = prune.prune_network(work, [s.linear for s in specs], densities, X_fit, y_fit,
                                steps=schedule.prune_steps, epochs=schedule.prune_epochs, seed=seed,
                                progress=progress, loss=objective["loss"])
    fid = {"source": eval_source, "pruned": fidelity(ref_eval, float_outputs(work, X_eval), y_eval)}
    if X_test is not None:
        acc["pruned"] = models.accuracy(work, X_test, y_test)
        progress(f"pruned: test accuracy {acc['pruned']:.2%} (float {acc['float']:.2%})")
    timings["prune"] = time.perf_counter() - t

    # 3. weight sharing + centroid fine-tuning
    t = time.perf_counter()
    progress(f"weight sharing: {cfg.codebook_size - 1} clusters per layer + code 0 for zero")
    shared_layers, shared_model = share.share_network(specs, masks, index_bits=cfg.index_bits,
                                                      X=X_fit if program is None else None, y=y_fit,
                                                      epochs=schedule.share_epochs, seed=seed, progress=progress,
                                                      init=share_init, loss=objective["loss"])
    progress("weight sharing init per layer: " + ", ".join(f"{sl.name} {sl.init} ({sl.codes_used} codes)"
                                                            for sl in shared_layers))
    if program is None:
        compressed_model = _dense_sequential(shared_layers)
    else:
        compressed_model = _program_share(program, shared_layers, X_fit, y_fit, schedule.share_epochs, seed,
                                          progress, objective["loss"])
    fid["shared"] = fidelity(ref_eval, float_outputs(compressed_model, X_eval), y_eval)
    if X_test is not None:
        acc["shared"] = models.accuracy(compressed_model, X_test, y_test)
        progress(f"shared: test accuracy {acc['shared']:.2%}")
    timings["share"] = time.perf_counter() - t

    # 4. fixed point
    t = time.perf_counter()
    if X_train is not None:
        X_calib = X_train
    elif X_calib_given is not None:
        X_calib = X_calib_given
    else:
        X_calib = np.random.default_rng(seed).standard_normal(_random_shape(_NO_DATA_CALIBRATION_SAMPLES, specs,
                                                                            program))
    if program is None:
        layers, input_frac, calibration = quantize.quantize_network(shared_layers, X_calib, work_cfg)
    else:
        from .program import calibrate
        program, layers, calibration = calibrate(program, shared_layers, X_calib, work_cfg)
        input_frac = program.fracs[program.input]
        for c in calibration[1:]:
            c["input_saturated"] = 0
    progress(f"fixed point: input_frac {input_frac}, out_frac per layer {[l.out_frac for l in layers]}")
    if calibration[0]["input_saturated"]:
        notes.append(f"{calibration[0]['input_saturated']} calibration input values saturate even with input_frac=0 "
                     f"(act_bits={cfg.act_bits}); scale the inputs down")
    for c in calibration:
        if c["saturated"]:
            notes.append(f"{c['name']}: {c['saturated']} outputs saturate on the calibration data even with "
                         f"out_frac=0 (values up to {c['out_max']:g}); scale the model down")

    # 5. balance hook, then 6. encoding
    if program is None:
        layers, output_perm, balanced = _balance(layers, work_cfg,
                                                 quantize.quantize_input(X_calib, input_frac, work_cfg), balance)
    else:       # rows stay in order: host steps read EIE outputs in logical order
        output_perm, balanced = list(range(layers[-1].out_len)), False
        if balance:
            notes.append("program: no load-balancing permutation (host steps read every EIE output in order)")
    needs = fitting.memory_needs(layers, work_cfg)
    if not fit:
        from .encode import _encode_codes, _overflow_details
        fitting.check(cfg, needs, _overflow_details(
            layers, [_encode_codes(layer.codes, cfg.pes, cfg.max_zrun) for layer in layers], cfg))
    else:
        cfg = fitting.fitted(cfg, needs)
        progress("memories sized to the network: " + ", ".join(f"{f} {getattr(cfg, f)} (needs {needs[f]})"
                                                                for f in fitting.MEMORY_FIELDS))
    encoded = [encode_layer(layer, cfg) for layer in layers]
    image = build_image(layers, cfg, chained=program is None)          # a pinned config too small: one error naming every overflow
    progress(f"encoded for {cfg.pes} PEs: {sum(e.entries for e in encoded)} entries "
             f"({sum(e.padding for e in encoded)} padding)" + (", rows load-balanced" if balanced else ""))
    timings["quantize_encode"] = time.perf_counter() - t

    # 7. fixed-point accuracy on the test split, storage
    t = time.perf_counter()
    if X_test is not None:
        acc["fixed_point"] = float(np.mean(_fixed_outputs(layers, program, X_test, cfg, input_frac, output_perm)
                                           .argmax(axis=1) == y_test))
    fid["fixed_point"] = fidelity(ref_eval, _fixed_outputs(layers, program, X_eval, cfg, input_frac, output_perm),
                                  y_eval)
    timings["evaluate"] = time.perf_counter() - t
    compression, layer_rows = storage_report(layers, encoded, cfg)
    for row, c, sl in zip(layer_rows, calibration, shared_layers):
        row["calibration"] = {k: c[k] for k in ("in_max", "out_max", "codebook_max", "saturated")}
        row["share_init"] = sl.init
        row["share_init_mse"] = sl.init_mse
    timings["total"] = time.perf_counter() - t0
    report = {
        "model": name, "seed": seed, "pes": cfg.pes, "config_digest": cfg.digest,
        "densities": densities, "input_frac": input_frac,
        "output_frac": layers[-1].out_frac if program is None else program.fracs[program.output],
        "output_perm": output_perm, "balanced": balanced,
        "data": None if X_test is None else {"train": int(len(X_train)), "test": int(len(X_test)),
                                             "source": builtin.data.__name__ if builtin is not None else "--data"},
        "objective": objective, "share_init": share_init, "accuracy": acc, "fidelity": fid, "memories": fitting.memory_report(cfg, needs, fit),
        "compression": compression, "layers": layer_rows, "notes": notes,
        "seconds": {k: round(v, 3) for k, v in timings.items()},
    }
    if program is not None:
        from .program import partition_report
        report["program"] = program.to_dict()
        report["partition"] = partition_report(program, layers)
    return Compressed(config=cfg, layers=layers, output_perm=output_perm, input_frac=input_frac, encoded=encoded,
                      image=image, report=report, float_model=float_model, compressed_model=compressed_model,
                      test_data=None if X_test is None else (X_test, y_test))


def storage_report(layers, encoded, cfg):
    """Per-layer and total storage (see the module docstring). Returns ``(compression, layer_rows)``."""
    from .huffman import stream_report

    rows = []
    tot = {"dense": 0, "pruned": 0, "eie": 0, "huffman": 0, "bias": 0, "index": 0, "zrun": 0,
           "pointer": 0, "codebook": 0}
    for layer, enc in zip(layers, encoded):
        n_w = layer.out_len * layer.in_len
        v = np.concatenate(enc.v) if enc.v else np.zeros(0, np.uint8)
        z = np.concatenate(enc.z) if enc.z else np.zeros(0, np.uint8)
        entries = enc.entries
        dense_bits = 32 * (n_w + layer.out_len)
        pointer_bits = cfg.pes * (layer.in_len + 1) * cfg.ptr_bits
        codebook_bits = cfg.codebook_size * cfg.codebook_bits
        index_bits = entries * cfg.index_bits
        zrun_bits = entries * cfg.zrun_bits
        pruned_bits = entries * (32 + cfg.zrun_bits) + pointer_bits
        eie_bits = index_bits + zrun_bits + pointer_bits + codebook_bits
        hv = stream_report(v, cfg.index_bits)
        hz = stream_report(z, cfg.zrun_bits)
        huff_bits = hv["huffman_bits"] + hz["huffman_bits"] + pointer_bits + codebook_bits
        bias_bits = layer.out_len * cfg.bias_bits
        pe_entries = enc.pe_entries
        rows.append({
            **layer.metadata(), "in_len": layer.in_len, "out_len": layer.out_len, "weights": n_w,
            "nonzeros": layer.nnz, "density": layer.nnz / n_w, "entries": entries, "padding": enc.padding,
            "pe_entries": [int(e) for e in pe_entries],
            "codebook_used": int(len(np.unique(layer.codes[layer.codes != 0]))),
            "bytes": {"dense": dense_bits / 8, "pruned": pruned_bits / 8, "eie": eie_bits / 8,
                      "huffman": huff_bits / 8, "index": index_bits / 8, "zrun": zrun_bits / 8,
                      "pointer": pointer_bits / 8, "codebook": codebook_bits / 8, "bias": bias_bits / 8},
            "huffman": {"index_bits": hv["huffman_bits"], "zrun_bits": hz["huffman_bits"],
                        "index_entropy_bits": round(hv["entropy_bits"], 1),
                        "zrun_entropy_bits": round(hz["entropy_bits"], 1)},
        })
        for key, bits in (("dense", dense_bits), ("pruned", pruned_bits), ("eie", eie_bits), ("huffman", huff_bits),
                          ("bias", bias_bits), ("index", index_bits), ("zrun", zrun_bits),
                          ("pointer", pointer_bits), ("codebook", codebook_bits)):
            tot[key] += bits
    b = {k: -(-v // 8) for k, v in tot.items()}  # whole bytes, rounded up
    nonzeros = sum(l.nnz for l in layers)
    weights = sum(l.out_len * l.in_len for l in layers)
    compression = {
        "dense_bytes": b["dense"], "pruned_bytes": b["pruned"], "eie_bytes": b["eie"], "huffman_bytes": b["huffman"],
        "ratio": b["dense"] / b["eie"], "pruned_ratio": b["dense"] / b["pruned"],
        "huffman_ratio": b["dense"] / b["huffman"],
        "breakdown_bytes": {k: b[k] for k in ("index", "zrun", "pointer", "codebook")},
        "bias_bytes": b["bias"], "ratio_with_bias": b["dense"] / (b["eie"] + b["bias"]),
        "ratio_without_pointers": b["dense"] / max(1, b["eie"] - b["pointer"]),
        "weights": weights, "nonzeros": nonzeros, "density": nonzeros / weights,
        "entries": sum(e.entries for e in encoded), "padding": sum(e.padding for e in encoded),
        "ptr_bits": cfg.ptr_bits, "pes": cfg.pes,
    }
    return compression, rows


def write_output(result: Compressed, out_dir, *, save_model: bool = True) -> dict:
    """Write ``manifest.json``, ``layers.npz``, ``image.npz`` (and ``model.pt``, the compressed float
    model, and ``float_model.pt``, the original one) into ``out_dir``.

    Returns ``{file kind: path}``.
    """
    from eie.format import write_manifest
    from .encode import save_layers

    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise ValueError(f"output {out} exists and is not a folder; choose another -o")
    out.mkdir(parents=True, exist_ok=True)
    files = {"manifest": "manifest.json", "layers": "layers.npz", "image": "image.npz"}
    save_layers(out / files["layers"], result.layers)
    result.image.save(out / files["image"])
    if save_model and result.compressed_model is not None:
        import torch
        files["model"] = "model.pt"
        torch.save(result.compressed_model, out / files["model"])
        if isinstance(result.float_model, torch.nn.Module):      # the reference of `eie simulate`'s fidelity
            files["float_model"] = "float_model.pt"
            torch.save(result.float_model, out / files["float_model"])
    r = result.report
    write_manifest(out, result.config, model=r["model"], seed=r["seed"], input_frac=r["input_frac"],
                   output_frac=r["output_frac"], output_perm=r["output_perm"], balanced=r["balanced"],
                   densities=r["densities"], layers=r["layers"],
                   accuracy=r["accuracy"], fidelity=r.get("fidelity"), objective=r.get("objective"),
                   max_error=r.get("max_error"), memories=r.get("memories"),
                   compression=r["compression"], data=r["data"], notes=r["notes"], files=files,
                   **({"program": r["program"], "partition": r["partition"]} if "program" in r else {}))
    return {k: str(out / v) for k, v in files.items()}


def _kb(n_bytes: float) -> str:
    return f"{n_bytes / 1024:.1f}K"


def format_report(report: dict) -> str:
    """The Deep-Compression-style table of a :func:`compress` report, with accuracies."""
    c = report["compression"]
    head = (f"{'layer':<6}{'shape':>10}{'weights':>9}{'density':>9}{'entries':>9}{'padding':>9}"
            f"{'dense':>9}{'pruned':>9}{'shared':>9}{'huffman':>9}{'ratio':>8}")
    lines = [f"Deep Compression of {report['model']} for {report['pes']} PEs "
             f"(sizes in KiB; 'shared' is the EIE format: {c['ptr_bits']}-bit pointers)", head, "-" * len(head)]
    for row in report["layers"]:
        b = row["bytes"]
        lines.append(f"{row['name']:<6}{row['in_len']:>5}x{row['out_len']:<4}{row['weights']:>9}"
                     f"{row['density']:>9.1%}{row['entries']:>9}{row['padding']:>9}{_kb(b['dense']):>9}"
                     f"{_kb(b['pruned']):>9}{_kb(b['eie']):>9}{_kb(b['huffman']):>9}"
                     f"{b['dense'] / b['eie']:>7.1f}x")
    lines.append("-" * len(head))
    lines.append(f"{'total':<16}{c['weights']:>9}{c['density']:>9.1%}{c['entries']:>9}{c['padding']:>9}"
                 f"{_kb(c['dense_bytes']):>9}{_kb(c['pruned_bytes']):>9}{_kb(c['eie_bytes']):>9}"
                 f"{_kb(c['huffman_bytes']):>9}{c['ratio']:>7.1f}x")
    bd = c["breakdown_bytes"]
    lines.append(f"compression: {c['ratio']:.1f}x in the EIE format, {c['huffman_ratio']:.1f}x with Huffman coding, "
                 f"{c['ratio_without_pointers']:.1f}x without the pointers "
                 f"(EIE bytes: indices {bd['index']}, zero runs {bd['zrun']}, pointers {bd['pointer']}, "
                 f"codebooks {bd['codebook']}; biases {c['bias_bytes']} more)")
    m = report.get("memories")
    if m:
        lines.append(("memories sized to the network (smallest power of two >= need): " if m["fitted"] else
                      "memories (pinned config): ")
                     + ", ".join(f"{f} {v['chosen']} (needs {v['needed']})" for f, v in m["fields"].items()))
    me = report.get("max_error")
    if me:
        lines.append(f"--max-error {me['target']:g} ({me['metric']}): achieved {me['achieved']:.4g} "
                     f"({'met' if me['met'] else 'NOT met'}) at densities "
                     f"{', '.join(f'{d:.0%}' for d in me['densities'])}, {me['ratio']:.1f}x, after "
                     f"{len(me['attempts'])} run(s); sensitivity on {me['sensitivity']['inputs']}")
    obj = report.get("objective")
    if obj:
        lines.append(f"retraining objective: {obj['loss']} ({obj['source']})")
    if report["layers"] and "share_init" in report["layers"][0]:
        lines.append("weight sharing (k-means init, codes used): "
                     + ", ".join(f"{r['name']} {r['share_init']} {r['codebook_used']}" for r in report["layers"]))
    fid = report.get("fidelity")
    if fid:
        from .fidelity import summary
        lines.append(f"fidelity against the float model on {fid['source']}:")
        for stage in ("pruned", "shared", "fixed_point"):
            if stage in fid:
                lines.append(f"  {stage.replace('_', ' ')}: {summary(fid[stage])}")
    a = report["accuracy"]
    if a["float"] is not None:
        lines.append(f"accuracy on {report['data']['test']} test inputs: float {a['float']:.2%}, pruned "
                     f"{a['pruned']:.2%}, shared {a['shared']:.2%}, fixed point (bit-exact) {a['fixed_point']:.2%}")
    lines.append(f"fixed point: input {report['input_frac']} fraction bits; per layer (in, codebook, out, shift): "
                 + ", ".join(f"{r['name']} ({r['in_frac']}, {r['codebook_frac']}, {r['out_frac']}, {r['shift']})"
                             for r in report["layers"]))
    part = report.get("partition")
    if part:
        lines.append(f"partition ({'per time step, ' if part['sequence'] else ''}EIE {part['eie_share']:.1%} of the "
                     f"multiply-accumulates; host: {', '.join(part['host_ops']) or 'nothing'}):")
        for r in part["steps"]:
            where = (f"EIE layers {r['layers'][0]}..{r['layers'][-1]}" if r["on"] == "eie" else f"host {r['op']}")
            lines.append(f"  {r['phase']:<4} {r['step']:<28} {where:<22} {r['macs']:>9} MACs ({r['share']:.1%})")
    for note in report["notes"]:
        lines.append(f"note: {note}")
    return "\n".join(lines)
