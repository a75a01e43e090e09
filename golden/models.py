"""Models the compressor accepts, the built-in ``digits-mlp``, and its data.

Three kinds of model go into ``eie compress --model``:

``digits-mlp``
    A 64-300-100-10 ReLU MLP trained here on scikit-learn's bundled 8x8 digits
    (:func:`digits_split`). Training is seeded and takes a few seconds; the
    trained float model is cached in ``build/cache/`` (or ``$EIE_CACHE``) keyed
    by seed, epochs and a model version, so repeated runs skip it.
a path
    A file written by ``torch.save(model)`` of a whole ``torch.nn.Sequential``
    of ``Linear``/``ReLU`` modules. Loading a pickled module runs code from the
    file (``torch.load(..., weights_only=False)``): only load files you trust.
``module:function``
    An importable function that returns such a ``Sequential``.

:func:`network_layers` checks a model against an :class:`~eie.config.EIEConfig`
and refuses anything EIE cannot run with a ``ValueError`` that names the layer
and the limit.

User data (``--data FILE.npz``) holds four arrays ``X_train`` (n, in) float,
``y_train`` (n,) int class labels, ``X_test``, ``y_test``; see :func:`load_data`.
"""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = [
    "DIGITS_TEST_SIZE", "DIGITS_SPLIT_SEED", "DIGITS_INPUT_SCALE", "DIGITS_SHAPE", "DIGITS_EPOCHS",
    "LinearSpec", "LOSSES", "digits_split", "digits_mlp", "build_digits_mlp", "train_classifier", "accuracy",
    "network_layers", "load_model", "load_data", "cache_dir", "set_threads",
]

DIGITS_TEST_SIZE = 360        # 20 % of the 1797 images, stratified
DIGITS_SPLIT_SEED = 0         # the split never changes: simulate/run reuse it as ``digits-test``
DIGITS_INPUT_SCALE = 16.0     # pixels are 0..16; the network sees pixel / 16 in [0, 1]
DIGITS_SHAPE = (64, 300, 100, 10)
DIGITS_EPOCHS = 40
_DIGITS_MODEL_VERSION = 1     # bump when the training recipe changes (invalidates the cache)


def set_threads() -> None:
    """One intra-op thread unless ``$EIE_THREADS`` says otherwise.

    The models are tiny: a second thread gains at most 2x on an idle machine,
    but on a busy one (parallel tests, other jobs) spinning OpenMP threads made
    training 15-20x slower in our measurements.
    """
    import torch
    torch.set_num_threads(max(1, int(os.environ.get("EIE_THREADS", "1"))))


def digits_split():
    """The fixed train/test split of scikit-learn's 8x8 digits.

    Returns ``(X_train, y_train, X_test, y_test)``: ``X`` float32 of shape
    ``(n, 64)`` holding ``pixel / 16`` (so every input is in ``[0, 1]``), ``y``
    int64 class labels 0..9. The test split is 360 images (20 %), stratified by
    class, drawn with a fixed seed independent of any training seed, so
    ``eie simulate --inputs digits-test`` sees exactly the images the
    compressor's ``accuracy.fixed_point`` was measured on.
    """
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    X = (digits.data / DIGITS_INPUT_SCALE).astype(np.float32)
    y = digits.target.astype(np.int64)
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=DIGITS_TEST_SIZE, stratify=y, random_state=DIGITS_SPLIT_SEED)
    return X_train, y_train, X_test, y_test


def build_digits_mlp():
    """The untrained 64-300-100-10 ReLU MLP (``torch.nn.Sequential``)."""
    import torch.nn as nn
    a, b, c, d = DIGITS_SHAPE
    return nn.Sequential(nn.Linear(a, b), nn.ReLU(), nn.Linear(b, c), nn.ReLU(), nn.Linear(c, d))


LOSSES = ("cross_entropy", "mse_distillation")


def train_classifier(model, X, y, *, epochs: int, lr: float = 1e-3, batch_size: int = 32, seed: int = 0,
                     params=None, after_step=None, progress=None, label: str = "train",
                     loss: str = "cross_entropy") -> None:
    """Train ``model`` in place with Adam on ``loss``.

    ``loss="cross_entropy"``: ``y`` are integer class labels (n,).
    ``loss="mse_distillation"``: ``y`` are the float model's outputs on ``X``
    (n, outputs), matched by mean squared error (no labels needed).
    ``params`` (default: all parameters) are the ones optimised; ``after_step()``
    runs after every optimiser step (pruning uses it to keep pruned weights at
    zero). ``progress(str)`` receives one line per epoch.
    """
    import torch
    import torch.nn.functional as F

    if loss not in LOSSES:
        raise ValueError(f"training loss must be one of {', '.join(LOSSES)}, not {loss!r}")
    gen = torch.Generator().manual_seed(seed)
    Xt = torch.as_tensor(np.asarray(X, dtype=np.float32))
    if loss == "cross_entropy":
        yt = torch.as_tensor(np.asarray(y, dtype=np.int64))
        loss_fn = F.cross_entropy
    else:
        yt = torch.as_tensor(np.asarray(y, dtype=np.float32))
        if yt.ndim != 2 or len(yt) != len(Xt):
            raise ValueError(f"distillation targets must be the float model's outputs, shape (n={len(Xt)}, "
                             f"outputs), not {tuple(yt.shape)}")
        loss_fn = F.mse_loss
    opt = torch.optim.Adam(model.parameters() if params is None else params, lr=lr)
    model.train()
    for epoch in range(epochs):
        order = torch.randperm(len(Xt), generator=gen)
        total = 0.0
        for start in range(0, len(Xt), batch_size):
            idx = order[start:start + batch_size]
            opt.zero_grad()
            value = loss_fn(model(Xt[idx]), yt[idx])
            value.backward()
            opt.step()
            if after_step is not None:
                after_step()
            total += float(value.detach()) * len(idx)
        if progress is not None:
            progress(f"{label}: epoch {epoch + 1}/{epochs} {loss} loss {total / len(Xt):.4g}")
    model.eval()


def accuracy(model, X, y) -> float:
    """Top-1 accuracy of a float ``model`` on ``(X, y)``."""
    import torch
    with torch.no_grad():
        pred = model(torch.as_tensor(np.asarray(X, dtype=np.float32))).argmax(dim=1).numpy()
    return float(np.mean(pred == np.asarray(y)))


def cache_dir() -> Path:
    """Folder for cached trained models: ``$EIE_CACHE`` or ``./build/cache``."""
    return Path(os.environ.get("EIE_CACHE") or Path("build") / "cache")


def digits_mlp(seed: int = 0, *, epochs: int = DIGITS_EPOCHS, cache: bool = True, progress=None):
    """The trained float ``digits-mlp`` for ``seed`` (loaded from the cache when present)."""
    import torch

    set_threads()
    model = build_digits_mlp()
    path = cache_dir() / f"digits-mlp-v{_DIGITS_MODEL_VERSION}-seed{seed}-e{epochs}.pt"
    if cache and path.exists():
        try:
            model.load_state_dict(torch.load(path, weights_only=True))
            model.eval()
            if progress:
                progress(f"digits-mlp: loaded trained model from {path}")
            return model
        except Exception as e:  # a corrupt or foreign file: retrain and overwrite
            if progress:
                progress(f"digits-mlp: ignoring unreadable cache {path} ({e})")
    torch.manual_seed(seed)
    model = build_digits_mlp()
    X_train, y_train, _, _ = digits_split()
    train_classifier(model, X_train, y_train, epochs=epochs, lr=1e-3, seed=seed, progress=progress,
                     label="digits-mlp float training")
    if cache:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        torch.save(model.state_dict(), tmp)
        os.replace(tmp, path)  # atomic: parallel test workers may race
    return model


@dataclass(frozen=True)
class LinearSpec:
    """One EIE layer of a model: ``module_index`` in the Sequential, the Linear, ReLU after it."""
    module_index: int
    linear: object
    relu: bool

    @property
    def in_len(self) -> int:
        return self.linear.in_features

    @property
    def out_len(self) -> int:
        return self.linear.out_features


def network_layers(model, cfg, *, limits: bool = True) -> list:
    """Check that ``model`` runs on an EIE of config ``cfg``; return its :class:`LinearSpec` list.

    Accepted: a ``torch.nn.Sequential`` of ``Linear`` modules, each optionally
    followed by one ``ReLU``; consecutive sizes must chain; every size must be at
    most ``cfg.max_len`` (``pes * act_depth``) and there must be at most
    ``cfg.max_layers`` Linear layers. Anything else raises ``ValueError`` naming
    the module index, its type and the limit. ``limits=False`` checks only the
    structure (the config's sizes are then checked by :mod:`.fit`).
    """
    import torch.nn as nn

    if not isinstance(model, nn.Sequential):
        raise ValueError(f"model must be a torch.nn.Sequential of Linear/ReLU modules, not {type(model).__name__}")
    specs = []
    prev = None
    for i, module in enumerate(model):
        kind = type(module).__name__
        if isinstance(module, nn.Linear):
            for name, size in (("in_features", module.in_features), ("out_features", module.out_features)):
                if limits and size > cfg.max_len:
                    raise ValueError(
                        f"layer {i} (Linear {module.in_features}->{module.out_features}): {name}={size} exceeds "
                        f"the config's limit max_len = pes * act_depth = {cfg.pes} * {cfg.act_depth} = "
                        f"{cfg.max_len}; use more PEs (--pes) or a config with a larger act_depth")
            for pname, param in module.named_parameters():
                if not bool(param.detach().isfinite().all()):
                    raise ValueError(f"layer {i} (Linear {module.in_features}->{module.out_features}): its {pname} "
                                     f"holds NaN or infinite values; train or fix the model so that every weight "
                                     f"and bias is a finite number")
            if specs and specs[-1].out_len != module.in_features:
                raise ValueError(f"layer {i} (Linear {module.in_features}->{module.out_features}): in_features="
                                 f"{module.in_features} does not match the previous Linear's out_features="
                                 f"{specs[-1].out_len}")
            specs.append(LinearSpec(i, module, False))
        elif isinstance(module, nn.ReLU):
            if prev != "linear":
                where = "is the first module" if prev is None else "follows another ReLU"
                raise ValueError(f"layer {i} (ReLU) {where}: EIE applies ReLU only at a Linear layer's "
                                 f"write-back, so every ReLU must directly follow a Linear")
            specs[-1] = LinearSpec(specs[-1].module_index, specs[-1].linear, True)
            prev = "relu"
            continue
        else:
            raise ValueError(f"layer {i} ({kind}) is not supported: EIE runs only Linear layers, each optionally "
                             f"followed by ReLU (fully-connected networks); convert or remove the {kind}")
        prev = "linear"
    if not specs:
        raise ValueError("model has no Linear layer; EIE needs at least one")
    if limits and len(specs) > cfg.max_layers:
        raise ValueError(f"model has {len(specs)} Linear layers but the config allows max_layers="
                         f"{cfg.max_layers}; raise max_layers in the config")
    return specs


def load_model(spec: str):
    """Load a user model: a ``torch.save``'d Sequential file, or ``module:function``.

    Returns the ``nn.Module`` (unchecked; see :func:`network_layers`). A file is
    loaded with ``torch.load(path, weights_only=False)``, which unpickles and can
    run code: load only files you trust.
    """
    import torch

    path = Path(spec)
    if path.exists():
        import zipfile
        from eie.format import FormatError
        fix = "save it again with torch.save(model, path) where model is a torch.nn.Sequential"
        if zipfile.is_zipfile(path):        # torch.save's format: check every member's CRC-32 first
            try:
                with zipfile.ZipFile(path) as zf:
                    bad = zf.testzip()
            except Exception as e:
                raise FormatError(path, f"is a damaged model file ({type(e).__name__}: {e})", fix) from None
            if bad is not None:
                raise FormatError(path, f"is a damaged model file: member {bad!r} fails its CRC-32 check", fix)
        try:
            model = torch.load(path, weights_only=False, map_location="cpu")
        except Exception as e:
            raise ValueError(f"cannot load model file {spec}: {e}; save it with torch.save(model, path) "
                             f"where model is a torch.nn.Module whose class is importable here (on "
                             f"PYTHONPATH)") from e
        if isinstance(model, dict):
            raise ValueError(f"model file {spec} holds a state_dict, not a module; save the whole module with "
                             f"torch.save(model, path)")
    elif ":" in spec and not spec.endswith((".pt", ".pth")):
        module_name, _, func_name = spec.partition(":")
        try:
            module = importlib.import_module(module_name)
        except ImportError as e:
            raise ValueError(f"cannot import module {module_name!r} of --model {spec!r}: {e}; "
                             f"is it on PYTHONPATH?") from e
        func = getattr(module, func_name, None)
        if not callable(func):
            raise ValueError(f"{module_name} has no function {func_name!r} (from --model {spec!r})")
        model = func()
    else:
        raise FileNotFoundError(f"--model {spec!r} is neither 'digits-mlp', an existing file saved with "
                                f"torch.save(model, path), nor 'module:function'")
    if not hasattr(model, "eval"):
        raise ValueError(f"--model {spec!r} gave a {type(model).__name__}, not a torch.nn.Sequential")
    model.eval()
    return model


def load_data(path, in_len: int | None = None, *, need_train: bool = True, classes: int | None = None):
    """Read calibration/test data from an ``.npz`` with ``X_train, y_train, X_test, y_test``.

    ``X_*`` are float arrays of shape ``(n, in_len)`` in the model's own input
    units; ``y_*`` are integer class labels (argmax of the model's output).
    Returns the four arrays (float32, int64). With ``need_train=False`` a file
    holding only ``X_test, y_test`` is accepted and the train arrays come back
    as ``None`` (for tools that only run inference).
    """
    from eie.format import FormatError, check_finite, expect_keys, read_npz
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"data file {path} does not exist")
    keys = ("X_train", "y_train", "X_test", "y_test") if need_train else ("X_test", "y_test")
    fix = f"write the data with np.savez(path, {'=..., '.join(keys)}=...)"
    arrays = read_npz(path, what="data file", fix=fix)
    expect_keys(path, arrays, keys, optional=("X_train", "y_train", "X_test", "y_test"), fix=fix)
    splits = ("train", "test") if "X_train" in arrays and "y_train" in arrays else ("test",)
    for name in splits:
        X, y = arrays[f"X_{name}"], arrays[f"y_{name}"]
        if X.ndim not in (2, 3) or y.ndim != 1 or len(X) != len(y) or len(X) == 0:
            raise FormatError(path, f"X_{name} must be (n, in_len) (or (n, time, in_len) for a recurrent model) "
                                    f"and y_{name} (n,) with n > 0, not {X.shape} and {y.shape}", fix)
        if in_len is not None and X.shape[-1] != in_len:
            raise FormatError(path, f"X_{name} has {X.shape[-1]} features but the model's first layer takes "
                                    f"{in_len}", fix)
        if not (np.issubdtype(X.dtype, np.floating) or np.issubdtype(X.dtype, np.integer)) or X.dtype == bool:
            raise FormatError(path, f"X_{name} must hold numbers, not {X.dtype}", fix)
        check_finite(path, f"X_{name}", X, "replace NaN and infinite values by numbers")
        if not np.issubdtype(y.dtype, np.integer) or y.dtype == bool:
            regression = (" (float targets look like a regression task: eie compress retrains only classifiers on "
                          "labels, by cross-entropy; for regression give the inputs alone with --inputs X.npy, "
                          "which retrains by MSE distillation from the float model)"
                          if np.issubdtype(y.dtype, np.floating) else "")
            raise FormatError(path, f"y_{name} must hold integer class labels, not {y.dtype}{regression}", fix)
        if classes is not None and y.size and (int(y.min()) < 0 or int(y.max()) >= classes):
            raise FormatError(path, f"y_{name} holds labels {int(y.min())}..{int(y.max())} but the network has "
                                    f"{classes} outputs (labels 0..{classes - 1})", fix)
    out = []
    for name in ("train", "test"):
        if name in splits:
            out += [arrays[f"X_{name}"].astype(np.float32), arrays[f"y_{name}"].astype(np.int64)]
        else:
            out += [None, None]
    return tuple(out)
